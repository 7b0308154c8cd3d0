//! The PostgreSQL store that several poolguard nodes share (`[store] backend = "postgres"`).
//!
//! A campus runs two or more resolvers (DHCP hands out both), and a machine that mines through
//! both must still be one client with one incident and one hit count. With this backend every
//! node keeps answering DNS exactly as alone: its writer stores the query log and the hits in
//! the node's own SQLite store first (DNS never waits for a network database), and a shipper
//! moves the hits from there into PostgreSQL, where incident tracking runs for the whole group.
//! The API of any node reads the group's evidence and state from PostgreSQL.
//!
//! * [`connect`]: `[store]` → connections (URL, password file or variable, TLS, pool).
//! * [`schema`]: versioned migrations, applied at start under an advisory lock.
//! * The store traits (`poolguard_store::Stores`), one file per concern: [`evidence`] (hit
//!   lists, stats, a client's summary), [`incidents`] (lists, views, staff changes),
//!   [`summary`] (the bulletin), [`quarantine`], [`audit`], [`alerts`] (delivery log,
//!   deadline alerts); [`cursor`] spells the hit lists' cursors.
//! * [`changes`]: the `LISTEN poolguard_changes` task that tells a node what another changed.
//! * [`shared`]: the documents maintainers write through any node (feeds, the ledger, token
//!   revocations), stored before the node changes its files and pulled by the others.
//! * [`migrate_sqlite`]: `poolguard store migrate`, a node's SQLite evidence copied in.
//!
//! The full query log is not shared: it stays in each node's own SQLite store, and
//! `Table::Queries` is answered from the local store given to [`PgStore::with_local`] (this
//! node's log); the API gathers the group's from every node registered in `nodes`
//! ([`PgStore::peers`], `poolguard_api::group_log`).
//! * [`ship`]: the hit shipper, local SQLite → PostgreSQL, exactly once, with the incident
//!   tracker running in the same transaction ([`incident_tx`]).
//!
//! docs/SEVERAL-NODES.md describes the topology, the config of each node and the faults.

pub mod alerts;
pub mod audit;
pub mod bulletin;
pub mod changes;
pub mod connect;
pub mod cursor;
pub mod error;
pub mod evidence;
pub mod identity;
pub mod incident_tx;
pub mod incidents;
pub mod migrate_sqlite;
pub mod quarantine;
pub mod review;
mod rollups;
pub mod schema;
pub mod shared;
pub mod ship;
pub mod summary;

use deadpool_postgres::Pool;
use poolguard_config::StoreConfig;
use poolguard_store::Store;
use tokio_postgres::types::ToSql;

pub use connect::Connector;
pub use error::PgError;

/// A handle on the shared database: the pool, how to open more connections, and this node's
/// name (every row a node writes says which node it was). Cheap to clone.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: Pool,
    connector: Connector,
    node: String,
    /// This node's own SQLite store, which keeps the full query log (not shared).
    local: Option<Store>,
    /// Where the other nodes reach this node's API (`nodes.api_url`); set from `[store]
    /// api_url`, or by [`PgStore::set_api_url`] once the API is bound.
    api_url: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

/// Another node of the group, as registered in `nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its `[store] node` name.
    pub name: String,
    /// Where its API answers.
    pub api_url: String,
}

impl PgStore {
    /// Connects, applies migrations (under the lock) and registers this node.
    pub async fn open(cfg: &StoreConfig) -> Result<Self, PgError> {
        let store = Self::unconnected(cfg)?;
        store.prepare().await?;
        Ok(store)
    }

    /// The handle without touching the database (the pool connects on first use): for a node
    /// that starts while PostgreSQL is unreachable, so DNS answers at once; call
    /// [`PgStore::prepare`] until it succeeds.
    pub fn unconnected(cfg: &StoreConfig) -> Result<Self, PgError> {
        let connector = Connector::from_config(cfg)?;
        let pool = connector.pool(cfg.pool_size)?;
        Ok(Self {
            pool,
            connector,
            node: node_name(cfg),
            local: None,
            api_url: std::sync::Arc::new(std::sync::Mutex::new(cfg.api_url.clone())),
        })
    }

