//! The written report as a security officer files it (issue 20, part 1), through the real API
//! of a running poolguard with a real SQLite store: `[reports]` language, zone and letterhead,
//! `?lang=`, the investigator's account (`PUT …/narrative`, audited), hits per name, the
//! timeline collapsed to runs (`?rows=all` for every row), the resolution only once closed,
//! signature lines, and the evidence hash in the report and its response header.

mod common;

use std::net::IpAddr;
use std::sync::Arc;

use common::{Proto, TestBed, query_from, request, sha256_hex};
use hickory_proto::rr::RecordType;
use poolguard::incidents::ManualClock;
use serde_json::{Value, json};

const VIEWER: &str = "viewer-token-for-report-tests";
const INVESTIGATOR: &str = "investigator-token-for-report-tests";
const LEDGER: &str = "network,mac,asset,kind,location,department,owner,contact\n\
127.0.0.7,aa:bb:cc:dd:ee:07,gpu-ws-07,GPU workstation,理科楼 A-301,计算机学院,张伟,zhangwei@example.edu\n";
const LOGO: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><rect width=\"10\" height=\"10\"/></svg>";
const HASH_HEADER: &str = "x-poolguard-evidence-sha256";

async fn bed(clock: Arc<ManualClock>) -> TestBed {
    let toml = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\
         [[api.tokens]]\nname = \"viewer\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
         [[api.tokens]]\nname = \"alice\"\nrole = \"investigator\"\nsha256 = \"{}\"\n\
         [store]\npath = \"data/pg.db\"\nflush_interval_ms = 20\n[clients]\nledger = \"clients.csv\"\n\
         [reports]\nlanguage = \"zh-CN\"\ntimezone = \"Asia/Shanghai\"\n\
         institution = \"示例大学\"\nunit = \"网络与信息中心\"\nlogo_file = \"logo.svg\"\n",
        sha256_hex(VIEWER),
        sha256_hex(INVESTIGATOR),
    );
    TestBed::builder()
        .file("clients.csv", LEDGER)
        .file("logo.svg", LOGO)
        .toml(&toml)
        .clock(clock)
        .start()
        .await
}

/// One API call: status, the evidence-hash header, the body.
async fn call(
    bed: &TestBed,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Option<String>, String) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", bed.api_url()))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("API answers");
    let status = resp.status().as_u16();
    let hash = resp
        .headers()
        .get(HASH_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, hash, resp.text().await.expect("body"))
}

/// A report that must be served: its hash header and body.
async fn report(bed: &TestBed, path: &str) -> (String, String) {
    let (s, hash, body) = call(bed, reqwest::Method::GET, path, VIEWER, None).await;
    assert_eq!(s, 200, "{path}: {body}");
    (hash.expect("evidence hash header"), body)
}

/// The rows of the appendix's table (heading row excluded).
fn appendix_rows(html: &str, heading: &str) -> usize {
    let part = html.split(heading).nth(1).expect("appendix");
    let table = part.split("</table>").next().expect("table");
    table.matches("<tr>").count() - 1
}

async fn put_narrative(bed: &TestBed, id: i64, token: &str, body: Value) -> (u16, String) {
    let (s, _, b) = call(
        bed,
        reqwest::Method::PUT,
        &format!("/api/v1/incidents/{id}/narrative"),
        token,
        Some(body),
    )
    .await;
    (s, b)
}

