//! The hit shipper: this node's hits, from its local SQLite store into PostgreSQL, exactly
//! once, with incident tracking for the whole group.
//!
//! Why a copy and not a direct write: DNS never waits for a network database. The node's
//! writer stores the query log and the hits in local SQLite exactly as a lone node does; the
//! local store is the durable buffer while PostgreSQL is away (bounded by hit retention and
//! disk). The shipper, a thread of its own with a blocking connection (the tracker's
//! [`poolguard_store::hook::IncidentTx`] is synchronous), loops:
//!
//! 1. read the local hit blocks above the watermark, in id order
//!    ([`poolguard_store::shipped::hit_blocks_after`]);
//! 2. in ONE PostgreSQL transaction, insert their rows into `hits`, upsert `hit_names`, run
//!    the incident tracker on them, and move this node's `ship_cursor` (see [`batch`]);
//! 3. after the commit, raise the [`ShippedWatermark`] the writer's upkeep reads (compaction
//!    and retention leave blocks above it alone) and let the tracker announce what changed;
//! 4. take one bounded step of late identity ([`relearn`]): this node's hits in PostgreSQL
//!    that no identity source named are looked up again when the identity index moved.
//!
//! On any error the batch is void (`batch_failed`): the shipper reconnects with backoff, reads
//! the cursor from PostgreSQL again and retries from there. It never skips a block, and since
//! the cursor commits with the hits a block is never stored twice, even when a shipper dies
//! between the commit and its acknowledgement. Its state ([`ShipHealth`]) feeds `/healthz`
//! (degraded while PostgreSQL is unreachable or hits wait longer than a minute) and the
//! `poolguard_pg_ship_*` metrics.

pub(crate) mod batch;
mod relearn;
mod upkeep;

pub use upkeep::due_before as rollups_due_before;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

pub use batch::ExitPoint;
use batch::{ShipStatements, Shipped};
use poolguard_store::hook::BatchHook;
use poolguard_store::shipped::{self, ShipHealth};
use poolguard_store::writer::AttributionSource;
use poolguard_store::{ShippedWatermark, Store, StoreError};

use crate::connect::Connector;
use crate::error::{PgError, describe};

