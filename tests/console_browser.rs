//! The staff console in a real browser (Debian's chromium through chromedriver) against a
//! running poolguard with real DNS traffic: sign in as a viewer and an investigator, see a hit
//! appear after a query, filter and export it, walk an incident to reported with a note,
//! quarantine and release a client and see the DNS answer change, upload a feed with a bad
//! line and see it rejected, switch the language. Screenshots of each page are saved
//! (`$CONSOLE_SCREENSHOTS` keeps them; docs/console/ holds a few).

mod common;
mod console_support;

use std::net::IpAddr;

use common::{Proto, query_from, request};
use console_support::*;
use fantoccini::Locator;
use hickory_proto::rr::RecordType;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_viewer_sees_a_hit_appear_and_filters_it() {
    let bed = bed("").await;
    let base = console_url(&bed);
    let driver = Driver::start();
    let b = driver.browser(1366, 768, "en-US,en").await;
    let shots = Shots::new();

    // Not signed in: every page leads to the sign-in form.
    b.goto(&format!("{base}/hits")).await.expect("page");
    assert!(
        b.current_url()
            .await
            .expect("url")
            .path()
            .starts_with("/signin")
    );
    shots.take(&b, "signin").await;

    sign_in(&b, &base, VIEWER).await;
    assert_eq!(text_of(&b, "who").await, "viewer");

    // A real query from the miner's address to a listed pool name becomes a hit.
    query_from(
        ip(MINER),
        bed.dns,
        Proto::Udp,
        &request("pool.minergate.com", RecordType::A, true),
    )
    .await;
    let text = until_shows(&b, &format!("{base}/hits"), "pool.minergate.com").await;
    assert!(text.contains(MINER), "{text}");
    shots.take(&b, "hits").await;

    // Export the current filter as CSV, with the browser's own session cookie.
    let href = b
        .find(Locator::Id("export-csv"))
        .await
        .expect("export link")
        .attr("href")
        .await
        .expect("href")
        .expect("an href");
    let cookie = b
        .get_named_cookie("pg_session")
        .await
        .expect("session cookie");
    let csv = reqwest::Client::new()
        .get(format!("{base}{href}"))
        .header("cookie", format!("pg_session={}", cookie.value()))
        .send()
        .await
        .expect("export");
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/csv")
    );
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("attachment")
    );
    let csv = csv.text().await.expect("csv");
    assert_eq!(csv.lines().count(), 2, "a header and the one hit: {csv}");
    assert!(
        csv.contains("pool.minergate.com") && csv.contains(MINER),
        "{csv}"
    );

    // Filter by another client: nothing; by the miner's: the hit.
    let client = b
        .find(Locator::Id("f-client"))
        .await
        .expect("client filter");
    client.send_keys("127.0.0.8").await.expect("typed");
    submit(&b, "apply").await;
    assert!(exists(&b, "#no-rows").await, "{}", body_text(&b).await);
    b.goto(&format!("{base}/hits?client={MINER}&name=*.minergate.com"))
        .await
        .expect("page");
    assert!(exists(&b, "#rows").await, "{}", body_text(&b).await);

    // The overview counts it, and a viewer sees no write buttons on the incident.
    let overview = until_shows(&b, &base, "pool.minergate.com").await;
    assert!(overview.contains("Hits over time"), "{overview}");
    // The hits by feed, each feed a link to its hits.
    assert!(
        exists(&b, "a[href='/hits?feed=mining']").await,
        "{overview}"
    );
    shots.take(&b, "overview").await;
    // Keyboard: the first Tab reaches the skip link, the next ones the navigation, and Enter
    // follows a link.
    let tab = "\u{E004}";
    b.find(Locator::Css("body"))
        .await
        .expect("body")
        .send_keys(tab)
        .await
        .expect("tab");
    let first = b.active_element().await.expect("focus");
    assert_eq!(first.text().await.expect("text"), "Skip to content");
    first.send_keys(tab).await.expect("tab");
    let second = b.active_element().await.expect("focus");
    assert_eq!(second.text().await.expect("text"), "Overview");
    second.send_keys(tab).await.expect("tab");
    b.active_element()
        .await
        .expect("focus")
        .send_keys("\u{E007}")
        .await
        .expect("enter");
    for _ in 0..200 {
        if b.current_url().await.expect("url").path() == "/hits" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(b.current_url().await.expect("url").path(), "/hits");
    b.goto(&format!("{base}/incidents")).await.expect("queue");
    shots.take(&b, "incidents").await;
    b.goto(&format!("{base}/incidents/1"))
        .await
        .expect("incident");
    assert!(!exists(&b, "#note-form").await && !exists(&b, "#status-form").await);

    b.close().await.expect("browser closed");
}

