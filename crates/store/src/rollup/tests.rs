use std::sync::Arc;

use poolguard_clients::Ledger;
use poolguard_record::{Outcome, QueryEvent, Transport};
use rusqlite::Connection;

use super::*;
use crate::read::{Stats, stats};

const DAY: i64 = 86_400_000;
/// A day boundary, so windows cross days and hours at known places.
const T0: i64 = 19_700 * DAY;

fn store() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().expect("dir");
    let store = crate::Store::open(&dir.path().join("t.db")).expect("store");
    let conn = store.write_connection().expect("conn");
    (dir, conn)
}

fn ledger() -> Ledger {
    let csv = "network,mac,asset,kind,location,department,owner,contact\n\
               10.0.0.0/30,,pc,workstation,B,Physics,o,o@x\n\
               10.0.0.4/30,,pc,workstation,B,Chemistry,o,o@x\n";
    Ledger::from_reader(csv.as_bytes(), std::path::Path::new("t"))
        .expect("ledger")
        .0
}

/// Row `i` of a deterministic log: every 7th row a hit, clients and names skewed so the top
/// tables have a clear order.
fn event(i: i64, time_ms: i64) -> QueryEvent {
    let hit = i % 7 == 0;
    let client = format!("10.0.0.{}:5353", 1 + (i * i) % 9);
    QueryEvent {
        time_ms,
        client: client.parse().expect("addr"),
        transport: Transport::Udp,
        name: format!("n{}.pool.example", (i * 31) % 5).into(),
        qtype: "A".into(),
        outcome: if hit {
            Outcome::Blocked
        } else {
            Outcome::Allowed
        },
        // Three feeds in the proportions 3 : 2 : 1, so the feed table has a clear order.
        feed: hit.then(|| {
            Arc::from(
                ["mining", "mining", "mining", "nocoin", "nocoin", "hosts"][(i / 7 % 6) as usize],
            )
        }),
        rule: hit.then(|| Arc::from("pool.example")),
        rcode: "NOERROR",
        answer: "".into(),
        latency_us: 1,
        upstream: None,
    }
}

/// Three days of rows, one every 97 s, in batches of 50.
fn fill(conn: &Connection) {
    let events: Vec<QueryEvent> = (0..(3 * DAY / 97_000))
        .map(|i| event(i, T0 + i * 97_000))
        .collect();
    for batch in events.chunks(50) {
        let tx = conn.unchecked_transaction().expect("tx");
        crate::writer::insert_events(&tx, batch, &ledger(), true).expect("stored");
        tx.commit().expect("commit");
    }
}

/// Seals with `sealer` until it has caught up with `now_ms`.
fn seal_until(conn: &Connection, sealer: &mut Sealer, now_ms: i64) {
    while sealer
        .catch_up(conn, now_ms, std::time::Duration::from_secs(5))
        .expect("catch up")
    {}
}

/// Seals everything [`fill`] wrote, up to the end of its third day, as the writer would.
fn seal_filled(conn: &Connection) {
    seal_until(conn, &mut Sealer::with_step(1), T0 + 3 * DAY + HOUR_MS);
    assert_eq!(
        sealed_hour(conn, crate::rows::Table::Hits).expect("sealed"),
        Some((T0 + 3 * DAY) / HOUR_MS)
    );
}

/// The one integer `sql` selects.
fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

fn windows() -> Vec<(i64, i64)> {
    vec![
        (T0, T0 + 3 * DAY),
        (T0 - DAY, T0 + 4 * DAY),
        (T0 + 1_234_567, T0 + 2 * DAY + 7_654_321),
        (T0 + HOUR_MS / 2, T0 + HOUR_MS * 3 / 4),
        (T0 + 5 * HOUR_MS, T0 + 29 * HOUR_MS),
    ]
}

fn all_stats(conn: &Connection) -> Vec<Stats> {
    windows()
        .into_iter()
        .map(|(s, u)| stats(conn, s, u, 100).expect("stats"))
        .collect()
}

fn same(a: &[Stats], b: &[Stats]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(format!("{x:?}"), format!("{y:?}"));
    }
}

