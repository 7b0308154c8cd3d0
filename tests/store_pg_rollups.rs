//! `/stats` and the bulletin on PostgreSQL read the hit rollups (schema step 4) for whole
//! hours and days and `hits` for the edges: against a real server, every window gives exactly
//! what grouping the rows gives, for hits shipped in several statements by several nodes, a
//! shipment repeated (rows skipped by `ON CONFLICT DO NOTHING` are not counted twice), and
//! hits that were in the database before the step (rolled up once by the migration; by feed
//! once by step 11).

mod common;

use common::postgres::Postgres;
use poolguard::config::{Backend, StoreConfig};
use poolguard::store::{EvidenceStore, IncidentStore};
use poolguard::store_pg::PgStore;

const DB: &str = "rollups";
const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;

async fn open(pg: &Postgres) -> PgStore {
    let cfg = StoreConfig {
        backend: Backend::Postgres,
        url: Some(pg.url(DB)),
        password_file: Some(pg.password_file()),
        node: Some("node-a".to_string()),
        ..StoreConfig::default()
    };
    PgStore::open(&cfg).await.expect("store opens")
}

/// `count` hits of `node` numbered from `first`, spread over three days from a pseudo-random
/// hash of their number: 40 clients (10.1.0.0–39), 25 names, three actions, three feeds (and
/// none for every seventh), departments and assets for most clients. The same numbers give the same rows, so inserting a range again
/// repeats a shipment.
fn insert(pg: &Postgres, node: &str, first: i64, count: i64) {
    pg.psql(
        DB,
        &format!(
            "INSERT INTO hits (node, local_block, local_index, time_ms, client, client_key, port, \
             transport, name, qtype, action, feed, rule, rcode, answer, latency_us, asset, \
             department) \
             SELECT '{node}', i / 100, i % 100, t, ('10.1.0.' || c)::inet, 'ip:10.1.0.' || c, \
               53, 'udp', 'n' || (i * 7 % 25) || '.pool.example', 'A', \
               (ARRAY['nxdomain', 'sinkhole', 'refuse'])[1 + i % 3], \
               (ARRAY['mining', 'nocoin', 'hosts', NULL])[1 + i % 7 % 4], 'pool.example', \
               'NXDOMAIN', '', 10, \
               CASE WHEN c % 5 <> 0 THEN 'pc-' || c END, \
               CASE WHEN c % 4 <> 0 THEN 'dept-' || (c % 7) END \
             FROM (SELECT i, abs(hashint8(i)) % {span} AS t, abs(hashint8(i + 1000003)) % 40 AS c \
                   FROM generate_series({first}, {last}) AS i) g \
             ON CONFLICT DO NOTHING",
            span = 3 * DAY,
            last = first + count - 1,
        ),
    );
}

/// `(value|count)` lines of a grouping of the rows in `[since, until)`, as the API orders them.
fn grouped(pg: &Postgres, col: &str, since: i64, until: i64, top: Option<usize>) -> Vec<String> {
    let limit = top.map(|t| format!("LIMIT {t}")).unwrap_or_default();
    let out = pg.psql(
        DB,
        &format!(
            "SELECT {col}, count(*) FROM hits WHERE time_ms >= {since} AND time_ms < {until} \
             AND {col} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 {limit}"
        ),
    );
    out.lines().map(str::to_string).collect()
}

fn lines(counts: &[poolguard::store::Count]) -> Vec<String> {
    counts
        .iter()
        .map(|c| format!("{}|{}", c.value, c.count))
        .collect()
}

/// Windows that cross day and hour boundaries, lie inside one hour, start on a boundary, or
/// hold nothing.
fn windows() -> Vec<(i64, i64)> {
    vec![
        (0, 3 * DAY),
        (H / 2 + 17, 2 * DAY + 5 * H + 123),
        (DAY - 1, DAY + 1),
        (5 * H, 5 * H + H / 3),
        (2 * H, 26 * H),
        (DAY, 2 * DAY),
        (7 * DAY, 8 * DAY),
    ]
}

