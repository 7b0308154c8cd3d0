//! The tracker against an in-memory [`IncidentTx`]: what it asks the store and what it
//! announces, with no SQL anywhere (the SQLite side is tested in `store::incidents_tx`, the
//! two together in `tests/incidents_writer.rs`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use poolguard_clients::Identity;
use poolguard_config::Config;
use poolguard_model::Severity;
use poolguard_record::{Outcome, QueryEvent, Transport};
use poolguard_store::StoreError;
use poolguard_store::hook::{
    ClosedIncident, FoldGuard, HitFold, HitRow, IncidentTx, NewIncident, OpenSpan, Opening,
    TrackedIncident,
};

use super::*;
use crate::{Alerts, ManualClock};

/// One incident as the fake store holds it.
#[derive(Debug, Clone)]
struct Row {
    key: String,
    open: bool,
    hit_count: i64,
    last_hit_ms: i64,
    severity: Severity,
    feeds: String,
}

/// A store that keeps incidents in a Vec (id = index + 1) and counts lookups.
#[derive(Default)]
struct Fake {
    rows: RefCell<Vec<Row>>,
    lookups: Cell<usize>,
    /// Answer "none open" to the next lookup, as if another node opened it meanwhile.
    miss_next_lookup: Cell<bool>,
    /// Answer "already enforced" to `mark_enforced`, as if another node's shipper had
    /// enforced the incident first.
    enforced_elsewhere: Cell<bool>,
    /// The hits the store holds (address, time), which seed the hit windows.
    stored_hits: RefCell<Vec<(IpAddr, i64)>>,
}

impl Fake {
    fn tracked(&self, id: i64) -> TrackedIncident {
        let rows = self.rows.borrow();
        let row = &rows[(id - 1) as usize];
        TrackedIncident {
            id,
            feeds: row.feeds.clone(),
            categories: String::new(),
            enforced: false,
        }
    }

    fn open_id(&self, key: &str) -> Option<i64> {
        let rows = self.rows.borrow();
        let i = rows.iter().position(|r| r.key == key && r.open)?;
        Some(i as i64 + 1)
    }
}

impl IncidentTx for Fake {
    fn open_incident_of(&self, key: &str) -> Result<Option<TrackedIncident>, StoreError> {
        self.lookups.set(self.lookups.get() + 1);
        if self.miss_next_lookup.replace(false) {
            return Ok(None);
        }
        Ok(self.open_id(key).map(|id| self.tracked(id)))
    }

    fn open_incident(&self, new: &NewIncident<'_>) -> Result<Opening, StoreError> {
        if let Some(id) = self.open_id(new.key) {
            return Ok(Opening::AlreadyOpen(self.tracked(id)));
        }
        self.rows.borrow_mut().push(Row {
            key: new.key.to_string(),
            open: true,
            hit_count: 0,
            last_hit_ms: new.first_hit_ms,
            severity: Severity::Low,
            feeds: String::new(),
        });
        Ok(Opening::Opened(
            self.tracked(self.rows.borrow().len() as i64),
        ))
    }

    fn fold_hits(&self, id: i64, fold: &HitFold<'_>, guard: FoldGuard) -> Result<bool, StoreError> {
        let mut rows = self.rows.borrow_mut();
        let row = &mut rows[(id - 1) as usize];
        if guard == FoldGuard::OpenOnly && !row.open {
            return Ok(false);
        }
        row.hit_count += fold.hits;
        row.last_hit_ms = row.last_hit_ms.max(fold.last_hit_ms);
        row.severity = row.severity.max(fold.severity);
        row.feeds = fold.feeds.to_string();
        Ok(true)
    }

    fn record_names(&self, _: i64, names: &[&str]) -> Result<usize, StoreError> {
        Ok(names.len())
    }

    fn latest_closed_incident(&self, _: &str) -> Result<Option<ClosedIncident>, StoreError> {
        Ok(None)
    }

    fn open_incident_span(&self, _: &str) -> Result<Option<OpenSpan>, StoreError> {
        // The tracker never asks: late identity is the stores' (`store::relearn`).
        Ok(None)
    }

    fn learn_identity(&self, _: i64, _: Option<&str>, _: &Identity) -> Result<(), StoreError> {
        Ok(())
    }

    fn add_system_note(&self, _: i64, _: i64, _: &str) -> Result<(), StoreError> {
        Ok(())
    }

    fn incidents_opened_since(&self, _: &str, _: i64) -> Result<i64, StoreError> {
        Ok(0)
    }

    fn mark_enforced(&self, _: i64, _: i64) -> Result<bool, StoreError> {
        Ok(!self.enforced_elsewhere.get())
    }

    fn quarantine(&self, _: IpAddr, _: i64, _: &str, _: i64) -> Result<(), StoreError> {
        Ok(())
    }

