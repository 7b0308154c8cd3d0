//! The block store (query log and hits), checked against a brute-force reference: every
//! filter, every page boundary, blocks whose time ranges overlap, the hit tables, and the
//! upgrades from the per-query and per-hit tables.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use poolguard::clients::Ledger;
use poolguard::record::{Outcome, QueryEvent, Transport};
use poolguard::store::{self, ListFilter, NameFilter, Store, StoredRow, Table, schema};

const T0: i64 = 1_795_000_000_000;

const CLIENTS: [&str; 6] = [
    "10.20.3.7",
    "10.20.3.8",
    "10.20.9.1",
    "192.0.2.44",
    "2001:db8::7",
    "2001:db8:1::9",
];
const NAMES: [&str; 7] = [
    "pool.minexmr.com",
    "xmr.pool.minexmr.com",
    "minexmr.com",
    "www.example.com",
    "example.com",
    "api.example.org",
    "localhost",
];

const LEDGER: &str = "network,mac,asset,kind,location,department,owner,contact
10.20.3.0/24,,lab,lab,B1,Physics,Ada,
10.20.9.1,,rig,gpu,B2,Chemistry,Bo,
2001:db8::/48,,v6,pc,B3,Library,Cy,
";

/// A small deterministic generator, so a failure reproduces.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// `batches` writer batches; each spans a time window overlapping its neighbours'.
fn events(batches: usize, per_batch: usize) -> Vec<Vec<QueryEvent>> {
    let mut rng = Lcg(7);
    let feed: Arc<str> = Arc::from("mining");
    (0..batches)
        .map(|b| {
            (0..per_batch)
                .map(|_| {
                    let client: IpAddr = CLIENTS[rng.next(CLIENTS.len())].parse().unwrap();
                    let name = NAMES[rng.next(NAMES.len())];
                    let blocked = name.contains("minexmr");
                    QueryEvent {
                        // Few distinct times, so ties (ordered by id) are common.
                        time_ms: T0 + (b * 40 + rng.next(60)) as i64,
                        client: SocketAddr::new(client, 1024 + rng.next(60000) as u16),
                        transport: if rng.next(4) == 0 {
                            Transport::Tcp
                        } else {
                            Transport::Udp
                        },
                        name: name.into(),
                        qtype: ["A", "AAAA", "HTTPS"][rng.next(3)].into(),
                        outcome: if blocked {
                            Outcome::Blocked
                        } else {
                            Outcome::Allowed
                        },
                        feed: blocked.then(|| feed.clone()),
                        rule: blocked.then(|| Arc::from("minexmr.com")),
                        rcode: if blocked { "NXDOMAIN" } else { "NOERROR" },
                        answer: if blocked { "" } else { "A 192.0.2.1" }.into(),
                        latency_us: rng.next(5000) as u32,
                        upstream: (!blocked).then(|| "127.0.0.1:53".into()),
                    }
                })
                .collect()
        })
        .collect()
}

fn department(ledger: &Ledger, ip: IpAddr) -> Option<String> {
    ledger.lookup(ip).and_then(|i| i.department.clone())
}

fn matches(f: &ListFilter, e: &QueryEvent, ledger: &Ledger) -> bool {
    let ip = e.client.ip();
    let key = store::ip_key(ip);
    f.client.is_none_or(|(lo, hi)| lo <= key && key <= hi)
        && f.name.as_ref().is_none_or(|n| match n {
            NameFilter::Exact(x) => *e.name == **x,
            NameFilter::Suffix(s) => *e.name == **s || e.name.ends_with(&format!(".{s}")),
        })
        && f.qtype.as_deref().is_none_or(|t| &*e.qtype == t)
        && f.action.as_deref().is_none_or(|a| e.outcome.as_str() == a)
        && f.feed
            .as_deref()
            .is_none_or(|x| e.feed.as_deref() == Some(x))
        && f.department
            .as_deref()
            .is_none_or(|d| department(ledger, ip).as_deref() == Some(d))
        && f.since_ms.is_none_or(|s| e.time_ms >= s)
        && f.until_ms.is_none_or(|u| e.time_ms < u)
}

/// Every page of `f` over the query log, concatenated.
fn all_pages(conn: &rusqlite::Connection, f: ListFilter) -> Vec<StoredRow> {
    all_pages_of(conn, Table::Queries, f)
}

