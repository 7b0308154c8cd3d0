//! The list endpoints as a staff member uses them: feed events through the Sink, then find
//! exactly those rows with every filter, page through them, export them.

mod api_support;

use std::collections::HashSet;

use api_support::{Api, Harness, T0, event};
use chrono::{DateTime, SecondsFormat, Utc};
use poolguard::record::Outcome;

const CLIENTS: [&str; 5] = [
    "10.20.3.7:5000",
    "10.20.3.8:5001",
    "10.20.9.9:5002",
    "192.168.1.1:5003",
    "[fd00::5]:5004",
];
const NAMES: [&str; 5] = [
    "pool.minexmr.com",
    "xmr.pool.minexmr.com",
    "minexmr.com",
    "notminexmr.com",
    "example.org",
];
const TYPES: [&str; 3] = ["A", "AAAA", "TXT"];

#[derive(Debug, Clone)]
struct Ev {
    time_ms: i64,
    ip: String,
    name: &'static str,
    qtype: &'static str,
    action: &'static str,
    feed: Option<&'static str>,
    department: Option<&'static str>,
}

fn dataset(n: usize) -> Vec<Ev> {
    (0..n)
        .map(|i| {
            let client = CLIENTS[i % 5];
            let name = NAMES[(i / 5) % 5];
            let bad = name == "minexmr.com" || name.ends_with(".minexmr.com");
            let (action, feed) = match (bad, i % 7 == 0) {
                (true, false) => ("blocked", Some("mining")),
                (true, true) => ("cname-blocked", Some("cname-feed")),
                (false, _) => ("allowed", None),
            };
            let ip = client
                .rsplit_once(':')
                .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
                .unwrap_or_default();
            let department = match i % 5 {
                0 | 1 => Some("Physics"),
                2 => Some("Library"),
                _ => None,
            };
            // Pairs of events share a timestamp, so the (time, id) tie-break is exercised.
            Ev {
                time_ms: T0 + (i as i64 / 2) * 1000,
                ip,
                name,
                qtype: TYPES[i % 3],
                action,
                feed,
                department,
            }
        })
        .collect()
}

fn outcome(a: &str) -> Outcome {
    match a {
        "blocked" => Outcome::Blocked,
        "cname-blocked" => Outcome::CnameBlocked,
        _ => Outcome::Allowed,
    }
}

async fn load(h: &Harness, evs: &[Ev]) {
    for (i, e) in evs.iter().enumerate() {
        assert!(h.sink.submit(event(
            e.time_ms,
            CLIENTS[i % 5],
            e.name,
            e.qtype,
            outcome(e.action),
            e.feed
        )));
    }
    h.flush().await;
}

fn rfc(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Every item of every page, following next_cursor.
async fn all_pages(api: &Api, path: &str, limit: usize) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let page = api.get_json(&url).await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= limit);
        out.extend(items);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("pagination did not end");
}

fn key(v: &serde_json::Value) -> (String, String, String, String) {
    (
        v["time"].as_str().unwrap_or_default().to_string(),
        v["client"].as_str().unwrap_or_default().to_string(),
        v["name"].as_str().unwrap_or_default().to_string(),
        v["type"].as_str().unwrap_or_default().to_string(),
    )
}

