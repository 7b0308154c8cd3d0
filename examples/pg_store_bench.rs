//! The shared PostgreSQL store at campus scale (issue 16): fills a database with a group's
//! evidence, then serves the real API on it and reports list latency percentiles, as
//! `gen_store --measure` does for SQLite.
//!
//! ```text
//! cargo run --release --example pg_store_bench -- generate --url postgres://poolguard@127.0.0.1:55432/poolguard \
//!     --password-file /tmp/pgbench-db/password [--hits 10000000] [--incidents 100000]
//! cargo run --release --example pg_store_bench -- measure --url … --password-file …
//! ```
//!
//! `generate` applies the schema (`PgStore::open`, the migrations every node runs), empties the
//! evidence tables and bulk-loads them in SQL (`INSERT … SELECT FROM generate_series`, the
//! secondary indexes of `hits` dropped during the load and rebuilt from their own definitions,
//! then `VACUUM ANALYZE`). The data resembles a campus group of two nodes over 7 days: 20 000
//! clients in 10.0.0.0/8, all in the ledger, over 200 departments, skewed (client `c` is drawn
//! as `20000 · u²`: the busiest sends 0.7 % of the hits, the quietest a few hundred); four
//! feeds (mining 70 %, malware 20 %, phishing 8 %, tracking 2 %) of 2 500 names each;
//! 100 000 incidents over a year, the newest 2 000 not closed. Values are hashes of the row
//! number, so every run builds the same rows.
//!
//! `measure` opens a `PgStore` (no local SQLite store: the query log is per node and not what
//! this measures) behind the API's own router on 127.0.0.1 and times HTTP requests from a
//! client, `PG_STORE_BENCH_REQUESTS` (default 200) of each kind.

#[path = "support/api_timing.rs"]
mod api_timing;

use std::time::Instant;

use api_timing::Gen;
use poolguard::config::{Backend, StoreConfig};
use poolguard::store_pg::PgStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CLIENTS: i64 = 20_000;
const DEPARTMENTS: i64 = 200;
const DAY_MS: i64 = 86_400_000;
/// Rows per `INSERT … SELECT` statement (progress is printed after each).
const CHUNK: i64 = 1_000_000;
/// Incidents not closed (at most one per client: `incidents_open_key`).
const OPEN: i64 = 2_000;

/// A uniform number in [0, 1) from row `i` and a seed (reproducible, unlike `random()`).
fn unit(seed: u8) -> String {
    format!("((hashint8extended(i, {seed}) & 281474976710655)::float8 / 281474976710656)")
}

/// Row `i` of `hits` (`$1..$2` the row numbers, `$3` the first time, `$4` ms per row ×1000).
fn hits_sql() -> String {
    let (u1, u2, u3) = (unit(1), unit(2), unit(3));
    format!(
        "INSERT INTO hits (node, local_block, local_index, time_ms, client, client_key, port, \
         transport, name, qtype, action, feed, rule, rcode, answer, latency_us, upstream, network, \
         asset, mac, kind, location, department, owner, contact) \
         SELECT CASE WHEN i % 2 = 0 THEN 'node-a' ELSE 'node-b' END, (i / 2) / 4096 + 1, \
           ((i / 2) % 4096)::int, $3 + i * $4 / 1000, \
           ('10.0.' || (c / 250) || '.' || (c % 250 + 1))::inet, 'asset:pc-' || c, \
           40000 + (i % 20000)::int, 'udp', \
           CASE f WHEN 0 THEN 'w' || (n * 20) || '.pool' || (n * 20 % 37) || '.minexmr.com' \
             WHEN 1 THEN 'c2-' || n || '.bad' || (n % 101) || '.example.net' \
             WHEN 2 THEN 'login-' || n || '.phish' || (n % 53) || '.test' \
             ELSE 't' || n || '.ads' || (n % 29) || '.example.org' END, \
           CASE WHEN i % 3 = 0 THEN 'AAAA' ELSE 'A' END, 'blocked', \
           (ARRAY['mining', 'malware', 'phishing', 'tracking'])[f + 1], \
           CASE f WHEN 0 THEN 'minexmr.com' WHEN 1 THEN 'bad' || (n % 101) || '.example.net' \
             WHEN 2 THEN 'phish' || (n % 53) || '.test' ELSE 'ads' || (n % 29) || '.example.org' END, \
           'NXDOMAIN', '', 300 + (i % 5000)::int, NULL, '10.0.' || (c / 250) || '.0/24', \
           'pc-' || c, NULL, 'workstation', 'Building ' || (c % 40), 'Dept ' || (c % {DEPARTMENTS}), \
           'Owner ' || c, 'owner' || c || '@example.edu' \
         FROM generate_series($1::bigint, $2::bigint) AS g(i), \
         LATERAL (SELECT floor({CLIENTS} * {u1} * {u1})::bigint AS c, \
           CASE WHEN {u2} < 0.70 THEN 0 WHEN {u2} < 0.90 THEN 1 WHEN {u2} < 0.98 THEN 2 ELSE 3 END AS f, \
           floor({u3} * 2500)::bigint AS n) AS p"
    )
}

