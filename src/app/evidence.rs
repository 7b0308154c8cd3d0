//! Opening the evidence store: the store lock, the schema, quarantine restored from SQLite and
//! the writer with the incident tracker plugged in. All file I/O, so off the async threads.

use std::sync::Arc;

use poolguard_clients::SharedLedger;
use poolguard_config::Config;
use poolguard_incidents::{self as incidents, Accountability};
use poolguard_record::Recorder;
use poolguard_record::lifecycle::AttributedHitSink;
use poolguard_store::{self as store, StoreError};

use super::{AppError, Evidence};

/// Opens the store and starts its writer with the incident tracker; `hit_sink` (the syslog
/// exports, when they take hits from the store) gets every committed hit with its incident.
pub(super) async fn open_store(
    config: &Config,
    ledger: SharedLedger,
    accountability: Arc<Accountability>,
    hit_sink: Option<Arc<dyn AttributedHitSink>>,
) -> Result<(Recorder, Evidence), AppError> {
    let mut store_cfg = config.store.clone();
    store_cfg.path = config.resolve(&config.store.path);
    // Opening creates the directory and migrates the schema: file I/O, off the async threads.
    let opened = tokio::task::spawn_blocking(move || {
        // Claimed before opening: a second instance must not migrate, replay the spool or
        // track incidents on a store another process serves from.
        let lock = store::lock::StoreLock::acquire(&store_cfg.path)?;
        let store = store::open(&store_cfg)?;
        // Quarantine survives restarts: SQLite is the source of truth for the DNS path's set.
        let quarantined = incidents::db::quarantine_list(&store.write_connection()?)?;
        accountability
            .quarantine
            .replace(quarantined.iter().filter_map(|q| q.ip.parse().ok()));
        let mut tracker = incidents::track::Tracker::new(accountability);
        if let Some(sink) = hit_sink {
            tracker = tracker.with_hit_sink(sink);
        }
        let (sink, writer) =
            store::writer::spawn_with(&store, &store_cfg, ledger, Some(Arc::new(tracker)))?;
        Ok::<_, StoreError>((lock, store, sink, writer))
    })
    .await
    .map_err(|e| AppError::Reload(e.to_string()))??;
    let (lock, store, sink, writer) = opened;
    Ok((
        Recorder::new(sink),
        Evidence {
            store,
            _lock: lock,
            writer,
            tasks: Vec::new(),
            stop: tokio_util::sync::CancellationToken::new(),
            notice_addr: None,
        },
    ))
}
