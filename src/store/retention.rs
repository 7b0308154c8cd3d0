//! Retention: the query log is kept for days, hits (evidence) for about a year.
//!
//! Old rows are deleted in small batches, each its own short transaction, so pruning a backlog
//! of millions of rows never holds the write lock long enough to stall the writer (one huge
//! DELETE would block inserts for seconds and balloon the WAL).

use rusqlite::Connection;

use super::StoreError;
use crate::config::StoreConfig;

/// Rows per DELETE transaction.
pub const DELETE_BATCH: usize = 5_000;

/// Query-log blocks deleted per transaction (each holds up to a writer batch of rows).
pub const DELETE_BLOCKS: usize = 16;

const DAY_MS: i64 = 86_400_000;

/// How many rows a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub queries_deleted: usize,
    pub hits_deleted: usize,
}

/// Deletes one batch of rows older than `cutoff_ms` from `table`; returns how many.
pub fn prune_batch(
    conn: &Connection,
    table: &str,
    cutoff_ms: i64,
    batch: usize,
) -> Result<usize, StoreError> {
    let sql = format!(
        "DELETE FROM {table} WHERE id IN \
         (SELECT id FROM {table} WHERE time_ms < ?1 ORDER BY time_ms LIMIT ?2)"
    );
    Ok(conn.execute(&sql, rusqlite::params![cutoff_ms, batch as i64])?)
}

/// The cut-off times for `now_ms`: rows strictly older are deleted.
pub fn cutoffs(cfg: &StoreConfig, now_ms: i64) -> (i64, i64) {
    (
        now_ms - i64::from(cfg.query_retention_days) * DAY_MS,
        now_ms - i64::from(cfg.hit_retention_days) * DAY_MS,
    )
}

/// Deletes everything past retention, `batch` rows per transaction, until nothing is left.
pub fn prune(
    conn: &Connection,
    cfg: &StoreConfig,
    now_ms: i64,
    batch: usize,
) -> Result<PruneReport, StoreError> {
    let (q_cut, h_cut) = cutoffs(cfg, now_ms);
    let mut report = PruneReport::default();
    loop {
        let (n, more) = super::blocks::prune(conn, q_cut, DELETE_BLOCKS)?;
        report.queries_deleted += n;
        if !more {
            break;
        }
    }
    loop {
        let n = prune_batch(conn, "hits", h_cut, batch)?;
        report.hits_deleted += n;
        if n < batch {
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
