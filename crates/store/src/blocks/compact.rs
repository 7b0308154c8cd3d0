//! Compaction: merges runs of small, settled blocks into one block.
//!
//! Why: a block is one writer batch, and a batch is whatever arrived in one flush interval. At
//! a campus's ordinary load that is a few hundred queries, and for hits often a single row, so
//! a month of logging leaves millions of small blocks. Every read walks blocks and pays a
//! filter check for each, so a lookup of a quiet client (one that must reach the end of the
//! window) cost time in proportion to the number of blocks, not rows. Merging settled runs up
//! to [`TARGET_ROWS`] keeps the block count in proportion to the rows instead, as under load.
//!
//! What stays true:
//! - **Order.** A run is a sequence of blocks adjacent by id. Its rows are re-encoded in their
//!   stored order into the run's first block, so a row's id (`block << 20 | index`) still
//!   sorts exactly as before against every other row. Only the ids inside the run change, so
//!   a client paging with a cursor taken before the merge may see rows of that one
//!   millisecond twice, never miss one.
//! - **Ids are never reused.** The newest block (highest id) is never merged away, so SQLite's
//!   next id stays above every id ever handed out.
//! - **Retention stays cheap.** A merged block spans at most [`MAX_SPAN_MS`], so the cut-off
//!   rewrites at most that much.
//! - **Busy periods cost nothing.** A block of [`SMALL_ROWS`] or more (a quarter default batch)
//!   is left alone: under load blocks are already large and the writer has no time to spare.
//! - **Recent blocks are left alone** (the caller's `settled_before_ms`; the writer uses 10
//!   minutes): staff paging through the latest rows see stable ids.
//! - **Unshipped hits are left alone** (the caller's `through_id`, the shipped watermark of
//!   `crate::shipped`): a merge reaching above it would move hits the shipper has not sent yet
//!   into a block it has, and they would never reach PostgreSQL.

use rusqlite::{Connection, params};

use super::codec::{Block, BlockEncoder, regroup};
use super::{Table, block_data};
use crate::StoreError;

/// Blocks with fewer rows than this are merged (a quarter of the default `batch_size`).
pub const SMALL_ROWS: u32 = 1024;
/// A merged block holds at most this many rows: a busy writer's block (the default
/// `batch_size`). Larger blocks make the Bloom filters less selective: a client in most
/// blocks costs whole-block decodes. Measured over 10 M rows written in batches of 250,
/// merging to 16,384 rows made `/queries?client=` 4× slower; at 4,096 see BENCHMARKS.md.
pub const TARGET_ROWS: u32 = 4096;
/// A merged block covers at most this much time.
pub const MAX_SPAN_MS: i64 = 3_600_000;
/// Blocks looked at per step.
const SCAN: i64 = 512;

/// Where a compaction pass has got to, so each step is short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Blocks with ids at or below this were already looked at.
    after_id: i64,
}

impl Cursor {
    /// A pass from the oldest block.
    pub const START: Cursor = Cursor { after_id: 0 };
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Blocks merged away (a run of n blocks removes n - 1).
    pub removed: usize,
    /// Where the next step starts; `None` when the pass has reached the newest block.
    pub next: Option<Cursor>,
    /// The block a run was merged into: to group by client next ([`group_merged`]), in a
    /// transaction of its own so the writer's pause is one of the two, not their sum.
    pub merged: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    id: i64,
    rows: u32,
    first_ms: i64,
    last_ms: i64,
}