/// Incident `i` (`$1` incidents in all, `$2` the first opened time, `$3` ms between opens).
fn incidents_sql() -> String {
    let u = unit(4);
    format!(
        "INSERT INTO incidents (client_key, client, network, asset, mac, kind, location, \
         department, ledger_owner, contact, device, owner, status, resolution, assignee, severity, \
         feeds, categories, opened_ms, last_hit_ms, hit_count, name_count, identify_due_ms, \
         report_due_ms, identified_ms, reported_ms, closed_ms, enforced_ms, alerted, opened_by) \
         SELECT 'asset:pc-' || c, ('10.0.' || (c / 250) || '.' || (c % 250 + 1))::inet, \
           '10.0.' || (c / 250) || '.0/24', 'pc-' || c, NULL, 'workstation', \
           'Building ' || (c % 40), 'Dept ' || (c % {DEPARTMENTS}), 'Owner ' || c, \
           'owner' || c || '@example.edu', CASE WHEN st = 'open' THEN NULL ELSE 'pc-' || c END, \
           CASE WHEN st = 'open' THEN NULL ELSE 'Owner ' || c END, st, \
           CASE WHEN st = 'closed' THEN 'cleaned' END, \
           CASE WHEN st = 'open' THEN NULL ELSE 'staff' || (i % 12) END, 1 + (i % 4)::int, \
           'mining', 'mining', o, o + (i % 7200) * 1000, 1 + i % 500, 1 + i % 7, \
           o + {DAY_MS}, o + 3 * {DAY_MS}, \
           CASE WHEN st IN ('identified', 'reported', 'closed') THEN o + late * {DAY_MS} / 4 END, \
           CASE WHEN st IN ('reported', 'closed') THEN o + late * {DAY_MS} / 2 END, \
           CASE WHEN st = 'closed' THEN o + 5 * {DAY_MS} END, NULL, 0, 'node-a' \
         FROM generate_series(1, $1::bigint) AS g(i), \
         LATERAL (SELECT i % {CLIENTS} AS c, $2 + i * $3 AS o, \
           1 + floor({u} * 8)::bigint AS late, \
           CASE WHEN i <= $1 - {OPEN} THEN 'closed' \
             ELSE (ARRAY['open', 'open', 'investigating', 'identified', 'reported'])[1 + (i % 5)::int] \
           END AS st) AS p"
    )
}

/// The `--flag value` after `flag`, if given.
fn arg<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

async fn open(args: &[String]) -> Result<PgStore, Box<dyn std::error::Error>> {
    let cfg = StoreConfig {
        backend: Backend::Postgres,
        url: Some(arg(args, "--url").ok_or("--url postgres://…")?.to_string()),
        password_file: arg(args, "--password-file").map(Into::into),
        node: Some("bench".into()),
        pool_size: 8,
        ..StoreConfig::default()
    };
    Ok(PgStore::open(&cfg).await?)
}

