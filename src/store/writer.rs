//! The store writer: one dedicated OS thread drains query events into SQLite in batches.
//!
//! rusqlite is blocking, so the writer runs on its own `std::thread`, never on a tokio
//! runtime (the DNS runtimes must not stall on fsync). The DNS path reaches it through
//! [`QueueSink`], whose `submit` never blocks:
//!
//! * ordinary query events take a slot in a bounded budget (`queue_capacity`); when it is
//!   exhausted the event is dropped and counted (`poolguard_log_rows_dropped_total`).
//! * hits (`Outcome::is_hit`) bypass the budget: they are evidence and are never dropped. They
//!   share the same unbounded lock-free channel (std `mpsc`, a crossbeam-style list channel
//!   whose `send` never blocks), so hits stay in order with the rest and cost nothing extra.
//!   Their memory is bounded in practice by the blocked-query rate times one flush interval;
//!   if SQLite is failing, hits accumulate in memory (and `/healthz` turns unhealthy) rather
//!   than being thrown away.
//!
//! Rows are written in one transaction per batch (`batch_size` rows, or whatever arrived
//! within `flush_interval_ms`), so a crash loses at most the batch in flight. Retention
//! pruning also runs here, one small DELETE batch between write batches, because this thread
//! owns the only write connection.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use super::{Store, StoreError, ip_key, retention};
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::clients::{Identity, Ledger, SharedLedger};
use crate::config::StoreConfig;
use crate::incidents::track::{Pending, Tracker};
use crate::record::{QueryEvent, Sink, Transport};

/// While a batch fills, the writer sleeps this long between drains of the queue rather than
/// waking per event (see `Writer::run`). Short against the flush interval (500 ms by default),
/// so it adds nothing to how long a row waits; ~100 wake-ups/s at any query rate.
const GATHER: Duration = Duration::from_millis(10);

/// How often the writer checks retention; pruning itself is batched.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

enum Msg {
    Event(QueryEvent),
    Flush(mpsc::SyncSender<()>),
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
}

