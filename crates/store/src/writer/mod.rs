//! The store writer: one dedicated OS thread drains query events into SQLite in batches.
//!
//! rusqlite is blocking, so the writer runs on its own `std::thread`, never on a tokio
//! runtime (the DNS runtimes must not stall on fsync). The DNS path reaches it through
//! [`QueueSink`], whose `submit` never blocks (`queue`); the rest of poolguard through the
//! [`WriterHandle`] (`control`). Both send on one channel, so a flush or a shutdown comes
//! after every event submitted before it.
//!
//! Rows are written in one transaction per batch (`batch_size` rows, or whatever arrived
//! within `flush_interval_ms`), so a crash loses at most the batch in flight (`batch`,
//! `flush`). Hits that cannot be written now (SQLite failing, a flood of hits, a saturated
//! DNS worker; `pressure`) wait in the spool and are replayed in order (`backlog`).
//! `/healthz` is 503 while writes fail or anything waits in the backlog (`health`). Retention
//! pruning and block compaction also run here, hourly, one short transaction between write
//! batches, because this thread owns the only write connection (`upkeep`).
//!
//! This file is the thread itself: starting it, and the loop that gathers events into batches
//! and hands each control message to [`Writer::control`].

mod backlog;
mod batch;
mod control;
mod flush;
mod health;
mod pressure;
mod queue;
mod relearn;
mod upkeep;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

pub use self::batch::{
    Attribution, AttributionSource, insert_attributed, insert_events, insert_events_into,
};
use self::control::Control;
pub use self::control::WriterHandle;
pub use self::health::{WriterHealth, WriterStatus};
pub use self::queue::QueueSink;
use self::upkeep::UpkeepSchedule;
pub use crate::fault::StoreFault;
use crate::hook::BatchHook;
use crate::known_names::KnownNames;
use crate::shipped::ShippedWatermark;
use crate::spool::Backlog;
use crate::{Store, StoreError};
use poolguard_clients::SharedLedger;
use poolguard_config::StoreConfig;
use poolguard_record::{QueryEvent, Sink};

/// While a batch fills, the writer sleeps this long between drains of the queue rather than
/// waking per event (see `Writer::run`). Short against the flush interval (500 ms by default),
/// so it adds nothing to how long a row waits; ~100 wake-ups/s at any query rate.
const GATHER: Duration = Duration::from_millis(10);

/// What travels from the DNS path and the handle to the writer thread, in one channel so
/// control messages keep their place behind the events sent before them.
enum Msg {
    Event(QueryEvent),
    Control(Control),
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
    spawn_inner(store, cfg, ledger, tracker, ShippedWatermark::unlimited())
}

/// [`spawn`] for a node whose hits a shipper copies to a shared store (`[store] backend =
/// "postgres"`): no incident tracker here (it runs in the shipper's transaction instead), and
/// upkeep leaves the hit blocks above `shipped` alone (`crate::shipped`).
pub fn spawn_shipped(
    store: &Store,
    cfg: &StoreConfig,
    ledger: SharedLedger,
    shipped: ShippedWatermark,
) -> Result<(Arc<dyn Sink>, WriterHandle), StoreError> {
    spawn_inner(store, cfg, ledger, None, shipped)
}

