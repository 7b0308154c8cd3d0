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
//! commit (a rolled-back batch announces nothing).

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use foldhash::fast::FixedState;

use super::config::EnforcementMode;
use super::open::{OpenIncident, OpenIncidents};
use super::window::HitWindows;
use super::{Accountability, AlertEvent, FeedMeta};
use poolguard_clients::Identity;
use poolguard_model::Severity;
use poolguard_record::QueryEvent;
use poolguard_store::StoreError;
use poolguard_store::blocks::HitOwner;
use poolguard_store::hook::{
    BatchHook, FoldGuard, HitFold, HitRow, IncidentTx, NewIncident, Opening, TrackedIncident,
};

/// What a batch changed, published after the commit.
#[derive(Debug, Default)]
pub struct Pending {
    /// Incidents touched in this batch (each once: hits are grouped by client key first).
    touched: Vec<Touched>,
    /// Every hit of the batch: (address, time), for the hit windows.
    hit_times: Vec<(IpAddr, i64)>,
    alerts: Vec<AlertEvent>,
    quarantined: Vec<IpAddr>,
}

/// How long each list of a [`Pending`] was, to undo what a failed step added.
#[derive(Clone, Copy)]
struct Mark([usize; 4]);

impl Pending {
    fn mark(&self) -> Mark {
        Mark([
            self.touched.len(),
            self.hit_times.len(),
            self.alerts.len(),
            self.quarantined.len(),
        ])
    }

    /// Drops what was added since `mark`: the step's statements are rolled back, so nothing
    /// it collected may be announced or enforced.
    fn rollback(&mut self, Mark([touched, hit_times, alerts, quarantined]): Mark) {
        self.touched.truncate(touched);
        self.hit_times.truncate(hit_times);
        self.alerts.truncate(alerts);
        self.quarantined.truncate(quarantined);
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

/// One client key's hits in a batch, folded into what its incident's row gets.
struct Folded {
    feeds: String,
    categories: String,
    severity: Severity,
    last_ms: i64,
    last_ip: IpAddr,
    count: i64,
}

impl Folded {
    fn of(
        group: &[&HitRow],
        events: &[QueryEvent],
        feeds: &FeedMetaMap,
        inc: &TrackedIncident,
    ) -> Result<Self, StoreError> {
        let mut f = Folded {
            feeds: inc.feeds.clone(),
            categories: inc.categories.clone(),
            severity: Severity::Low,
            last_ms: i64::MIN,
            last_ip: group[0].ip,
            count: group.len() as i64,
        };
        // Feed, category and severity change only when the feed does: runs are common.
        let mut last_feed: Option<Option<&str>> = None;
        for hit in group {
            let e = &events[hit.index];
            if last_feed != Some(e.feed.as_deref()) {
                last_feed = Some(e.feed.as_deref());
                let meta = e.feed.as_deref().and_then(|name| feeds.get(name));
                f.categories = add_to_list(
                    std::mem::take(&mut f.categories),
                    meta.map_or("mining", |m| m.category.as_str()),
                );
                f.feeds = add_to_list(
                    std::mem::take(&mut f.feeds),
                    e.feed.as_deref().unwrap_or(""),
                );
                // A hit of a feed the tracker has no meta for counts as medium.
                let severity = match meta {
                    Some(m) => severity_of(m).map_err(|e| StoreError::Hook(Box::new(e)))?,
                    None => Severity::Medium,
                };
                f.severity = f.severity.max(severity);
            }
            if e.time_ms >= f.last_ms {
                f.last_ms = e.time_ms;
                f.last_ip = hit.ip;
            }
        }
        Ok(f)
    }

    /// Writes the fold into incident `id`; false if `guard` refused it (it was closed).
    fn write(&self, tx: &dyn IncidentTx, id: i64, guard: FoldGuard) -> Result<bool, StoreError> {
        let fold = HitFold {
            last_hit_ms: self.last_ms,
            hits: self.count,
            severity: self.severity,
            feeds: &self.feeds,
            categories: &self.categories,
        };
        tx.fold_hits(id, &fold, guard)
    }
}

/// A client key's hits as written into its incident.
struct Written<'h> {
    incident: OpenIncident,
    /// The incident was opened by these hits.
    opened: bool,
    folded: Folded,
    /// The hits it took (a replayed batch may have given some to a closed incident).
    group: Vec<&'h HitRow>,
}

/// What every client key's group of hits in a batch shares.
struct Batch<'a> {
    events: &'a [QueryEvent],
    feeds: &'a FeedMetaMap,
    /// From the spool: hits may predate their incident's closure.
    replayed: bool,
}

