//! The incident tracker: runs inside the store writer's transaction, once per batch of hits.
//!
//! Why here: the writer is the one place every hit passes exactly once (hits are never
//! dropped), and it already holds a transaction. Opening or updating the incident in the
//! same transaction as the hits means an incident can never miss a hit nor count one that
//! was not stored. The tracker works through the store's [`IncidentTx`], never SQL. The cost
//! per batch is one fold (an UPDATE on SQLite) per client key that had hits (plus one
//! lookup the first time the tracker meets its incident, see [`super::open`]) and one row
//! per new name; only for hits (blocked queries), never for ordinary queries. An incident holds every hit of its client key from its first to its
//! last hit, so no row links a hit to it (schema 8; `store::blocks::owner_hits` finds them).
//!
//! Repeat-offender thresholds are evaluated at the end of each batch, once per touched
//! incident: an indexed count of incidents (skipped once it is known to stay below the
//! threshold), and the address's hits from [`HitWindows`].
//! Alerts and quarantine changes are collected during the batch and published only after the
//! commit (a rolled-back batch announces nothing). So are the batch's hits with the incident
//! each went to, when a syslog export subscribed ([`Tracker::with_hit_sink`]): a hit message
//! that names its incident can only be sent once the incident is committed (docs/EXPORT.md).
mod attribute;
mod fold;
mod hook;
mod late;
mod offenders;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use foldhash::fast::FixedState;

use super::open::OpenIncidents;
use super::window::HitWindows;
use super::{Accountability, AlertEvent, FeedMeta};
use poolguard_record::lifecycle::{AttributedHit, AttributedHitSink};

/// What a batch changed, published after the commit.
#[derive(Debug, Default)]
pub struct Pending {
    /// Incidents touched in this batch (each once: hits are grouped by client key first).
    touched: Vec<Touched>,
    /// Every hit of the batch: (address, time), for the hit windows.
    hit_times: Vec<(IpAddr, i64)>,
    alerts: Vec<AlertEvent>,
    quarantined: Vec<IpAddr>,
    /// (event index, incident id) of the hits the current [`BatchHook::on_hits`] call folded,
    /// only while a hit sink is subscribed.
    ///
    /// [`BatchHook::on_hits`]: poolguard_store::hook::BatchHook::on_hits
    owners: Vec<(usize, i64)>,
    /// Every hit of the batch with its incident, for the hit sink (only while one is
    /// subscribed). Not undone with a failed tracking step: those hits are stored all the
    /// same, and go out without an incident id.
    attributed: Vec<AttributedHit>,
}

/// How long each list of a [`Pending`] was, to undo what a failed step added.
#[derive(Clone, Copy)]
struct Mark([usize; 5]);

impl Pending {
    fn mark(&self) -> Mark {
        Mark([
            self.touched.len(),
            self.hit_times.len(),
            self.alerts.len(),
            self.quarantined.len(),
            self.owners.len(),
        ])
    }

    /// Drops what was added since `mark`: the step's statements are rolled back, so nothing
    /// it collected may be announced or enforced.
    fn rollback(&mut self, Mark([touched, hit_times, alerts, quarantined, owners]): Mark) {
        self.touched.truncate(touched);
        self.hit_times.truncate(hit_times);
        self.alerts.truncate(alerts);
        self.quarantined.truncate(quarantined);
        self.owners.truncate(owners);
    }
}

/// An incident the batch touched, with what the repeat-offender check needs to know of it.
#[derive(Debug)]
struct Touched {
    id: i64,
    key: String,
    /// Address and time of its latest hit in the batch.
    ip: IpAddr,
    time_ms: i64,
    enforced: bool,
    incidents_below_at: Option<i64>,
}

/// The writer's hook.
#[derive(Clone)]
pub struct Tracker {
    acc: Arc<Accountability>,
    /// Only the writer thread uses it; the lock is never contended.
    memory: Arc<Mutex<Memory>>,
    /// What the batch in progress changed, published by [`BatchHook::committed`].
    pending: Arc<Mutex<Pending>>,
    /// Other nodes write the same store ([`Tracker::shared`]).
    shared: bool,
    /// Where committed hits go with their incident (the syslog exports), when subscribed.
    hit_sink: Option<Arc<dyn AttributedHitSink>>,
}

/// What the tracker remembers between batches to save statements. Every part may be
/// forgotten at any time (it is, after any failure): the store stays the source of truth.
#[derive(Default)]
struct Memory {
    windows: HitWindows,
    /// (incident, name) pairs the store already holds (hashes), so a name hit again is not
    /// recorded again: in a flood over many names that insert was most of a hit's cost.
    /// Bounded and cleared when full.
    named: HashSet<u64, FixedState>,
    /// Open incidents by client key, so a client's next batch skips the lookup.
    open: OpenIncidents,
}

impl Memory {
    fn forget(&mut self) {
        self.windows.forget();
        self.named.clear();
        self.open.clear();
    }
}

/// Feed metadata by feed name, as loaded for one batch.
type FeedMetaMap = std::collections::HashMap<String, FeedMeta>;

/// Pairs remembered in [`Memory::named`] before it is cleared (about 4 MiB at most).
const MAX_NAMED: usize = 1 << 18;

impl Tracker {
    /// A tracker over the shared accountability state.
    pub fn new(acc: Arc<Accountability>) -> Self {
        Self {
            acc,
            memory: Arc::default(),
            pending: Arc::default(),
            shared: false,
            hit_sink: None,
        }
    }

    /// A tracker for a store other nodes write too (the PostgreSQL backend's shipper). The
    /// hit windows it keeps between batches would count only this node's hits, so they are
    /// dropped after every batch and seeded again from the store, which holds every node's:
    /// the repeat-offender threshold counts the whole group's hits. What else it remembers
    /// stays valid across nodes (an open incident closed meanwhile is refused by the fold's
    /// guard and looked up again; a name recorded stays recorded).
    pub fn shared(acc: Arc<Accountability>) -> Self {
        Self {
            shared: true,
            ..Self::new(acc)
        }
    }

    /// This tracker, also handing every committed hit with its incident id to `sink`.
    pub fn with_hit_sink(mut self, sink: Arc<dyn AttributedHitSink>) -> Self {
        self.hit_sink = Some(sink);
        self
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After a batch failed to commit: what the tracker remembers may describe rows that were
    /// rolled back, so it is all forgotten and read again from the store when next needed.
    fn forget_batch(&self) {
        self.memory().forget();
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = Pending::default();
    }

    /// After the commit: swap the quarantine set, hand the alerts to the delivery task, then
    /// the hits to the hit sink (after `incident.opened`, which they name).
    pub fn publish(&self, pending: Pending) {
        for ip in pending.quarantined {
            self.acc.quarantine.insert(ip);
        }
        for ev in pending.alerts {
            self.acc.alerts.emit(ev);
        }
        if let Some(sink) = &self.hit_sink
            && !pending.attributed.is_empty()
        {
            sink.committed(pending.attributed);
        }
    }
}

#[cfg(test)]
mod tests;
