//! The review queue end to end: real poolguard, the in-test authoritative upstream, real DNS
//! queries and real HTTP. A name nobody listed that resolves into the pool address set shows
//! in `GET /api/v1/feeds/review` with its evidence (client, answer, why); accepting it into
//! the mining feed blocks it over DNS at once; a CNAME parent and two lookalikes (the family
//! under another top-level domain, a coin-ticker host under a listed operator) are queued
//! with their reasons; a dismissed name stays dismissed however often it is asked again.
//! Under the postgres backend two nodes share one queue: a name asked through each is one
//! candidate with both clients, and a dismissal through one node is seen through the other.

mod common;

use common::{
    FeedSpec, Proto, SINK_V4, TestBed, Upstream, addresses, eventually, fixture, sha256_hex,
};
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

const MAINTAINER: &str = "maintainer-token-for-review-tests";
const ADMIN: &str = "admin-token-for-review-tests";

fn upstream() -> Upstream {
    Upstream::serving(&[
        ("operator.test", fixture("operator.test.zone")),
        ("elsewhere.test", fixture("elsewhere.test.zone")),
        ("nanopool.test", fixture("nanopool.test.zone")),
    ])
}

/// The mining feed lists one pool host of an operator, and a pool family.
fn builder() -> common::Builder {
    TestBed::builder()
        .feeds(vec![FeedSpec::new(
            "mining",
            "domains",
            Some("sinkhole"),
            &["xmr.operator.test", "nanopool.example"],
        )])
        .upstream(upstream())
}

async fn bed() -> TestBed {
    builder()
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n\
             [[api.tokens]]\nname = \"maint\"\nrole = \"feeds\"\nsha256 = \"{}\"\n\
             [[api.tokens]]\nname = \"root\"\nrole = \"admin\"\nsha256 = \"{}\"\n\
             [store]\npath = \"data/review.db\"\n\
             [pools]\nenabled = true\ncategories = [\"mining\"]\nresolve_per_minute = 6000\n\
             min_interval = \"1s\"\nmax_interval = \"1s\"\n\
             [review]\ninterval = \"1s\"\n",
            sha256_hex(MAINTAINER),
            sha256_hex(ADMIN)
        ))
        .start()
        .await
}

async fn get(bed: &TestBed, path: &str, token: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", bed.api_url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("API");
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.expect("JSON")
}