/// One short step of a compaction pass over `table`: finds the next run of adjacent small
/// blocks that ended before `settled_before_ms`, all with ids at or below `through_id`
/// (`i64::MAX`: no limit), and merges it (one run per step, at most [`TARGET_ROWS`] rows
/// re-encoded), inside the caller's transaction.
pub fn step(
    conn: &Connection,
    table: Table,
    settled_before_ms: i64,
    through_id: i64,
    from: Cursor,
) -> Result<Step, StoreError> {
    let t = table.blocks();
    let newest = super::newest_id(conn, table)?;
    // Blocks below this bound may merge: never the newest, never one above `through_id`.
    let newest = newest.min(through_id.saturating_add(1));
    let blocks: Vec<Meta> = conn
        .prepare_cached(&format!(
            "SELECT id, rows, first_ms, last_ms FROM {t} WHERE id > ?1 AND id < ?2 \
             ORDER BY id LIMIT ?3"
        ))?
        .query_map(params![from.after_id, newest, SCAN], |r| {
            Ok(Meta {
                id: r.get(0)?,
                rows: r.get(1)?,
                first_ms: r.get(2)?,
                last_ms: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mergeable = |b: &Meta| b.rows < SMALL_ROWS && b.last_ms < settled_before_ms;
    let mut i = 0;
    while i < blocks.len() {
        if !mergeable(&blocks[i]) {
            i += 1;
            continue;
        }
        let (mut rows, mut first, mut last) =
            (blocks[i].rows, blocks[i].first_ms, blocks[i].last_ms);
        let mut end = i + 1;
        while let Some(b) = blocks.get(end) {
            let (f, l) = (first.min(b.first_ms), last.max(b.last_ms));
            if !mergeable(b) || rows + b.rows > TARGET_ROWS || l - f > MAX_SPAN_MS {
                break;
            }
            (rows, first, last) = (rows + b.rows, f, l);
            end += 1;
        }
        if end - i >= 2 {
            match merge(conn, table, &blocks[i..end]) {
                Ok(()) => {}
                // A block that does not decode fails every read that reaches it too; it stays
                // as it is (nothing was written yet), and the pass goes on after its run.
                Err(StoreError::Block(error)) => {
                    tracing::warn!(%error, ?table, first = blocks[i].id, last = blocks[end - 1].id,
                        "a block does not decode; its run is left unmerged");
                    return Ok(Step {
                        removed: 0,
                        next: Some(Cursor {
                            after_id: blocks[end - 1].id,
                        }),
                        merged: None,
                    });
                }
                Err(e) => return Err(e),
            }
            // A run cut short by the end of a full window may go on with the blocks after it:
            // the next step starts at the merged block again.
            let cut_short = end == blocks.len() && blocks.len() as i64 == SCAN;
            let after_id = if cut_short {
                blocks[i].id - 1
            } else {
                blocks[i].id
            };
            return Ok(Step {
                removed: end - i - 1,
                next: Some(Cursor { after_id }),
                merged: Some(blocks[i].id),
            });
        }
        i = end;
    }
    // No run in this window. Adjacent mergeable blocks here did not fit together, so only the
    // last one may still merge with the block after the window: the next step starts there.
    let next = match blocks.last() {
        Some(last) if blocks.len() as i64 == SCAN => Some(Cursor {
            after_id: if mergeable(last) {
                last.id - 1
            } else {
                last.id
            },
        }),
        _ => None,
    };
    Ok(Step {
        removed: 0,
        next,
        merged: None,
    })
}

/// Groups block `id` of `table` by client (`codec::regroup`) unless it already is or is gone:
/// the step after a merge. For the query log, the grouping pass (`super::group`) may already
/// be past the merged block's id; hit blocks are grouped only here (written small, they
/// become a busy block's size when merged, and a client's hits are then a few rows among
/// thousands). A merged block left plain by a crash in between reads as any plain block.
pub fn group_merged(conn: &Connection, table: Table, id: i64) -> Result<(), StoreError> {
    let data = match block_data(conn, table, id) {
        Ok(d) => d,
        Err(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => return Ok(()),
        Err(e) => return Err(e),
    };
    if let Some(grouped) = regroup(&data)? {
        conn.prepare_cached(&format!(
            "UPDATE {} SET data = ?2 WHERE id = ?1",
            table.blocks()
        ))?
        .execute(params![id, grouped])?;
    }
    Ok(())
}

/// Re-encodes `run`'s rows, in the order written, into its first block and deletes the rest
/// (grouped by client in the next step, [`group_merged`]).
fn merge(conn: &Connection, table: Table, run: &[Meta]) -> Result<(), StoreError> {
    let t = table.blocks();
    let mut merged = BlockEncoder::default();
    for b in run {
        let data = block_data(conn, table, b.id)?;
        for (_, e) in Block::parse(&data)?.rows_as_written()? {
            merged.push(&e);
        }
    }
    let Some(s) = merged.seal() else {
        return Ok(());
    };
    super::replace(conn, table, run[0].id, &s)?;
    let mut delete = conn.prepare_cached(&format!("DELETE FROM {t} WHERE id = ?1"))?;
    for b in &run[1..] {
        delete.execute([b.id])?;
    }
    Ok(())
}

/// Runs a whole pass over both logs, one transaction per step; returns the blocks removed.
/// For tools and tests; the writer interleaves the steps with its batches.
pub fn run(conn: &Connection, settled_before_ms: i64) -> Result<usize, StoreError> {
    let mut removed = 0;
    for table in [Table::Queries, Table::Hits] {
        let mut at = Some(Cursor::START);
        while let Some(from) = at {
            let tx = conn.unchecked_transaction()?;
            let s = step(&tx, table, settled_before_ms, i64::MAX, from)?;
            tx.commit()?;
            if let Some(id) = s.merged {
                let tx = conn.unchecked_transaction()?;
                group_merged(&tx, table, id)?;
                tx.commit()?;
            }
            removed += s.removed;
            at = s.next;
        }
    }
    Ok(removed)
}
