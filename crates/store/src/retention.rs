//! Retention: the query log is kept for days, hits (evidence) for about a year.
//!
//! Both logs are blocks (`super::blocks`): whole blocks past the cut-off are deleted a few at
//! a time, each step its own short transaction, so pruning a backlog never holds the write
//! lock long enough to stall the writer; the block straddling a cut-off is rewritten, so
//! retention stays exact to the millisecond.

use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::StoreError;
use super::blocks;
use super::rows::Table;
use poolguard_config::StoreConfig;

/// Blocks deleted per table and transaction (each holds up to a writer batch of rows).
pub const DELETE_BLOCKS: usize = 16;

/// How long a step keeps deleting whole blocks (one block of each log at least): the
/// sealer's budget (`crate::rollup::STEP_BUDGET`), so a cold day of a billion-row week is
/// deleted in more, shorter steps rather than in 16-block steps of up to 145 ms.
pub const STEP_BUDGET: Duration = crate::rollup::STEP_BUDGET;

const DAY_MS: i64 = 86_400_000;

/// How many rows a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub queries_deleted: usize,
    pub hits_deleted: usize,
}

/// The cut-off times for `now_ms`: rows strictly older are deleted.
pub fn cutoffs(cfg: &StoreConfig, now_ms: i64) -> (i64, i64) {
    (
        now_ms - i64::from(cfg.query_retention_days) * DAY_MS,
        now_ms - i64::from(cfg.hit_retention_days) * DAY_MS,
    )
}

/// One short retention step: up to `max_blocks` whole blocks of each log, within
/// [`STEP_BUDGET`] (at least one block of each), then the blocks
/// straddling each cut-off, then the first-hit record of names no longer hit within the hit
/// retention. Whole hit blocks are deleted only below `hits_below_id` (the shipped
/// watermark, `crate::shipped`; `i64::MAX` without a shipper). Returns (query rows, hit rows)
/// removed and whether whole blocks remain.
pub fn step(
    conn: &Connection,
    q_cut: i64,
    h_cut: i64,
    hits_below_id: i64,
    max_blocks: usize,
) -> Result<(usize, usize, bool), StoreError> {
    let deadline = Instant::now() + STEP_BUDGET;
    let tx = conn.unchecked_transaction()?;
    let (q, q_more) = blocks::prune(&tx, Table::Queries, q_cut, i64::MAX, max_blocks, deadline)?;
    let (h, h_more) = blocks::prune(&tx, Table::Hits, h_cut, hits_below_id, max_blocks, deadline)?;
    let r_more = super::rollup::prune(&tx, q_cut, h_cut)?;
    if !h_more {
        tx.prepare_cached("DELETE FROM hit_names WHERE last_ms < ?1")?
            .execute([h_cut])?;
    }
    tx.commit()?;
    Ok((q, h, q_more || h_more || r_more))
}

/// Deletes everything past retention, `max_blocks` blocks per table and transaction step,
/// until nothing is left.
pub fn prune(
    conn: &Connection,
    cfg: &StoreConfig,
    now_ms: i64,
    max_blocks: usize,
) -> Result<PruneReport, StoreError> {
    let (q_cut, h_cut) = cutoffs(cfg, now_ms);
    let mut report = PruneReport::default();
    loop {
        let (q, h, more) = step(conn, q_cut, h_cut, i64::MAX, max_blocks)?;
        report.queries_deleted += q;
        report.hits_deleted += h;
        if !more {
            break;
        }
    }
    if report.queries_deleted + report.hits_deleted > 0 {
        tracing::info!(
            queries = report.queries_deleted,
            hits = report.hits_deleted,
            "store retention pruned old rows"
        );
    }
    Ok(report)
}

/// Refreshes the query planner's statistics (bounded: `analysis_limit` samples rows), so a
/// broad filter such as `client=10.0.0.0/8` walks the time index instead of sorting millions of
/// rows. `0x10000` makes SQLite consider every table, not just those this connection queried
/// (the writer never reads).
pub fn optimize(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("PRAGMA analysis_limit=1000; PRAGMA optimize=0x10002;")?;
    Ok(())
}