async fn assert_rollups_match_rows(pg: &Postgres, store: &PgStore) {
    for (since, until) in windows() {
        let stats = store.stats(since, until, 5).await.expect("stats");
        let at = format!("window [{since}, {until})");
        assert_eq!(
            lines(&stats.hits_by_action),
            grouped(pg, "action", since, until, None),
            "{at}"
        );
        assert_eq!(
            lines(&stats.top_blocked_names),
            grouped(pg, "name", since, until, Some(5)),
            "{at}"
        );
        assert_eq!(
            lines(&stats.top_clients),
            grouped(pg, "host(client)", since, until, Some(5)),
            "{at}"
        );
        assert_eq!(
            lines(&stats.top_departments),
            grouped(pg, "department", since, until, Some(5)),
            "{at}"
        );
        assert_eq!(
            lines(&stats.top_feeds),
            grouped(pg, "feed", since, until, Some(5)),
            "{at}"
        );

        let summary = store.summary(since, until, until).await.expect("summary");
        let total: i64 = pg
            .psql(
                DB,
                &format!(
                    "SELECT count(*) FROM hits WHERE time_ms >= {since} AND time_ms < {until}"
                ),
            )
            .parse()
            .expect("count");
        assert_eq!(summary.hits, total, "{at}");
        let offenders: Vec<String> = summary
            .top_offenders
            .iter()
            .map(|o| {
                format!(
                    "{}|{}|{}|{}",
                    o.client,
                    o.asset.as_deref().unwrap_or(""),
                    o.department.as_deref().unwrap_or(""),
                    o.hits
                )
            })
            .collect();
        let want = pg.psql(
            DB,
            &format!(
                "SELECT host(client), coalesce(max(asset), ''), coalesce(max(department), ''), \
                 count(*) FROM hits WHERE time_ms >= {since} AND time_ms < {until} \
                 GROUP BY client ORDER BY 4 DESC, 1 LIMIT {}",
                summary.top_offenders.len().max(1)
            ),
        );
        let want: Vec<String> = want.lines().map(str::to_string).collect();
        assert_eq!(offenders, want, "{at}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_the_bulletin_from_rollups_equal_grouping_the_rows() {
    let pg = Postgres::start();
    pg.create_database(DB);
    let store = open(&pg).await;

    // Two nodes, several statements each, one repeated in full and one in part.
    insert(&pg, "node-a", 0, 3000);
    insert(&pg, "node-b", 0, 2000);
    insert(&pg, "node-a", 3000, 1500);
    insert(&pg, "node-a", 0, 3000);
    insert(&pg, "node-b", 1500, 1000);
    assert_eq!(pg.psql(DB, "SELECT count(*) FROM hits"), "7000");
    assert_rollups_match_rows(&pg, &store).await;
    assert_ne!(
        pg.psql(DB, "SELECT count(*) FROM hit_rollups"),
        "0",
        "the rollups hold the hits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_stored_before_the_rollups_existed_are_rolled_up_by_the_migration() {
    let pg = Postgres::start();
    pg.create_database(DB);
    drop(open(&pg).await);
    // Back to schema 3, as a database from before the rollups, with hits in it (the later
    // steps undone too: step 5's narrative table, step 6's identity columns, steps 7–9's
    // shared holdings and identity columns, step 10's bulletin and review tables).
    pg.psql(
        DB,
        "DROP TRIGGER hits_rolled ON hits; DROP FUNCTION poolguard_roll_hits(); \
         DROP FUNCTION poolguard_trim_rollups(smallint, bigint, integer); \
         DROP FUNCTION poolguard_expire_hits(bigint, integer); \
         DROP TABLE hit_rollups, rollup_trimmed, incident_narrative; \
         ALTER TABLE hits DROP COLUMN account, DROP COLUMN hostname, DROP COLUMN identity_source; \
         DROP TABLE identity_intervals; DROP SEQUENCE identity_seq; \
         ALTER TABLE incidents DROP COLUMN account, DROP COLUMN hostname, DROP COLUMN identity_source; \
         ALTER TABLE hits DROP COLUMN exempt; \
         DROP TABLE bulletins_sent, review_candidates, review_scan; \
         DELETE FROM poolguard_schema WHERE version >= 4",
    );
    insert(&pg, "node-a", 0, 2500);
    insert(&pg, "node-b", 0, 1500);

    let store = open(&pg).await;
    assert_eq!(
        pg.psql(DB, "SELECT max(version) FROM poolguard_schema"),
        poolguard::store_pg::schema::SCHEMA_VERSION.to_string()
    );
    insert(&pg, "node-b", 1000, 1000);
    assert_rollups_match_rows(&pg, &store).await;
}

/// Per closed hour and node: (rows of names, rows of clients, rest rows, hits counted).
fn hour_shape(pg: &Postgres) -> Vec<String> {
    pg.psql(
        DB,
        "SELECT bucket, node, count(*) FILTER (WHERE kind = 1 AND key <> ''), \
         count(*) FILTER (WHERE kind = 2 AND key <> ''), count(*) FILTER (WHERE key = ''), \
         sum(n) FILTER (WHERE kind = 1), sum(n) FILTER (WHERE kind = 2) \
         FROM hit_rollups WHERE span = 0 GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimming_keeps_the_largest_keys_and_every_hit_counted() {
    let pg = Postgres::start();
    pg.create_database(DB);
    let store = open(&pg).await;
    insert(&pg, "node-a", 0, 3000);
    insert(&pg, "node-b", 0, 2000);
    let before = store.stats(0, 3 * DAY, 3).await.expect("stats");

    // Keep 3 keys per hour, kind and node: every closed hour, then every day.
    for span in [0, 1] {
        let mut steps = 0;
        while pg.psql(
            DB,
            &format!("SELECT poolguard_trim_rollups({span}::smallint, 1000000, 3)"),
        ) == "t"
        {
            steps += 1;
            assert!(steps <= 200, "one bucket per call, and they run out");
        }
    }
    for line in hour_shape(&pg) {
        let f: Vec<&str> = line.split('|').collect();
        let n = |i: usize| f[i].parse::<i64>().expect("a count");
        assert!(n(2) <= 3 && n(3) <= 3, "{line}");
        assert_eq!(n(4), 2, "one rest row per kind: {line}");
        assert_eq!(f[5], f[6], "names and clients count the same hits: {line}");
    }
    assert_eq!(
        pg.psql(
            DB,
            "SELECT sum(n) FROM hit_rollups WHERE span = 0 AND kind = 2"
        ),
        "5000",
        "the trimmed keys' hits are in the rest rows"
    );

    let after = store.stats(0, 3 * DAY, 3).await.expect("stats");
    assert_eq!(
        after.hits_by_action, before.hits_by_action,
        "totals stay exact"
    );
    assert!(after.top_clients.iter().all(|c| !c.value.is_empty()));
    assert_eq!(after.top_clients.len(), 3);
    // A late hit for a trimmed hour is counted (on a row of its own).
    insert(&pg, "node-a", 10_000, 1);
    let late = store.stats(0, 3 * DAY, 3).await.expect("stats");
    let total = |s: &poolguard::store::read::Stats| -> i64 {
        s.hits_by_action.iter().map(|c| c.count).sum()
    };
    assert_eq!(total(&late), total(&before) + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_trims_closed_hours_while_it_has_nothing_to_ship() {
    let pg = Postgres::start();
    let url = pg.create_database(DB);
    drop(open(&pg).await);
    // 1,200 clients in one hour two days ago: more than a trimmed hour keeps.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let hour = (now_ms - 2 * DAY).div_euclid(H);
    pg.psql(
        DB,
        &format!(
            "INSERT INTO hits (node, local_block, local_index, time_ms, client, client_key, port, \
             transport, name, qtype, action, rcode, answer, latency_us) \
             SELECT 'old', 0, i, {start} + i, ('10.2.' || i / 250 || '.' || i % 250)::inet, \
               'ip:x' || i, 53, 'udp', 'pool.example', 'A', 'nxdomain', 'NXDOMAIN', '', 1 \
             FROM generate_series(0, 1199) AS i",
            start = hour * H,
        ),
    );
    let bed = common::TestBed::builder()
        .toml(&format!(
            "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_file = \"{}\"\n\
             node = \"n1\"\npath = \"data/local.db\"\nflush_interval_ms = 20\n",
            pg.password_file().display()
        ))
        .start()
        .await;
    common::eventually("the node trimmed the old hour", || async {
        let rows = pg.psql(
            DB,
            &format!(
                "SELECT count(*) FILTER (WHERE key <> ''), sum(n) FROM hit_rollups \
                 WHERE span = 0 AND kind = 2 AND bucket = {hour}"
            ),
        );
        if rows == "1000|1200" {
            Ok(())
        } else {
            Err(rows)
        }
    })
    .await;
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_past_retention_leave_postgresql_with_their_rollups() {
    let pg = Postgres::start();
    let url = pg.create_database(DB);
    let store = open(&pg).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    // 300 hits five days ago and 200 one hour ago, 20 clients each.
    for (first, count, age) in [(0, 300, 5 * DAY), (300, 200, H)] {
        pg.psql(
            DB,
            &format!(
                "INSERT INTO hits (node, local_block, local_index, time_ms, client, client_key, \
                 port, transport, name, qtype, action, feed, rcode, answer, latency_us) \
                 SELECT 'old', 0, i, {start} + i, ('10.3.0.' || i % 20)::inet, 'ip:' || i % 20, \
                   53, 'udp', 'pool.example', 'A', 'nxdomain', 'mining', 'NXDOMAIN', '', 1 \
                 FROM generate_series({first}, {last}) AS i",
                start = now_ms - age,
                last = first + count - 1,
            ),
        );
    }
    let bed = common::TestBed::builder()
        .toml(&format!(
            "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_file = \"{}\"\n\
             node = \"n1\"\npath = \"data/local.db\"\nflush_interval_ms = 20\n\
             hit_retention_days = 2\n",
            pg.password_file().display()
        ))
        .start()
        .await;
    let old_bucket = (now_ms - 5 * DAY).div_euclid(H);
    common::eventually("the old hits and their rollups are gone", || async {
        let left = pg.psql(
            DB,
            &format!(
                "SELECT (SELECT count(*) FROM hits), \
                 (SELECT count(*) FROM hit_rollups WHERE span = 0 AND bucket = {old_bucket})"
            ),
        );
        if left == "200|0" { Ok(()) } else { Err(left) }
    })
    .await;
    let stats = store
        .stats(now_ms - 7 * DAY, now_ms, 5)
        .await
        .expect("stats");
    assert_eq!(
        stats.hits_by_action.iter().map(|c| c.count).sum::<i64>(),
        200,
        "the rollups count only the hits kept"
    );
    bed.shutdown().await;
}
