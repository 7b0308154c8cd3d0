//! The backlog: hits that are not in SQLite yet, waiting in the spool file (then memory) to be
//! replayed.
//!
//! When a batch fails (disk full, read-only file system), its hits move to the [`Backlog`]
//! (`crate::spool`): an fsync'd append-only file next to the database, bounded by
//! `spool_max_bytes`, then memory up to `queue_capacity` hits; only past both are hits dropped
//! and counted (`poolguard_log_rows_dropped_total{table="hits"}`). Hits diverted by a flood
//! or deferred while the DNS path is saturated (`super::pressure`) take the same way.
//!
//! While anything waits in the backlog, new hits queue behind it (arrival order is what
//! incidents are built on), and each flush replays a time-boxed slice of it, one transaction
//! per chunk that also records the replay position, so new rows are never held up for long.
//! The file is removed after its last chunk commits; a leftover one is replayed at start.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};

use super::Writer;
use super::batch::write_batch;
use crate::StoreError;
use crate::spool::{Backlog, ChunkSource, Spool, spool_path};
use poolguard_config::StoreConfig;

/// Longest one flush spends replaying the backlog before it turns to new rows again.
pub(super) const REPLAY_SLICE: Duration = Duration::from_millis(100);

/// Opens the spool next to the database and resumes a replay an earlier run left off.
pub(super) fn open_backlog(
    conn: &Connection,
    db: &Path,
    cfg: &StoreConfig,
) -> Result<Backlog, StoreError> {
    let (mut spool, _report) = Spool::open(&spool_path(db), cfg.spool_max_bytes)?;
    let done: Option<(String, i64)> = conn
        .query_row(
            "SELECT spool_id, byte_offset FROM spool_replay WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((id, offset)) = done {
        spool.resume(&id, u64::try_from(offset).unwrap_or(0));
    }
    if spool.is_empty() && spool.file_bytes() > 0 {
        // Fully replayed before a crash that came ahead of the file's removal.
        spool.committed(spool.file_bytes())?;
    }
    if !spool.is_empty() {
        tracing::warn!(path = %spool.path().display(), bytes = spool.pending_bytes(), "replaying hits spooled by an earlier run");
    }
    Ok(Backlog::new(spool, cfg.queue_capacity))
}

impl Writer {
    /// Replays the backlog, oldest first, one transaction per chunk, for at most
    /// [`REPLAY_SLICE`]; false when SQLite (or the spool file) refused.
    pub(super) fn replay(&mut self) -> bool {
        let until = Instant::now() + REPLAY_SLICE;
        loop {
            let chunk = match self.backlog.next_chunk(self.cfg.batch_size) {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    self.record_failure(&e.into(), 0);
                    return false;
                }
            };
            if chunk.corrupt > 0 {
                tracing::warn!(
                    lines = chunk.corrupt,
                    "unreadable hit spool records skipped"
                );
                metrics::counter!("poolguard_store_spool_corrupt_total").increment(chunk.corrupt);
            }
            let progress = match &chunk.source {
                ChunkSource::File { id, end } => Some((id.as_str(), *end)),
                ChunkSource::Memory(_) => None,
            };
            match write_batch(
                &mut self.conn,
                &chunk.events,
                self.who.parts(),
                self.cfg.log_queries,
                self.tracker.as_deref(),
                (&mut self.known, &self.hour_names),
                progress,
            ) {
                Ok(written) => {
                    self.record_success(written);
                    self.health
                        .hits_replayed
                        .fetch_add(written.1, Ordering::Relaxed);
                    metrics::counter!("poolguard_store_replayed_total").increment(written.1);
                    if let Err(e) = self.backlog.committed(&chunk.source) {
                        tracing::warn!(error = %e, "replayed hit spool could not be removed");
                    }
                    self.backlog_oldest_ms = if self.backlog.is_empty() {
                        None
                    } else {
                        chunk.events.last().map(|e| e.time_ms)
                    };
                    self.publish_backlog();
                }
                Err(e) => {
                    self.record_failure(&e, chunk.events.len());
                    return false;
                }
            }
            if Instant::now() >= until {
                break;
            }
        }
        if self.backlog.is_empty() {
            tracing::info!("hit backlog replayed into the store");
        }
        true
    }

    /// Moves the batch's hits to the backlog (spool file, then memory); counts what is lost.
    pub(super) fn spool_hits(&mut self) {
        if !self.batch.iter().any(|e| e.outcome.is_hit()) {
            return;
        }
        let all = std::mem::replace(&mut self.batch, Vec::with_capacity(self.cfg.batch_size));
        let (hits, rest): (Vec<_>, Vec<_>) = all.into_iter().partition(|e| e.outcome.is_hit());
        self.batch.extend(rest);
        if self.backlog.is_empty() {
            self.backlog_oldest_ms = hits.iter().map(|e| e.time_ms).min();
        }
        let placed = self.backlog.push(hits);
        if self.backlog.is_empty() {
            // Nothing was placed (all dropped past the bounds).
            self.backlog_oldest_ms = None;
        }
        let spooled = placed.to_file + placed.to_memory;
        self.health
            .hits_spooled
            .fetch_add(spooled, Ordering::Relaxed);
        metrics::counter!("poolguard_store_spooled_total", "to" => "file")
            .increment(placed.to_file);
        metrics::counter!("poolguard_store_spooled_total", "to" => "memory")
            .increment(placed.to_memory);
        if placed.dropped > 0 {
            tracing::error!(
                hits = placed.dropped,
                "hit spool and memory bound are full; hits dropped"
            );
            self.count_lost_hits(placed.dropped);
        }
        self.publish_backlog();
    }

    /// Counts hits lost past the spool and memory bounds.
    pub(super) fn count_lost_hits(&self, n: u64) {
        self.health.dropped.fetch_add(n, Ordering::Relaxed);
        self.health.hits_dropped.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("poolguard_log_rows_dropped_total", "table" => "hits").increment(n);
    }

    /// Copies the backlog's size to `/healthz` and the gauges.
    pub(super) fn publish_backlog(&self) {
        self.publish_oldest();
        let bytes = self.backlog.spool().pending_bytes();
        let held = self.backlog.held();
        self.health.spool_bytes.store(bytes, Ordering::Relaxed);
        self.health.spool_held.store(held, Ordering::Relaxed);
        metrics::gauge!("poolguard_store_spool_bytes").set(bytes as f64);
        metrics::gauge!("poolguard_store_spool_held").set(held as f64);
        if let Ok(mut last) = self.health.spool_error.lock() {
            if self.backlog.is_empty() {
                *last = None;
            } else {
                last.clone_from(&self.backlog.last_error);
            }
        }
    }
}
