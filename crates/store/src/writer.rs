//! The store writer: one dedicated OS thread drains query events into SQLite in batches.
//!
//! rusqlite is blocking, so the writer runs on its own `std::thread`, never on a tokio
//! runtime (the DNS runtimes must not stall on fsync). The DNS path reaches it through
//! [`QueueSink`], whose `submit` never blocks:
//!
//! * ordinary query events take a slot in a bounded budget (`queue_capacity`); when it is
//!   exhausted the event is dropped and counted (`poolguard_log_rows_dropped_total`).
//! * hits (`Outcome::is_hit`) bypass the budget: they are evidence. They share the same
//!   unbounded lock-free channel (std `mpsc`, a crossbeam-style list channel whose `send`
//!   never blocks), so hits stay in order with the rest and cost nothing extra. Their memory
//!   is bounded by `queue_capacity` hits plus one replay slice's arrivals (below).
//!
//! The same backlog takes hits when SQLite is healthy but slower than the hit rate: once more
//! than `queue_capacity` hits wait in the channel, each full batch's hits are appended to the
//! spool instead of written as rows (see `Writer::divert_when_flooded`), so a flood of
//! blocked queries fills a bounded file, not memory.
//!
//! When a batch fails (disk full, read-only file system), its hits move to the [`Backlog`]
//! (`store::spool`): an fsync'd append-only file next to the database, bounded by
//! `spool_max_bytes`, then memory up to `queue_capacity` hits; only past both are hits dropped
//! and counted (`poolguard_log_rows_dropped_total{table="hits"}`). Ordinary rows of the failed
//! batch stay in memory for the retry and are shed past the usual budget. While anything
//! waits in the backlog, new hits queue behind it (arrival order is what incidents are built
//! on), and each flush replays a time-boxed slice of it, one transaction per chunk that also
//! records the replay position, so new rows are never held up for long. The file is removed
//! after its last chunk commits; a leftover one is replayed at start. `/healthz` is 503 while
//! writes fail or anything waits in the backlog. The DNS path never waits on any of it.
//!
//! Rows are written in one transaction per batch (`batch_size` rows, or whatever arrived
//! within `flush_interval_ms`), so a crash loses at most the batch in flight. Retention
//! pruning and block compaction also run here, hourly, one short transaction between write
//! batches, because this thread owns the only write connection.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};

use super::blocks::{self, codec::BlockEncoder, codec::Entry, compact};
pub use super::fault::StoreFault;
use super::known_names::KnownNames;
use super::read::Table;
use super::spool::{Backlog, ChunkSource, Spool, spool_path};
use super::{Store, StoreError, retention};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use crate::hook::{BatchHook, HitRow};
use poolguard_clients::{Identity, Ledger, SharedLedger};
use poolguard_config::StoreConfig;
use poolguard_record::{QueryEvent, Sink};

/// While a batch fills, the writer sleeps this long between drains of the queue rather than
/// waking per event (see `Writer::run`). Short against the flush interval (500 ms by default),
/// so it adds nothing to how long a row waits; ~100 wake-ups/s at any query rate.
const GATHER: Duration = Duration::from_millis(10);

/// How often the writer runs its upkeep (retention, then compaction), in short steps.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Blocks younger than this are not compacted: staff paging through the last minutes keep
/// stable row ids, and the newest blocks may still grow a neighbour.
const SETTLE_MS: i64 = 10 * 60 * 1000;

/// The hourly upkeep's place, one short transaction per step between batches.
#[derive(Debug, Clone, Copy)]
enum Upkeep {
    /// Deleting rows past retention.
    Retention,
    /// Merging small settled blocks of a log (`blocks::compact`).
    Compact(Table, compact::Cursor),
}

/// Longest one flush spends replaying the backlog before it turns to new rows again.
const REPLAY_SLICE: Duration = Duration::from_millis(100);

enum Msg {
    Event(QueryEvent),
    Flush(mpsc::SyncSender<()>),
    Fault(StoreFault, mpsc::SyncSender<Result<(), String>>),
    Shutdown,
}

/// Live counters of the writer, for `/healthz` and tests.
#[derive(Debug, Default)]
pub struct WriterHealth {
    running: AtomicBool,
    queries_written: AtomicU64,
    hits_written: AtomicU64,
    dropped: AtomicU64,
    consecutive_failures: AtomicU64,
    last_write_ms: AtomicI64,
    last_error: Mutex<Option<String>>,
    queued: AtomicUsize,
    spool_bytes: AtomicU64,
    spool_held: AtomicUsize,
    spool_error: Mutex<Option<String>>,
    hits_spooled: AtomicU64,
    hits_replayed: AtomicU64,
    hits_dropped: AtomicU64,
    /// Hits sent by the DNS path and not yet taken off the channel by the writer.
    hits_queued: AtomicUsize,
    blocks_compacted: AtomicU64,
    /// Ordinary events a saturated DNS worker did not send (`Sink::shed`).
    shed: AtomicU64,
    /// Set by the DNS path while a worker is saturated (`Sink::saturated`), cleared by each
    /// flush: whether to defer indexing hits (`[store] defer_hits_when_saturated`).
    dns_saturated: AtomicBool,
    /// Query time (ms) of the oldest event the writer holds that is not yet in SQLite (its
    /// batch or the backlog), 0 when none. Set by the writer thread only, never by the DNS
    /// path; read by `/metrics` as an age.
    oldest_unflushed_ms: AtomicI64,
}

