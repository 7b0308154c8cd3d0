//! Crash safety: a writer process under load is killed with SIGKILL; the database must open
//! cleanly, pass `integrity_check`, and hold an unbroken prefix of what was submitted (only the
//! batch in flight may be missing — never a hole, never a torn row).
//!
//! The writer runs in a child process: this same test binary re-executed with the ignored test
//! `crash_child`, which writes until it is killed.

mod api_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use api_support::{T0, event};
use poolguard::clients::Ledger;
use poolguard::config::StoreConfig;
use poolguard::record::Outcome;
use poolguard::store::read::Table;
use poolguard::store::{self, Store, blocks};

const DB_ENV: &str = "POOLGUARD_CRASH_TEST_DB";

/// The child: writes hits with consecutive timestamps as fast as the writer takes them.
#[test]
#[ignore = "run only as the child of crash_leaves_a_consistent_prefix"]
fn crash_child() {
    let Some(path) = std::env::var_os(DB_ENV) else {
        return;
    };
    let cfg = StoreConfig {
        path: path.into(),
        batch_size: 500,
        flush_interval_ms: 5,
        query_retention_days: 36_500,
        hit_retention_days: 36_500,
        ..StoreConfig::default()
    };
    let store = store::open(&cfg).expect("child opens store");
    let (sink, writer) =
        store::writer::spawn(&store, &cfg, Ledger::empty().shared()).expect("writer");
    let health = writer.health();
    let mut i: i64 = 0;
    loop {
        // Hits: never dropped, so every submitted row is accounted for.
        sink.submit(event(
            T0 + i,
            "10.20.3.7:1",
            "pool.minexmr.com",
            "A",
            Outcome::Blocked,
            Some("mining"),
        ));
        i += 1;
        // Keep the backlog bounded (the parent kills us at an arbitrary point anyway).
        while i - health.status().hits_written as i64 > 5_000 {
            std::thread::yield_now();
        }
    }
}

fn committed(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .ok()
        .and_then(|c| blocks::total_rows(&c, Table::Hits).ok())
        .unwrap_or(0)
}

#[test]
fn crash_leaves_a_consistent_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crash.db");
    // Create the schema first so the parent can watch progress.
    Store::open(&path).expect("create");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child", "--ignored", "--nocapture"])
        .env(DB_ENV, &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    // Poll (bounded) until the child has committed a good number of batches.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = 0;
    while seen < 20_000 {
        assert!(
            Instant::now() < deadline,
            "child wrote only {seen} rows in 120 s"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("child exited early: {status}");
        }
        seen = committed(&path);
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on Unix.
    child.wait().expect("reap");

    let store = Store::open(&path).expect("database opens after a crash");
    let conn = store.write_connection().expect("conn");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
    let hits = blocks::all_rows(&conn, Table::Hits).expect("hits read");
    let n = hits.len() as i64;
    let min = hits.iter().map(|r| r.time_ms).min().unwrap_or(0);
    let max = hits.iter().map(|r| r.time_ms).max().unwrap_or(0);
    assert!(
        n >= seen,
        "rows committed before the kill must survive: {n} < {seen}"
    );
    // An unbroken prefix: rows 0..n, nothing missing in the middle.
    assert_eq!((min, max), (T0, T0 + n - 1));
    let distinct = hits
        .iter()
        .map(|r| r.time_ms)
        .collect::<std::collections::HashSet<_>>()
        .len() as i64;
    assert_eq!(distinct, n);
    let q: i64 = conn
        .query_row("SELECT coalesce(sum(rows), 0) FROM query_blocks", [], |r| {
            r.get(0)
        })
        .expect("queries");
    assert_eq!(
        q, n,
        "hit and query rows are written in the same transaction"
    );
}
