//! Incident and quarantine events, and hits with their incident, for the exports: the
//! hand-off between `incidents` (which raises the events through its alerts and attributes
//! hits to incidents in the store writer) and `export` (which sends both to syslog receivers).
//!
//! Both crates sit on the same layer and must not depend on each other, so the types and the
//! subscriber traits live here, below both; the binary connects them (`src/app/mod.rs`).

use std::sync::Arc;

use poolguard_model::Action;

use super::QueryEvent;

/// One incident lifecycle or quarantine change, as the exports send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleEvent {
    /// `incident.opened`, `incident.status`, `incident.closed`, `incident.due_soon`,
    /// `incident.overdue`, `quarantine.on`, `quarantine.off`.
    pub event: &'static str,
    /// RFC 3339.
    pub time: String,
    /// The incident concerned, when there is one.
    pub incident_id: Option<i64>,
    /// The client's IP address (text), when the event is about one.
    pub client: Option<String>,
    /// The incident's status after the change (`open`, `investigating`, ..., `closed`).
    pub status: Option<String>,
    /// Who made the change: a token's name, or `system` for the automatic ones.
    pub actor: Option<String>,
    /// Why (a quarantine's reason, a closed incident's resolution).
    pub reason: Option<String>,
}

impl LifecycleEvent {
    /// Whether this is a quarantine change (else an incident event).
    pub fn is_quarantine(&self) -> bool {
        self.event.starts_with("quarantine.")
    }
}

/// A subscriber to lifecycle events. `event` runs on whatever task raised the event (the store
/// writer, an API handler): it must not block (queue and return).
pub trait LifecycleSink: Send + Sync + 'static {
    /// Takes `event` without waiting; may drop it (and count the drop).
    fn event(&self, event: Arc<LifecycleEvent>);
}

/// A hit the store committed, with the incident the tracker folded it into: what a syslog
/// export's hit message is made of while incident tracking is on (docs/EXPORT.md, "Incident
/// id in hit messages"). The DNS path sees a hit before any incident exists for it; only the
/// store writer knows which incident took it, after its transaction committed.
#[derive(Debug, Clone)]
pub struct AttributedHit {
    /// The hit as stored (client, name, type, feed, rule, rcode, time).
    pub event: QueryEvent,
    /// Its feed's category (`mining`); `None` for a feed no longer configured.
    pub category: Option<String>,
    /// Its feed's answer to a block; `None` for a feed no longer configured.
    pub action: Option<Action>,
    /// The incident it belongs to; `None` when the batch's incident bookkeeping failed (the
    /// hit is stored all the same, so its message still goes out).
    pub incident_id: Option<i64>,
}

/// A subscriber to committed hits. Called on the store writer's thread once per committed
/// batch that held hits, in the order they were stored: it must not block (queue and return).
pub trait AttributedHitSink: Send + Sync + 'static {
    /// Takes a batch's hits without waiting; may drop some (and count the drops).
    fn committed(&self, hits: Vec<AttributedHit>);
}
