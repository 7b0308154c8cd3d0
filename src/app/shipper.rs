//! `[store] backend = "postgres"`: the local writer without the incident tracker, and the
//! shipper with it (docs/SEVERAL-NODES.md, "How hits reach PostgreSQL").
//!
//! The node's writer stores everything in local SQLite as a lone node does, so DNS never waits
//! for the network database; the shipper moves the hits to PostgreSQL and tracks incidents
//! there, for the whole group. Starting needs no PostgreSQL: a node restarted during an
//! outage answers DNS, keeps its hits locally and ships them when the database is back
//! (the schema is prepared by `super::shared::open_shared`, which retries until it can).

use std::sync::Arc;
use std::time::Duration;

use poolguard_clients::SharedLedger;
use poolguard_config::{Config, StoreConfig};
use poolguard_incidents::{Accountability, track::Tracker};
use poolguard_record::Sink;
use poolguard_record::lifecycle::AttributedHitSink;
use poolguard_store::shipped::ShipHealth;
use poolguard_store::writer::{AttributionSource, WriterHandle};
use poolguard_store::{self as store, ShippedWatermark, Store, StoreError};
use poolguard_store_pg::ship::{ShipOptions, Shipper};
use poolguard_store_pg::{Connector, node_name};

/// Longest a shutdown waits for the shipper's shipment in flight.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The shipper of a node on the PostgreSQL backend.
pub(super) struct Shipping {
    shipper: Shipper,
}

impl Shipping {
    /// For `/healthz` and `/metrics`.
    pub(super) fn health(&self) -> Arc<ShipHealth> {
        self.shipper.health()
    }

    /// Stops the shipper after its current shipment (what is left ships at the next start).
    /// Waits at most [`STOP_WAIT`]: a shipment stuck on a locked or silent database must not
    /// hold the shutdown; its transaction is rolled back with the connection.
    pub(super) async fn stop(self) {
        let shipper = self.shipper;
        let stopping = tokio::task::spawn_blocking(move || shipper.stop());
        if tokio::time::timeout(STOP_WAIT, stopping).await.is_err() {
            tracing::warn!("the hit shipper did not stop in time; its shipment is abandoned");
        }
    }
}

/// Starts the local writer for shipping (no tracker; upkeep bounded by the watermark).
/// Blocking: call it where [`store::writer::spawn_with`] is called.
pub(super) fn spawn_local_writer(
    store: &Store,
    local: &StoreConfig,
    ledger: SharedLedger,
    watermark: ShippedWatermark,
) -> Result<(Arc<dyn Sink>, WriterHandle), StoreError> {
    store::writer::spawn_shipped(store, local, ledger, watermark)
}

/// Starts the shipper with the incident tracker (and the exports' hit sink). It needs no database to start: it connects
/// (and reconnects) on its own, and the schema is prepared by `super::shared::open_shared`.
/// `attribution` is the local writer's: the shipper re-attributes this node's hits in the
/// group's database through it when a lease or login arrives late.
pub(super) async fn start_shipping(
    config: &Config,
    store: &Store,
    accountability: Arc<Accountability>,
    hit_sink: Option<Arc<dyn AttributedHitSink>>,
    watermark: ShippedWatermark,
    attribution: AttributionSource,
) -> Result<Shipping, StoreError> {
    let cfg = super::shared::store_config(config);
    let connector = Connector::from_config(&cfg)?;
    let mut tracker = Tracker::shared(accountability);
    if let Some(sink) = hit_sink {
        // Hits leave for the syslog exports once they commit in the group's database,
        // carrying the group's incident id.
        tracker = tracker.with_hit_sink(sink);
    }
    let shipper = Shipper::start(
        store,
        connector,
        node_name(&cfg),
        Some(Arc::new(tracker)),
        watermark,
        ShipOptions {
            hit_retention_days: cfg.hit_retention_days,
            attribution: Some(attribution),
            ..ShipOptions::default()
        },
    )?;
    Ok(Shipping { shipper })
}