    /// Applies migrations (under the lock) and registers this node.
    pub async fn prepare(&self) -> Result<(), PgError> {
        let mut client = self.connector.connect().await?;
        schema::migrate(&mut client).await?;
        register(&client, &self.node, self.api_url().as_deref()).await
    }

    /// Where the other nodes reach this node's API, when known.
    pub fn api_url(&self) -> Option<String> {
        self.api_url
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Records where this node's API answers (once it is bound), unless `[store] api_url`
    /// said it already; registered now when the database answers, else at the next prepare.
    pub async fn set_api_url(&self, url: String) -> Result<(), PgError> {
        let url = {
            let mut held = self
                .api_url
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            held.get_or_insert(url).clone()
        };
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE nodes SET api_url = $2 WHERE name = $1",
                &[&self.node, &url],
            )
            .await?;
        Ok(())
    }

    /// The other nodes whose API address is known.
    pub async fn peers(&self) -> Result<Vec<Peer>, PgError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT name, api_url FROM nodes WHERE name <> $1 AND api_url IS NOT NULL ORDER BY name",
                &[&self.node],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Peer {
                    name: r.try_get(0)?,
                    api_url: r.try_get(1)?,
                })
            })
            .collect()
    }

    /// The same store answering `Table::Queries` (and the query-log figures of stats and a
    /// client's summary) from this node's own SQLite store: the full query log stays on each
    /// node (docs/SEVERAL-NODES.md). Without it those answers are empty.
    pub fn with_local(mut self, local: Store) -> Self {
        self.local = Some(local);
        self
    }

    /// The node's own store, when given.
    pub fn local(&self) -> Option<&Store> {
        self.local.as_ref()
    }

    /// One round trip to the database through the pool: `/healthz` reports the node degraded
    /// when this fails (the API cannot read or write anything without it).
    pub async fn ping(&self) -> Result<(), PgError> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// The pool the API's reads and the control plane's writes use.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// How to open a connection of one's own (the shipper, the change listener).
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }
}

/// What `poolguard check` reports: the server's version and the schema's, or why not.
pub async fn check(cfg: &StoreConfig) -> Result<String, PgError> {
    let connector = Connector::from_config(cfg)?;
    let client = connector.connect().await?;
    let server: String = client.query_one("SHOW server_version", &[]).await?.get(0);
    let schema = client
        .query_opt(
            "SELECT MAX(version) FROM poolguard_schema WHERE to_regclass('poolguard_schema') IS NOT NULL",
            &[],
        )
        .await
        .ok()
        .flatten()
        .and_then(|row| row.get::<_, Option<i64>>(0));
    let tls = if connector.uses_tls() {
        "TLS"
    } else {
        "no TLS"
    };
    Ok(match schema {
        Some(v) => format!(
            "PostgreSQL {server} ({tls}), schema {v} of {}",
            schema::SCHEMA_VERSION
        ),
        None => format!(
            "PostgreSQL {server} ({tls}), schema not created yet (the first start creates it)"
        ),
    })
}

/// Records (or refreshes) this node in `nodes`.
async fn register(
    client: &tokio_postgres::Client,
    node: &str,
    api_url: Option<&str>,
) -> Result<(), PgError> {
    let now = now_ms();
    client
        .execute(
            "INSERT INTO nodes (name, started_ms, seen_ms, version, api_url) VALUES ($1, $2, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET started_ms = $2, seen_ms = $2, version = $3,
             api_url = COALESCE($4, nodes.api_url)",
            &[&node, &now, &env!("CARGO_PKG_VERSION"), &api_url],
        )
        .await?;
    Ok(())
}

/// `[store] node`, or the host name.
pub fn node_name(cfg: &StoreConfig) -> String {
    if let Some(node) = &cfg.node {
        return node.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "poolguard".to_string())
}

/// Milliseconds since the epoch, as every stored time.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A statement's parameters, built up as filters are added.
pub(crate) type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// The parameters as tokio-postgres takes them.
pub(crate) fn refs(params: &Params) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// A page size as SQL's `LIMIT`.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl poolguard_store::Reachable for PgStore {
    async fn ping(&self) -> Result<(), poolguard_store::StoreError> {
        Ok(PgStore::ping(self).await?)
    }
}
