//! The faults issue 16 names, each against real processes: poolguard nodes run as the built
//! binary (child processes this test starts and kills by PID) on one real PostgreSQL.
//!
//! * A node is killed (SIGKILL) under load: the other node answers throughout; the killed one,
//!   restarted on the same config and local store, ships what it had committed; no hit is
//!   stored twice.
//! * The database is reachable but slow (a lock held by another session): DNS answers are not
//!   delayed; `/healthz` shows the hits waiting; every hit arrives once the lock is released.
//! * A node starts while PostgreSQL is down: it answers DNS, keeps its hits locally, ships them
//!   once the server is up, and takes the group's quarantine list at the listener's resync.

mod common;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use common::child::Process;
use common::postgres::Postgres;
use common::{
    CLIENT_TIMEOUT, Proto, SINK_V4, TestBed, addresses, healthz_at, request, try_query_raw_from,
};
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

const DB: &str = "group";
/// The miner every test's blocked queries come from.
const MINER: &str = "127.0.0.20";

/// A node named `name` on the shared database `url`, as a child process.
fn node(pg: &Postgres, url: &str, name: &str, extra: &str) -> Process {
    TestBed::builder()
        // One miner asking as fast as it can: not the rate limiter's business here.
        .dns_option("rate_limit_qps", "0")
        // One DNS worker: a client asking in sequence has its hits reach the writer in the
        // order they were answered (two workers may hand them over in either order), which
        // the SIGKILL test's "only the newest are lost" relies on.
        .workers(1)
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n\
             [store]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_file = \"{}\"\n\
             node = \"{name}\"\npath = \"data/local.db\"\nflush_interval_ms = 20\n{extra}",
            pg.password_file().display()
        ))
        .spawn_process()
}

/// Asks `server` for `name A` from `src`, with the normal client timeout; the answer's
/// addresses, or why there was none.
async fn ask(src: &str, server: std::net::SocketAddr, name: &str) -> Result<Vec<String>, String> {
    let src: IpAddr = src.parse().expect("ip");
    let bytes = request(name, RecordType::A, true).to_vec().expect("encode");
    let raw = try_query_raw_from(src, server, Proto::Udp, &bytes, CLIENT_TIMEOUT).await?;
    let answer = Message::from_vec(&raw).map_err(|e| e.to_string())?;
    Ok(addresses(&answer))
}

/// A blocked query that must be answered with the sinkhole.
async fn mine(server: std::net::SocketAddr, name: &str) {
    let got = ask(MINER, server, name).await;
    assert_eq!(got, Ok(vec![SINK_V4.to_string()]), "{name} via {server}");
}

