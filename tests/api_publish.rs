//! Publishing: the merged policy as RPZ, hosts, domains and IP lists, read back through our own
//! parsers to the same set; ETag and 304; the RPZ zone loaded by BIND's `named-checkzone` when
//! it is installed.

mod common;

use std::collections::BTreeSet;

use common::unbound::Unbound;
use common::{TestBed, sha256_hex};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use poolguard::config::{FeedFormat, FeedKind};
use poolguard::feeds;
use reqwest::StatusCode;

const FEEDS: &str = "feeds-token-for-tests";

async fn bed() -> TestBed {
    TestBed::builder()
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\npublic_publish = true\n\
             [[api.tokens]]\nname = \"fiona\"\nrole = \"feeds\"\nsha256 = \"{}\"\n\
             [store]\npath = \"data/pg.db\"\n",
            sha256_hex(FEEDS)
        ))
        .start()
        .await
}

async fn put(bed: &TestBed, path: &str, body: &str) {
    let resp = reqwest::Client::new()
        .put(format!("{}{path}", bed.api_url()))
        .bearer_auth(FEEDS)
        .body(body.to_string())
        .send()
        .await
        .expect("API");
    assert_eq!(resp.status(), 200, "{path}");
}

/// GET without a token (public_publish = true): (status, ETag, body).
async fn fetch(bed: &TestBed, format: &str, etag: Option<&str>) -> (StatusCode, String, String) {
    let mut req = reqwest::Client::new().get(format!("{}/api/v1/publish/{format}", bed.api_url()));
    if let Some(e) = etag {
        req = req.header("If-None-Match", e);
    }
    let resp = req.send().await.expect("API");
    let status = resp.status();
    let tag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, tag, resp.text().await.expect("body"))
}