/// A point-in-time copy of [`WriterHealth`], serialisable for `/healthz`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
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
            hits_dropped: self.hits_dropped.load(Ordering::Relaxed),
            hits_queued: self.hits_queued.load(Ordering::Relaxed),
            oldest_unflushed_ms: self.oldest_unflushed_ms.load(Ordering::Relaxed),
        }
    }
}

/// The [`Sink`] the DNS path's `Recorder` feeds. Never blocks.
pub struct QueueSink {
    tx: Sender<Msg>,
    capacity: usize,
    log_queries: bool,
    shed_when_saturated: bool,
    defer_hits_when_saturated: bool,
    health: Arc<WriterHealth>,
}

impl QueueSink {
    fn count_drop(&self) {
        self.health.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("poolguard_log_rows_dropped_total").increment(1);
    }
}

impl Sink for QueueSink {
    fn accepts(&self, outcome: poolguard_record::Outcome) -> bool {
        self.log_queries || outcome.is_hit()
    }

    fn may_shed(&self) -> bool {
        self.shed_when_saturated
    }

    fn saturated(&self) {
        // Read first: while the flag is already set this is a shared cache line, not a write.
        if self.defer_hits_when_saturated && !self.health.dns_saturated.load(Ordering::Relaxed) {
            self.health.dns_saturated.store(true, Ordering::Relaxed);
        }
    }

    fn shed(&self) {
        self.health.shed.fetch_add(1, Ordering::Relaxed);
        self.health.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("poolguard_log_rows_dropped_total", "reason" => "dns_saturated")
            .increment(1);
    }

    fn submit(&self, event: QueryEvent) -> bool {
        if event.outcome.is_hit() {
            self.health.hits_queued.fetch_add(1, Ordering::Relaxed);
            if self.tx.send(Msg::Event(event)).is_err() {
                // Only after shutdown: there is no writer left to take it.
                self.health.hits_queued.fetch_sub(1, Ordering::Relaxed);
                self.count_drop();
                return false;
            }
            return true;
        }
        if !self.log_queries {
            // Not wanted by configuration; not a drop.
            return true;
        }
        if self.health.queued.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.health.queued.fetch_sub(1, Ordering::Relaxed);
            self.count_drop();
            return false;
        }
        if self.tx.send(Msg::Event(event)).is_err() {
            self.health.queued.fetch_sub(1, Ordering::Relaxed);
            self.count_drop();
            return false;
        }
        true
    }
}

/// Owns the writer thread; `shutdown` writes everything queued before it returns.
pub struct WriterHandle {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    health: Arc<WriterHealth>,
}

impl WriterHandle {
    /// The writer's live counters (shared with `/healthz`).
    pub fn health(&self) -> Arc<WriterHealth> {
        Arc::clone(&self.health)
    }

    /// Waits until every event submitted before this call is committed (or failed).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        self.tx
            .send(Msg::Flush(ack_tx))
            .map_err(|_| StoreError::Worker("store writer has stopped".into()))?;
        tokio::task::spawn_blocking(move || ack_rx.recv())
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?
            .map_err(|_| StoreError::Worker("store writer has stopped".into()))
    }

    /// Applies a test fault to the writer's connection (see [`StoreFault`]).
    #[doc(hidden)]
    pub async fn inject_fault(&self, fault: StoreFault) -> Result<(), StoreError> {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        self.tx
            .send(Msg::Fault(fault, ack_tx))
            .map_err(|_| StoreError::Worker("store writer has stopped".into()))?;
        tokio::task::spawn_blocking(move || ack_rx.recv())
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?
            .map_err(|_| StoreError::Worker("store writer has stopped".into()))?
            .map_err(StoreError::Worker)
    }

    /// Stops the writer after writing every event submitted before the call.
    pub async fn shutdown(mut self) -> Result<(), StoreError> {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|e| StoreError::Worker(e.to_string()))?
                .map_err(|_| StoreError::Worker("store writer panicked".into()))?;
        }
        Ok(())
    }

    /// Blocking variant of [`WriterHandle::shutdown`] for non-async callers (tools, tests).
    pub fn shutdown_blocking(mut self) -> Result<(), StoreError> {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| StoreError::Worker("store writer panicked".into()))?;
        }
        Ok(())
    }
}

/// Starts the writer thread on `store` and returns the sink for `Recorder::new` plus the handle.
pub fn spawn(
    store: &Store,
    cfg: &StoreConfig,
    ledger: SharedLedger,
) -> Result<(Arc<dyn Sink>, WriterHandle), StoreError> {
    spawn_with(store, cfg, ledger, None)
}

