//! Grouping: settled query-log blocks rewritten client by client (`codec::regroup`), a few
//! per step, so a client's history reads its own rows instead of every row near them.
//!
//! Why a pass of its own, behind the writer: the writer must not sort its batches (its cost
//! per row is the DNS path's budget), so a block is grouped a few seconds after it was
//! written ([`crate::writer`]'s grouping settle time), between batches, and not at all while
//! the writer is behind.
//! Grouping keeps each row's id, the block's time range, counts and filter (only `data` is
//! written); only the order the rows are stored in changes, so readers need no care beyond
//! `codec`'s.
//!
//! What it touches: query-log blocks of at least [`MIN_ROWS`] rows. Smaller blocks are
//! compaction's (`compact`), which groups what it merges; a small block left alone costs
//! little to step through. Hit blocks are written small (a batch's hits) and are left to
//! compaction, which groups them as it merges them; late identity (`crate::relearn`)
//! re-encodes a hit block in the order written and groups it again.
//!
//! Where it is: `block_grouping.through_id` (schema 14), the highest block id already looked
//! at. Block ids grow with time, so the pass stops at the first block not settled yet and
//! resumes there; a restart does not read the log again.

use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};

use super::codec::regroup;
use super::{Table, block_data};
use crate::StoreError;

/// Blocks with fewer rows are left to compaction (its `SMALL_ROWS`).
pub const MIN_ROWS: u32 = super::compact::SMALL_ROWS;
/// Blocks younger than this are not grouped yet. A block of [`MIN_ROWS`] or more never
/// changes after it is written (compaction leaves it alone), so waiting only gathers a few
/// blocks per step. Short, because every client lookup walks the newest blocks first and
/// steps through an ungrouped block row by row: with compaction's 10 minutes, a 100 M-row
/// week kept ~28 ungrouped blocks at its head and `/queries?client=` took 2–3× as long as at
/// 10 M rows (issue 18); a billion-row week would keep ~280.
pub const SETTLE_MS: i64 = 10_000;
/// Blocks looked at per step at most.
const STEP_BLOCKS: i64 = 4;

/// The grouping state table (schema 14).
pub(crate) fn schema() -> String {
    "CREATE TABLE IF NOT EXISTS block_grouping (
    log INTEGER PRIMARY KEY,
    through_id INTEGER NOT NULL
);
"
    .to_string()
}

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    /// Blocks rewritten client by client.
    pub grouped: usize,
    /// Whether settled blocks remain after this step.
    pub more: bool,
}

/// One step of grouping, inside the caller's transaction: the query-log blocks after the
/// pass's position that ended before `settled_before_ms`, in id order, until
/// [`STEP_BLOCKS`] were looked at or `budget` is spent. Blocks of fewer than `min_rows`
/// rows are passed over ([`MIN_ROWS`] in the writer).
pub fn step(
    conn: &Connection,
    settled_before_ms: i64,
    min_rows: u32,
    budget: Duration,
) -> Result<Step, StoreError> {
    let started = Instant::now();
    let log = crate::rollup::log_of(Table::Queries);
    let through: i64 = conn
        .prepare_cached("SELECT through_id FROM block_grouping WHERE log = ?1")?
        .query_row([log], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let blocks: Vec<(i64, u32, i64)> = conn
        .prepare_cached(
            "SELECT id, rows, last_ms FROM query_blocks WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?
        .query_map(params![through, STEP_BLOCKS], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut step = Step::default();
    // A full window may have more after it; an unsettled block ends the pass for now.
    let full = blocks.len() as i64 == STEP_BLOCKS;
    step.more = full;
    let mut at = through;
    for (k, &(id, rows, last_ms)) in blocks.iter().enumerate() {
        if last_ms >= settled_before_ms {
            step.more = false;
            break;
        }
        if rows >= min_rows {
            let data = block_data(conn, Table::Queries, id)?;
            match regroup(&data) {
                Ok(Some(grouped)) => {
                    conn.prepare_cached("UPDATE query_blocks SET data = ?2 WHERE id = ?1")?
                        .execute(params![id, grouped])?;
                    step.grouped += 1;
                }
                Ok(None) => {}
                // A block that does not decode fails every read that reaches it too; it
                // stays as it is.
                Err(error) => {
                    tracing::warn!(%error, id, "a query-log block does not decode; left ungrouped")
                }
            }
        }
        at = id;
        if started.elapsed() >= budget {
            step.more = full || k + 1 < blocks.len();
            break;
        }
    }
    if at != through {
        conn.prepare_cached(
            "INSERT INTO block_grouping (log, through_id) VALUES (?1, ?2) \
             ON CONFLICT (log) DO UPDATE SET through_id = excluded.through_id",
        )?
        .execute(params![log, at])?;
    }
    Ok(step)
}

/// Groups every settled block, one transaction per step; returns the blocks grouped. For
/// tools and tests; the writer interleaves the steps with its batches.
pub fn run(conn: &Connection, settled_before_ms: i64, min_rows: u32) -> Result<usize, StoreError> {
    let mut grouped = 0;
    loop {
        let tx = conn.unchecked_transaction()?;
        let s = step(&tx, settled_before_ms, min_rows, Duration::MAX)?;
        tx.commit()?;
        grouped += s.grouped;
        if !s.more {
            return Ok(grouped);
        }
    }
}
