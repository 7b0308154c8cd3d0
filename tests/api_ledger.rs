//! The asset ledger upload over real HTTP against a running poolguard: an upload that rejects
//! rows is refused whole unless `?partial=true`, `?dry_run=true` only reports, versions can be
//! listed, read and restored, and a GB18030 (Excel on Chinese Windows) file is decoded.

mod common;

use common::{TestBed, api_token_toml, sha256_hex};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const FEEDS: &str = "feeds-token-for-tests";
const ADMIN: &str = "admin-token-for-tests";

const HEADER: &str = "network,mac,asset,kind,location,department,owner,contact\n";

/// Five machines, each known by name: what the campus had before the upload.
fn five_machines(tag: &str) -> String {
    let mut csv = String::from(HEADER);
    for i in 1..=5 {
        csv.push_str(&format!(
            "127.0.0.{i},,{tag}-{i},workstation,理科楼 30{i},物理学院,张伟,\n"
        ));
    }
    csv
}

/// Five rows: two good (renamed machines 1 and 2), then three bad ones (file lines 4, 5, 6).
const FIVE_ROWS_THREE_BAD: &str = "network,mac,asset,kind,location,department,owner,contact\n\
127.0.0.1,,new-1,workstation,A,Physics,,\n\
127.0.0.2,,new-2,workstation,A,Physics,,\n\
127.0.0.3x,,new-3,workstation,A,Physics,,\n\
127.0.0.4,zz,new-4,workstation,A,Physics,,\n\
127.0.0.5/8,,new-5,workstation,A,Physics,,\n";

async fn bed() -> TestBed {
    let mut t = String::from("[api]\nlisten = \"127.0.0.1:0\"\nmax_upload_mb = 1\n");
    t.push_str(&api_token_toml("fiona", "feeds", FEEDS));
    t.push_str(&api_token_toml("adam", "admin", ADMIN));
    t.push_str("[store]\npath = \"data/pg.db\"\nflush_interval_ms = 50\n");
    t.push_str("[clients]\nledger = \"clients.csv\"\n");
    TestBed::builder()
        .file("clients.csv", &five_machines("old"))
        .toml(&t)
        .start()
        .await
}

async fn put_ledger(bed: &TestBed, query: &str, body: &[u8], want: StatusCode) -> Value {
    let path = format!("/api/v1/clients/ledger{query}");
    let (status, v) = bed
        .api_request(Method::PUT, &path, ADMIN, Some(body.to_vec()))
        .await;
    assert_eq!(status, want, "PUT {path}: {v}");
    v
}

