//! The PostgreSQL store behind the store traits, against a real PostgreSQL server: the same
//! answers as the SQLite store (paging, filters, incidents, quarantine, audit, alerts), and
//! the races two nodes can run into settled by the database (one claim per deadline alert,
//! one winner of two closes, a refused move writes nothing, one sender of a period's
//! bulletin).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::postgres::Postgres;
use poolguard::model::{Status, TransitionError};
use poolguard::store::bulletin::BulletinStore;
use poolguard::store::incidents::{Delivery, IncidentFilter};
use poolguard::store::{
    Actor, AlertStore, AuditStore, Cursor, EvidenceFilter, EvidenceStore, IncidentChange,
    IncidentError, IncidentStore, NameFilter, QuarantineAdd, QuarantineRelease, QuarantineStore,
    StoreError, Table, Updated,
};
use poolguard::store_pg::PgStore;
use poolguard::store_pg::changes::{Change, Changes};

/// Opens the store of `db` as `node`.
async fn open(pg: &Postgres, db: &str, node: &str) -> PgStore {
    pg.store(db, node).await
}

/// A server with database `db` migrated (by opening it once).
async fn server(db: &str) -> (Postgres, PgStore) {
    let pg = Postgres::start();
    pg.create_database(db);
    let store = open(&pg, db, "node-a").await;
    (pg, store)
}

/// 30 hits of two nodes, two per 10 ms (one each, same time): clients 10.0.{0,1,2}.1 by
/// `i % 3`, names `pool.minexmr.com`, `minexmr.com`, `x_y.example.org` by `i % 3`, node-a's
/// with department `physics`; plus one `q.a.b.org` at time 0.
fn insert_hits(pg: &Postgres, db: &str) {
    pg.psql(
        db,
        "INSERT INTO hits (node, local_block, local_index, time_ms, client, client_key, port, \
         transport, name, qtype, action, feed, rule, rcode, answer, latency_us, department) \
         SELECT CASE WHEN i % 2 = 0 THEN 'node-a' ELSE 'node-b' END, i / 4, i % 4, \
           1000 + (i / 2) * 10, ('10.0.' || (i % 3) || '.1')::inet, 'ip:10.0.' || (i % 3) || '.1', \
           5353, 'udp', \
           CASE i % 3 WHEN 0 THEN 'pool.minexmr.com' WHEN 1 THEN 'minexmr.com' ELSE 'x_y.example.org' END, \
           CASE WHEN i < 5 THEN 'AAAA' ELSE 'A' END, 'nxdomain', 'mining', 'minexmr.com', 'NXDOMAIN', '', 100, \
           CASE WHEN i % 2 = 0 THEN 'physics' END \
         FROM generate_series(0, 29) AS i; \
         INSERT INTO hits (node, local_block, local_index, time_ms, client, client_key, port, \
         transport, name, qtype, action, feed, rule, rcode, answer, latency_us) VALUES \
         ('node-c', 0, 0, 0, '10.9.9.9', 'ip:10.9.9.9', 1, 'tcp', 'q.a.b.org', 'A', 'refuse', \
          'other', 'b.org', 'REFUSED', '', 5)",
    );
}