#[test]
fn stats_from_rollups_equal_stats_from_the_rows() {
    let (_dir, conn) = store();
    fill(&conn);
    let from_rows = all_stats(&conn);
    assert!(
        from_rows[0].top_departments.len() == 2,
        "{:?}",
        from_rows[0]
    );
    let feeds: Vec<&str> = from_rows[0]
        .top_feeds
        .iter()
        .map(|c| c.value.as_str())
        .collect();
    assert_eq!(feeds, ["mining", "nocoin", "hosts"]);
    seal_filled(&conn);
    assert_eq!(
        count(
            &conn,
            "SELECT count(DISTINCT bucket) FROM rollups WHERE span = 1"
        ),
        3
    );
    // Each minute with a hit has its tables: the windows' mid-hour edges are read from them.
    let minutes_with_hits: std::collections::HashSet<i64> = (0..(3 * DAY / 97_000))
        .filter(|i| i % 7 == 0)
        .map(|i| (T0 + i * 97_000) / 60_000)
        .collect();
    assert_eq!(
        count(&conn, "SELECT count(*) FROM hit_minutes"),
        minutes_with_hits.len() as i64
    );
    same(&from_rows, &all_stats(&conn));
}

#[test]
fn hours_sealed_before_the_minute_tables_are_read_from_the_blocks() {
    let (_dir, conn) = store();
    fill(&conn);
    let from_rows = all_stats(&conn);
    seal_filled(&conn);
    // A store upgraded at hour 30: the hours before it were sealed without minute tables.
    let upgraded = T0 / HOUR_MS + 30;
    conn.execute_batch(&format!(
        "DELETE FROM hit_minutes WHERE minute < {}; \
         UPDATE rollup_sealed SET minutes_from = {upgraded}",
        upgraded * 60
    ))
    .expect("upgrade");
    same(&from_rows, &all_stats(&conn));
    // Late hits of those hours are not put in minute tables either.
    let late: Vec<QueryEvent> = (0..3)
        .map(|i| event(i * 7, T0 + HOUR_MS + i * 600_000))
        .collect();
    crate::writer::insert_events(&conn, &late, &ledger(), true).expect("stored");
    assert_eq!(
        count(
            &conn,
            &format!(
                "SELECT count(*) FROM hit_minutes WHERE minute < {}",
                upgraded * 60
            )
        ),
        0
    );
    let with_late = all_stats(&conn);
    conn.execute("DELETE FROM rollup_sealed", [])
        .expect("forget rollups");
    same(&all_stats(&conn), &with_late);
}

#[test]
fn a_store_upgraded_to_feed_rollups_rolls_its_hits_up_again() {
    let dir = tempfile::tempdir().expect("dir");
    let mut conn = Connection::open(dir.path().join("t.db")).expect("open");
    crate::schema::migrate_to(&mut conn, 16).expect("schema 16");
    fill(&conn);
    let from_rows = all_stats(&conn);
    seal_filled(&conn);
    // As the build before schema 17 left it: no feed rows.
    conn.execute("DELETE FROM rollups WHERE kind = 4", [])
        .expect("no feeds");
    let query_rows = count(&conn, "SELECT count(*) FROM rollups WHERE log = 0");
    crate::schema::migrate(&mut conn).expect("upgrade");
    // The hits start over; the query log keeps its rollups.
    assert_eq!(
        sealed_hour(&conn, crate::rows::Table::Hits).expect("hits"),
        None
    );
    for table in [
        "rollups WHERE log = 1",
        "hit_minutes",
        "client_days WHERE log IN (1, 3)",
    ] {
        assert_eq!(
            count(&conn, &format!("SELECT count(*) FROM {table}")),
            0,
            "{table}"
        );
    }
    assert_eq!(
        count(&conn, "SELECT count(*) FROM rollups WHERE log = 0"),
        query_rows
    );
    // Read from the blocks meanwhile, then from the rollups sealed again, feeds and all.
    same(&from_rows, &all_stats(&conn));
    seal_filled(&conn);
    assert!(
        count(
            &conn,
            "SELECT count(*) FROM rollups WHERE kind = 4 AND span = 1"
        ) > 0
    );
    same(&from_rows, &all_stats(&conn));
}

