//! Views of store and model types: counts, audit entries, notes, quarantine, alert
//! deliveries, deadline states and the store writer's health.

use poolguard_store::incidents as db;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A value and how often it occurred, for "top" tables (read back from other nodes too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Count {
    pub value: String,
    pub count: i64,
}

impl From<poolguard_store::Count> for Count {
    fn from(c: poolguard_store::Count) -> Self {
        Self {
            value: c.value,
            count: c.count,
        }
    }
}

/// One audited write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Assigned by the store; 0 before insertion.
    pub id: i64,
    pub time_ms: i64,
    /// The token name of the caller (`alice`), or `system` for poolguard itself.
    pub actor: String,
    pub role: String,
    /// What was done: `feed.upload`, `feed.patch`, `feed.restore`, `ledger.replace`, …
    pub action: String,
    /// What it was done to: a feed name, `ledger`, `incident/42`.
    pub target: String,
    pub before_hash: Option<String>,
    pub after_hash: Option<String>,
    /// Short human-readable detail (counts, the new status).
    pub detail: String,
}

impl From<poolguard_store::audit::AuditEntry> for AuditEntry {
    fn from(a: poolguard_store::audit::AuditEntry) -> Self {
        Self {
            id: a.id,
            time_ms: a.time_ms,
            actor: a.actor,
            role: a.role,
            action: a.action,
            target: a.target,
            before_hash: a.before_hash,
            after_hash: a.after_hash,
            detail: a.detail,
        }
    }
}

/// A note on an incident (append-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Note {
    pub id: i64,
    /// RFC 3339.
    pub time: String,
    /// Token name of the author, or `system`.
    pub author: String,
    pub text: String,
}

impl From<db::Note> for Note {
    fn from(n: db::Note) -> Self {
        Self {
            id: n.id,
            time: n.time,
            author: n.author,
            text: n.text,
        }
    }
}

/// One quarantined address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuarantineEntry {
    pub ip: String,
    /// RFC 3339.
    pub since: String,
    /// `system` (threshold) or the token name.
    pub actor: String,
    pub reason: String,
    pub incident_id: Option<i64>,
    /// Addresses the quarantined device or login holds now besides `ip` (it renewed to a
    /// new lease, or logged in elsewhere): quarantined too, released with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub following: Vec<String>,
}

impl From<db::QuarantineEntry> for QuarantineEntry {
    fn from(q: db::QuarantineEntry) -> Self {
        Self {
            ip: q.ip,
            since: q.since,
            actor: q.actor,
            reason: q.reason,
            incident_id: q.incident_id,
            following: Vec::new(),
        }
    }
}

/// One attempt to deliver an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Delivery {
    pub id: i64,
    /// RFC 3339.
    pub time: String,
    pub event: String,
    /// Webhook URL or `syslog://host:port`.
    pub target: String,
    /// 1 for the first try.
    pub attempt: u32,
    /// HTTP status, when one came back.
    pub status: Option<u16>,
    pub ok: bool,
    pub error: Option<String>,
    pub incident_id: Option<i64>,
}

impl From<db::Delivery> for Delivery {
    fn from(d: db::Delivery) -> Self {
        Self {
            id: d.id,
            time: d.time,
            event: d.event,
            target: d.target,
            attempt: d.attempt,
            status: d.status,
            ok: d.ok,
            error: d.error,
            incident_id: d.incident_id,
        }
    }
}

/// Where one deadline stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineState {
    /// Not done, not closed, not yet due.
    Pending,
    /// Done by the due time.
    Met,
    /// Done late, closed late without it, or due and still not done.
    Missed,
    /// Closed before it was due, without the step: nothing was owed.
    NotNeeded,
}

impl From<poolguard_model::deadline::DeadlineState> for DeadlineState {
    fn from(s: poolguard_model::deadline::DeadlineState) -> Self {
        use poolguard_model::deadline::DeadlineState as D;
        match s {
            D::Pending => Self::Pending,
            D::Met => Self::Met,
            D::Missed => Self::Missed,
            D::NotNeeded => Self::NotNeeded,
        }
    }
}

