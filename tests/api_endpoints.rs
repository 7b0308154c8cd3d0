//! Stats, client summaries, ledger reload, health, metrics and the OpenAPI document.

mod api_support;

use api_support::{Api, Harness, T0, event};
use poolguard::config::Role;
use poolguard::record::Outcome;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_by_action_and_rank_top_tables() {
    let h = Harness::new(|_| {});
    for i in 0..10 {
        h.sink.submit(event(
            T0 + i,
            "10.20.3.7:1",
            "pool.minexmr.com",
            "A",
            Outcome::Blocked,
            Some("mining"),
        ));
    }
    for i in 0..4 {
        h.sink.submit(event(
            T0 + 100 + i,
            "10.20.9.9:1",
            "xmr.example",
            "A",
            Outcome::CnameBlocked,
            Some("coinblocker"),
        ));
    }
    for i in 0..7 {
        h.sink.submit(event(
            T0 + 200 + i,
            "192.168.1.1:1",
            "example.org",
            "A",
            Outcome::Allowed,
            None,
        ));
    }
    // Outside the window.
    h.sink.submit(event(
        T0 - 10,
        "10.20.3.7:1",
        "old.example",
        "A",
        Outcome::Blocked,
        Some("mining"),
    ));
    h.flush().await;
    let api = Api::start(&h, None).await;
    let s = api
        .get_json("/api/v1/stats?since=2026-11-01T00:00:00Z&until=2026-11-02T00:00:00Z&top=5")
        .await;
    let pairs = |k: &str| -> Vec<(String, i64)> {
        s[k].as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["value"].as_str().unwrap_or_default().to_string(),
                    c["count"].as_i64().unwrap_or_default(),
                )
            })
            .collect()
    };
    assert_eq!(
        pairs("queries_by_action"),
        vec![
            ("blocked".into(), 10),
            ("allowed".into(), 7),
            ("cname-blocked".into(), 4)
        ]
    );
    assert_eq!(
        pairs("hits_by_action"),
        vec![("blocked".into(), 10), ("cname-blocked".into(), 4)]
    );
    assert_eq!(
        pairs("top_blocked_names"),
        vec![("pool.minexmr.com".into(), 10), ("xmr.example".into(), 4)]
    );
    assert_eq!(
        pairs("top_clients"),
        vec![("10.20.3.7".into(), 10), ("10.20.9.9".into(), 4)]
    );
    assert_eq!(
        pairs("top_departments"),
        vec![("Physics".into(), 10), ("Library".into(), 4)]
    );
    assert_eq!(
        pairs("top_feeds"),
        vec![("mining".into(), 10), ("coinblocker".into(), 4)]
    );
    // Without `since`, the window starts at the top of the hour a day before `until`, and
    // says so.
    let d = api
        .get_json("/api/v1/stats?until=2026-11-02T10:20:30Z")
        .await;
    assert_eq!(d["since"], "2026-11-01T10:00:00.000Z");
    assert_eq!(d["until"], "2026-11-02T10:20:30.000Z");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_summary_and_ledger_reload_keep_old_snapshots() {
    let h = Harness::new(|_| {});
    let ledger_file = h.dir.path().join("ledger.csv");
    std::fs::write(&ledger_file, api_support::LEDGER).expect("write ledger");
    h.sink.submit(event(
        T0,
        "10.20.3.7:1",
        "example.org",
        "A",
        Outcome::Allowed,
        None,
    ));
    h.sink.submit(event(
        T0 + 5,
        "10.20.3.7:1",
        "pool.minexmr.com",
        "A",
        Outcome::Blocked,
        Some("mining"),
    ));
    h.sink.submit(event(
        T0 + 9,
        "10.20.3.7:1",
        "pool.minexmr.com",
        "AAAA",
        Outcome::Blocked,
        Some("mining"),
    ));
    h.flush().await;
    let api = Api::start(&h, Some(ledger_file.clone())).await;
    let c = api.get_json("/api/v1/clients/10.20.3.7").await;
    assert_eq!(c["identity"]["asset"], "rig-7");
    assert_eq!(c["first_seen"], "2026-11-01T00:00:00.000Z");
    assert_eq!(c["last_seen"], "2026-11-01T00:00:00.009Z");
    assert_eq!(c["hit_count"], 2);
    assert_eq!(c["recent_hits"].as_array().map(Vec::len), Some(2));
    assert_eq!(c["recent_hits"][0]["type"], "AAAA");

    // The rig changes hands; the admin reloads the ledger (with one bad row).
    std::fs::write(
        &ledger_file,
        "network,mac,asset,kind,location,department,owner,contact\n10.20.3.7,,rig-7,workstation,Room 4,Chemistry,李娜,li@example.edu\nbogus,,,,,,,\n",
    )
    .expect("rewrite ledger");
    let r = api
        .http
        .post(format!("{}/api/v1/ledger/reload", api.base))
        .bearer_auth(api.token(Role::Admin))
        .send()
        .await
        .expect("reload");
    assert_eq!(r.status(), 200);
    let report: serde_json::Value = r.json().await.expect("report");
    assert_eq!(report["loaded"], 1);
    assert_eq!(report["rejected"][0]["line"], 3);
    // The write is audited under the token's name, and only admins may read the audit log.
    let audit: serde_json::Value = api
        .http
        .get(format!("{}/api/v1/audit", api.base))
        .bearer_auth(api.token(Role::Admin))
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("audit json");
    assert_eq!(audit["items"][0]["action"], "ledger.reload");
    assert_eq!(audit["items"][0]["target"], "ledger");
    assert_eq!(audit["items"][0]["detail"], "1 networks, 1 rows rejected");
    let denied = api
        .http
        .get(format!("{}/api/v1/audit", api.base))
        .bearer_auth(api.token(Role::Viewer))
        .send()
        .await
        .expect("audit as viewer");
    assert_eq!(denied.status(), 403);
    h.sink.submit(event(
        T0 + 20,
        "10.20.3.7:1",
        "pool.minexmr.com",
        "A",
        Outcome::Blocked,
        Some("mining"),
    ));
    h.flush().await;
    let c = api.get_json("/api/v1/clients/10.20.3.7").await;
    assert_eq!(c["identity"]["owner"], "李娜");
    let hits = c["recent_hits"].as_array().cloned().unwrap_or_default();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["identity"]["owner"], "李娜");
    assert_eq!(hits[0]["identity"]["department"], "Chemistry");
    assert_eq!(
        hits[1]["identity"]["owner"], "张伟",
        "old hits keep the identity they had"
    );
    assert_eq!(hits[2]["identity"]["department"], "Physics");

    let unknown = api.get_json("/api/v1/clients/2001:db8::1").await;
    assert!(unknown["identity"].is_null());
    assert_eq!(unknown["hit_count"], 0);
    assert!(unknown["first_seen"].is_null());
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_metrics_and_openapi() {
    // As app.rs does: install the recorder before anything emits.
    poolguard::api::metrics::install();
    let h = Harness::new(|_| {});
    h.sink.submit(event(
        T0,
        "10.20.3.7:1",
        "pool.minexmr.com",
        "A",
        Outcome::Blocked,
        Some("mining"),
    ));
    h.flush().await;
    let api = Api::start(&h, None).await;
    let r = api
        .http
        .get(format!("{}/healthz", api.base))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["status"], "ok");
    assert_eq!(v["store_writer"]["hits_written"], 1);
    assert_eq!(v["store_writer"]["running"], true);

    metrics::counter!("poolguard_queries_total", "action" => "blocked", "protocol" => "udp")
        .increment(1);
    let text = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(text.contains("poolguard_log_rows_written_total"), "{text}");
    assert!(
        text.contains("poolguard_queries_total{action=\"blocked\",protocol=\"udp\"}"),
        "{text}"
    );

    let doc = api.get_json("/api/v1/openapi.json").await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for p in [
        "/api/v1/queries",
        "/api/v1/hits",
        "/api/v1/stats",
        "/api/v1/clients/{ip}",
        "/healthz",
    ] {
        assert!(doc["paths"][p].is_object(), "missing {p}");
    }
    let params: Vec<&str> = doc["paths"]["/api/v1/hits"]["get"]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for p in [
        "client",
        "name",
        "type",
        "action",
        "feed",
        "department",
        "since",
        "until",
        "limit",
        "cursor",
        "format",
    ] {
        assert!(
            params.contains(&p),
            "openapi lacks parameter {p}: {params:?}"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    let (status, body) = api.get("/api/v1/nope").await;
    assert_eq!(status, 404);
    assert!(body.contains("\"error\""));
    api.stop().await;
}
