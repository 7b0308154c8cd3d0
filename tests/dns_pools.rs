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
        FeedSpec::new("resolvers", "domains", Some("log"), &["ns1.pools.test"]).category("bypass"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_addresses_follow_the_upstream_records() {
    let (upstream, zone) = Upstream::changing("pools.test", fixture("pools.test.zone"));
    let bed = bed(upstream, "3s").await;

    eventually("the resolved pool address is published", || async {
        let list = plain(&bed, "mining").await;
        if list.contains(&"198.51.100.7/32".to_string()) {
            Ok(())
        } else {
            Err(format!("{list:?}"))
        }
    })
    .await;
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
    // The bypass category lists the resolvers' addresses, not the pools'.
    eventually(
        "the resolver's address is published under bypass",
        || async {
            let list = plain(&bed, "bypass").await;
            if list == ["198.51.100.53/32"] {
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
    eventually("the added address is published", || async {
        let list = plain(&bed, "mining").await;
        if list.contains(&"198.51.100.8/32".to_string()) {
            Ok(())
        } else {
            Err(format!("{list:?}"))
        }
    })
    .await;

    // One removed upstream ages out after max_age; the other stays.
    zone.set("stratum.pools.test", &["198.51.100.8"]).await;
    eventually("the removed address ages out", || async {
        let list = plain(&bed, "mining").await;
        if !list.contains(&"198.51.100.7/32".to_string()) {
            Ok(())
        } else {
            Err(format!("{list:?}"))
        }
    })
    .await;
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
