//! The incident tracker inside the store writer, without DNS: attachment within one batch, the
//! incidents-per-window threshold, and the rule that incident bookkeeping never costs evidence.

use std::net::SocketAddr;
use std::sync::Arc;

use poolguard::clients::Ledger;
use poolguard::config::{Config, StoreConfig};
use poolguard::incidents::config::EnforcementMode;
use poolguard::incidents::track::Tracker;
use poolguard::incidents::{Accountability, Alerts, ManualClock};
use poolguard::record::{Outcome, QueryEvent, Sink, Transport};
use poolguard::store::hook::BatchHook;
use poolguard::store::{self, Store, WriterHandle};

/// 2026-11-01T00:00:00Z.
const T0: i64 = 1_793_491_200_000;
const LEDGER: &str = "network,mac,asset,kind,location,department,owner,contact\n\
10.0.0.7,aa:bb:cc:dd:ee:ff,rig-7,workstation,A-1,计算机学院,张伟,z@example.edu\n";

fn hit(time_ms: i64, client: &str, name: &str, outcome: Outcome) -> QueryEvent {
    let client: SocketAddr = client.parse().expect("addr");
    QueryEvent {
        time_ms,
        client,
        transport: Transport::Udp,
        name: name.into(),
        qtype: "A".into(),
        outcome,
        feed: outcome.is_hit().then(|| Arc::from("mining")),
        rule: outcome.is_hit().then(|| Arc::from(name)),
        rcode: "NOERROR",
        answer: "".into(),
        latency_us: 10,
        upstream: None,
    }
}

struct Bed {
    _dir: tempfile::TempDir,
    cfg: StoreConfig,
    ledger: poolguard::clients::SharedLedger,
    store: Store,
    sink: Arc<dyn Sink>,
    writer: WriterHandle,
    acc: Arc<Accountability>,
}

fn bed(tweak: impl FnOnce(&mut Config)) -> Bed {
    bed_with(tweak, Alerts::disabled())
}

/// [`bed`] whose alerts go to `alerts`.
fn bed_with(tweak: impl FnOnce(&mut Config), alerts: Alerts) -> Bed {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = StoreConfig {
        path: dir.path().join("pg.db"),
        query_retention_days: 36_500,
        hit_retention_days: 36_500,
        ..StoreConfig::default()
    };
    let mut config = Config::default();
    tweak(&mut config);
    let acc = Arc::new(Accountability::new(
        &config,
        Arc::new(ManualClock::at(T0)),
        alerts,
    ));
    let store = store::open(&cfg).expect("store");
    let ledger = Ledger::from_reader(LEDGER.as_bytes(), std::path::Path::new("l.csv"))
        .expect("ledger")
        .0
        .shared();
    let (sink, writer) = store::writer::spawn_with(
        &store,
        &cfg,
        ledger.clone(),
        Some(Arc::new(Tracker::new(acc.clone()))),
    )
    .expect("writer");
    Bed {
        _dir: dir,
        cfg,
        ledger,
        store,
        sink,
        writer,
        acc,
    }
}

/// Staff close every open incident at `closed_ms`, through their own connection as the API does.
fn close_open_incidents(store: &Store, closed_ms: i64) {
    store
        .write_connection()
        .expect("conn")
        .execute(
            "UPDATE incidents SET status = 'closed', closed_ms = ?1 WHERE status != 'closed'",
            [closed_ms],
        )
        .expect("close");
}

