//! The incident tracker: runs inside the store writer's transaction, once per batch of hits.
//!
//! Why here: the writer is the one place every hit passes exactly once (hits are never
//! dropped), and it already holds the write connection and a transaction. Opening or updating
//! the incident in the same transaction as the hits means an incident can never miss a hit
//! nor count one that was not stored. The cost per batch is one indexed SELECT and one UPDATE
//! per client that had hits and one row per new name; only for hits (blocked queries), never
//! for ordinary queries. An incident holds every hit of its client key from its first to its
//! last hit, so no row links a hit to it (schema 8; `store::blocks::owner_hits` finds them).
//!
//! Repeat-offender thresholds are evaluated at the end of each batch, once per touched
//! incident: an indexed count of incidents, and the address's hits from [`HitWindows`].
//! Alerts and quarantine changes are collected during the batch and published only after the
//! commit (a rolled-back batch announces nothing).

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use foldhash::fast::FixedState;

use rusqlite::{Connection, OptionalExtension, params};

use super::config::EnforcementMode;
use super::window::HitWindows;
use super::{Accountability, AlertEvent, db, severity_rank};
use crate::clients::Identity;
use crate::config::Severity;
use crate::record::QueryEvent;
use crate::store::blocks::HitOwner;
use crate::store::{StoreError, audit, ip_key};

/// What a batch changed, published after the commit.
#[derive(Debug, Default)]
pub struct Pending {
    /// Incidents touched in this batch: (incident id, address of the latest hit, its time).
    touched: Vec<(i64, IpAddr, i64)>,
    /// Every hit of the batch: (address, time), for the hit windows.
    hit_times: Vec<(IpAddr, i64)>,
    alerts: Vec<AlertEvent>,
    quarantined: Vec<IpAddr>,
}

/// A hit the writer just stored, for [`Tracker::on_hits`].
#[derive(Debug, Clone)]
pub struct HitRow {
    /// Its event's position in the batch.
    pub index: usize,
    /// The client address (canonical).
    pub ip: IpAddr,
    /// The ledger identity snapshot stored with it.
    pub identity: Option<Arc<Identity>>,
}

/// The writer's hook.
#[derive(Clone)]
pub struct Tracker {
    acc: Arc<Accountability>,
    /// Only the writer thread uses it; the lock is never contended.
    windows: Arc<Mutex<HitWindows>>,
    /// (incident, name) pairs `incident_names` already holds (hashes), so a name hit again
    /// skips its INSERT: in a flood over many names that insert was most of a hit's cost.
    /// Bounded and cleared when full, and after any failure (forgetting costs inserts only).
    named: Arc<Mutex<HashSet<u64, FixedState>>>,
}

/// Pairs remembered in [`Tracker::named`] before it is cleared (about 4 MiB at most).
const MAX_NAMED: usize = 1 << 18;

impl Tracker {
    /// A tracker over the shared accountability state.
    pub fn new(acc: Arc<Accountability>) -> Self {
        Self {
            acc,
            windows: Arc::default(),
            named: Arc::default(),
        }
    }

    /// After a batch failed to commit: the hit windows may count rows that were never stored,
    /// so they are dropped and re-seeded from the store when next needed.
    pub fn batch_failed(&self) {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .forget();
        self.forget_names();
    }

