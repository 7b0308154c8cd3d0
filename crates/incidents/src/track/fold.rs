//! Grouping a batch's hits by client key and folding each group into its incident: opening
//! the incident on a key's first hit, updating it (one statement per key, not per hit) and
//! recording the names it had not had yet.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::net::IpAddr;

use foldhash::fast::FixedState;

use super::{AlertEvent, FeedMeta, FeedMetaMap, MAX_NAMED, Memory, Pending, Touched, Tracker};
use crate::open::OpenIncident;
use poolguard_clients::Identity;
use poolguard_model::Severity;
use poolguard_record::QueryEvent;
use poolguard_store::StoreError;
use poolguard_store::blocks::HitOwner;
use poolguard_store::hook::{
    FoldGuard, HitFold, HitRow, IncidentTx, NewIncident, Opening, TrackedIncident,
};

/// One client key's hits in a batch, folded into what its incident's row gets.
pub(super) struct Folded {
    feeds: String,
    categories: String,
    severity: Severity,
    last_ms: i64,
    last_ip: IpAddr,
    count: i64,
}

impl Folded {
    pub(super) fn of(
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
    pub(super) fn write(
        &self,
        tx: &dyn IncidentTx,
        id: i64,
        guard: FoldGuard,
    ) -> Result<bool, StoreError> {
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
pub(super) struct Batch<'a> {
    pub(super) events: &'a [QueryEvent],
    pub(super) feeds: &'a FeedMetaMap,
    /// From the spool: hits may predate their incident's closure.
    pub(super) replayed: bool,
}

/// Records the names of `group` that incident `id` did not have. A burst repeats a few
/// names: the store is asked once per distinct name in the batch, and not at all for a name
/// the incident is known to have (`named`).
pub(super) fn record_names(
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
        // A staff test machine's hits (`[incidents.exempt]`, marked by the writer) are
        // stored and open nothing, count towards no threshold. A copy only when there are.
        let exempt = |h: &HitRow| h.identity.as_deref().is_some_and(|i| i.exempt.is_some());
        let kept: Vec<HitRow>;
        let hits = if hits.iter().any(exempt) {
            kept = hits.iter().filter(|h| !exempt(h)).cloned().collect();
            metrics::counter!("poolguard_exempt_hits_total")
                .increment((hits.len() - kept.len()) as u64);
            &kept[..]
        } else {
            hits
        };
        if hits.is_empty() {
            return Ok(());
        }
        pending
            .hit_times
            .extend(hits.iter().map(|h| (h.ip, events[h.index].time_ms)));
        // Groups in order of their first hit, so incidents open in the order hits arrived.
        let mut groups: Vec<(String, Vec<&HitRow>)> = Vec::new();
        let mut by_key: std::collections::HashMap<String, usize, FixedState> = Default::default();
        for hit in hits {
            let key = HitOwner::of_identity(hit.identity.as_deref(), hit.ip).key();
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
            }) = self.write_group(tx, &key, group, &batch, memory, pending)?
            else {
                continue;
            };
            let id = incident.tracked.id;
            record_names(tx, id, &group, events, &mut memory.named)?;
            self.owned_by(id, &group, pending);
            // Only now, when every statement succeeded, is anything announced.
            if opened {
                let first = group[0];
                let e = &events[first.index];
                let client = first.ip.to_string();
                let mut ev = AlertEvent::incident("incident.opened", id, &client, e.time_ms);
                ev.detail = crate::alerts::opened::Opened {
                    id,
                    console_url: self.acc.console_url.as_deref(),
                    client: &client,
                    identity: first.identity.as_deref(),
                    pool: &e.name,
                    feed: e.feed.as_deref(),
                    hits: folded.count,
                    opened_ms: e.time_ms,
                    identify_due_ms: e
                        .time_ms
                        .saturating_add(self.acc.incidents.identify_within.ms()),
                    report_due_ms: e
                        .time_ms
                        .saturating_add(self.acc.incidents.report_within.ms()),
                }
                .detail();
                pending.alerts.push(ev);
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
        pending: &mut Pending,
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
                    self.attach_late(tx, key, group, batch, memory, pending)?
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
