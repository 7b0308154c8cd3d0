//! Alerts to people end to end: real DNS queries open incidents in a running poolguard, whose
//! `incident.opened` reaches a DingTalk and a WeCom group robot served on loopback. The
//! receivers check what the robots' documentation requires — DingTalk's signed URL
//! (`timestamp` in ms, `sign` = URL-encoded base64 HMAC-SHA256 of "{timestamp}\n{secret}",
//! recomputed here), the Markdown message schema of each, and the size limits (WeCom 4096
//! bytes of content) — and answer as the services do (`errcode`). A failing DingTalk is
//! retried, and the delivery log shows the failure, then the delivery.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query};
use base64::Engine as _;
use common::{TestBed, sha256_hex};
use hmac::{Hmac, Mac};
use poolguard::incidents::ManualClock;
use serde_json::{Value, json};

const VIEWER: &str = "viewer-token-for-robot-tests";
const SECRET: &str = "SEC0123456789abcdef";
const ROBOT_TOKEN: &str = "robot-token-123";
const WECOM_KEY: &str = "wecom-key-456";

/// One robot call: which robot, its query parameters, its JSON body, and what the receiver
/// found wrong with it (empty = as documented).
#[derive(Debug)]
struct Call {
    robot: String,
    query: HashMap<String, String>,
    body: Value,
    problems: Vec<String>,
}

/// DingTalk's requirements: the access token, a fresh ms timestamp (within an hour), the
/// signature recomputed from that timestamp, and `{"msgtype":"markdown","markdown":{"title",
/// "text"}}` with text within 20,000 bytes.
fn check_dingtalk(q: &HashMap<String, String>, body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if q.get("access_token").map(String::as_str) != Some(ROBOT_TOKEN) {
        problems.push("access_token missing".to_string());
    }
    let ts: i64 = q
        .get("timestamp")
        .and_then(|t| t.parse().ok())
        .unwrap_or_default();
    if (chrono::Utc::now().timestamp_millis() - ts).abs() > 3_600_000 {
        problems.push(format!("timestamp {ts} not within an hour"));
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("{ts}\n{SECRET}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    // The query is already URL-decoded: a '+' not encoded as %2B would arrive as a space.
    if q.get("sign") != Some(&expected) {
        problems.push(format!("sign {:?} != {expected}", q.get("sign")));
    }
    if body["msgtype"] != "markdown" {
        problems.push("msgtype".into());
    }
    let title = body["markdown"]["title"].as_str().unwrap_or("");
    let text = body["markdown"]["text"].as_str().unwrap_or("");
    if title.is_empty() || text.is_empty() || text.len() > 20_000 {
        problems.push(format!("title/text ({} bytes)", text.len()));
    }
    problems
}

/// WeCom's: the key, and `{"msgtype":"markdown","markdown":{"content"}}` with content at most
/// 4096 bytes of UTF-8.
fn check_wecom(q: &HashMap<String, String>, body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if q.get("key").map(String::as_str) != Some(WECOM_KEY) {
        problems.push("key missing".to_string());
    }
    if body["msgtype"] != "markdown" {
        problems.push("msgtype".into());
    }
    let content = body["markdown"]["content"].as_str().unwrap_or("");
    if content.is_empty() || content.len() > 4096 {
        problems.push(format!("content of {} bytes", content.len()));
    }
    problems
}

/// Both robots on one loopback server. DingTalk answers its first call with HTTP 500.
async fn robots() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Call>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let dingtalk_calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/{robot}",
        axum::routing::post(
            move |Path(robot): Path<String>,
                  Query(query): Query<HashMap<String, String>>,
                  body: axum::body::Bytes| {
                let tx = tx.clone();
                let dingtalk_calls = dingtalk_calls.clone();
                async move {
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let problems = match robot.as_str() {
                        "dingtalk" => check_dingtalk(&query, &body),
                        _ => check_wecom(&query, &body),
                    };
                    let fail_first =
                        robot == "dingtalk" && dingtalk_calls.fetch_add(1, Ordering::SeqCst) == 0;
                    let answer = if problems.is_empty() {
                        json!({"errcode": 0, "errmsg": "ok"})
                    } else {
                        json!({"errcode": 310000, "errmsg": problems.join("; ")})
                    };
                    let _ = tx.send(Call {
                        robot,
                        query,
                        body,
                        problems,
                    });
                    if fail_first {
                        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, Json(answer))
                    } else {
                        (axum::http::StatusCode::OK, Json(answer))
                    }
                }
            },
        ),
    );
    (common::serve_local(app).await, rx)
}

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Call>) -> Call {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a robot call within 10 s")
        .expect("receiver alive")
}