/// The asset the live ledger gives `ip` (null when unknown).
async fn asset_of(bed: &TestBed, ip: &str) -> Value {
    let path = format!("/api/v1/clients/{ip}");
    let (status, v) = bed.api_request(Method::GET, &path, ADMIN, None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["identity"]["asset"].clone()
}

async fn audit(bed: &TestBed) -> Vec<Value> {
    let (status, v) = bed
        .api_request(Method::GET, "/api/v1/audit", ADMIN, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["items"].as_array().cloned().unwrap_or_default()
}

async fn versions(bed: &TestBed) -> Vec<Value> {
    let (status, v) = bed
        .api_request(Method::GET, "/api/v1/clients/ledger/versions", ADMIN, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v.as_array().cloned().unwrap_or_default()
}

fn lines(report: &Value) -> Vec<u64> {
    report["rejected"]
        .as_array()
        .map(|r| r.iter().filter_map(|row| row["line"].as_u64()).collect())
        .unwrap_or_default()
}

fn ledger_file(bed: &TestBed) -> String {
    std::fs::read_to_string(bed.dir.path().join("clients.csv")).expect("ledger file is UTF-8")
}

/// Nothing changed: the same file, every machine still known by its old name, no version,
/// no ledger audit row.
async fn assert_unchanged(bed: &TestBed) {
    assert_eq!(ledger_file(bed), five_machines("old"));
    for i in 1..=5 {
        assert_eq!(
            asset_of(bed, &format!("127.0.0.{i}")).await,
            format!("old-{i}"),
            "machine {i} keeps its identity"
        );
    }
    assert!(versions(bed).await.is_empty(), "no version was kept");
    let audited: Vec<Value> = audit(bed)
        .await
        .into_iter()
        .filter(|e| {
            e["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("ledger"))
        })
        .collect();
    assert!(
        audited.is_empty(),
        "no ledger write is audited: {audited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_with_bad_rows_is_refused_whole() {
    let bed = bed().await;
    let r = put_ledger(
        &bed,
        "",
        FIVE_ROWS_THREE_BAD.as_bytes(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(lines(&r), [4, 5, 6], "{r}");
    assert_eq!(r["rows"], 5, "{r}");
    assert_eq!(r["loaded"], 2, "{r}");
    assert!(
        r["rejected"][0]["reason"]
            .as_str()
            .is_some_and(|m| m.contains("127.0.0.3x")),
        "{r}"
    );
    let error = r["error"].as_str().unwrap_or_default();
    assert!(error.contains("partial=true"), "{r}");
    assert_unchanged(&bed).await;
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_upload_loads_the_good_rows_and_lists_the_rest() {
    let bed = bed().await;
    let r = put_ledger(
        &bed,
        "?partial=true",
        FIVE_ROWS_THREE_BAD.as_bytes(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["loaded"], 2, "{r}");
    assert_eq!(r["rows"], 5, "{r}");
    assert_eq!(lines(&r), [4, 5, 6], "{r}");
    assert_eq!(r["version"]["action"], "partial", "{r}");
    assert_eq!(r["version"]["rejected"], 3, "{r}");
    assert_eq!(asset_of(&bed, "127.0.0.1").await, "new-1");
    assert_eq!(asset_of(&bed, "127.0.0.2").await, "new-2");
    assert_eq!(
        asset_of(&bed, "127.0.0.3").await,
        Value::Null,
        "asked for: the rejected machines are unknown now"
    );
    assert_eq!(ledger_file(&bed), FIVE_ROWS_THREE_BAD);
    let entry = &audit(&bed).await[0];
    assert_eq!(entry["action"], "ledger.replace", "{entry}");
    assert_eq!(
        entry["detail"], "partial: 2 networks, 3 rows rejected (lines 4, 5, 6)",
        "{entry}"
    );
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_and_changes_nothing() {
    let bed = bed().await;
    let r = put_ledger(
        &bed,
        "?dry_run=true",
        FIVE_ROWS_THREE_BAD.as_bytes(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["dry_run"], true, "{r}");
    assert_eq!(r["rows"], 5, "{r}");
    assert_eq!(r["loaded"], 2, "{r}");
    assert_eq!(lines(&r), [4, 5, 6], "{r}");
    assert!(r["version"].is_null(), "{r}");
    // A clean file, and one with partial=true too: still only a report.
    for query in ["?dry_run=true", "?dry_run=true&partial=true"] {
        let r = put_ledger(&bed, query, five_machines("new").as_bytes(), StatusCode::OK).await;
        assert_eq!(r["loaded"], 5, "{r}");
        assert_eq!(r["dry_run"], true, "{r}");
    }
    assert_unchanged(&bed).await;
    // A bad parameter is named.
    let (status, v) = bed
        .api_request(
            Method::PUT,
            "/api/v1/clients/ledger?dry_run=maybe",
            ADMIN,
            Some(five_machines("new").into_bytes()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["parameter"], "dry_run", "{v}");
    assert_unchanged(&bed).await;
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_listed_read_and_restored() {
    let bed = bed().await;
    let first = five_machines("first");
    let second = five_machines("second");
    put_ledger(&bed, "", first.as_bytes(), StatusCode::OK).await;
    put_ledger(&bed, "", second.as_bytes(), StatusCode::OK).await;
    assert_eq!(asset_of(&bed, "127.0.0.4").await, "second-4");

    let list = versions(&bed).await;
    let actions: Vec<&str> = list.iter().filter_map(|v| v["action"].as_str()).collect();
    assert_eq!(actions, ["upload", "upload", "existing"], "{list:?}");
    assert_eq!(list[1]["sha256"], sha256_hex(&first));
    assert_eq!(list[1]["entries"], 5);
    assert_eq!(list[1]["who"], "adam");
    assert!(list[1]["time"].is_string());
    let first_id = list[1]["id"].as_u64().expect("id");

    let path = format!("/api/v1/clients/ledger/versions/{first_id}");
    // As every CSV export: a UTF-8 BOM for Excel unless `bom=false` (docs/store-and-api.md).
    let (status, body) = bed.api_request(Method::GET, &path, ADMIN, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, Value::String(format!("\u{feff}{first}")));
    let plain = format!("{path}?bom=false");
    let (status, body) = bed.api_request(Method::GET, &plain, ADMIN, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, Value::String(first.clone()));
    let bad = format!("{path}?bom=maybe");
    let (status, body) = bed.api_request(Method::GET, &bad, ADMIN, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["parameter"], "bom", "{body}");
    let (status, _) = bed
        .api_request(
            Method::GET,
            "/api/v1/clients/ledger/versions/99",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Admin only, as the upload.
    let restore = format!("/api/v1/clients/ledger/versions/{first_id}/restore");
    let (status, _) = bed.api_request(Method::POST, &restore, FEEDS, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(asset_of(&bed, "127.0.0.4").await, "second-4");

    let (status, r) = bed.api_request(Method::POST, &restore, ADMIN, None).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["loaded"], 5, "{r}");
    assert_eq!(r["version"]["action"], "restore", "{r}");
    assert_eq!(r["version"]["sha256"], sha256_hex(&first), "{r}");
    for i in 1..=5 {
        assert_eq!(
            asset_of(&bed, &format!("127.0.0.{i}")).await,
            format!("first-{i}"),
            "in force at once"
        );
    }
    assert_eq!(ledger_file(&bed), first);
    let entry = &audit(&bed).await[0];
    assert_eq!(entry["action"], "ledger.restore", "{entry}");
    assert_eq!(entry["actor"], "adam", "{entry}");
    assert_eq!(entry["before_hash"], sha256_hex(&second), "{entry}");
    assert_eq!(entry["after_hash"], sha256_hex(&first), "{entry}");
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gb18030_file_is_decoded_and_kept_as_utf8() {
    let bed = bed().await;
    let text = format!("{HEADER}127.0.0.9,,gpu-09,workstation,理科楼 309,物理学院,王芳,\n");
    // Written by hand: "物理学院" in GB18030 is CE EF C0 ED D1 A7 D4 BA.
    let (gbk, _, lossy) = encoding_rs::GB18030.encode(&text);
    assert!(!lossy);
    assert!(
        gbk.windows(8)
            .any(|w| w == [0xce, 0xef, 0xc0, 0xed, 0xd1, 0xa7, 0xd4, 0xba])
    );
    let r = put_ledger(&bed, "", &gbk, StatusCode::OK).await;
    assert_eq!(r["decoded_from"], "GB18030", "{r}");
    assert_eq!(r["loaded"], 1, "{r}");
    let (status, c) = bed
        .api_request(Method::GET, "/api/v1/clients/127.0.0.9", ADMIN, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c["identity"]["department"], "物理学院", "{c}");
    assert_eq!(c["identity"]["owner"], "王芳", "{c}");
    assert_eq!(ledger_file(&bed), text, "kept on disk as UTF-8");

    // A UTF-8 BOM (Excel's "CSV UTF-8") is accepted as UTF-8.
    let bom = [b"\xef\xbb\xbf".as_slice(), five_machines("bom").as_bytes()].concat();
    let r = put_ledger(&bed, "", &bom, StatusCode::OK).await;
    assert!(r["decoded_from"].is_null(), "{r}");
    assert_eq!(asset_of(&bed, "127.0.0.5").await, "bom-5");

    // Neither UTF-8 nor GB18030: refused with the hint; the ledger in force stays.
    let r = put_ledger(
        &bed,
        "",
        b"network,mac,asset,kind,location,department,owner,contact\n127.0.0.1,,\xff,,,,,\n",
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let error = r["error"].as_str().unwrap_or_default();
    assert!(error.contains("save it as \"CSV UTF-8\""), "{r}");
    assert_eq!(asset_of(&bed, "127.0.0.5").await, "bom-5");
    bed.shutdown().await;
}
