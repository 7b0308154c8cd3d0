//! Opening the evidence store: the store lock, the schema, quarantine restored from SQLite and
//! the writer with the incident tracker plugged in. All file I/O, so off the async threads.
//!
//! With `[store] backend = "postgres"` the node's SQLite store still takes what DNS writes
//! (the query log, the hits on their way out), but quarantine and incidents live in the
//! shared PostgreSQL (`super::shared`): the quarantine set is loaded from there, and incident
//! tracking runs in the hit shipper (`super::shipper`), not on this writer.

use std::sync::Arc;

use poolguard_clients::SharedLedger;
use poolguard_config::Config;
use poolguard_incidents::{self as incidents, Accountability};
use poolguard_record::Recorder;
use poolguard_record::lifecycle::AttributedHitSink;
use poolguard_store::{self as store, StoreError};

use super::{AppError, Evidence, shipper};
use poolguard_store::ShippedWatermark;

/// Opens the store and starts its writer with the incident tracker; `hit_sink` (the syslog
/// exports, when they take hits from the store) gets every committed hit with its incident.
pub(super) async fn open_store(
    config: &Config,
    ledger: SharedLedger,
    accountability: Arc<Accountability>,
    hit_sink: Option<Arc<dyn AttributedHitSink>>,
) -> Result<(Recorder, Evidence), AppError> {
    let store_cfg = super::shared::store_config(config);
    let quarantine = accountability.quarantine.clone();
    // `[store] backend = "postgres"`: hits ship from the local store (`super::shipper`).
    let shipped = super::shared::is_shared(config).then(ShippedWatermark::nothing_shipped);
    let watermark = shipped.clone();
    let shipping_acc = accountability.clone();
    // The tracker runs where hits commit: in the local writer, or in the shipper.
    let (local_hit_sink, shipped_hit_sink) = match &shipped {
        Some(_) => (None, hit_sink),
        None => (hit_sink, None),
    };
    // Opening creates the directory and migrates the schema: file I/O, off the async threads.
    let opened = tokio::task::spawn_blocking(move || {
        // Claimed before opening: a second instance must not migrate, replay the spool or
        // track incidents on a store another process serves from.
        let lock = store::lock::StoreLock::acquire(&store_cfg.path)?;
        let store = store::open(&store_cfg)?;
        let (sink, writer) = match &watermark {
            // With PostgreSQL the tracker runs in the shipper, on the group's database, and
            // the quarantine set is the group's (loaded by `open_shared`).
            Some(shipped) => {
                shipper::spawn_local_writer(&store, &store_cfg, ledger, shipped.clone())?
            }
            None => {
                // Quarantine survives restarts: SQLite is the source of truth for the DNS set.
                let quarantined = incidents::db::quarantine_list(&store.write_connection()?)?;
                accountability.quarantine.replace_targets(
                    quarantined
                        .iter()
                        .filter_map(|q| poolguard_model::net::parse_target(&q.ip)),
                );
                let mut tracker = incidents::track::Tracker::new(accountability);
                if let Some(sink) = local_hit_sink {
                    tracker = tracker.with_hit_sink(sink);
                }
                store::writer::spawn_with(&store, &store_cfg, ledger, Some(Arc::new(tracker)))?
            }
        };
        Ok::<_, StoreError>((lock, store, sink, writer))
    })
    .await
    .map_err(|e| AppError::Reload(e.to_string()))??;
    let (lock, store, sink, writer) = opened;
    let (shared, shipping) = match shipped {
        Some(watermark) => {
            let shared = super::shared::open_shared(config, &store, quarantine).await?;
            let shipping = shipper::start_shipping(
                config,
                &store,
                shipping_acc,
                shipped_hit_sink,
                watermark,
                writer.attribution(),
            )
            .await?;
            (Some(shared), Some(shipping))
        }
        None => (None, None),
    };
    Ok((
        Recorder::new(sink),
        Evidence {
            store,
            shared,
            _lock: lock,
            writer,
            tasks: Vec::new(),
            stop: tokio_util::sync::CancellationToken::new(),
            notice_addr: None,
            shipping,
            listings: Default::default(),
        },
    ))
}