async fn post(bed: &TestBed, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", bed.api_url()))
        .bearer_auth(MAINTAINER)
        .json(&body)
        .send()
        .await
        .expect("API");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Every candidate, whatever its state.
async fn queue(bed: &TestBed) -> Vec<Value> {
    get(bed, "/api/v1/feeds/review?state=all", MAINTAINER).await["items"]
        .as_array()
        .expect("items")
        .clone()
}

/// Waits until `name` is in the queue and returns it.
async fn until_queued(bed: &TestBed, name: &str) -> Value {
    eventually(&format!("{name} is queued"), || async {
        match queue(bed).await.into_iter().find(|c| c["name"] == name) {
            Some(_) => Ok(()),
            None => Err("not yet".into()),
        }
    })
    .await;
    queue(bed)
        .await
        .into_iter()
        .find(|c| c["name"] == name)
        .expect("queued")
}

async fn a(bed: &TestBed, name: &str) -> Vec<String> {
    addresses(&bed.ask(Proto::Udp, name, RecordType::A).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_pool_names_are_queued_with_evidence_and_accepting_one_blocks_it() {
    let bed = bed().await;
    // The pool address set learns the listed pool's address first.
    eventually("the pool address set holds 198.51.100.7", || async {
        let text = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/publish/ips?category=mining",
                bed.api_url()
            ))
            .bearer_auth(MAINTAINER)
            .send()
            .await
            .expect("API")
            .text()
            .await
            .expect("body");
        if text.contains("198.51.100.7/32") {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;

    // Nothing lists it, so it is answered: its address is the pool's.
    assert_eq!(a(&bed, "hidden.elsewhere.test").await, ["198.51.100.7"]);
    let hidden = until_queued(&bed, "hidden.elsewhere.test").await;
    assert_eq!(hidden["reason"], "resolves-to-pool");
    assert_eq!(hidden["state"], "pending");
    assert_eq!(hidden["clients"], json!(["127.0.0.1"]));
    assert_eq!(hidden["resolved"], "A 198.51.100.7");
    assert!(
        hidden["evidence"]
            .as_str()
            .is_some_and(|e| e.contains("198.51.100.7") && e.contains("xmr.operator.test")),
        "{hidden}"
    );
    assert!(hidden["first_seen"].is_string() && hidden["count"].as_i64() >= Some(1));

    // A CNAME parent, and the two lookalikes.
    assert_eq!(a(&bed, "alias.elsewhere.test").await, [SINK_V4]);
    assert_eq!(a(&bed, "nanopool.test").await, ["198.51.100.30"]);
    assert_eq!(a(&bed, "etc-eu1.operator.test").await, ["198.51.100.20"]);
    assert_eq!(a(&bed, "www.operator.test").await, ["198.51.100.21"]);
    let alias = until_queued(&bed, "alias.elsewhere.test").await;
    assert_eq!(alias["reason"], "cname-to-listed");
    let family = until_queued(&bed, "nanopool.test").await;
    assert_eq!(family["reason"], "other-tld");
    assert!(
        family["evidence"]
            .as_str()
            .is_some_and(|e| e.contains("nanopool.example")),
        "{family}"
    );
    let operator = until_queued(&bed, "etc-eu1.operator.test").await;
    assert_eq!(operator["reason"], "operator-host");
    let by_reason = get(&bed, "/api/v1/feeds/review?reason=other-tld", MAINTAINER).await;
    assert_eq!(
        by_reason["items"].as_array().map(Vec::len),
        Some(1),
        "{by_reason}"
    );
    assert!(
        !queue(&bed)
            .await
            .iter()
            .any(|c| c["name"] == "www.operator.test"),
        "the operator's web site is not a pool endpoint"
    );

    // Accepting adds the name to the feed: blocked over DNS at once.
    let (status, accepted) = post(
        &bed,
        "/api/v1/feeds/review/hidden.elsewhere.test/accept",
        json!({"feed": "mining"}),
    )
    .await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["candidate"]["state"], "accepted");
    assert_eq!(accepted["candidate"]["decision"], "mining");
    assert_eq!(a(&bed, "hidden.elsewhere.test").await, [SINK_V4]);
    let (status, _) = post(
        &bed,
        "/api/v1/feeds/review/hidden.elsewhere.test/dismiss",
        json!({"reason": "too late"}),
    )
    .await;
    assert_eq!(status, 409, "decided already");

    // Dismissed stays dismissed: asked again, it gathers nothing and is not pending.
    let (status, dismissed) = post(
        &bed,
        "/api/v1/feeds/review/nanopool.test/dismiss",
        json!({"reason": "the campus's own test host"}),
    )
    .await;
    assert_eq!(status, 200, "{dismissed}");
    let count = dismissed["count"].clone();
    assert_eq!(a(&bed, "nanopool.test").await, ["198.51.100.30"]);
    // Asked after it: once this is queued, the scan has read past the repeat above.
    assert_eq!(a(&bed, "stratum.operator.test").await, ["198.51.100.22"]);
    until_queued(&bed, "stratum.operator.test").await;
    let again = queue(&bed)
        .await
        .into_iter()
        .find(|c| c["name"] == "nanopool.test")
        .expect("kept");
    assert_eq!(again["state"], "dismissed");
    assert_eq!(again["count"], count);
    assert_eq!(again["decision"], "the campus's own test host");
    let pending = get(&bed, "/api/v1/feeds/review", MAINTAINER).await;
    assert!(
        !pending["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|c| c["name"] == "nanopool.test" || c["name"] == "hidden.elsewhere.test"),
        "{pending}"
    );

    // Each decision is audited, and the feed write with it.
    let audit = get(&bed, "/api/v1/audit", ADMIN).await;
    let actions: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["target"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for want in [
        ("review.accept", "review/hidden.elsewhere.test"),
        ("feed.patch", "mining"),
        ("review.dismiss", "review/nanopool.test"),
    ] {
        assert!(actions.contains(&want), "{want:?} in {actions:?}");
    }

    // A caller without a token may not decide.
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/feeds/review/etc-eu1.operator.test/dismiss",
            bed.api_url()
        ))
        .json(&json!({"reason": "x"}))
        .send()
        .await
        .expect("API");
    assert_eq!(resp.status(), 401);
}

/// A node of a group on `pg`'s database `review`, scanning every second.
async fn node(pg: &common::postgres::Postgres, url: &str, name: &str) -> TestBed {
    builder()
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n\
             [[api.tokens]]\nname = \"maint\"\nrole = \"feeds\"\nsha256 = \"{}\"\n\
             [store]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_file = \"{}\"\n\
             node = \"{name}\"\npath = \"data/local.db\"\nflush_interval_ms = 20\n\
             [review]\ninterval = \"1s\"\n",
            sha256_hex(MAINTAINER),
            pg.password_file().display()
        ))
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_queue_under_postgres() {
    let pg = common::postgres::Postgres::start();
    let url = pg.create_database("review");
    let a = node(&pg, &url, "node-a").await;
    let b = node(&pg, &url, "node-b").await;
    for (bed, client) in [(&a, "127.0.0.31"), (&b, "127.0.0.32")] {
        let ip: std::net::IpAddr = client.parse().expect("ip");
        let answer = common::query_from(
            ip,
            bed.dns,
            Proto::Udp,
            &common::request("nanopool.test", RecordType::A, true),
        )
        .await;
        assert_eq!(addresses(&answer), ["198.51.100.30"]);
    }
    // Through either node: one candidate, both nodes' clients.
    eventually("both nodes' sightings are merged", || async {
        let got = queue(&b).await;
        match got.iter().find(|c| c["name"] == "nanopool.test") {
            Some(c) if c["count"] == 2 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let family = until_queued(&a, "nanopool.test").await;
    let mut clients: Vec<String> =
        serde_json::from_value(family["clients"].clone()).expect("clients");
    clients.sort();
    assert_eq!(clients, ["127.0.0.31", "127.0.0.32"]);

    let (status, _) = post(
        &a,
        "/api/v1/feeds/review/nanopool.test/dismiss",
        json!({"reason": "the campus's own test host"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post(
        &b,
        "/api/v1/feeds/review/nanopool.test/dismiss",
        json!({"reason": "again"}),
    )
    .await;
    assert_eq!(status, 409, "decided through the other node");
    let seen_by_b = until_queued(&b, "nanopool.test").await;
    assert_eq!(seen_by_b["state"], "dismissed");
    assert_eq!(seen_by_b["decided_by"], "maint");
}