/// Every page of `f` over `table`, concatenated.
fn all_pages_of(conn: &rusqlite::Connection, table: Table, mut f: ListFilter) -> Vec<StoredRow> {
    let mut out = Vec::new();
    loop {
        let page = store::read::list(conn, table, &f).expect("list");
        assert!(page.rows.len() <= f.limit);
        out.extend(page.rows);
        match page.next {
            Some(c) => f.cursor = Some(c),
            None => return out,
        }
    }
}

fn net(s: &str) -> Option<([u8; 16], [u8; 16])> {
    Some(store::net_range(s.parse().unwrap()))
}

#[test]
fn every_filter_and_page_matches_a_brute_force_reference() {
    check_against_reference(None, false);
}

/// Compaction (`blocks::compact`) changes no read: the same reference holds after merging the
/// settled part of the log (the first 13 batches into one block, the rest as written; ids
/// inside the merged run change, their order does not).
#[test]
fn compaction_keeps_every_read_the_same() {
    check_against_reference(Some(T0 + 600), false);
}

/// Grouping every block by client (`blocks::group`, whatever its size) changes no read either:
/// rows keep their ids, so pages come in the same order.
#[test]
fn grouping_by_client_keeps_every_read_the_same() {
    check_against_reference(None, true);
}

/// Writes 30 small overlapping batches, optionally compacts them (blocks that ended before
/// `compact_settled`) and groups them by client, and checks every read against counting the
/// events.
fn check_against_reference(compact_settled: Option<i64>, group: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("q.db")).unwrap();
    let (ledger, problems) =
        Ledger::from_reader(LEDGER.as_bytes(), std::path::Path::new("t")).unwrap();
    assert!(problems.rejected.is_empty());
    let batches = events(30, 97);
    let mut conn = store.write_connection().unwrap();
    for batch in &batches {
        let tx = conn.transaction().unwrap();
        store::writer::insert_events(&tx, batch, &ledger, true).unwrap();
        tx.commit().unwrap();
    }
    if let Some(settled) = compact_settled {
        let blocks = |t: &str| -> i64 {
            conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .unwrap()
        };
        let before = blocks("query_blocks") + blocks("hit_blocks");
        let removed = store::blocks::compact::run(&conn, settled).unwrap();
        assert!(removed > 0, "something to merge");
        assert_eq!(
            blocks("query_blocks") + blocks("hit_blocks"),
            before - removed as i64
        );
    }
    if group {
        assert_eq!(store::blocks::group::run(&conn, i64::MAX, 1).unwrap(), 30);
    }
    // Write order is id order: ties in time come newest-written first.
    let written: Vec<&QueryEvent> = batches.iter().flatten().collect();
    let exact = |n: &str| Some(NameFilter::Exact(n.into()));
    let suffix = |n: &str| Some(NameFilter::Suffix(n.into()));
    let filters: Vec<(&str, ListFilter)> = vec![
        ("none", ListFilter::default()),
        (
            "client",
            ListFilter {
                client: net("10.20.3.7/32"),
                ..Default::default()
            },
        ),
        (
            "client v6",
            ListFilter {
                client: net("2001:db8::7/128"),
                ..Default::default()
            },
        ),
        (
            "cidr",
            ListFilter {
                client: net("10.20.0.0/16"),
                ..Default::default()
            },
        ),
        (
            "name",
            ListFilter {
                name: exact("minexmr.com"),
                ..Default::default()
            },
        ),
        (
            "suffix",
            ListFilter {
                name: suffix("minexmr.com"),
                ..Default::default()
            },
        ),
        (
            "tld",
            ListFilter {
                name: suffix("com"),
                ..Default::default()
            },
        ),
        (
            "single label",
            ListFilter {
                name: exact("localhost"),
                ..Default::default()
            },
        ),
        (
            "absent",
            ListFilter {
                name: exact("nowhere.test"),
                ..Default::default()
            },
        ),
        (
            "action",
            ListFilter {
                action: Some("blocked".into()),
                ..Default::default()
            },
        ),
        (
            "unknown action",
            ListFilter {
                action: Some("servfail".into()),
                ..Default::default()
            },
        ),
        (
            "feed",
            ListFilter {
                feed: Some("mining".into()),
                ..Default::default()
            },
        ),
        (
            "department",
            ListFilter {
                department: Some("Physics".into()),
                ..Default::default()
            },
        ),
        (
            "type",
            ListFilter {
                qtype: Some("HTTPS".into()),
                ..Default::default()
            },
        ),
        (
            "window",
            ListFilter {
                since_ms: Some(T0 + 300),
                until_ms: Some(T0 + 700),
                ..Default::default()
            },
        ),
        (
            "combined",
            ListFilter {
                client: net("10.20.3.0/24"),
                name: suffix("example.com"),
                qtype: Some("A".into()),
                since_ms: Some(T0 + 100),
                ..Default::default()
            },
        ),
    ];
    for ((what, filter), table) in filters
        .iter()
        .flat_map(|f| [(f, Table::Queries), (f, Table::Hits)])
    {
        let mut expected: Vec<(usize, &QueryEvent)> = written
            .iter()
            .enumerate()
            .filter(|(_, e)| table == Table::Queries || e.outcome.is_hit())
            .filter(|(_, e)| matches(filter, e, &ledger))
            .map(|(k, e)| (k, *e))
            .collect();
        expected.sort_by_key(|&(k, e)| std::cmp::Reverse((e.time_ms, k)));
        // Every page decodes its blocks whole: limit 1 over merged blocks is slow in debug
        // builds and tests no boundary that 37 does not.
        let limits: &[usize] = if compact_settled.is_some() || group {
            &[37, 500]
        } else {
            &[1, 37, 500]
        };
        for &limit in limits {
            let rows = all_pages_of(
                &conn,
                table,
                ListFilter {
                    limit,
                    ..filter.clone()
                },
            );
            if table == Table::Hits {
                // Every hit carries the ledger's snapshot of its client at write time.
                for r in &rows {
                    let ip: IpAddr = r.client.parse().unwrap();
                    let want = ledger.lookup(ip).map(|i| (*i).clone()).unwrap_or_default();
                    assert_eq!(r.identity.as_ref(), Some(&want), "{what}: {}", r.client);
                }
            }
            let got: Vec<(i64, String, String, u16)> = rows
                .iter()
                .map(|r| (r.time_ms, r.client.clone(), r.name.clone(), r.port))
                .collect();
            let want: Vec<(i64, String, String, u16)> = expected
                .iter()
                .map(|(_, e)| {
                    (
                        e.time_ms,
                        e.client.ip().to_string(),
                        e.name.to_string(),
                        e.client.port(),
                    )
                })
                .collect();
            let first_difference = got.iter().zip(&want).position(|(g, w)| g != w);
            assert!(
                got.len() == want.len() && first_difference.is_none(),
                "filter {what} on {table:?}, limit {limit}: {} rows, want {}; first difference at {:?}: {:?}",
                got.len(),
                want.len(),
                first_difference,
                first_difference.map(|i| (&got[i], &want[i])),
            );
        }
    }
    // Fields survive the round trip, the department from the ledger at write time included.
    let newest = &all_pages(
        &conn,
        ListFilter {
            limit: 1,
            ..Default::default()
        },
    )[0];
    let e = written
        .iter()
        .enumerate()
        .max_by_key(|(k, e)| (e.time_ms, *k))
        .map(|(_, e)| *e)
        .unwrap();
    assert_eq!(newest.qtype, &*e.qtype);
    assert_eq!(newest.answer, &*e.answer);
    assert_eq!(newest.rcode, e.rcode);
    assert_eq!(newest.latency_us, e.latency_us);
    assert_eq!(newest.upstream.as_deref(), e.upstream.as_deref());
    assert_eq!(newest.feed.as_deref(), e.feed.as_deref());
    assert_eq!(newest.rule.as_deref(), e.rule.as_deref());
    assert_eq!(newest.department, department(&ledger, e.client.ip()));
    let stats = store::read::stats(&conn, T0 + 300, T0 + 700, 10).unwrap();
    let in_window = |o: Outcome| {
        written
            .iter()
            .filter(|e| e.outcome == o && e.time_ms >= T0 + 300 && e.time_ms < T0 + 700)
            .count() as i64
    };
    for c in &stats.queries_by_action {
        let o = if c.value == "blocked" {
            Outcome::Blocked
        } else {
            Outcome::Allowed
        };
        assert_eq!(c.count, in_window(o), "{}", c.value);
    }
    // Hit tables, from the hit blocks, against counting the events.
    let hits_in_window: Vec<&&QueryEvent> = written
        .iter()
        .filter(|e| e.outcome.is_hit() && e.time_ms >= T0 + 300 && e.time_ms < T0 + 700)
        .collect();
    let top = |key: &dyn Fn(&QueryEvent) -> Option<String>| {
        let mut m: std::collections::HashMap<String, i64> = Default::default();
        for e in &hits_in_window {
            if let Some(k) = key(e) {
                *m.entry(k).or_default() += 1;
            }
        }
        let mut v: Vec<(String, i64)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(10);
        v
    };
    let pairs = |c: &[store::read::Count]| -> Vec<(String, i64)> {
        c.iter().map(|c| (c.value.clone(), c.count)).collect()
    };
    assert_eq!(
        pairs(&stats.hits_by_action),
        top(&|e| Some(e.outcome.as_str().to_string()))
    );
    assert_eq!(
        pairs(&stats.top_blocked_names),
        top(&|e| Some(e.name.to_string()))
    );
    assert_eq!(
        pairs(&stats.top_clients),
        top(&|e| Some(e.client.ip().to_string()))
    );
    assert_eq!(
        pairs(&stats.top_departments),
        top(&|e| department(&ledger, e.client.ip()))
    );
    assert_eq!(
        pairs(&stats.top_feeds),
        top(&|e| e.feed.as_deref().map(str::to_string))
    );
    // Incident evidence: an owner's hits in a time range, oldest first, at every limit.
    use poolguard::store::blocks::{HitOwner, owner_hits};
    let unknown: IpAddr = "192.0.2.44".parse().unwrap();
    for (owner, is_owner) in [
        (
            HitOwner::Asset("lab"),
            Box::new(|ip: IpAddr| ip.to_string().starts_with("10.20.3."))
                as Box<dyn Fn(IpAddr) -> bool>,
        ),
        (
            HitOwner::Ip(unknown),
            Box::new(move |ip: IpAddr| ip == unknown),
        ),
    ] {
        let (from, to) = (T0 + 200, T0 + 900);
        let mut want: Vec<(i64, usize)> = written
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.outcome.is_hit()
                    && is_owner(e.client.ip())
                    && e.time_ms >= from
                    && e.time_ms <= to
            })
            .map(|(k, e)| (e.time_ms, k))
            .collect();
        want.sort();
        for limit in [1, 37, 5000] {
            let got: Vec<(i64, String)> = owner_hits(&conn, owner, from, to, limit)
                .unwrap()
                .into_iter()
                .map(|r| (r.time_ms, r.name))
                .collect();
            let expect: Vec<(i64, String)> = want
                .iter()
                .take(limit)
                .map(|&(t, k)| (t, written[k].name.to_string()))
                .collect();
            assert_eq!(got, expect, "{owner:?}, limit {limit}");
        }
    }
    let summary =
        store::read::client_summary(&conn, store::ip_key("10.20.9.1".parse().unwrap()), 5).unwrap();
    assert_eq!(
        summary.hit_count,
        written
            .iter()
            .filter(|e| e.outcome.is_hit() && e.client.ip().to_string() == "10.20.9.1")
            .count() as i64
    );
    let times: Vec<i64> = written
        .iter()
        .filter(|e| e.client.ip().to_string() == "10.20.9.1")
        .map(|e| e.time_ms)
        .collect();
    assert_eq!(summary.first_seen_ms, times.iter().min().copied());
    assert_eq!(summary.last_seen_ms, times.iter().max().copied());
}

