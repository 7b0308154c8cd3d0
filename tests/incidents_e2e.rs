//! Accountability end to end: real DNS queries from several clients (127.0.0.x) through a
//! running poolguard, then the staff API: incidents open and attach, deadlines against an
//! injected clock, the state machine, the written report, repeat-offender quarantine with its
//! walled garden, signed webhooks with retry, and the periodic summary.

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{Proto, SINK_V4, TestBed, addresses, query_from, request, sha256_hex};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use poolguard::incidents::ManualClock;
use serde_json::{Value, json};

const VIEWER: &str = "viewer-token-for-incident-tests";
const INVESTIGATOR: &str = "investigator-token-for-incident-tests";
const ADMIN: &str = "admin-token-for-incident-tests";
const HOUR: i64 = 3600 * 1000;
const LEDGER: &str = "network,mac,asset,kind,location,department,owner,contact\n\
127.0.0.7,aa:bb:cc:dd:ee:07,gpu-ws-07,GPU workstation,理科楼 A-301,计算机学院,张伟,zhangwei@example.edu\n\
127.0.0.8,aa:bb:cc:dd:ee:08,lab-pc-08,Desktop,Physics B-12,Physics,Li Na,lina@example.edu\n";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn base_toml(extra: &str) -> String {
    format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\
         [[api.tokens]]\nname = \"viewer\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
         [[api.tokens]]\nname = \"alice\"\nrole = \"investigator\"\nsha256 = \"{}\"\n\
         [[api.tokens]]\nname = \"root\"\nrole = \"admin\"\nsha256 = \"{}\"\n\
         [store]\npath = \"data/pg.db\"\nflush_interval_ms = 20\n[clients]\nledger = \"clients.csv\"\n{extra}",
        sha256_hex(VIEWER),
        sha256_hex(INVESTIGATOR),
        sha256_hex(ADMIN)
    )
}

async fn bed_with(clock: Arc<ManualClock>, extra: &str) -> TestBed {
    TestBed::builder()
        .file("clients.csv", LEDGER)
        .toml(&base_toml(extra))
        .clock(clock)
        .start()
        .await
}

async fn ask(bed: &TestBed, from: &str, name: &str, t: RecordType) -> hickory_proto::op::Message {
    query_from(ip(from), bed.dns, Proto::Udp, &request(name, t, true)).await
}

struct Api<'a> {
    bed: &'a TestBed,
    http: reqwest::Client,
}

impl<'a> Api<'a> {
    fn new(bed: &'a TestBed) -> Self {
        Self {
            bed,
            http: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.bed.api_url()))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("API answers");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, VIEWER, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    async fn text(&self, path: &str) -> String {
        let (status, body) = self.send(reqwest::Method::GET, path, VIEWER, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    async fn patch(&self, id: i64, body: Value) -> (u16, Value) {
        let (s, b) = self
            .send(
                reqwest::Method::PATCH,
                &format!("/api/v1/incidents/{id}"),
                INVESTIGATOR,
                Some(body),
            )
            .await;
        (s, serde_json::from_str(&b).unwrap_or(Value::Null))
    }
}

fn incident_of<'v>(list: &'v Value, client: &str) -> &'v Value {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["client"] == client)
        .unwrap_or_else(|| panic!("no incident for {client} in {list}"))
}