/// Every row of `filter`'s pages, newest first, paging `per_page` at a time.
async fn all_pages(
    store: &PgStore,
    filter: EvidenceFilter,
    per_page: usize,
) -> Vec<(i64, i64, String)> {
    let mut out = Vec::new();
    let mut cursor = None;
    // Bounded: 31 rows, at least one per page.
    for _ in 0..40 {
        let page = store
            .list_evidence(
                Table::Hits,
                EvidenceFilter {
                    cursor: cursor.clone(),
                    limit: per_page,
                    ..filter.clone()
                },
            )
            .await
            .expect("page");
        out.extend(
            page.items
                .iter()
                .map(|r| (r.time_ms, r.id, r.client.clone())),
        );
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
    panic!("paging never ended");
}

fn count(store_rows: Vec<(i64, i64, String)>) -> usize {
    store_rows.len()
}

#[tokio::test]
async fn hit_pages_return_every_row_once_and_filter_like_sqlite() {
    let (pg, store) = server("evidence").await;
    insert_hits(&pg, "evidence");
    let rows = all_pages(&store, EvidenceFilter::default(), 7).await;
    assert_eq!(rows.len(), 31);
    let distinct: HashSet<_> = rows.iter().collect();
    assert_eq!(distinct.len(), 31, "no row twice: {rows:?}");
    assert!(
        rows.windows(2).all(|w| w[0].0 >= w[1].0),
        "newest first: {rows:?}"
    );

    let with = |f: EvidenceFilter| all_pages(&store, f, 4);
    let net = |s: &str| Some(s.parse().expect("net"));
    let name = |n: NameFilter| EvidenceFilter {
        name: Some(n),
        ..Default::default()
    };
    assert_eq!(
        count(
            with(EvidenceFilter {
                client: net("10.0.1.0/24"),
                ..Default::default()
            })
            .await
        ),
        10
    );
    assert_eq!(
        count(
            with(EvidenceFilter {
                client: net("10.0.0.0/16"),
                ..Default::default()
            })
            .await
        ),
        30
    );
    assert_eq!(
        count(with(name(NameFilter::Exact("minexmr.com".into()))).await),
        10
    );
    assert_eq!(
        count(with(name(NameFilter::Suffix("minexmr.com".into()))).await),
        20
    );
    assert_eq!(
        count(with(name(NameFilter::Suffix("example.org".into()))).await),
        10
    );
    assert_eq!(
        count(with(name(NameFilter::Suffix("y.example.org".into()))).await),
        0
    );
    // `_` is a character of the name, not LIKE's wildcard.
    assert_eq!(
        count(with(name(NameFilter::Suffix("a_b.org".into()))).await),
        0
    );
    assert_eq!(
        count(with(name(NameFilter::Suffix("b.org".into()))).await),
        1
    );
    assert_eq!(
        count(
            with(EvidenceFilter {
                qtype: Some("AAAA".into()),
                ..Default::default()
            })
            .await
        ),
        5
    );
    assert_eq!(
        count(
            with(EvidenceFilter {
                action: Some("refuse".into()),
                ..Default::default()
            })
            .await
        ),
        1
    );
    assert_eq!(
        count(
            with(EvidenceFilter {
                feed: Some("mining".into()),
                ..Default::default()
            })
            .await
        ),
        30
    );
    assert_eq!(
        count(
            with(EvidenceFilter {
                department: Some("physics".into()),
                ..Default::default()
            })
            .await
        ),
        15
    );
    let window = with(EvidenceFilter {
        since_ms: Some(1010),
        until_ms: Some(1030),
        ..Default::default()
    })
    .await;
    assert_eq!(window.len(), 4, "two times, two nodes each: {window:?}");

    let bad = store
        .list_evidence(
            Table::Hits,
            EvidenceFilter {
                cursor: Some(Cursor("not-a-cursor".into())),
                limit: 5,
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(bad, Err(StoreError::BadCursor)), "{bad:?}");

    // The full query log stays on each node: without a local store there is none here.
    let queries = store
        .list_evidence(
            Table::Queries,
            EvidenceFilter {
                limit: 5,
                ..Default::default()
            },
        )
        .await
        .expect("queries");
    assert!(queries.items.is_empty());

    let stats = store.stats(0, 10_000, 2).await.expect("stats");
    assert_eq!(stats.hits_by_action[0].value, "nxdomain");
    assert_eq!(stats.hits_by_action[0].count, 30);
    assert_eq!(stats.top_blocked_names.len(), 2);
    assert_eq!(stats.top_clients[0].count, 10);
    assert_eq!(stats.top_departments[0].value, "physics");
    assert!(stats.queries_by_action.is_empty());

    let one = store
        .client_summary("10.0.2.1".parse().expect("ip"), 3)
        .await
        .expect("summary");
    assert_eq!(one.hit_count, 10);
    assert_eq!(one.recent_hits.len(), 3);
    assert_eq!(one.first_seen_ms, Some(1010));
    assert_eq!(one.last_seen_ms, Some(1140));
    let snapshot = one.recent_hits.iter().find(|r| r.department.is_some());
    assert_eq!(
        snapshot
            .and_then(|r| r.identity.as_ref())
            .and_then(|i| i.department.as_deref()),
        Some("physics")
    );
}

fn actor() -> Actor {
    Actor {
        name: "alice".into(),
        role: "investigator".into(),
    }
}

fn change(status: Status, resolution: Option<&str>) -> IncidentChange {
    IncidentChange {
        status: Some(status),
        assignee: None,
        device: None,
        owner: None,
        resolution: resolution.map(str::to_string),
        actor: actor(),
        now_ms: 1500,
    }
}

/// An open incident of 10.0.0.1 (first hit 1000, last 1150), identify due 2000, report 3000.
fn insert_incident(pg: &Postgres, db: &str) -> i64 {
    pg.psql(
        db,
        "WITH i AS (INSERT INTO incidents (client_key, client, department, opened_ms, \
         last_hit_ms, identify_due_ms, report_due_ms, opened_by, hit_count, feeds) \
         VALUES ('ip:10.0.0.1', '10.0.0.1', 'physics', 1000, 1150, 2000, 3000, 'node-a', 10, \
         'mining') RETURNING id) SELECT id FROM i",
    )
    .parse()
    .expect("incident id")
}

#[tokio::test]
async fn incidents_list_show_and_change_in_one_transaction() {
    let (pg, store) = server("incidents").await;
    insert_hits(&pg, "incidents");
    let id = insert_incident(&pg, "incidents");
    let audit_rows = || pg.psql("incidents", "SELECT count(*) FROM audit");

    let detail = store
        .incident_detail(id, 4)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(detail.incident.client, "10.0.0.1");
    assert_eq!(detail.incident.feeds, ["mining"]);
    let times: Vec<i64> = detail.hits.iter().map(|h| h.time_ms).collect();
    assert_eq!(
        times,
        [1000, 1010, 1030, 1040],
        "the oldest hits of its key"
    );
    assert!(
        store
            .incident_detail(id + 100, 4)
            .await
            .expect("read")
            .is_none()
    );

    // A refused move writes nothing.
    let refused = store
        .update_incident(id, change(Status::Identified, None))
        .await;
    assert!(
        matches!(
            refused,
            Err(IncidentError::Refused(
                TransitionError::NeedsIdentification(_)
            ))
        ),
        "{refused:?}"
    );
    assert_eq!(audit_rows(), "0");
    assert_eq!(
        pg.psql(
            "incidents",
            &format!("SELECT status FROM incidents WHERE id = {id}")
        ),
        "open"
    );

    let moved = store
        .update_incident(id, change(Status::Investigating, None))
        .await
        .expect("allowed");
    assert!(matches!(moved, Updated::Changed(ref r) if r.status == Status::Investigating));
    assert_eq!(
        pg.psql("incidents", "SELECT node || ' ' || detail FROM audit"),
        "node-a status open→investigating"
    );
    let again = store
        .update_incident(id, change(Status::Investigating, None))
        .await
        .expect("same");
    assert!(matches!(again, Updated::Unchanged(_)));
    assert_eq!(audit_rows(), "1", "nothing changed, nothing audited");
    assert!(matches!(
        store
            .update_incident(id + 100, change(Status::Investigating, None))
            .await,
        Err(IncidentError::NotFound(_))
    ));

    let note = store
        .add_note(id, actor(), "called the owner".into(), 1600)
        .await
        .expect("note")
        .expect("incident exists");
    assert!(
        store
            .add_note(id + 100, actor(), "x".into(), 1600)
            .await
            .expect("note")
            .is_none()
    );
    // The investigator's account: stored, audited once, unchanged = nothing written.
    let narrative = poolguard::store::narrative::Narrative {
        cause: Some("xmrig in a game mod".into()),
        actions: vec!["disconnected".into()],
        ..Default::default()
    };
    for _ in 0..2 {
        let stored = store
            .set_narrative(id, narrative.clone(), actor(), 1700)
            .await
            .expect("narrative");
        assert_eq!(stored.as_ref(), Some(&narrative));
    }
    assert!(
        store
            .set_narrative(id + 100, narrative.clone(), actor(), 1700)
            .await
            .expect("narrative")
            .is_none()
    );
    let report = store
        .incident_report(id, 100)
        .await
        .expect("report")
        .expect("exists");
    assert_eq!(report.notes, [note]);
    assert_eq!(report.narrative, narrative);
    assert_eq!(
        report.actions.len(),
        3,
        "the update, the note and one narrative change"
    );
    assert_eq!(report.actions[2].detail, "narrative: cause, actions");
    assert_eq!(report.hits.len(), 10);

    // Of two nodes closing at once, one wins; the other is refused (already closed).
    let b = open(&pg, "incidents", "node-b").await;
    let (ra, rb) = tokio::join!(
        store.update_incident(id, change(Status::Closed, Some("false-positive"))),
        b.update_incident(id, change(Status::Closed, Some("device-removed"))),
    );
    let results = [ra, rb];
    let won = results
        .iter()
        .filter(|r| matches!(r, Ok(Updated::Changed(_))))
        .count();
    assert_eq!(won, 1, "{results:?}");
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(IncidentError::Refused(TransitionError::Closed)))),
        "{results:?}"
    );
    // The first update, the note, the narrative and the one close that won.
    assert_eq!(audit_rows(), "4");

    // Lists: filters and paging by id.
    pg.psql(
        "incidents",
        "INSERT INTO incidents (client_key, client, department, opened_ms, last_hit_ms, \
         identify_due_ms, report_due_ms, opened_by) SELECT 'ip:10.1.0.' || i, \
         ('10.1.0.' || i)::inet, CASE WHEN i % 2 = 0 THEN 'chemistry' END, 5000 + i, 5000 + i, \
         9000, 9500, 'node-b' FROM generate_series(1, 9) AS i",
    );
    let list = |f: IncidentFilter| store.list_incidents(f);
    let base = IncidentFilter {
        limit: 4,
        now: 8000,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..5 {
        let page = list(IncidentFilter {
            cursor: cursor.clone(),
            ..base.clone()
        })
        .await
        .expect("list");
        seen.extend(page.items.iter().map(|r| r.id));
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 10);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );
    let n = |f: IncidentFilter| async move {
        list(IncidentFilter { limit: 50, ..f })
            .await
            .expect("list")
            .items
            .len()
    };
    assert_eq!(
        n(IncidentFilter {
            department: Some("chemistry".into()),
            ..base.clone()
        })
        .await,
        4
    );
    assert_eq!(
        n(IncidentFilter {
            status: Some(Status::Closed),
            ..base.clone()
        })
        .await,
        1
    );
    assert_eq!(
        n(IncidentFilter {
            since: Some(5005),
            ..base.clone()
        })
        .await,
        5
    );
    assert_eq!(
        n(IncidentFilter {
            overdue: Some(true),
            ..base.clone()
        })
        .await,
        0
    );
    assert_eq!(
        n(IncidentFilter {
            overdue: Some(true),
            now: 9200,
            ..base.clone()
        })
        .await,
        9,
        "closed before its deadline: never overdue"
    );
    assert_eq!(
        n(IncidentFilter {
            overdue: Some(false),
            now: 9200,
            ..base.clone()
        })
        .await,
        1
    );
    let bad = list(IncidentFilter {
        cursor: Some(Cursor("x".into())),
        ..base.clone()
    })
    .await;
    assert!(matches!(bad, Err(StoreError::BadCursor)));

    assert_eq!(store.open_counts(8000).await.expect("counts"), (9, 0));
    assert_eq!(store.open_counts(9200).await.expect("counts"), (9, 9));

    pg.psql(
        "incidents",
        "INSERT INTO hit_names (name, first_ms, last_ms) VALUES ('minexmr.com', 1010, 1150)",
    );
    // 10.0.0.1 was a Kea-leased PC for node-a's hits and a RADIUS login for node-b's.
    pg.psql(
        "incidents",
        "UPDATE hits SET mac = '00:0c:00:00:00:01', owner = 'Li Na', hostname = 'lab-pc', \
         identity_source = 'kea' WHERE client = '10.0.0.1' AND node = 'node-a'; \
         UPDATE hits SET account = 'lina', identity_source = 'radius' \
         WHERE client = '10.0.0.1' AND node = 'node-b'",
    );
    let summary = store.summary(0, 6000, 9200).await.expect("summary");
    assert_eq!(summary.hits, 31);
    let devices: Vec<_> = summary.top_offenders[0]
        .devices
        .iter()
        .map(|d| {
            (
                d.mac.as_deref(),
                d.account.as_deref(),
                d.hostname.as_deref(),
                d.owner.as_deref(),
                d.source.as_str(),
                d.hits,
            )
        })
        .collect();
    assert_eq!(
        devices,
        [
            (None, Some("lina"), None, None, "radius", 5),
            (
                Some("00:0c:00:00:00:01"),
                None,
                Some("lab-pc"),
                Some("Li Na"),
                "kea",
                5
            ),
        ],
        "{:?}",
        summary.top_offenders
    );
    assert_eq!(summary.incidents_opened, 10);
    assert_eq!(
        summary.incidents_closed, 1,
        "closed at 1500 by the test's clock"
    );
    assert_eq!(
        summary.incidents_overdue, 0,
        "judged at the period's end, before every deadline"
    );
    assert_eq!(summary.top_offenders[0].hits, 10);
    assert_eq!(summary.new_names.len(), 1);
    assert_eq!(summary.new_names[0].hits, 10);
    assert!(
        summary
            .by_department
            .iter()
            .any(|d| d.department == "chemistry" && d.opened == 4)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_claiming_deadline_alerts_never_get_the_same_one() {
    let (pg, a) = server("alerts").await;
    let b = open(&pg, "alerts", "node-b").await;
    pg.psql(
        "alerts",
        "INSERT INTO incidents (client_key, client, opened_ms, last_hit_ms, identify_due_ms, \
         report_due_ms, opened_by) SELECT 'ip:10.2.0.' || i, ('10.2.0.' || i)::inet, 1000, \
         1000, 2000, 3000, 'node-a' FROM generate_series(1, 60) AS i",
    );
    let mut claimed = Vec::new();
    // Several rounds of both at once, so the claims overlap rather than one finishing first.
    for _ in 0..3 {
        let (ra, rb) = tokio::join!(
            a.claim_deadline_alerts(2500, 600),
            b.claim_deadline_alerts(2500, 600)
        );
        claimed.extend(ra.expect("a claims"));
        claimed.extend(rb.expect("b claims"));
    }
    let keys: Vec<_> = claimed
        .iter()
        .map(|d| (d.incident_id, d.event, d.deadline))
        .collect();
    let distinct: HashSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "an alert claimed twice");
    assert_eq!(
        keys.len(),
        120,
        "identify overdue and report due soon, for each of 60"
    );
    assert!(
        a.claim_deadline_alerts(2500, 600)
            .await
            .expect("claim")
            .is_empty()
    );

    // The delivery log, newest first, by id pages, naming the node.
    for attempt in 1..=5 {
        let d = Delivery {
            id: 0,
            time: String::new(),
            event: "incident.overdue".into(),
            target: "https://hooks.example/x".into(),
            attempt,
            status: Some(500),
            ok: false,
            error: Some("500".into()),
            incident_id: Some(1),
        };
        b.log_delivery(d, 4000 + i64::from(attempt))
            .await
            .expect("log");
    }
    let first = a.deliveries(3, None).await.expect("page");
    assert_eq!(
        first.items.iter().map(|d| d.attempt).collect::<Vec<_>>(),
        [5, 4, 3]
    );
    let second = a.deliveries(3, first.next).await.expect("page");
    assert_eq!(
        second.items.iter().map(|d| d.attempt).collect::<Vec<_>>(),
        [2, 1]
    );
    assert!(second.next.is_none());
    assert_eq!(
        pg.psql("alerts", "SELECT DISTINCT node FROM alert_deliveries"),
        "node-b"
    );

    // The scheduled bulletin: of two nodes claiming one period at once, one sends it.
    let week = 7 * 86_400_000;
    let (ra, rb) = tokio::join!(
        a.claim_bulletin(0, week, 5000),
        b.claim_bulletin(0, week, 5000)
    );
    let won = [ra.expect("a claims"), rb.expect("b claims")];
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    assert!(!a.claim_bulletin(0, week, 6000).await.expect("again"));
    assert!(
        b.claim_bulletin(week, 2 * week, 6000)
            .await
            .expect("next week")
    );
}

