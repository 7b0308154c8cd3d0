//! `GET /api/v1/check` answers what DNS would (issue 13, point 12): the same decision code as
//! the DNS path (`policy::decide`: `[dns] allow`, quarantine, policy, local zones, conditional
//! forwarding) and, with `resolve=true`, the same answer inspection. Real HTTP to a running
//! poolguard whose DNS answers are asked too, so each `check` answer is held against DNS.

mod common;

use common::{Proto, SINK_V4, TestBed, Upstream, addresses, api_token_toml, query_from, request};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-for-tests";

async fn check(bed: &TestBed, query: &str) -> Value {
    let (status, v) = bed.api_get(&format!("/api/v1/check?{query}"), ADMIN).await;
    assert_eq!(status, 200, "{query}: {v}");
    v
}

async fn bed(corp: &Upstream) -> TestBed {
    TestBed::builder()
        .local_zone("campus.test", "campus.test.zone")
        .conditional("corp.test", corp.addr)
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n{}\
             [store]\npath = \"data/pg.db\"\nflush_interval_ms = 50\n\
             [enforcement]\nmode = \"quarantine\"\nnotice_ipv4 = \"192.0.2.99\"\nnotice_ipv6 = \"2001:db8::99\"\n\
             reachable = [\"mail.example.test\"]\n",
            api_token_toml("adam", "admin", ADMIN)
        ))
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_resolve_names_the_cname_or_address_that_dns_blocks() {
    let corp = Upstream::corp();
    let bed = bed(&corp).await;

    // DNS blocks `cdn.example.test` because its CNAME target is listed.
    let m = bed
        .ask(Proto::Udp, "cdn.example.test.", RecordType::A)
        .await;
    assert_eq!(addresses(&m), [SINK_V4]);
    let r = check(&bed, "name=cdn.example.test&resolve=true").await;
    assert_eq!(r["decision"], "blocked", "{r}");
    assert_eq!(r["via"], json!({"cname": "xmr.pool.minergate.com"}), "{r}");
    assert_eq!(r["feed"], "mining");
    assert_eq!(r["rule"], "pool.minergate.com");
    assert_eq!(r["action"], "sinkhole");
    assert_eq!(r["route"], "forward");
    assert_eq!(r["resolved"]["inspected"], true);
    assert!(
        r["resolved"]["answer"]
            .as_str()
            .unwrap()
            .contains("xmr.pool.minergate.com"),
        "{r}"
    );
    // Without `resolve` nothing is sent, and the name itself is not listed.
    let r = check(&bed, "name=cdn.example.test").await;
    assert_eq!(r["decision"], "pass", "{r}");
    assert!(r["resolved"].is_null());

    // An address inside a listed prefix.
    let m = bed
        .ask(Proto::Udp, "badip.example.test.", RecordType::A)
        .await;
    assert_eq!(addresses(&m), [SINK_V4]);
    let r = check(&bed, "name=badip.example.test&resolve=true").await;
    assert_eq!(r["decision"], "blocked", "{r}");
    assert_eq!(r["via"], json!({"address": "203.0.113.7"}), "{r}");
    assert_eq!(r["feed"], "pool-ips");
    assert_eq!(r["rule"], "203.0.113.0/24");

    // A clean name resolves and passes; the answer is shown.
    let r = check(&bed, "name=www.example.test&resolve=true&type=AAAA").await;
    assert_eq!(r["decision"], "pass", "{r}");
    assert_eq!(r["type"], "AAAA");
    assert_eq!(r["resolved"]["rcode"], "NOERROR");
    assert!(
        r["resolved"]["answer"]
            .as_str()
            .unwrap()
            .contains("2001:db8::10"),
        "{r}"
    );
    assert!(r["via"].is_null());
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_follows_local_zones_and_conditional_forwarding() {
    let corp = Upstream::corp();
    let bed = bed(&corp).await;

    // A local zone: answered from its file, never forwarded.
    let r = check(&bed, "name=printer.campus.test").await;
    assert_eq!(r["decision"], "pass", "{r}");
    assert_eq!(r["route"], "local_zone", "{r}");
    // A block wins over the local zone, as on the DNS path.
    let r = check(&bed, "name=blocked.campus.test").await;
    assert_eq!(r["decision"], "blocked", "{r}");
    assert!(r["route"].is_null(), "{r}");

    // Conditional forwarding: the domain whose servers answer, and their answer.
    let r = check(&bed, "name=host.corp.test&resolve=true").await;
    assert_eq!(r["route"], "conditional", "{r}");
    assert_eq!(r["conditional"], "corp.test");
    assert_eq!(r["resolved"]["upstream"], corp.addr.to_string());
    assert!(
        r["resolved"]["answer"]
            .as_str()
            .unwrap()
            .contains("10.20.30.40"),
        "{r}"
    );

    // An allowlisted name is forwarded and its answer never inspected.
    let r = check(&bed, "name=ok.pool.minergate.com&resolve=true").await;
    assert_eq!(r["decision"], "allowed", "{r}");
    assert_eq!(r["route"], "forward");
    assert_eq!(r["resolved"]["inspected"], false, "{r}");

    // ANY: the RFC 8482 answer, never forwarded.
    let r = check(&bed, "name=www.example.test&type=ANY").await;
    assert_eq!(r["route"], "rfc8482", "{r}");

    let (status, _) = bed
        .api_get("/api/v1/check?name=www.example.test&type=BOGUS", ADMIN)
        .await;
    assert_eq!(status, 400);
    let (status, _) = bed
        .api_get("/api/v1/check?name=www.example.test&resolve=yes", ADMIN)
        .await;
    assert_eq!(status, 400);
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_a_client_outside_the_dns_allow_list() {
    let corp = Upstream::corp();
    let bed = bed(&corp).await;
    // A client outside `[dns] allow` (127.0.0.0/8 and ::1 here) is refused, whatever the name.
    let r = check(&bed, "name=www.example.test&client=192.0.2.50").await;
    assert_eq!(r["decision"], "refused", "{r}");
    assert!(r["route"].is_null(), "{r}");
    let r = check(&bed, "name=pool.minergate.com&client=192.0.2.50").await;
    assert_eq!(r["decision"], "refused", "{r}");
    let r = check(&bed, "name=www.example.test&client=127.0.0.9").await;
    assert_eq!(r["decision"], "pass", "{r}");
    assert_eq!(r["quarantined"], false);

    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_quarantined_for_a_quarantined_client() {
    let corp = Upstream::corp();
    let bed = bed(&corp).await;
    // A quarantined client gets the walled garden, except `reachable` names.
    let (status, body) = bed
        .api_post_json(
            "/api/v1/quarantine",
            ADMIN,
            &json!({"ip": "127.0.0.30", "reason": "check test"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let m = query_from(
        "127.0.0.30".parse().unwrap(),
        bed.dns,
        Proto::Udp,
        &request("www.example.test.", RecordType::A, false),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&m), ["192.0.2.99"]);
    let r = check(&bed, "name=www.example.test&client=127.0.0.30").await;
    assert_eq!(r["decision"], "quarantined", "{r}");
    assert_eq!(r["quarantined"], true);
    let r = check(&bed, "name=mail.example.test&client=127.0.0.30").await;
    assert_eq!(r["decision"], "pass", "{r}");
    assert_eq!(r["route"], "forward");
    bed.shutdown().await;
}
