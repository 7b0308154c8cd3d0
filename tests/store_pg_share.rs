//! Two real poolguard nodes on one real PostgreSQL: what maintainers write through one node's
//! API is in force on the other without a restart (the `poolguard_changes` notification, then
//! the same write path a local upload takes): a feed uploaded through A blocks on B's DNS, a
//! ledger uploaded through B names the machine in a hit answered by A, and a token revoked
//! through A is refused by B. An upload the database does not take changes nothing. The
//! query log listed through any node holds every node's queries, each saying its node.

mod common;

use common::postgres::Postgres;
use common::{TestBed, answer_from, api_token_toml, eventually};
use reqwest::Method;

const DB: &str = "share";
const FEEDS: &str = "feeds-token-for-share-tests";
const ADMIN: &str = "admin-token-for-share-tests";
const LEAKED: &str = "viewer-token-that-leaked";
/// The node-to-node token every node presents and accepts.
const PEER: &str = "node-to-node-token-for-share-tests";
const HEADER: &str = "network,mac,asset,kind,location,department,owner,contact\n";
/// What the upstream answers for `www.example.test`.
const UPSTREAM_WWW: &str = "192.0.2.10";

async fn node(pg: &Postgres, url: &str, name: &str) -> TestBed {
    let mut t = String::from("[api]\nlisten = \"127.0.0.1:0\"\n");
    t.push_str(&api_token_toml("fiona", "feeds", FEEDS));
    t.push_str(&api_token_toml("adam", "admin", ADMIN));
    t.push_str(&api_token_toml("intern", "viewer", LEAKED));
    t.push_str(&api_token_toml("peer", "viewer", PEER));
    t.push_str(&format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_file = \"{}\"\n\
         node = \"{name}\"\npath = \"data/local.db\"\nflush_interval_ms = 20\n\
         peer_token_file = \"peer-token\"\n\
         [clients]\nledger = \"clients.csv\"\n",
        pg.password_file().display()
    ));
    TestBed::builder()
        .file("clients.csv", HEADER)
        .file("peer-token", &format!("{PEER}\n"))
        .toml(&t)
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_ledgers_and_token_revocations_made_through_one_node_are_in_force_on_the_other() {
    let mut pg = Postgres::start();
    let url = pg.create_database(DB);
    let a = node(&pg, &url, "node-a").await;
    let b = node(&pg, &url, "node-b").await;
    assert_eq!(
        answer_from(&b, "127.0.0.40", "www.example.test.").await,
        [UPSTREAM_WWW]
    );

    // A feed uploaded through A blocks on B's DNS, no restart.
    let (status, report) = a
        .api_put("/api/v1/feeds/campus-extra", FEEDS, "www.example.test\n")
        .await;
    assert_eq!(status, 200, "{report}");
    let sha = report["version"]["sha256"].clone();
    eventually("B to block the name uploaded through A", || async {
        let got = answer_from(&b, "127.0.0.40", "www.example.test.").await;
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
    eventually("A to know the machine from B's ledger", || async {
        let (_, v) = a.api_get("/api/v1/clients/127.0.0.41", ADMIN).await;
        let asset = v["identity"]["asset"].clone();
        if asset == "lab-miner-7" {
            Ok(())
        } else {
            Err(format!("{asset}"))
        }
    })
    .await;
    let blocked = answer_from(&a, "127.0.0.41", "www.example.test.").await;
    assert_ne!(blocked, [UPSTREAM_WWW], "A blocks the shared feed too");
    eventually(
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
    eventually("B to refuse the token revoked through A", || async {
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
    assert_ne!(
        answer_from(&b, "127.0.0.40", "www.example.test.").await,
        [UPSTREAM_WWW]
    );
    assert_eq!(b.api_get("/api/v1/quarantine", LEAKED).await.0, 401);
    a.shutdown().await;
    b.shutdown().await;
}

/// Every page of `path` through `bed`, following `next_cursor`.
async fn all_pages(bed: &TestBed, path: &str) -> Vec<serde_json::Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_string(),
        };
        let (status, page) = bed.api_get(&url, ADMIN).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.get("incomplete").is_none(), "{page}");
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return items,
        }
    }
    panic!("more pages than queries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_log_listed_through_any_node_holds_every_nodes_queries() {
    let pg = Postgres::start();
    let url = pg.create_database(DB);
    let a = node(&pg, &url, "node-a").await;
    let b = node(&pg, &url, "node-b").await;
    for name in ["www.example.test.", "example.test.", "www.example.test."] {
        answer_from(&a, "127.0.0.50", name).await;
    }
    for name in ["example.test.", "www.example.test."] {
        answer_from(&b, "127.0.0.50", name).await;
    }
    a.running().flush().await.expect("flush a");
    b.running().flush().await.expect("flush b");

    for bed in [&a, &b] {
        let (status, page) = bed
            .api_get("/api/v1/queries?client=127.0.0.50", ADMIN)
            .await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().cloned().unwrap_or_default();
        let nodes: Vec<&str> = items.iter().filter_map(|i| i["node"].as_str()).collect();
        assert_eq!(items.len(), 5, "{page}");
        assert_eq!(
            nodes.iter().filter(|n| **n == "node-a").count(),
            3,
            "{page}"
        );
        assert_eq!(
            nodes.iter().filter(|n| **n == "node-b").count(),
            2,
            "{page}"
        );
        let times: Vec<&str> = items.iter().filter_map(|i| i["time"].as_str()).collect();
        let mut newest_first = times.clone();
        newest_first.sort_by(|x, y| y.cmp(x));
        assert_eq!(times, newest_first, "newest first across nodes");
    }

    // Paging two at a time walks both logs once.
    let paged = all_pages(&b, "/api/v1/queries?client=127.0.0.50&limit=2").await;
    let mut seen: Vec<(String, i64)> = paged
        .iter()
        .map(|i| {
            (
                i["node"].as_str().unwrap_or("").to_string(),
                i["id"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!((paged.len(), seen.len()), (5, 5), "{paged:?}");

    // scope=node is one node's own log (what the nodes ask each other).
    let (_, own) = a
        .api_get("/api/v1/queries?client=127.0.0.50&scope=node", ADMIN)
        .await;
    assert_eq!(own["items"].as_array().map(Vec::len), Some(3), "{own}");

    // The CSV export says which node answered each row.
    let (_, csv) = a
        .api_get(
            "/api/v1/queries?client=127.0.0.50&format=csv&bom=false",
            ADMIN,
        )
        .await;
    let text = csv.as_str().unwrap_or_default();
    assert!(
        text.lines().next().unwrap_or("").ends_with(",node"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.ends_with(",node-b")).count(),
        2,
        "{text}"
    );

    // `/stats` through either node counts both nodes' query logs (each holds its own).
    let total = |stats: &serde_json::Value| -> i64 {
        stats["queries_by_action"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["count"].as_i64()).sum())
            .unwrap_or(0)
    };
    let (own_a, own_b) = (stats_of(&a, "node").await, stats_of(&b, "node").await);
    assert!(total(&own_a) >= 3 && total(&own_b) >= 2, "{own_a} {own_b}");
    for bed in [&a, &b] {
        let group = stats_of(bed, "group").await;
        assert_eq!(total(&group), total(&own_a) + total(&own_b), "{group}");
        assert!(group.get("incomplete").is_none(), "{group}");
    }

    // A client's first and last seen cover both nodes' query logs.
    let seen = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let (na, nb) = (client_of(&a, "node").await, client_of(&b, "node").await);
    let first = seen(&na, "first_seen").min(seen(&nb, "first_seen"));
    let last = seen(&na, "last_seen").max(seen(&nb, "last_seen"));
    assert_ne!(seen(&na, "last_seen"), seen(&nb, "last_seen"), "{na} {nb}");
    for bed in [&a, &b] {
        let group = client_of(bed, "group").await;
        assert_eq!(
            (seen(&group, "first_seen"), seen(&group, "last_seen")),
            (first.clone(), last.clone()),
            "{group}"
        );
    }

    // A node that does not answer is named; the others' queries are still listed.
    b.shutdown().await;
    let stats = stats_of(&a, "group").await;
    assert_eq!(total(&stats), total(&own_a), "{stats}");
    let missing = stats["incomplete"][0].as_str().unwrap_or("");
    assert!(missing.starts_with("node-b: "), "{stats}");
    let (status, page) = a.api_get("/api/v1/queries?client=127.0.0.50", ADMIN).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(3), "{page}");
    let missing = page["incomplete"][0].as_str().unwrap_or("");
    assert!(missing.starts_with("node-b: "), "{page}");
    a.shutdown().await;
}

/// `/stats` of `bed` with `scope` (group or node), answered 200.
async fn stats_of(bed: &TestBed, scope: &str) -> serde_json::Value {
    let (status, stats) = bed
        .api_get(&format!("/api/v1/stats?scope={scope}"), ADMIN)
        .await;
    assert_eq!(status, 200, "{stats}");
    stats
}

/// `/clients/127.0.0.50` of `bed` with `scope`, answered 200.
async fn client_of(bed: &TestBed, scope: &str) -> serde_json::Value {
    let (status, client) = bed
        .api_get(&format!("/api/v1/clients/127.0.0.50?scope={scope}"), ADMIN)
        .await;
    assert_eq!(status, 200, "{client}");
    client
}