fn one(store: &Store, sql: &str) -> i64 {
    store
        .write_connection()
        .expect("conn")
        .query_row(sql, [], |r| r.get(0))
        .expect(sql)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_attach_within_one_batch_and_by_asset() {
    let b = bed(|_| {});
    // Same asset from two ports, one allowed query: all in one batch.
    b.sink
        .submit(hit(T0, "10.0.0.7:1000", "a.pool.test", Outcome::Blocked));
    b.sink.submit(hit(
        T0 + 1,
        "10.0.0.7:1001",
        "b.pool.test",
        Outcome::CnameBlocked,
    ));
    b.sink.submit(hit(
        T0 + 2,
        "10.0.0.7:1002",
        "www.ok.test",
        Outcome::Allowed,
    ));
    b.sink.submit(hit(
        T0 + 3,
        "10.0.0.8:1000",
        "a.pool.test",
        Outcome::IpBlocked,
    ));
    b.writer.flush().await.expect("flush");
    assert_eq!(one(&b.store, "SELECT count(*) FROM incidents"), 2);
    assert_eq!(
        one(
            &b.store,
            "SELECT hit_count FROM incidents WHERE client_key = 'asset:rig-7'"
        ),
        2
    );
    assert_eq!(
        one(
            &b.store,
            "SELECT name_count FROM incidents WHERE client_key = 'asset:rig-7'"
        ),
        2
    );
    assert_eq!(
        one(
            &b.store,
            "SELECT last_hit_ms FROM incidents WHERE client_key = 'asset:rig-7'"
        ),
        T0 + 1
    );
    assert_eq!(
        one(
            &b.store,
            "SELECT count(*) FROM incidents WHERE client_key = 'ip:10.0.0.8'"
        ),
        1
    );
    // Each incident's evidence is exactly its client key's hits, oldest first.
    let conn = b.store.write_connection().expect("conn");
    let evidence = |key: &str| -> Vec<(i64, String, String)> {
        let id = one(
            &b.store,
            &format!("SELECT id FROM incidents WHERE client_key = '{key}'"),
        );
        poolguard::incidents::db::hits(&conn, id, 100)
            .expect("hits")
            .into_iter()
            .map(|h| (h.time_ms, h.client, h.name))
            .collect()
    };
    assert_eq!(
        evidence("asset:rig-7"),
        vec![
            (T0, "10.0.0.7".to_string(), "a.pool.test".to_string()),
            (T0 + 1, "10.0.0.7".to_string(), "b.pool.test".to_string()),
        ]
    );
    assert_eq!(
        evidence("ip:10.0.0.8"),
        vec![(T0 + 3, "10.0.0.8".to_string(), "a.pool.test".to_string())]
    );
    b.writer.shutdown().await.expect("shutdown");
}

impl Bed {
    /// One blocked query of `client` stored as its own batch (submitted, then flushed).
    async fn store_hit(&self, time_ms: i64, client: &str, name: &str) {
        self.sink
            .submit(hit(time_ms, client, name, Outcome::Blocked));
        self.writer.flush().await.expect("flush");
    }

    /// Stops the writer and starts a new one (a new tracker, as after a process restart).
    async fn restart_writer(mut self) -> Self {
        self.writer.shutdown().await.expect("shutdown");
        let (sink, writer) = store::writer::spawn_with(
            &self.store,
            &self.cfg,
            self.ledger.clone(),
            Some(Arc::new(Tracker::new(self.acc.clone()))),
        )
        .expect("writer");
        self.sink = sink;
        self.writer = writer;
        self
    }
}

/// Distinct names are counted once per incident across batches (the tracker remembers the
/// names it stored and skips them), and again for a new incident of the same client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_names_count_once_per_incident_across_batches() {
    let b = bed(|_| {});
    let name_count = || {
        one(
            &b.store,
            "SELECT name_count FROM incidents WHERE status != 'closed'",
        )
    };
    for (i, name) in ["a.pool.test", "a.pool.test", "b.pool.test", "a.pool.test"]
        .iter()
        .enumerate()
    {
        b.store_hit(T0 + i as i64, "10.0.0.9:53", name).await;
    }
    assert_eq!(name_count(), 2);
    close_open_incidents(&b.store, 1);
    b.store_hit(T0 + 10, "10.0.0.9:53", "a.pool.test").await;
    assert_eq!(name_count(), 1, "the new incident counts its own names");
    b.writer.shutdown().await.expect("shutdown");
}

/// The tracker remembers open incidents between batches; an incident staff closed meanwhile
/// (through another connection, as the API does) takes no more hits, and the next hit opens
/// a new incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_incident_closed_by_staff_takes_no_more_hits() {
    let b = bed(|_| {});
    let row = |id: i64| -> (i64, i64, String) {
        b.store
            .write_connection()
            .expect("conn")
            .query_row(
                "SELECT hit_count, last_hit_ms, status FROM incidents WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("incident")
    };
    for i in 0..3 {
        b.store_hit(T0 + i * 1000, "10.0.0.9:53", "x.pool.test")
            .await;
    }
    assert_eq!(
        row(1),
        (3, T0 + 2000, "open".to_string()),
        "three batches, one incident"
    );
    close_open_incidents(&b.store, 1);
    b.store_hit(T0 + 3000, "10.0.0.9:53", "x.pool.test").await;
    assert_eq!(
        row(1),
        (3, T0 + 2000, "closed".to_string()),
        "closed: unchanged"
    );
    assert_eq!(
        row(2),
        (1, T0 + 3000, "open".to_string()),
        "the next hit opened a new one"
    );
    assert_eq!(
        one(&b.store, "SELECT opened_ms FROM incidents WHERE id = 2"),
        T0 + 3000
    );
    b.writer.shutdown().await.expect("shutdown");
}

