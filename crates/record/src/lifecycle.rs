//! Incident and quarantine events for the exports: the hand-off between `incidents` (which
//! raises them, through its alerts) and `export` (which sends them to syslog receivers).
//!
//! Both crates sit on the same layer and must not depend on each other, so the event type and
//! the subscriber trait live here, below both; the binary connects them (`src/app.rs`).

use std::sync::Arc;

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