#[test]
fn late_rows_are_added_to_sealed_hours_and_days() {
    let (_dir, conn) = store();
    fill(&conn);
    seal_filled(&conn);
    // Hits replayed from the spool long after their hours were sealed.
    let late: Vec<QueryEvent> = (0..40)
        .map(|i| event(i * 7, T0 + 3_000 + i * 3_000_000))
        .collect();
    crate::writer::insert_events(&conn, &late, &ledger(), true).expect("stored");
    let with_rollups = all_stats(&conn);
    // The replayed block spans more than a day: walks bounded by the longest block still
    // find every row in it.
    let clients = ["10.0.0.1", "10.0.0.2", "10.0.0.5"];
    let listed = client_pages(&conn, &clients, 23);
    conn.execute("DELETE FROM rollup_sealed", [])
        .expect("forget rollups");
    same(&all_stats(&conn), &with_rollups);
    assert_eq!(client_pages(&conn, &clients, 23), listed);
}

#[test]
fn retention_deletes_the_buckets_before_the_cut_off() {
    let (_dir, conn) = store();
    fill(&conn);
    seal_filled(&conn);
    let cut = T0 + DAY + 30 * 60_000;
    while prune(&conn, cut, cut).expect("prune") {}
    let oldest = |span: i64| {
        count(
            &conn,
            &format!("SELECT min(bucket) FROM rollups WHERE span = {span}"),
        )
    };
    assert_eq!(
        oldest(0),
        (T0 + DAY) / HOUR_MS,
        "the hour straddling the cut-off stays"
    );
    assert_eq!(oldest(1), T0 / DAY + 1);
    assert!(
        count(&conn, "SELECT min(minute) FROM hit_minutes") >= (T0 + DAY) / 60_000,
        "minutes of the hours before the cut-off are gone"
    );
    assert!(count(&conn, "SELECT min(minute) FROM hit_minutes") < (T0 + DAY) / 60_000 + 60);
}

#[test]
fn retention_deletes_a_day_of_postings_a_step_at_a_time() {
    let (_dir, conn) = store();
    // 5,000 name postings on day 10 of the query log, three on day 11.
    let mut insert = conn
        .prepare("INSERT INTO client_days (log, day, key, hours) VALUES (2, ?1, ?2, 1)")
        .expect("sql");
    for (day, n) in [(10i64, 5000u32), (11, 3)] {
        for i in 0..n {
            insert
                .execute(rusqlite::params![day, i.to_be_bytes().to_vec()])
                .expect("posting");
        }
    }
    let cut = 11 * DAY;
    let left = || count(&conn, "SELECT count(*) FROM client_days WHERE day = 10");
    assert!(prune(&conn, cut, cut).expect("prune"), "more to do");
    assert_eq!(left(), 5000 - 4096);
    assert!(!prune(&conn, cut, cut).expect("prune"), "done");
    assert_eq!(left(), 0);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM client_days"),
        3,
        "day 11 stays"
    );
}

/// [`pages`] of each client in each log, query log first.
fn client_pages(conn: &Connection, clients: &[&str], limit: usize) -> Vec<Vec<i64>> {
    [crate::rows::Table::Queries, crate::rows::Table::Hits]
        .into_iter()
        .flat_map(|t| clients.iter().map(move |c| (t, *c)))
        .map(|(t, c)| pages(conn, t, c, limit))
        .collect()
}

/// Every page of `client`'s rows, newest first, following the cursor.
fn pages(conn: &Connection, table: crate::rows::Table, client: &str, limit: usize) -> Vec<i64> {
    let mut ids = pages_since(conn, table, client, limit, Some(T0 + 3 * HOUR_MS + 5));
    // No lower bound: the walk down the postings must stop at the oldest day.
    ids.extend(pages_since(conn, table, client, limit, None));
    ids
}

fn pages_since(
    conn: &Connection,
    table: crate::rows::Table,
    client: &str,
    limit: usize,
    since_ms: Option<i64>,
) -> Vec<i64> {
    let key = crate::ip_key(client.parse().expect("ip"));
    every_page(
        conn,
        None,
        table,
        crate::rows::ListFilter {
            client: Some((key, key)),
            limit,
            since_ms,
            ..crate::rows::ListFilter::default()
        },
    )
}