/// [`spawn`] with a [`BatchHook`] (the incident tracker), which runs in the same
/// transaction as each batch's hits.
pub fn spawn_with(
    store: &Store,
    cfg: &StoreConfig,
    ledger: SharedLedger,
    tracker: Option<Arc<dyn BatchHook>>,
) -> Result<(Arc<dyn Sink>, WriterHandle), StoreError> {
    let conn = store.write_connection()?;
    tune_writer(&conn)?;
    let backlog = open_backlog(&conn, store.path(), cfg)?;
    // A spool left by an earlier run: its first record is the oldest event not in SQLite.
    let backlog_oldest_ms = match backlog.next_chunk(1) {
        Ok(Some(c)) => c.events.first().map(|e| e.time_ms),
        _ => None,
    };
    let (tx, rx) = mpsc::channel();
    let health = Arc::new(WriterHealth::default());
    health.running.store(true, Ordering::Relaxed);
    health
        .spool_bytes
        .store(backlog.spool().pending_bytes(), Ordering::Relaxed);
    let mut writer = Writer {
        conn,
        cfg: cfg.clone(),
        ledger,
        tracker,
        health: Arc::clone(&health),
        batch: Vec::with_capacity(cfg.batch_size.min(65_536)),
        backlogged: false,
        backlog,
        commits: 0,
        seen_shed: 0,
        saturated_until: None,
        force_index: false,
        known: KnownNames::default(),
        backlog_oldest_ms,
    };
    writer.publish_oldest();
    let thread = std::thread::Builder::new()
        .name("poolguard-store-writer".into())
        .spawn(move || {
            batch_scheduling();
            writer.run(rx);
            writer.health.running.store(false, Ordering::Relaxed);
        })
        .map_err(|e| StoreError::Worker(e.to_string()))?;
    let sink = QueueSink {
        tx: tx.clone(),
        capacity: cfg.queue_capacity,
        log_queries: cfg.log_queries,
        shed_when_saturated: cfg.shed_when_saturated,
        defer_hits_when_saturated: cfg.defer_hits_when_saturated,
        health: Arc::clone(&health),
    };
    Ok((
        Arc::new(sink),
        WriterHandle {
            tx,
            thread: Some(thread),
            health,
        },
    ))
}

/// Page cache for the writer's connection, in KiB (SQLite's default is 2 MiB). The `queries`
/// and `hits` indexes take inserts all over their key range (names, clients); with the default
/// cache every batch re-reads and re-writes the same interior pages. 32 MiB keeps the hot
/// pages of a day's indexes resident (docs/BENCHMARKS.md).
const WRITER_CACHE_KIB: i64 = 32 * 1024;

/// WAL pages before an automatic checkpoint (SQLite's default is 1000). Checkpoints run on this
/// thread, inside a commit; fewer, larger ones copy each hot index page once instead of every
/// few batches. Bounds the WAL at about 16 MiB.
const WRITER_WAL_PAGES: i64 = 4000;