async fn generate(
    store: &PgStore,
    hits: i64,
    incidents: i64,
) -> Result<(), Box<dyn std::error::Error>> {
    let c = store.pool().get().await?;
    let t0 = Instant::now();
    c.batch_execute(
        "TRUNCATE hits, hit_rollups, hit_names, ship_cursor, incident_names, incident_notes, \
         incidents RESTART IDENTITY; UPDATE rollup_trimmed SET next = 0",
    )
    .await?;
    // Secondary indexes are rebuilt after the load from their own definitions (several
    // times faster than inserting into them); the primary key stays (rows arrive in its order).
    let defs: Vec<(String, String)> = c
        .query(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'hits' \
             AND indexname <> 'hits_pkey' ORDER BY indexname",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (name, _) in &defs {
        c.batch_execute(&format!("DROP INDEX {name}")).await?;
    }
    let now = chrono::Utc::now().timestamp_millis();
    let span = 7 * DAY_MS;
    let start = now - span;
    let per_row_milli = span * 1000 / hits.max(1);
    let insert = hits_sql();
    let mut done = 0i64;
    while done < hits {
        let end = (done + CHUNK).min(hits);
        c.execute(&insert, &[&done, &(end - 1), &start, &per_row_milli])
            .await?;
        done = end;
        eprintln!("{done} hits in {:.1?}", t0.elapsed());
    }
    c.batch_execute(
        "INSERT INTO hit_names (name, first_ms, last_ms) \
         SELECT name, min(time_ms), max(time_ms) FROM hits GROUP BY name; \
         INSERT INTO ship_cursor (node, local_block, shipped_ms) \
         SELECT node, max(local_block), max(time_ms) FROM hits GROUP BY node",
    )
    .await?;
    let year = 365 * DAY_MS;
    let step = year / incidents.max(1);
    c.execute(&incidents_sql(), &[&incidents, &(now - year), &step])
        .await?;
    eprintln!("{incidents} incidents in {:.1?}", t0.elapsed());
    let ti = Instant::now();
    for (name, def) in &defs {
        let t = Instant::now();
        c.batch_execute(def).await?;
        eprintln!("index {name} in {:.1?}", t.elapsed());
    }
    // One statement each: VACUUM cannot run in the implicit transaction of a batch.
    for table in ["hits", "incidents", "hit_names"] {
        c.batch_execute(&format!("VACUUM ANALYZE {table}")).await?;
    }
    // The closed hours and days trimmed as the nodes' shippers would (one bucket per call).
    let tt = Instant::now();
    let mut buckets = 0;
    for (span, before) in poolguard::store_pg::ship::rollups_due_before(now) {
        let keep = poolguard::store_pg::schema::ROLLUP_KEEP;
        while c
            .query_one(
                "SELECT poolguard_trim_rollups($1, $2, $3)",
                &[&span, &before, &keep],
            )
            .await?
            .get::<_, bool>(0)
        {
            buckets += 1;
        }
    }
    c.batch_execute("VACUUM ANALYZE hit_rollups").await?;
    eprintln!("{buckets} rollup buckets trimmed in {:.1?}", tt.elapsed());
    let size: String = c
        .query_one(
            "SELECT pg_size_pretty(pg_database_size(current_database()))",
            &[],
        )
        .await?
        .get(0);
    eprintln!(
        "indexes and analyze in {:.1?}; total {:.1?}; database {size}",
        ti.elapsed(),
        t0.elapsed()
    );
    Ok(())
}

fn client_ip(c: i64) -> String {
    format!("10.0.{}.{}", c / 250, c % 250 + 1)
}