fn ms(rfc: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc.as_str().expect("time"))
        .expect("RFC 3339")
        .timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_open_attach_and_fall_due() {
    let clock = Arc::new(ManualClock::at(now_ms()));
    let bed = bed_with(clock.clone(), "").await;
    let api = Api::new(&bed);
    ask(&bed, "127.0.0.7", "xmr.pool.minergate.com.", RecordType::A).await;
    ask(&bed, "127.0.0.7", "moneroocean.stream.", RecordType::AAAA).await;
    ask(&bed, "127.0.0.7", "xmr.pool.minergate.com.", RecordType::A).await;
    ask(&bed, "127.0.0.8", "sink.test.", RecordType::A).await;
    ask(&bed, "127.0.0.9", "pool.minergate.com.", RecordType::TXT).await;
    // An allowed query opens nothing.
    ask(&bed, "127.0.0.10", "www.example.test.", RecordType::A).await;
    bed.running().flush().await.expect("flush");

    let list = api.get("/api/v1/incidents").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(3), "{list}");
    let gpu = incident_of(&list, "127.0.0.7");
    assert_eq!(gpu["client_key"], "asset:gpu-ws-07");
    assert_eq!(
        gpu["hit_count"], 3,
        "later hits attach to the open incident"
    );
    assert_eq!(gpu["distinct_names"], 2);
    assert_eq!(gpu["identity"]["owner"], "张伟");
    assert_eq!(gpu["device"], "gpu-ws-07", "prefilled from the ledger");
    assert_eq!(gpu["owner"], "张伟");
    assert_eq!(gpu["status"], "open");
    assert_eq!(gpu["feeds"], json!(["mining"]));
    assert_eq!(gpu["categories"], json!(["mining"]));
    let unknown = incident_of(&list, "127.0.0.9");
    assert_eq!(unknown["client_key"], "ip:127.0.0.9");
    assert_eq!(unknown["device"], Value::Null);

    // Deadlines: 48 h and 72 h after the first hit.
    let opened = ms(&gpu["opened_at"]);
    assert_eq!(ms(&gpu["identify_due"]) - opened, 48 * HOUR);
    assert_eq!(ms(&gpu["report_due"]) - opened, 72 * HOUR);
    assert_eq!(gpu["overdue"], false);

    // 47 h later nothing is overdue; 49 h later identification is.
    clock.set(opened + 47 * HOUR);
    let overdue = api.get("/api/v1/incidents?overdue=true").await;
    assert_eq!(
        overdue["items"].as_array().map(Vec::len),
        Some(0),
        "{overdue}"
    );
    clock.set(opened + 49 * HOUR);
    let one = api.get("/api/v1/incidents/1").await;
    let gpu_id = gpu["id"].as_i64().expect("id");
    let gpu_now = api.get(&format!("/api/v1/incidents/{gpu_id}")).await;
    assert_eq!(gpu_now["identify_overdue"], true);
    assert_eq!(gpu_now["report_overdue"], false);
    assert_eq!(gpu_now["overdue"], true);
    assert_eq!(gpu_now["hits"].as_array().map(Vec::len), Some(3));
    assert!(one["id"].is_i64());
    let overdue = api.get("/api/v1/incidents?overdue=true").await;
    assert_eq!(overdue["items"].as_array().map(Vec::len), Some(3));

    // Identified in time? No: identified at 49 h stays "identify missed", report not yet due.
    let (s, v) = api.patch(gpu_id, json!({"status": "identified"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["identify_overdue"], true);
    assert_eq!(v["report_overdue"], false);
    clock.set(opened + 73 * HOUR);
    let v = api.get(&format!("/api/v1/incidents/{gpu_id}")).await;
    assert_eq!(v["report_overdue"], true);

    // Filters, pagination and CSV.
    let dept = api
        .get("/api/v1/incidents?department=%E8%AE%A1%E7%AE%97%E6%9C%BA%E5%AD%A6%E9%99%A2")
        .await;
    assert_eq!(dept["items"].as_array().map(Vec::len), Some(1));
    let page1 = api.get("/api/v1/incidents?limit=2").await;
    assert_eq!(page1["items"].as_array().map(Vec::len), Some(2));
    let cursor = page1["next_cursor"].as_str().expect("cursor");
    let page2 = api
        .get(&format!("/api/v1/incidents?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(page2["items"].as_array().map(Vec::len), Some(1));
    let open = api.get("/api/v1/incidents?status=open").await;
    assert_eq!(open["items"].as_array().map(Vec::len), Some(2));
    let csv = api.text("/api/v1/incidents?format=csv").await;
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.contains("张伟"));
    let (s, _) = api
        .send(
            reqwest::Method::GET,
            "/api/v1/incidents?status=bogus",
            VIEWER,
            None,
        )
        .await;
    assert_eq!(s, 400);
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_state_machine_notes_and_report() {
    let clock = Arc::new(ManualClock::at(now_ms()));
    let bed = bed_with(clock.clone(), "").await;
    let api = Api::new(&bed);
    let names = [
        "xmr.pool.minergate.com.",
        "moneroocean.stream.",
        "gulf.moneroocean.stream.",
        "sink.test.",
    ];
    for n in names {
        ask(&bed, "127.0.0.7", n, RecordType::A).await;
    }
    ask(&bed, "127.0.0.7", "pool.minergate.com.", RecordType::MX).await;
    bed.running().flush().await.expect("flush");
    let first = api.get("/api/v1/incidents").await;
    let id = first["items"][0]["id"].as_i64().expect("id");
    let opened = ms(&first["items"][0]["opened_at"]);
    clock.set(opened + 2 * HOUR);

    // Viewers read but do not write.
    let (s, _) = api
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/incidents/{id}"),
            VIEWER,
            Some(json!({"status": "investigating"})),
        )
        .await;
    assert_eq!(s, 403);

    let (s, v) = api
        .patch(id, json!({"status": "investigating", "assignee": "alice"}))
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("investigating")));
    // No `identified` without device and owner.
    let (s, v) = api.patch(id, json!({"owner": ""})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api.patch(id, json!({"status": "identified"})).await;
    assert_eq!(s, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or("")
            .contains("responsible person"),
        "{v}"
    );
    clock.set(opened + 20 * HOUR);
    let (s, v) = api
        .patch(id, json!({"status": "identified", "owner": "张伟 (PhD student)", "device": "gpu-ws-07 / SN 4711"}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["identified_at"].is_string());
    // Backwards and closing without a resolution are refused with the reason.
    let (s, v) = api.patch(id, json!({"status": "open"})).await;
    assert_eq!(s, 409);
    assert!(
        v["error"].as_str().unwrap_or("").contains("cannot go back"),
        "{v}"
    );
    let (s, _) = api.patch(id, json!({"resolution": "cleaned"})).await;
    assert_eq!(s, 409);
    let (s, _) = api.patch(id, json!({"status": "closed"})).await;
    assert_eq!(s, 409);
    let (s, _) = api
        .patch(id, json!({"status": "closed", "resolution": "bogus"}))
        .await;
    assert_eq!(s, 400);
    let (s, _) = api.patch(id, json!({"colour": "red"})).await;
    assert_eq!(s, 400);

    // Notes: append-only, author from the token name.
    let (s, body) = api
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/incidents/{id}/notes"),
            INVESTIGATOR,
            Some(json!({"text": "已联系张伟，矿机程序 xmrig 已删除。<script>alert(1)</script>"})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let note: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(note["author"], "alice");
    let (s, _) = api
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/incidents/{id}/notes"),
            INVESTIGATOR,
            Some(json!({"text": "  "})),
        )
        .await;
    assert_eq!(s, 400);
    // The written report arrives late: 75 h after the first hit (due at 72 h).
    clock.set(opened + 75 * HOUR);
    let (s, v) = api.patch(id, json!({"status": "reported"})).await;
    assert_eq!(s, 200, "{v}");
    clock.set(opened + 76 * HOUR);
    let (s, v) = api
        .patch(id, json!({"status": "closed", "resolution": "cleaned"}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["resolution"], "cleaned");
    assert_eq!(v["identify_overdue"], false, "identified at 20 h: met");
    assert_eq!(v["report_overdue"], true, "reported at 75 h: missed");
    let (s, v) = api.patch(id, json!({"assignee": "bob"})).await;
    assert_eq!(s, 409, "closed is final: {v}");

    // Every write is audited (admin-only endpoint: read the table directly).
    let html = api.text(&format!("/api/v1/incidents/{id}/report")).await;
    let md = api
        .text(&format!("/api/v1/incidents/{id}/report?format=md"))
        .await;
    for n in names {
        let n = n.trim_end_matches('.');
        assert!(html.contains(n), "{n} missing from the HTML report");
        assert!(
            md.contains(&n.replace('_', "\\_")),
            "{n} missing from the Markdown report"
        );
    }
    // Five hits, five timeline rows (plus the header row).
    let timeline = html.split("Timeline of hits").nth(1).expect("timeline");
    let timeline = timeline.split("</table>").next().expect("table");
    assert_eq!(timeline.matches("<tr>").count(), 6, "{timeline}");
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(html.contains("@page"));
    assert!(html.contains("Noto Sans CJK SC"));
    assert!(!html.contains("<script"), "no scripts, notes escaped");
    assert!(html.contains("&lt;script&gt;"));
    assert!(html.contains("张伟 (PhD student)"));
    assert!(html.contains("计算机学院"));
    assert!(html.contains("理科楼 A-301"));
    assert!(html.contains("已联系张伟"));
    assert!(html.contains("blocklists/mining.txt"), "feed source");
    assert!(html.contains("incident.update"), "actions taken");
    assert!(html.contains("met —"), "identification deadline met");
    assert!(html.contains("missed — done"), "report deadline missed");
    assert!(md.contains("| Responsible person | 张伟 (PhD student) |"));
    if std::env::var_os("POOLGUARD_WRITE_SAMPLES").is_some() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::write(docs.join("sample-incident-report.html"), &html).expect("write sample");
        std::fs::write(docs.join("sample-incident-report.md"), &md).expect("write sample");
    }

    // A new hit after closing opens a new incident.
    ask(&bed, "127.0.0.7", "sink.test.", RecordType::A).await;
    bed.running().flush().await.expect("flush");
    let list = api.get("/api/v1/incidents?status=open").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_ne!(list["items"][0]["id"].as_i64(), Some(id));
    let dir = bed.shutdown().await;
    let conn = rusqlite::Connection::open(dir.path().join("data/pg.db")).expect("db");
    let audited: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit WHERE target = ?1 AND actor = 'alice'",
            [format!("incident/{id}")],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(
        audited, 6,
        "5 accepted updates + 1 note, every write audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_repeat_offender_is_quarantined_and_released() {
    let clock = Arc::new(ManualClock::at(now_ms()));
    let bed = bed_with(
        clock.clone(),
        "[enforcement]\nmode = \"quarantine\"\nincidents_threshold = 0\nhits_threshold = 3\nhits_window = \"1h\"\n\
         notice_ipv4 = \"192.0.2.99\"\nnotice_ipv6 = \"2001:db8::99\"\nreachable = [\"mail.example.test\"]\n\
         [notice]\nlisten = \"127.0.0.1:0\"\ntext_zh = \"本终端因挖矿被暂停上网。\"\ncontact = \"信息中心 8888\"\n",
    )
    .await;
    let api = Api::new(&bed);
    let miner = "127.0.0.20";
    // Two hits: below the threshold.
    for _ in 0..2 {
        ask(&bed, miner, "xmr.pool.minergate.com.", RecordType::A).await;
    }
    bed.running().flush().await.expect("flush");
    assert_eq!(api.get("/api/v1/quarantine").await["items"], json!([]));
    let www = ask(&bed, miner, "www.example.test.", RecordType::A).await;
    assert_eq!(addresses(&www), ["192.0.2.10"]);

    // The third hit crosses it: quarantined after the batch commits.
    ask(&bed, miner, "xmr.pool.minergate.com.", RecordType::A).await;
    bed.running().flush().await.expect("flush");
    let q = api.get("/api/v1/quarantine").await;
    assert_eq!(q["items"][0]["ip"], miner, "{q}");
    assert_eq!(q["items"][0]["actor"], "system");
    assert!(
        q["items"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("3 hits")
    );
    assert_eq!(
        api.text("/api/v1/quarantine?format=txt").await,
        format!("{miner}\n")
    );
    let csv = api.text("/api/v1/quarantine?format=csv").await;
    assert!(
        csv.starts_with("\u{feff}ip,since,actor,reason,incident_id\n127.0.0.20,"),
        "{csv}"
    );

    // Walled garden: A/AAAA → notice page, other types NXDOMAIN, reachable names resolve.
    let www = ask(&bed, miner, "www.example.test.", RecordType::A).await;
    assert_eq!(addresses(&www), ["192.0.2.99"]);
    let www6 = ask(&bed, miner, "www.example.test.", RecordType::AAAA).await;
    assert_eq!(addresses(&www6), ["2001:db8::99"]);
    let mx = ask(&bed, miner, "example.test.", RecordType::MX).await;
    assert_eq!(mx.metadata.response_code, ResponseCode::NXDomain);
    // With the synthetic SOA, so it is cached for the walled TTL (RFC 2308 §5), no longer.
    let soa = mx.authorities.first().expect("SOA on the walled NXDOMAIN");
    assert_eq!(soa.record_type(), RecordType::SOA);
    assert_eq!(soa.ttl, 30);
    let mail = ask(&bed, miner, "mail.example.test.", RecordType::A).await;
    assert_eq!(
        addresses(&mail),
        ["192.0.2.25"],
        "reachable names still resolve"
    );
    // A pool name is still evidence (a hit), answered from the walled garden.
    let pool = ask(&bed, miner, "moneroocean.stream.", RecordType::A).await;
    assert_eq!(addresses(&pool), ["192.0.2.99"]);
    // Other clients are untouched.
    let other = ask(&bed, "127.0.0.21", "www.example.test.", RecordType::A).await;
    assert_eq!(addresses(&other), ["192.0.2.10"]);
    let other = ask(&bed, "127.0.0.21", "sink.test.", RecordType::A).await;
    assert_eq!(addresses(&other), [SINK_V4]);
    bed.running().flush().await.expect("flush");
    let hits = api.get(&format!("/api/v1/hits?client={miner}")).await;
    assert_eq!(hits["items"].as_array().map(Vec::len), Some(4));
    let walled = api
        .get(&format!(
            "/api/v1/queries?client={miner}&action=quarantined"
        ))
        .await;
    assert_eq!(
        walled["items"].as_array().map(Vec::len),
        Some(3),
        "{walled}"
    );
    let inc = api.get("/api/v1/incidents").await;
    let inc = incident_of(&inc, miner);
    assert_eq!(inc["quarantined"], true);
    assert_eq!(inc["hit_count"], 4);

    // The notice page, in Chinese and English.
    let notice = format!(
        "http://{}/any/path",
        bed.running().notice_addr().expect("notice page")
    );
    let resp = reqwest::get(&notice).await.expect("notice answers");
    assert_eq!(resp.status(), 403);
    let page = resp.text().await.expect("page");
    assert!(page.contains("本终端因挖矿被暂停上网。"));
    assert!(page.contains("information centre"));
    assert!(page.contains("信息中心 8888"));

    // Survives a restart (SQLite is the source of truth).
    let dir = bed.shutdown().await;
    let config = poolguard::config::Config::load(&dir.path().join("config.toml")).expect("config");
    let running = poolguard::app::start_with(
        config,
        poolguard::app::StartOptions {
            clock: Some(clock.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("restart");
    assert!(running.accountability().quarantine.contains(ip(miner)));
    let dns = running.dns_addrs()[0];
    let www = query_from(
        ip(miner),
        dns,
        Proto::Udp,
        &request("www.example.test.", RecordType::A, false),
    )
    .await;
    assert_eq!(addresses(&www), ["192.0.2.99"]);

    // Release (investigator), then the client resolves normally again.
    let api_url = format!("http://{}", running.api_addr().expect("api"));
    let http = reqwest::Client::new();
    let resp = http
        .delete(format!(
            "{api_url}/api/v1/quarantine/{miner}?reason=cleaned"
        ))
        .bearer_auth(VIEWER)
        .send()
        .await
        .expect("api");
    assert_eq!(resp.status(), 403, "viewers cannot release");
    let resp = http
        .delete(format!(
            "{api_url}/api/v1/quarantine/{miner}?reason=cleaned"
        ))
        .bearer_auth(INVESTIGATOR)
        .send()
        .await
        .expect("api");
    assert_eq!(resp.status(), 200);
    assert!(!running.accountability().quarantine.contains(ip(miner)));
    // (The first bed's upstream is gone; a listed name shows the normal policy is back.)
    let sink = query_from(
        ip(miner),
        dns,
        Proto::Udp,
        &request("sink.test.", RecordType::A, false),
    )
    .await;
    assert_eq!(addresses(&sink), [SINK_V4]);
    let resp = http
        .delete(format!("{api_url}/api/v1/quarantine/{miner}"))
        .bearer_auth(INVESTIGATOR)
        .send()
        .await
        .expect("api");
    assert_eq!(resp.status(), 404);

    // Manual quarantine with a reason; body form of release.
    let resp = http
        .post(format!("{api_url}/api/v1/quarantine"))
        .bearer_auth(INVESTIGATOR)
        .json(&json!({"ip": "127.0.0.30", "reason": "mining seen by the NOC"}))
        .send()
        .await
        .expect("api");
    assert_eq!(resp.status(), 201);
    assert!(
        running
            .accountability()
            .quarantine
            .contains(ip("127.0.0.30"))
    );
    let resp = http
        .delete(format!("{api_url}/api/v1/quarantine"))
        .bearer_auth(INVESTIGATOR)
        .json(&json!({"ip": "127.0.0.30", "reason": "false alarm"}))
        .send()
        .await
        .expect("api");
    assert_eq!(resp.status(), 200);
    assert!(
        !running
            .accountability()
            .quarantine
            .contains(ip("127.0.0.30"))
    );
    running.shutdown().await;
}

/// A local webhook receiver: answers 500 to the first request, 200 after; reports every
/// request (headers that matter, body) on a channel.
async fn webhook_receiver() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<(String, String, Vec<u8>)>,
) {
    use axum::http::{HeaderMap, StatusCode};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let tx = tx.clone();
            let calls = calls.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let _ = tx.send((
                    h("x-poolguard-event"),
                    h("x-poolguard-signature"),
                    body.to_vec(),
                ));
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let addr = common::serve_local(app).await;
    (addr, rx)
}

async fn next_call(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String, Vec<u8>)>,
) -> (String, String, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a webhook call within 10 s")
        .expect("receiver alive")
}

fn verify(secret: &str, sig: &str, body: &[u8]) {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    let hex_sig = sig.strip_prefix("sha256=").expect("sha256= prefix");
    let raw = hex::decode(hex_sig).expect("hex");
    mac.verify_slice(&raw).expect("valid HMAC-SHA256 signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_webhooks_are_signed_and_retried() {
    let (hook, mut calls) = webhook_receiver().await;
    let clock = Arc::new(ManualClock::at(now_ms()));
    let secret = "s3cret-key";
    let siem = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("syslog socket");
    let siem_addr = siem.local_addr().expect("addr");
    let bed = bed_with(
        clock.clone(),
        &format!(
            "[alerts]\nretry_backoff = \"10ms\"\nmax_attempts = 3\ncheck_every = \"1h\"\nsyslog = \"{siem_addr}\"\n\
             [[alerts.webhooks]]\nurl = \"http://{hook}/hook\"\nsecret = \"{secret}\"\n"
        ),
    )
    .await;
    let api = Api::new(&bed);
    ask(&bed, "127.0.0.8", "sink.test.", RecordType::A).await;
    bed.running().flush().await.expect("flush");

    // First attempt gets a 500, the retry succeeds; both carry a valid signature.
    let (event, sig, body) = next_call(&mut calls).await;
    assert_eq!(event, "incident.opened");
    verify(secret, &sig, &body);
    let v: Value = serde_json::from_slice(&body).expect("json body");
    assert_eq!(v["event"], "incident.opened");
    assert_eq!(v["client"], "127.0.0.8");
    // What the person on duty needs: number, identity from the ledger, pool, feed, hits and
    // the deadlines (no console_url configured: no link).
    let d = &v["detail"];
    assert_eq!(d["number"], v["incident_id"]);
    assert_eq!(d["link"], Value::Null);
    assert_eq!(d["identity"]["department"], "Physics");
    assert_eq!(d["identity"]["owner"], "Li Na");
    assert_eq!(d["identity"]["asset"], "lab-pc-08");
    assert_eq!(d["identity"]["mac"], "aa:bb:cc:dd:ee:08");
    assert_eq!(d["identity"]["location"], "Physics B-12");
    assert_eq!(d["pool"], "sink.test");
    assert!(d["feed"].is_string(), "{d}");
    assert_eq!(d["hits"], 1);
    assert_eq!(ms(&d["report_by"]) - ms(&d["opened"]), 72 * HOUR);
    assert_eq!(ms(&d["identify_by"]) - ms(&d["opened"]), 48 * HOUR);
    let (event2, sig2, body2) = next_call(&mut calls).await;
    assert_eq!(
        (event2.as_str(), body2.as_slice()),
        ("incident.opened", body.as_slice())
    );
    verify(secret, &sig2, &body2);

    // The SIEM got the same event as RFC 5424 over UDP.
    let mut buf = vec![0u8; 8192];
    let (n, _) = tokio::time::timeout(Duration::from_secs(10), siem.recv_from(&mut buf))
        .await
        .expect("a syslog message within 10 s")
        .expect("recv");
    let line = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(line.starts_with("<132>1 "), "{line}");
    assert!(
        line.contains(" poolguard poolguard - incident.opened - {"),
        "{line}"
    );

    // The delivery log shows both attempts (written just after each response: poll, bounded).
    let mut items = Vec::new();
    for _ in 0..200 {
        let log = api.get("/api/v1/alerts/deliveries").await;
        items = log["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|d| {
                d["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("http://"))
            })
            .cloned()
            .collect();
        if items.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = json!(items);
    assert_eq!(items.len(), 2, "{log}");
    assert_eq!(items[1]["attempt"], 1);
    assert_eq!(items[1]["status"], 500);
    assert_eq!(items[1]["ok"], false);
    assert_eq!(items[0]["attempt"], 2);
    assert_eq!(items[0]["ok"], true);

    // Deadlines: due soon 6 h before, then overdue; each once.
    let inc = api.get("/api/v1/incidents").await;
    let opened = ms(&inc["items"][0]["opened_at"]);
    clock.set(opened + 43 * HOUR);
    assert_eq!(bed.running().check_deadlines().await.expect("check"), 1);
    let (event, sig, body) = next_call(&mut calls).await;
    assert_eq!(event, "incident.due_soon");
    verify(secret, &sig, &body);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["detail"]["deadline"], "identify");
    assert_eq!(
        bed.running().check_deadlines().await.expect("check"),
        0,
        "once"
    );
    clock.set(opened + 49 * HOUR);
    assert_eq!(bed.running().check_deadlines().await.expect("check"), 1);
    let (event, _, _) = next_call(&mut calls).await;
    assert_eq!(event, "incident.overdue");

    // Quarantine on and off through the API raise their events too.
    let (s, b) = api
        .send(
            reqwest::Method::POST,
            "/api/v1/quarantine",
            INVESTIGATOR,
            Some(json!({"ip": "127.0.0.8", "reason": "keeps mining"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (event, _, _) = next_call(&mut calls).await;
    assert_eq!(event, "quarantine.on");
    let (s, _) = api
        .send(
            reqwest::Method::DELETE,
            "/api/v1/quarantine/127.0.0.8",
            INVESTIGATOR,
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (event, _, _) = next_call(&mut calls).await;
    assert_eq!(event, "quarantine.off");
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_summary_counts_the_period() {
    let start = now_ms();
    let clock = Arc::new(ManualClock::at(start));
    let bed = bed_with(clock.clone(), "").await;
    let api = Api::new(&bed);
    for _ in 0..3 {
        ask(&bed, "127.0.0.7", "xmr.pool.minergate.com.", RecordType::A).await;
    }
    ask(&bed, "127.0.0.8", "sink.test.", RecordType::A).await;
    ask(&bed, "127.0.0.9", "moneroocean.stream.", RecordType::A).await;
    ask(&bed, "127.0.0.9", "www.example.test.", RecordType::A).await;
    bed.running().flush().await.expect("flush");
    let list = api.get("/api/v1/incidents").await;
    let lab = incident_of(&list, "127.0.0.8")["id"].as_i64().expect("id");
    let (s, v) = api
        .patch(
            lab,
            json!({"status": "closed", "resolution": "false-positive"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    clock.set(start + 50 * HOUR);

    let since = chrono::DateTime::from_timestamp_millis(start - HOUR)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let until = chrono::DateTime::from_timestamp_millis(start + 60 * HOUR)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let q = format!(
        "since={}&until={}",
        since.replace('+', "%2B"),
        until.replace('+', "%2B")
    );
    let s = api.get(&format!("/api/v1/reports/summary?{q}")).await;
    assert_eq!(s["hits"], 5, "{s}");
    assert_eq!(s["incidents_opened"], 3);
    assert_eq!(s["incidents_closed"], 1);
    assert_eq!(
        s["incidents_overdue"], 2,
        "judged at the clock: 50 h > 48 h"
    );
    let depts = s["by_department"].as_array().expect("depts");
    let cs = depts
        .iter()
        .find(|d| d["department"] == "计算机学院")
        .expect("department");
    assert_eq!(
        (cs["opened"].as_i64(), cs["overdue"].as_i64()),
        (Some(1), Some(1))
    );
    let phys = depts
        .iter()
        .find(|d| d["department"] == "Physics")
        .expect("physics");
    assert_eq!(
        (
            phys["opened"].as_i64(),
            phys["closed"].as_i64(),
            phys["overdue"].as_i64()
        ),
        (Some(1), Some(1), Some(0))
    );
    assert_eq!(s["top_offenders"][0]["client"], "127.0.0.7");
    assert_eq!(s["top_offenders"][0]["hits"], 3);
    let names: Vec<&str> = s["new_names"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"xmr.pool.minergate.com"));
    // The feeds poolguard started with are the baseline: nothing "added" yet.
    assert_eq!(s["added_names_total"], 0, "{s}");

    // A maintainer adds pool names: the bulletin lists them, with their feed.
    let resp = reqwest::Client::new()
        .put(format!("{}/api/v1/feeds/new-pools", bed.api_url()))
        .bearer_auth(ADMIN)
        .body("newpool.example\nstratum.otherpool.example\n")
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), 200);
    let s = api.get(&format!("/api/v1/reports/summary?{q}")).await;
    assert_eq!(s["added_names_total"], 2, "{s}");
    let added: Vec<(&str, &str)> = s["added_names"]
        .as_array()
        .expect("added")
        .iter()
        .filter_map(|n| Some((n["entry"].as_str()?, n["source"].as_str()?)))
        .collect();
    assert!(added.contains(&("newpool.example", "new-pools")), "{s}");

    let html = api
        .text(&format!("/api/v1/reports/summary?{q}&format=html"))
        .await;
    assert!(html.contains("计算机学院") && html.contains("<meta charset=\"utf-8\">"));
    assert!(
        html.contains("Pool names added to the feeds (2)")
            && html.contains("stratum.otherpool.example"),
        "{html}"
    );
    // The same bulletin in Chinese, as filed with the information office.
    let zh = api
        .text(&format!(
            "/api/v1/reports/summary?{q}&format=html&lang=zh-CN"
        ))
        .await;
    assert!(
        zh.contains("挖矿治理通报") && zh.contains("新增封堵的矿池域名 (2)"),
        "{zh}"
    );
    let csv = api
        .text(&format!("/api/v1/reports/summary?{q}&format=csv"))
        .await;
    assert!(csv.contains("total,hits,5"), "{csv}");
    let (st, _) = api
        .send(
            reqwest::Method::GET,
            "/api/v1/reports/summary?since=yesterday",
            VIEWER,
            None,
        )
        .await;
    assert_eq!(st, 400);
    bed.shutdown().await;
}

/// SIGHUP re-reads the asset ledger file (`Running::reload_ledger`), as
/// `POST /api/v1/ledger/reload` does, audited as the system's; a file that no longer loads
/// keeps the ledger in force.
#[tokio::test]
async fn the_ledger_file_is_reloaded_without_a_restart() {
    let bed = bed_with(Arc::new(ManualClock::at(now_ms())), "").await;
    let api = Api::new(&bed);
    let department = |v: &Value| v["identity"]["department"].clone();
    assert_eq!(
        department(&api.get("/api/v1/clients/127.0.0.8").await),
        "Physics"
    );
    let path = bed.dir.path().join("clients.csv");
    std::fs::write(
        &path,
        LEDGER.replace("Physics B-12,Physics", "Chem C-1,Chemistry"),
    )
    .expect("write ledger");
    assert_eq!(bed.running().reload_ledger().await, Some(2));
    assert_eq!(
        department(&api.get("/api/v1/clients/127.0.0.8").await),
        "Chemistry"
    );

    std::fs::write(&path, "not,a,ledger\n").expect("write ledger");
    assert_eq!(bed.running().reload_ledger().await, None);
    assert_eq!(
        department(&api.get("/api/v1/clients/127.0.0.8").await),
        "Chemistry",
        "the ledger in force stays"
    );
    let dir = bed.shutdown().await;
    let conn = rusqlite::Connection::open(dir.path().join("data/pg.db")).expect("db");
    let audited: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'ledger.reload' AND actor = 'system'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(audited, 1);
}

/// The summary row `label` of a report (HTML or Markdown): the whole line, so a test can read
/// its state and, in HTML, its class.
fn report_line<'r>(report: &'r str, label: &str) -> &'r str {
    report
        .lines()
        .find(|l| {
            l.starts_with(&format!("<tr><th>{label}</th>"))
                || l.starts_with(&format!("| {label} |"))
        })
        .unwrap_or_else(|| panic!("no `{label}` line in the report:\n{report}"))
}

/// Issue 13 point 9: a deadline missed stays missed after closing, in the incident, the list
/// filter, both report formats and the bulletin; a deadline is "not needed" only when the
/// incident closed before it was due; `cleaned` needs the incident reported first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_after_a_missed_deadline_keeps_it_missed() {
    let start = now_ms();
    let clock = Arc::new(ManualClock::at(start));
    let bed = bed_with(clock.clone(), "").await;
    let api = Api::new(&bed);
    // 127.0.0.9: unknown to the ledger; 127.0.0.8: a false positive closed early;
    // 127.0.0.7: found and cleaned.
    for client in ["127.0.0.9", "127.0.0.8", "127.0.0.7"] {
        ask(&bed, client, "xmr.pool.minergate.com.", RecordType::A).await;
    }
    bed.running().flush().await.expect("flush");
    let list = api.get("/api/v1/incidents").await;
    let id_of = |c: &str| incident_of(&list, c)["id"].as_i64().expect("id");
    let (late, early, gpu) = (id_of("127.0.0.9"), id_of("127.0.0.8"), id_of("127.0.0.7"));
    let opened = ms(&incident_of(&list, "127.0.0.9")["opened_at"]);

    // A false positive closed 10 h in: neither deadline was due, so neither is needed.
    clock.set(opened + 10 * HOUR);
    let (s, v) = api
        .patch(
            early,
            json!({"status": "closed", "resolution": "false-positive"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["identify_state"].as_str(), v["report_state"].as_str()),
        (Some("not_needed"), Some("not_needed")),
        "{v}"
    );
    assert_eq!(
        v["identified_at"],
        Value::Null,
        "closing is not identifying"
    );

    // `cleaned` before `reported`: refused with the reason.
    clock.set(opened + 20 * HOUR);
    let (s, v) = api.patch(gpu, json!({"status": "identified"})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api
        .patch(gpu, json!({"status": "closed", "resolution": "cleaned"}))
        .await;
    assert_eq!(s, 409, "{v}");
    let reason = v["error"].as_str().unwrap_or("");
    assert!(
        reason.contains("reported"),
        "the reason names the missing step: {v}"
    );

    // 73 h: both deadlines of the unknown client passed; it is closed only now.
    clock.set(opened + 73 * HOUR);
    let v = api.get(&format!("/api/v1/incidents/{late}")).await;
    assert_eq!(
        (
            v["identify_overdue"].as_bool(),
            v["report_overdue"].as_bool()
        ),
        (Some(true), Some(true))
    );
    let (s, v) = api
        .patch(
            late,
            json!({"status": "closed", "resolution": "false-positive"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    clock.set(opened + 90 * HOUR);
    let v = api.get(&format!("/api/v1/incidents/{late}")).await;
    assert_eq!(
        v["report_overdue"], true,
        "closing does not erase a missed deadline: {v}"
    );
    assert_eq!(v["identify_overdue"], true, "{v}");
    assert_eq!(v["overdue"], true, "{v}");
    assert_eq!(
        (v["identify_state"].as_str(), v["report_state"].as_str()),
        (Some("missed"), Some("missed")),
        "{v}"
    );
    let v = api.get(&format!("/api/v1/incidents/{early}")).await;
    assert_eq!(
        (v["overdue"].as_bool(), v["report_state"].as_str()),
        (Some(false), Some("not_needed")),
        "{v}"
    );

    // The list filter agrees.
    let overdue = api.get("/api/v1/incidents?overdue=true").await;
    let ids: Vec<i64> = overdue["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect();
    assert!(ids.contains(&late) && !ids.contains(&early), "{overdue}");

    // The written report, in both formats.
    let html = api.text(&format!("/api/v1/incidents/{late}/report")).await;
    let md = api
        .text(&format!("/api/v1/incidents/{late}/report?format=md"))
        .await;
    for report in [&html, &md] {
        for label in ["Identify deadline", "Report deadline"] {
            let line = report_line(report, label);
            assert!(line.contains("missed"), "{line}");
            assert!(!line.contains("not needed"), "{line}");
        }
    }
    assert!(report_line(&html, "Report deadline").contains("class=\"missed\""));
    let html = api.text(&format!("/api/v1/incidents/{early}/report")).await;
    let md = api
        .text(&format!("/api/v1/incidents/{early}/report?format=md"))
        .await;
    for report in [&html, &md] {
        let line = report_line(report, "Report deadline");
        assert!(
            line.contains("not needed") && !line.contains("missed"),
            "{line}"
        );
    }

    // The bulletin counts it overdue; the early false positive is not.
    let since = chrono::DateTime::from_timestamp_millis(start - HOUR)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        .replace('+', "%2B");
    let s = api
        .get(&format!("/api/v1/reports/summary?since={since}"))
        .await;
    // gpu: identified in time, report now overdue (open); late: both missed; early: neither.
    assert_eq!(s["incidents_overdue"], 2, "{s}");
    let phys = s["by_department"]
        .as_array()
        .expect("departments")
        .iter()
        .find(|d| d["department"] == "Physics")
        .expect("Physics");
    assert_eq!(phys["overdue"], 0, "{s}");
    let unknown = s["by_department"]
        .as_array()
        .expect("departments")
        .iter()
        .find(|d| d["department"] == "(unknown)")
        .expect("(unknown)");
    assert_eq!(unknown["overdue"], 1, "{s}");

    // Reported late, then cleaned: allowed, and the report deadline reads "missed, done late".
    let (s, v) = api.patch(gpu, json!({"status": "reported"})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api
        .patch(gpu, json!({"status": "closed", "resolution": "cleaned"}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["identify_state"].as_str(), v["report_state"].as_str()),
        (Some("met"), Some("missed")),
        "{v}"
    );
    let md = api
        .text(&format!("/api/v1/incidents/{gpu}/report?format=md"))
        .await;
    assert!(
        report_line(&md, "Report deadline").contains("missed — done late at"),
        "{md}"
    );
    bed.shutdown().await;
}

/// Issue 13 point 13: a PATCH that changes nothing (`{}`, or every field at its current value)
/// answers 200 with the unchanged incident and writes no audit row, so the report lists no
/// action; a real change still writes exactly one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_that_changes_nothing_is_not_audited() {
    let clock = Arc::new(ManualClock::at(now_ms()));
    let bed = bed_with(clock.clone(), "").await;
    let api = Api::new(&bed);
    ask(&bed, "127.0.0.7", "xmr.pool.minergate.com.", RecordType::A).await;
    bed.running().flush().await.expect("flush");
    let list = api.get("/api/v1/incidents").await;
    let before = incident_of(&list, "127.0.0.7").clone();
    let id = before["id"].as_i64().expect("id");
    let audit_rows = || async {
        let (s, body) = api
            .send(
                reqwest::Method::GET,
                "/api/v1/audit?limit=1000",
                ADMIN,
                None,
            )
            .await;
        assert_eq!(s, 200, "{body}");
        let page: Value = serde_json::from_str(&body).expect("JSON");
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|e| e["target"] == format!("incident/{id}"))
            .cloned()
            .collect::<Vec<Value>>()
    };

    clock.set(ms(&before["opened_at"]) + HOUR);
    for body in [
        json!({}),
        json!({"status": "open", "device": "gpu-ws-07", "owner": "张伟"}),
        // Trimmed to the current value; clearing a field that is already empty.
        json!({"device": " gpu-ws-07 ", "assignee": ""}),
    ] {
        let (s, v) = api.patch(id, body.clone()).await;
        assert_eq!(s, 200, "{body}: {v}");
        for field in ["status", "device", "owner", "assignee", "resolution"] {
            assert_eq!(v[field], before[field], "{body}: {field} unchanged");
        }
    }
    assert_eq!(
        audit_rows().await,
        Vec::<Value>::new(),
        "no change, no audit row"
    );
    let html = api.text(&format!("/api/v1/incidents/{id}/report")).await;
    let md = api
        .text(&format!("/api/v1/incidents/{id}/report?format=md"))
        .await;
    for report in [&html, &md] {
        assert!(!report.contains("incident.update"), "{report}");
    }

    // A real change is audited once, naming only what changed.
    let (s, v) = api
        .patch(
            id,
            json!({"status": "investigating", "device": "gpu-ws-07"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let rows = audit_rows().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["detail"], "status open→investigating", "{rows:?}");
    let md = api
        .text(&format!("/api/v1/incidents/{id}/report?format=md"))
        .await;
    assert_eq!(md.matches("incident.update").count(), 1, "{md}");
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_network_is_quarantined_in_an_emergency_and_released_whole() {
    let bed = bed_with(Arc::new(ManualClock::at(now_ms())), "").await;
    let api = Api::new(&bed);
    let a = |from: &'static str| {
        let bed = &bed;
        async move { addresses(&ask(bed, from, "www.example.test.", RecordType::A).await) }
    };
    let free = a("127.0.0.104").await;
    assert!(!free.is_empty());

    // A malformed network is refused, naming the parameter; nothing changes.
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/api/v1/quarantine",
            INVESTIGATOR,
            Some(json!({"ip": "127.0.0/29", "reason": "outbreak"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("network (CIDR)"), "{body}");

    let (status, body) = api
        .send(
            reqwest::Method::POST,
            "/api/v1/quarantine",
            INVESTIGATOR,
            Some(json!({"ip": "127.0.0.99/29", "reason": "outbreak in the lab subnet"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let entry: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(entry["ip"], "127.0.0.96/29", "stored as the network");
    for inside in ["127.0.0.96", "127.0.0.100", "127.0.0.103"] {
        assert_ne!(a(inside).await, free, "{inside} is in the network");
    }
    assert_eq!(a("127.0.0.104").await, free, "outside the network");
    assert_eq!(
        api.text("/api/v1/quarantine?format=txt").await,
        "127.0.0.96/29\n"
    );

    let (status, body) = api
        .send(
            reqwest::Method::DELETE,
            "/api/v1/quarantine",
            INVESTIGATOR,
            Some(json!({"ip": "127.0.0.96/29", "reason": "cleaned up"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(a("127.0.0.100").await, free, "released whole, at once");
    bed.shutdown().await;
}
