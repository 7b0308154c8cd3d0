//! Opening the evidence store: the store lock, the schema, quarantine restored from SQLite and
//! the writer with the incident tracker plugged in. All file I/O, so off the async threads.
//!
//! With `[store] backend = "postgres"` the node's SQLite store still takes what DNS writes
//! (the query log, the hit spool), but quarantine and incidents live in the shared
//! PostgreSQL (`super::shared`): the quarantine set is loaded from there, and incident
//! tracking runs in the shipper, not on this writer.

use std::sync::Arc;

use poolguard_clients::SharedLedger;
use poolguard_config::Config;
use poolguard_incidents::{self as incidents, Accountability};
use poolguard_record::Recorder;
use poolguard_store::{self as store, StoreError};

use super::{AppError, Evidence};

pub(super) async fn open_store(
    config: &Config,
    ledger: SharedLedger,
    accountability: Arc<Accountability>,
) -> Result<(Recorder, Evidence), AppError> {
    let store_cfg = super::shared::store_config(config);
    let shared = super::shared::is_shared(config);
    let quarantine = accountability.quarantine.clone();
    // Opening creates the directory and migrates the schema: file I/O, off the async threads.
    let opened = tokio::task::spawn_blocking(move || {
        // Claimed before opening: a second instance must not migrate, replay the spool or
        // track incidents on a store another process serves from.
        let lock = store::lock::StoreLock::acquire(&store_cfg.path)?;
        let store = store::open(&store_cfg)?;
        let tracker: Option<Arc<dyn store::hook::BatchHook>> = if shared {
            // The shipper tracks incidents in PostgreSQL for the whole group.
            None
        } else {
            // Quarantine survives restarts: SQLite is the source of truth for the DNS set.
            let quarantined = incidents::db::quarantine_list(&store.write_connection()?)?;
            accountability
                .quarantine
                .replace(quarantined.iter().filter_map(|q| q.ip.parse().ok()));
            Some(Arc::new(incidents::track::Tracker::new(accountability)))
        };
        let (sink, writer) = store::writer::spawn_with(&store, &store_cfg, ledger, tracker)?;
        Ok::<_, StoreError>((lock, store, sink, writer))
    })
    .await
    .map_err(|e| AppError::Reload(e.to_string()))??;
    let (lock, store, sink, writer) = opened;
    let shared = if shared {
        Some(super::shared::open_shared(config, &store, quarantine).await?)
    } else {
        None
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
        },
    ))
}
