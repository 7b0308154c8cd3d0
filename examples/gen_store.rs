//! Builds a large evidence store for load tests, then (with `--measure`) serves the real API on
//! 127.0.0.1 and reports list latency percentiles for the filters staff use most.
//!
//! ```text
//! cargo run --release --example gen_store -- /tmp/pg10m.db 10000000 [--batch 4096]
//! cargo run --release --example gen_store -- /tmp/pg10m.db --measure
//! cargo run --release --example gen_store -- /tmp/pg10m.db --compact
//! cargo run --release --example gen_store -- /tmp/pg10m.db --rollup
//! cargo run --release --example gen_store -- /tmp/pg10m.db --group
//! cargo run --release --example gen_store -- /tmp/pg10m.db --upkeep-pauses
//! ```
//!
//! `--batch N`: rows per writer batch, so per query-log block (default 4096, a busy writer's
//! batch; a quiet campus flushes a few hundred rows per interval). `--compact`: the writer's
//! block compaction (blocks settled 10 minutes, in hours rolled up), run to the end (a
//! generated store is compacted after its rollup unless `GEN_STORE_NO_COMPACT` is set). `--rollup`: what the writer does
//! after an upgrade, rolling up the stored hours (`store::rollup`) in steps of its time budget (`store::rollup::STEP_BUDGET`),
//! each step timed (a generated store is rolled up as its last stage anyway). `--group`: the
//! writer's grouping of settled query-log blocks by client (`store::blocks::group`), in steps
//! of the same budget, each timed, with the query log's bytes before and after (a generated
//! store is grouped after its rollup unless `GEN_STORE_NO_GROUP` is set).
//! `--upkeep-pauses`: retention of the oldest day, then one compaction pass, as the writer's
//! upkeep runs them (one transaction per step), each step timed: the writer's longest pause.
//! `--measure` takes `GEN_STORE_REQUESTS` (per kind, default 200), `GEN_STORE_ONLY` (labels
//! containing one of these, comma-separated) and `GEN_STORE_WARMUP` (requests of each kind
//! timed apart first).
//!
//! Generation writes the writer's own rows (`store::writer::insert_events`) but as a bulk load:
//! tables without indexes, journal off, one transaction per million rows, indexes built at the
//! end (several times faster than inserting into indexed tables). The data resembles a campus: 20 000 clients in 10.0.0.0/8 spread over
//! 200 departments, 50 000 names of which 5 % are under mining-pool suffixes, 7 days of time.

#[path = "support/api_timing.rs"]
mod api_timing;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_timing::{Gen, pct};
use poolguard::clients::Ledger;
use poolguard::record::{Outcome, QueryEvent, Transport};
use poolguard::store::{self, Store, schema};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CLIENTS: u32 = 20_000;
const NAMES: u32 = 50_000;
const DEPARTMENTS: u32 = 200;

fn client_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0A00_0000 | ((i / 250) << 8) | (i % 250 + 1))
}

fn name(i: u32) -> String {
    if i.is_multiple_of(20) {
        format!("w{}.pool{}.minexmr.com", i, i % 37)
    } else {
        format!("host{}.site{}.example", i, i % 997)
    }
}

