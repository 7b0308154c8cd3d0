//! End to end: real DNS queries from several clients through a running poolguard, then the
//! staff API finds exactly those rows, with the asset ledger's identity on every hit.

mod common;

use std::net::IpAddr;

use common::{Proto, TestBed, query_from, request, sha256_hex};
use hickory_proto::rr::RecordType;
use serde_json::Value;

const VIEWER_TOKEN: &str = "viewer-token-for-tests";
const LEDGER: &str = "network,mac,asset,kind,location,department,owner,contact\n\
127.0.0.0/8,,loopback-lab,lab,Building A,Physics,Lab Manager,lab@example.edu\n\
127.0.0.7,aa:bb:cc:dd:ee:ff,gpu-ws-07,GPU workstation,A-301,计算机学院,张伟,zhangwei@example.edu\n";

async fn bed() -> TestBed {
    TestBed::builder()
        .file("clients.csv", LEDGER)
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname = \"tester\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
             [store]\npath = \"data/pg.db\"\nflush_interval_ms = 50\n[clients]\nledger = \"clients.csv\"\n",
            sha256_hex(VIEWER_TOKEN)
        ))
        .start()
        .await
}

async fn get(bed: &TestBed, path_and_query: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(format!("{}{path_and_query}", bed.api_url()))
        .bearer_auth(VIEWER_TOKEN)
        .send()
        .await
        .expect("API answers");
    assert_eq!(resp.status(), 200, "{path_and_query}");
    resp.json().await.expect("JSON body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_and_hits_are_recorded_with_who_asked() {
    let bed = bed().await;
    let gpu: IpAddr = "127.0.0.7".parse().expect("ip");
    let other: IpAddr = "127.0.0.9".parse().expect("ip");
    let dns = bed.dns;
    query_from(
        gpu,
        dns,
        Proto::Udp,
        &request("xmr.pool.minergate.com.", RecordType::A, true),
    )
    .await;
    query_from(
        gpu,
        dns,
        Proto::Tcp,
        &request("www.example.test.", RecordType::A, true),
    )
    .await;
    query_from(
        other,
        dns,
        Proto::Udp,
        &request("moneroocean.stream.", RecordType::AAAA, false),
    )
    .await;
    // Events are recorded just after the answer is sent: wait (bounded) until all three are
    // stored, instead of racing the last one with a single flush.
    for _ in 0..100 {
        bed.running().flush().await.expect("flush");
        let all = get(&bed, "/api/v1/queries").await;
        if all["items"].as_array().map(Vec::len) == Some(3) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let hits = get(&bed, "/api/v1/hits?client=127.0.0.7").await;
    let items = hits["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{hits}");
    let hit = &items[0];
    assert_eq!(hit["name"], "xmr.pool.minergate.com");
    assert_eq!(hit["type"], "A");
    assert_eq!(hit["action"], "blocked");
    assert_eq!(hit["feed"], "mining");
    assert_eq!(hit["rule"], "pool.minergate.com");
    assert_eq!(hit["identity"]["asset"], "gpu-ws-07");
    assert_eq!(hit["identity"]["department"], "计算机学院");
    assert_eq!(hit["identity"]["owner"], "张伟");

    // The other client falls back to the /8 entry: the most specific match.
    let hits = get(&bed, "/api/v1/hits?client=127.0.0.9").await;
    assert_eq!(hits["items"][0]["identity"]["asset"], "loopback-lab");
    assert_eq!(hits["items"][0]["type"], "AAAA");

    let queries = get(&bed, "/api/v1/queries?client=127.0.0.7").await;
    let names: Vec<&str> = queries["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|q| q["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["www.example.test", "xmr.pool.minergate.com"],
        "newest first"
    );
    let allowed = &queries["items"][0];
    assert_eq!(allowed["action"], "allowed");
    assert_eq!(allowed["rcode"], "NOERROR");

    let by_dept = get(
        &bed,
        "/api/v1/hits?department=%E8%AE%A1%E7%AE%97%E6%9C%BA%E5%AD%A6%E9%99%A2",
    )
    .await;
    assert_eq!(by_dept["items"].as_array().map(Vec::len), Some(1));
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_commits_every_recorded_query() {
    let bed = bed().await;
    for i in 0..50 {
        let name = format!("host{i}.sink.test.");
        common::query(bed.dns, Proto::Udp, &request(&name, RecordType::A, false)).await;
    }
    let dir = bed.shutdown().await;
    let conn = rusqlite::Connection::open(dir.path().join("data/pg.db")).expect("db opens");
    let hits = poolguard::store::blocks::all_rows(&conn, poolguard::store::read::Table::Hits)
        .expect("hits read")
        .into_iter()
        .filter(|r| r.name.ends_with(".sink.test"))
        .count();
    assert_eq!(hits, 50);
}
