//! The feed upload answer accounts for every line (issue 13, point 11): counts that add up to
//! the file's lines, rejected lines with number and reason, and with `?verbose=true` the
//! skipped lines by number, over real HTTP to a running poolguard.

mod common;

use common::{TestBed, api_token_toml};

const FEEDS: &str = "feeds-token-for-tests";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_accounts_for_every_line_and_lists_skipped_ones_on_request() {
    let bed = TestBed::builder()
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n{}[store]\npath = \"data/pg.db\"\n",
            api_token_toml("fiona", "feeds", FEEDS)
        ))
        .start()
        .await;
    // Adblock by its header; line 4 is a hosts line and line 5 an address prefix, both once
    // dropped without a word; line 6 is a cosmetic rule (skipped), line 7 is broken.
    let list = "[Adblock Plus 2.0]\n! mixed syntaxes\n||pool.example^\n0.0.0.0 hosts.example\n||203.0.113.0/24^\n##.coin-banner\n||info^\n\n";
    let (status, r) = bed.api_put("/api/v1/feeds/mixed", FEEDS, list).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["format"], "adblock");
    assert_eq!(r["accepted"], 3, "{r}");
    let lines = &r["lines"];
    assert_eq!(lines["lines"], 8, "{r}");
    assert_eq!(lines["accepted"], 3, "{r}");
    assert_eq!(lines["rejected"], 1, "{r}");
    assert_eq!(lines["skipped"], 1, "{r}");
    assert_eq!(lines["comments"], 3, "{r}");
    assert_eq!(r["rejected"][0]["line"], 7);
    assert!(r.get("skipped_lines").is_none(), "terse by default: {r}");

    let (status, r) = bed
        .api_put("/api/v1/feeds/mixed?verbose=true", FEEDS, list)
        .await;
    assert_eq!(status, 200, "{r}");
    let skipped = r["skipped_lines"].as_array().expect("listed with verbose");
    assert_eq!(skipped.len(), 1, "{r}");
    assert_eq!(skipped[0]["line"], 6);
    assert!(
        skipped[0]["reason"].as_str().unwrap().contains("cosmetic"),
        "{r}"
    );

    // Refused content (nothing usable) lists its skipped lines too when asked.
    let (status, r) = bed
        .api_put(
            "/api/v1/feeds/mixed?verbose=true",
            FEEDS,
            "! c\n##.a\n##.b\n",
        )
        .await;
    assert_eq!(status, 422, "{r}");
    let lines: Vec<_> = r["skipped_lines"]
        .as_array()
        .expect("listed")
        .iter()
        .map(|s| s["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 3]);

    let (status, r) = bed
        .api_put("/api/v1/feeds/mixed?verbose=maybe", FEEDS, list)
        .await;
    assert_eq!(status, 400, "{r}");
    bed.shutdown().await;
}
