//! The pool address set end to end: poolguard re-resolves the mining feed's names through the
//! in-test authoritative upstream (real DNS) while the test changes their records, and the
//! firewall list (`GET /api/v1/publish/ips?category=mining`, real HTTP) follows: an address
//! added upstream appears, one removed ages out, excluded and parked addresses never appear,
//! and the set with its first-seen times survives a restart.

mod common;

use common::{FeedSpec, TestBed, Upstream, eventually, fixture, sha256_hex};
use serde_json::Value;

const VIEWER: &str = "viewer-token-for-pool-tests";

async fn bed(upstream: Upstream, max_age: &str) -> TestBed {
    let feeds = vec![
        FeedSpec::new(
            "mining",
            "domains",
            Some("sinkhole"),
            &[
                "stratum.pools.test",
                "cdn-hosted.pools.test",
                "parked.pools.test",
                "dead.pools.test",
            ],
        ),
        FeedSpec::new("pool-ips", "ips", Some("sinkhole"), &["203.0.113.0/24"]),
        FeedSpec::new(
            "resolvers",
            "domains",
            Some("log"),
            &["ns1.pools.test", "doh.pools.test"],
        )
        .category("bypass"),
    ];
    TestBed::builder()
        .feeds(feeds)
        .upstream(upstream)
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\npublic_publish = true\n\
             [[api.tokens]]\nname = \"viewer\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
             [store]\npath = \"data/pg.db\"\n\
             [pools]\nenabled = true\ncategories = [\"mining\", \"bypass\"]\n\
             resolve_per_minute = 6000\nexclude = [\"104.16.0.0/13\"]\n\
             min_interval = \"1s\"\nmax_interval = \"1s\"\nmax_age = \"{max_age}\"\n",
            sha256_hex(VIEWER)
        ))
        .start()
        .await
}

/// The plain list a firewall loads.
async fn plain(bed: &TestBed, category: &str) -> Vec<String> {
    let body = reqwest::get(format!(
        "{}/api/v1/publish/ips?category={category}",
        bed.api_url()
    ))
    .await
    .expect("API")
    .text()
    .await
    .expect("body");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The JSON form, with names and first/last seen.
async fn detailed(bed: &TestBed, category: &str) -> Vec<Value> {
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/publish/ips?category={category}",
            bed.api_url()
        ))
        .header("Accept", "application/json")
        .send()
        .await
        .expect("API");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("JSON");
    body["addresses"].as_array().expect("addresses").clone()
}

fn resolved<'a>(items: &'a [Value], address: &str) -> Option<&'a Value> {
    items
        .iter()
        .find(|i| i["address"] == address && i["source"] == "resolved")
}

