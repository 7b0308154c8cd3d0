//! `[store]`: the query log and evidence store, and how it behaves under load and failure.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The query log and evidence store.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
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

/// The smallest useful hit spool: room for a few hundred hits (one is ~250 bytes).
pub const MIN_SPOOL_BYTES: u64 = 64 * 1024;
