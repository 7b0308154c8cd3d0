//! Once per group: two nodes on one PostgreSQL announce each event once, not once per node.
//!
//! A miner whose hits come through both nodes has one incident (`incident.opened` once) and
//! crosses the repeat-offender threshold once (`quarantine.on` once): the node whose shipment
//! marks the incident enforced announces it; the other finds it marked (`mark_enforced`
//! answers false) and stays quiet. Deliveries are counted at a webhook receiver of the test.

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::{Proto, TestBed, query_from, request, sha256_hex};
use hickory_proto::rr::RecordType;
use serde_json::json;

const DB: &str = "group";
const TOKEN: &str = "investigator-token-for-once-tests";
const MINER: &str = "127.0.0.20";
/// Mines below the threshold: its hits are the barrier that both nodes' later shipments
/// committed (and published whatever they would announce).
const OTHER: &str = "127.0.0.21";

/// Every delivery the receiver got: (event, client).
type Calls = Arc<Mutex<Vec<(String, String)>>>;

/// A webhook receiver on 127.0.0.1 that answers 200 and keeps each delivery.
async fn receiver() -> (std::net::SocketAddr, Calls) {
    let calls: Calls = Arc::default();
    let kept = calls.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<serde_json::Value>| {
            let kept = kept.clone();
            async move {
                let field = |k: &str| body[k].as_str().unwrap_or("").to_string();
                kept.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((field("event"), field("client")));
                axum::http::StatusCode::OK
            }
        }),
    );
    let addr = common::serve_local(app).await;
    (addr, calls)
}

fn count(calls: &Calls, event: &str, client: &str) -> usize {
    calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|(e, c)| e == event && c == client)
        .count()
}

async fn node(pg: &Postgres, url: &str, name: &str, hook: std::net::SocketAddr) -> TestBed {
    TestBed::builder()
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n\
             [[api.tokens]]\nname = \"alice\"\nrole = \"investigator\"\nsha256 = \"{}\"\n\
             [store]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_file = \"{}\"\n\
             node = \"{name}\"\npath = \"data/local.db\"\nflush_interval_ms = 20\n\
             [enforcement]\nmode = \"quarantine\"\nnotice_ipv4 = \"192.0.2.99\"\n\
             notice_ipv6 = \"2001:db8::99\"\nhits_threshold = 6\n\
             [alerts]\n[[alerts.webhooks]]\nurl = \"http://{hook}/hook\"\n",
            sha256_hex(TOKEN),
            pg.password_file().display()
        ))
        .start()
        .await
}

async fn mine(bed: &TestBed, client: &str, name: &str) {
    let ip: IpAddr = client.parse().expect("ip");
    query_from(ip, bed.dns, Proto::Udp, &request(name, RecordType::A, true)).await;
}

/// Polls `ok` every 20 ms for at most 60 s.
async fn until(what: &str, ok: impl Fn() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = match ok() {
            Ok(()) => return,
            Err(state) => state,
        };
        assert!(Instant::now() < deadline, "{what}: still {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_announce_an_incident_and_its_quarantine_once() {
    let pg = Postgres::start();
    let url = pg.create_database(DB);
    let (hook, calls) = receiver().await;
    let a = node(&pg, &url, "a", hook).await;
    let b = node(&pg, &url, "b", hook).await;

    // Eight hits through both nodes, threshold six: each node's shipper sees the group's hits.
    for i in 0..4 {
        mine(&a, MINER, &format!("a{i}.pool.minergate.com.")).await;
        mine(&b, MINER, &format!("b{i}.pool.minergate.com.")).await;
        a.running().flush().await.expect("flush a");
        b.running().flush().await.expect("flush b");
    }
    until("the miner's quarantine", || {
        match pg.psql(DB, "SELECT count(*) FROM quarantine").as_str() {
            "1" => Ok(()),
            n => Err(n.to_string()),
        }
    })
    .await;
    // Later shipments of both nodes: whatever they would announce is published by then.
    for bed in [&a, &b] {
        mine(bed, OTHER, "x.pool.minergate.com.").await;
        bed.running().flush().await.expect("flush");
    }
    until("the later hits", || {
        let sql = format!("SELECT count(*) FROM hits WHERE client = '{OTHER}'");
        match pg.psql(DB, &sql).as_str() {
            "2" => Ok(()),
            n => Err(n.to_string()),
        }
    })
    .await;
    // A last event through each node's own delivery task, after everything above.
    for (bed, ip) in [(&a, "127.0.0.40"), (&b, "127.0.0.41")] {
        let (status, body) = bed
            .api_json(
                reqwest::Method::POST,
                "/api/v1/quarantine",
                TOKEN,
                &json!({"ip": ip, "reason": "barrier"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    until("both nodes' last deliveries", || {
        let got = (
            count(&calls, "quarantine.on", "127.0.0.40"),
            count(&calls, "quarantine.on", "127.0.0.41"),
        );
        if got == (1, 1) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;

    let all = calls.lock().unwrap_or_else(PoisonError::into_inner).clone();
    assert_eq!(count(&calls, "incident.opened", MINER), 1, "{all:?}");
    assert_eq!(count(&calls, "quarantine.on", MINER), 1, "{all:?}");
    assert_eq!(count(&calls, "incident.opened", OTHER), 1, "{all:?}");
    assert_eq!(
        pg.psql(
            DB,
            "SELECT count(*) FROM incident_notes WHERE text LIKE 'Repeat offender:%'"
        ),
        "1",
        "one system note for the one enforcement"
    );
    a.shutdown().await;
    b.shutdown().await;
}