/// The next change, within a bound.
async fn next(rx: &mut tokio::sync::broadcast::Receiver<Change>) -> Change {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a change within 20 s")
        .expect("channel open")
}

#[tokio::test]
async fn quarantine_changes_carry_audit_rows_and_reach_the_listener() {
    let (pg, a) = server("quarantine").await;
    let b = open(&pg, "quarantine", "node-b").await;
    let changes = Changes::spawn(b.connector().clone(), Duration::from_secs(30));
    let mut rx = changes.subscribe();
    // The listener reports a resync once it listens: from then on nothing is missed.
    assert_eq!(next(&mut rx).await, Change::Resync);

    let add = QuarantineAdd {
        ip: poolguard::model::net::parse_target("10.0.0.9").expect("ip"),
        reason: "miner".into(),
        incident_id: Some(7),
        actor: actor(),
        now_ms: 1000,
    };
    let (added, entry) = a.quarantine_add(add.clone()).await.expect("add");
    assert!(added);
    assert_eq!(entry.ip, "10.0.0.9");
    assert_eq!(next(&mut rx).await, Change::Quarantine);
    assert_eq!(
        pg.psql(
            "quarantine",
            "SELECT string_agg(node || ' ' || target, ',' ORDER BY id) FROM audit"
        ),
        "node-a quarantine/10.0.0.9,node-a incident/7"
    );
    let (again, _) = a.quarantine_add(add.clone()).await.expect("add");
    assert!(!again);
    assert_eq!(
        pg.psql("quarantine", "SELECT count(*) FROM audit"),
        "2",
        "nothing changed, nothing audited"
    );
    assert_eq!(b.quarantine_list().await.expect("list").len(), 1);

    let release = QuarantineRelease {
        ip: poolguard::model::net::parse_target("10.0.0.9").expect("ip"),
        reason: "cleaned".into(),
        actor: actor(),
        now_ms: 2000,
    };
    let gone = b
        .quarantine_release(release.clone())
        .await
        .expect("release");
    assert_eq!(gone.map(|e| e.incident_id), Some(Some(7)));
    assert_eq!(
        pg.psql(
            "quarantine",
            "SELECT count(*) FROM audit WHERE node = 'node-b'"
        ),
        "2"
    );
    assert!(
        b.quarantine_release(release)
            .await
            .expect("release")
            .is_none()
    );
    assert!(a.quarantine_list().await.expect("list").is_empty());

    // The audit log pages newest first.
    let first = a.audit_list(3, None).await.expect("audit");
    assert_eq!(first.items.len(), 3);
    let rest = a.audit_list(3, first.next).await.expect("audit");
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next.is_none());
    assert!(first.items[0].id > rest.items[0].id);

    // A whole network, in an emergency: kept and listed as the network.
    let (added, entry) = a
        .quarantine_add(QuarantineAdd {
            ip: poolguard::model::net::parse_target("10.20.0.9/24").expect("net"),
            incident_id: None,
            ..add.clone()
        })
        .await
        .expect("add a network");
    assert!(added);
    assert_eq!(entry.ip, "10.20.0.0/24");
    assert_eq!(
        b.quarantine_list().await.expect("list")[0].ip,
        "10.20.0.0/24"
    );
}
