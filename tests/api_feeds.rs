//! Feed maintainers over real HTTP and DNS: upload a list and see it blocked, read the rejected
//! lines, patch, delete, disable, roll back, restart and find everything still in force.

mod common;

use std::net::IpAddr;

use common::{Proto, SINK_V4, TestBed, addresses, api_token_toml, query_from, request, sha256_hex};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use reqwest::StatusCode;
use serde_json::{Value, json};

const VIEWER: &str = "viewer-token-for-tests";
const FEEDS: &str = "feeds-token-for-tests";
const ADMIN: &str = "admin-token-for-tests";

/// `[api]` with one token per role, a store, and `extra` appended.
fn api_toml(extra: &str) -> String {
    let mut t = String::from("[api]\nlisten = \"127.0.0.1:0\"\nmax_upload_mb = 1\n");
    t.push_str(extra);
    for (name, role, token) in [
        ("vera", "viewer", VIEWER),
        ("fiona", "feeds", FEEDS),
        ("adam", "admin", ADMIN),
    ] {
        t.push_str(&api_token_toml(name, role, token));
    }
    t.push_str("[store]\npath = \"data/pg.db\"\nflush_interval_ms = 50\n");
    t
}

/// Sends only the headers of a PUT with `Content-Length: len` and `Expect: 100-continue`, and
/// returns the status and body of the server's first final answer (panics on `100 Continue`:
/// an oversized upload must be refused from its headers alone).
async fn put_expecting_continue(bed: &TestBed, path: &str, len: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = bed.api_url().trim_start_matches("http://").to_owned();
    let work = async {
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {FEEDS}\r\n\
             Content-Type: text/plain\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        // Bounded: the answer is small; stop at EOF or once headers and body are in.
        for _ in 0..64 {
            let n = s.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let want = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if body.len() >= want {
                    break;
                }
            }
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status line");
        assert_ne!(
            status, 100,
            "the server asked for the oversized body: {text}"
        );
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    };
    tokio::time::timeout(common::CLIENT_TIMEOUT, work)
        .await
        .expect("an answer within the timeout")
}