/// Polls the plain `mining` list until `address` is on it (`listed`) or off it.
async fn until_mining_lists(bed: &TestBed, address: &str, listed: bool) {
    let line = format!("{address}/32");
    eventually(&format!("{line} listed: {listed}"), || async {
        let list = plain(bed, "mining").await;
        if list.contains(&line) == listed {
            Ok(())
        } else {
            Err(format!("{list:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_addresses_follow_the_upstream_records() {
    let (upstream, zone) = Upstream::changing("pools.test", fixture("pools.test.zone"));
    let bed = bed(upstream, "3s").await;

    until_mining_lists(&bed, "198.51.100.7", true).await;
    let list = plain(&bed, "mining").await;
    assert!(
        list.contains(&"203.0.113.0/24".to_string()),
        "merged with the IP feed: {list:?}"
    );
    assert!(
        !list.iter().any(|l| l.starts_with("104.16.")),
        "excluded CDN range: {list:?}"
    );
    assert!(
        !list.iter().any(|l| l.starts_with("0.0.0.0")),
        "parked address: {list:?}"
    );
    // The bulletin to other units lists the address as added this period, with its name.
    let (status, summary) = bed.api_get("/api/v1/reports/summary", VIEWER).await;
    assert_eq!(status, 200, "{summary}");
    let added: Vec<(&str, &str)> = summary["added_addresses"]
        .as_array()
        .expect("added_addresses")
        .iter()
        .filter_map(|a| Some((a["entry"].as_str()?, a["source"].as_str()?)))
        .collect();
    assert!(
        added.contains(&("198.51.100.7", "stratum.pools.test")),
        "{summary}"
    );
    let items = detailed(&bed, "mining").await;
    let seven = resolved(&items, "198.51.100.7").expect("resolved entry");
    assert_eq!(seven["name"], "stratum.pools.test");
    assert!(seven["first_seen"].is_string() && seven["last_seen"].is_string());
    assert!(
        items
            .iter()
            .any(|i| i["address"] == "203.0.113.0/24" && i["feed"] == "pool-ips"),
        "{items:?}"
    );
    // The bypass category lists the resolvers' addresses, not the pools', and `exclude`
    // (meant for pools on a CDN) leaves the resolver on the CDN range in.
    eventually(
        "the resolvers' addresses are published under bypass",
        || async {
            let list = plain(&bed, "bypass").await;
            if list == ["104.16.2.2/32", "198.51.100.53/32"] {
                Ok(())
            } else {
                Err(format!("{list:?}"))
            }
        },
    )
    .await;

    // An address added upstream appears.
    zone.set("stratum.pools.test", &["198.51.100.7", "198.51.100.8"])
        .await;
    until_mining_lists(&bed, "198.51.100.8", true).await;

    // One removed upstream ages out after max_age; the other stays.
    zone.set("stratum.pools.test", &["198.51.100.8"]).await;
    until_mining_lists(&bed, "198.51.100.7", false).await;
    assert!(
        plain(&bed, "mining")
            .await
            .contains(&"198.51.100.8/32".to_string())
    );
    assert!(
        bed.upstream.queries_for("dead.pools.test") >= 1,
        "the name that does not resolve was asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_set_and_its_first_seen_times_survive_a_restart() {
    let (upstream, zone) = Upstream::changing("pools.test", fixture("pools.test.zone"));
    let bed = bed(upstream, "1h").await;
    eventually("the resolved pool address is published", || async {
        match resolved(&detailed(&bed, "mining").await, "198.51.100.7") {
            Some(_) => Ok(()),
            None => Err("not yet".into()),
        }
    })
    .await;
    let before =
        resolved(&detailed(&bed, "mining").await, "198.51.100.7").expect("entry")["first_seen"]
            .clone();
    // Upstream forgets it: what the restarted poolguard lists must come from its state file.
    zone.set("stratum.pools.test", &[]).await;
    let bed = bed.restart().await;
    let items = detailed(&bed, "mining").await;
    let after = resolved(&items, "198.51.100.7").expect("kept across the restart");
    assert_eq!(after["first_seen"], before);
}

/// The measurement behind docs/BENCHMARKS.md ("Pool address set"): the shipped mining feed
/// and allowlist, the shipped `[pools]` numbers, and an upstream that answers every A query
/// (TTL 300) so every name asks to be re-resolved as often as `min_interval` allows: the
/// queries per minute the upstream sees once the first pass is under way. 35 s; run with
/// `cargo test --release --test dns_pools -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 35 s measurement for docs/BENCHMARKS.md"]
async fn shipped_feed_resolution_load() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("addr");
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        // Ends with the test process.
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let mut reply = Message::new(
                query.metadata.id,
                MessageType::Response,
                query.metadata.op_code,
            );
            reply.metadata.recursion_desired = query.metadata.recursion_desired;
            reply.metadata.recursion_available = true;
            for q in &query.queries {
                reply.add_query(q.clone());
                if q.query_type() == RecordType::A {
                    reply.add_answer(Record::from_rdata(
                        q.name().clone(),
                        300,
                        RData::A(A::new(198, 51, 100, 9)),
                    ));
                } else {
                    // NODATA with its SOA, as an authority answers it (without, the forwarder
                    // looks for a CNAME chain: one more query).
                    let soa = SOA::new(Name::root(), Name::root(), 1, 7200, 3600, 1_209_600, 300);
                    reply.add_authority(Record::from_rdata(q.name().clone(), 300, RData::SOA(soa)));
                }
            }
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, from);
            }
        }
    });
    let lines = |p: &str| -> Vec<String> {
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(p))
            .expect("shipped list")
            .lines()
            .map(str::to_string)
            .collect()
    };
    let mut mining = FeedSpec::new("mining", "domains", Some("sinkhole"), &[]);
    mining.lines = lines("blocklists/mining.txt");
    let mut allow = FeedSpec::new("allow", "allow", None, &[]);
    allow.lines = lines("blocklists/allow.txt");
    let bed = TestBed::builder()
        .feeds(vec![allow, mining])
        .upstream_servers(vec![addr])
        .toml(
            "[store]\npath = \"data/pg.db\"\n\
             [pools]\nenabled = true\nresolve_per_minute = 600\n\
             min_interval = \"5m\"\nmax_interval = \"1d\"\nmax_age = \"7d\"\n",
        )
        .start()
        .await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let start = asked.load(Ordering::Relaxed);
    let window = std::time::Duration::from_secs(30);
    tokio::time::sleep(window).await;
    let sent = asked.load(Ordering::Relaxed) - start;
    println!(
        "pool address set: {sent} upstream queries in {} s = {:.0} a minute (cap 600)",
        window.as_secs(),
        sent as f64 * 60.0 / window.as_secs_f64()
    );
    assert!(sent > 0, "the names were resolved");
    drop(bed);
}