/// Opens the spool next to the database and resumes a replay an earlier run left off.
fn open_backlog(conn: &Connection, db: &Path, cfg: &StoreConfig) -> Result<Backlog, StoreError> {
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

fn tune_writer(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    conn.pragma_update(None, "wal_autocheckpoint", WRITER_WAL_PAGES)?;
    // The writer and the incident tracker use ~15 cached statements; rusqlite keeps 16 by
    // default, and an evicted one is parsed again on its next use.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

struct Writer {
    conn: Connection,
    cfg: StoreConfig,
    ledger: SharedLedger,
    tracker: Option<Arc<dyn BatchHook>>,
    health: Arc<WriterHealth>,
    batch: Vec<QueryEvent>,
    /// The last batch filled up (the queue is deeper than a batch): see [`Writer::batch_limit`].
    backlogged: bool,
    /// Hits of failed batches waiting for SQLite (spool file, then memory).
    backlog: Backlog,
    /// Transactions committed so far (batches and replay chunks): progress for retries.
    commits: u64,
    /// `WriterHealth::shed` when the last batch was written.
    seen_shed: u64,
    /// Hits stay deferred until then: a DNS worker reported saturation less than
    /// [`SATURATION_HOLD`] ago.
    saturated_until: Option<Instant>,
    /// Set while an explicit flush drains everything: no deferral.
    force_index: bool,
    /// Names `hit_names` already holds: repeated names skip their upsert.
    known: KnownNames,
    /// Query time of the oldest hit in the backlog (exact when it was empty before; after a
    /// replayed chunk, the chunk's newest, at most one chunk older than the true one).
    backlog_oldest_ms: Option<i64>,
}

/// How long after a DNS worker last reported saturation deferred hits still wait. A worker at
/// the edge of its capacity flickers in and out of "saturated"; replaying in each gap would
/// take the shared core for up to [`REPLAY_SLICE`] at a time, deepening the very queue that
/// made it saturated. Hits are indexed once the worker has had a second of room.
const SATURATION_HOLD: Duration = Duration::from_secs(1);

/// Under a backlog a batch may be this many times `batch_size`. One transaction per 16 k rows
/// instead of 4 k writes each hot index page into the WAL a quarter as often: `writer_load`
/// mixed 154 k → 196–220 k events/s, blocked 101 k → 114–119 k (docs/BENCHMARKS.md). A crash
/// then loses at most that larger batch in flight, only while the writer is behind anyway.
const BACKLOG_BATCH_FACTOR: usize = 4;

/// Marks the calling thread as batch work for the Linux scheduler (`SCHED_BATCH`): same CPU
/// share, but its wake-ups never preempt a running thread. The writer shares cores with the
/// DNS workers; waking from its nap in the middle of a worker's receive batch made those
/// answers wait for a block write. Best effort: elsewhere, or if refused, nothing changes.
fn batch_scheduling() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "SCHED_BATCH refused");
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Writer {
    fn run(&mut self, rx: Receiver<Msg>) {
        let interval = Duration::from_millis(self.cfg.flush_interval_ms.max(1));
        // A spool left by an earlier run is replayed from the start.
        let mut deadline: Option<Instant> = (!self.backlog.is_empty()).then(Instant::now);
        let mut next_prune = Instant::now();
        let mut upkeep: Option<Upkeep> = None;
        loop {
            let now = Instant::now();
            if now >= next_prune {
                upkeep = Some(Upkeep::Retention);
                next_prune = now + PRUNE_EVERY;
                // Keeps the planner's statistics fresh so filters pick the right index.
                if let Err(e) = retention::optimize(&self.conn) {
                    tracing::debug!(error = %e, "PRAGMA optimize failed");
                }
            }
            let wait = match deadline {
                Some(d) => d.saturating_duration_since(now),
                None if upkeep.is_some() => Duration::ZERO,
                None => next_prune.saturating_duration_since(now),
            };
            match rx.recv_timeout(wait) {
                Ok(Msg::Event(e)) => {
                    self.push(e);
                    if deadline.is_none() {
                        deadline = Some(Instant::now() + interval);
                    }
                    // Take whatever else is already waiting, up to a batch, without sleeping.
                    let limit = self.batch_limit();
                    while self.batch.len() < limit {
                        match rx.try_recv() {
                            Ok(Msg::Event(e)) => self.push(e),
                            Ok(Msg::Flush(ack)) => {
                                self.flush_until_done();
                                deadline = None;
                                let _ = ack.send(());
                            }
                            Ok(Msg::Fault(fault, ack)) => {
                                let _ = ack.send(fault.apply(&self.conn));
                            }
                            Ok(Msg::Shutdown) => {
                                self.drain_and_stop(&rx);
                                return;
                            }
                            Err(_) => break,
                        }
                    }
                    if self.batch.len() >= limit {
                        // A full batch means a backlog: the next ones may be larger.
                        self.backlogged = true;
                        self.divert_when_flooded();
                        deadline = self.flush_and_rearm(interval);
                        // Under sustained load the queue never idles; prune between batches.
                        if let Some(u) = upkeep {
                            upkeep = self.upkeep_step(u);
                        }
                    } else if let Some(d) = deadline {
                        // Gather instead of waking per event: parked in `recv_timeout`, this
                        // thread was woken (a futex wake by the DNS thread, a context switch
                        // on its core) for every single event while a batch filled. Asleep
                        // here, senders find nobody to wake. At most one wake-up per GATHER.
                        let nap = d.saturating_duration_since(Instant::now()).min(GATHER);
                        if !nap.is_zero() {
                            std::thread::sleep(nap);
                        }
                    }
                }
                Ok(Msg::Flush(ack)) => {
                    self.flush_until_done();
                    deadline = None;
                    let _ = ack.send(());
                }
                Ok(Msg::Fault(fault, ack)) => {
                    let _ = ack.send(fault.apply(&self.conn));
                    if !self.backlog.is_empty() && deadline.is_none() {
                        deadline = Some(Instant::now());
                    }
                }
                Ok(Msg::Shutdown) => {
                    self.drain_and_stop(&rx);
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        // The interval ended before a batch filled: keeping up.
                        self.backlogged = false;
                        deadline = self.flush_and_rearm(interval);
                    }
                    if let Some(u) = upkeep {
                        upkeep = self.upkeep_step(u);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush_until_done();
                    return;
                }
            }
        }
    }

    /// The most rows one transaction takes now: `batch_size`, or more while behind.
    fn batch_limit(&self) -> usize {
        if self.backlogged {
            self.cfg.batch_size.saturating_mul(BACKLOG_BATCH_FACTOR)
        } else {
            self.cfg.batch_size
        }
    }

    /// Flushes; a failed batch is retried one interval later, a backlog being replayed soon.
    fn flush_and_rearm(&mut self, interval: Duration) -> Option<Instant> {
        let ok = self.flush();
        if ok && !self.backlog.is_empty() {
            // Replay is making progress: the next slice after a short gather.
            return Some(Instant::now() + GATHER);
        }
        (!self.batch.is_empty() || !self.backlog.is_empty()).then(|| Instant::now() + interval)
    }

    fn push(&mut self, e: QueryEvent) {
        if e.outcome.is_hit() {
            self.health.hits_queued.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.health.queued.fetch_sub(1, Ordering::Relaxed);
        }
        self.batch.push(e);
        if self.batch.len() == 1 {
            // Once per batch: the first event is its oldest.
            self.publish_oldest();
        }
    }

    /// Publishes the query time of the oldest event not yet in SQLite (0: none) for
    /// `poolguard_store_oldest_unflushed_seconds`. Events still in the channel are not
    /// counted; the writer takes them within [`GATHER`] unless it is inside a commit, and
    /// then the batch being committed is older.
    fn publish_oldest(&self) {
        let batch = self.batch.first().map(|e| e.time_ms);
        let oldest = match (batch, self.backlog_oldest_ms) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(0),
        };
        self.health
            .oldest_unflushed_ms
            .store(oldest, Ordering::Relaxed);
    }

    /// SQLite is healthy but slower than the hit rate (a flood of blocked queries): more than
    /// `queue_capacity` hits wait in the channel. Rather than let them pile up in memory,
    /// this batch's hits go to the backlog (a sequential append to the spool file, far
    /// cheaper than indexed rows), and the usual time-boxed replay writes them into SQLite
    /// as it catches up. Memory stays bounded by the capacity plus what arrives during one
    /// replay slice; the spool's own bounds apply as for a failing store.
    fn divert_when_flooded(&mut self) {
        if self.health.hits_queued.load(Ordering::Relaxed) > self.cfg.queue_capacity {
            metrics::counter!("poolguard_store_hit_floods_total").increment(1);
            self.spool_hits();
        }
    }

    fn drain_and_stop(&mut self, rx: &Receiver<Msg>) {
        loop {
            match rx.try_recv() {
                Ok(Msg::Event(e)) => {
                    self.push(e);
                    if self.batch.len() >= self.cfg.batch_size {
                        self.flush_for_stop();
                    }
                }
                Ok(Msg::Flush(ack)) => {
                    let _ = ack.send(());
                }
                Ok(Msg::Fault(_, ack)) => {
                    let _ = ack.send(Err("store writer is stopping".into()));
                }
                Ok(Msg::Shutdown) => {}
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if self.backlog.is_empty() {
            self.flush_until_done();
        } else {
            self.flush_for_stop();
            tracing::info!(
                spool_bytes = self.backlog.spool().pending_bytes(),
                "hits left in the spool; the next start replays them"
            );
        }
        let held = self.backlog.held();
        if held > 0 {
            // The spool file survives for the next start; memory does not.
            tracing::error!(
                hits = held,
                "store writer stopped with hits held in memory; they are lost"
            );
            self.count_lost_hits(held as u64);
        }
        tracing::info!("store writer stopped");
    }

    /// While the DNS path sheds ordinary events (a worker is saturated), the writer drops the
    /// ordinary rows it still holds too, counted, and writes only hits: rows queued before
    /// the saturation would otherwise keep it busy on the shared core, and logging must never
    /// slow an answer. Once the DNS path stops shedding, every row is written again.
    fn yield_to_dns(&mut self) {
        let shed = self.health.shed.load(Ordering::Relaxed);
        if shed == self.seen_shed {
            return;
        }
        self.seen_shed = shed;
        let before = self.batch.len();
        self.batch.retain(|e| e.outcome.is_hit());
        let dropped = (before - self.batch.len()) as u64;
        if dropped > 0 {
            self.health.dropped.fetch_add(dropped, Ordering::Relaxed);
            metrics::counter!("poolguard_log_rows_dropped_total", "reason" => "dns_saturated")
                .increment(dropped);
        }
    }

    /// At shutdown with a backlog: the batch's hits join the spool (on disk, replayed at the
    /// next start) and only its ordinary rows are written, so stopping takes one batch, not
    /// the replay of a flood's worth of hits (which outlived the 15 s a service manager
    /// gives before SIGKILL). Without a backlog this is a plain flush.
    fn flush_for_stop(&mut self) {
        if self.backlog.is_empty() {
            self.flush();
            return;
        }
        self.spool_hits();
        if !self.batch.is_empty() {
            self.write_held_batch();
        }
    }

    /// Writes the held batch in one transaction and records the outcome; false when SQLite
    /// refused it (the rows stay held).
    fn write_held_batch(&mut self) -> bool {
        match write_batch(
            &mut self.conn,
            &self.batch,
            &self.ledger,
            self.cfg.log_queries,
            self.tracker.as_deref(),
            &mut self.known,
            None,
        ) {
            Ok(written) => {
                self.batch.clear();
                self.record_success(written);
                true
            }
            Err(e) => {
                self.record_failure(&e, self.batch.len());
                false
            }
        }
    }

    /// Flushes, retrying a few times on transient errors (busy, full disk being cleaned).
    /// A replay that keeps committing is not a failed attempt: it runs to the end.
    fn flush_until_done(&mut self) {
        let mut attempt = 0u32;
        while attempt < 5 {
            let before = self.commits;
            let spooled = self.health.hits_spooled.load(Ordering::Relaxed);
            self.flush();
            // Hits deferred to the spool are progress too: the next round indexes them.
            let deferred = self.health.hits_spooled.load(Ordering::Relaxed) > spooled;
            // An explicit flush wants every hit indexed before it returns: what the first
            // round deferred is replayed by the next, saturated or not; and the hold ends
            // here, so hits after it are indexed unless a worker reports saturation again.
            self.saturated_until = None;
            self.force_index = true;
            if self.batch.is_empty() && self.backlog.is_empty() {
                self.force_index = false;
                return;
            }
            if self.commits > before || deferred {
                continue;
            }
            attempt += 1;
            std::thread::sleep(Duration::from_millis(50 * u64::from(attempt)));
        }
        self.force_index = false;
        tracing::error!(
            rows = self.batch.len(),
            spool_bytes = self.backlog.spool().pending_bytes(),
            held = self.backlog.held(),
            "store writer could not write; rows kept for the next try"
        );
    }

    /// Writes what is due: first a slice of the backlog (oldest hits), then the batch. Returns
    /// false when SQLite refused a write this time.
    fn flush(&mut self) -> bool {
        self.yield_to_dns();
        let now = Instant::now();
        if self.health.dns_saturated.swap(false, Ordering::Relaxed) {
            self.saturated_until = Some(now + SATURATION_HOLD);
        }
        let saturated = !self.force_index && self.saturated_until.is_some_and(|t| now < t);
        if defer_hits(
            saturated,
            self.backlog.spool().pending_bytes(),
            self.backlog.held(),
            &self.cfg,
        ) {
            // The worker needs the core: this batch's hits go to the spool (durable at once)
            // and are indexed by a later flush, once the worker has room.
            let before = self.health.hits_spooled.load(Ordering::Relaxed);
            self.spool_hits();
            let deferred = self.health.hits_spooled.load(Ordering::Relaxed) - before;
            metrics::counter!("poolguard_store_hits_deferred_total").increment(deferred);
        } else if !self.backlog.is_empty() {
            // New hits queue behind those already waiting, so SQLite gets them in order.
            self.spool_hits();
            if !self.replay() {
                self.shed_ordinary_rows();
                return false;
            }
        }
        if self.batch.is_empty() || self.write_held_batch() {
            return true;
        }
        self.spool_hits();
        self.shed_ordinary_rows();
        false
    }

    /// Replays the backlog, oldest first, one transaction per chunk, for at most
    /// [`REPLAY_SLICE`]; false when SQLite (or the spool file) refused.
    fn replay(&mut self) -> bool {
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
                &self.ledger,
                self.cfg.log_queries,
                self.tracker.as_deref(),
                &mut self.known,
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
    fn spool_hits(&mut self) {
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

    fn count_lost_hits(&self, n: u64) {
        self.health.dropped.fetch_add(n, Ordering::Relaxed);
        self.health.hits_dropped.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("poolguard_log_rows_dropped_total", "table" => "hits").increment(n);
    }

    /// Copies the backlog's size to `/healthz` and the gauges.
    fn publish_backlog(&self) {
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

    fn record_success(&mut self, (queries, hits): (u64, u64)) {
        self.commits += 1;
        self.health
            .queries_written
            .fetch_add(queries, Ordering::Relaxed);
        self.health.hits_written.fetch_add(hits, Ordering::Relaxed);
        self.health.consecutive_failures.store(0, Ordering::Relaxed);
        self.health.last_write_ms.store(now_ms(), Ordering::Relaxed);
        self.publish_oldest();
        metrics::counter!("poolguard_log_rows_written_total", "table" => "queries")
            .increment(queries);
        metrics::counter!("poolguard_log_rows_written_total", "table" => "hits").increment(hits);
        metrics::gauge!("poolguard_store_queue_depth")
            .set(self.health.queued.load(Ordering::Relaxed) as f64);
    }

    fn record_failure(&mut self, e: &StoreError, rows: usize) {
        // A rolled-back batch may have removed rows these remember; the store re-teaches them.
        self.known.forget();
        if let Some(t) = &self.tracker {
            t.batch_failed();
        }
        let failures = self
            .health
            .consecutive_failures
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        tracing::warn!(error = %e, rows, failures, "store batch failed; will retry");
        if let Ok(mut last) = self.health.last_error.lock() {
            *last = Some(e.to_string());
        }
        metrics::counter!("poolguard_store_write_errors_total").increment(1);
    }

    /// Ordinary rows wait in memory for the retry, up to the usual budget; past it they are
    /// dropped and counted, as when the queue is full.
    fn shed_ordinary_rows(&mut self) {
        let cap = self
            .cfg
            .batch_size
            .saturating_mul(4)
            .max(self.cfg.queue_capacity);
        if self.batch.len() > cap {
            let before = self.batch.len();
            self.batch.retain(|e| e.outcome.is_hit());
            let shed = (before - self.batch.len()) as u64;
            self.publish_oldest();
            self.health.dropped.fetch_add(shed, Ordering::Relaxed);
            metrics::counter!("poolguard_log_rows_dropped_total").increment(shed);
        }
    }

    /// One short upkeep transaction; returns what is left to do.
    fn upkeep_step(&mut self, upkeep: Upkeep) -> Option<Upkeep> {
        match upkeep {
            Upkeep::Retention => Some(if self.prune_step() {
                Upkeep::Retention
            } else {
                Upkeep::Compact(Table::Queries, compact::Cursor::START)
            }),
            Upkeep::Compact(table, from) => match self.compact_step(table, from) {
                Some(next) => Some(Upkeep::Compact(table, next)),
                None if table == Table::Queries => {
                    Some(Upkeep::Compact(Table::Hits, compact::Cursor::START))
                }
                None => None,
            },
        }
    }

    /// One compaction step of `table`; returns where the next starts, if anywhere.
    fn compact_step(&mut self, table: Table, from: compact::Cursor) -> Option<compact::Cursor> {
        let settled = now_ms() - SETTLE_MS;
        let step = (|| -> Result<compact::Step, StoreError> {
            let tx = self.conn.unchecked_transaction()?;
            let step = compact::step(&tx, table, settled, from)?;
            tx.commit()?;
            Ok(step)
        })();
        match step {
            Ok(s) => {
                if s.removed > 0 {
                    self.health
                        .blocks_compacted
                        .fetch_add(s.removed as u64, Ordering::Relaxed);
                    metrics::counter!("poolguard_store_compacted_blocks_total")
                        .increment(s.removed as u64);
                }
                s.next
            }
            Err(e) => {
                tracing::warn!(error = %e, ?table, "block compaction failed; will retry next hour");
                None
            }
        }
    }

    /// One retention batch per table; returns whether more remain.
    fn prune_step(&mut self) -> bool {
        let (q_cut, h_cut) = retention::cutoffs(&self.cfg, now_ms());
        match retention::step(&self.conn, q_cut, h_cut, retention::DELETE_BLOCKS) {
            Ok((q, h, more)) => {
                // A step may prune `hit_names`: names remembered may be gone.
                self.known.forget();
                if q + h > 0 {
                    tracing::debug!(queries = q, hits = h, "retention batch");
                    metrics::counter!("poolguard_store_pruned_rows_total")
                        .increment((q + h) as u64);
                }
                more
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention pruning failed; will retry next hour");
                false
            }
        }
    }
}

/// Whether a flush defers this batch's hits to the spool instead of indexing them now: only
/// while a DNS worker was saturated since the last flush, with a spool file that works
/// (nothing held in memory) and is less than half full, so a long flood still gets indexed
/// before the spool's bound could ever drop a hit.
fn defer_hits(saturated: bool, spool_bytes: u64, held: usize, cfg: &StoreConfig) -> bool {
    saturated
        && cfg.defer_hits_when_saturated
        && cfg.spool_max_bytes > 0
        && held == 0
        && spool_bytes < cfg.spool_max_bytes / 2
}

/// Writes one batch in one transaction; returns (query rows, hit rows) written. `replayed`
/// (spool file id, offset) is stored in the same transaction when the batch is a replay.
fn write_batch(
    conn: &mut Connection,
    batch: &[QueryEvent],
    ledger: &SharedLedger,
    log_queries: bool,
    tracker: Option<&dyn BatchHook>,
    known: &mut KnownNames,
    replayed: Option<(&str, u64)>,
) -> Result<(u64, u64), StoreError> {
    let ledger = ledger.load();
    let tx = conn.transaction()?;
    if let Some((id, end)) = replayed {
        tx.prepare_cached(
            "INSERT INTO spool_replay (id, spool_id, byte_offset) VALUES (1, ?1, ?2) \
             ON CONFLICT(id) DO UPDATE SET spool_id = excluded.spool_id, \
             byte_offset = excluded.byte_offset",
        )?
        .execute(params![id, i64::try_from(end).unwrap_or(i64::MAX)])?;
    }
    let Some(tracker) = tracker else {
        let written = insert_events_into(&tx, batch, &ledger, log_queries, None, Some(known))?;
        tx.commit()?;
        return Ok(written);
    };
    // Incident bookkeeping must never cost evidence: the whole batch's tracking runs in one
    // savepoint after the hit rows are in, and a failure there is rolled back and logged
    // while the hit rows themselves are kept. Once per batch, not per hit: grouped by client,
    // a burst of hits costs one incident lookup and update (see `Tracker::on_hits`).
    let mut hits = Vec::new();
    let written = insert_events_into(
        &tx,
        batch,
        &ledger,
        log_queries,
        Some(&mut hits),
        Some(known),
    )?;
    guarded(&tx, "incident tracking", |c| {
        tracker.on_hits(c, batch, &hits, replayed.is_some())
    })?;
    guarded(&tx, "repeat-offender check", |c| tracker.end_batch(c))?;
    tx.commit()?;
    // Only committed changes are announced and enforced.
    tracker.committed();
    Ok(written)
}

/// Runs `f` inside a savepoint; on error rolls it back, logs and counts, and carries on.
fn guarded(
    conn: &Connection,
    what: &'static str,
    f: impl FnOnce(&Connection) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    // Cached statements: `execute_batch` would parse and plan the SQL again for every hit.
    conn.prepare_cached("SAVEPOINT tracking")?.execute([])?;
    match f(conn) {
        Ok(()) => {
            conn.prepare_cached("RELEASE tracking")?.execute([])?;
        }
        Err(error) => {
            conn.execute_batch("ROLLBACK TO tracking; RELEASE tracking")?;
            metrics::counter!("poolguard_incident_errors_total").increment(1);
            tracing::warn!(%error, what, "incident bookkeeping failed; the hit is kept");
        }
    }
    Ok(())
}

/// Inserts events (query rows, and hit rows with the identity from `ledger`) inside the
/// caller's transaction; returns (query rows, hit rows). Public so bulk tools (`gen_store`)
/// write exactly the rows the writer would.
pub fn insert_events(
    conn: &Connection,
    events: &[QueryEvent],
    ledger: &Ledger,
    log_queries: bool,
) -> Result<(u64, u64), StoreError> {
    insert_events_into(conn, events, ledger, log_queries, None, None)
}

/// [`insert_events`], also listing every hit written (for the incident tracker).
///
/// The batch becomes at most two rows, a query-log block and a hit block (`super::blocks`),
/// plus one `hit_names` upsert per distinct blocked name (the first time a name was hit,
/// for the reports' "new names"), skipped for names `known` says are stored already.
pub fn insert_events_into(
    conn: &Connection,
    events: &[QueryEvent],
    ledger: &Ledger,
    log_queries: bool,
    mut hits: Option<&mut Vec<HitRow>>,
    mut known: Option<&mut KnownNames>,
) -> Result<(u64, u64), StoreError> {
    let (mut nq, mut nh) = (0u64, 0u64);
    let mut queries = BlockEncoder::default();
    let mut hit_block = BlockEncoder::default();
    // Each distinct blocked name of the batch: (first, last) time.
    let mut names: HashMap<&str, (i64, i64), foldhash::fast::FixedState> = HashMap::default();
    // Clients repeat in runs: one ledger lookup per run, not per row.
    let mut last: Option<(IpAddr, Option<Arc<Identity>>)> = None;
    for (index, e) in events.iter().enumerate() {
        let ip = e.client.ip().to_canonical();
        let identity = match &last {
            Some((seen, identity)) if *seen == ip => identity.clone(),
            _ => {
                let identity = ledger.lookup(ip);
                last = Some((ip, identity.clone()));
                identity
            }
        };
        let id = identity.as_deref();
        if log_queries {
            queries.push(&Entry::of(e, id.and_then(|i| i.department.as_deref())));
            nq += 1;
            if queries.rows() >= blocks::MAX_BLOCK_ROWS
                && let Some(sealed) = std::mem::take(&mut queries).seal()
            {
                blocks::insert(conn, Table::Queries, &sealed)?;
            }
        }
        if !e.outcome.is_hit() {
            continue;
        }
        hit_block.push(&Entry::hit(e, id));
        nh += 1;
        if hit_block.rows() >= blocks::MAX_BLOCK_ROWS
            && let Some(sealed) = std::mem::take(&mut hit_block).seal()
        {
            blocks::insert(conn, Table::Hits, &sealed)?;
        }
        names
            .entry(&e.name)
            .and_modify(|(first, last)| {
                *first = (*first).min(e.time_ms);
                *last = (*last).max(e.time_ms);
            })
            .or_insert((e.time_ms, e.time_ms));
        if let Some(hits) = hits.as_deref_mut() {
            hits.push(HitRow {
                index,
                ip,
                identity: identity.clone(),
            });
        }
    }
    if let Some(sealed) = queries.seal() {
        blocks::insert(conn, Table::Queries, &sealed)?;
    }
    if let Some(sealed) = hit_block.seal() {
        blocks::insert(conn, Table::Hits, &sealed)?;
    }
    let mut upsert = conn.prepare_cached(
        "INSERT INTO hit_names (name, first_ms, last_ms) VALUES (?1, ?2, ?3) \
         ON CONFLICT(name) DO UPDATE SET first_ms = min(first_ms, excluded.first_ms), \
         last_ms = max(last_ms, excluded.last_ms)",
    )?;
    for (name, (first, last)) in names {
        if known
            .as_deref_mut()
            .is_none_or(|k| k.should_write(name, first, last))
        {
            upsert.execute(params![name, first, last])?;
        }
    }
    Ok((nq, nh))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_are_deferred_only_while_saturated_and_the_spool_has_room() {
        let cfg = StoreConfig::default();
        let half = cfg.spool_max_bytes / 2;
        assert!(defer_hits(true, 0, 0, &cfg));
        assert!(defer_hits(true, half - 1, 0, &cfg));
        assert!(!defer_hits(false, 0, 0, &cfg), "not saturated: index now");
        assert!(!defer_hits(true, half, 0, &cfg), "half full: index now");
        assert!(
            !defer_hits(true, 0, 1, &cfg),
            "spool file failing: index now"
        );
        let off = StoreConfig {
            defer_hits_when_saturated: false,
            ..StoreConfig::default()
        };
        assert!(!defer_hits(true, 0, 0, &off));
        let no_file = StoreConfig {
            spool_max_bytes: 0,
            ..StoreConfig::default()
        };
        assert!(!defer_hits(true, 0, 0, &no_file));
    }
}
