//! The `bypass` category and the `log` action, end to end: a client resolves a public DoH
//! resolver's name over real UDP and TCP, gets the real answer, and the staff API shows the
//! logged hit, the client's `bypass_capable` mark and the mark on its incident; the name is not
//! published as blocked, and answer inspection still blocks a logged name that CNAMEs into a
//! pool.

mod common;

use std::net::IpAddr;

use common::{FeedSpec, Proto, SINK_V4, TestBed, addresses, query_from, request, sha256_hex};
use hickory_proto::rr::RecordType;
use serde_json::Value;

const VIEWER: &str = "viewer-token-for-bypass-tests";

async fn bed() -> TestBed {
    let mut feeds = common::standard_feeds();
    feeds.push(
        FeedSpec::new(
            "bypass",
            "domains",
            Some("log"),
            &["www.example.test", "cdn.example.test"],
        )
        .category("bypass"),
    );
    TestBed::builder()
        .feeds(feeds)
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\npublic_publish = true\n\
             [[api.tokens]]\nname = \"viewer\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
             [store]\npath = \"data/pg.db\"\nflush_interval_ms = 20\n",
            sha256_hex(VIEWER)
        ))
        .start()
        .await
}

async fn get(bed: &TestBed, path: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", bed.api_url()))
        .bearer_auth(VIEWER)
        .send()
        .await
        .expect("API");
    let status = resp.status();
    let body = resp.text().await.expect("body");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_name_is_answered_and_marks_the_client_bypass_capable() {
    let bed = bed().await;
    for proto in [Proto::Udp, Proto::Tcp] {
        let answer = query_from(
            ip("127.0.0.31"),
            bed.dns,
            proto,
            &request("www.example.test", RecordType::A, true),
        )
        .await;
        assert_eq!(
            addresses(&answer),
            vec!["192.0.2.10"],
            "{proto:?}: answered as if unlisted"
        );
    }
    // A logged name that CNAMEs into a pool is still blocked by answer inspection.
    let cdn = query_from(
        ip("127.0.0.31"),
        bed.dns,
        Proto::Udp,
        &request("cdn.example.test", RecordType::A, true),
    )
    .await;
    assert_eq!(addresses(&cdn), vec![SINK_V4]);
    // Another client that only asks ordinary names stays unmarked.
    let other = query_from(
        ip("127.0.0.32"),
        bed.dns,
        Proto::Udp,
        &request("mail.example.test", RecordType::A, true),
    )
    .await;
    assert_eq!(addresses(&other), vec!["192.0.2.25"]);
    bed.running().flush().await.expect("flush");

    let hits = get(&bed, "/api/v1/hits?action=logged").await;
    let items = hits["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "one logged hit per transport: {hits}");
    for item in items {
        assert_eq!(item["name"], "www.example.test");
        assert_eq!(item["feed"], "bypass");
        assert_eq!(item["client"], "127.0.0.31");
    }

    let marked = get(&bed, "/api/v1/clients/127.0.0.31").await;
    assert_eq!(marked["bypass_capable"], true, "{marked}");
    let plain = get(&bed, "/api/v1/clients/127.0.0.32").await;
    assert_eq!(plain["bypass_capable"], false, "{plain}");

    let incidents = get(&bed, "/api/v1/incidents").await;
    let mine: Vec<&Value> = incidents["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["client"] == "127.0.0.31")
        .collect();
    assert_eq!(mine.len(), 1, "{incidents}");
    assert_eq!(mine[0]["bypass_capable"], true, "{incidents}");
    let categories = mine[0]["categories"].as_array().expect("categories");
    assert!(categories.iter().any(|c| c == "bypass"), "{incidents}");

    // Watched, not blocked: a consumer of the published list must not block it.
    let published = reqwest::get(format!("{}/api/v1/publish/domains", bed.api_url()))
        .await
        .expect("API")
        .text()
        .await
        .expect("body");
    assert!(!published.contains("www.example.test"), "{published}");
    assert!(published.contains("pool.minergate.com"), "{published}");
}
