//! The store writer as the DNS path sees it: never blocks, never loses a hit, flushes on
//! shutdown; plus retention with an injected clock and schema versioning.

mod api_support;

use api_support::{Harness, T0, event};
use poolguard::config::StoreConfig;
use poolguard::record::{Outcome, Recorder};
use poolguard::store::read::Table;
use poolguard::store::writer::StoreFault;
use poolguard::store::{self, Store, StoreError, blocks, retention};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_every_queued_row() {
    // Nothing would flush on its own: huge batches, an hour-long interval.
    let mut h = Harness::new(|c| {
        c.batch_size = 1_000_000;
        c.flush_interval_ms = 3_600_000;
        c.queue_capacity = 100_000;
    });
    let recorder = Recorder::new(h.sink.clone());
    for i in 0..5_000 {
        let outcome = if i % 10 == 0 {
            Outcome::Blocked
        } else {
            Outcome::Allowed
        };
        recorder.record(event(
            T0 + i,
            "10.20.3.7:53000",
            "pool.minexmr.com",
            "A",
            outcome,
            Some("mining"),
        ));
    }
    let writer = h.writer.take().expect("writer");
    let health = writer.health();
    writer.shutdown().await.expect("shutdown");
    assert_eq!(h.count("queries"), 5_000);
    assert_eq!(h.count("hits"), 500);
    let st = health.status();
    assert!(!st.running);
    assert_eq!(st.rows_dropped, 0);
    // After shutdown the sink refuses politely instead of blocking.
    assert!(!h.sink.submit(event(
        T0,
        "10.0.0.1:1",
        "x.example",
        "A",
        Outcome::Allowed,
        None
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_are_never_dropped_when_the_query_queue_is_full() {
    let mut h = Harness::new(|c| {
        c.batch_size = 10;
        c.queue_capacity = 5;
        c.flush_interval_ms = 3_600_000;
    });
    // Another process holds the write lock: the writer stalls on its first batch.
    let blocker = h.store.write_connection().expect("conn");
    blocker.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let (mut accepted, mut hits) = (0i64, 0i64);
    for i in 0..1_500 {
        if i % 3 == 0 {
            assert!(h.sink.submit(event(
                T0 + i,
                "10.20.3.7:1",
                "pool.minexmr.com",
                "A",
                Outcome::Blocked,
                Some("mining")
            )));
            hits += 1;
        } else if h.sink.submit(event(
            T0 + i,
            "10.20.3.8:1",
            "example.org",
            "A",
            Outcome::Allowed,
            None,
        )) {
            accepted += 1;
        }
    }
    // The writer holds at most one batch plus the queue's budget of ordinary rows.
    assert!(accepted <= 15, "accepted {accepted}");
    let writer = h.writer.take().expect("writer");
    let health = writer.health();
    assert_eq!(health.status().rows_dropped as i64, 1_000 - accepted);
    blocker.execute_batch("COMMIT").expect("unlock");
    writer.shutdown().await.expect("shutdown");
    assert_eq!(h.count("hits"), hits);
    assert_eq!(h.count("queries"), hits + accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_past_the_spool_and_memory_bounds_are_dropped_and_counted() {
    const N: u64 = 60;
    const SPOOL_BYTES: u64 = 2_000; // a handful of hits
    const HELD: usize = 5; // queue_capacity: hits held in memory once the spool is full
    let h = Harness::new(|c| {
        c.batch_size = 10;
        c.queue_capacity = HELD;
        c.flush_interval_ms = 20;
        c.spool_max_bytes = SPOOL_BYTES;
    });
    let writer = h.writer.as_ref().expect("writer");
    writer
        .inject_fault(StoreFault::ReadOnly)
        .await
        .expect("fault");
    for i in 0..N as i64 {
        assert!(h.sink.submit(event(
            T0 + i,
            "10.20.3.7:1",
            "pool.minexmr.com",
            "A",
            Outcome::Blocked,
            Some("mining")
        )));
    }
    let health = writer.health();
    let deadline = Instant::now() + Duration::from_secs(20);
    let st = loop {
        let st = health.status();
        if st.hits_spooled + st.hits_dropped == N {
            break st;
        }
        assert!(Instant::now() < deadline, "hits not all placed: {st:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(!st.healthy);
    assert_eq!(st.spool_held, HELD);
    assert!(
        st.spool_bytes > 0 && st.spool_bytes <= SPOOL_BYTES,
        "{st:?}"
    );
    assert!(st.hits_dropped > 0, "{st:?}");
    let spool = store::spool::spool_path(&h.cfg.path);
    assert!(std::fs::metadata(&spool).expect("spool file").len() <= SPOOL_BYTES);

    writer.inject_fault(StoreFault::Heal).await.expect("heal");
    h.flush().await;
    let after = health.status();
    assert!(after.healthy, "{after:?}");
    assert_eq!(after.hits_dropped, st.hits_dropped, "nothing more lost");
    let kept = st.hits_spooled as i64;
    assert_eq!(h.count("hits"), kept);
    // The oldest hits are the ones kept: loss starts only past spool + memory.
    let c = h.store.write_connection().expect("conn");
    let hits = blocks::all_rows(&c, Table::Hits).expect("hits read");
    let span = (
        hits.iter().map(|r| r.time_ms).min().unwrap_or(0),
        hits.iter().map(|r| r.time_ms).max().unwrap_or(0),
    );
    assert_eq!(span, (T0, T0 + kept - 1));
    assert!(!spool.exists());
}

/// A writer that a flood of a few thousand hits overruns: small batches, a 50-event queue.
fn small_queue(c: &mut StoreConfig) {
    c.batch_size = 100;
    c.queue_capacity = 50;
    c.flush_interval_ms = 20;
}

/// Sends `n` hits (distinct names, increasing times) in one burst, faster than the writer,
/// which naps between drains, takes them.
fn submit_hit_flood(h: &Harness, n: i64) {
    for i in 0..n {
        assert!(h.sink.submit(event(
            T0 + i,
            "10.20.3.7:1",
            &format!("p{i}.minexmr.com"),
            "A",
            Outcome::Blocked,
            Some("mining")
        )));
    }
}

/// A flood of hits faster than SQLite takes them (SQLite healthy): past `queue_capacity`
/// queued hits the writer appends them to the spool instead of holding them in memory, and
/// replays them as it catches up. None is lost, and they arrive in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_flood_deeper_than_the_queue_goes_through_the_spool_and_loses_nothing() {
    const N: i64 = 3_000;
    let h = Harness::new(small_queue);
    // The writer finds far more than 50 hits waiting when it next looks.
    submit_hit_flood(&h, N);
    h.flush().await;
    let writer = h.writer.as_ref().expect("writer");
    let st = writer.health().status();
    assert!(
        st.hits_spooled > 0,
        "the flood went through the spool: {st:?}"
    );
    assert_eq!(st.hits_dropped, 0, "{st:?}");
    assert_eq!(st.hits_queued, 0, "{st:?}");
    assert!(st.healthy, "{st:?}");
    assert_eq!(h.count("hits"), N);
    let c = h.store.write_connection().expect("conn");
    let hits = blocks::all_rows(&c, Table::Hits).expect("hits read");
    let in_order = hits
        .windows(2)
        .filter(|w| w[1].time_ms > w[0].time_ms)
        .count() as i64;
    assert_eq!(in_order, N - 1, "rows are stored in arrival order");
    assert!(!store::spool::spool_path(&h.cfg.path).exists());
}

/// While the DNS path reports a saturated worker, hits skip SQLite and go to the spool (on
/// disk at once); the next flush without saturation indexes every one, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_seen_while_dns_is_saturated_are_spooled_then_indexed() {
    const N: i64 = 40;
    let h = Harness::new(|c| {
        c.batch_size = 1_000;
        c.flush_interval_ms = 3_600_000;
    });
    h.sink.saturated();
    submit_hit_flood(&h, N);
    h.flush().await;
    let st = h.writer.as_ref().expect("writer").health().status();
    assert_eq!(
        st.hits_spooled, N as u64,
        "deferred through the spool: {st:?}"
    );
    assert_eq!(st.hits_replayed, N as u64, "{st:?}");
    assert_eq!((st.hits_dropped, st.spool_bytes), (0, 0), "{st:?}");
    assert_eq!(h.count("hits"), N);
    assert_eq!(h.count("queries"), N, "their query-log rows too");

    // Without the signal, hits are indexed directly.
    submit_hit_flood(&h, N);
    h.flush().await;
    let st = h.writer.as_ref().expect("writer").health().status();
    assert_eq!(st.hits_spooled, N as u64, "{st:?}");
    assert_eq!(h.count("hits"), 2 * N);
}

/// Stopping during a flood does not replay the spool (that could take longer than a service
/// manager waits): the hits stay in the spool file and the next start stores every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_during_a_flood_leaves_the_spool_for_the_next_start() {
    const N: i64 = 3_000;
    let mut h = Harness::new(small_queue);
    submit_hit_flood(&h, N);
    let writer = h.writer.take().expect("writer");
    let health = writer.health();
    writer.shutdown().await.expect("shutdown");
    let st = health.status();
    assert_eq!(st.hits_dropped, 0, "{st:?}");
    assert!(
        st.hits_spooled > 0,
        "the flood went through the spool: {st:?}"
    );

    // Next start: the writer replays the leftover spool before anything else.
    let cfg = h.cfg.clone();
    let store = store::open(&cfg).expect("reopen");
    let (_sink, writer) =
        store::writer::spawn(&store, &cfg, poolguard::clients::Ledger::empty().shared())
            .expect("writer");
    writer.flush().await.expect("flush");
    assert_eq!(h.count("hits"), N, "every hit stored after the restart");
    assert!(!store::spool::spool_path(&cfg.path).exists());
    writer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_queries_false_stores_only_hits() {
    let mut h = Harness::new(|c| c.log_queries = false);
    for i in 0..100 {
        let outcome = if i % 4 == 0 {
            Outcome::IpBlocked
        } else {
            Outcome::Allowed
        };
        assert!(h.sink.submit(event(
            T0 + i,
            "10.20.3.7:1",
            "a.example",
            "A",
            outcome,
            Some("ips")
        )));
    }
    h.stop_writer().await;
    assert_eq!(h.count("queries"), 0);
    assert_eq!(h.count("hits"), 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_is_snapshotted_and_department_is_on_query_rows() {
    let mut h = Harness::new(|_| {});
    h.sink.submit(event(
        T0,
        "10.20.3.7:1",
        "pool.minexmr.com",
        "A",
        Outcome::Blocked,
        Some("mining"),
    ));
    h.sink.submit(event(
        T0 + 1,
        "10.20.200.1:1",
        "example.org",
        "A",
        Outcome::Allowed,
        None,
    ));
    h.flush().await;
    // Ledger edit after the hit: the rig moved to Chemistry.
    h.ledger.store(std::sync::Arc::new(api_support::ledger(
        "network,mac,asset,kind,location,department,owner,contact\n10.20.3.7,,rig-7,,Lab 9,Chemistry,李娜,\n",
    )));
    h.sink.submit(event(
        T0 + 2,
        "10.20.3.7:1",
        "pool.minexmr.com",
        "A",
        Outcome::Blocked,
        Some("mining"),
    ));
    h.stop_writer().await;
    let conn = h.store.write_connection().expect("conn");
    let rows: Vec<(String, String, Option<String>)> = blocks::all_rows(&conn, Table::Hits)
        .expect("hits")
        .into_iter()
        .map(|r| {
            let i = r.identity.unwrap_or_default();
            (
                i.owner.unwrap_or_default(),
                i.department.unwrap_or_default(),
                i.network,
            )
        })
        .collect();
    assert_eq!(
        rows[0],
        ("张伟".into(), "Physics".into(), Some("10.20.3.7/32".into()))
    );
    assert_eq!(
        rows[1],
        (
            "李娜".into(),
            "Chemistry".into(),
            Some("10.20.3.7/32".into())
        )
    );
    let page = poolguard::store::read::list(
        &conn,
        poolguard::store::Table::Queries,
        &poolguard::store::ListFilter {
            limit: 10,
            ..Default::default()
        },
    )
    .expect("queries");
    // Oldest first, like the rows were written.
    let depts: Vec<Option<String>> = page
        .rows
        .iter()
        .rev()
        .map(|r| r.department.clone())
        .collect();
    assert_eq!(
        depts,
        vec![
            Some("Physics".into()),
            Some("Library".into()),
            Some("Chemistry".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_in_batches_with_an_injected_now() {
    let mut h = Harness::new(|_| {});
    let day = 86_400_000i64;
    let now = T0 + 500 * day;
    // Queries: 30 at 10 days old, 20 at 3 days old. Hits: 12 at 401 days old, 8 at 399.
    for i in 0..30 {
        h.sink.submit(event(
            now - 10 * day + i,
            "10.0.0.1:1",
            "a.example",
            "A",
            Outcome::Allowed,
            None,
        ));
    }
    for i in 0..20 {
        h.sink.submit(event(
            now - 3 * day + i,
            "10.0.0.1:1",
            "a.example",
            "A",
            Outcome::Allowed,
            None,
        ));
    }
    for i in 0..12 {
        h.sink.submit(event(
            now - 401 * day + i,
            "10.0.0.1:1",
            "b.example",
            "A",
            Outcome::Blocked,
            Some("f"),
        ));
    }
    for i in 0..8 {
        h.sink.submit(event(
            now - 399 * day + i,
            "10.0.0.1:1",
            "b.example",
            "A",
            Outcome::Blocked,
            Some("f"),
        ));
    }
    h.stop_writer().await;
    let cfg = StoreConfig {
        query_retention_days: 7,
        hit_retention_days: 400,
        ..h.cfg.clone()
    };
    // Hits also appear in the query log (20 of them, all > 7 days old).
    assert_eq!(h.count("queries"), 70);
    let conn = h.store.write_connection().expect("conn");
    // A tiny batch proves the loop deletes in several small transactions.
    let report = retention::prune(&conn, &cfg, now, 7).expect("prune");
    assert_eq!(report.queries_deleted, 50);
    assert_eq!(report.hits_deleted, 12);
    assert_eq!(h.count("queries"), 20);
    assert_eq!(h.count("hits"), 8);
    // Idempotent: nothing left to delete at the same now; a later now takes the rest.
    assert_eq!(h.store.prune(&cfg, now).expect("prune").queries_deleted, 0);
    let later = h.store.prune(&cfg, now + 30 * day).expect("prune");
    assert_eq!((later.queries_deleted, later.hits_deleted), (20, 8));
}

#[test]
fn schema_is_versioned_and_newer_schemas_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p.db");
    let s = Store::open(&path).expect("open");
    let conn = s.write_connection().expect("conn");
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(v, store::schema::SCHEMA_VERSION);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
    drop(conn);
    // Re-opening is a no-op migration.
    Store::open(&path).expect("reopen");
    let conn = s.write_connection().expect("conn");
    conn.pragma_update(None, "user_version", 99).expect("bump");
    drop(conn);
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::NewerSchema { found: 99, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_reads_are_interrupted_and_the_pool_recovers() {
    let h = Harness::new(|_| {});
    h.store
        .set_read_time_limit(std::time::Duration::from_millis(200));
    let r = h
        .store
        .read(|c| {
            // Never ends on its own.
            let n: i64 = c.query_row(
                "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r",
                [],
                |r| r.get(0),
            )?;
            Ok(n)
        })
        .await;
    assert!(matches!(r, Err(StoreError::Timeout(_))), "{r:?}");
    // The same pooled connections keep working afterwards.
    for _ in 0..8 {
        let one: i64 = h
            .store
            .read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get(0))?))
            .await
            .expect("read");
        assert_eq!(one, 1);
    }
}

/// The writer thread runs as `SCHED_BATCH` (same CPU share, its wake-ups do not preempt a DNS
/// worker mid-batch): `/proc/self/task/<tid>/stat` field 41 is the scheduling policy.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_thread_is_scheduled_as_batch_work() {
    let mut h = Harness::new(|_| {});
    h.flush().await;
    let mut policies = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("tasks") {
        let path = task.expect("task").path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != "poolguard-store" {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the parenthesised name, which may contain spaces: field 3 is the first.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let policy: Option<i32> = after
            .split_whitespace()
            .nth(41 - 3)
            .and_then(|p| p.parse().ok());
        policies.push(policy);
    }
    assert!(!policies.is_empty(), "a writer thread is running");
    assert!(
        policies.iter().all(|p| *p == Some(libc::SCHED_BATCH)),
        "writer threads' policies: {policies:?}"
    );
    h.stop_writer().await;
}

/// The writer's hourly upkeep (it also runs at start) merges the small blocks a quiet period
/// leaves, a short transaction at a time, keeping every row; the newest block stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_compacts_small_settled_blocks() {
    let mut h = Harness::new(|_| {});
    // Written while no writer runs, as a quiet period leaves them.
    h.stop_writer().await;
    {
        let mut conn = h.store.write_connection().expect("conn");
        for b in 0..50 {
            let batch: Vec<_> = (0..10)
                .map(|i| {
                    event(
                        T0 + b * 1000 + i,
                        "10.20.3.7:53000",
                        "www.example.com",
                        "A",
                        Outcome::Allowed,
                        None,
                    )
                })
                .collect();
            let tx = conn.transaction().expect("tx");
            store::writer::insert_events(&tx, &batch, &h.ledger.load(), true).expect("insert");
            tx.commit().expect("commit");
        }
    }
    let blocks = |h: &Harness| -> i64 {
        h.store
            .write_connection()
            .expect("conn")
            .query_row("SELECT count(*) FROM query_blocks", [], |r| r.get(0))
            .expect("count")
    };
    assert_eq!(blocks(&h), 50);
    let (_sink, writer) = store::writer::spawn(&h.store, &h.cfg, h.ledger.clone()).expect("writer");
    let health = writer.health();
    // Upkeep steps run whenever the writer is idle; each flush is a round trip to it.
    for _ in 0..1000 {
        if health.status().blocks_compacted == 48 {
            break;
        }
        writer.flush().await.expect("flush");
    }
    assert_eq!(health.status().blocks_compacted, 48, "49 blocks into one");
    assert_eq!(blocks(&h), 2);
    assert_eq!(h.count("queries"), 500);
    writer.shutdown().await.expect("shutdown");
}

/// The writer groups settled query-log blocks by client (`blocks::group`; it also runs at
/// start), leaving blocks under 1,024 rows to compaction; every row keeps its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_groups_settled_blocks_by_client() {
    let mut h = Harness::new(|_| {});
    h.stop_writer().await;
    {
        let mut conn = h.store.write_connection().expect("conn");
        // Three busy blocks of 1,100 rows from 50 clients, and a small one.
        for (b, rows) in [(0i64, 1100i64), (1, 1100), (2, 1100), (3, 10)] {
            let batch: Vec<_> = (0..rows)
                .map(|i| {
                    event(
                        T0 + b * 10_000 + i,
                        &format!("10.20.3.{}:53000", i % 50),
                        "www.example.com",
                        "A",
                        Outcome::Allowed,
                        None,
                    )
                })
                .collect();
            let tx = conn.transaction().expect("tx");
            store::writer::insert_events(&tx, &batch, &h.ledger.load(), true).expect("insert");
            tx.commit().expect("commit");
        }
    }
    let rows = |h: &Harness| {
        let conn = h.store.write_connection().expect("conn");
        blocks::all_rows(&conn, Table::Queries).expect("rows")
    };
    let before = rows(&h);
    let (_sink, writer) = store::writer::spawn(&h.store, &h.cfg, h.ledger.clone()).expect("writer");
    let health = writer.health();
    // Upkeep steps run whenever the writer is idle; each flush is a round trip to it.
    for _ in 0..1000 {
        if health.status().blocks_grouped == 3 {
            break;
        }
        writer.flush().await.expect("flush");
    }
    assert_eq!(health.status().blocks_grouped, 3, "the three busy blocks");
    let grouped: Vec<bool> = h
        .store
        .write_connection()
        .expect("conn")
        .prepare("SELECT data FROM query_blocks ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .expect("query")
        .map(|d| {
            blocks::codec::Block::parse(&d.expect("data"))
                .expect("parse")
                .is_grouped()
        })
        .collect();
    assert_eq!(grouped, [true, true, true, false]);
    assert_eq!(rows(&h), before, "every row keeps its id and content");
    writer.shutdown().await.expect("shutdown");
}

/// An exact-name lookup answers the hours not sealed yet from the names the writer hands
/// over after each commit (`store::hour_names`): a name written after the first lookup is
/// found, and a name never asked is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_lookups_find_rows_the_writer_handed_over() {
    use poolguard::store::{EvidenceStore, ListFilter, NameFilter};
    let h = Harness::new(|_| {});
    // Now, so the hour is the one under way and not sealed by the writer's upkeep.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let write = |name: &str, n: i64| {
        for i in 0..n {
            assert!(h.sink.submit(event(
                now + i,
                "10.20.3.7:53000",
                name,
                "A",
                Outcome::Allowed,
                None,
            )));
        }
    };
    let named = |name: &'static str| {
        h.store.list_evidence(
            Table::Queries,
            ListFilter {
                name: Some(NameFilter::Exact(name.into())),
                limit: 100,
                ..Default::default()
            },
        )
    };
    write("first.example", 30);
    h.flush().await;
    // The first lookup learns the hour's names from its blocks.
    assert_eq!(named("first.example").await.expect("list").items.len(), 30);
    assert!(named("later.example").await.expect("list").items.is_empty());
    // Written after: the writer hands their names over after its commit, so the next lookup
    // decodes nothing; a wrong key there would hide these rows.
    write("later.example", 7);
    h.flush().await;
    let later = named("later.example").await.expect("list").items;
    assert_eq!(later.len(), 7);
    assert!(later.iter().all(|r| r.name == "later.example"));
    assert!(named("never.example").await.expect("list").items.is_empty());
    assert_eq!(named("first.example").await.expect("list").items.len(), 30);
}