/// The hit shipper's state (`[store] backend = "postgres"`), serialisable for `/healthz`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShipStatus {
    pub running: bool,
    /// It holds a working connection to PostgreSQL.
    pub connected: bool,
    /// Connected, no failure since the last commit, and no hit waiting over a minute.
    pub healthy: bool,
    pub consecutive_failures: u64,
    /// The last failure (kept after recovery).
    pub last_error: Option<String>,
    /// Hits committed to PostgreSQL since start.
    pub hits_shipped: u64,
    /// The last local hit block PostgreSQL holds.
    pub shipped_block: i64,
    /// ms since the epoch of the last commit, 0 if none yet.
    pub last_ship_ms: i64,
    /// Local hit blocks and hits not yet in PostgreSQL.
    pub unshipped_blocks: i64,
    pub unshipped_hits: i64,
    /// Seconds since the oldest unshipped hit was recorded; 0 when none waits.
    pub lag_seconds: f64,
}

impl ShipStatus {
    /// The view of `s`, its lag judged at `now_ms`.
    pub fn from_status(s: poolguard_store::ShipStatus, now_ms: i64) -> Self {
        Self {
            running: s.running,
            connected: s.connected,
            healthy: s.healthy,
            consecutive_failures: s.consecutive_failures,
            last_error: s.last_error,
            hits_shipped: s.hits_shipped,
            shipped_block: s.shipped_block,
            last_ship_ms: s.last_ship_ms,
            unshipped_blocks: s.unshipped_blocks,
            unshipped_hits: s.unshipped_rows,
            lag_seconds: ship_lag_seconds(s.oldest_unshipped_ms, now_ms),
        }
    }
}

/// Seconds since `oldest_ms` (0: nothing waits).
pub fn ship_lag_seconds(oldest_ms: i64, now_ms: i64) -> f64 {
    if oldest_ms == 0 {
        0.0
    } else {
        (now_ms - oldest_ms).max(0) as f64 / 1000.0
    }
}

/// A point-in-time copy of [`WriterHealth`], serialisable for `/healthz`.
#[derive(Debug, Clone, Serialize, ToSchema)]
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
    /// Bytes of hits in the spool file waiting to be replayed into SQLite.
    pub spool_bytes: u64,
    /// Hits held in memory because the spool file was full or unwritable.
    pub spool_held: usize,
    /// Why the spool file could not be written, while it cannot.
    pub spool_error: Option<String>,
    /// Hits that went to the backlog (file or memory) because a batch failed.
    pub hits_spooled: u64,
    /// Hits replayed from the backlog into SQLite.
    pub hits_replayed: u64,
    /// Hits lost past the spool and memory bounds.
    pub hits_dropped: u64,
    /// Hits waiting in the channel from the DNS path (before the spool).
    pub hits_queued: usize,
    /// Small log blocks merged away by the hourly compaction (`store::blocks::compact`).
    pub blocks_compacted: u64,
    /// Settled query-log blocks rewritten client by client (`store::blocks::group`).
    pub blocks_grouped: u64,
    /// Query time (ms since the epoch) of the oldest event taken by the writer and not yet
    /// committed (its batch or the backlog); 0 when everything is committed.
    pub oldest_unflushed_ms: i64,
}

impl From<poolguard_store::writer::WriterStatus> for WriterStatus {
    fn from(w: poolguard_store::writer::WriterStatus) -> Self {
        Self {
            running: w.running,
            healthy: w.healthy,
            queries_written: w.queries_written,
            hits_written: w.hits_written,
            rows_dropped: w.rows_dropped,
            queued: w.queued,
            consecutive_failures: w.consecutive_failures,
            last_write_ms: w.last_write_ms,
            last_error: w.last_error,
            spool_bytes: w.spool_bytes,
            spool_held: w.spool_held,
            spool_error: w.spool_error,
            hits_spooled: w.hits_spooled,
            hits_replayed: w.hits_replayed,
            hits_dropped: w.hits_dropped,
            hits_queued: w.hits_queued,
            blocks_compacted: w.blocks_compacted,
            blocks_grouped: w.blocks_grouped,
            oldest_unflushed_ms: w.oldest_unflushed_ms,
        }
    }
}