fn generate(
    path: &std::path::Path,
    rows: u64,
    batch: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let _ = std::fs::remove_file(path);
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144; PRAGMA temp_store=MEMORY;",
    )?;
    schema::create_tables_without_indexes(&conn)?;
    let mut rng = StdRng::seed_from_u64(42);
    // One ledger row per client, so hits carry a realistic identity snapshot.
    let mut csv = String::from("network,mac,asset,kind,location,department,owner,contact\n");
    for c in 0..CLIENTS {
        csv.push_str(&format!(
            "{},,pc-{c},workstation,Building {},Dept {},Owner {c},owner{c}@example.edu\n",
            client_ip(c),
            c % 40,
            c % DEPARTMENTS
        ));
    }
    let (ledger, _) = Ledger::from_reader(csv.as_bytes(), std::path::Path::new("generated"))?;
    // Four lists, as a campus with the shipped feed and a few of its own: `/stats` ranks them.
    let feed_names: [Arc<str>; 4] = ["mining", "coinblocker", "nocoin", "campus"].map(Arc::from);
    let rule_text: Arc<str> = Arc::from("minexmr.com");
    let now = chrono::Utc::now().timestamp_millis();
    let span = 6 * 86_400_000i64;
    let start = now - span;
    let step = span as f64 / rows as f64;
    let t0 = Instant::now();
    let mut hits = 0u64;
    let chunk = 1_000_000u64;
    let mut done = 0u64;
    while done < rows {
        let tx = conn.unchecked_transaction()?;
        // One query-log block per writer batch.
        let mut events = Vec::with_capacity(batch);
        for i in done..(done + chunk).min(rows) {
            let c = rng.random_range(0..CLIENTS);
            let n = rng.random_range(0..NAMES);
            let nm = name(n);
            let hit = n.is_multiple_of(20);
            let (outcome, feed, rule, rcode) = if hit {
                (
                    Outcome::Blocked,
                    Some(feed_names[(n / 20 % 7 % 4) as usize].clone()),
                    Some(rule_text.clone()),
                    "NXDOMAIN",
                )
            } else {
                (Outcome::Allowed, None, None, "NOERROR")
            };
            events.push(QueryEvent {
                time_ms: start + (i as f64 * step) as i64,
                client: SocketAddr::new(IpAddr::V4(client_ip(c)), 40000 + (i % 20000) as u16),
                transport: Transport::Udp,
                name: nm.into(),
                qtype: if i.is_multiple_of(3) { "AAAA" } else { "A" }.into(),
                outcome,
                feed,
                rule,
                rcode,
                answer: "".into(),
                latency_us: 300 + (i % 5000) as u32,
                upstream: (!hit).then(|| "9.9.9.9:53".into()),
            });
            if events.len() == batch {
                hits += store::writer::insert_events(&tx, &events, &ledger, true)?.1;
                events.clear();
            }
        }
        hits += store::writer::insert_events(&tx, &events, &ledger, true)?.1;
        tx.commit()?;
        done = (done + chunk).min(rows);
        eprintln!("{done} rows ({hits} hits) in {:.1?}", t0.elapsed());
    }
    let ti = Instant::now();
    schema::create_indexes(&conn)?;
    conn.execute_batch("ANALYZE; PRAGMA journal_mode=WAL;")?;
    eprintln!(
        "indexes in {:.1?}; total {:.1?}; {} MiB",
        ti.elapsed(),
        t0.elapsed(),
        std::fs::metadata(path)?.len() >> 20
    );
    // The writer rolls up each hour as it ends, compacts small settled blocks (the hits'
    // ~200-row blocks here) and groups settled blocks; a bulk load does all three at the end.
    drop(conn);
    roll_up(path)?;
    if std::env::var_os("GEN_STORE_NO_COMPACT").is_none() {
        compact(path)?;
    }
    if std::env::var_os("GEN_STORE_NO_GROUP").is_none() {
        group(path)?;
    }
    Ok(())
}

/// Merges small settled blocks as the writer's compaction would: blocks that ended 10 minutes
/// ago and in hours already rolled up.
fn compact(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(path)?;
    let conn = store.write_connection()?;
    writer_pragmas(&conn)?;
    let mut settled = chrono::Utc::now().timestamp_millis() - 10 * 60 * 1000;
    for table in [store::Table::Queries, store::Table::Hits] {
        let sealed = store::rollup::sealed_hour(&conn, table)?.unwrap_or(i64::MIN);
        settled = settled.min(sealed.saturating_mul(store::rollup::HOUR_MS));
    }
    let t = Instant::now();
    let removed = store::blocks::compact::run(&conn, settled)?;
    eprintln!("compaction removed {removed} blocks in {:.1?}", t.elapsed());
    Ok(())
}