/// The address's A answer for `www.example.test`, asked from `from`.
async fn answer_for(bed: &common::TestBed, from: &str) -> String {
    let m = query_from(
        ip(from),
        bed.dns,
        Proto::Udp,
        &request("www.example.test", RecordType::A, true),
    )
    .await;
    common::addresses(&m).join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_investigator_walks_an_incident_to_reported_and_quarantines_a_client() {
    let bed = bed("").await;
    let base = console_url(&bed);
    let driver = Driver::start();
    let b = driver.browser(1366, 768, "en-US,en").await;
    let shots = Shots::new();
    query_from(
        ip(MINER),
        bed.dns,
        Proto::Udp,
        &request("pool.minergate.com", RecordType::A, true),
    )
    .await;

    sign_in(&b, &base, INVESTIGATOR).await;
    assert_eq!(text_of(&b, "who").await, "alice");
    until_shows(&b, &format!("{base}/incidents"), MINER).await;
    b.goto(&format!("{base}/incidents/1"))
        .await
        .expect("incident");
    // The ledger's department is HTML: shown as text, and it did not run.
    let identity = text_of(&b, "identity").await;
    assert!(identity.contains(XSS), "{identity}");

    let choose = |status: &'static str| {
        let b = b.clone();
        async move {
            b.find(Locator::Css(&format!(
                "#new-status option[value='{status}']"
            )))
            .await
            .expect("status option")
            .click()
            .await
            .expect("chosen");
            submit(&b, "move").await;
        }
    };
    choose("investigating").await;
    assert_eq!(text_of(&b, "status").await, "investigating");
    // Backwards is refused by the API's state machine; its reason is on the page.
    choose("open").await;
    let refusal = text_of(&b, "message").await;
    assert!(refusal.contains("open"), "{refusal}");
    assert_eq!(text_of(&b, "status").await, "investigating");
    shots.take(&b, "incident-409").await;

    // Assign, identify, note (HTML in it stays text), report.
    let assignee = b.find(Locator::Id("f-assignee")).await.expect("assignee");
    assignee.send_keys("alice").await.expect("typed");
    submit(&b, "save-fields").await;
    assert_eq!(text_of(&b, "assignee").await, "alice");
    choose("identified").await;
    assert_eq!(
        text_of(&b, "status").await,
        "identified",
        "{}",
        body_text(&b).await
    );
    type_into(&b, "note-text", XSS).await;
    submit(&b, "add-note").await;
    let notes: Vec<String> = {
        let mut out = Vec::new();
        for e in b.find_all(Locator::Css(".note-text")).await.expect("notes") {
            out.push(e.text().await.expect("text"));
        }
        out
    };
    assert!(notes.iter().any(|n| n == XSS), "{notes:?}");
    // The account for the written report, then the report itself in the browser.
    type_into(&b, "n-found", "poolguard hit on a mining pool name").await;
    type_into(&b, "n-outcome", "xmrig removed from gpu-ws-07").await;
    b.find(Locator::Id("n-cleaned"))
        .await
        .expect("measure")
        .click()
        .await
        .expect("checked");
    submit(&b, "save-narrative").await;
    assert!(exists(&b, "#done").await, "{}", body_text(&b).await);
    assert!(exists(&b, "#n-cleaned[checked]").await);
    choose("reported").await;
    assert_eq!(text_of(&b, "status").await, "reported");
    assert_ne!(b.title().await.expect("title"), "pwned");
    let ran = b
        .execute("return window.pwned === undefined;", vec![])
        .await
        .expect("script");
    assert_eq!(ran, serde_json::Value::Bool(true), "the payload ran");
    shots.take(&b, "incident").await;
    b.goto(&format!("{base}/incidents/1/report?format=html"))
        .await
        .expect("report");
    let report = body_text(&b).await;
    assert!(report.contains("xmrig removed from gpu-ws-07"), "{report}");

    // Quarantine the other client: its DNS answers become the notice address; release it.
    assert_eq!(answer_for(&bed, "127.0.0.8").await, "192.0.2.10");
    b.goto(&format!("{base}/quarantine"))
        .await
        .expect("quarantine");
    type_into(&b, "q-ip", "127.0.0.8").await;
    type_into(&b, "q-reason", "mining rig found").await;
    submit(&b, "q-add").await;
    assert!(text_of(&b, "quarantined").await.contains("127.0.0.8"));
    assert_eq!(answer_for(&bed, "127.0.0.8").await, "127.0.0.99");
    shots.take(&b, "quarantine").await;
    b.find(Locator::Css(".release-reason"))
        .await
        .expect("reason")
        .send_keys("cleaned")
        .await
        .expect("typed");
    submit_css(&b, ".release").await;
    assert!(exists(&b, "#no-rows").await, "{}", body_text(&b).await);
    assert_eq!(answer_for(&bed, "127.0.0.8").await, "192.0.2.10");

    // The client page ties it together.
    b.goto(&format!("{base}/clients?ip={MINER}"))
        .await
        .expect("client");
    assert!(text_of(&b, "client-incidents").await.contains("reported"));
    shots.take(&b, "client").await;

    // Language: the switch turns every label to Chinese and remembers it.
    b.goto(&base).await.expect("overview");
    submit(&b, "lang-switch").await;
    let lang = b
        .find(Locator::Css("html"))
        .await
        .expect("html")
        .attr("lang")
        .await
        .expect("attr");
    assert_eq!(lang.as_deref(), Some("zh-CN"));
    assert!(body_text(&b).await.contains("命中趋势"));
    assert_eq!(text_of(&b, "role").await, "(调查员)");
    assert!(
        nothing_overflows(&b).await,
        "a table is wider than its card"
    );
    shots.take(&b, "overview-zh").await;
    b.goto(&format!("{base}/incidents")).await.expect("queue");
    assert!(body_text(&b).await.contains("事件"));
    b.close().await.expect("closed");

    // Phone width: nothing wider than the screen.
    let phone = driver.browser(390, 844, "zh-CN,zh").await;
    sign_in(&phone, &base, VIEWER).await;
    assert!(
        body_text(&phone).await.contains("概览"),
        "Accept-Language zh picks Chinese"
    );
    let width = phone
        .execute("return document.documentElement.clientWidth;", vec![])
        .await
        .expect("script");
    assert!(width.as_u64().is_some_and(|w| w <= 400), "{width}");
    assert!(
        nothing_overflows(&phone).await,
        "an element is wider than the phone"
    );
    shots.take(&phone, "overview-phone").await;
    phone.close().await.expect("closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_feeds_upload_shows_the_rejected_line_and_versions_diff() {
    let bed = bed("").await;
    let base = console_url(&bed);
    let driver = Driver::start();
    let b = driver.browser(1366, 768, "en-US,en").await;
    let shots = Shots::new();
    sign_in(&b, &base, ADMIN).await;

    b.goto(&format!("{base}/feeds")).await.expect("feeds");
    assert!(text_of(&b, "feeds").await.contains("mining"));
    shots.take(&b, "feeds").await;

    let file = bed.dir.path().join("upload.txt");
    std::fs::write(&file, "pool.minergate.com\nnew.pool.example\nnot a name!\n").expect("file");
    b.goto(&format!("{base}/feeds/mining")).await.expect("feed");
    type_into(&b, "upload-file", &file.display().to_string()).await;
    submit(&b, "upload").await;
    let rejected = text_of(&b, "rejected").await;
    assert!(rejected.contains("not a name!"), "{rejected}");
    assert_eq!(text_of(&b, "accepted").await, "2");
    shots.take(&b, "feed-upload").await;

    // The name is now blocked, and the check page says by which feed and rule.
    b.goto(&format!("{base}/check?name=new.pool.example"))
        .await
        .expect("check");
    let answer = text_of(&b, "check-answer").await;
    assert!(
        answer.contains("mining") && answer.contains("blocked"),
        "{answer}"
    );

    // Versions: the diff shows the added name.
    b.goto(&format!("{base}/feeds/mining")).await.expect("feed");
    let versions = text_of(&b, "versions").await;
    assert!(versions.contains("root"), "{versions}");
    submit(&b, "diff").await;
    let diff = text_of(&b, "diff-result").await;
    assert!(diff.contains("+ new.pool.example"), "{diff}");

    // A new feed from a file: created, loaded, and the name it lists is blocked.
    let extra = bed.dir.path().join("extra.txt");
    std::fs::write(&extra, "extra.pool.example\n").expect("file");
    b.goto(&format!("{base}/feeds")).await.expect("feeds");
    type_into(&b, "new-feed-name", "campus-extra").await;
    type_into(&b, "new-feed-file", &extra.display().to_string()).await;
    submit(&b, "new-feed").await;
    assert_eq!(
        text_of(&b, "accepted").await,
        "1",
        "{}",
        body_text(&b).await
    );
    b.goto(&format!("{base}/check?name=extra.pool.example"))
        .await
        .expect("check");
    assert!(text_of(&b, "check-answer").await.contains("campus-extra"));
    b.close().await.expect("closed");
}