/// Records the names of `group` that incident `id` did not have. A burst repeats a few
/// names: the store is asked once per distinct name in the batch, and not at all for a name
/// the incident is known to have (`named`).
fn record_names(
    tx: &dyn IncidentTx,
    id: i64,
    group: &[&HitRow],
    events: &[QueryEvent],
    named: &mut HashSet<u64, FixedState>,
) -> Result<(), StoreError> {
    let hasher = FixedState::default();
    let mut seen: HashSet<&str, FixedState> = Default::default();
    let mut unknown: Vec<&str> = Vec::new();
    for hit in group {
        let qname = &*events[hit.index].name;
        if seen.insert(qname) {
            let pair = hasher.hash_one((id, qname));
            if !named.contains(&pair) {
                unknown.push(qname);
                if named.len() >= MAX_NAMED {
                    named.clear();
                }
                // Remembered before the store has it: on failure the whole memory is forgotten.
                named.insert(pair);
            }
        }
    }
    if !unknown.is_empty() {
        tx.record_names(id, &unknown)?;
    }
    Ok(())
}

impl Tracker {
    /// A tracker over the shared accountability state.
    pub fn new(acc: Arc<Accountability>) -> Self {
        Self {
            acc,
            memory: Arc::default(),
            pending: Arc::default(),
        }
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

    /// Opens or updates the incidents of a batch's hits (already stored). Hits are grouped
    /// by client key first, so a client's burst costs one update of its incident (plus a
    /// lookup the first time the tracker sees it), plus one row per name the incident has
    /// not had yet, instead of five statements per hit: measured, the per-hit version was a
    /// third of the writer's time when every query is a hit.
    ///
    /// `replayed`: the batch comes from the spool (hits deferred under load), so some of its
    /// hits may predate the closure of their key's incident ([`Tracker::attach_late`]).
    pub fn track_hits(
        &self,
        tx: &dyn IncidentTx,
        events: &[QueryEvent],
        hits: &[HitRow],
        replayed: bool,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        let mut memory = self.memory();
        let mark = pending.mark();
        let result = self.track(tx, events, hits, replayed, pending, &mut memory);
        if result.is_err() {
            // The caller rolls this back: what was remembered or collected meanwhile may
            // describe rows that are not stored.
            memory.forget();
            pending.rollback(mark);
        }
        result
    }

    fn track(
        &self,
        tx: &dyn IncidentTx,
        events: &[QueryEvent],
        hits: &[HitRow],
        replayed: bool,
        pending: &mut Pending,
        memory: &mut Memory,
    ) -> Result<(), StoreError> {
        if !self.acc.incidents.enabled || hits.is_empty() {
            return Ok(());
        }
        pending
            .hit_times
            .extend(hits.iter().map(|h| (h.ip, events[h.index].time_ms)));
        // Groups in order of their first hit, so incidents open in the order hits arrived.
        let mut groups: Vec<(String, Vec<&HitRow>)> = Vec::new();
        let mut by_key: std::collections::HashMap<String, usize, FixedState> = Default::default();
        for hit in hits {
            let asset = hit.identity.as_deref().and_then(|i| i.asset.as_deref());
            let key = HitOwner::of(asset, hit.ip).key();
            match by_key.get(&key) {
                Some(&g) => groups[g].1.push(hit),
                None => {
                    by_key.insert(key.clone(), groups.len());
                    groups.push((key, vec![hit]));
                }
            }
        }
        let feeds = self.acc.feeds.load();
        let batch = Batch {
            events,
            feeds: &feeds,
            replayed,
        };
        for (key, group) in groups {
            let Some(Written {
                mut incident,
                opened,
                folded,
                group,
            }) = self.write_group(tx, &key, group, &batch, memory)?
            else {
                continue;
            };
            let id = incident.tracked.id;
            record_names(tx, id, &group, events, &mut memory.named)?;
            // Only now, when every statement succeeded, is anything announced.
            if opened {
                let first = group[0];
                let e = &events[first.index];
                pending.alerts.push(AlertEvent::incident(
                    "incident.opened",
                    id,
                    &first.ip.to_string(),
                    e.time_ms,
                ));
                tracing::info!(incident = id, client = %first.ip, key = %key, qname = %e.name, "incident opened");
            }
            pending.touched.push(Touched {
                id,
                ip: folded.last_ip,
                time_ms: folded.last_ms,
                enforced: incident.tracked.enforced,
                incidents_below_at: incident.incidents_below_at,
                key: key.clone(),
            });
            incident.tracked.feeds = folded.feeds;
            incident.tracked.categories = folded.categories;
            memory.open.put(&key, incident);
        }
        Ok(())
    }

    /// Folds a client key's hits into its open incident, opening one if it has none. None
    /// when every hit belonged to a closed incident (see [`Tracker::attach_late`]).
    fn write_group<'h>(
        &self,
        tx: &dyn IncidentTx,
        key: &str,
        group: Vec<&'h HitRow>,
        batch: &Batch<'_>,
        memory: &mut Memory,
    ) -> Result<Option<Written<'h>>, StoreError> {
        let Batch { events, feeds, .. } = *batch;
        if let Some(known) = memory.open.take(key) {
            let folded = Folded::of(&group, events, feeds, &known.tracked)?;
            if folded.write(tx, known.tracked.id, FoldGuard::OpenOnly)? {
                return Ok(Some(Written {
                    incident: known,
                    opened: false,
                    folded,
                    group,
                }));
            }
            // Closed through the API since this tracker last wrote it: look the key up again.
        }
        let (incident, opened, group) = match tx.open_incident_of(key)? {
            Some(incident) => (incident, false, group),
            None => {
                let group = if batch.replayed {
                    self.attach_late(tx, key, group, batch, memory)?
                } else {
                    group
                };
                let Some(&first) = group.first() else {
                    return Ok(None);
                };
                match self.open(tx, key, first, events)? {
                    Opening::Opened(incident) => (incident, true, group),
                    // Opened by another writer meanwhile: the hits join it.
                    Opening::AlreadyOpen(incident) => (incident, false, group),
                }
            }
        };
        let folded = Folded::of(&group, events, feeds, &incident)?;
        if !folded.write(tx, incident.id, FoldGuard::OpenOnly)? {
            return Err(StoreError::Worker(format!(
                "incident {} was not open right after it was found open",
                incident.id
            )));
        }
        Ok(Some(Written {
            incident: incident.into(),
            opened,
            folded,
            group,
        }))
    }

    /// A replayed batch may hold hits of a key without an open incident that are stamped before
    /// its latest incident was closed: deferred to the spool under load, replayed after staff
    /// closed it. Those happened during the closed incident, so they are added to it (with a
    /// note for staff) and never open a new one; an incident's evidence is its key's hits from
    /// its first to its last, so they show there. Returns the hits left to open an incident
    /// with. Only replayed batches: a fresh hit is never late, whatever the clocks say.
    fn attach_late<'h>(
        &self,
        tx: &dyn IncidentTx,
        key: &str,
        group: Vec<&'h HitRow>,
        batch: &Batch<'_>,
        memory: &mut Memory,
    ) -> Result<Vec<&'h HitRow>, StoreError> {
        let Batch { events, feeds, .. } = *batch;
        let Some(closed) = tx.latest_closed_incident(key)? else {
            return Ok(group);
        };
        let (incident, closed_ms) = (closed.incident, closed.closed_ms);
        let (late, current): (Vec<&HitRow>, Vec<&HitRow>) = group
            .into_iter()
            .partition(|h| events[h.index].time_ms < closed_ms);
        if late.is_empty() {
            return Ok(current);
        }
        Folded::of(&late, events, feeds, &incident)?.write(
            tx,
            incident.id,
            FoldGuard::EvenClosed,
        )?;
        record_names(tx, incident.id, &late, events, &mut memory.named)?;
        let note = format!(
            "{} hit(s) from before this incident was closed arrived late (deferred under load \
             and replayed) and were added to it.",
            late.len()
        );
        tx.add_system_note(incident.id, self.acc.clock.now_ms(), &note)?;
        tracing::info!(incident = incident.id, key = %key, hits = late.len(), "late hits added to a closed incident");
        Ok(current)
    }

    /// Opens an incident for `key` with its first hit, unless the store has one open for it.
    fn open(
        &self,
        tx: &dyn IncidentTx,
        key: &str,
        first: &HitRow,
        events: &[QueryEvent],
    ) -> Result<Opening, StoreError> {
        let t = events[first.index].time_ms;
        let unknown = Identity::default();
        tx.open_incident(&NewIncident {
            key,
            ip: first.ip,
            identity: first.identity.as_deref().unwrap_or(&unknown),
            first_hit_ms: t,
            identify_due_ms: t.saturating_add(self.acc.incidents.identify_within.ms()),
            report_due_ms: t.saturating_add(self.acc.incidents.report_within.ms()),
        })
    }

    /// End of batch: repeat-offender thresholds for every touched incident.
    pub fn check_batch(
        &self,
        tx: &dyn IncidentTx,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        if self.acc.enforcement.mode == EnforcementMode::Off {
            return Ok(());
        }
        let mut memory = self.memory();
        let mark = pending.mark();
        let result = self.check_offenders(tx, pending, &mut memory);
        if result.is_err() {
            // Rolled back by the caller: the windows and flags may describe undone rows, and
            // no quarantine or alert of this step may be published.
            memory.forget();
            pending.rollback(mark);
        }
        result
    }

    fn check_offenders(
        &self,
        tx: &dyn IncidentTx,
        pending: &mut Pending,
        memory: &mut Memory,
    ) -> Result<(), StoreError> {
        let enf = &self.acc.enforcement;
        let window_ms = enf.hits_window.ms();
        if enf.hits_threshold > 0 {
            for &(ip, t) in &pending.hit_times {
                memory.windows.add(ip, t, window_ms);
            }
        }
        for touched in &pending.touched {
            let &Touched {
                id,
                ip,
                time_ms: t,
                enforced,
                incidents_below_at,
                ..
            } = touched;
            if enforced || self.acc.quarantine.contains(ip) {
                continue;
            }
            let count_incidents = enf.incidents_threshold > 0
                && !matches!(incidents_below_at, Some(below) if t >= below);
            let incidents: i64 = if count_incidents {
                tx.incidents_opened_since(&touched.key, t - enf.incidents_window.ms())?
            } else {
                0
            };
            let hits = if enf.hits_threshold > 0 {
                memory.windows.count(tx, ip, t, window_ms)?
            } else {
                0
            };
            let reason = if count_incidents && incidents >= i64::from(enf.incidents_threshold) {
                format!(
                    "{incidents} incidents within {} (threshold {})",
                    humantime::format_duration(enf.incidents_window.0),
                    enf.incidents_threshold
                )
            } else if enf.hits_threshold > 0 && hits >= u64::from(enf.hits_threshold) {
                format!(
                    "{hits} hits within {} (threshold {})",
                    humantime::format_duration(enf.hits_window.0),
                    enf.hits_threshold
                )
            } else {
                if count_incidents && let Some(open) = memory.open.get_mut(&touched.key) {
                    open.incidents_below_at = Some(t);
                }
                continue;
            };
            let applied = enf.mode == EnforcementMode::Quarantine;
            tx.mark_enforced(id, t)?;
            if let Some(open) = memory.open.get_mut(&touched.key) {
                open.tracked.enforced = true;
            }
            let ip_text = ip.to_string();
            let note = if applied {
                tx.quarantine(ip, t, &reason, id)?;
                pending.quarantined.push(ip);
                format!("Repeat offender: {reason}. {ip_text} quarantined (walled garden).")
            } else {
                format!("Repeat offender: {reason}. Notify mode: {ip_text} not quarantined.")
            };
            tx.add_system_note(id, t, &note)?;
            let mut ev = AlertEvent::incident("quarantine.on", id, &ip_text, t);
            ev.detail = serde_json::json!({ "reason": reason, "applied": applied });
            pending.alerts.push(ev);
            tracing::info!(incident = id, client = %ip, applied, %reason, "repeat offender");
        }
        Ok(())
    }

    /// After the commit: swap the quarantine set and hand the alerts to the delivery task.
    pub fn publish(&self, pending: Pending) {
        for ip in pending.quarantined {
            self.acc.quarantine.insert(ip);
        }
        for ev in pending.alerts {
            self.acc.alerts.emit(ev);
        }
    }
}