/// Polls `check` (a psql read) every 20 ms until it returns `want`, for at most 60 s.
fn pg_until(pg: &Postgres, what: &str, sql: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = pg.psql(DB, sql);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: `{sql}` still says {got}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `/healthz` of `node` every 20 ms until `ok` holds for its JSON, for at most 60 s.
async fn health_until(node: &Process, what: &str, ok: impl Fn(u16, &serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, health) = healthz_at(&node.api_url()).await;
        if ok(code, &health) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {code} {health}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The names of node `name`'s hits in PostgreSQL, with how often each is there.
fn pg_names(pg: &Postgres, name: &str) -> Vec<(String, u32)> {
    pg.psql(
        DB,
        &format!(
            "SELECT name || '|' || count(*) FROM hits WHERE node = '{name}' GROUP BY name ORDER BY name"
        ),
    )
    .lines()
    .filter_map(|l| {
        let (n, c) = l.rsplit_once('|')?;
        Some((n.to_string(), c.parse().ok()?))
    })
    .collect()
}

/// Blocked queries A answered before the kill, stopping at its first unanswered one.
const LOAD_A: usize = 3_000;
/// A is killed once it has answered this many.
const KILL_AT: usize = 200;
/// Blocked queries B answers at most (it runs until A is back).
const LOAD_B: usize = 20_000;
/// Blocked queries A answers after its restart.
const AFTER: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_at_most_its_batch_in_flight_and_nothing_twice() {
    let pg = Postgres::start();
    let url = pg.create_database(DB);
    let mut a = node(&pg, &url, "a", "");
    let b = node(&pg, &url, "b", "");

    // A's load: one client asking in sequence, so "answered" has an order; it ends at the
    // first query A does not answer (A was killed) or after LOAD_A.
    let answered_a = Arc::new(Mutex::new(Vec::<String>::new()));
    let count_a = Arc::new(AtomicUsize::new(0));
    let load_a = {
        let (answered, count, dns) = (answered_a.clone(), count_a.clone(), a.dns);
        tokio::spawn(async move {
            for i in 0..LOAD_A {
                let name = format!("a{i}.pool.minergate.com");
                match ask(MINER, dns, &format!("{name}.")).await {
                    Ok(got) if got == [SINK_V4] => {
                        answered
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(name);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => return,
                }
            }
        })
    };
    // B's load runs through the kill and the restart; every query must be answered.
    let stop_b = Arc::new(AtomicBool::new(false));
    let load_b = {
        let (stop, dns) = (stop_b.clone(), b.dns);
        tokio::spawn(async move {
            let mut answered = 0;
            for i in 0..LOAD_B {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let name = format!("b{i}.pool.minergate.com.");
                match ask(MINER, dns, &name).await {
                    Ok(got) if got == [SINK_V4] => answered += 1,
                    other => return Err(format!("{name}: {other:?}")),
                }
            }
            Ok(answered)
        })
    };

    let deadline = Instant::now() + Duration::from_secs(60);
    while count_a.load(Ordering::SeqCst) < KILL_AT {
        assert!(
            !load_a.is_finished() && Instant::now() < deadline,
            "A answered only {} blocked queries:\n{}",
            count_a.load(Ordering::SeqCst),
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = a.pid();
    a.kill();
    load_a.await.expect("A's load ends at the kill");
    let before: Vec<String> = answered_a
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert!(before.len() >= KILL_AT, "killed PID {pid} under load");

    let a = a.kill_and_restart();
    for i in 0..AFTER {
        mine(a.dns, &format!("after{i}.pool.minergate.com.")).await;
    }
    stop_b.store(true, Ordering::SeqCst);
    let answered_b = load_b
        .await
        .expect("B's load")
        .unwrap_or_else(|e| panic!("B left a query unanswered: {e}\nB's log:\n{}", b.log()));
    assert!(answered_b > 0);

    // B was never stopped: every hit it answered arrives. A's hits after the restart ship in
    // block order after whatever A had committed before the kill, so once they are there, all
    // of A's survivors are too.
    pg_until(
        &pg,
        "B's hits",
        "SELECT count(*) FROM hits WHERE node = 'b'",
        &answered_b.to_string(),
    );
    pg_until(
        &pg,
        "A's hits after its restart",
        "SELECT count(*) FROM hits WHERE node = 'a' AND name LIKE 'after%'",
        &AFTER.to_string(),
    );

    let stored_a = pg_names(&pg, "a");
    let stored_b = pg_names(&pg, "b");
    for (name, n) in stored_a.iter().chain(&stored_b) {
        assert_eq!(*n, 1, "{name} stored {n} times");
    }
    assert_eq!(stored_b.len(), answered_b, "each of B's hits once");
    // Nothing is stored that no client was answered for.
    let before_set: HashSet<&str> = before.iter().map(String::as_str).collect();
    let stored: HashSet<&str> = stored_a
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !n.starts_with("after"))
        .collect();
    assert!(
        stored.is_subset(&before_set),
        "a hit A never answered: {:?}",
        stored.difference(&before_set).collect::<Vec<_>>()
    );
    // What the kill lost: hits answered but not yet committed to A's local store. The writer
    // commits in the order it received them, so they are the newest ones: a suffix of what A
    // answered (the batch in flight), never a hole in the middle.
    let lost = before
        .iter()
        .filter(|n| !stored.contains(n.as_str()))
        .count();
    let kept = before.len() - lost;
    assert!(
        before[..kept].iter().all(|n| stored.contains(n.as_str())),
        "a hit lost from the middle of A's answers, not only its batch in flight"
    );
    eprintln!(
        "A answered {} before SIGKILL; {kept} in PostgreSQL, {lost} lost in flight",
        before.len()
    );
    // Every hit stored counted once in the client's one incident.
    assert_eq!(
        pg.psql(
            DB,
            "SELECT count(*) || '|' || sum(hit_count) FROM incidents WHERE client_key = 'ip:127.0.0.20'"
        ),
        format!("1|{}", stored_a.len() + stored_b.len()),
        "one incident, each stored hit counted once"
    );
}

/// Sessions waiting for a lock in PostgreSQL.
const LOCK_WAITERS: &str = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_slowed_by_a_lock_delays_no_dns_answer_and_loses_no_hit() {
    const BLOCKED: usize = 50;
    const FORWARDED: usize = 50;
    let pg = Postgres::start();
    let url = pg.create_database(DB);
    let a = node(&pg, &url, "a", "");
    mine(a.dns, "first.pool.minergate.com.").await;
    pg_until(&pg, "the first hit", "SELECT count(*) FROM hits", "1");

    // Another session (a DBA's long migration, a stuck report) holds the tables the shipper
    // writes; the database answers everything else.
    let mut dba = pg.session(DB);
    dba.send(
        "BEGIN; LOCK TABLE hits IN ACCESS EXCLUSIVE MODE; \
         LOCK TABLE incidents IN ACCESS EXCLUSIVE MODE;",
    );
    pg_until(
        &pg,
        "the test's locks",
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
         WHERE c.relname IN ('hits', 'incidents') AND l.mode = 'AccessExclusiveLock' AND l.granted",
        "2",
    );
    // The shipper's next shipment waits on the lock.
    mine(a.dns, "waits.pool.minergate.com.").await;
    pg_until(&pg, "the shipper to wait on the lock", LOCK_WAITERS, "1");

    // Blocked and forwarded queries are all answered meanwhile (the normal client timeout).
    for i in 0..BLOCKED {
        mine(a.dns, &format!("slow{i}.pool.minergate.com.")).await;
    }
    let www = ask(MINER, a.dns, "www.example.test.").await;
    assert_eq!(www, Ok(vec!["192.0.2.10".to_string()]), "forwarded");
    for i in 1..FORWARDED {
        let got = ask("127.0.0.21", a.dns, &format!("n{i}.example.test.")).await;
        assert!(got.is_ok(), "forwarded n{i}.example.test: {got:?}");
    }
    // /healthz answers and shows the shipment waiting: its hit and their lag (`degraded` once
    // the oldest has waited a minute, shipper::LAG_LIMIT_MS; not waited for here).
    health_until(&a, "the shipping lag in /healthz", |_, h| {
        let ship = &h["pg_ship"];
        h["database"] == "ok"
            && ship["unshipped_hits"].as_i64() >= Some(1)
            && ship["lag_seconds"].as_f64().is_some_and(|s| s > 0.0)
    })
    .await;
    assert_eq!(pg.psql(DB, LOCK_WAITERS), "1", "still waiting: {}", a.log());

    dba.send("COMMIT;");
    dba.finish();
    let total = (BLOCKED + 2).to_string();
    pg_until(&pg, "every hit", "SELECT count(*) FROM hits", &total);
    assert_eq!(
        pg.psql(DB, "SELECT count(DISTINCT name) FROM hits"),
        total,
        "each once"
    );
    assert_eq!(
        pg.psql(
            DB,
            "SELECT count(*) || '|' || sum(hit_count) FROM incidents"
        ),
        format!("1|{total}")
    );
    health_until(&a, "the lag to clear", |code, h| {
        code == 200 && h["pg_ship"]["unshipped_hits"] == 0
    })
    .await;
}

/// The client quarantined in PostgreSQL while the node is down.
const QUARANTINED: &str = "127.0.0.30";
/// The notice page's address a quarantined client's A queries get.
const NOTICE: &str = "192.0.2.99";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_while_the_database_is_down_answers_and_ships_when_it_is_back() {
    let mut pg = Postgres::start();
    let url = pg.create_database(DB);
    let enforcement = format!(
        "[enforcement]\nmode = \"quarantine\"\nnotice_ipv4 = \"{NOTICE}\"\nnotice_ipv6 = \"2001:db8::99\"\n"
    );
    // Another node made the schema and a quarantine is in the group's list.
    {
        let mut seed = node(&pg, &url, "seed", &enforcement);
        health_until(&seed, "the seed node's schema", |code, _| code == 200).await;
        seed.kill();
    }
    pg.psql(
        DB,
        &format!(
            "INSERT INTO quarantine (ip, since_ms, actor, reason) \
             VALUES ('{QUARANTINED}', 0, 'alice', 'seen by the NOC')"
        ),
    );
    pg.stop_immediate();

    let a = node(&pg, &url, "a", &enforcement);
    for i in 0..10 {
        mine(a.dns, &format!("down{i}.pool.minergate.com.")).await;
    }
    // Not known yet: the list is in the database the node has not reached.
    let www = ask(QUARANTINED, a.dns, "www.example.test.").await;
    assert_eq!(www, Ok(vec!["192.0.2.10".to_string()]));
    health_until(
        &a,
        "/healthz degraded while PostgreSQL is down",
        |code, h| {
            code == 503
                && h["database"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("unreachable"))
                && h["pg_ship"]["unshipped_hits"] == 10
        },
    )
    .await;

    pg.start_again();
    pg_until(
        &pg,
        "the hits kept locally",
        "SELECT count(*) FROM hits WHERE node = 'a'",
        "10",
    );
    assert_eq!(pg.psql(DB, "SELECT count(DISTINCT name) FROM hits"), "10");
    // The listener's resync after it connects brings the list made while the node was away.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = ask(QUARANTINED, a.dns, "www.example.test.").await;
        if got == Ok(vec![NOTICE.to_string()]) {
            break;
        }
        assert!(Instant::now() < deadline, "still {got:?}:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    health_until(&a, "/healthz ok", |code, _| code == 200).await;
}
