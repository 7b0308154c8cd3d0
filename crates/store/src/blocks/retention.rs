//! Retention: removing rows older than the cut-off, whole blocks first, then rewriting the
//! block that straddles it.

use std::time::Instant;

use rusqlite::{Connection, params};

use super::block_data;
use super::codec::{Block, BlockEncoder};
use crate::StoreError;
use crate::rows::Table;

/// Removes rows of `table` older than `cutoff_ms`: up to `max_blocks` whole blocks with ids
/// below `below_id` (`i64::MAX`: no limit; for hits, the shipped watermark, see
/// `crate::shipped`), then any block straddling the cut-off is rewritten without its old
/// rows. Stops deleting whole blocks once `deadline` has passed (after one at least): a block
/// not in the page cache costs a read of its whole overflow chain to free it, so a count alone
/// did not bound a step (at a billion rows, 16 cold blocks of each log took up to 145 ms,
/// docs/BENCHMARKS.md). Returns the rows removed and whether whole blocks remain to delete.
pub fn prune(
    conn: &Connection,
    table: Table,
    cutoff_ms: i64,
    below_id: i64,
    max_blocks: usize,
    deadline: Instant,
) -> Result<(usize, bool), StoreError> {
    let t = table.blocks();
    let old: Vec<(i64, i64)> = conn
        .prepare_cached(&format!(
            "SELECT id, rows FROM {t} WHERE last_ms < ?1 AND id < ?3 ORDER BY last_ms LIMIT ?2"
        ))?
        .query_map(params![cutoff_ms, max_blocks as i64, below_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut removed = 0usize;
    {
        let mut delete = conn.prepare_cached(&format!("DELETE FROM {t} WHERE id = ?1"))?;
        for (i, (id, rows)) in old.iter().enumerate() {
            delete.execute([id])?;
            removed += usize::try_from(*rows).unwrap_or(0);
            // At least one block per call, so every log moves on whatever the other took.
            if i + 1 < old.len() && Instant::now() >= deadline {
                return Ok((removed, true));
            }
        }
    }
    if old.len() == max_blocks {
        return Ok((removed, true));
    }
    let straddling: Vec<i64> = conn
        .prepare_cached(&format!(
            "SELECT id FROM {t} WHERE first_ms < ?1 AND last_ms >= ?1"
        ))?
        .query_map([cutoff_ms], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in straddling {
        let data = block_data(conn, table, id)?;
        let block = Block::parse(&data)?;
        let mut kept = BlockEncoder::default();
        for (_, e) in block.rows_as_written()? {
            if e.time_ms >= cutoff_ms {
                kept.push(&e);
            }
        }
        removed += (block.rows() - kept.rows()) as usize;
        // Never empty: the block's last row is at or after the cut-off.
        if let Some(b) = kept.seal() {
            conn.prepare_cached(&format!(
                "UPDATE {t} SET first_ms = ?2, last_ms = ?3, rows = ?4, counts = ?5, \
                 filter = ?6, data = ?7 WHERE id = ?1"
            ))?
            .execute(params![
                id, b.first_ms, b.last_ms, b.rows, b.counts, b.filter, b.data
            ])?;
        }
    }
    Ok((removed, false))
}