impl WriterHealth {
    /// A snapshot of the counters.
    pub fn status(&self) -> WriterStatus {
        let running = self.running.load(Ordering::Relaxed);
        let failures = self.consecutive_failures.load(Ordering::Relaxed);
        WriterStatus {
            running,
            healthy: running && failures == 0,
            queries_written: self.queries_written.load(Ordering::Relaxed),
            hits_written: self.hits_written.load(Ordering::Relaxed),
            rows_dropped: self.dropped.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            consecutive_failures: failures,
            last_write_ms: self.last_write_ms.load(Ordering::Relaxed),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}

/// The [`Sink`] the DNS path's `Recorder` feeds. Never blocks.
pub struct QueueSink {
    tx: Sender<Msg>,
    capacity: usize,
    log_queries: bool,
    health: Arc<WriterHealth>,
}

impl QueueSink {
    fn count_drop(&self) {
        self.health.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("poolguard_log_rows_dropped_total").increment(1);
    }
}

impl Sink for QueueSink {
    fn accepts(&self, outcome: crate::record::Outcome) -> bool {
        self.log_queries || outcome.is_hit()
    }

    fn submit(&self, event: QueryEvent) -> bool {
        if event.outcome.is_hit() {
            if self.tx.send(Msg::Event(event)).is_err() {
                // Only after shutdown: there is no writer left to take it.
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

/// [`spawn`] with the incident tracker, which opens and updates incidents in the same
/// transaction as each hit (see `incidents::track`).
pub fn spawn_with(
    store: &Store,
    cfg: &StoreConfig,
    ledger: SharedLedger,
    tracker: Option<Tracker>,
) -> Result<(Arc<dyn Sink>, WriterHandle), StoreError> {
    let conn = store.write_connection()?;
    tune_writer(&conn)?;
    let (tx, rx) = mpsc::channel();
    let health = Arc::new(WriterHealth::default());
    health.running.store(true, Ordering::Relaxed);
    let mut writer = Writer {
        conn,
        cfg: cfg.clone(),
        ledger,
        tracker,
        health: Arc::clone(&health),
        batch: Vec::with_capacity(cfg.batch_size.min(65_536)),
        backlogged: false,
    };
    let thread = std::thread::Builder::new()
        .name("poolguard-store-writer".into())
        .spawn(move || {
            writer.run(rx);
            writer.health.running.store(false, Ordering::Relaxed);
        })
        .map_err(|e| StoreError::Worker(e.to_string()))?;
    let sink = QueueSink {
        tx: tx.clone(),
        capacity: cfg.queue_capacity,
        log_queries: cfg.log_queries,
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
    tracker: Option<Tracker>,
    health: Arc<WriterHealth>,
    batch: Vec<QueryEvent>,
    /// The last batch filled up (the queue is deeper than a batch): see [`Writer::batch_limit`].
    backlogged: bool,
}

/// Under a backlog a batch may be this many times `batch_size`. One transaction per 16 k rows
/// instead of 4 k writes each hot index page into the WAL a quarter as often: `writer_load`
/// mixed 154 k → 196–220 k events/s, blocked 101 k → 114–119 k (docs/BENCHMARKS.md). A crash
/// then loses at most that larger batch in flight, only while the writer is behind anyway.
const BACKLOG_BATCH_FACTOR: usize = 4;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Writer {
    fn run(&mut self, rx: Receiver<Msg>) {
        let interval = Duration::from_millis(self.cfg.flush_interval_ms.max(1));
        let mut deadline: Option<Instant> = None;
        let mut next_prune = Instant::now();
        let mut pruning = false;
        loop {
            let now = Instant::now();
            if now >= next_prune {
                pruning = true;
                next_prune = now + PRUNE_EVERY;
                // Keeps the planner's statistics fresh so filters pick the right index.
                if let Err(e) = retention::optimize(&self.conn) {
                    tracing::debug!(error = %e, "PRAGMA optimize failed");
                }
            }
            let wait = match deadline {
                Some(d) => d.saturating_duration_since(now),
                None if pruning => Duration::ZERO,
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
                        deadline = self.flush_and_rearm(interval);
                        // Under sustained load the queue never idles; prune between batches.
                        if pruning {
                            pruning = self.prune_step();
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
                    if pruning {
                        pruning = self.prune_step();
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

    /// Flushes; a failed batch is retried one interval later.
    fn flush_and_rearm(&mut self, interval: Duration) -> Option<Instant> {
        self.flush();
        (!self.batch.is_empty()).then(|| Instant::now() + interval)
    }

    fn push(&mut self, e: QueryEvent) {
        if !e.outcome.is_hit() {
            self.health.queued.fetch_sub(1, Ordering::Relaxed);
        }
        self.batch.push(e);
    }

    fn drain_and_stop(&mut self, rx: &Receiver<Msg>) {
        loop {
            match rx.try_recv() {
                Ok(Msg::Event(e)) => {
                    self.push(e);
                    if self.batch.len() >= self.cfg.batch_size {
                        self.flush();
                    }
                }
                Ok(Msg::Flush(ack)) => {
                    let _ = ack.send(());
                }
                Ok(Msg::Shutdown) => {}
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        self.flush_until_done();
        tracing::info!("store writer stopped");
    }

    /// Flushes, retrying a few times on transient errors (busy, full disk being cleaned).
    fn flush_until_done(&mut self) {
        for attempt in 0..5u32 {
            self.flush();
            if self.batch.is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50 * u64::from(attempt + 1)));
        }
        tracing::error!(
            rows = self.batch.len(),
            "store writer could not write; rows kept in memory"
        );
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        match write_batch(
            &mut self.conn,
            &self.batch,
            &self.ledger,
            self.cfg.log_queries,
            self.tracker.as_ref(),
        ) {
            Ok((queries, hits)) => {
                self.batch.clear();
                self.health
                    .queries_written
                    .fetch_add(queries, Ordering::Relaxed);
                self.health.hits_written.fetch_add(hits, Ordering::Relaxed);
                self.health.consecutive_failures.store(0, Ordering::Relaxed);
                self.health.last_write_ms.store(now_ms(), Ordering::Relaxed);
                metrics::counter!("poolguard_log_rows_written_total", "table" => "queries")
                    .increment(queries);
                metrics::counter!("poolguard_log_rows_written_total", "table" => "hits")
                    .increment(hits);
                metrics::gauge!("poolguard_store_queue_depth")
                    .set(self.health.queued.load(Ordering::Relaxed) as f64);
            }
            Err(e) => {
                let failures = self
                    .health
                    .consecutive_failures
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                tracing::warn!(error = %e, rows = self.batch.len(), failures, "store batch failed; will retry");
                if let Ok(mut last) = self.health.last_error.lock() {
                    *last = Some(e.to_string());
                }
                metrics::counter!("poolguard_store_write_errors_total").increment(1);
                // Keep hits whatever happens; shed ordinary rows once the backlog is large.
                let cap = self
                    .cfg
                    .batch_size
                    .saturating_mul(4)
                    .max(self.cfg.queue_capacity);
                if self.batch.len() > cap {
                    let before = self.batch.len();
                    self.batch.retain(|e| e.outcome.is_hit());
                    let shed = (before - self.batch.len()) as u64;
                    self.health.dropped.fetch_add(shed, Ordering::Relaxed);
                    metrics::counter!("poolguard_log_rows_dropped_total").increment(shed);
                }
            }
        }
    }

    /// One retention batch per table; returns whether more remain.
    fn prune_step(&mut self) -> bool {
        let (q_cut, h_cut) = retention::cutoffs(&self.cfg, now_ms());
        let batch = retention::DELETE_BATCH;
        let q = retention::prune_batch(&self.conn, "queries", q_cut, batch);
        let h = retention::prune_batch(&self.conn, "hits", h_cut, batch);
        match (q, h) {
            (Ok(q), Ok(h)) => {
                if q + h > 0 {
                    tracing::debug!(queries = q, hits = h, "retention batch");
                    metrics::counter!("poolguard_store_pruned_rows_total")
                        .increment((q + h) as u64);
                }
                q == batch || h == batch
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "retention pruning failed; will retry next hour");
                false
            }
        }
    }
}

fn transport_str(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    }
}

/// Writes one batch in one transaction; returns (query rows, hit rows) written.
fn write_batch(
    conn: &mut Connection,
    batch: &[QueryEvent],
    ledger: &SharedLedger,
    log_queries: bool,
    tracker: Option<&Tracker>,
) -> Result<(u64, u64), StoreError> {
    let ledger = ledger.load();
    let tx = conn.transaction()?;
    let Some(tracker) = tracker else {
        let written = insert_events(&tx, batch, &ledger, log_queries)?;
        tx.commit()?;
        return Ok(written);
    };
    let mut pending = Pending::default();
    // Incident bookkeeping must never cost evidence: each hit's tracking runs in a savepoint,
    // and a failure there is rolled back and logged while the hit row itself is kept.
    let written = insert_events_with(&tx, batch, &ledger, log_queries, |c, hit, e, ip, id| {
        guarded(c, "incident tracking", |c| {
            tracker.on_hit(c, hit, e, ip, id, &mut pending)
        })
    })?;
    guarded(&tx, "repeat-offender check", |c| {
        tracker.end_batch(c, &mut pending)
    })?;
    tx.commit()?;
    // Only committed changes are announced and enforced.
    tracker.publish(pending);
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
    insert_events_with(conn, events, ledger, log_queries, |_, _, _, _, _| Ok(()))
}

/// [`insert_events`], calling `on_hit(conn, hit row id, event, client address, identity)`
/// after each hit row is inserted (the incident tracker's hook).
pub fn insert_events_with(
    conn: &Connection,
    events: &[QueryEvent],
    ledger: &Ledger,
    log_queries: bool,
    mut on_hit: impl FnMut(
        &Connection,
        i64,
        &QueryEvent,
        IpAddr,
        Option<&Identity>,
    ) -> Result<(), StoreError>,
) -> Result<(u64, u64), StoreError> {
    let (mut nq, mut nh) = (0u64, 0u64);
    // Reused for every row of the batch: no per-row String for the address or reversed name.
    let mut client = String::with_capacity(48);
    let mut rname = String::with_capacity(256);
    let mut q = conn.prepare_cached(
        "INSERT INTO queries (time_ms, client, client_bin, port, transport, name, rname, qtype, \
         action, feed, rule, rcode, answer, latency_us, upstream, department) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?;
    let mut h = conn.prepare_cached(
        "INSERT INTO hits (time_ms, client, client_bin, port, transport, name, rname, qtype, \
         action, feed, rule, rcode, answer, latency_us, upstream, department, \
         network, asset, mac, kind, location, owner, contact) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
         ?17, ?18, ?19, ?20, ?21, ?22, ?23)",
    )?;
    for e in events {
        let ip = e.client.ip().to_canonical();
        let identity = ledger.lookup(ip);
        let id = identity.as_deref();
        let department = id.and_then(|i| i.department.as_deref());
        client.clear();
        // Writing into a String cannot fail.
        let _ = write!(client, "{ip}");
        let key = ip_key(ip);
        reverse_name_into(&e.name, &mut rname);
        let common = params![
            e.time_ms,
            client.as_str(),
            &key[..],
            e.client.port(),
            transport_str(e.transport),
            &*e.name,
            rname.as_str(),
            &*e.qtype,
            e.outcome.as_str(),
            e.feed.as_deref(),
            e.rule.as_deref(),
            e.rcode,
            &*e.answer,
            e.latency_us,
            e.upstream.as_deref(),
            department,
        ];
        if log_queries {
            q.execute(common)?;
            nq += 1;
        }
        if e.outcome.is_hit() {
            let snapshot = params![
                id.and_then(|i| i.network.as_deref()),
                id.and_then(|i| i.asset.as_deref()),
                id.and_then(|i| i.mac.as_deref()),
                id.and_then(|i| i.kind.as_deref()),
                id.and_then(|i| i.location.as_deref()),
                id.and_then(|i| i.owner.as_deref()),
                id.and_then(|i| i.contact.as_deref()),
            ];
            h.execute(rusqlite::params_from_iter(
                common.iter().chain(snapshot.iter()),
            ))?;
            nh += 1;
            on_hit(conn, conn.last_insert_rowid(), e, ip, id)?;
        }
    }
    Ok((nq, nh))
}

/// [`super::reverse_name`] into a reused buffer (`x.example.com` → `com.example.x`).
fn reverse_name_into(name: &str, out: &mut String) {
    out.clear();
    for (i, label) in name.trim_end_matches('.').rsplit('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(label);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_names_match_the_readers_spelling() {
        let mut buf = String::new();
        for name in [
            "x.pool.example",
            "example.",
            "",
            "a",
            "a..b",
            "w1.pool0.minexmr.com",
        ] {
            reverse_name_into(name, &mut buf);
            assert_eq!(buf, super::super::reverse_name(name), "{name:?}");
        }
    }
}
