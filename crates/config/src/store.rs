//! `[store]`: the query log and evidence store, and how it behaves under load and failure.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The query log and evidence store.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Where evidence and incidents live: `sqlite` (one node, embedded; the default) or
    /// `postgres` (shared by every node of a group; see docs/SEVERAL-NODES.md). With
    /// `postgres`, `path` still holds this node's own query log and the hits on their way to
    /// PostgreSQL, so DNS never waits for the database.
    pub backend: Backend,
    /// The PostgreSQL URL (`postgres://user@host:5432/db?sslmode=require`) for
    /// `backend = "postgres"`. A password in it is accepted but warned about: use
    /// `password_file` or `password_env`.
    pub url: Option<String>,
    /// A file whose first line is the database password (mode 0600, owned by poolguard).
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the database password.
    pub password_env: Option<String>,
    /// PEM CA certificates trusted for the database's TLS certificate; absent = the system's.
    pub ca_file: Option<PathBuf>,
    /// Connections the API's reads may hold open at once.
    pub pool_size: usize,
    /// This node's name in a group: every stored row says which node answered it. Absent =
    /// the host name.
    pub node: Option<String>,
    /// Where the other nodes of a group reach this node's API (`http://10.0.0.5:8080`), to
    /// gather its query log for a group-wide `GET /api/v1/queries`. Absent = `http://` and
    /// the address `[api] listen` bound, unless that is a wildcard (then the node's log is
    /// not gathered by the others).
    pub api_url: Option<String>,
    /// A file whose first line is the node-to-node token this node presents when it gathers
    /// the other nodes' query logs (a `viewer` token in every node's `[[api.tokens]]`).
    pub peer_token_file: Option<PathBuf>,
    /// An environment variable holding the node-to-node token.
    pub peer_token_env: Option<String>,
    pub path: PathBuf,
    /// Record every query, not only hits.
    pub log_queries: bool,
    pub query_retention_days: u32,
    pub hit_retention_days: u32,
    /// Rows per write transaction, at most.
    pub batch_size: usize,
    /// A partial batch is written after this long; bounds what a crash can lose.
    pub flush_interval_ms: u64,
    /// Query events buffered in memory before ordinary rows are dropped. Also the number of
    /// hits held in memory when SQLite and the spool file both fail (`store::spool`).
    pub queue_capacity: usize,
    /// Most bytes the hit spool (`<path>.spool`) may take while SQLite cannot be written
    /// (disk full, read-only): hits go there and are replayed when writes succeed again.
    /// 0 = no spool file (hits are then held in memory only, up to `queue_capacity`).
    pub spool_max_bytes: u64,
    /// While a DNS worker is saturated (its socket queue stays deep), ordinary query rows are
    /// shed (counted) so logging never costs answers; hits are always kept. `false` keeps
    /// every row, and answers slow down instead when the server is at capacity.
    pub shed_when_saturated: bool,
    /// While a DNS worker is saturated, hits are appended to the spool file (durable at once)
    /// instead of being indexed into SQLite on the worker's core, and are indexed as soon as
    /// the worker has room again, or earlier once the spool is half full. `false` indexes
    /// every hit immediately and lets answers slow down at capacity instead.
    pub defer_hits_when_saturated: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Sqlite,
            url: None,
            password_file: None,
            password_env: None,
            ca_file: None,
            pool_size: 8,
            node: None,
            api_url: None,
            peer_token_file: None,
            peer_token_env: None,
            path: PathBuf::from("data/poolguard.db"),
            log_queries: true,
            query_retention_days: 7,
            hit_retention_days: 400,
            batch_size: 4096,
            flush_interval_ms: 500,
            queue_capacity: 65_536,
            spool_max_bytes: 1024 * 1024 * 1024,
            shed_when_saturated: true,
            defer_hits_when_saturated: true,
        }
    }
}

/// Which store backend a node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded SQLite at `[store] path`: one node, nothing to run beside it.
    #[default]
    Sqlite,
    /// A PostgreSQL database several nodes share.
    Postgres,
}

/// A file a key names must be there (`resolve` turns it into the path read).
fn exists_at(
    key: &str,
    file: Option<&std::path::Path>,
    resolve: &dyn Fn(&std::path::Path) -> PathBuf,
) -> Result<(), (String, String)> {
    match file.map(resolve) {
        Some(path) if !path.is_file() => {
            Err((key.into(), format!("{} does not exist", path.display())))
        }
        _ => Ok(()),
    }
}

/// The smallest useful hit spool: room for a few hundred hits (one is ~250 bytes).
pub const MIN_SPOOL_BYTES: u64 = 64 * 1024;

/// Checks `[store]` as a whole: the keys a backend needs are present and the others are not
/// silently ignored. Returns the key path and the reason, as every section's check does.
pub(crate) fn validate(
    store: &StoreConfig,
    resolve: &dyn Fn(&std::path::Path) -> PathBuf,
) -> Result<(), (String, String)> {
    let pg_only = [
        ("store.url", store.url.is_some()),
        ("store.password_file", store.password_file.is_some()),
        ("store.password_env", store.password_env.is_some()),
        ("store.ca_file", store.ca_file.is_some()),
        ("store.api_url", store.api_url.is_some()),
        ("store.peer_token_file", store.peer_token_file.is_some()),
        ("store.peer_token_env", store.peer_token_env.is_some()),
    ];
    match store.backend {
        Backend::Sqlite => {
            if let Some((key, _)) = pg_only.iter().find(|(_, set)| *set) {
                return Err((
                    (*key).into(),
                    "only used with store.backend = \"postgres\"".into(),
                ));
            }
        }
        Backend::Postgres => {
            let exists = |key: &str, file: Option<&std::path::Path>| exists_at(key, file, resolve);
            let Some(url) = &store.url else {
                return Err((
                    "store.url".into(),
                    "required with store.backend = \"postgres\" (postgres://user@host/db)".into(),
                ));
            };
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err((
                    "store.url".into(),
                    "must start with postgres:// or postgresql://".into(),
                ));
            }
            if store.password_file.is_some() && store.password_env.is_some() {
                return Err((
                    "store.password_file / store.password_env".into(),
                    "give one of them, not both".into(),
                ));
            }
            exists("store.password_file", store.password_file.as_deref())?;
            exists("store.ca_file", store.ca_file.as_deref())?;
            if let Some(u) = &store.api_url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                return Err((
                    "store.api_url".into(),
                    "must start with http:// or https://".into(),
                ));
            }
            if store.peer_token_file.is_some() && store.peer_token_env.is_some() {
                return Err((
                    "store.peer_token_file / store.peer_token_env".into(),
                    "give one of them, not both".into(),
                ));
            }
            exists("store.peer_token_file", store.peer_token_file.as_deref())?;
            if store.pool_size == 0 {
                return Err(("store.pool_size".into(), "must be above 0".into()));
            }
        }
    }
    if let Some(node) = &store.node
        && (node.is_empty()
            || node.len() > 64
            || !node
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'))
    {
        return Err((
            "store.node".into(),
            "1 to 64 characters of letters, digits, '-', '_' or '.'".into(),
        ));
    }
    Ok(())
}
