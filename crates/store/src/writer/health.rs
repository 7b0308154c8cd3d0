//! The writer's live counters: written, dropped, spooled, replayed, queued; what `/healthz`
//! and `/metrics` report.
//!
//! Both sides update them without locks: the DNS path counts what it queues and drops
//! (`super::queue`), the writer thread what it writes, spools and replays. [`WriterStatus`]
//! is a snapshot of them, and "healthy" means nothing is waiting outside SQLite.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

/// Live counters of the writer, for `/healthz` and tests.
#[derive(Debug, Default)]
pub struct WriterHealth {
    pub(super) running: AtomicBool,
    pub(super) queries_written: AtomicU64,
    pub(super) hits_written: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) consecutive_failures: AtomicU64,
    pub(super) last_write_ms: AtomicI64,
    pub(super) last_error: Mutex<Option<String>>,
    pub(super) queued: AtomicUsize,
    pub(super) spool_bytes: AtomicU64,
    pub(super) spool_held: AtomicUsize,
    pub(super) spool_error: Mutex<Option<String>>,
    pub(super) hits_spooled: AtomicU64,
    pub(super) hits_replayed: AtomicU64,
    pub(super) hits_dropped: AtomicU64,
    /// Hits sent by the DNS path and not yet taken off the channel by the writer.
    pub(super) hits_queued: AtomicUsize,
    pub(super) blocks_compacted: AtomicU64,
    pub(super) blocks_grouped: AtomicU64,
    /// Ordinary events a saturated DNS worker did not send (`Sink::shed`).
    pub(super) shed: AtomicU64,
    /// Set by the DNS path while a worker is saturated (`Sink::saturated`), cleared by each
    /// flush: whether to defer indexing hits (`[store] defer_hits_when_saturated`).
    pub(super) dns_saturated: AtomicBool,
    /// Query time (ms) of the oldest event the writer holds that is not yet in SQLite (its
    /// batch or the backlog), 0 when none. Set by the writer thread only, never by the DNS
    /// path; read by `/metrics` as an age.
    pub(super) oldest_unflushed_ms: AtomicI64,
}

/// A point-in-time copy of [`WriterHealth`], for `/healthz` (the api's view) and `/metrics`.
#[derive(Debug, Clone)]
pub struct WriterStatus {
    pub running: bool,
    pub healthy: bool,
    pub queries_written: u64,
    pub hits_written: u64,
    pub rows_dropped: u64,
    pub queued: usize,
    pub consecutive_failures: u64,
    /// ms since the epoch of the last successful batch, 0 if none yet.
    pub last_write_ms: i64,
    pub last_error: Option<String>,
    /// Bytes of hits in the spool file waiting to be replayed into SQLite.
    pub spool_bytes: u64,
    /// Hits held in memory because the spool file was full or unwritable.
    pub spool_held: usize,
    /// Why the spool file could not be written, while it cannot.
    pub spool_error: Option<String>,
    /// Hits that went to the backlog (file or memory) because a batch failed.
    pub hits_spooled: u64,
    /// Hits replayed from the backlog into SQLite.
    pub hits_replayed: u64,
    /// Hits lost past the spool and memory bounds.
    pub hits_dropped: u64,
    /// Hits waiting in the channel from the DNS path (before the spool).
    pub hits_queued: usize,
    /// Small log blocks merged away by the hourly compaction (`store::blocks::compact`).
    pub blocks_compacted: u64,
    /// Settled query-log blocks rewritten client by client (`store::blocks::group`).
    pub blocks_grouped: u64,
    /// Query time (ms since the epoch) of the oldest event taken by the writer and not yet
    /// committed (its batch or the backlog); 0 when everything is committed.
    pub oldest_unflushed_ms: i64,
}

impl WriterHealth {
    /// A snapshot of the counters.
    pub fn status(&self) -> WriterStatus {
        let running = self.running.load(Ordering::Relaxed);
        let failures = self.consecutive_failures.load(Ordering::Relaxed);
        let spool_bytes = self.spool_bytes.load(Ordering::Relaxed);
        let spool_held = self.spool_held.load(Ordering::Relaxed);
        WriterStatus {
            running,
            // Hits waiting outside SQLite are not yet evidence anyone can query: degraded.
            healthy: running && failures == 0 && spool_bytes == 0 && spool_held == 0,
            queries_written: self.queries_written.load(Ordering::Relaxed),
            hits_written: self.hits_written.load(Ordering::Relaxed),
            rows_dropped: self.dropped.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            consecutive_failures: failures,
            last_write_ms: self.last_write_ms.load(Ordering::Relaxed),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
            spool_bytes,
            spool_held,
            spool_error: self.spool_error.lock().ok().and_then(|e| e.clone()),
            hits_spooled: self.hits_spooled.load(Ordering::Relaxed),
            hits_replayed: self.hits_replayed.load(Ordering::Relaxed),
            blocks_compacted: self.blocks_compacted.load(Ordering::Relaxed),
            blocks_grouped: self.blocks_grouped.load(Ordering::Relaxed),
            hits_dropped: self.hits_dropped.load(Ordering::Relaxed),
            hits_queued: self.hits_queued.load(Ordering::Relaxed),
            oldest_unflushed_ms: self.oldest_unflushed_ms.load(Ordering::Relaxed),
        }
    }
}
