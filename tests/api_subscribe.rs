//! Subscriptions against a real HTTP server on 127.0.0.1: conditional requests, and every way
//! a fetch can fail (500, timeout, oversize, empty, garbage) keeping the last good copy, which
//! a restart without the server still serves.

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::{Proto, SINK_V4, TestBed, addresses, sha256_hex};
use hickory_proto::rr::RecordType;
use serde_json::Value;

const FEEDS: &str = "feeds-token-for-tests";
const ADMIN: &str = "admin-token-for-tests";

#[derive(Clone)]
enum Mode {
    Ok { body: String, etag: String },
    Status500,
    Hang,
    Oversize,
    Empty,
    Garbage,
}

#[derive(Clone)]
struct Server {
    mode: Arc<Mutex<Mode>>,
    /// The If-None-Match header of every request, in order.
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl Server {
    fn set(&self, m: Mode) {
        *self.mode.lock().expect("lock") = m;
    }
    fn requests(&self) -> Vec<Option<String>> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn serve_list(State(s): State<Server>, headers: HeaderMap) -> Response {
    let inm = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    s.seen.lock().expect("lock").push(inm.clone());
    let mode = s.mode.lock().expect("lock").clone();
    match mode {
        Mode::Ok { body, etag } => {
            if inm.as_deref() == Some(etag.as_str()) {
                return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
            }
            ([(header::ETAG, etag)], body).into_response()
        }
        Mode::Status500 => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        Mode::Hang => std::future::pending().await,
        Mode::Oversize => "x.example\n".repeat(300_000).into_response(),
        Mode::Empty => "".into_response(),
        Mode::Garbage => "<html><body>Login required</body></html>\n".into_response(),
    }
}

/// Starts the list server on 127.0.0.1:0; it stops when the returned handle is aborted.
async fn start_server(mode: Mode) -> (Server, std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let s = Server {
        mode: Arc::new(Mutex::new(mode)),
        seen: Arc::new(Mutex::new(Vec::new())),
    };
    let app = axum::Router::new()
        .route("/list.txt", axum::routing::get(serve_list))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (s, addr, task)
}

async fn blocked(bed: &TestBed, name: &str) -> bool {
    let m = bed
        .ask(Proto::Udp, &format!("{name}."), RecordType::A)
        .await;
    addresses(&m) == [SINK_V4]
}

async fn sub_status(bed: &TestBed) -> Value {
    let list: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/feeds/sub", bed.api_url()))
        .bearer_auth(FEEDS)
        .send()
        .await
        .expect("API")
        .json()
        .await
        .expect("json");
    list
}

async fn refresh(bed: &TestBed) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/feeds/sub/refresh", bed.api_url()))
        .bearer_auth(FEEDS)
        .send()
        .await
        .expect("API");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_fetches_conditionally_and_keeps_the_last_good_copy() {
    let (server, addr, task) = start_server(Mode::Ok {
        body: "# v1\nsubpool-one.example\n".into(),
        etag: "\"v1\"".into(),
    })
    .await;
    let bed = TestBed::builder()
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname = \"fiona\"\nrole = \"feeds\"\nsha256 = \"{}\"\n\
             [[api.tokens]]\nname = \"adam\"\nrole = \"admin\"\nsha256 = \"{}\"\n\
             [store]\npath = \"data/pg.db\"\n\
             [[feeds]]\nname = \"sub\"\nurl = \"http://{addr}/list.txt\"\nrefresh = \"1h\"\ntimeout = \"1s\"\nmax_size_mb = 1\naction = \"sinkhole\"\n",
            sha256_hex(FEEDS),
            sha256_hex(ADMIN)
        ))
        .start()
        .await;

