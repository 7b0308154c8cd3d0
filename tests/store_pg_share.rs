//! Two real poolguard nodes on one real PostgreSQL: what maintainers write through one node's
//! API is in force on the other without a restart (the `poolguard_changes` notification, then
//! the same write path a local upload takes): a feed uploaded through A blocks on B's DNS, a
//! ledger uploaded through B names the machine in a hit answered by A, and a token revoked
//! through A is refused by B. An upload the database does not take changes nothing.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::{Proto, TestBed, addresses, api_token_toml, query_from, request};
use hickory_proto::rr::RecordType;
use reqwest::Method;

const DB: &str = "share";
const FEEDS: &str = "feeds-token-for-share-tests";
const ADMIN: &str = "admin-token-for-share-tests";
const LEAKED: &str = "viewer-token-that-leaked";
const HEADER: &str = "network,mac,asset,kind,location,department,owner,contact\n";
/// What the upstream answers for `www.example.test`.
const UPSTREAM_WWW: &str = "192.0.2.10";

async fn node(pg: &Postgres, url: &str, name: &str) -> TestBed {
    let mut t = String::from("[api]\nlisten = \"127.0.0.1:0\"\n");
    t.push_str(&api_token_toml("fiona", "feeds", FEEDS));
    t.push_str(&api_token_toml("adam", "admin", ADMIN));
    t.push_str(&api_token_toml("intern", "viewer", LEAKED));
    t.push_str(&format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_file = \"{}\"\n\
         node = \"{name}\"\npath = \"data/local.db\"\nflush_interval_ms = 20\n\
         [clients]\nledger = \"clients.csv\"\n",
        pg.password_file().display()
    ));
    TestBed::builder()
        .file("clients.csv", HEADER)
        .toml(&t)
        .start()
        .await
}

/// Polls `check` every 20 ms for at most 30 s.
async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last = match check().await {
            Ok(()) => return,
            Err(state) => state,
        };
        assert!(Instant::now() < deadline, "{what}: still {last}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn www(bed: &TestBed, client: &str) -> Vec<String> {
    let ip: IpAddr = client.parse().expect("ip");
    let answer = query_from(
        ip,
        bed.dns,
        Proto::Udp,
        &request("www.example.test.", RecordType::A, true),
    )
    .await;
    addresses(&answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_ledgers_and_token_revocations_made_through_one_node_are_in_force_on_the_other() {
    let mut pg = Postgres::start();
    let url = pg.create_database(DB);
    let a = node(&pg, &url, "node-a").await;
    let b = node(&pg, &url, "node-b").await;
    assert_eq!(www(&b, "127.0.0.40").await, [UPSTREAM_WWW]);

    // A feed uploaded through A blocks on B's DNS, no restart.
    let (status, report) = a
        .api_put("/api/v1/feeds/campus-extra", FEEDS, "www.example.test\n")
        .await;
    assert_eq!(status, 200, "{report}");
    let sha = report["version"]["sha256"].clone();
    wait_for("B to block the name uploaded through A", || async {
        let got = www(&b, "127.0.0.40").await;
        if got != [UPSTREAM_WWW] {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
    let (status, feed) = b.api_get("/api/v1/feeds/campus-extra", FEEDS).await;
    assert_eq!(status, 200, "{feed}");
    assert_eq!(
        feed["version"]["sha256"], sha,
        "B holds A's version: {feed}"
    );
    assert_eq!(
        pg.psql(DB, "SELECT node || ' ' || who || ' ' || action FROM shared_versions WHERE name = 'campus-extra'"),
        "node-a fiona upload"
    );

    // A broken upload through B is refused and replaces nothing, here or on A.
    let (status, refused) = b
        .api_put(
            "/api/v1/feeds/campus-extra?kind=ips",
            FEEDS,
            "not an address\n",
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(
        pg.psql(
            DB,
            "SELECT count(*) FROM shared_versions WHERE name = 'campus-extra'"
        ),
        "1"
    );

    // A ledger uploaded through B names the machine in a hit A answers.
    let ledger =
        format!("{HEADER}127.0.0.41,,lab-miner-7,workstation,Physics 301,Physics,Zhang Wei,\n");
    let (status, report) = b
        .api_request(
            Method::PUT,
            "/api/v1/clients/ledger",
            ADMIN,
            Some(ledger.into_bytes()),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    wait_for("A to know the machine from B's ledger", || async {
        let (_, v) = a.api_get("/api/v1/clients/127.0.0.41", ADMIN).await;
        let asset = v["identity"]["asset"].clone();
        if asset == "lab-miner-7" {
            Ok(())
        } else {
            Err(format!("{asset}"))
        }
    })
    .await;
    let blocked = www(&a, "127.0.0.41").await;
    assert_ne!(blocked, [UPSTREAM_WWW], "A blocks the shared feed too");
    wait_for(
        "the hit answered by A, with B's ledger identity",
        || async {
            let (_, v) = b.api_get("/api/v1/hits?client=127.0.0.41", ADMIN).await;
            let item = &v["items"][0];
            if item["identity"]["asset"] == "lab-miner-7" {
                Ok(())
            } else {
                Err(format!("{v}"))
            }
        },
    )
    .await;

    // A token revoked through A is refused by B.
    assert_eq!(b.api_get("/api/v1/quarantine", LEAKED).await.0, 200);
    let (status, body) = a
        .api_request(Method::DELETE, "/api/v1/tokens/intern", ADMIN, None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], 1);
    assert_eq!(a.api_get("/api/v1/quarantine", LEAKED).await.0, 401);
    wait_for("B to refuse the token revoked through A", || async {
        let (status, v) = b.api_get("/api/v1/quarantine", LEAKED).await;
        if status == 401 {
            Ok(())
        } else {
            Err(format!("{status} {v}"))
        }
    })
    .await;
    assert_eq!(b.api_get("/api/v1/quarantine", ADMIN).await.0, 200);

    // The database gone, a write is refused whole: nothing changes on the node.
    pg.stop_immediate();
    let (status, body) = a
        .api_put("/api/v1/feeds/campus-extra", FEEDS, "other.example.test\n")
        .await;
    assert_eq!(status, 503, "{body}");
    let (_, feed) = a.api_get("/api/v1/feeds/campus-extra", FEEDS).await;
    assert_eq!(
        feed["version"]["sha256"], sha,
        "the list in force stays: {feed}"
    );
    // A restarted node still serves its last lists and refuses the revoked token.
    let b = b.restart().await;
    assert_ne!(www(&b, "127.0.0.40").await, [UPSTREAM_WWW]);
    assert_eq!(b.api_get("/api/v1/quarantine", LEAKED).await.0, 401);
    a.shutdown().await;
    b.shutdown().await;
}