/// Why a shipment failed; every one is retried from the cursor.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("{0}")]
    Pg(#[from] PgError),
    #[error("reading the local hits: {0}")]
    Local(#[from] StoreError),
    #[error("incident tracking: {0}")]
    Tracking(StoreError),
    #[error("the shipper was told to stop here (test)")]
    Exit,
}

impl From<postgres::Error> for ShipError {
    fn from(e: postgres::Error) -> Self {
        ShipError::Pg(PgError::Db(describe(&e)))
    }
}

/// How the shipper paces itself.
#[derive(Debug, Clone)]
pub struct ShipOptions {
    /// How often it looks for new local blocks when it has caught up.
    pub poll: Duration,
    /// Rows per transaction (whole blocks: at least one block, however large).
    pub max_rows: usize,
    /// First and longest wait before reconnecting after a failure (doubling in between).
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// `[store] hit_retention_days`: hits older than this leave PostgreSQL (0: never), in
    /// small steps while the shipper is idle (`upkeep`).
    pub hit_retention_days: u32,
    /// The node writer's attribution ([`poolguard_store::writer::WriterHandle::attribution`]):
    /// with it, this node's hits in PostgreSQL are re-attributed when a lease or login
    /// arrives late ([`relearn`]); None leaves them as shipped.
    pub attribution: Option<AttributionSource>,
    /// Tests: the first shipment stops here and the thread ends, as if killed.
    #[doc(hidden)]
    pub exit_at: Option<ExitPoint>,
}

impl Default for ShipOptions {
    fn default() -> Self {
        Self {
            // The writer flushes every 500 ms by default; a hit reaches PostgreSQL within
            // about one flush and one poll.
            poll: Duration::from_millis(200),
            // Measured: see docs/SEVERAL-NODES.md, "How hits reach PostgreSQL".
            max_rows: 20_000,
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            hit_retention_days: poolguard_config::StoreConfig::default().hit_retention_days,
            attribution: None,
            exit_at: None,
        }
    }
}

/// A running shipper. Dropping it without [`Shipper::stop`] stops it too, without waiting.
#[derive(Debug)]
pub struct Shipper {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    health: Arc<ShipHealth>,
}

impl Shipper {
    /// Starts shipping `store`'s hits as `node`. `hook` is the incident tracker (the
    /// writer then runs without one); `watermark` is shared with the writer's upkeep.
    pub fn start(
        store: &Store,
        connector: Connector,
        node: String,
        hook: Option<Arc<dyn BatchHook>>,
        watermark: ShippedWatermark,
        options: ShipOptions,
    ) -> Result<Self, PgError> {
        let local = store
            .read_connection()
            .map_err(|e| PgError::Connect(format!("local store for shipping: {e}")))?;
        let health = Arc::new(ShipHealth::default());
        health.running.store(true, Ordering::Relaxed);
        let (stop, stopped) = mpsc::channel();
        let relearning = options.attribution.clone().map(relearn::Relearning::new);
        let mut worker = Worker {
            local,
            connector,
            node,
            hook,
            watermark,
            options,
            health: Arc::clone(&health),
            stopped,
            relearning,
        };
        let thread = std::thread::Builder::new()
            .name("poolguard-pg-shipper".into())
            .spawn(move || {
                worker.run();
                worker.health.running.store(false, Ordering::Relaxed);
                worker.health.connected.store(false, Ordering::Relaxed);
                metrics::gauge!("poolguard_pg_ship_connected").set(0.0);
            })
            .map_err(|e| PgError::Connect(format!("shipper thread: {e}")))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
            health,
        })
    }

    /// The shipper's live state, for `/healthz`, `/metrics` and tests.
    pub fn health(&self) -> Arc<ShipHealth> {
        Arc::clone(&self.health)
    }

    /// Stops the thread after its current shipment and waits for it.
    pub fn stop(mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        // Closing the channel is the stop signal; the thread ends at its next wait.
        self.stop.take();
    }
}

/// The shipper thread's state.
struct Worker {
    local: Connection,
    connector: Connector,
    node: String,
    hook: Option<Arc<dyn BatchHook>>,
    watermark: ShippedWatermark,
    options: ShipOptions,
    health: Arc<ShipHealth>,
    stopped: Receiver<()>,
    /// Late identity's pass, kept across reconnections.
    relearning: Option<relearn::Relearning>,
}

/// Whether the thread should go on.
enum Next {
    Continue,
    Stop,
}

impl Worker {
    fn run(&mut self) {
        let mut backoff = self.options.min_backoff;
        loop {
            let error = match self.session() {
                Ok(()) => return,
                Err(ShipError::Exit) => return,
                Err(e) => e,
            };
            if let Some(hook) = &self.hook {
                hook.batch_failed();
            }
            self.health.connected.store(false, Ordering::Relaxed);
            let failures = self
                .health
                .consecutive_failures
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            if let Ok(mut last) = self.health.last_error.lock() {
                *last = Some(error.to_string());
            }
            metrics::counter!("poolguard_pg_ship_errors_total").increment(1);
            metrics::gauge!("poolguard_pg_ship_connected").set(0.0);
            if failures == 1 {
                tracing::warn!(%error, node = %self.node, "shipping hits to PostgreSQL failed; they wait in the local store and are retried");
            } else {
                tracing::debug!(%error, failures, "shipping hits to PostgreSQL still fails");
            }
            self.measure_lag(self.watermark.get());
            if let Next::Stop = self.wait(backoff) {
                return;
            }
            backoff = (backoff * 2).min(self.options.max_backoff);
        }
    }

    /// Waits `d` or until told to stop.
    fn wait(&self, d: Duration) -> Next {
        match self.stopped.recv_timeout(d) {
            Err(RecvTimeoutError::Timeout) => Next::Continue,
            _ => Next::Stop,
        }
    }

