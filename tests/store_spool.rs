//! The store cannot be written (disk full, read-only): DNS keeps answering, `/healthz` and
//! `/metrics` show it, hits wait in the bounded spool and all of them reach SQLite once it
//! heals, or after a restart.
//!
//! Failures are simulated with SQLite itself on the writer's own connection (`max_page_count`
//! for a full disk, `query_only` for a read-only database), so the tests behave the same as
//! root, which file permissions would not stop.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Proto, SINK_V4, TestBed, addresses};
use hickory_proto::rr::RecordType;
use poolguard::store::spool::spool_path;
use poolguard::store::writer::StoreFault;
use serde_json::Value;

/// Every poll gives up after this long.
const WAIT: Duration = Duration::from_secs(20);

async fn bed() -> TestBed {
    TestBed::builder()
        .toml("[api]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"data/pg.db\"\nflush_interval_ms = 50\n")
        .start()
        .await
}

fn db_path(bed: &TestBed) -> PathBuf {
    bed.running()
        .store()
        .expect("store enabled")
        .path()
        .to_path_buf()
}

/// Polls `/healthz` until `cond` holds (bounded); returns the last document.
async fn health_until(bed: &TestBed, what: &str, cond: impl Fn(u16, &Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, body) = bed.healthz().await;
        if cond(code, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "waited {WAIT:?} for {what}; last /healthz {code}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn writer(body: &Value) -> &Value {
    &body["store_writer"]
}

/// Sends `n` blocked queries over UDP, each answered with the sinkhole address.
async fn blocked_queries(bed: &TestBed, tag: &str, n: usize) {
    for i in 0..n {
        let name = format!("{tag}{i}.pool.minergate.com.");
        let answer = bed.ask(Proto::Udp, &name, RecordType::A).await;
        assert_eq!(addresses(&answer), vec![SINK_V4], "{name} answered");
    }
}

/// Hit rows for `tag`'s names: (rows, distinct names).
fn hits_for(db: &Path, tag: &str) -> (i64, i64) {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open db");
    let rows: Vec<String> =
        poolguard::store::blocks::all_rows(&conn, poolguard::store::read::Table::Hits)
            .expect("hits read")
            .into_iter()
            .map(|r| r.name)
            .filter(|n| n.starts_with(tag) && n.ends_with(".pool.minergate.com"))
            .collect();
    let distinct = rows.iter().collect::<std::collections::HashSet<_>>().len();
    (rows.len() as i64, distinct as i64)
}

/// The value of a metric line `name{labels} value` in `/metrics` (summed over its labels).
async fn metric(bed: &TestBed, name: &str) -> Option<f64> {
    let text = bed.metrics_text().await;
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_spools_hits_and_replays_every_one_when_space_returns() {
    let bed = bed().await;
    let db = db_path(&bed);
    bed.running()
        .store_fault(StoreFault::DiskFull)
        .await
        .expect("fault applied");
    const N: usize = 150;
    // DNS never waits on the store: every query is answered while SQLite is full.
    blocked_queries(&bed, "full", N).await;

    let body = health_until(&bed, "503 with spooled hits", |code, b| {
        code == 503 && writer(b)["spool_bytes"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert_eq!(body["status"], "degraded");
    let last_error = writer(&body)["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains("full"), "last_error: {last_error}");
    assert!(
        spool_path(&db).exists(),
        "the spool file is next to the database"
    );
    assert!(
        metric(&bed, "poolguard_store_spooled_total")
            .await
            .unwrap_or(0.0)
            > 0.0
    );
    assert!(
        metric(&bed, "poolguard_store_spool_bytes").await.is_some(),
        "the spool gauge is exported"
    );

    bed.running()
        .store_fault(StoreFault::Heal)
        .await
        .expect("healed");
    bed.running().flush().await.expect("flush");
    let body = health_until(&bed, "200 after recovery", |code, b| {
        code == 200 && writer(b)["spool_bytes"] == 0
    })
    .await;
    let w = writer(&body);
    assert_eq!(w["spool_held"], 0);
    assert_eq!(w["hits_dropped"], 0);
    assert!(w["hits_replayed"].as_u64().unwrap_or(0) > 0, "{w}");
    assert_eq!(
        hits_for(&db, "full"),
        (N as i64, N as i64),
        "every hit, once"
    );
    assert!(!spool_path(&db).exists(), "the replayed spool is removed");
    assert!(
        metric(&bed, "poolguard_store_replayed_total")
            .await
            .unwrap_or(0.0)
            > 0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_store_leaves_a_spool_that_the_next_start_replays() {
    let bed = bed().await;
    let db = db_path(&bed);
    bed.running()
        .store_fault(StoreFault::ReadOnly)
        .await
        .expect("fault applied");
    const N: usize = 40;
    blocked_queries(&bed, "ro", N).await;
    let body = health_until(&bed, "every hit spooled", |code, b| {
        code == 503 && writer(b)["hits_spooled"].as_u64() == Some(N as u64)
    })
    .await;
    let last_error = writer(&body)["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains("readonly"), "last_error: {last_error}");
    assert_eq!(hits_for(&db, "ro"), (0, 0), "nothing reached SQLite yet");

    // Stop while SQLite still refuses (the hits stay in the spool file), and leave a record
    // torn by a crash mid-append at its end: the good records must replay, the tail is cut.
    let spool = spool_path(&db);
    let bed = bed
        .restart_after(|_| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&spool)
                .expect("a spool file was left behind");
            f.write_all(b"{\"t\":1,\"c\":\"127.0.0.1:5")
                .expect("torn tail");
        })
        .await;

    health_until(&bed, "200 after the replay at start", |code, b| {
        code == 200 && writer(b)["spool_bytes"] == 0
    })
    .await;
    assert_eq!(hits_for(&db, "ro"), (N as i64, N as i64), "every hit, once");
    assert!(!spool.exists(), "the replayed spool is removed");
    // And the store works normally afterwards.
    blocked_queries(&bed, "after", 3).await;
    bed.running().flush().await.expect("flush");
    assert_eq!(hits_for(&db, "after"), (3, 3));
}