#[test]
fn an_old_per_query_log_is_moved_into_blocks_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        schema::migrate_to(&mut conn, 5).unwrap();
        for i in 0..3i64 {
            conn.execute(
                "INSERT INTO queries (time_ms, client, client_bin, port, transport, name, rname, \
                 qtype, action, feed, rule, rcode, answer, latency_us, upstream, department) \
                 VALUES (?1, '10.0.0.9', x'00', 5300, 'tcp', 'xmr.pool.test', 'test.pool.xmr', \
                 'A', 'blocked', 'mining', 'pool.test', 'NXDOMAIN', '', ?2, NULL, 'Physics')",
                rusqlite::params![T0 + i, 100 + i],
            )
            .unwrap();
        }
    }
    let store = Store::open(&path).unwrap();
    let conn = store.write_connection().unwrap();
    let rows = all_pages(
        &conn,
        ListFilter {
            limit: 10,
            ..Default::default()
        },
    );
    assert_eq!(rows.len(), 3);
    let r = &rows[0];
    assert_eq!((r.time_ms, r.latency_us), (T0 + 2, 102));
    assert_eq!(
        (r.client.as_str(), r.port, r.transport.as_str()),
        ("10.0.0.9", 5300, "tcp")
    );
    assert_eq!(
        (r.name.as_str(), r.action.as_str()),
        ("xmr.pool.test", "blocked")
    );
    assert_eq!(r.feed.as_deref(), Some("mining"));
    assert_eq!(r.rule.as_deref(), Some("pool.test"));
    assert_eq!(r.department.as_deref(), Some("Physics"));
    assert_eq!(r.upstream, None);
    let old: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE name = 'queries'",
            [],
            |r| r.get(0),
        )
        .ok();
    assert_eq!(old, None, "the per-query table is gone");
}

