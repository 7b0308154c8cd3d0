//! `/metrics` shows every metric from the start, with its HELP text, and the gauges read from
//! the store follow what happens: incidents open and fall overdue, clients are quarantined,
//! feeds hold entries, hits wait in the spool while SQLite is full.
//!
//! One test in its own binary: the recorder is global to the process, so "before any query"
//! only means something if no other test in the process has sent one.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use common::{Proto, SINK_V4, TestBed, addresses, query_from, request, sha256_hex};
use hickory_proto::rr::RecordType;
use poolguard::api::metrics::{Kind, METRICS};
use poolguard::incidents::ManualClock;
use poolguard::store::blocks::codec::OUTCOMES;
use poolguard::store::writer::StoreFault;
use serde_json::json;

const VIEWER: &str = "viewer-token-for-metrics-tests";
const INVESTIGATOR: &str = "investigator-token-for-metrics-tests";
const HOUR: i64 = 3600 * 1000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The value of the series `series` (`name` or `name{labels}` exactly as exported).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn must(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("no series `{series}` in /metrics:\n{text}"))
}

/// Every metric name a `counter!`, `gauge!` or `histogram!` in `src/` names as a literal.
fn emitted_in_sources() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read source");
                for mac in ["counter!(", "gauge!(", "histogram!("] {
                    for (at, _) in text.match_indices(mac) {
                        if text[..at].ends_with("describe_") {
                            continue;
                        }
                        let rest = text[at + mac.len()..].trim_start();
                        if let Some(lit) = rest.strip_prefix('"') {
                            let name = lit.split('"').next().unwrap_or_default();
                            out.insert(name.to_string());
                        }
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_is_exported_from_start_and_the_gauges_follow_the_store() {
    let clock = Arc::new(ManualClock::at(now_ms()));
    let bed = TestBed::builder()
        .file(
            "clients.csv",
            "network,mac,asset,kind,location,department,owner,contact\n\
             127.0.0.7,,gpu-ws-07,GPU workstation,理科楼 A-301,物理学院,张伟,\n",
        )
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n\
             [[api.tokens]]\nname = \"viewer\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
             [[api.tokens]]\nname = \"alice\"\nrole = \"investigator\"\nsha256 = \"{}\"\n\
             [store]\npath = \"data/pg.db\"\nflush_interval_ms = 20\n\
             [clients]\nledger = \"clients.csv\"\n\
             [[feeds]]\nname = \"sub\"\nurl = \"http://127.0.0.1:1/list.txt\"\nrefresh = \"1h\"\ntimeout = \"1s\"\n\
             [[export.dnstap]]\nunix = \"no-receiver.sock\"\n",
            sha256_hex(VIEWER),
            sha256_hex(INVESTIGATOR)
        ))
        .clock(clock.clone())
        .start()
        .await;

    // Right after start, before any DNS query: every metric with HELP and TYPE.
    let text = bed.metrics_text().await;
    let mut missing = Vec::new();
    for m in METRICS {
        let kind = match m.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        for line in [
            format!("# HELP {} {}", m.name, m.help),
            format!("# TYPE {} {kind}", m.name),
        ] {
            if !text.lines().any(|l| l == line) {
                missing.push(line);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "missing:\n{}\n\n{text}",
        missing.join("\n")
    );
    // The list is complete: every name the code emits is in it.
    let listed: BTreeSet<&str> = METRICS.iter().map(|m| m.name).collect();
    let unlisted: Vec<String> = emitted_in_sources()
        .into_iter()
        .filter(|n| !listed.contains(n.as_str()))
        .collect();
    assert!(
        unlisted.is_empty(),
        "emitted but not in api::metrics::METRICS: {unlisted:?}"
    );
    // An export's series exist at zero from start, its receiver absent.
    // (The label is the target as written in config.toml.)
    let sink = "dnstap:no-receiver.sock";
    for name in ["poolguard_export_sent_total", "poolguard_export_connected"] {
        assert_eq!(
            must(&text, &format!("{name}{{sink=\"{sink}\"}}")),
            0.0,
            "{name}"
        );
    }
    for reason in ["queue_full", "rate_limit", "receiver"] {
        assert_eq!(
            must(
                &text,
                &format!("poolguard_export_dropped_total{{sink=\"{sink}\",reason=\"{reason}\"}}")
            ),
            0.0,
            "{reason}"
        );
    }
    // Counters exist at zero before they first move.
    for o in OUTCOMES {
        for p in ["udp", "tcp", "dot", "doh"] {
            let series = format!(
                "poolguard_queries_total{{action=\"{}\",protocol=\"{p}\"}}",
                o.as_str()
            );
            assert_eq!(must(&text, &series), 0.0, "{series}");
        }
    }
    for series in [
        "poolguard_dns_dropped_total{reason=\"overload\"}",
        "poolguard_log_rows_dropped_total",
        "poolguard_log_rows_dropped_total{table=\"hits\"}",
        "poolguard_store_spooled_total{to=\"memory\"}",
        "poolguard_alerts_failed_total",
        "poolguard_feed_fetches_total{feed=\"sub\",result=\"not_modified\"}",
        "poolguard_incidents_open",
        "poolguard_incidents_overdue",
        "poolguard_quarantined_clients",
        "poolguard_store_spool_bytes",
        "poolguard_store_oldest_unflushed_seconds",
    ] {
        assert_eq!(must(&text, series), 0.0, "{series}");
    }
    assert_eq!(must(&text, "poolguard_feed_entries{feed=\"mining\"}"), 4.0);
    assert_eq!(
        must(&text, "poolguard_feed_entries{feed=\"pool-ips\"}"),
        2.0
    );
    assert_eq!(must(&text, "poolguard_feed_entries{feed=\"sub\"}"), 0.0);

    // A hit opens an incident.
    let from: std::net::IpAddr = "127.0.0.7".parse().expect("ip");
    let m = query_from(
        from,
        bed.dns,
        Proto::Udp,
        &request("pool.minergate.com.", RecordType::A, true),
    )
    .await;
    assert_eq!(addresses(&m), [SINK_V4]);
    bed.running().flush().await.expect("flush");
    let text = bed.metrics_text().await;
    assert_eq!(
        must(
            &text,
            "poolguard_queries_total{action=\"blocked\",protocol=\"udp\"}"
        ),
        1.0
    );
    assert_eq!(
        must(&text, "poolguard_log_rows_written_total{table=\"hits\"}"),
        1.0
    );
    assert_eq!(must(&text, "poolguard_incidents_open"), 1.0);
    assert_eq!(must(&text, "poolguard_incidents_overdue"), 0.0);
    assert_eq!(must(&text, "poolguard_store_oldest_unflushed_seconds"), 0.0);

    // 49 h later the identification deadline (48 h) is missed.
    clock.set(now_ms() + 49 * HOUR);
    let text = bed.metrics_text().await;
    assert_eq!(must(&text, "poolguard_incidents_open"), 1.0);
    assert_eq!(must(&text, "poolguard_incidents_overdue"), 1.0);

    // Quarantined by hand.
    let (status, body) = bed
        .api_post_json(
            "/api/v1/quarantine",
            INVESTIGATOR,
            &json!({"ip": "127.0.0.30", "reason": "mining seen by the NOC"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let text = bed.metrics_text().await;
    assert_eq!(must(&text, "poolguard_quarantined_clients"), 1.0);

    // SQLite is full: hits wait in the spool, and the oldest one's age is what the gauge
    // shows. (A few may still fit in the database's free pages, hence a batch of names.)
    bed.running()
        .store_fault(StoreFault::DiskFull)
        .await
        .expect("fault");
    const N: usize = 150;
    let before_query = now_ms();
    for i in 0..N {
        let m = query_from(
            from,
            bed.dns,
            Proto::Udp,
            &request(&format!("full{i}.moneroocean.stream."), RecordType::A, true),
        )
        .await;
        assert_eq!(addresses(&m), [SINK_V4]);
    }
    let after_query = now_ms();
    // Bounded wait for the writer's failed batch to reach the spool.
    let mut oldest = 0;
    for _ in 0..500 {
        let h = bed.healthz().await.1;
        oldest = h["store_writer"]["oldest_unflushed_ms"]
            .as_i64()
            .unwrap_or(0);
        if h["store_writer"]["spool_bytes"].as_u64().unwrap_or(0) > 0 && oldest > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        (before_query..=after_query).contains(&oldest),
        "oldest unflushed {oldest} is the hit's time, in {before_query}..={after_query}"
    );
    let before_scrape = now_ms();
    let text = bed.metrics_text().await;
    let after_scrape = now_ms();
    assert!(must(&text, "poolguard_store_spool_bytes") > 0.0);
    let age = must(&text, "poolguard_store_oldest_unflushed_seconds");
    let (lo, hi) = (
        (before_scrape - oldest) as f64 / 1000.0,
        (after_scrape - oldest) as f64 / 1000.0,
    );
    assert!(
        age >= lo - 0.001 && age <= hi + 0.001,
        "age {age} not in {lo}..={hi}"
    );

    // Healed and replayed: nothing waits.
    bed.running()
        .store_fault(StoreFault::Heal)
        .await
        .expect("heal");
    bed.running().flush().await.expect("flush");
    let h = bed.healthz().await.1;
    assert_eq!(h["store_writer"]["oldest_unflushed_ms"], 0, "{h}");
    let text = bed.metrics_text().await;
    assert_eq!(must(&text, "poolguard_store_oldest_unflushed_seconds"), 0.0);
    assert_eq!(must(&text, "poolguard_store_spool_bytes"), 0.0);
    assert_eq!(
        must(&text, "poolguard_log_rows_written_total{table=\"hits\"}"),
        1.0 + N as f64
    );
    bed.shutdown().await;
}
