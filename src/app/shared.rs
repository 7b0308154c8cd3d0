//! Wiring of `[store] backend = "postgres"`: several nodes share one PostgreSQL.
//!
//! The node keeps its own SQLite store for what DNS writes (the query log, the hit spool):
//! answering never waits for a network database. Everything the API reads and writes
//! (incidents, quarantine, audit, alerts, the group's hits) is the shared [`PgStore`]. A
//! change made through another node arrives as a notification ([`Changes`]) and the node
//! reloads its DNS path's quarantine set from the store (docs/SEVERAL-NODES.md).

use std::sync::Arc;

use poolguard_config::{Backend, Config, StoreConfig};
use poolguard_incidents::Quarantine;
use poolguard_store::{QuarantineStore, Store, StoreError};
use poolguard_store_pg::changes::{Change, Changes, RESYNC_EVERY};
use poolguard_store_pg::migrate_sqlite::{MigrateError, MigrateOptions, MigrateReport};
use poolguard_store_pg::{Connector, PgError, PgStore};
use tokio::sync::broadcast::error::RecvError;

use super::AppError;

/// The shared store of a node and the tasks that keep the node in step with it.
pub(super) struct Shared {
    pub(super) store: PgStore,
    /// Stopped (aborted) when dropped.
    changes: Changes,
    follower: tokio::task::JoinHandle<()>,
    /// Prepares the schema when the database was unreachable at start.
    preparing: Option<tokio::task::JoinHandle<()>>,
}

impl Shared {
    /// A receiver of every change the other nodes make, from now on.
    pub(super) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Stops following the other nodes' changes.
    pub(super) fn stop(&self) {
        self.follower.abort();
        if let Some(task) = &self.preparing {
            task.abort();
        }
    }
}

/// Whether this config shares a PostgreSQL store with other nodes.
pub(super) fn is_shared(config: &Config) -> bool {
    config.store.backend == Backend::Postgres
}

/// `[store]` with its files resolved against the config directory.
pub fn store_config(config: &Config) -> StoreConfig {
    let mut cfg = config.store.clone();
    cfg.path = config.resolve(&config.store.path);
    cfg.password_file = cfg.password_file.as_deref().map(|p| config.resolve(p));
    cfg.ca_file = cfg.ca_file.as_deref().map(|p| config.resolve(p));
    cfg.peer_token_file = cfg.peer_token_file.as_deref().map(|p| config.resolve(p));
    cfg
}

/// `poolguard check`'s line about the shared store (the server's and the schema's version),
/// or why it cannot be reached; None with the embedded store. Blocks on a runtime of its own.
pub fn check(config: &Config) -> Option<Result<String, poolguard_store_pg::PgError>> {
    if !is_shared(config) {
        return None;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Some(Err(poolguard_store_pg::PgError::Connect(e.to_string()))),
    };
    Some(runtime.block_on(poolguard_store_pg::check(&store_config(config))))
}

/// `poolguard store migrate`: copies the SQLite store at `from` into the PostgreSQL at `to`
/// (`crates/store-pg/src/migrate_sqlite.rs`). The connection takes `[store]` of `config` when
/// there is one (password file or variable, CA file, node name), with `password_file`
/// (`--password-file`) and `node` (`--node`) before it. The schema is made current first.
pub fn migrate_store(
    config: Option<&Config>,
    from: &std::path::Path,
    to: &str,
    password_file: Option<std::path::PathBuf>,
    node: Option<String>,
    limit: Option<u64>,
) -> Result<MigrateReport, MigrateError> {
    let mut cfg = config.map(store_config).unwrap_or_default();
    cfg.backend = Backend::Postgres;
    cfg.url = Some(to.to_string());
    if let Some(file) = password_file {
        cfg.password_file = Some(file);
        cfg.password_env = None;
    }
    if node.is_some() {
        cfg.node = node;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PgError::Connect(e.to_string()))?;
    runtime.block_on(PgStore::unconnected(&cfg)?.prepare())?;
    // The copy is blocking (the `postgres` client runs a runtime of its own): outside.
    drop(runtime);
    let options = MigrateOptions {
        node: poolguard_store_pg::node_name(&cfg),
        limit,
    };
    poolguard_store_pg::migrate_sqlite::migrate(from, &Connector::from_config(&cfg)?, &options)
}