/// Groups every settled query-log block by client as the writer's upkeep would, in steps of
/// its time budget; prints the steps, the longest and the query log's size before and after.
fn group(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(path)?;
    let conn = store.write_connection()?;
    writer_pragmas(&conn)?;
    // `length()` of a blob reads its size from the record header, not the blob.
    let bytes = |conn: &rusqlite::Connection| -> Result<i64, rusqlite::Error> {
        conn.query_row(
            "SELECT coalesce(sum(length(data)), 0) FROM query_blocks",
            [],
            |r| r.get(0),
        )
    };
    let before = bytes(&conn)?;
    let settled = chrono::Utc::now().timestamp_millis() - store::blocks::group::SETTLE_MS;
    let (t0, mut times, mut grouped) = (Instant::now(), Vec::new(), 0);
    loop {
        let t = Instant::now();
        let tx = conn.unchecked_transaction()?;
        let step = store::blocks::group::step(
            &tx,
            settled,
            store::blocks::group::MIN_ROWS,
            store::rollup::STEP_BUDGET,
        )?;
        tx.commit()?;
        times.push(t.elapsed());
        grouped += step.grouped;
        if !step.more {
            break;
        }
    }
    let (steps, elapsed) = (times.len(), t0.elapsed());
    let (over, p99, longest) = pauses(&mut times);
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    let after = bytes(&conn)?;
    let rows: i64 = conn.query_row("SELECT coalesce(sum(rows), 0) FROM query_blocks", [], |r| {
        r.get(0)
    })?;
    let per_row = |b: i64| b as f64 / rows.max(1) as f64;
    eprintln!(
        "grouped {grouped} blocks in {elapsed:.1?}: {steps} steps, p99 {p99:.1?}, longest \
         {longest:.1?}, {over} over 50 ms; query log {:.1} -> {:.1} bytes a row",
        per_row(before),
        per_row(after),
    );
    Ok(())
}

/// Rolls up every stored hour as the writer's upkeep would, in steps of its time budget (`store::rollup::STEP_BUDGET`);
/// prints the steps, the longest and the rows written.
fn roll_up(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(path)?;
    let conn = store.write_connection()?;
    writer_pragmas(&conn)?;
    let now = chrono::Utc::now().timestamp_millis();
    let t0 = Instant::now();
    let mut times = Vec::new();
    let mut sealer = store::rollup::Sealer::default();
    loop {
        let t = Instant::now();
        let more = sealer.catch_up(&conn, now, store::rollup::STEP_BUDGET)?;
        times.push(t.elapsed());
        if !more {
            break;
        }
    }
    let (steps, elapsed) = (times.len(), t0.elapsed());
    // Which call was the longest: the first pays the one-time start (every block's span).
    let at = times
        .iter()
        .enumerate()
        .max_by_key(|(_, t)| **t)
        .map_or(0, |(i, _)| i + 1);
    let (over, p99, longest) = pauses(&mut times);
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    let count =
        |sql: &str| -> Result<i64, rusqlite::Error> { conn.query_row(sql, [], |r| r.get(0)) };
    eprintln!(
        "rolled up in {elapsed:.1?}: {steps} steps, p99 {p99:.1?}, longest {longest:.1?} \
         (call {at}), {over} over 50 ms; {} rollup rows, {} postings rows",
        count("SELECT count(*) FROM rollups")?,
        count("SELECT count(*) FROM client_days")?,
    );
    Ok(())
}

/// How many of a run's step `times` took over 50 ms (the issue's pause target), their p99
/// and the longest.
fn pauses(times: &mut [Duration]) -> (usize, Duration, Duration) {
    let over = times
        .iter()
        .filter(|t| **t > Duration::from_millis(50))
        .count();
    (over, pct(times, 0.99), pct(times, 1.0))
}

/// The writer's own connection settings (`store::writer`): its WAL checkpoints run inside its
/// commits. `GEN_STORE_NO_CHECKPOINT=1` turns them off, to time the steps' own work apart from
/// the checkpoint that whichever commit crosses 4,000 WAL pages pays. Copy a store and `sync`
/// before timing it: the first checkpoint's fsync otherwise writes back the copy's dirty pages
/// (steps of 0.3–1.2 s that are not the store's).
fn writer_pragmas(conn: &rusqlite::Connection) -> Result<(), rusqlite::Error> {
    let pages = if std::env::var_os("GEN_STORE_NO_CHECKPOINT").is_some() {
        0
    } else {
        4000
    };
    conn.execute_batch(&format!(
        "PRAGMA cache_size=-32768; PRAGMA wal_autocheckpoint={pages};"
    ))
}