#[test]
fn old_hit_rows_and_incident_links_move_into_hit_blocks_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        schema::migrate_to(&mut conn, 7).unwrap();
        for (i, name) in ["a.pool.test", "b.pool.test", "a.pool.test"]
            .iter()
            .enumerate()
        {
            conn.execute(
                "INSERT INTO hits (time_ms, client, client_bin, port, transport, name, rname, \
                 qtype, action, feed, rule, rcode, answer, latency_us, upstream, department, \
                 network, asset, mac, kind, location, owner, contact) \
                 VALUES (?1, '10.0.0.7', x'00', 5300, 'udp', ?2, '', 'A', 'blocked', 'mining', \
                 'pool.test', 'NXDOMAIN', '', 7, NULL, 'Physics', '10.0.0.0/24', 'rig-7', NULL, \
                 'gpu', 'B2', 'Ada', NULL)",
                rusqlite::params![T0 + i as i64, name],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO incidents (client_key, client, client_bin, opened_ms, last_hit_ms, \
             identify_due_ms, report_due_ms, hit_count) \
             VALUES ('asset:rig-7', '10.0.0.7', x'00', ?1, ?2, ?2, ?2, 3)",
            rusqlite::params![T0, T0 + 2],
        )
        .unwrap();
        conn.execute_batch("INSERT INTO incident_hits VALUES (1, 1), (1, 2), (1, 3)")
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let conn = store.write_connection().unwrap();
    let rows = all_pages_of(
        &conn,
        Table::Hits,
        ListFilter {
            limit: 10,
            ..Default::default()
        },
    );
    assert_eq!(rows.len(), 3);
    let identity = rows[0].identity.clone().unwrap();
    assert_eq!(identity.asset.as_deref(), Some("rig-7"));
    assert_eq!(identity.owner.as_deref(), Some("Ada"));
    assert_eq!(identity.department.as_deref(), Some("Physics"));
    assert_eq!(identity.network.as_deref(), Some("10.0.0.0/24"));
    assert_eq!(identity.mac, None);
    let evidence: Vec<(i64, String)> = poolguard::incidents::db::hits(&conn, 1, 10)
        .unwrap()
        .into_iter()
        .map(|h| (h.time_ms, h.name))
        .collect();
    assert_eq!(
        evidence,
        vec![
            (T0, "a.pool.test".to_string()),
            (T0 + 1, "b.pool.test".to_string()),
            (T0 + 2, "a.pool.test".to_string()),
        ]
    );
    let first_hits: Vec<(String, i64, i64)> = conn
        .prepare("SELECT name, first_ms, last_ms FROM hit_names ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        first_hits,
        vec![
            ("a.pool.test".to_string(), T0, T0 + 2),
            ("b.pool.test".to_string(), T0 + 1, T0 + 1),
        ]
    );
    for gone in ["hits", "incident_hits"] {
        let old: Option<i64> = conn
            .query_row("SELECT 1 FROM sqlite_master WHERE name = ?1", [gone], |r| {
                r.get(0)
            })
            .ok();
        assert_eq!(old, None, "{gone} is gone");
    }
}