/// A replayed hit (deferred to the spool under load) stamped before its key's incident was
/// closed belongs to the closed incident: it is added there with a note and opens no new
/// incident. A hit of the same replayed batch stamped after the closure opens a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_hit_from_before_the_closure_joins_the_closed_incident() {
    let b = bed(|_| {});
    let row = |id: i64| -> (i64, i64, i64, String) {
        b.store
            .write_connection()
            .expect("conn")
            .query_row(
                "SELECT hit_count, last_hit_ms, name_count, status FROM incidents WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("incident")
    };
    b.store_hit(T0, "10.0.0.9:53", "a.pool.test").await;
    close_open_incidents(&b.store, T0 + 5000);

    // The replay, as the writer runs it: the hits stored, then the tracker, one transaction.
    let events = [
        hit(T0 + 1000, "10.0.0.9:53", "b.pool.test", Outcome::Blocked),
        hit(T0 + 2000, "10.0.0.9:53", "a.pool.test", Outcome::Blocked),
        hit(T0 + 6000, "10.0.0.9:53", "c.pool.test", Outcome::Blocked),
    ];
    let mut conn = b.store.write_connection().expect("conn");
    let tx = conn.transaction().expect("tx");
    let mut hits = Vec::new();
    store::writer::insert_events_into(&tx, &events, &b.ledger.load(), true, Some(&mut hits), None)
        .expect("stored");
    let tracker = Tracker::new(b.acc.clone());
    tracker
        .on_hits(
            &store::incidents_tx::SqliteIncidentTx::new(&tx),
            &events,
            &hits,
            true,
        )
        .expect("tracked");
    tx.commit().expect("commit");
    tracker.committed();

    assert_eq!(
        row(1),
        (3, T0 + 2000, 2, "closed".to_string()),
        "late hits joined it"
    );
    assert_eq!(
        row(2),
        (1, T0 + 6000, 1, "open".to_string()),
        "the later hit opened one"
    );
    assert_eq!(
        one(&b.store, "SELECT opened_ms FROM incidents WHERE id = 2"),
        T0 + 6000
    );
    assert_eq!(
        one(
            &b.store,
            "SELECT count(*) FROM incident_notes WHERE incident_id = 1 AND author = 'system' \
             AND text LIKE '2 hit(s) from before%'"
        ),
        1
    );
    b.writer.shutdown().await.expect("shutdown");
}

/// Once the incidents threshold is found unreached for an open incident, later batches skip
/// the count; a hit older than that check (replayed from the spool) must still be counted
/// against its own window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_threshold_is_rechecked_for_a_hit_older_than_the_last_check() {
    const DAY: i64 = 86_400_000;
    let b = bed(|c| {
        c.enforcement.mode = EnforcementMode::Notify;
        c.enforcement.incidents_threshold = 2;
        c.enforcement.incidents_window =
            poolguard::incidents::config::Span(std::time::Duration::from_millis(DAY as u64));
    });
    let enforced = || {
        one(
            &b.store,
            "SELECT count(*) FROM incidents WHERE enforced_ms IS NOT NULL",
        )
    };
    b.store_hit(T0, "10.0.0.9:53", "x.pool.test").await;
    close_open_incidents(&b.store, 1);
    // Two days later: one incident within a day of this hit, below the threshold.
    for t in [T0 + 2 * DAY, T0 + 2 * DAY + 1000] {
        b.store_hit(t, "10.0.0.9:53", "x.pool.test").await;
    }
    assert_eq!(enforced(), 0);
    // A hit from half a day after the first incident: its window holds both incidents.
    b.store_hit(T0 + DAY / 2, "10.0.0.9:53", "x.pool.test")
        .await;
    assert_eq!(
        enforced(),
        1,
        "the older hit's window reaches the threshold"
    );
    b.writer.shutdown().await.expect("shutdown");
}