/// Retention of the oldest stored day, then a compaction pass, one writer transaction per
/// step as the upkeep runs them; prints each phase's steps and longest step.
fn upkeep_pauses(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(path)?;
    let conn = store.write_connection()?;
    writer_pragmas(&conn)?;
    let oldest: i64 = conn.query_row("SELECT min(first_ms) FROM query_blocks", [], |r| r.get(0))?;
    let cut = oldest + 86_400_000;
    let report = |phase: &str,
                  mut step: Box<dyn FnMut() -> Result<bool, store::StoreError> + '_>|
     -> Result<(), Box<dyn std::error::Error>> {
        let t0 = Instant::now();
        let mut times = Vec::new();
        loop {
            let t = Instant::now();
            let more = step()?;
            times.push(t.elapsed());
            if !more {
                break;
            }
        }
        let (steps, elapsed) = (times.len(), t0.elapsed());
        let (over, p99, longest) = pauses(&mut times);
        eprintln!(
            "{phase}: {steps} steps in {elapsed:.1?}, p99 {p99:.1?}, longest {longest:.1?}, \
             {over} over 50 ms"
        );
        Ok(())
    };
    report(
        "retention of one day",
        Box::new(|| {
            store::retention::step(&conn, cut, cut, i64::MAX, store::retention::DELETE_BLOCKS)
                .map(|(_, _, more)| more)
        }),
    )?;
    let conn = &conn;
    for table in [store::Table::Queries, store::Table::Hits] {
        let mut at = Some(store::blocks::compact::Cursor::START);
        let mut merged: Option<i64> = None;
        report(
            &format!("compaction pass ({table:?})"),
            // As the writer runs it: a merge, then grouping the merged block, each one step.
            Box::new(move || {
                let tx = conn.unchecked_transaction()?;
                if let Some(id) = merged.take() {
                    store::blocks::compact::group_merged(&tx, table, id)?;
                } else if let Some(from) = at {
                    let s = store::blocks::compact::step(&tx, table, i64::MAX, i64::MAX, from)?;
                    (at, merged) = (s.next, s.merged);
                }
                tx.commit()?;
                Ok(at.is_some() || merged.is_some())
            }),
        )?;
    }
    Ok(())
}