    /// One connection's life: connect, read the cursor, ship until told to stop (Ok) or
    /// until anything fails (Err).
    fn session(&mut self) -> Result<(), ShipError> {
        let mut client = self.connector.connect_blocking()?;
        let st = ShipStatements::prepare(&mut client)?;
        let mut after = batch::read_cursor(&mut client, &self.node)?;
        let mut upkeep = upkeep::Upkeep::new(self.options.hit_retention_days);
        self.acknowledge(after);
        self.health.connected.store(true, Ordering::Relaxed);
        metrics::gauge!("poolguard_pg_ship_connected").set(1.0);
        if self.health.consecutive_failures.load(Ordering::Relaxed) > 0 {
            tracing::info!(node = %self.node, from_block = after, "shipping hits to PostgreSQL again");
        }
        loop {
            let blocks = shipped::hit_blocks_after(&self.local, after, self.options.max_rows)?;
            if blocks.is_empty() {
                self.measure_lag(after);
                // The group database's upkeep, only while nothing waits to be shipped.
                upkeep.step(&mut client, crate::now_ms())?;
                self.relearn(&mut client, &st)?;
                if let Next::Stop = self.wait(self.options.poll) {
                    return Ok(());
                }
                continue;
            }
            let rows: usize = blocks.iter().map(|b| b.hits.len()).sum();
            // Counted before the shipment too: one waiting on a lock (another session's, a
            // slow database) must show its hits' lag in /healthz, and turn it degraded after
            // LAG_LIMIT_MS, while it waits, not only once it commits.
            self.measure_lag(after);
            let outcome = batch::ship(
                &mut client,
                &st,
                &self.node,
                after,
                &blocks,
                self.hook.as_deref(),
                self.options.exit_at,
            )?;
            match outcome {
                Shipped::Committed { through, inserted } => {
                    after = through;
                    self.acknowledge(through);
                    self.health.consecutive_failures.store(0, Ordering::Relaxed);
                    self.health
                        .hits_shipped
                        .fetch_add(rows as u64, Ordering::Relaxed);
                    self.health.batches_shipped.fetch_add(1, Ordering::Relaxed);
                    self.health
                        .last_ship_ms
                        .store(crate::now_ms(), Ordering::Relaxed);
                    metrics::counter!("poolguard_pg_ship_hits_total").increment(rows as u64);
                    if inserted < rows as u64 {
                        // The key guard caught rows PostgreSQL already had: only possible if
                        // the cursor and the hits disagree (a restored backup); say so.
                        tracing::warn!(
                            node = %self.node,
                            duplicates = rows as u64 - inserted,
                            "hits already in PostgreSQL were skipped"
                        );
                    }
                }
                Shipped::CursorMoved { at } => {
                    tracing::info!(node = %self.node, expected = after, found = at,
                        "another shipper of this node moved the cursor; resuming from it");
                    after = at;
                    self.acknowledge(at);
                }
            }
            self.measure_lag(after);
            self.relearn(&mut client, &st)?;
        }
    }

    /// One step of late identity, when the node re-attributes ([`ShipOptions::attribution`]).
    fn relearn(
        &mut self,
        client: &mut postgres::Client,
        st: &ShipStatements,
    ) -> Result<(), ShipError> {
        match &mut self.relearning {
            Some(r) => r.step(client, st, &self.local, &self.node),
            None => Ok(()),
        }
    }

    /// PostgreSQL holds every block up to `through`.
    fn acknowledge(&self, through: i64) {
        self.watermark.advance(through);
        self.health.shipped_block.store(through, Ordering::Relaxed);
    }

    /// Records what waits above `after`, for health and metrics.
    fn measure_lag(&self, after: i64) {
        match shipped::unshipped(&self.local, after) {
            Ok(u) => {
                self.health.set_unshipped(u);
                metrics::gauge!("poolguard_pg_ship_unshipped_blocks").set(u.blocks as f64);
                metrics::gauge!("poolguard_pg_ship_unshipped_hits").set(u.rows as f64);
            }
            Err(e) => tracing::debug!(error = %e, "unshipped hits not counted"),
        }
    }
}