/// The ids of every page of `f`, newest first, following the cursor.
fn every_page(
    conn: &Connection,
    hour_names: Option<&crate::hour_names::HourNames>,
    table: crate::rows::Table,
    mut f: crate::rows::ListFilter,
) -> Vec<i64> {
    let mut ids = Vec::new();
    loop {
        let page = crate::read::list_with(conn, hour_names, table, &f).expect("list");
        ids.extend(page.rows.iter().map(|r| r.id));
        match page.next {
            Some(c) => f.cursor = Some(c),
            None => return ids,
        }
    }
}

#[test]
fn client_lookups_walk_the_hours_their_postings_list_and_find_the_same_rows() {
    let (_dir, conn) = store();
    fill(&conn);
    // A client seen only in one early hour: its postings hold one hour.
    let rare = QueryEvent {
        client: "10.9.9.9:53".parse().expect("addr"),
        ..event(0, T0 + 5 * HOUR_MS + 17)
    };
    crate::writer::insert_events(&conn, &[rare], &ledger(), true).expect("stored");
    let clients = ["10.0.0.1", "10.0.0.5", "10.9.9.9", "172.16.0.1"];
    let before = client_pages(&conn, &clients, 37);
    assert!(before[0].len() > 200 && before[2].len() == 2 && before[3].is_empty());
    // Seal half of the log: postings for the first day and a half, blocks for the rest.
    seal_until(&conn, &mut Sealer::with_step(1), T0 + 36 * HOUR_MS);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM client_days WHERE hex(key) = '00000000000000000000FFFF0A090909'"
        ),
        2,
        "one query-log and one hit posting"
    );
    let after = client_pages(&conn, &clients, 37);
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(
            b == a,
            "case {i}: {} rows before, {} after",
            b.len(),
            a.len()
        );
    }
}

/// Every page of rows named `name` in each log (query log first), newest first, with and
/// without a lower bound.
fn name_pages(conn: &Connection, names: &[&str], limit: usize) -> Vec<Vec<i64>> {
    name_pages_with(conn, None, names, limit)
}

/// [`name_pages`], the unsealed hours narrowed by `hour_names` when given.
fn name_pages_with(
    conn: &Connection,
    hour_names: Option<&crate::hour_names::HourNames>,
    names: &[&str],
    limit: usize,
) -> Vec<Vec<i64>> {
    let mut out = Vec::new();
    for table in [crate::rows::Table::Queries, crate::rows::Table::Hits] {
        for name in names {
            let mut ids = Vec::new();
            for since_ms in [Some(T0 + 3 * HOUR_MS + 5), None] {
                let f = crate::rows::ListFilter {
                    name: Some(crate::rows::NameFilter::Exact(name.to_string())),
                    limit,
                    since_ms,
                    ..crate::rows::ListFilter::default()
                };
                ids.extend(every_page(conn, hour_names, table, f));
            }
            out.push(ids);
        }
    }
    out
}

#[test]
fn name_lookups_walk_the_hours_their_postings_list_and_find_the_same_rows() {
    let (_dir, conn) = store();
    fill(&conn);
    // A name asked once, in an early hour, and a late hit of it after the seal.
    let rare = QueryEvent {
        name: "rare.pool.example".into(),
        ..event(0, T0 + 5 * HOUR_MS + 17)
    };
    crate::writer::insert_events(&conn, &[rare], &ledger(), true).expect("stored");
    let names = [
        "n1.pool.example",
        "rare.pool.example",
        "never.pool.example",
        "N1.POOL.EXAMPLE",
    ];
    let before = name_pages(&conn, &names, 37);
    assert!(before[0].len() > 200 && before[1].len() == 2 && before[2].is_empty());
    // Seal half of the log: postings for the first day and a half, blocks for the rest.
    seal_until(&conn, &mut Sealer::with_step(1), T0 + 36 * HOUR_MS);
    assert_eq!(
        count(
            &conn,
            &format!(
                "SELECT count(*) FROM client_days WHERE log >= 2 AND key = x'{}'",
                hex::encode(postings::name_posting("rare.pool.example"))
            )
        ),
        2,
        "one query-log and one hit posting"
    );
    let late = QueryEvent {
        name: "rare.pool.example".into(),
        ..event(7, T0 + 6 * HOUR_MS)
    };
    crate::writer::insert_events(&conn, &[late], &ledger(), true).expect("stored");
    let sealed = name_pages(&conn, &names, 37);
    conn.execute("DELETE FROM rollup_sealed", [])
        .expect("forget rollups");
    let walked = name_pages(&conn, &names, 37);
    assert_eq!(walked[1].len(), 4, "the late row too");
    assert_eq!(sealed, walked);
}