async fn measure(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let served = api_timing::serve(Store::open(path)?).await?;
    let mut rng = StdRng::seed_from_u64(7);
    let cases: Vec<(&str, Gen)> = vec![
        (
            "/hits?client=<ip>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/hits?client={}",
                    client_ip(r.random_range(0..CLIENTS))
                )
            }),
        ),
        (
            "/queries?client=<ip>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/queries?client={}",
                    client_ip(r.random_range(0..CLIENTS))
                )
            }),
        ),
        (
            "/hits?name=<exact>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/hits?name={}",
                    name(r.random_range(0..NAMES / 20) * 20)
                )
            }),
        ),
        (
            "/queries?name=<exact>",
            Box::new(|r: &mut StdRng| {
                format!("/api/v1/queries?name={}", name(r.random_range(0..NAMES)))
            }),
        ),
        (
            // A name nobody asked for (a pool domain just added to a feed): every block's
            // filter in the window is read.
            "/queries?name=<absent>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/queries?name=w{}.absent.example",
                    r.random_range(0..NAMES)
                )
            }),
        ),
        (
            "/hits?name=<absent>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/hits?name=w{}.absent.example",
                    r.random_range(0..NAMES)
                )
            }),
        ),
        (
            "/hits?name=*.<suffix>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/hits?name=*.pool{}.minexmr.com",
                    r.random_range(0..37)
                )
            }),
        ),
        (
            "/queries?name=*.<suffix>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/queries?name=*.site{}.example",
                    r.random_range(0..997)
                )
            }),
        ),
        (
            // A client that never asked: the walk reaches the end of the log (worst case).
            "/queries?client=<absent>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/queries?client=172.16.{}.{}",
                    r.random_range(0..250),
                    r.random_range(1..250)
                )
            }),
        ),
        (
            "/hits?client=<absent>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/hits?client=172.16.{}.{}",
                    r.random_range(0..250),
                    r.random_range(1..250)
                )
            }),
        ),
        (
            "/queries?client=<ip>&limit=1000",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/queries?client={}&limit=1000",
                    client_ip(r.random_range(0..CLIENTS))
                )
            }),
        ),
        (
            // The same answer at every size: at 10 M rows a client has ~25 hits and ~500
            // queries, so these pages are full at 10 M, 100 M and beyond (the unbounded
            // lists above return more rows as the log grows).
            "/hits?client=<ip>&limit=20",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/hits?client={}&limit=20",
                    client_ip(r.random_range(0..CLIENTS))
                )
            }),
        ),
        (
            "/queries?client=<ip>&limit=400",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/queries?client={}&limit=400",
                    client_ip(r.random_range(0..CLIENTS))
                )
            }),
        ),
        (
            "/queries?client=<a /24>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/queries?client=10.0.{}.0/24",
                    r.random_range(0..CLIENTS / 250)
                )
            }),
        ),
        (
            "/hits?client=<a /24>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/hits?client=10.0.{}.0/24",
                    r.random_range(0..CLIENTS / 250)
                )
            }),
        ),
        (
            "/queries?client=10.0.0.0/8 (all)",
            Box::new(|_: &mut StdRng| "/api/v1/queries?client=10.0.0.0/8".to_string()),
        ),
        (
            "/queries?name=*.example (95 %)",
            Box::new(|_: &mut StdRng| "/api/v1/queries?name=*.example".to_string()),
        ),
        (
            "/queries?department=<d>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/queries?department=Dept%20{}",
                    r.random_range(0..DEPARTMENTS)
                )
            }),
        ),
        (
            "/stats (last 24 h)",
            Box::new(|_: &mut StdRng| "/api/v1/stats".to_string()),
        ),
        (
            // The default window starts at the top of an hour; this one at the current minute,
            // so the partial hour at its start is read from the blocks.
            "/stats (24 h from mid-hour)",
            Box::new(|_: &mut StdRng| {
                let since = chrono::Utc::now().timestamp_millis() - 86_400_000;
                format!("/api/v1/stats?since={}", poolguard::model::rfc3339(since))
            }),
        ),
        (
            "/stats (last 7 d)",
            Box::new(|_: &mut StdRng| {
                let since = chrono::Utc::now().timestamp_millis() - 7 * 86_400_000;
                format!("/api/v1/stats?since={}", poolguard::model::rfc3339(since))
            }),
        ),
        (
            "/stats (last 30 d)",
            Box::new(|_: &mut StdRng| {
                let since = chrono::Utc::now().timestamp_millis() - 30 * 86_400_000;
                format!("/api/v1/stats?since={}", poolguard::model::rfc3339(since))
            }),
        ),
        (
            "/hits (no filter)",
            Box::new(|_: &mut StdRng| "/api/v1/hits".to_string()),
        ),
        (
            "/queries?client=<ip>&format=csv",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/queries?client={}&format=csv",
                    client_ip(r.random_range(0..CLIENTS))
                )
            }),
        ),
    ];
    let n: usize = std::env::var("GEN_STORE_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    api_timing::header();
    // `GEN_STORE_ONLY=stats,absent`: only the requests whose label contains one of these.
    let only: Vec<String> = std::env::var("GEN_STORE_ONLY")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    // `GEN_STORE_WARMUP=N`: N requests of each kind first, timed on a line of their own, so
    // the timed ones see a server that has been answering (caches filled, as in service).
    let warmup: usize = std::env::var("GEN_STORE_WARMUP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for (label, make) in &cases {
        if !only.is_empty() && !only.iter().any(|o| label.contains(o.as_str())) {
            continue;
        }
        if warmup > 0 {
            let first = format!("{label} (first {warmup})");
            served.time(&first, make, warmup, &mut rng).await?;
        }
        served.time(label, make, n, &mut rng).await?;
    }
    served.stop().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = std::path::PathBuf::from(
        args.first()
            .ok_or("usage: gen_store <db> [rows] [--measure]")?,
    );
    if args.iter().any(|a| a == "--drop-stats") {
        // Simulates a store that never ran ANALYZE, to check the planner without statistics.
        rusqlite::Connection::open(&path)?.execute_batch("DELETE FROM sqlite_stat1;")?;
        return Ok(());
    }
    if args.iter().any(|a| a == "--optimize") {
        // What the writer runs hourly.
        let t = Instant::now();
        store::retention::optimize(&rusqlite::Connection::open(&path)?)?;
        eprintln!("optimize in {:.1?}", t.elapsed());
        return Ok(());
    }
    if args.iter().any(|a| a == "--measure") {
        return measure(&path).await;
    }
    if args.iter().any(|a| a == "--rollup") {
        return roll_up(&path);
    }
    if args.iter().any(|a| a == "--group") {
        return group(&path);
    }
    if args.iter().any(|a| a == "--upkeep-pauses") {
        return upkeep_pauses(&path);
    }
    if args.iter().any(|a| a == "--compact") {
        return compact(&path);
    }
    let batch = match args.iter().position(|a| a == "--batch") {
        Some(i) => args.get(i + 1).ok_or("--batch N")?.parse()?,
        None => 4096,
    };
    let rows: u64 = args
        .get(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000_000);
    generate(&path, rows, batch)
}