    fn hit_times_since(
        &self,
        ip: IpAddr,
        since_ms: i64,
        each: &mut dyn FnMut(i64),
    ) -> Result<(), StoreError> {
        for &(_, t) in self
            .stored_hits
            .borrow()
            .iter()
            .filter(|&&(i, t)| i == ip && t >= since_ms)
        {
            each(t);
        }
        Ok(())
    }
}

fn tracker(feeds: &[(&str, &str)]) -> Tracker {
    tracker_with(&Config::default(), feeds)
}

fn tracker_with(config: &Config, feeds: &[(&str, &str)]) -> Tracker {
    let acc = Accountability::new(config, Arc::new(ManualClock::at(0)), Alerts::disabled());
    let metas: HashMap<String, FeedMeta> = feeds
        .iter()
        .map(|&(name, severity)| {
            let meta = FeedMeta {
                name: name.to_string(),
                category: "mining".to_string(),
                severity: severity.to_string(),
                action: Some(poolguard_model::Action::Sinkhole),
                path: None,
                url: None,
            };
            (name.to_string(), meta)
        })
        .collect();
    acc.feeds.store(Arc::new(metas));
    Tracker::new(Arc::new(acc))
}

fn hit(time_ms: i64, client: &str, feed: &str) -> QueryEvent {
    QueryEvent {
        time_ms,
        client: format!("{client}:53").parse().expect("address"),
        transport: Transport::Udp,
        name: "a.pool.test".into(),
        qtype: "A".into(),
        outcome: Outcome::Blocked,
        feed: Some(Arc::from(feed)),
        rule: Some(Arc::from("pool.test")),
        rcode: "NOERROR",
        answer: "A 0.0.0.0".into(),
        latency_us: 1,
        upstream: None,
    }
}

fn rows_of(events: &[QueryEvent]) -> Vec<HitRow> {
    events
        .iter()
        .enumerate()
        .map(|(index, e)| HitRow {
            index,
            ip: e.client.ip(),
            identity: None,
        })
        .collect()
}

fn track(t: &Tracker, store: &Fake, events: &[QueryEvent]) -> Result<Pending, StoreError> {
    let mut pending = Pending::default();
    t.track_hits(store, events, &rows_of(events), false, &mut pending)?;
    Ok(pending)
}

#[test]
fn a_clients_first_hit_opens_its_incident_and_later_batches_fold_into_it() {
    let t = tracker(&[("mining", "high")]);
    let store = Fake::default();
    let first = [
        hit(100, "10.0.0.1", "mining"),
        hit(110, "10.0.0.2", "mining"),
        hit(120, "10.0.0.1", "mining"),
    ];
    let pending = track(&t, &store, &first).expect("tracked");
    let opened: Vec<_> = pending.alerts.iter().map(|a| a.incident_id).collect();
    assert_eq!(opened, vec![Some(1), Some(2)], "in order of first hit");
    let lookups = store.lookups.get();

    let pending = track(&t, &store, &[hit(200, "10.0.0.1", "mining")]).expect("tracked");
    assert!(pending.alerts.is_empty(), "nothing new opened");
    assert_eq!(
        store.lookups.get(),
        lookups,
        "the remembered incident needs no lookup"
    );
    let row = store.rows.borrow()[0].clone();
    assert_eq!((row.hit_count, row.last_hit_ms), (3, 200));
    assert_eq!(
        (row.severity, row.feeds.as_str()),
        (Severity::High, "mining")
    );
}

#[test]
fn an_incident_another_writer_opened_meanwhile_takes_the_hits_and_is_not_announced() {
    let t = tracker(&[("mining", "low")]);
    let store = Fake::default();
    track(&t, &store, &[hit(100, "10.0.0.1", "mining")]).expect("tracked");
    let other = tracker(&[("mining", "low")]);
    store.miss_next_lookup.set(true);
    let pending = track(&other, &store, &[hit(150, "10.0.0.1", "mining")]).expect("tracked");
    assert!(pending.alerts.is_empty(), "not opened by this call");
    assert_eq!(store.rows.borrow().len(), 1, "still one incident");
    assert_eq!(store.rows.borrow()[0].hit_count, 2);
}

#[test]
fn a_feed_severity_the_tracker_does_not_know_is_an_error_not_medium() {
    let t = tracker(&[("mining", "severe")]);
    let store = Fake::default();
    let mut pending = Pending::default();
    let events = [hit(100, "10.0.0.1", "mining")];
    let error = t
        .track_hits(&store, &events, &rows_of(&events), false, &mut pending)
        .expect_err("unknown severity");
    assert!(matches!(error, StoreError::Hook(_)), "{error:?}");
    assert!(error.to_string().contains("`severe`"), "{error}");
    assert!(pending.alerts.is_empty() && pending.touched.is_empty());
}

#[test]
fn a_hit_of_a_feed_without_meta_counts_as_medium() {
    let t = tracker(&[]);
    let store = Fake::default();
    track(&t, &store, &[hit(100, "10.0.0.1", "gone")]).expect("tracked");
    assert_eq!(store.rows.borrow()[0].severity, Severity::Medium);
}