/// (id, rows) of every query-log block, in id order.
fn layout(conn: &rusqlite::Connection) -> Vec<(i64, i64)> {
    conn.prepare("SELECT id, rows FROM query_blocks ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// `n` ordinary queries at `time_ms`, named `<tag>-<i>.example`: one writer batch.
fn plain_batch(time_ms: i64, n: usize, tag: &str) -> Vec<QueryEvent> {
    (0..n)
        .map(|i| QueryEvent {
            time_ms,
            client: SocketAddr::new("10.20.3.7".parse().unwrap(), 1024 + i as u16),
            transport: Transport::Udp,
            name: format!("{tag}-{i}.example").into(),
            qtype: "A".into(),
            outcome: Outcome::Allowed,
            feed: None,
            rule: None,
            rcode: "NOERROR",
            answer: "".into(),
            latency_us: 1,
            upstream: None,
        })
        .collect()
}

/// What compaction merges: adjacent runs of small blocks that ended before the settle time,
/// up to 4,096 rows and one hour; never a block of a quarter batch or more, a recent block, or the
/// newest block (its id would be handed out again).
#[test]
fn compaction_merges_only_small_settled_adjacent_runs() {
    use poolguard::store::blocks::compact;
    const HOUR: i64 = 3_600_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("c.db")).unwrap();
    let (ledger, _) = Ledger::from_reader(LEDGER.as_bytes(), std::path::Path::new("t")).unwrap();
    let settled = T0 + 10 * HOUR;
    let mut batches = vec![
        plain_batch(T0, 10, "a"),            // 1 ┐ merged
        plain_batch(T0, 10, "b"),            // 2 ┘
        plain_batch(T0 + 1, 1024, "big"),    // 3   a quarter batch: left alone
        plain_batch(T0 + 2, 10, "c"),        // 4   alone: more than an hour before the next
        plain_batch(T0 + 2 * HOUR, 10, "d"), // 5 ┐ merged
        plain_batch(T0 + 2 * HOUR, 10, "e"), // 6 │
        plain_batch(T0 + 2 * HOUR, 10, "f"), // 7 ┘
    ];
    // 8..=16: nine of 500 rows; eight fill a merged block (4,000), the ninth would not fit.
    for k in 0..9 {
        batches.push(plain_batch(T0 + 4 * HOUR + k, 500, &format!("g{k}")));
    }
    batches.push(plain_batch(settled + 1, 10, "recent")); // 17 not settled
    batches.push(plain_batch(T0 + 4 * HOUR, 10, "late")); // 18 newest (a replayed batch)
    let mut conn = store.write_connection().unwrap();
    for batch in &batches {
        let tx = conn.transaction().unwrap();
        store::writer::insert_events(&tx, batch, &ledger, true).unwrap();
        tx.commit().unwrap();
    }
    let before = store::blocks::all_rows(&conn, Table::Queries).unwrap();
    assert_eq!(layout(&conn).len(), 18);

    let removed = compact::run(&conn, settled).unwrap();
    assert_eq!(
        layout(&conn),
        vec![
            (1, 20),
            (3, 1024),
            (4, 10),
            (5, 30),
            (8, 4000),
            (16, 500),
            (17, 10),
            (18, 10)
        ]
    );
    assert_eq!(removed, 1 + 2 + 7);
    // Every row kept, in the same order, with ids that still sort in that order.
    let after = store::blocks::all_rows(&conn, Table::Queries).unwrap();
    let key = |r: &StoredRow| (r.time_ms, r.name.clone(), r.port);
    assert_eq!(
        after.iter().map(key).collect::<Vec<_>>(),
        before.iter().map(key).collect::<Vec<_>>()
    );
    assert!(
        after.windows(2).all(|w| w[0].id < w[1].id),
        "ids keep the stored order"
    );
    // A second pass finds nothing left to do.
    assert_eq!(compact::run(&conn, settled).unwrap(), 0);
}

/// A run longer than one step's scan (512 blocks) is still merged whole, step by step.
#[test]
fn compaction_merges_a_run_longer_than_one_scan() {
    use poolguard::store::blocks::compact;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("c.db")).unwrap();
    let (ledger, _) = Ledger::from_reader(LEDGER.as_bytes(), std::path::Path::new("t")).unwrap();
    let mut conn = store.write_connection().unwrap();
    let tx = conn.transaction().unwrap();
    for k in 0..1200 {
        store::writer::insert_events(&tx, &plain_batch(T0 + k, 1, "one"), &ledger, true).unwrap();
    }
    tx.commit().unwrap();
    assert_eq!(compact::run(&conn, T0 + 10_000).unwrap(), 1198);
    assert_eq!(
        layout(&conn),
        vec![(1, 1199), (1200, 1)],
        "all but the newest, in one block"
    );
}