#[test]
fn the_unsealed_hours_names_find_the_same_rows_as_their_blocks() {
    use crate::hour_names::HourNames;
    use crate::rows::Table;
    let (_dir, conn) = store();
    fill(&conn);
    let names = ["n1.pool.example", "never.pool.example", "N1.POOL.EXAMPLE"];
    let walked = name_pages(&conn, &names, 37);
    assert!(walked[0].len() > 200 && walked[1].is_empty());
    // Seal a day and a half: the rest is unsealed, its names learnt from its blocks.
    seal_until(&conn, &mut Sealer::with_step(1), T0 + 36 * HOUR_MS);
    let sealed = T0 / HOUR_MS + 36;
    let cache = HourNames::default();
    assert_eq!(name_pages_with(&conn, Some(&cache), &names, 37), walked);
    let hours = |name: &str, sealed: i64| {
        cache
            .hours_with(&conn, Table::Queries, name, sealed)
            .expect("hours")
    };
    assert_eq!(hours("never.pool.example", sealed), Some(vec![]));
    assert_eq!(
        hours("n1.pool.example", sealed),
        Some((sealed..sealed + 36).collect::<Vec<_>>()),
        "every unsealed hour holds n1 (one row in five, every 97 s)"
    );
    // A snapshot from before the cache's floor cannot be answered: it walks.
    assert_eq!(hours("never.pool.example", sealed - 1), None);

    // Rows written on a connection of their own (not handed over by the writer) are
    // decoded by the next lookup: a rare name in an unsealed hour is found.
    let rare = QueryEvent {
        name: "rare.pool.example".into(),
        ..event(0, T0 + 40 * HOUR_MS + 17)
    };
    crate::writer::insert_events(&conn, &[rare], &ledger(), true).expect("stored");
    assert_eq!(hours("rare.pool.example", sealed), Some(vec![sealed + 4]));
    let names = ["n1.pool.example", "rare.pool.example", "never.pool.example"];
    let walked = name_pages(&conn, &names, 37);
    assert_eq!(
        walked[1].len(),
        2,
        "the rare row, with and without a lower bound"
    );
    assert_eq!(name_pages_with(&conn, Some(&cache), &names, 37), walked);

    // Once every hour is sealed, the cache drops the sealed hours and still agrees.
    seal_filled(&conn);
    let sealed = (T0 + 3 * DAY) / HOUR_MS;
    assert_eq!(hours("rare.pool.example", sealed), Some(vec![]));
    assert_eq!(name_pages_with(&conn, Some(&cache), &names, 37), walked);
}

/// A reader decodes the blocks the writer did not hand over (written before it started), and
/// trusts the ones it did: the writer's list of names is what the cache holds for them.
#[test]
fn a_reader_decodes_the_blocks_before_the_writers_and_trusts_the_writers() {
    use crate::hour_names::{HourNames, Written};
    use crate::rows::Table;
    let (_dir, conn) = store();
    let at = T0 + 5 * HOUR_MS;
    let named = |name: &str| QueryEvent {
        name: name.into(),
        ..event(1, at)
    };
    for name in ["before.example", "also-before.example", "handed.example"] {
        crate::writer::insert_events(&conn, &[named(name)], &ledger(), true).expect("stored");
    }
    let cache = HourNames::default();
    // The writer hands over block 3 only, listing a name the block does not hold, so the test
    // can tell whether the reader decoded it.
    cache.note(&[Written {
        table: Table::Queries,
        id: 3,
        first_ms: at,
        last_ms: at,
        names: vec![crate::blocks::filter::name_key("listed.example")],
    }]);
    let hours = |name: &str| {
        cache
            .hours_with(&conn, Table::Queries, name, at / HOUR_MS)
            .expect("hours")
    };
    let hour = Some(vec![at / HOUR_MS]);
    assert_eq!(hours("before.example"), hour);
    assert_eq!(hours("also-before.example"), hour);
    assert_eq!(hours("listed.example"), hour, "block 3 is trusted");
    assert_eq!(hours("handed.example"), Some(vec![]), "and not decoded");
    // A block after the newest the cache knows, not handed over: decoded.
    crate::writer::insert_events(&conn, &[named("after.example")], &ledger(), true)
        .expect("stored");
    assert_eq!(hours("after.example"), hour);
}