fn names(p: &feeds::ParsedFeed) -> BTreeSet<(String, bool)> {
    p.domains
        .iter()
        .map(|d| (d.name.as_str().to_string(), d.exact))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_lists_round_trip_to_the_policy() {
    let bed = bed().await;
    put(
        &bed,
        "/api/v1/feeds/extra",
        "=exact.example\nsub.sink.test\npool.minergate.com\nallowed.example\n",
    )
    .await;
    put(
        &bed,
        "/api/v1/feeds/more-allow?kind=allow",
        "allowed.example\n",
    )
    .await;

    let expected: BTreeSet<(String, bool)> = [
        ("blocked.campus.test", false),
        ("moneroocean.stream", false),
        ("nodata.test", false),
        ("nx.test", false),
        ("pool.minergate.com", false),
        ("refuse.test", false),
        ("sink.test", false),
        ("exact.example", true),
    ]
    .iter()
    .map(|(n, e)| (n.to_string(), *e))
    .collect();

    let (status, _, domains) = fetch(&bed, "domains", None).await;
    assert_eq!(status, 200);
    let p = feeds::parse(&domains, FeedFormat::Auto, FeedKind::Domains);
    assert_eq!(p.format, Some(FeedFormat::Plain));
    assert!(p.rejected.is_empty(), "{:?}", p.rejected);
    assert_eq!(names(&p), expected, "{domains}");

    let (_, _, hosts) = fetch(&bed, "hosts", None).await;
    let p = feeds::parse(&hosts, FeedFormat::Auto, FeedKind::Domains);
    assert_eq!(p.format, Some(FeedFormat::Hosts));
    assert!(p.rejected.is_empty(), "{:?}", p.rejected);
    let expected_names: BTreeSet<String> = expected.iter().map(|(n, _)| n.clone()).collect();
    let got: BTreeSet<String> = p
        .domains
        .iter()
        .map(|d| d.name.as_str().to_string())
        .collect();
    assert_eq!(
        got, expected_names,
        "hosts files cannot say exact or subtree"
    );

    let (_, _, rpz) = fetch(&bed, "rpz", None).await;
    let p = feeds::parse(&rpz, FeedFormat::Auto, FeedKind::Domains);
    assert_eq!(p.format, Some(FeedFormat::Rpz));
    assert!(p.rejected.is_empty(), "{:?}", p.rejected);
    assert_eq!(names(&p), expected, "{rpz}");
    let exceptions: Vec<(String, bool)> = p
        .exceptions
        .iter()
        .map(|d| (d.name.as_str().to_string(), d.exact))
        .collect();
    assert_eq!(
        exceptions,
        [("ok.pool.minergate.com".to_string(), false)],
        "the allowlist's hole in a published subtree"
    );
    assert!(rpz.contains("\n*.pool.minergate.com CNAME .\n"));
    assert!(rpz.contains("\nexact.example CNAME .\n"));
    assert!(!rpz.contains("*.exact.example"));

    let (_, _, ips) = fetch(&bed, "ips", None).await;
    let p = feeds::parse(&ips, FeedFormat::Auto, FeedKind::Ips);
    assert!(p.rejected.is_empty(), "{:?}", p.rejected);
    let got: BTreeSet<String> = p.ips.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        got,
        ["203.0.113.0/24", "2001:db8:bad::/48"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );

    let (status, _, _) = fetch(&bed, "bind", None).await;
    assert_eq!(status, 400);

    check_with_bind(&rpz);
    check_with_unbound(&rpz, bed.upstream.addr).await;
    bed.shutdown().await;
}

/// Loads the zone with BIND's own checker (`bind9-utils`, installed by
/// scripts/install-test-deps.sh; missing, the test fails naming the package).
fn check_with_bind(rpz: &str) {
    let checker = common::tools::require_tool("named-checkzone", "bind9-utils");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rpz.zone");
    std::fs::write(&file, rpz).expect("write zone");
    let out = std::process::Command::new(checker)
        .arg("rpz.poolguard.local")
        .arg(&file)
        .output()
        .expect("named-checkzone runs");
    assert!(
        out.status.success(),
        "named-checkzone: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_and_not_modified() {
    let bed = bed().await;
    let (status, tag, body) = fetch(&bed, "rpz", None).await;
    assert_eq!(status, 200);
    assert!(tag.starts_with('"') && tag.len() == 66, "{tag}");
    let (status, again, rest) = fetch(&bed, "rpz", Some(&tag)).await;
    assert_eq!(status, 304);
    assert_eq!(again, tag);
    assert!(rest.is_empty());
    // Same policy, same bytes (the ETag is the body's hash).
    let (_, tag2, body2) = fetch(&bed, "rpz", None).await;
    assert_eq!(
        (tag2.as_str(), body2.as_str()),
        (tag.as_str(), body.as_str())
    );
    // A change makes a new ETag; the old one no longer matches.
    put(&bed, "/api/v1/feeds/new", "brand-new.example\n").await;
    let (status, tag3, body3) = fetch(&bed, "rpz", Some(&tag)).await;
    assert_eq!(status, 200);
    assert_ne!(tag3, tag);
    assert!(body3.contains("brand-new.example CNAME ."));
    bed.shutdown().await;
}

/// One UDP query with a short timeout; `None` when nothing came back.
async fn ask_once(server: std::net::SocketAddr, name: &str) -> Option<Message> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.ok()?;
    let q = common::request(name, RecordType::A, false);
    sock.send_to(&q.to_vec().ok()?, server).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(
        std::time::Duration::from_millis(2000),
        sock.recv_from(&mut buf),
    )
    .await
    .ok()?
    .ok()?;
    Message::from_vec(&buf[..n]).ok()
}

/// Serves the zone from a real unbound (RPZ module) forwarding to the test upstream: blocked
/// names get NXDOMAIN, the allowlist's hole resolves. Missing unbound fails naming the package.
async fn check_with_unbound(rpz: &str, upstream: std::net::SocketAddr) {
    let server = "  module-config: \"respip iterator\"\n  qname-minimisation: no\n";
    let tail = "rpz:\n  name: rpz.poolguard.local\n  zonefile: \"{dir}/rpz.zone\"\n";
    // Ready once it answers for a listed name, which it can only do after loading the zone.
    let unbound = Unbound::start(
        upstream,
        server,
        tail,
        &[("rpz.zone", rpz)],
        "xmr.pool.minergate.com.",
    )
    .await;
    let server = unbound.addr;
    let log = unbound.log();
    let blocked = ask_once(server, "xmr.pool.minergate.com.")
        .await
        .unwrap_or_else(|| panic!("unbound stopped answering: {log}"));
    assert_eq!(
        blocked.metadata.response_code,
        ResponseCode::NXDomain,
        "{log}"
    );
    let allowed = ask_once(server, "ok.pool.minergate.com.")
        .await
        .expect("unbound answers");
    assert_eq!(
        allowed.metadata.response_code,
        ResponseCode::NoError,
        "{log}"
    );
    assert_eq!(
        common::addresses(&allowed),
        ["198.51.100.8"],
        "passthru resolves"
    );
}