/// 30 identical hits and one other from 127.0.0.7; the incident they opened.
async fn hits_and_incident(bed: &TestBed) -> i64 {
    let from: IpAddr = "127.0.0.7".parse().expect("ip");
    for _ in 0..30 {
        let q = request("xmr.pool.minergate.com.", RecordType::A, true);
        query_from(from, bed.dns, Proto::Udp, &q).await;
    }
    let q = request("moneroocean.stream.", RecordType::A, true);
    query_from(from, bed.dns, Proto::Udp, &q).await;
    bed.running().flush().await.expect("flush");
    let (_, _, list) = call(bed, reqwest::Method::GET, "/api/v1/incidents", VIEWER, None).await;
    let list: Value = serde_json::from_str(&list).expect("json");
    list["items"][0]["id"].as_i64().expect("id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_for_the_record() {
    let clock = Arc::new(ManualClock::at(chrono::Utc::now().timestamp_millis()));
    let bed = bed(clock.clone()).await;
    let id = hits_and_incident(&bed).await;
    let path = format!("/api/v1/incidents/{id}/report");

    // zh-CN by config: headings, letterhead, logo inline, times in Shanghai to the second.
    let (hash, html) = report(&bed, &path).await;
    for s in [
        "<html lang=\"zh-CN\">",
        "挖矿事件报告",
        "示例大学",
        "网络与信息中心",
        "data:image/svg+xml;base64,",
        "<h2>概要</h2>",
        "<h2>按域名汇总</h2>",
        "附录：命中时间线 (31)",
        "CST (Asia/Shanghai)",
        "<h3>原因</h3>",
        "未记录",
        "调查人",
        "责任人 (张伟)",
        "@page { size: A4",
        "thead { display: table-header-group; }",
        "127.0.0.7",
    ] {
        assert!(html.contains(s), "`{s}` missing from the zh-CN report");
    }
    assert!(!html.contains("Resolution"), "no resolution before closing");
    assert!(
        !html.contains("<h2>结案</h2>"),
        "no resolution before closing"
    );
    // Hits per name before the appendix, with the count.
    let names = html.split("<h2>按域名汇总</h2>").nth(1).expect("summary");
    let names = names.split("</table>").next().expect("table");
    assert!(
        names.contains("<td>xmr.pool.minergate.com</td>") && names.contains("<td>30</td>"),
        "{names}"
    );
    // 30 identical rows are one run; `rows=all` lists all 31.
    assert_eq!(appendix_rows(&html, "附录：命中时间线"), 2, "runs");
    assert!(html.contains("<td>× 30</td>"), "the run's count");
    let (_, all) = report(&bed, &format!("{path}?rows=all")).await;
    assert_eq!(appendix_rows(&all, "附录：命中时间线"), 31, "every row");
    let (s, _, body) = call(
        &bed,
        reqwest::Method::GET,
        &format!("{path}?rows=some"),
        VIEWER,
        None,
    )
    .await;
    assert_eq!(s, 400, "{body}");

    // `?lang=` overrides the language; anything else is a 400 naming the parameter.
    let (_, en) = report(&bed, &format!("{path}?lang=en")).await;
    for s in [
        "Crypto-mining incident report",
        "<h2>Hits per name</h2>",
        "Appendix: Timeline of hits (31)",
        "not recorded",
        "Investigator",
    ] {
        assert!(en.contains(s), "`{s}` missing from the en report");
    }
    let (_, md) = report(&bed, &format!("{path}?format=md&lang=en")).await;
    assert!(md.contains("## Hits per name"), "{md}");
    assert!(md.contains("| Responsible person | 张伟 |"), "{md}");
    let (s, _, body) = call(
        &bed,
        reqwest::Method::GET,
        &format!("{path}?lang=fr"),
        VIEWER,
        None,
    )
    .await;
    assert_eq!(s, 400);
    assert!(body.contains("lang") && body.contains("zh-CN"), "{body}");

    // The evidence hash: 64 hex digits, printed in the report, the same on every read of
    // the same evidence, whatever the format or language.
    assert_eq!(hash.len(), 64);
    assert!(html.contains(&hash), "hash printed in the report");
    assert!(md.contains(&hash), "hash printed in the Markdown");
    let (again, _) = report(&bed, &format!("{path}?lang=en&format=md")).await;
    assert_eq!(again, hash, "same evidence, same hash");

    // The narrative: investigators write it, viewers do not; bad measures are refused.
    let good = json!({
        "found": "poolguard 告警，交换机端口核实",
        "cause": "游戏模组中捆绑的 xmrig",
        "actions": ["warned", "disconnected", "warned"],
        "actions_other": "更改了密码",
        "outcome": "",
    });
    let (s, _) = put_narrative(&bed, id, VIEWER, good.clone()).await;
    assert_eq!(s, 403);
    let (s, body) = put_narrative(&bed, id, INVESTIGATOR, json!({"actions": ["burned"]})).await;
    assert_eq!(s, 400);
    assert!(body.contains("`burned` is not one of"), "{body}");
    let (s, _) = put_narrative(&bed, id, INVESTIGATOR, json!({"colour": "red"})).await;
    assert_eq!(s, 400);
    let (s, _) = put_narrative(&bed, 999_999, INVESTIGATOR, good.clone()).await;
    assert_eq!(s, 404);
    let (s, body) = put_narrative(&bed, id, INVESTIGATOR, good.clone()).await;
    assert_eq!(s, 200, "{body}");
    let stored: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(stored["actions"], json!(["disconnected", "warned"]));
    assert_eq!(stored["outcome"], Value::Null, "empty = not recorded");
    let (_, _, detail) = call(
        &bed,
        reqwest::Method::GET,
        &format!("/api/v1/incidents/{id}"),
        VIEWER,
        None,
    )
    .await;
    let detail: Value = serde_json::from_str(&detail).expect("json");
    assert_eq!(detail["narrative"]["cause"], "游戏模组中捆绑的 xmrig");

    let (changed, html) = report(&bed, &path).await;
    assert_ne!(changed, hash, "a new audit row changes the evidence hash");
    for s in [
        "游戏模组中捆绑的 xmrig",
        "断网; 警告; 其他: 更改了密码",
        "incident.narrative",
    ] {
        assert!(html.contains(s), "`{s}` missing from the report");
    }
    let outcome = html.split("<h3>处置结果</h3>").nth(1).expect("outcome");
    assert!(
        outcome.starts_with("<p class=\"empty\">未记录</p>"),
        "{outcome}"
    );
    // Saving the same account again writes nothing, so the evidence stays the same.
    let (s, _) = put_narrative(&bed, id, INVESTIGATOR, good).await;
    assert_eq!(s, 200);
    let (same, _) = report(&bed, &path).await;
    assert_eq!(same, changed);

    // Closed: the resolution section appears.
    let (s, _, body) = call(
        &bed,
        reqwest::Method::PATCH,
        &format!("/api/v1/incidents/{id}"),
        INVESTIGATOR,
        Some(json!({"status": "closed", "resolution": "false-positive"})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (_, html) = report(&bed, &path).await;
    let resolution = html
        .split("<h2>结案</h2>")
        .nth(1)
        .expect("resolution section");
    assert!(resolution.contains("false-positive"), "{resolution}");

    let dir = bed.shutdown().await;
    let conn = rusqlite::Connection::open(dir.path().join("data/pg.db")).expect("db");
    let audited: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit WHERE target = ?1 AND action = 'incident.narrative'",
            [format!("incident/{id}")],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(audited, 1, "one change, one audit row");
}

/// The zh-CN report printed by a real browser (Debian's chromium) to PDF: A4 pages, and the
/// Chinese headings and the client's address in the PDF's text layer (poppler's pdftotext),
/// so the CJK text is real text in a font, not missing glyphs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_prints_to_a4_pdf_with_chinese_text() {
    let chromium = common::tools::require_tool("chromium", "chromium");
    let pdftotext = common::tools::require_tool("pdftotext", "poppler-utils");
    let pdfinfo = common::tools::require_tool("pdfinfo", "poppler-utils");
    let clock = Arc::new(ManualClock::at(chrono::Utc::now().timestamp_millis()));
    let bed = bed(clock).await;
    let id = hits_and_incident(&bed).await;
    let (_, html) = report(&bed, &format!("/api/v1/incidents/{id}/report")).await;
    let work = tempfile::tempdir().expect("tempdir");
    let page = work.path().join("report.html");
    let pdf = work.path().join("report.pdf");
    std::fs::write(&page, &html).expect("write html");
    let out = std::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--no-pdf-header-footer",
        ])
        .arg(format!(
            "--user-data-dir={}",
            work.path().join("profile").display()
        ))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        pdf.is_file(),
        "chromium wrote no PDF: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = std::process::Command::new(&pdfinfo)
        .arg(&pdf)
        .output()
        .expect("pdfinfo runs");
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.lines()
            .any(|l| l.starts_with("Page size:") && l.contains("(A4)")),
        "{info}"
    );
    let text = std::process::Command::new(&pdftotext)
        .arg(&pdf)
        .arg("-")
        .output()
        .expect("pdftotext runs");
    let text = String::from_utf8_lossy(&text.stdout);
    for s in [
        "挖矿事件报告",
        "概要",
        "按域名汇总",
        "附录：命中时间线",
        "127.0.0.7",
        "示例大学",
    ] {
        assert!(text.contains(s), "`{s}` not in the PDF text layer:\n{text}");
    }
    bed.shutdown().await;
}
