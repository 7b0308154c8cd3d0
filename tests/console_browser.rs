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

    // Filter by another client: nothing; by the miner's: the hit.
    let client = b
        .find(Locator::Id("f-client"))
        .await
        .expect("client filter");
    client.send_keys("127.0.0.8").await.expect("typed");
    b.find(Locator::Id("apply"))
        .await
        .expect("apply")
        .click()
        .await
        .expect("filtered");
    assert!(exists(&b, "#no-rows").await, "{}", body_text(&b).await);
    b.goto(&format!("{base}/hits?client={MINER}&name=*.minergate.com"))
        .await
        .expect("page");
    assert!(exists(&b, "#rows").await, "{}", body_text(&b).await);

    // The overview counts it, and a viewer sees no write buttons on the incident.
    let overview = until_shows(&b, &base, "pool.minergate.com").await;
    assert!(overview.contains("Hits over time"), "{overview}");
    shots.take(&b, "overview").await;
    b.goto(&format!("{base}/incidents")).await.expect("queue");
    shots.take(&b, "incidents").await;
    b.goto(&format!("{base}/incidents/1"))
        .await
        .expect("incident");
    assert!(!exists(&b, "#note-form").await && !exists(&b, "#status-form").await);

    b.close().await.expect("browser closed");
}