async fn bed() -> TestBed {
    TestBed::builder().toml(&api_toml("")).start().await
}

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    fn new(bed: &TestBed) -> Self {
        Self {
            base: bed.api_url(),
            client: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, String) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.expect("API answers");
        let status = resp.status();
        (status, resp.text().await.expect("body"))
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Vec<u8>>,
        want: StatusCode,
    ) -> Value {
        let (status, text) = self.send(method, path, Some(token), body).await;
        assert_eq!(status, want, "{path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn put(&self, path: &str, body: &str, want: StatusCode) -> Value {
        self.json(
            reqwest::Method::PUT,
            path,
            FEEDS,
            Some(body.as_bytes().to_vec()),
            want,
        )
        .await
    }

    async fn get(&self, path: &str) -> Value {
        self.json(reqwest::Method::GET, path, VIEWER, None, StatusCode::OK)
            .await
    }

    async fn post(&self, path: &str, want: StatusCode) -> Value {
        self.json(reqwest::Method::POST, path, FEEDS, None, want)
            .await
    }

    async fn patch(&self, path: &str, body: Value, want: StatusCode) -> Value {
        let (status, text) = {
            let resp = self
                .client
                .patch(format!("{}{path}", self.base))
                .bearer_auth(FEEDS)
                .json(&body)
                .send()
                .await
                .expect("API answers");
            let s = resp.status();
            (s, resp.text().await.expect("body"))
        };
        assert_eq!(status, want, "{path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// Whether poolguard answers `name` with the sinkhole address.
async fn blocked(bed: &TestBed, name: &str) -> bool {
    let m = bed
        .ask(Proto::Udp, &format!("{name}."), RecordType::A)
        .await;
    m.metadata.response_code == ResponseCode::NoError && addresses(&m) == [SINK_V4]
}

/// Asks until the answer is `want` (bounded: 100 tries); the writes under test return after
/// the swap, so the first try normally decides.
async fn until_blocked(bed: &TestBed, name: &str, want: bool) {
    for _ in 0..100 {
        if blocked(bed, name).await == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{name}: blocked = {want} never became true");
}

fn feed<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|f| f["name"] == name))
        .unwrap_or_else(|| panic!("feed {name} in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_blocks_reports_rejected_lines_and_rolls_back() {
    let bed = bed().await;
    let api = Http::new(&bed);
    assert!(!blocked(&bed, "x.newpool.example").await);

    let r = api
        .put(
            "/api/v1/feeds/campus?category=cryptojacking&severity=high",
            "# campus list\nnewpool.example\nserver.com:1234\n\ninfo\n=exact.example\n",
            StatusCode::OK,
        )
        .await;
    assert_eq!(r["accepted"], 2, "{r}");
    assert_eq!(r["skipped"], 0);
    let rejected = r["rejected"].as_array().expect("rejected");
    assert_eq!(rejected.len(), 2, "{r}");
    assert_eq!(rejected[0]["line"], 3);
    assert_eq!(rejected[0]["text"], "server.com:1234");
    assert!(
        rejected[0]["reason"]
            .as_str()
            .is_some_and(|s| s.contains("port")),
        "{r}"
    );
    assert_eq!(rejected[1]["line"], 5);
    assert_eq!(rejected[1]["text"], "info");
    let v1 = r["version"]["id"].as_u64().expect("version id");
    assert_eq!(r["version"]["who"], "fiona");
    until_blocked(&bed, "x.newpool.example", true).await;
    until_blocked(&bed, "exact.example", true).await;
    assert!(!blocked(&bed, "sub.exact.example").await, "=exact only");

    // The file is where a restart finds it.
    let on_disk = std::fs::read_to_string(bed.dir.path().join("blocklists/campus.txt"))
        .expect("feed file written");
    assert!(on_disk.contains("newpool.example"));

    // Status: everything a maintainer wants to see.
    let list = api.get("/api/v1/feeds").await;
    let campus = feed(&list, "campus");
    assert_eq!(campus["kind"], "domains");
    assert_eq!(campus["format"], "plain");
    assert_eq!(campus["category"], "cryptojacking");
    assert_eq!(campus["severity"], "high");
    assert_eq!(campus["action"], "sinkhole");
    assert_eq!(campus["enabled"], true);
    assert_eq!(campus["entries"], 2);
    assert_eq!(campus["rejected"], 2);
    assert_eq!(campus["defined_in"], "api");
    assert_eq!(campus["version"]["id"], v1);
    assert_eq!(campus["version"]["who"], "fiona");
    assert!(campus["last_error"].is_null());
    assert_eq!(feed(&list, "mining")["defined_in"], "config");

    // A second version replaces the first whole.
    let r = api
        .put(
            "/api/v1/feeds/campus",
            "otherpool.example\n",
            StatusCode::OK,
        )
        .await;
    let v2_sha = r["version"]["sha256"].as_str().expect("sha").to_string();
    until_blocked(&bed, "otherpool.example", true).await;
    until_blocked(&bed, "x.newpool.example", false).await;

    // Rollback.
    let versions = api.get("/api/v1/feeds/campus/versions").await;
    assert_eq!(versions.as_array().map(Vec::len), Some(2), "{versions}");
    assert_eq!(versions[1]["id"], v1);
    let (status, content) = api
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/feeds/campus/versions/{v1}"),
            Some(VIEWER),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(content.starts_with("# campus list\nnewpool.example\n"));
    let r = api
        .post(
            &format!("/api/v1/feeds/campus/versions/{v1}/restore"),
            StatusCode::OK,
        )
        .await;
    assert_eq!(r["accepted"], 2);
    until_blocked(&bed, "x.newpool.example", true).await;
    until_blocked(&bed, "otherpool.example", false).await;

    // Every write is in the audit log with the hashes before and after.
    let audit = api
        .json(
            reqwest::Method::GET,
            "/api/v1/audit",
            ADMIN,
            None,
            StatusCode::OK,
        )
        .await;
    let items = audit["items"].as_array().expect("items");
    let actions: Vec<&str> = items.iter().filter_map(|i| i["action"].as_str()).collect();
    assert_eq!(actions, ["feed.restore", "feed.upload", "feed.upload"]);
    assert_eq!(items[0]["actor"], "fiona");
    assert_eq!(items[0]["target"], "campus");
    assert_eq!(items[0]["before_hash"], v2_sha.as_str());
    assert_eq!(items[1]["after_hash"], v2_sha.as_str());
    assert!(
        items[2]["before_hash"].is_null(),
        "a new feed has no before"
    );
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_refused_and_the_old_version_stays() {
    let bed = bed().await;
    let api = Http::new(&bed);
    let html = "<!DOCTYPE html>\n<html><body>502 Bad Gateway</body></html>\n";
    let r = api
        .put(
            "/api/v1/feeds/mining",
            html,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("no usable entry")),
        "{r}"
    );
    assert_eq!(r["rejected"].as_array().map(Vec::len), Some(2), "{r}");
    until_blocked(&bed, "pool.minergate.com", true).await;
    let r = api
        .put("/api/v1/feeds/mining", "", StatusCode::UNPROCESSABLE_ENTITY)
        .await;
    assert!(
        r["error"].as_str().is_some_and(|e| e.contains("empty")),
        "{r}"
    );
    // Nothing was written: the shipped file is untouched, no version was kept.
    let versions = api.get("/api/v1/feeds/mining/versions").await;
    assert_eq!(versions, json!([]));
    // A new feed made only of garbage is not created.
    api.put("/api/v1/feeds/junk", html, StatusCode::UNPROCESSABLE_ENTITY)
        .await;
    let (status, _) = api
        .send(
            reqwest::Method::GET,
            "/api/v1/feeds/junk",
            Some(VIEWER),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limit_and_names_are_enforced() {
    let bed = bed().await;
    let api = Http::new(&bed);
    // max_upload_mb = 1 in this bed.
    let big: String = (0..80_000)
        .map(|i| format!("host{i}.big.example\n"))
        .collect();
    assert!(big.len() > 1 << 20);
    // As curl sends a large upload: headers with `Expect: 100-continue`, then wait. The 413
    // comes back before any body byte is sent. (Sending the body at once races the server's
    // close after its early 413, and the client may see a reset instead of the answer.)
    let (status, text) = put_expecting_continue(&bed, "/api/v1/feeds/big", big.len()).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("max_upload_mb"), "{text}");
    // Just under the limit is fine (the global 1 MiB API limit does not apply here).
    let ok: String = (0..45_000)
        .map(|i| format!("host{i}.big.example\n"))
        .collect();
    assert!(ok.len() > 900_000 && ok.len() < 1 << 20);
    let r = api.put("/api/v1/feeds/big", &ok, StatusCode::OK).await;
    assert_eq!(r["accepted"], 45_000);
    until_blocked(&bed, "host44999.big.example", true).await;

    for bad in ["..", ".hidden", "a%2Fb", "x%00"] {
        let (status, body) = api
            .send(
                reqwest::Method::PUT,
                &format!("/api/v1/feeds/{bad}"),
                Some(FEEDS),
                Some(b"pool.example\n".to_vec()),
            )
            .await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{bad}: {status} {body}"
        );
    }
    assert!(!bed.dir.path().join("b.txt").exists());
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_decide_who_may_write() {
    let bed = TestBed::builder()
        .toml(&api_toml("public_publish = false\n"))
        .start()
        .await;
    let api = Http::new(&bed);
    let body = Some(b"rolepool.example\n".to_vec());
    let put = reqwest::Method::PUT;
    let path = "/api/v1/feeds/roles";
    assert_eq!(
        api.send(put.clone(), path, None, body.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.send(put.clone(), path, Some("wrong"), body.clone())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.send(put.clone(), path, Some(VIEWER), body.clone())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.send(put.clone(), path, Some(FEEDS), body.clone())
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        api.send(put.clone(), path, Some(ADMIN), body.clone())
            .await
            .0,
        StatusCode::OK
    );
    for (method, p) in [
        (reqwest::Method::POST, "/api/v1/feeds/roles/disable"),
        (reqwest::Method::DELETE, "/api/v1/feeds/roles"),
        (
            reqwest::Method::POST,
            "/api/v1/feeds/roles/versions/1/restore",
        ),
        (reqwest::Method::PUT, "/api/v1/clients/ledger"),
    ] {
        assert_eq!(
            api.send(method.clone(), p, Some(VIEWER), None).await.0,
            StatusCode::FORBIDDEN,
            "{p}"
        );
    }
    assert_eq!(
        api.send(
            reqwest::Method::PUT,
            "/api/v1/clients/ledger",
            Some(FEEDS),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN,
        "the ledger is admin-only"
    );
    // Reading is for every role; publishing needs a token unless public_publish.
    assert_eq!(
        api.send(reqwest::Method::GET, "/api/v1/feeds", Some(VIEWER), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        api.send(reqwest::Method::GET, "/api/v1/publish/rpz", None, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_delete_disable_and_enable() {
    let bed = bed().await;
    let api = Http::new(&bed);
    api.put(
        "/api/v1/feeds/hosts-list",
        "0.0.0.0 one.example\n0.0.0.0 two.example\n0.0.0.0 three.example\n",
        StatusCode::OK,
    )
    .await;
    until_blocked(&bed, "two.example", true).await;
    let r = api
        .patch(
            "/api/v1/feeds/hosts-list/entries",
            json!({"add": ["four.example"], "remove": ["two.example", "absent.example"]}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(r["not_found"], json!(["absent.example"]), "{r}");
    assert_eq!(r["accepted"], 3);
    until_blocked(&bed, "four.example", true).await;
    until_blocked(&bed, "two.example", false).await;
    let text =
        std::fs::read_to_string(bed.dir.path().join("blocklists/hosts-list.txt")).expect("file");
    assert_eq!(
        text, "0.0.0.0 one.example\n0.0.0.0 three.example\n0.0.0.0 four.example\n",
        "added in the feed's own format"
    );
    // A bad entry changes nothing.
    let r = api
        .patch(
            "/api/v1/feeds/hosts-list/entries",
            json!({"add": ["ok.example", "bad.example:80"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(r["rejected"][0]["line"], 2, "{r}");
    assert_eq!(r["rejected"][0]["text"], "bad.example:80");
    until_blocked(&bed, "ok.example", false).await;

    // Disable / enable a config.toml feed.
    let r = api
        .post("/api/v1/feeds/mining/disable", StatusCode::OK)
        .await;
    assert_eq!(r["enabled"], false);
    until_blocked(&bed, "pool.minergate.com", false).await;
    api.post("/api/v1/feeds/mining/enable", StatusCode::OK)
        .await;
    until_blocked(&bed, "pool.minergate.com", true).await;

    // config.toml feeds cannot be deleted over the API; API feeds can.
    let (status, _) = api
        .send(
            reqwest::Method::DELETE,
            "/api/v1/feeds/mining",
            Some(FEEDS),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = api
        .send(
            reqwest::Method::DELETE,
            "/api/v1/feeds/hosts-list",
            Some(FEEDS),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    until_blocked(&bed, "one.example", false).await;
    let list = api.get("/api/v1/feeds").await;
    assert!(
        list.as_array()
            .is_some_and(|l| l.iter().all(|f| f["name"] != "hosts-list"))
    );
    let (status, _) = api
        .send(
            reqwest::Method::DELETE,
            "/api/v1/feeds/hosts-list",
            Some(FEEDS),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_changes_survive_a_restart() {
    let bed = bed().await;
    let api = Http::new(&bed);
    api.put(
        "/api/v1/feeds/persist?action=refuse&kind=domains",
        "kept.example\n",
        StatusCode::OK,
    )
    .await;
    api.put(
        "/api/v1/feeds/persist",
        "kept.example\nkept2.example\n",
        StatusCode::OK,
    )
    .await;
    api.post("/api/v1/feeds/nx/disable", StatusCode::OK).await;
    let m = bed.ask(Proto::Udp, "kept2.example.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);

    let bed = bed.restart().await;
    let api = Http::new(&bed);
    let m = bed.ask(Proto::Udp, "kept2.example.", RecordType::A).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::Refused,
        "the feed and its action came back from disk"
    );
    let m = bed.ask(Proto::Udp, "nx.test.", RecordType::A).await;
    assert_ne!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "still disabled"
    );
    let list = api.get("/api/v1/feeds").await;
    let persist = feed(&list, "persist");
    assert_eq!(persist["action"], "refuse");
    assert_eq!(persist["entries"], 2);
    assert_eq!(feed(&list, "nx")["enabled"], false);
    let versions = api.get("/api/v1/feeds/persist/versions").await;
    assert_eq!(versions.as_array().map(Vec::len), Some(2));
    bed.shutdown().await;
}

/// SIGHUP re-reads `[[api.tokens]]` (`Running::reload_tokens`): a token removed from
/// config.toml stops working and a new one works, without a restart; a config that no longer
/// loads changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_reloaded_from_the_config_without_a_restart() {
    const NEW: &str = "a-token-made-after-start";
    let bed = bed().await;
    let api = Http::new(&bed);
    let status = |token: &'static str| {
        let api = &api;
        async move {
            api.send(reqwest::Method::GET, "/api/v1/feeds", Some(token), None)
                .await
                .0
        }
    };
    assert_eq!(status(VIEWER).await, StatusCode::OK);
    assert_eq!(status(NEW).await, StatusCode::UNAUTHORIZED);

    let path = bed.dir.path().join("config.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let text = text.replace(&sha256_hex(VIEWER), &sha256_hex(NEW));
    std::fs::write(&path, &text).expect("write config");
    assert_eq!(bed.running().reload_tokens(), Some(3));
    assert_eq!(status(VIEWER).await, StatusCode::UNAUTHORIZED, "revoked");
    assert_eq!(status(NEW).await, StatusCode::OK, "added");

    std::fs::write(&path, format!("{text}\n[[[broken\n")).expect("write config");
    assert_eq!(bed.running().reload_tokens(), None);
    assert_eq!(status(NEW).await, StatusCode::OK, "unchanged");
    assert_eq!(status(VIEWER).await, StatusCode::UNAUTHORIZED, "unchanged");
    bed.shutdown().await;
}

/// `DELETE /api/v1/tokens/{name}` (admin) refuses a leaked token at once, without editing
/// config.toml; the revocation survives a reload of `[[api.tokens]]` and a restart, and a
/// name no token has is a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stays_refused_after_a_reload_and_a_restart() {
    let bed = bed().await;
    let api = Http::new(&bed);
    let get = |token: &'static str| {
        let api = &api;
        async move {
            api.send(reqwest::Method::GET, "/api/v1/feeds", Some(token), None)
                .await
                .0
        }
    };
    assert_eq!(get(VIEWER).await, StatusCode::OK);
    let (status, _) = api
        .send(
            reqwest::Method::DELETE,
            "/api/v1/tokens/vera",
            Some(FEEDS),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "admin only");
    let (status, body) = api
        .send(
            reqwest::Method::DELETE,
            "/api/v1/tokens/nobody",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = api
        .send(
            reqwest::Method::DELETE,
            "/api/v1/tokens/vera",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        get(VIEWER).await,
        StatusCode::UNAUTHORIZED,
        "revoked at once"
    );
    assert_eq!(bed.running().reload_tokens(), Some(2));
    assert_eq!(
        get(VIEWER).await,
        StatusCode::UNAUTHORIZED,
        "after a reload"
    );
    let bed = bed.restart().await;
    let api = Http::new(&bed);
    let (status, _) = api
        .send(reqwest::Method::GET, "/api/v1/feeds", Some(VIEWER), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "after a restart");
    let (status, audit) = api
        .send(reqwest::Method::GET, "/api/v1/audit", Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(audit.contains("token.revoke"), "{audit}");
    bed.shutdown().await;
}

/// `[api] feeds_dir` takes every list file poolguard writes (content, definitions, versions),
/// so the config's own folder can stay read-only; a restart reads them back from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_writes_go_to_feeds_dir_and_come_back_from_it() {
    let bed = TestBed::builder()
        .toml(&api_toml("feeds_dir = \"state/feeds\"\n"))
        .start()
        .await;
    let api = Http::new(&bed);
    api.put(
        "/api/v1/feeds/campus",
        "pool.campus.example\n",
        StatusCode::OK,
    )
    .await;
    until_blocked(&bed, "pool.campus.example", true).await;
    let dir = bed.dir.path().to_path_buf();
    let on_disk =
        std::fs::read_to_string(dir.join("state/feeds/campus.txt")).expect("feed file written");
    assert!(on_disk.contains("pool.campus.example"), "{on_disk}");
    let defs = std::fs::read_to_string(dir.join("state/feeds/.poolguard/feeds.toml"))
        .expect("definitions written");
    assert!(defs.contains("state/feeds/campus.txt"), "{defs}");
    assert!(dir.join("state/feeds/.poolguard/versions/campus").is_dir());
    assert!(!dir.join("blocklists/campus.txt").exists());
    assert!(!dir.join("blocklists/.poolguard").exists());

    let bed = bed.restart().await;
    until_blocked(&bed, "pool.campus.example", true).await;
    let versions = Http::new(&bed).get("/api/v1/feeds/campus/versions").await;
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "{versions}");
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_explains_a_decision_and_the_client() {
    let ledger = "network,mac,asset,kind,location,department,owner,contact\n\
                  127.0.0.7,aa:bb:cc:dd:ee:ff,gpu-ws-07,workstation,A-301,Physics,Ana,ana@example.edu\n";
    let bed = TestBed::builder()
        .file("clients.csv", ledger)
        .toml(&api_toml(""))
        .toml("[clients]\nledger = \"clients.csv\"\n")
        .start()
        .await;
    let api = Http::new(&bed);
    let r = api
        .get("/api/v1/check?name=X.Pool.Minergate.com&client=127.0.0.7")
        .await;
    assert_eq!(r["name"], "x.pool.minergate.com");
    assert_eq!(r["decision"], "blocked");
    assert_eq!(r["feed"], "mining");
    assert_eq!(r["rule"], "pool.minergate.com");
    assert_eq!(r["action"], "sinkhole");
    assert_eq!(r["client"]["asset"], "gpu-ws-07");
    assert_eq!(r["quarantined"], false);
    let r = api.get("/api/v1/check?name=ok.pool.minergate.com").await;
    assert_eq!(r["decision"], "allowed");
    assert_eq!(r["feed"], "allow");
    assert_eq!(r["overrides"], "mining: pool.minergate.com");
    assert!(r["client"].is_null());
    let r = api.get("/api/v1/check?name=www.example.test").await;
    assert_eq!(r["decision"], "pass");
    let (status, _) = api
        .send(
            reqwest::Method::GET,
            "/api/v1/check?name=bad..name",
            Some(VIEWER),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_upload_swaps_identity_and_keeps_old_hits() {
    let old = "network,mac,asset,kind,location,department,owner,contact\n\
               127.0.0.7,,old-name,pc,A,Physics,Ana,ana@example.edu\n";
    let bed = TestBed::builder()
        .file("clients.csv", old)
        .toml(&api_toml(""))
        .toml("[clients]\nledger = \"clients.csv\"\n")
        .start()
        .await;
    let api = Http::new(&bed);
    let client: IpAddr = "127.0.0.7".parse().expect("ip");
    query_from(
        client,
        bed.dns,
        Proto::Udp,
        &request("x.sink.test.", RecordType::A, false),
    )
    .await;
    // The event is recorded just after the answer is sent: wait (bounded) until the hit is
    // stored, with the identity of that moment.
    let mut stored = false;
    for _ in 0..100 {
        bed.running().flush().await.expect("flush");
        let hits = api.get("/api/v1/hits?client=127.0.0.7").await;
        if hits["items"].as_array().is_some_and(|i| !i.is_empty()) {
            assert_eq!(hits["items"][0]["identity"]["asset"], "old-name");
            stored = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(stored, "the hit was never stored");

    let new = "network,mac,asset,kind,location,department,owner,contact\n\
               127.0.0.7,,new-name,pc,B,Chemistry,Bo,bo@example.edu\n\
               not-an-ip,,x,,,,,\n";
    // With a bad row it loads only when asked to (`partial`); see tests/api_ledger.rs.
    let r = api
        .json(
            reqwest::Method::PUT,
            "/api/v1/clients/ledger?partial=true",
            ADMIN,
            Some(new.as_bytes().to_vec()),
            StatusCode::OK,
        )
        .await;
    assert_eq!(r["loaded"], 1, "{r}");
    assert_eq!(r["rejected"][0]["line"], 3, "{r}");
    assert_eq!(r["version"]["who"], "adam");
    assert_eq!(
        std::fs::read_to_string(bed.dir.path().join("clients.csv")).expect("ledger"),
        new
    );
    let c = api.get("/api/v1/clients/127.0.0.7").await;
    assert_eq!(c["identity"]["asset"], "new-name");
    assert_eq!(
        c["recent_hits"][0]["identity"]["asset"], "old-name",
        "a hit keeps who the client was then"
    );
    // A ledger without one good row is refused; the old one stays.
    let r = api
        .json(
            reqwest::Method::PUT,
            "/api/v1/clients/ledger",
            ADMIN,
            Some(
                b"network,mac,asset,kind,location,department,owner,contact\nnope,,,,,,,\n".to_vec(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(r["rejected"][0]["line"], 2, "{r}");
    api.json(
        reqwest::Method::PUT,
        "/api/v1/clients/ledger",
        ADMIN,
        Some(b"ip,name\n1.2.3.4,x\n".to_vec()),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let c = api.get("/api/v1/clients/127.0.0.7").await;
    assert_eq!(c["identity"]["asset"], "new-name");
    let versions = api
        .json(
            reqwest::Method::GET,
            "/api/v1/clients/ledger/versions",
            ADMIN,
            None,
            StatusCode::OK,
        )
        .await;
    let v: Vec<&str> = versions
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|v| v["action"].as_str())
        .collect();
    assert_eq!(v, ["partial", "existing"]);
    let audit = api
        .json(
            reqwest::Method::GET,
            "/api/v1/audit",
            ADMIN,
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(audit["items"][0]["action"], "ledger.replace");
    assert!(audit["items"][0]["before_hash"].is_string());
    bed.shutdown().await;
}