/// The hits threshold counts the address's stored hits within the window only, including
/// hits stored before a restart (the tracker re-reads them from the hit blocks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_threshold_counts_stored_hits_within_the_window_across_a_restart() {
    let mut b = bed(|c| {
        c.enforcement.mode = EnforcementMode::Quarantine;
        c.enforcement.incidents_threshold = 0;
        c.enforcement.hits_threshold = 3;
    });
    let ip = "10.0.0.9".parse().expect("ip");
    let hour = 3_600_000;
    // (time, quarantined after it): the first is outside the 1 h window of the later ones.
    let steps = [
        (T0 - 2 * hour, false),
        (T0, false),
        (T0 + 1_000, false),
        (T0 + 2_000, true),
    ];
    for (i, (t, want)) in steps.into_iter().enumerate() {
        if i == 2 {
            b = b.restart_writer().await;
        }
        b.store_hit(t, "10.0.0.9:53000", "x.pool.test").await;
        assert_eq!(b.acc.quarantine.contains(ip), want, "after hit {}", i + 1);
    }
    b.writer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_third_incident_in_window_quarantines() {
    let b = bed(|c| {
        c.enforcement.mode = EnforcementMode::Quarantine;
        c.enforcement.incidents_threshold = 3;
    });
    let ip = "10.0.0.9".parse().expect("ip");
    for i in 0..3 {
        b.store_hit(T0 + i * 86_400_000, "10.0.0.9:53000", "x.pool.test")
            .await;
        let quarantined = b.acc.quarantine.contains(ip);
        assert_eq!(quarantined, i == 2, "after incident {}", i + 1);
        // Staff close it as a false positive; the next hit opens a new incident.
        close_open_incidents(&b.store, 1);
    }
    assert_eq!(
        one(
            &b.store,
            "SELECT count(*) FROM quarantine WHERE ip = '10.0.0.9'"
        ),
        1
    );
    assert_eq!(
        one(
            &b.store,
            "SELECT count(*) FROM audit WHERE action = 'quarantine.add' AND actor = 'system'"
        ),
        1
    );
    assert_eq!(
        one(
            &b.store,
            "SELECT count(*) FROM incident_notes WHERE author = 'system'"
        ),
        1
    );
    b.writer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_bookkeeping_failure_never_loses_a_hit() {
    let b = bed(|_| {});
    b.store
        .write_connection()
        .expect("conn")
        .execute_batch("DROP TABLE incident_names")
        .expect("break the tracker");
    for i in 0..10 {
        b.sink.submit(hit(
            T0 + i,
            "10.0.0.7:1000",
            "a.pool.test",
            Outcome::Blocked,
        ));
    }
    b.writer.flush().await.expect("flush");
    assert_eq!(
        poolguard::store::blocks::total_rows(
            &b.store.write_connection().expect("conn"),
            poolguard::store::read::Table::Hits
        )
        .expect("hits"),
        10,
        "every hit kept"
    );
    assert_eq!(
        one(&b.store, "SELECT count(*) FROM incidents"),
        0,
        "tracking rolled back"
    );
    assert!(b.writer.health().status().healthy);
    b.writer.shutdown().await.expect("shutdown");
}

/// A batch whose incident bookkeeping fails part-way is rolled back whole: no incident, and no
/// alert for the incident opened before the failure (the hits are kept). Once the fault is
/// gone, the next hit opens the incident and announces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_tracking_step_announces_nothing() {
    let (alerts, mut rx) = Alerts::channel();
    let b = bed_with(|_| {}, alerts);
    let conn = b.store.write_connection().expect("conn");
    conn.execute_batch(
        "CREATE TRIGGER fail_second BEFORE INSERT ON incidents WHEN NEW.client = '10.0.0.8' \
         BEGIN SELECT RAISE(ABORT, 'injected'); END;",
    )
    .expect("trigger");
    b.sink
        .submit(hit(T0, "10.0.0.7:1000", "a.pool.test", Outcome::Blocked));
    b.sink.submit(hit(
        T0 + 1,
        "10.0.0.8:1000",
        "a.pool.test",
        Outcome::Blocked,
    ));
    b.writer.flush().await.expect("flush");
    assert_eq!(one(&b.store, "SELECT count(*) FROM incidents"), 0);
    assert_eq!(
        poolguard::store::blocks::total_rows(&conn, poolguard::store::read::Table::Hits)
            .expect("hits"),
        2
    );
    assert!(
        rx.try_recv().is_err(),
        "no alert for a rolled-back incident"
    );

    conn.execute_batch("DROP TRIGGER fail_second")
        .expect("drop");
    b.store_hit(T0 + 2, "10.0.0.7:1000", "a.pool.test").await;
    let ev = rx.try_recv().expect("an alert");
    assert_eq!(ev.event, "incident.opened");
    assert!(rx.try_recv().is_err(), "one alert");
    b.writer.shutdown().await.expect("shutdown");
}