/// A block that does not decode is left as it is, with its run; the pass goes on and merges
/// the runs after it.
#[test]
fn compaction_skips_a_run_with_a_block_that_does_not_decode() {
    use poolguard::store::blocks::compact;
    const HOUR: i64 = 3_600_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("c.db")).unwrap();
    let (ledger, _) = Ledger::from_reader(LEDGER.as_bytes(), std::path::Path::new("t")).unwrap();
    let mut conn = store.write_connection().unwrap();
    let tx = conn.transaction().unwrap();
    for k in 0..3 {
        store::writer::insert_events(&tx, &plain_batch(T0 + k, 5, "a"), &ledger, true).unwrap();
    }
    for k in 0..3 {
        let t = T0 + 2 * HOUR + k;
        store::writer::insert_events(&tx, &plain_batch(t, 5, "b"), &ledger, true).unwrap();
    }
    store::writer::insert_events(&tx, &plain_batch(T0 + 3 * HOUR, 5, "newest"), &ledger, true)
        .unwrap();
    tx.commit().unwrap();
    conn.execute("UPDATE query_blocks SET data = x'ff00' WHERE id = 2", [])
        .unwrap();
    assert_eq!(compact::run(&conn, T0 + 10 * HOUR).unwrap(), 2);
    assert_eq!(layout(&conn), vec![(1, 5), (2, 5), (3, 5), (4, 15), (7, 5)]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Over random layouts (block sizes, gaps, settle time): compaction keeps every row in
    /// order with ids that still sort in that order, never makes a block larger or longer than
    /// its bounds, keeps the newest block, leaves no two adjacent blocks it should have merged,
    /// and a second pass has nothing to do.
    #[test]
    fn compaction_keeps_rows_and_bounds_over_random_layouts(
        blocks in proptest::collection::vec(
            (proptest::prop_oneof![1u32..8, 8u32..1500], 0i64..1_800_000),
            1..40,
        ),
        settle in 0.0f64..1.2,
    ) {
        use poolguard::store::blocks::compact::{self, MAX_SPAN_MS, SMALL_ROWS, TARGET_ROWS};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        let (ledger, _) =
            Ledger::from_reader(LEDGER.as_bytes(), std::path::Path::new("t")).unwrap();
        let mut conn = store.write_connection().unwrap();
        let tx = conn.transaction().unwrap();
        let mut t = T0;
        for (k, &(rows, gap)) in blocks.iter().enumerate() {
            t += gap;
            let batch = plain_batch(t, rows as usize, &format!("b{k}"));
            store::writer::insert_events(&tx, &batch, &ledger, true).unwrap();
        }
        tx.commit().unwrap();
        let settled = T0 + ((t - T0) as f64 * settle) as i64;
        let before = store::blocks::all_rows(&conn, Table::Queries).unwrap();
        let newest = blocks.len() as i64;

        compact::run(&conn, settled).unwrap();

        let after = store::blocks::all_rows(&conn, Table::Queries).unwrap();
        let key = |r: &StoredRow| (r.time_ms, r.name.clone(), r.port);
        proptest::prop_assert_eq!(
            after.iter().map(key).collect::<Vec<_>>(),
            before.iter().map(key).collect::<Vec<_>>()
        );
        proptest::prop_assert!(after.windows(2).all(|w| w[0].id < w[1].id));
        let meta: Vec<(i64, i64, i64, i64)> = conn
            .prepare("SELECT id, rows, first_ms, last_ms FROM query_blocks ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        proptest::prop_assert_eq!(meta.last().map(|m| m.0), Some(newest));
        for &(id, rows, first, last) in &meta {
            proptest::prop_assert!(rows <= i64::from(TARGET_ROWS), "block {} has {} rows", id, rows);
            proptest::prop_assert!(last - first <= MAX_SPAN_MS, "block {} spans {} ms", id, last - first);
        }
        let mergeable = |&(id, rows, _, last): &(i64, i64, i64, i64)| {
            rows < i64::from(SMALL_ROWS) && last < settled && id != newest
        };
        for pair in meta.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let fits = a.1 + b.1 <= i64::from(TARGET_ROWS)
                && a.3.max(b.3) - a.2.min(b.2) <= MAX_SPAN_MS;
            proptest::prop_assert!(
                !(mergeable(&a) && mergeable(&b) && fits),
                "blocks {} and {} should have been merged",
                a.0,
                b.0
            );
        }
        proptest::prop_assert_eq!(compact::run(&conn, settled).unwrap(), 0);
    }
}