    fn forget_names(&self) {
        self.named
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Opens or updates the incidents of a batch's hits (already stored). Hits are grouped
    /// by client key first, so a client's burst costs one lookup and one update of its
    /// incident, plus one row per name the incident has not had yet, instead of five
    /// statements per hit: measured, the per-hit version was a third of the writer's time
    /// when every query is a hit.
    pub fn on_hits(
        &self,
        conn: &Connection,
        events: &[QueryEvent],
        hits: &[HitRow],
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        let result = self.track(conn, events, hits, pending);
        if result.is_err() {
            // The caller rolls this back: names remembered meanwhile may not be stored.
            self.forget_names();
        }
        result
    }

    fn track(
        &self,
        conn: &Connection,
        events: &[QueryEvent],
        hits: &[HitRow],
        pending: &mut Pending,
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
        let mut named = self.named.lock().unwrap_or_else(PoisonError::into_inner);
        let hasher = FixedState::default();
        for (key, group) in &groups {
            let first = group[0];
            let existing: Option<(i64, String, String)> = conn
                .prepare_cached(
                    "SELECT id, feeds, categories FROM incidents WHERE client_key = ?1 AND status != 'closed'",
                )?
                .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            let opened = existing.is_none();
            let (id, mut feed_list, mut cat_list) = match existing {
                Some(x) => x,
                None => (
                    self.open(
                        conn,
                        key,
                        &events[first.index],
                        first.ip,
                        first.identity.as_deref(),
                    )?,
                    String::new(),
                    String::new(),
                ),
            };
            let mut severity = severity_rank(Severity::Low);
            let mut last_ms = i64::MIN;
            let mut last_ip = first.ip;
            let mut new_names = 0usize;
            let mut name = conn.prepare_cached(
                "INSERT OR IGNORE INTO incident_names (incident_id, name) VALUES (?1, ?2)",
            )?;
            let mut seen_names: HashSet<&str, FixedState> = Default::default();
            // Feed, category and severity change only when the feed does: runs are common.
            let mut last_feed: Option<Option<&str>> = None;
            for hit in group {
                let e = &events[hit.index];
                if last_feed != Some(e.feed.as_deref()) {
                    last_feed = Some(e.feed.as_deref());
                    let meta = e.feed.as_deref().and_then(|f| feeds.get(f));
                    cat_list =
                        add_to_list(cat_list, meta.map_or("mining", |m| m.category.as_str()));
                    feed_list = add_to_list(feed_list, e.feed.as_deref().unwrap_or(""));
                    let rank = meta.map_or(Severity::Medium, |m| severity_of(&m.severity));
                    severity = severity.max(severity_rank(rank));
                }
                if e.time_ms >= last_ms {
                    last_ms = e.time_ms;
                    last_ip = hit.ip;
                }
                // A burst repeats a few names: ask SQLite once per distinct name in the batch,
                // and not at all for a name this incident is known to have.
                if seen_names.insert(&e.name) {
                    let pair = hasher.hash_one((id, &*e.name));
                    if !named.contains(&pair) {
                        new_names += name.execute(params![id, &*e.name])?;
                        if named.len() >= MAX_NAMED {
                            named.clear();
                        }
                        named.insert(pair);
                    }
                }
            }
            conn.prepare_cached(
                "UPDATE incidents SET last_hit_ms = max(last_hit_ms, ?2), hit_count = hit_count + ?3, \
                 severity = max(severity, ?4), feeds = ?5, categories = ?6, \
                 name_count = name_count + ?7 WHERE id = ?1",
            )?
            .execute(params![
                id,
                last_ms,
                group.len() as i64,
                severity,
                feed_list,
                cat_list,
                new_names as i64
            ])?;
            // Only now, when every statement succeeded, is anything announced.
            if opened {
                let e = &events[first.index];
                pending.alerts.push(AlertEvent::incident(
                    "incident.opened",
                    id,
                    &first.ip.to_string(),
                    e.time_ms,
                ));
                tracing::info!(incident = id, client = %first.ip, key = %key, qname = %e.name, "incident opened");
            }
            match pending.touched.iter_mut().find(|t| t.0 == id) {
                Some(t) => {
                    t.1 = last_ip;
                    t.2 = t.2.max(last_ms);
                }
                None => pending.touched.push((id, last_ip, last_ms)),
            }
        }
        Ok(())
    }

    fn open(
        &self,
        conn: &Connection,
        key: &str,
        e: &QueryEvent,
        ip: IpAddr,
        identity: Option<&Identity>,
    ) -> Result<i64, StoreError> {
        let i = identity.cloned().unwrap_or_default();
        let t = e.time_ms;
        conn.prepare_cached(
            "INSERT INTO incidents (client_key, client, client_bin, network, asset, mac, kind, \
             location, department, ledger_owner, contact, device, owner, opened_ms, last_hit_ms, \
             identify_due_ms, report_due_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, ?15, ?16)",
        )?
        .execute(params![
            key,
            ip.to_string(),
            &ip_key(ip)[..],
            i.network,
            i.asset,
            i.mac,
            i.kind,
            i.location,
            i.department,
            i.owner,
            i.contact,
            // Prefilled from the ledger; staff confirm or correct them.
            i.asset,
            i.owner,
            t,
            t.saturating_add(self.acc.incidents.identify_within.ms()),
            t.saturating_add(self.acc.incidents.report_within.ms()),
        ])?;
        Ok(conn.last_insert_rowid())
    }

    /// End of batch: repeat-offender thresholds for every touched incident.
    pub fn end_batch(&self, conn: &Connection, pending: &mut Pending) -> Result<(), StoreError> {
        let enf = &self.acc.enforcement;
        if enf.mode == EnforcementMode::Off {
            return Ok(());
        }
        let window_ms = enf.hits_window.ms();
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if enf.hits_threshold > 0 {
            for &(ip, t) in &pending.hit_times {
                windows.add(ip, t, window_ms);
            }
        }
        for &(id, ip, t) in &pending.touched {
            let Some(row) = db::get(conn, id)? else {
                continue;
            };
            if row.enforced_ms.is_some() || self.acc.quarantine.contains(ip) {
                continue;
            }
            let incidents: i64 = if enf.incidents_threshold > 0 {
                conn.prepare_cached(
                    "SELECT count(*) FROM incidents WHERE client_key = ?1 AND opened_ms >= ?2",
                )?
                .query_row(
                    params![row.client_key, t - enf.incidents_window.ms()],
                    |r| r.get(0),
                )?
            } else {
                0
            };
            let hits = if enf.hits_threshold > 0 {
                windows.count(conn, ip, t, window_ms)?
            } else {
                0
            };
            let reason =
                if enf.incidents_threshold > 0 && incidents >= i64::from(enf.incidents_threshold) {
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
                    continue;
                };
            let applied = enf.mode == EnforcementMode::Quarantine;
            conn.prepare_cached("UPDATE incidents SET enforced_ms = ?2 WHERE id = ?1")?
                .execute(params![id, t])?;
            let ip_text = ip.to_string();
            let note = if applied {
                db::quarantine_add(conn, &ip_text, t, "system", &reason, Some(id))?;
                let mut entry = audit::AuditEntry::now(
                    "system",
                    "system",
                    "quarantine.add",
                    &format!("quarantine/{ip_text}"),
                );
                entry.detail = format!("incident {id}: {reason}");
                audit::insert(conn, &entry)?;
                pending.quarantined.push(ip);
                format!("Repeat offender: {reason}. {ip_text} quarantined (walled garden).")
            } else {
                format!("Repeat offender: {reason}. Notify mode: {ip_text} not quarantined.")
            };
            db::add_note(conn, id, t, "system", &note)?;
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

/// A feed's configured severity (`low` … `critical`); anything else counts as medium.
fn severity_of(name: &str) -> Severity {
    match name {
        "low" => Severity::Low,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        _ => Severity::Medium,
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