/// A feed meta's severity is none of the four names: a bug where the meta was built (it is
/// spelled by `severity_name`), reported rather than guessed.
#[derive(Debug, thiserror::Error)]
#[error(
    "feed `{feed}` has severity `{value}`, not low, medium, high or critical; its hits were not added to incidents"
)]
struct UnknownSeverity {
    feed: String,
    value: String,
}

/// A feed's configured severity, as [`FeedMeta`] spells it (`low` … `critical`).
fn severity_of(meta: &FeedMeta) -> Result<Severity, UnknownSeverity> {
    match meta.severity.as_str() {
        "low" => Ok(Severity::Low),
        "medium" => Ok(Severity::Medium),
        "high" => Ok(Severity::High),
        "critical" => Ok(Severity::Critical),
        other => Err(UnknownSeverity {
            feed: meta.name.clone(),
            value: other.to_string(),
        }),
    }
}

fn add_to_list(list: String, item: &str) -> String {
    if item.is_empty() || list.split(',').any(|x| x == item) {
        return list;
    }
    if list.is_empty() {
        item.to_string()
    } else {
        format!("{list},{item}")
    }
}

impl BatchHook for Tracker {
    fn on_hits(
        &self,
        tx: &dyn IncidentTx,
        events: &[QueryEvent],
        hits: &[HitRow],
        replayed: bool,
    ) -> Result<(), StoreError> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        self.track_hits(tx, events, hits, replayed, &mut pending)
    }

    fn end_batch(&self, tx: &dyn IncidentTx) -> Result<(), StoreError> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        self.check_batch(tx, &mut pending)
    }

    fn committed(&self) {
        let pending =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        self.publish(pending);
    }

    fn batch_failed(&self) {
        self.forget_batch();
    }
}

#[cfg(test)]
mod tests;