fn expect(
    evs: &[Ev],
    hits_only: bool,
    pred: impl Fn(&Ev) -> bool,
) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = evs
        .iter()
        .filter(|e| !hits_only || e.action != "allowed")
        .filter(|e| pred(e))
        .map(|e| {
            (
                rfc(e.time_ms),
                e.ip.clone(),
                e.name.to_string(),
                e.qtype.to_string(),
            )
        })
        .collect();
    v.reverse(); // inserted oldest first; the API is newest first, later id first on ties
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_finds_exactly_the_matching_rows() {
    let h = Harness::new(|_| {});
    let evs = dataset(300);
    load(&h, &evs).await;
    let api = Api::start(&h, None).await;

    type Pred = Box<dyn Fn(&Ev) -> bool>;
    let cases: Vec<(&str, Pred)> = vec![
        ("", Box::new(|_| true)),
        ("client=10.20.3.7", Box::new(|e| e.ip == "10.20.3.7")),
        (
            "client=10.20.3.0/24",
            Box::new(|e| e.ip.starts_with("10.20.3.")),
        ),
        (
            "client=10.20.0.0/16",
            Box::new(|e| e.ip.starts_with("10.20.")),
        ),
        ("client=fd00::/64", Box::new(|e| e.ip == "fd00::5")),
        ("client=192.168.1.1", Box::new(|e| e.ip == "192.168.1.1")),
        (
            "name=pool.minexmr.com",
            Box::new(|e| e.name == "pool.minexmr.com"),
        ),
        (
            "name=POOL.minexmr.com.",
            Box::new(|e| e.name == "pool.minexmr.com"),
        ),
        (
            "name=*.minexmr.com",
            Box::new(|e| e.name == "minexmr.com" || e.name.ends_with(".minexmr.com")),
        ),
        (
            "name=*.pool.minexmr.com",
            Box::new(|e| e.name.ends_with("pool.minexmr.com")),
        ),
        ("type=AAAA", Box::new(|e| e.qtype == "AAAA")),
        ("type=txt", Box::new(|e| e.qtype == "TXT")),
        ("action=blocked", Box::new(|e| e.action == "blocked")),
        (
            "action=cname-blocked",
            Box::new(|e| e.action == "cname-blocked"),
        ),
        ("action=allowed", Box::new(|e| e.action == "allowed")),
        ("feed=mining", Box::new(|e| e.feed == Some("mining"))),
        (
            "department=Physics",
            Box::new(|e| e.department == Some("Physics")),
        ),
        (
            "department=Library",
            Box::new(|e| e.department == Some("Library")),
        ),
        (
            "since=2026-11-01T00:00:30Z&until=2026-11-01T00:01:00Z",
            Box::new(|e| e.time_ms >= T0 + 30_000 && e.time_ms < T0 + 60_000),
        ),
        (
            "since=2026-11-01T08:00:30%2B08:00",
            Box::new(|e| e.time_ms >= T0 + 30_000),
        ),
        (
            "client=10.20.0.0/16&name=*.minexmr.com&type=A&department=Physics",
            Box::new(|e| {
                e.ip.starts_with("10.20.")
                    && e.name.contains("minexmr.com")
                    && e.name != "notminexmr.com"
                    && e.qtype == "A"
                    && e.department == Some("Physics")
            }),
        ),
    ];
    for (query, pred) in &cases {
        for (endpoint, hits_only) in [("/api/v1/queries", false), ("/api/v1/hits", true)] {
            let path = if query.is_empty() {
                endpoint.to_string()
            } else {
                format!("{endpoint}?{query}")
            };
            let got: Vec<_> = all_pages(&api, &path, 17).await.iter().map(key).collect();
            let want = expect(&evs, hits_only, pred);
            assert_eq!(got, want, "{path}");
        }
    }

    // Hits carry the identity snapshot; query rows do not.
    let page = api.get_json("/api/v1/hits?client=10.20.3.7&limit=1").await;
    let item = &page["items"][0];
    assert_eq!(item["identity"]["asset"], "rig-7");
    assert_eq!(item["identity"]["owner"], "张伟");
    assert_eq!(item["identity"]["department"], "Physics");
    assert_eq!(item["identity"]["network"], "10.20.3.7/32");
    assert!(item["feed"].is_string() && item["rule"].is_string() && item["rcode"] == "NXDOMAIN");
    let page = api
        .get_json("/api/v1/queries?client=10.20.3.7&limit=1")
        .await;
    assert!(page["items"][0].get("identity").is_none());
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_neither_skips_nor_repeats() {
    let h = Harness::new(|_| {});
    let evs = dataset(250);
    load(&h, &evs).await;
    let api = Api::start(&h, None).await;

    let p1 = api.get_json("/api/v1/queries?limit=100").await;
    assert_eq!(p1["items"].as_array().map(Vec::len), Some(100));
    // Newer rows arriving between pages must not shift the next page.
    for i in 0..30 {
        h.sink.submit(event(
            T0 + 1_000_000 + i,
            "10.9.9.9:1",
            "late.example",
            "A",
            Outcome::Allowed,
            None,
        ));
    }
    h.flush().await;
    let c1 = p1["next_cursor"]
        .as_str()
        .expect("cursor after page 1")
        .to_string();
    let p2 = api
        .get_json(&format!("/api/v1/queries?limit=100&cursor={c1}"))
        .await;
    let c2 = p2["next_cursor"]
        .as_str()
        .expect("cursor after page 2")
        .to_string();
    let p3 = api
        .get_json(&format!("/api/v1/queries?limit=100&cursor={c2}"))
        .await;
    assert_eq!(p2["items"].as_array().map(Vec::len), Some(100));
    assert_eq!(p3["items"].as_array().map(Vec::len), Some(50));
    assert!(p3["next_cursor"].is_null());
    let mut ids = HashSet::new();
    let mut keys = Vec::new();
    for p in [&p1, &p2, &p3] {
        for it in p["items"].as_array().into_iter().flatten() {
            assert!(
                ids.insert(it["id"].as_i64().expect("id")),
                "repeated row {it}"
            );
            keys.push(key(it));
        }
    }
    assert_eq!(keys, expect(&evs, false, |_| true));
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_ndjson_exports_parse_and_neutralise_formulas() {
    let h = Harness::new(|_| {});
    let evs = dataset(40);
    load(&h, &evs).await;
    h.sink.submit(event(
        T0 + 999_000,
        "10.20.3.7:1",
        "=hyperlink(\"x\").evil",
        "A",
        Outcome::Blocked,
        Some("mining"),
    ));
    h.sink.submit(event(
        T0 + 999_001,
        "10.20.3.7:1",
        "@sum.evil",
        "A",
        Outcome::Blocked,
        Some("-x"),
    ));
    h.flush().await;
    let api = Api::start(&h, None).await;

    let (status, body) = api.get("/api/v1/hits?format=csv&limit=1000").await;
    assert_eq!(status, 200);
    let mut rdr = csv::Reader::from_reader(body.as_bytes());
    let headers = rdr.headers().expect("csv header").clone();
    assert!(headers.iter().any(|h| h == "owner"));
    let name_col = headers
        .iter()
        .position(|h| h == "name")
        .expect("name column");
    let feed_col = headers
        .iter()
        .position(|h| h == "feed")
        .expect("feed column");
    let owner_col = headers
        .iter()
        .position(|h| h == "owner")
        .expect("owner column");
    let rows: Vec<csv::StringRecord> = rdr.records().collect::<Result<_, _>>().expect("csv parses");
    let want_hits = evs.iter().filter(|e| e.action != "allowed").count() + 2;
    assert_eq!(rows.len(), want_hits);
    assert_eq!(&rows[0][name_col], "'@sum.evil");
    assert_eq!(&rows[0][feed_col], "'-x");
    assert_eq!(&rows[1][name_col], "'=hyperlink(\"x\").evil");
    assert_eq!(&rows[1][owner_col], "张伟");
    for r in &rows {
        for cell in r.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "formula cell {cell}"
            );
        }
    }

    let r = api
        .http
        .get(format!(
            "{}/api/v1/queries?format=ndjson&limit=10",
            api.base
        ))
        .bearer_auth(api.token(poolguard::config::Role::Viewer))
        .send()
        .await
        .expect("ndjson");
    let cursor = r
        .headers()
        .get("x-next-cursor")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = r.text().await.expect("body");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("ndjson line"))
        .collect();
    assert_eq!(lines.len(), 10, "{text}");
    assert!(cursor.is_some());
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_400_naming_the_parameter() {
    let h = Harness::new(|_| {});
    let api = Api::start(&h, None).await;
    let cases = [
        ("client=not-an-ip", Some("client")),
        ("client=10.0.0.0/33", Some("client")),
        ("name=bad..name", Some("name")),
        ("name=*.", Some("name")),
        ("type=A-B", Some("type")),
        ("action=nope", Some("action")),
        ("feed=bad/feed", Some("feed")),
        ("department=", Some("department")),
        ("since=yesterday", Some("since")),
        ("until=2026-13-01T00:00:00Z", Some("until")),
        (
            "since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z",
            Some("until"),
        ),
        ("limit=0", Some("limit")),
        ("limit=1001", Some("limit")),
        ("limit=ten", Some("limit")),
        ("cursor=zz", Some("cursor")),
        ("format=xml", Some("format")),
        ("limit=5&limit=6", Some("limit")),
        ("frobnicate=1", None),
    ];
    for endpoint in ["/api/v1/queries", "/api/v1/hits"] {
        for (q, param) in cases {
            let (status, body) = api.get(&format!("{endpoint}?{q}")).await;
            assert_eq!(status, 400, "{endpoint}?{q}: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).expect("json error");
            assert!(v["error"].is_string(), "{body}");
            assert_eq!(v["parameter"].as_str(), param, "{endpoint}?{q}: {body}");
        }
    }
    for (q, param) in [
        ("since=x", "since"),
        ("top=0", "top"),
        (
            "since=2026-01-01T00:00:00Z&until=2026-06-01T00:00:00Z",
            "since",
        ),
    ] {
        let (status, body) = api.get(&format!("/api/v1/stats?{q}")).await;
        assert_eq!(status, 400, "{q}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json error");
        assert_eq!(v["parameter"], param);
    }
    let (status, body) = api.get("/api/v1/clients/10.0.0.300").await;
    assert_eq!(status, 400);
    assert!(body.contains("\"parameter\":\"ip\""));
    api.stop().await;
}