/// The grouping pass (`blocks::group`): it rewrites settled blocks of at least `min_rows`
/// rows client by client, keeps every row's id and content, stops at the first block not
/// settled yet, and resumes where it stopped.
#[test]
fn grouping_keeps_row_ids_and_stops_at_unsettled_blocks() {
    use poolguard::store::blocks::{all_rows, codec::Block, group};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("q.db")).unwrap();
    let ledger = Ledger::default();
    let mut conn = store.write_connection().unwrap();
    // Ten blocks of 97 rows 40 ms apart, and a small one among them.
    let mut batches = events(10, 97);
    batches.insert(4, plain_batch(T0 + 100, 20, "small"));
    for batch in &batches {
        let tx = conn.transaction().unwrap();
        store::writer::insert_events(&tx, batch, &ledger, true).unwrap();
        tx.commit().unwrap();
    }
    let layout: Vec<(i64, i64)> = conn
        .prepare("SELECT id, last_ms FROM query_blocks ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let grouped = |conn: &rusqlite::Connection| -> Vec<bool> {
        layout
            .iter()
            .map(|&(id, _)| {
                let data: Vec<u8> = conn
                    .query_row("SELECT data FROM query_blocks WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .unwrap();
                Block::parse(&data).unwrap().is_grouped()
            })
            .collect()
    };
    let before = all_rows(&conn, Table::Queries).unwrap();
    assert_eq!(layout.len(), 11);
    // Settled: the blocks that ended before the seventh block's end.
    let settled = layout[6].1;
    assert_eq!(
        group::run(&conn, settled, 50).unwrap(),
        5,
        "six settled, one too small"
    );
    assert_eq!(
        grouped(&conn),
        [
            true, true, true, true, false, true, false, false, false, false, false
        ]
    );
    assert_eq!(group::run(&conn, settled, 50).unwrap(), 0, "nothing twice");
    assert_eq!(
        group::run(&conn, i64::MAX, 50).unwrap(),
        5,
        "resumes where it stopped"
    );
    let after = all_rows(&conn, Table::Queries).unwrap();
    assert_eq!(after, before, "every row keeps its id and content");
}