    // The first fetch starts with poolguard (no copy yet); bounded wait for it.
    let mut status = Value::Null;
    for _ in 0..250 {
        status = sub_status(&bed).await;
        if status["fetch"]["result"] == "updated" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status["fetch"]["result"], "updated", "{status}");
    assert_eq!(status["url"], format!("http://{addr}/list.txt"));
    assert_eq!(status["entries"], 1);
    assert_eq!(status["version"]["who"], "subscription");
    assert!(blocked(&bed, "subpool-one.example").await);
    assert!(
        bed.dir.path().join("blocklists/sub.txt").is_file(),
        "cached where a restart finds it"
    );

    // Unchanged: the server sees our ETag and answers 304.
    let r = refresh(&bed).await;
    assert_eq!(r["result"], "not_modified", "{r}");
    assert_eq!(
        server.requests().last().cloned().flatten().as_deref(),
        Some("\"v1\"")
    );

    // Every failure keeps v1 in force and says why.
    for (mode, why) in [
        (Mode::Status500, "500"),
        (Mode::Hang, "within"),
        (Mode::Oversize, "limit"),
        (Mode::Empty, "empty"),
        (Mode::Garbage, "no usable entry"),
    ] {
        server.set(mode);
        let r = refresh(&bed).await;
        assert_eq!(r["result"], "failed", "{why}: {r}");
        assert!(
            r["error"].as_str().is_some_and(|e| e.contains(why)),
            "{why}: {r}"
        );
        let s = sub_status(&bed).await;
        assert!(
            s["fetch"]["error"]
                .as_str()
                .is_some_and(|e| e.contains(why)),
            "{s}"
        );
        assert_eq!(s["entries"], 1);
        assert!(blocked(&bed, "subpool-one.example").await, "{why}");
    }
    let metrics = bed.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("poolguard_feed_fetches_total")
                && l.contains("feed=\"sub\"")
                && l.contains("result=\"failed\"")),
        "{metrics}"
    );

    // A new version replaces the old one.
    server.set(Mode::Ok {
        body: "subpool-two.example\n".into(),
        etag: "\"v2\"".into(),
    });
    let r = refresh(&bed).await;
    assert_eq!(r["result"], "updated", "{r}");
    assert!(blocked(&bed, "subpool-two.example").await);
    assert!(!blocked(&bed, "subpool-one.example").await);

    // Both the scheduled first fetch and the manual update are in the audit log.
    // (The scheduled fetch is audited by its task just after it finishes: bounded wait.)
    let mut audit = Value::Null;
    for _ in 0..100 {
        audit = reqwest::Client::new()
            .get(format!("{}/api/v1/audit", bed.api_url()))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("API")
            .json()
            .await
            .expect("json");
        if audit["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|e| e["action"] == "feed.fetch"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let items = audit["items"].as_array().expect("items");
    let scheduled = items
        .iter()
        .find(|i| i["action"] == "feed.fetch")
        .expect("scheduled fetch audited");
    assert_eq!(scheduled["actor"], "system");
    assert!(scheduled["before_hash"].is_null());
    let manual = &items[0];
    assert_eq!(manual["action"], "feed.refresh");
    assert_eq!(manual["actor"], "fiona");
    assert_eq!(manual["detail"], "updated");
    assert_eq!(manual["before_hash"], scheduled["after_hash"]);
    assert!(manual["after_hash"].is_string());

    // A subscription is not uploaded to.
    let resp = reqwest::Client::new()
        .put(format!("{}/api/v1/feeds/sub", bed.api_url()))
        .bearer_auth(FEEDS)
        .body("x.example\n")
        .send()
        .await
        .expect("API");
    assert_eq!(resp.status(), 409);

    // No network after a restart: the cached copy is served.
    task.abort();
    let _ = task.await;
    let bed = bed.restart().await;
    assert!(blocked(&bed, "subpool-two.example").await);
    let s = sub_status(&bed).await;
    assert_eq!(s["entries"], 1);
    assert_eq!(
        s["fetch"]["etag"], "\"v2\"",
        "validators survive the restart"
    );
    bed.shutdown().await;
}