#[test]
fn hours_sealed_before_the_name_postings_are_walked_whole() {
    let (_dir, conn) = store();
    fill(&conn);
    let names = ["n1.pool.example", "n3.pool.example"];
    let before = name_pages(&conn, &names, 41);
    seal_filled(&conn);
    // A store upgraded at hour 30: the hours before it were sealed without name postings.
    let upgraded = T0 / HOUR_MS + 30;
    conn.execute_batch(&format!(
        "DELETE FROM client_days WHERE log >= 2 AND (day + 1) * 24 <= {upgraded}; \
         UPDATE client_days SET hours = hours & ~((1 << ({upgraded} % 24)) - 1) \
           WHERE log >= 2 AND day = {upgraded} / 24; \
         UPDATE rollup_sealed SET names_from = {upgraded}"
    ))
    .expect("upgrade");
    assert_eq!(name_pages(&conn, &names, 41), before);
}

#[test]
fn rows_written_while_an_hour_is_being_sealed_are_counted_once() {
    use crate::rows::Table;
    let (_dir, conn) = store();
    fill(&conn);
    let mut sealer = Sealer::with_step(1);
    // The first hour's first block read, its seal not finished...
    assert!(sealer.step(&conn, Table::Hits, T0 + 3 * DAY).expect("step"));
    assert!(
        sealer
            .step(&conn, Table::Queries, T0 + 3 * DAY)
            .expect("step")
    );
    // ...when more rows of that hour arrive (not late: the hour is not sealed yet).
    let more: Vec<QueryEvent> = (0..20)
        .map(|i| event(i * 7, T0 + 1_000 + i * 60_000))
        .collect();
    crate::writer::insert_events(&conn, &more, &ledger(), true).expect("stored");
    let from_rows = all_stats(&conn);
    seal_until(&conn, &mut sealer, T0 + 3 * DAY + HOUR_MS);
    same(&from_rows, &all_stats(&conn));
}

#[test]
fn a_seal_stopped_midway_is_done_again_from_the_start() {
    use crate::rows::Table;
    let (_dir, conn) = store();
    fill(&conn);
    let from_rows = all_stats(&conn);
    let postings = |c: &Connection| -> Vec<(i64, i64, Vec<u8>, i64)> {
        c.prepare("SELECT log, day, key, hours FROM client_days ORDER BY 1, 2, 3")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    // A writer that wrote the first hour's rollup rows and postings, then crashed.
    let mut crashed = Sealer::with_step(1);
    for _ in 0..3 {
        for table in [Table::Queries, Table::Hits] {
            crashed
                .step(&conn, table, T0 + 3 * DAY + HOUR_MS)
                .expect("step");
        }
    }
    assert_eq!(
        sealed_hour(&conn, Table::Hits).expect("sealed"),
        Some(T0 / HOUR_MS)
    );
    assert!(!postings(&conn).is_empty());
    seal_filled(&conn);
    same(&from_rows, &all_stats(&conn));
    let once = postings(&conn);
    // The same postings as a seal that never stopped.
    conn.execute_batch("DELETE FROM rollups; DELETE FROM client_days; DELETE FROM rollup_sealed;")
        .expect("reset");
    seal_filled(&conn);
    assert_eq!(once, postings(&conn));
    same(&from_rows, &all_stats(&conn));
}