/// Opens the shared store (migrating it under the lock), loads the quarantine list into the
/// DNS path's set and starts following the other nodes' changes.
///
/// A node starts while PostgreSQL is unreachable (DNS must answer at once; hits wait in the
/// local store): the schema is then prepared by a task that retries with backoff, and the
/// quarantine list arrives with the listener's first resync after the database is back.
pub(super) async fn open_shared(
    config: &Config,
    local: &Store,
    quarantine: Arc<Quarantine>,
) -> Result<Shared, AppError> {
    let store = PgStore::unconnected(&store_config(config))?.with_local(local.clone());
    let preparing = match store.prepare().await {
        Ok(()) => {
            tracing::info!(node = store.node(), "shared PostgreSQL store opened");
            if let Err(error) = reload_quarantine(&store, &quarantine).await {
                tracing::warn!(%error, "cannot load the shared quarantine list yet; will retry");
            }
            None
        }
        Err(error) => {
            tracing::warn!(%error, "PostgreSQL is unreachable at start: DNS answers, hits wait in the local store");
            Some(tokio::spawn(prepare_when_reachable(store.clone())))
        }
    };
    let changes = Changes::spawn(store.connector().clone(), RESYNC_EVERY);
    let follower = follow_quarantine(&changes, store.clone(), quarantine);
    Ok(Shared {
        store,
        changes,
        follower,
        preparing,
    })
}

/// Shares who held each address when with the other nodes (`identity_intervals`): this
/// node's lease files and RADIUS accounting reach every node's hits, and the group's
/// holdings (this node's own from before a restart included) reach this node's index.
pub(super) fn share_identities(
    shared: &Shared,
    index: poolguard_identity::SharedIdentities,
    config: &Config,
) -> tokio::task::JoinHandle<()> {
    let retain =
        std::time::Duration::from_secs(u64::from(config.store.hit_retention_days) * 86_400);
    poolguard_store_pg::identity::share(shared.store.clone(), index, shared.subscribe(), retain)
}

/// Retries creating the schema and registering the node, with backoff, until it works.
async fn prepare_when_reachable(store: PgStore) {
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        tokio::time::sleep(wait).await;
        match store.prepare().await {
            Ok(()) => {
                tracing::info!("PostgreSQL reachable; schema current");
                return;
            }
            Err(error) => tracing::debug!(%error, "PostgreSQL still unreachable"),
        }
        wait = (wait * 2).min(std::time::Duration::from_secs(60));
    }
}

/// Replaces the DNS path's quarantine set with the store's list.
pub async fn reload_quarantine(
    store: &dyn QuarantineStore,
    quarantine: &Quarantine,
) -> Result<(), StoreError> {
    let list = store.quarantine_list().await?;
    quarantine.replace_targets(
        list.iter()
            .filter_map(|q| poolguard_model::net::parse_target(&q.ip)),
    );
    Ok(())
}

/// Reloads the quarantine set whenever the listener says it may have changed.
fn follow_quarantine(
    changes: &Changes,
    store: PgStore,
    quarantine: Arc<Quarantine>,
) -> tokio::task::JoinHandle<()> {
    let mut rx = changes.subscribe();
    tokio::spawn(async move {
        // Ends when the listener is gone (the channel closes) or at shutdown (aborted).
        loop {
            let reload = match rx.recv().await {
                Ok(change) => change.touches_quarantine(),
                // Missed some: reload to be sure.
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return,
            };
            if !reload {
                continue;
            }
            match reload_quarantine(&store, &quarantine).await {
                Ok(()) => tracing::debug!(change = ?Change::Quarantine, "quarantine reloaded"),
                Err(error) => {
                    tracing::warn!(%error, "cannot reload the shared quarantine list; will retry")
                }
            }
        }
    })
}