fn spawn_inner(
    store: &Store,
    cfg: &StoreConfig,
    ledger: SharedLedger,
    tracker: Option<Arc<dyn BatchHook>>,
    shipped: ShippedWatermark,
) -> Result<(Arc<dyn Sink>, WriterHandle), StoreError> {
    let conn = store.write_connection()?;
    tune_writer(&conn)?;
    let backlog = backlog::open_backlog(&conn, store.path(), cfg)?;
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
    let who = AttributionSource::new(ledger);
    let mut writer = Writer {
        conn,
        cfg: cfg.clone(),
        who: who.clone(),
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
        hour_names: store.hour_names(),
        backlog_oldest_ms,
        upkeep: UpkeepSchedule::starting_now(),
        relearning: crate::relearn::Due::new(relearn::RELEARN_EVERY),
        shipped,
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
    let sink = QueueSink::new(tx.clone(), cfg, Arc::clone(&health));
    Ok((Arc::new(sink), WriterHandle::new(tx, thread, health, who)))
}

/// Page cache for the writer's connection, in KiB (SQLite's default is 2 MiB). The `queries`
/// and `hits` indexes take inserts all over their key range (names, clients); with the default
/// cache every batch re-reads and re-writes the same interior pages. 32 MiB keeps the hot
/// pages of a day's indexes resident (docs/BENCHMARKS.md).
const WRITER_CACHE_KIB: i64 = 32 * 1024;

/// WAL pages before an automatic checkpoint (SQLite's default is 1000). Checkpoints run on this
/// thread, inside a commit; fewer, larger ones copy each hot index page once instead of every
/// few batches. Bounds the WAL at about 16 MiB. (A checkpoint thread of its own was tried in
/// session 11 and not kept: docs/BENCHMARKS.md, "WAL checkpoints off the writer's thread".)
const WRITER_WAL_PAGES: i64 = 4000;

/// The writer connection's pragmas: a larger page cache, rarer checkpoints, more cached
/// statements.
fn tune_writer(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    conn.pragma_update(None, "wal_autocheckpoint", WRITER_WAL_PAGES)?;
    // The writer and the incident tracker use ~15 cached statements; rusqlite keeps 16 by
    // default, and an evicted one is parsed again on its next use.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// The writer thread's state; its jobs are split over this module's files, each an
/// `impl Writer` block.
struct Writer {
    conn: Connection,
    cfg: StoreConfig,
    /// The ledger, and who held each address when (DHCP, RADIUS) and `[incidents.exempt]`
    /// once the app plugs them in ([`WriterHandle::attribute_with`],
    /// [`WriterHandle::exempt_with`]); hits are attributed through the index before the ledger.
    who: AttributionSource,
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
    /// `pressure::SATURATION_HOLD` ago.
    saturated_until: Option<Instant>,
    /// Set while an explicit flush drains everything: no deferral.
    force_index: bool,
    /// Names `hit_names` already holds: repeated names skip their upsert.
    known: KnownNames,
    /// The unsealed hours' names, handed each committed block (`crate::hour_names`).
    hour_names: Arc<crate::hour_names::HourNames>,
    /// Query time of the oldest hit in the backlog (exact when it was empty before; after a
    /// replayed chunk, the chunk's newest, at most one chunk older than the true one).
    backlog_oldest_ms: Option<i64>,
    /// Retention and compaction, a step at a time between batches.
    upkeep: UpkeepSchedule,
    /// Late identity: which index generation was swept (`crate::relearn`).
    relearning: crate::relearn::Due,
    /// Hit blocks above it are not shipped yet: upkeep leaves them alone.
    shipped: ShippedWatermark,
}

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
    /// Gathers events into a batch until it is full or `flush_interval_ms` has passed, then
    /// flushes; answers control messages as they come ([`Writer::control`]); runs the upkeep a
    /// step at a time between batches and while idle.
    fn run(&mut self, rx: Receiver<Msg>) {
        let interval = Duration::from_millis(self.cfg.flush_interval_ms.max(1));
        // A spool left by an earlier run is replayed from the start.
        let mut deadline: Option<Instant> = (!self.backlog.is_empty()).then(Instant::now);
        loop {
            let now = Instant::now();
            self.upkeep.start_if_due(now, &self.conn);
            let wait = match deadline {
                Some(d) => d.saturating_duration_since(now),
                None => self.upkeep.idle_wait(now),
            };
            let control = match rx.recv_timeout(wait) {
                Ok(Msg::Event(e)) => {
                    self.push(e);
                    if deadline.is_none() {
                        deadline = Some(Instant::now() + interval);
                    }
                    let limit = self.batch_limit();
                    let Some(control) = self.take_waiting(&rx, limit) else {
                        self.gathered(limit, interval, &mut deadline);
                        continue;
                    };
                    control
                }
                Ok(Msg::Control(control)) => control,
                Err(RecvTimeoutError::Timeout) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        // The interval ended before a batch filled: keeping up.
                        self.backlogged = false;
                        deadline = self.flush_and_rearm(interval);
                    }
                    self.upkeep();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush_until_done();
                    return;
                }
            };
            if self.control(control, &rx, &mut deadline).is_break() {
                return;
            }
        }
    }

    /// Takes whatever else is already waiting, up to `limit` rows in the batch, without
    /// sleeping. Stops at a control message and returns it: it is answered before any event
    /// sent after it is taken.
    fn take_waiting(&mut self, rx: &Receiver<Msg>, limit: usize) -> Option<Control> {
        while self.batch.len() < limit {
            match rx.try_recv() {
                Ok(Msg::Event(e)) => self.push(e),
                Ok(Msg::Control(control)) => return Some(control),
                Err(_) => break,
            }
        }
        None
    }

    /// The batch holds what was waiting: flushed when full, else the thread naps to gather
    /// more until `deadline`.
    fn gathered(&mut self, limit: usize, interval: Duration, deadline: &mut Option<Instant>) {
        if self.batch.len() >= limit {
            // A full batch means a backlog: the next ones may be larger.
            self.backlogged = true;
            self.divert_when_flooded();
            *deadline = self.flush_and_rearm(interval);
            // Under sustained load the queue never idles; prune between batches.
            self.upkeep();
        } else if let Some(d) = *deadline {
            // Gather instead of waking per event: parked in `recv_timeout`, this thread was
            // woken (a futex wake by the DNS thread, a context switch on its core) for every
            // single event while a batch filled. Asleep here, senders find nobody to wake. At
            // most one wake-up per GATHER.
            let nap = d.saturating_duration_since(Instant::now()).min(GATHER);
            if !nap.is_zero() {
                std::thread::sleep(nap);
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

    /// Takes one event off the channel into the batch, releasing its place in the budget.
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
}