/// The hour under way's hit tables kept between requests (`store::hour_tops`) give the same
/// stats as decoding the blocks while hits keep arriving; a window ending before rows already
/// counted is read from the blocks.
#[test]
fn stats_from_the_hour_cache_equal_stats_from_the_blocks() {
    use poolguard::store::hour_tops::HourTops;
    use poolguard::store::read::{stats, stats_with};
    const HOUR: i64 = 3_600_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("q.db")).unwrap();
    let (ledger, _) = Ledger::from_reader(LEDGER.as_bytes(), std::path::Path::new("t")).unwrap();
    let mut conn = store.write_connection().unwrap();
    let hour = T0.div_euclid(HOUR) * HOUR;
    let batches = events(30, 97);
    assert!(
        batches
            .iter()
            .flatten()
            .all(|e| e.time_ms >= hour && e.time_ms < hour + HOUR)
    );
    let cache = HourTops::default();
    let compare = |conn: &rusqlite::Connection, since: i64, until: i64| {
        let cached = stats_with(conn, Some(&cache), since, until, 100).unwrap();
        let decoded = stats(conn, since, until, 100).unwrap();
        assert_eq!(
            format!("{cached:?}"),
            format!("{decoded:?}"),
            "window {since}..{until}"
        );
        assert!(!decoded.top_blocked_names.is_empty() || until <= T0 + 60);
    };
    for (k, batch) in batches.iter().enumerate() {
        let tx = conn.transaction().unwrap();
        store::writer::insert_events(&tx, batch, &ledger, true).unwrap();
        tx.commit().unwrap();
        let now = T0 + k as i64 * 40 + 30;
        match k % 3 {
            // The whole hour and beyond, the hour from its start, and a day ending in it.
            0 => compare(&conn, hour - HOUR, hour + HOUR),
            1 => compare(&conn, hour, now),
            // Ending amid rows already cached: from the blocks.
            _ => {
                compare(&conn, hour, hour + HOUR);
                compare(&conn, hour - 24 * HOUR, now - 20);
            }
        }
    }
}