/// An RFC 3339 time `ms` ago (URL-safe: `Z`, no offset sign).
fn ago(now: i64, ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(now - ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The requests measured: what staff filter hits and incidents by.
fn cases(now: i64, incidents: i64) -> Vec<(&'static str, Gen)> {
    let feeds = ["mining", "malware", "phishing", "tracking"];
    vec![
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
            "/hits?client=<a /24>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/hits?client=10.0.{}.0/24",
                    r.random_range(0..CLIENTS / 250)
                )
            }),
        ),
        (
            "/hits?client=<ip>&limit=1000",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/hits?client={}&limit=1000",
                    client_ip(r.random_range(0..CLIENTS))
                )
            }),
        ),
        (
            "/hits?name=<exact>",
            Box::new(|r: &mut StdRng| {
                let n = r.random_range(0..2500) * 20;
                format!("/api/v1/hits?name=w{n}.pool{}.minexmr.com", n % 37)
            }),
        ),
        (
            "/hits?name=*.<pool suffix>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/hits?name=*.pool{}.minexmr.com",
                    r.random_range(0..37)
                )
            }),
        ),
        (
            "/hits?name=*.<rare suffix>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/hits?name=*.ads{}.example.org",
                    r.random_range(0..29)
                )
            }),
        ),
        (
            "/hits?name=*.minexmr.com (70 %)",
            Box::new(|_: &mut StdRng| "/api/v1/hits?name=*.minexmr.com".to_string()),
        ),
        (
            "/hits?department=<d>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/hits?department=Dept%20{}",
                    r.random_range(0..DEPARTMENTS)
                )
            }),
        ),
        (
            "/hits?feed=<f>",
            Box::new(move |r: &mut StdRng| {
                format!("/api/v1/hits?feed={}", feeds[r.random_range(0..4)])
            }),
        ),
        (
            "/hits?since=<t>&until=<t+1h>",
            Box::new(move |r: &mut StdRng| {
                let back = r.random_range(1..7 * 24) * 3_600_000;
                format!(
                    "/api/v1/hits?since={}&until={}",
                    ago(now, back),
                    ago(now, back - 3_600_000)
                )
            }),
        ),
        (
            "/hits?client=<ip>&since=<1 day>",
            Box::new(move |r: &mut StdRng| {
                let back = r.random_range(2..7) * DAY_MS;
                format!(
                    "/api/v1/hits?client={}&since={}&until={}",
                    client_ip(r.random_range(0..CLIENTS)),
                    ago(now, back),
                    ago(now, back - DAY_MS)
                )
            }),
        ),
        (
            "/hits?department=<d>&feed=<f>",
            Box::new(move |r: &mut StdRng| {
                format!(
                    "/api/v1/hits?department=Dept%20{}&feed={}",
                    r.random_range(0..DEPARTMENTS),
                    feeds[r.random_range(0..4)]
                )
            }),
        ),
        (
            "/hits (no filter)",
            Box::new(|_: &mut StdRng| "/api/v1/hits".to_string()),
        ),
        (
            "/stats (last 24 h)",
            Box::new(|_: &mut StdRng| "/api/v1/stats".to_string()),
        ),
        (
            "/clients/<ip> (summary)",
            Box::new(|r: &mut StdRng| {
                format!("/api/v1/clients/{}", client_ip(r.random_range(0..CLIENTS)))
            }),
        ),
        (
            "/incidents (no filter)",
            Box::new(|_: &mut StdRng| "/api/v1/incidents".to_string()),
        ),
        (
            "/incidents?status=<s>",
            Box::new(|r: &mut StdRng| {
                let s = ["open", "investigating", "identified", "reported", "closed"];
                format!("/api/v1/incidents?status={}", s[r.random_range(0..s.len())])
            }),
        ),
        (
            "/incidents?overdue=true",
            Box::new(|_: &mut StdRng| "/api/v1/incidents?overdue=true".to_string()),
        ),
        (
            "/incidents?department=<d>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/incidents?department=Dept%20{}",
                    r.random_range(0..DEPARTMENTS)
                )
            }),
        ),
        (
            "/incidents?assignee=<a>",
            Box::new(|r: &mut StdRng| {
                format!("/api/v1/incidents?assignee=staff{}", r.random_range(0..12))
            }),
        ),
        (
            "/incidents?status=open&department=<d>",
            Box::new(|r: &mut StdRng| {
                format!(
                    "/api/v1/incidents?status=open&department=Dept%20{}",
                    r.random_range(0..DEPARTMENTS)
                )
            }),
        ),
        (
            "/incidents?since=<30 days>",
            Box::new(move |_: &mut StdRng| {
                format!("/api/v1/incidents?since={}", ago(now, 30 * DAY_MS))
            }),
        ),
        (
            "/incidents/<id> (detail)",
            Box::new(move |r: &mut StdRng| {
                format!("/api/v1/incidents/{}", r.random_range(1..=incidents.max(1)))
            }),
        ),
        (
            "/reports/summary (last 7 days)",
            Box::new(|_: &mut StdRng| "/api/v1/reports/summary".to_string()),
        ),
    ]
}

async fn measure(store: PgStore) -> Result<(), Box<dyn std::error::Error>> {
    let incidents: i64 = {
        let c = store.pool().get().await?;
        c.query_one("SELECT count(*) FROM incidents", &[])
            .await?
            .get(0)
    };
    let served = api_timing::serve(store).await?;
    let mut rng = StdRng::seed_from_u64(7);
    let n: usize = std::env::var("PG_STORE_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let only = std::env::var("PG_STORE_BENCH_ONLY").ok();
    let now = chrono::Utc::now().timestamp_millis();
    api_timing::header();
    for (label, make) in cases(now, incidents) {
        if only.as_deref().is_some_and(|o| !label.contains(o)) {
            continue;
        }
        // Aggregates over a day or a week take seconds each: fewer samples.
        let n = match label {
            l if l.starts_with("/reports") => n.min(5),
            l if l.starts_with("/stats") => n.min(20),
            _ => n,
        };
        served.time(label, &make, n, &mut rng).await?;
    }
    served.stop().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: pg_store_bench generate|measure --url URL [--password-file F] \
                 [--hits N] [--incidents N]";
    let store = open(&args).await?;
    match args.first().map(String::as_str) {
        Some("generate") => {
            let hits = arg(&args, "--hits")
                .map(str::parse)
                .transpose()?
                .unwrap_or(10_000_000);
            let incidents = arg(&args, "--incidents")
                .map(str::parse)
                .transpose()?
                .unwrap_or(100_000);
            generate(&store, hits, incidents).await
        }
        Some("measure") => measure(store).await,
        _ => Err(usage.into()),
    }
}