async fn deliveries(bed: &TestBed, http: &reqwest::Client) -> Vec<Value> {
    let v: Value = http
        .get(format!("{}/api/v1/alerts/deliveries", bed.api_url()))
        .bearer_auth(VIEWER)
        .send()
        .await
        .expect("API answers")
        .json()
        .await
        .expect("JSON");
    v["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robots_get_signed_markdown_within_limits_with_retries() {
    let (addr, mut calls) = robots().await;
    // A location long enough that the WeCom message must be cut (3 bytes per character).
    let long_place = "理科楼".repeat(600);
    let ledger = format!(
        "network,mac,asset,kind,location,department,owner,contact\n\
         127.0.0.7,aa:bb:cc:dd:ee:07,gpu-ws-07,GPU workstation,{long_place},计算机学院,张伟,zhangwei@example.edu\n"
    );
    let toml = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\
         [[api.tokens]]\nname = \"viewer\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
         [store]\npath = \"data/pg.db\"\nflush_interval_ms = 20\n[clients]\nledger = \"clients.csv\"\n\
         [reports]\nlanguage = \"zh-CN\"\ntimezone = \"Asia/Shanghai\"\n\
         [alerts]\nconsole_url = \"https://pg.campus.edu/\"\nretry_backoff = \"10ms\"\nmax_attempts = 3\ncheck_every = \"1h\"\n\
         [[alerts.dingtalk]]\nwebhook_url = \"http://{addr}/dingtalk?access_token={ROBOT_TOKEN}\"\n\
         name = \"duty\"\nsecret_file = \"dingtalk.secret\"\nevents = [\"incident.opened\"]\n\
         [[alerts.wecom]]\nwebhook_url = \"http://{addr}/wecom?key={WECOM_KEY}\"\nevents = [\"incident.opened\"]\n",
        sha256_hex(VIEWER)
    );
    let clock = Arc::new(ManualClock::at(chrono::Utc::now().timestamp_millis()));
    let bed = TestBed::builder()
        .file("clients.csv", &ledger)
        .file("dingtalk.secret", &format!("{SECRET}\n"))
        .toml(&toml)
        .clock(clock)
        .start()
        .await;
    bed.hits_from(&["127.0.0.7"]).await;

    // Three calls: DingTalk (500), DingTalk again (retried), WeCom; in any order.
    let mut got = vec![
        next(&mut calls).await,
        next(&mut calls).await,
        next(&mut calls).await,
    ];
    got.sort_by(|a, b| a.robot.cmp(&b.robot));
    for call in &got {
        assert!(
            call.problems.is_empty(),
            "{}: {:?}",
            call.robot,
            call.problems
        );
    }
    let (ding, wecom) = (&got[0], &got[2]);
    assert_eq!(got[1].robot, "dingtalk");
    assert_eq!(wecom.robot, "wecom");
    // Each DingTalk attempt is signed on its own.
    assert!(ding.query.contains_key("sign") && got[1].query.contains_key("sign"));

    // The message says what a person needs, in Chinese, times in Beijing time.
    let title = ding.body["markdown"]["title"].as_str().expect("title");
    assert!(
        title.starts_with("挖矿事件 #") && title.ends_with("127.0.0.7"),
        "{title}"
    );
    let text = ding.body["markdown"]["text"].as_str().expect("text");
    for needed in [
        "计算机学院",
        "张伟",
        "gpu-ws-07",
        "aa:bb:cc:dd:ee:07",
        "sink.test",
        "定位期限",
        "报告期限",
        "CST (Asia/Shanghai)",
        "https://pg.campus.edu/api/v1/incidents/",
    ] {
        assert!(text.contains(needed), "`{needed}` missing from {text}");
    }
    assert!(
        text.contains(&long_place),
        "DingTalk's limit is larger: not cut"
    );
    let content = wecom.body["markdown"]["content"].as_str().expect("content");
    assert!(
        content.len() <= 4096 && content.len() > 3500,
        "{}",
        content.len()
    );
    assert!(
        content.ends_with("（内容过长，已截断）"),
        "cut with a marker"
    );
    assert!(content.contains("张伟"));

    // The delivery log: DingTalk failed then delivered, WeCom delivered; robots are named,
    // their token-bearing URLs are not shown.
    let http = reqwest::Client::new();
    let mut items = Vec::new();
    for _ in 0..200 {
        items = deliveries(&bed, &http).await;
        if items.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = json!(items);
    assert_eq!(items.len(), 3, "{log}");
    let of = |target: &str| -> Vec<&Value> {
        let mut v: Vec<&Value> = items.iter().filter(|d| d["target"] == target).collect();
        v.sort_by_key(|d| d["attempt"].as_u64());
        v
    };
    let ding_log = of("dingtalk:duty");
    assert_eq!(ding_log.len(), 2, "{log}");
    assert_eq!(
        (ding_log[0]["ok"].clone(), ding_log[0]["status"].clone()),
        (json!(false), json!(500))
    );
    assert_eq!(
        (ding_log[1]["attempt"].clone(), ding_log[1]["ok"].clone()),
        (json!(2), json!(true))
    );
    let wecom_log = of("wecom:wecom[0]");
    assert_eq!(wecom_log.len(), 1, "{log}");
    assert_eq!(wecom_log[0]["ok"], true);
    assert!(!log.to_string().contains(ROBOT_TOKEN) && !log.to_string().contains(WECOM_KEY));
    bed.shutdown().await;
}

/// `poolguard_alerts_held` from /metrics.
async fn held(bed: &TestBed) -> f64 {
    let text = bed.metrics_text().await;
    text.lines()
        .find_map(|l| l.strip_prefix("poolguard_alerts_held "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_mode_sends_one_summary_per_window() {
    let (addr, mut calls) = robots().await;
    let ledger = "network,mac,asset,kind,location,department,owner,contact\n\
         127.0.0.7,,pc-07,,,计算机学院,张伟,\n127.0.0.8,,pc-08,,,Physics,Li Na,\n127.0.0.9,,pc-09,,,化学系,王芳,\n";
    let toml = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\
         [[api.tokens]]\nname = \"viewer\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
         [store]\npath = \"data/pg.db\"\nflush_interval_ms = 20\n[clients]\nledger = \"clients.csv\"\n\
         [reports]\nlanguage = \"zh-CN\"\n\
         [alerts]\nretry_backoff = \"10ms\"\ncheck_every = \"1h\"\n\
         [[alerts.wecom]]\nwebhook_url = \"http://{addr}/wecom?key={WECOM_KEY}\"\nname = \"duty\"\n\
         digest_minutes = 10\nevents = [\"incident.opened\"]\n",
        sha256_hex(VIEWER)
    );
    let clock = Arc::new(ManualClock::at(chrono::Utc::now().timestamp_millis()));
    let bed = TestBed::builder()
        .file("clients.csv", ledger)
        .toml(&toml)
        .clock(clock.clone())
        .start()
        .await;
    bed.hits_from(&["127.0.0.7", "127.0.0.8", "127.0.0.9"])
        .await;

    // The first incident goes out at once; the other two are held for the window.
    let first = next(&mut calls).await;
    assert!(first.problems.is_empty(), "{:?}", first.problems);
    let first_text = first.body["markdown"]["content"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(first_text.contains("挖矿事件 #"), "{first_text}");
    let mut n = 0.0;
    for _ in 0..500 {
        n = held(&bed).await;
        if n == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(n, 2.0, "two alerts held for the digest");
    assert!(
        calls.try_recv().is_err(),
        "nothing else sent within the window"
    );

    // The window ends: one summary of the two.
    clock.advance(10 * 60_000);
    let digest = next(&mut calls).await;
    assert!(digest.problems.is_empty(), "{:?}", digest.problems);
    let text = digest.body["markdown"]["content"]
        .as_str()
        .expect("content");
    assert!(text.contains("poolguard 告警汇总：2 条"), "{text}");
    let clients = ["127.0.0.7", "127.0.0.8", "127.0.0.9"];
    let in_first = clients.iter().filter(|c| first_text.contains(*c)).count();
    let in_digest = clients.iter().filter(|c| text.contains(*c)).count();
    assert_eq!((in_first, in_digest), (1, 2), "{first_text}\n{text}");

    let http = reqwest::Client::new();
    let mut items = Vec::new();
    for _ in 0..200 {
        items = deliveries(&bed, &http).await;
        if items.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let events: Vec<&str> = items.iter().filter_map(|d| d["event"].as_str()).collect();
    assert_eq!(events, ["digest", "incident.opened"], "{}", json!(items));
    bed.shutdown().await;
}