/// The outcome of a client over the hit threshold: the alerts the batch would publish and
/// the addresses it would quarantine, with `mark_enforced` answering as another node would.
fn over_threshold(enforced_elsewhere: bool) -> Pending {
    let mut config = Config::default();
    config.enforcement.mode = crate::config::EnforcementMode::Quarantine;
    config.enforcement.hits_threshold = 3;
    let t = tracker_with(&config, &[("mining", "high")]);
    let store = Fake::default();
    store.enforced_elsewhere.set(enforced_elsewhere);
    let hits = [
        hit(100, "10.0.0.1", "mining"),
        hit(110, "10.0.0.1", "mining"),
        hit(120, "10.0.0.1", "mining"),
    ];
    // The batch's hits are in the store by the end of its transaction.
    *store.stored_hits.borrow_mut() = hits.iter().map(|h| (h.client.ip(), h.time_ms)).collect();
    let mut pending = track(&t, &store, &hits).expect("tracked");
    t.check_batch(&store, &mut pending).expect("checked");
    pending
}

#[test]
fn a_repeat_offender_another_node_enforced_first_is_not_announced_twice() {
    let events = |p: &Pending| -> Vec<&str> { p.alerts.iter().map(|a| a.event).collect() };
    let here = over_threshold(false);
    assert_eq!(events(&here), ["incident.opened", "quarantine.on"]);
    assert_eq!(here.quarantined.len(), 1);

    let elsewhere = over_threshold(true);
    assert_eq!(
        events(&elsewhere),
        ["incident.opened"],
        "the node that marked it announced it"
    );
    assert!(elsewhere.quarantined.is_empty());
}

/// Keeps what the tracker hands its hit sink, batch by batch.
#[derive(Default)]
struct Keep(std::sync::Mutex<Vec<Vec<AttributedHit>>>);

impl AttributedHitSink for Keep {
    fn committed(&self, hits: Vec<AttributedHit>) {
        self.0.lock().unwrap().push(hits);
    }
}

/// (client, incident id) of every hit of every batch handed over so far.
fn handed(keep: &Keep) -> Vec<Vec<(String, Option<i64>)>> {
    let batches = keep.0.lock().unwrap();
    batches
        .iter()
        .map(|b| {
            b.iter()
                .map(|h| (h.event.client.ip().to_string(), h.incident_id))
                .collect()
        })
        .collect()
}

#[test]
fn committed_hits_reach_the_hit_sink_once_each_with_their_incident() {
    use poolguard_store::hook::BatchHook;
    let keep = Arc::new(Keep::default());
    let t = tracker(&[("mining", "high")]).with_hit_sink(keep.clone());
    let store = Fake::default();
    let first = [
        hit(100, "10.0.0.1", "mining"),
        hit(110, "10.0.0.2", "mining"),
        hit(120, "10.0.0.1", "mining"),
    ];
    t.on_hits(&store, &first, &rows_of(&first), false)
        .expect("tracked");
    assert!(handed(&keep).is_empty(), "nothing before the commit");
    t.committed();
    let ip = |s: &str| s.to_string();
    assert_eq!(
        handed(&keep),
        [[
            (ip("10.0.0.1"), Some(1)),
            (ip("10.0.0.2"), Some(2)),
            (ip("10.0.0.1"), Some(1))
        ]]
    );
    {
        let batches = keep.0.lock().unwrap();
        assert_eq!(batches[0][0].category.as_deref(), Some("mining"));
        assert_eq!(
            batches[0][0].action,
            Some(poolguard_model::Action::Sinkhole)
        );
    }

    // A batch that did not commit hands nothing over: its hits come again when stored.
    let again = [hit(200, "10.0.0.2", "mining")];
    t.on_hits(&store, &again, &rows_of(&again), false)
        .expect("tracked");
    t.batch_failed();
    t.committed();
    assert_eq!(handed(&keep).len(), 1);
    t.on_hits(&store, &again, &rows_of(&again), true)
        .expect("tracked");
    t.committed();
    assert_eq!(handed(&keep)[1], [(ip("10.0.0.2"), Some(2))]);
}

#[test]
fn hits_whose_tracking_failed_still_reach_the_hit_sink_without_an_incident() {
    use poolguard_store::hook::BatchHook;
    let keep = Arc::new(Keep::default());
    let t = tracker(&[("mining", "severe")]).with_hit_sink(keep.clone());
    let events = [hit(100, "10.0.0.1", "mining")];
    t.on_hits(&Fake::default(), &events, &rows_of(&events), false)
        .expect_err("unknown severity");
    // The writer rolls the tracking back but commits the hit.
    t.committed();
    assert_eq!(handed(&keep), [[("10.0.0.1".to_string(), None)]]);
}
