//! Hits name who held their address *at their time*: the identity index (DHCP leases,
//! RADIUS logins) says which MAC and account held it, the ledger whose they are. Written
//! through the writer's own insert path and read back through the store boundary.

use std::net::SocketAddr;
use std::sync::Arc;

use poolguard::clients::Ledger;
use poolguard::identity::{Event, IdentityIndex, Interval, OPEN, Source};
use poolguard::record::{Outcome, QueryEvent, Transport};
use poolguard::store::writer::{Attribution, insert_attributed};
use poolguard::store::{EvidenceStore, ListFilter, Store, Table};

const T0: i64 = 1_796_600_000_000;

const LEDGER: &str = "network,mac,asset,kind,location,department,owner,contact,account
10.213.0.0/16,,,dorm,Dorm 3,Residences,,,
,00:1a:2b:3c:4d:5e,laptop-7,laptop,,Physics,Zhang Wei,zhang@example.edu,
,,,,,Chemistry,Li Na,li@example.edu,lina
";

fn hit(ip: &str, time_ms: i64) -> QueryEvent {
    QueryEvent {
        time_ms,
        client: SocketAddr::new(ip.parse().unwrap(), 40000),
        transport: Transport::Udp,
        name: "xmr.pool.minergate.com".into(),
        qtype: "A".into(),
        outcome: Outcome::Blocked,
        feed: Some(Arc::from("mining")),
        rule: Some(Arc::from("minergate.com")),
        rcode: "NXDOMAIN",
        answer: "".into(),
        latency_us: 10,
        upstream: None,
    }
}

fn held(ip: &str, start: i64, end: i64, mac: &str, account: Option<&str>, source: Source) -> Event {
    Event::Held(Interval {
        addr: ip.parse().unwrap(),
        start_ms: start,
        end_ms: end,
        mac: Some(mac.into()),
        account: account.map(Arc::from),
        hostname: (source != Source::Radius).then(|| Arc::from("dorm-pc")),
        source,
    })
}

#[tokio::test]
async fn each_hit_names_the_holder_of_its_time_and_the_ledger_says_whose() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("e.db")).unwrap();
    let (ledger, report) =
        Ledger::from_reader(LEDGER.as_bytes(), std::path::Path::new("t")).unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let index = IdentityIndex::default();
    // 10.213.3.45: Zhang Wei's laptop until T0+1000, then another machine on which Li Na
    // logs in through the portal.
    index.apply_all([
        held(
            "10.213.3.45",
            T0,
            T0 + 1000,
            "00:1a:2b:3c:4d:5e",
            None,
            Source::Kea,
        ),
        held(
            "10.213.3.45",
            T0 + 1000,
            T0 + 5000,
            "00:1a:2b:3c:4d:5f",
            None,
            Source::Kea,
        ),
        held(
            "10.213.3.45",
            T0 + 1200,
            OPEN,
            "00:1a:2b:3c:4d:5f",
            Some("lina"),
            Source::Radius,
        ),
    ]);
    let events = [
        hit("10.213.3.45", T0 + 500),
        hit("10.213.3.45", T0 + 1500),
        hit("10.213.9.9", T0 + 1600),
    ];
    let mut conn = store.write_connection().unwrap();
    let tx = conn.transaction().unwrap();
    let who = Attribution {
        ledger: &ledger,
        identities: Some(&index),
        exempt: None,
    };
    insert_attributed(&tx, &events, &who, false, None, None, None).unwrap();
    tx.commit().unwrap();

    let page = store
        .list_evidence(
            Table::Hits,
            ListFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let by_time = |t: i64| {
        page.items
            .iter()
            .find(|r| r.time_ms == t)
            .and_then(|r| r.identity.clone())
            .expect("a hit with an identity")
    };
    let first = by_time(T0 + 500);
    assert_eq!(first.mac.as_deref(), Some("00:1a:2b:3c:4d:5e"));
    assert_eq!(first.owner.as_deref(), Some("Zhang Wei"));
    assert_eq!(first.asset.as_deref(), Some("laptop-7"));
    assert_eq!(first.network.as_deref(), Some("10.213.0.0/16"));
    assert_eq!(first.hostname.as_deref(), Some("dorm-pc"));
    assert_eq!(first.source.as_deref(), Some("kea"));

    let second = by_time(T0 + 1500);
    assert_eq!(second.mac.as_deref(), Some("00:1a:2b:3c:4d:5f"));
    assert_eq!(second.account.as_deref(), Some("lina"));
    assert_eq!(second.owner.as_deref(), Some("Li Na"));
    assert_eq!(second.department.as_deref(), Some("Chemistry"));
    assert_eq!(second.source.as_deref(), Some("kea+radius"));

    // No lease or login: the network's row, as before.
    let third = by_time(T0 + 1600);
    assert_eq!(third.department.as_deref(), Some("Residences"));
    assert_eq!(third.source, None);
    assert_eq!(third.mac, None);
}

/// Whether the store's first hit block is grouped by client.
fn first_hit_block_grouped(conn: &rusqlite::Connection) -> bool {
    let data: Vec<u8> = conn
        .query_row("SELECT data FROM hit_blocks ORDER BY id LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    poolguard::store::blocks::codec::Block::parse(&data)
        .unwrap()
        .is_grouped()
}

/// Compaction groups the hit blocks it merges by client; late identity then rewrites such a
/// block with every row under its id (a grouped block's rows are stored out of their written
/// order) and groups it again.
#[test]
fn late_identity_keeps_the_row_ids_of_a_merged_hit_block() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("e.db")).unwrap();
    let (ledger, _) = Ledger::from_reader(LEDGER.as_bytes(), std::path::Path::new("t")).unwrap();
    let index = IdentityIndex::default();
    let conn = store.write_connection().unwrap();
    let who = Attribution {
        ledger: &ledger,
        identities: Some(&index),
        exempt: None,
    };
    // Ten small batches of hits from three addresses, interleaved, as a quiet writer stores them.
    let ips = ["10.213.3.45", "10.213.9.9", "10.213.1.2"];
    for b in 0..10i64 {
        let events: Vec<QueryEvent> = (0..30i64)
            .map(|i| hit(ips[(i % 3) as usize], T0 + b * 1000 + i))
            .collect();
        insert_attributed(&conn, &events, &who, false, None, None, None).unwrap();
    }
    assert!(poolguard::store::blocks::compact::run(&conn, i64::MAX).unwrap() > 0);
    assert!(first_hit_block_grouped(&conn), "merged hits are grouped");
    let before = poolguard::store::blocks::all_rows(&conn, Table::Hits).unwrap();
    // The DHCP lease of .45 becomes known only now.
    index.apply_all([held(
        "10.213.3.45",
        T0 - 1,
        OPEN,
        "00:1a:2b:3c:4d:5e",
        None,
        Source::Kea,
    )]);
    let learned = poolguard::store::relearn::sweep(&conn, &who, T0 - 1).unwrap();
    assert_eq!(learned.len(), 1, "{learned:?}");
    let after = poolguard::store::blocks::all_rows(&conn, Table::Hits).unwrap();
    assert_eq!(after.len(), before.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            (b.id, b.time_ms, &b.client),
            (a.id, a.time_ms, &a.client),
            "a row kept its id"
        );
        let mac = a.identity.as_ref().and_then(|i| i.mac.as_deref());
        let want = (a.client == "10.213.3.45").then_some("00:1a:2b:3c:4d:5e");
        assert_eq!(mac, want, "{a:?}");
    }
    assert!(first_hit_block_grouped(&conn), "and still grouped");
}
