//! Hits shipped from each node's local store into a real PostgreSQL (started by the test):
//! two nodes join one incident, an outage loses and doubles nothing, a shipper dying at any
//! point ships each hit once, and compaction never merges a block that is not shipped yet.
//!
//! Each node here is what `[store] backend = "postgres"` starts: a local store writer without
//! the tracker (`spawn_shipped`) and a shipper with it (`Tracker::shared`).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use poolguard::clients::Ledger;
use poolguard::config::{Backend, Config, StoreConfig};
use poolguard::incidents::config::EnforcementMode;
use poolguard::incidents::track::Tracker;
use poolguard::incidents::{Accountability, Alerts, ManualClock};
use poolguard::record::{Outcome, QueryEvent, Sink, Transport};
use poolguard::store::hook::BatchHook;
use poolguard::store::rows::Table;
use poolguard::store::shipped::ShipHealth;
use poolguard::store::{self, ShippedWatermark, Store, WriterHandle};
use poolguard::store_pg::ship::{ExitPoint, ShipOptions, Shipper};
use poolguard::store_pg::{Connector, PgStore};

/// 2026-11-01T00:00:00Z: older than compaction's 10 minutes of settling.
const T0: i64 = 1_793_491_200_000;
const DB: &str = "group";

fn hit(time_ms: i64, client: &str, name: &str) -> QueryEvent {
    let client: SocketAddr = client.parse().expect("addr");
    QueryEvent {
        time_ms,
        client,
        transport: Transport::Udp,
        name: name.into(),
        qtype: "A".into(),
        outcome: Outcome::Blocked,
        feed: Some(Arc::from("mining")),
        rule: Some(Arc::from(name)),
        rcode: "NOERROR",
        answer: "A 0.0.0.0".into(),
        latency_us: 10,
        upstream: None,
    }
}

/// Polls `done` every 10 ms for at most 30 s; panics with `what` and the last state.
fn wait_for(what: &str, mut done: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last = match done() {
            Ok(()) => return,
            Err(state) => state,
        };
        assert!(Instant::now() < deadline, "{what}: still {last}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The group's database, migrated; returns the `[store]` section every node shares.
async fn group(pg: &Postgres) -> StoreConfig {
    let url = pg.create_database(DB);
    let cfg = StoreConfig {
        backend: Backend::Postgres,
        url: Some(url),
        password_file: Some(pg.password_file()),
        ..StoreConfig::default()
    };
    PgStore::open(&cfg).await.expect("schema");
    cfg
}

fn quick() -> ShipOptions {
    ShipOptions {
        poll: Duration::from_millis(10),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..ShipOptions::default()
    }
}

/// One poolguard node: its local store and writer, and its shipper.
struct Node {
    name: &'static str,
    _dir: tempfile::TempDir,
    local: StoreConfig,
    group: StoreConfig,
    store: Store,
    sink: Arc<dyn Sink>,
    writer: Option<WriterHandle>,
    watermark: ShippedWatermark,
    acc: Arc<Accountability>,
    shipper: Option<Shipper>,
}

impl Node {
    fn start(name: &'static str, group: &StoreConfig, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = StoreConfig {
            path: dir.path().join("local.db"),
            query_retention_days: 36_500,
            hit_retention_days: 36_500,
            ..StoreConfig::default()
        };
        let mut config = Config::default();
        tweak(&mut config);
        let acc = Arc::new(Accountability::new(
            &config,
            Arc::new(ManualClock::at(T0)),
            Alerts::disabled(),
        ));
        let store = store::open(&local).expect("local store");
        let watermark = ShippedWatermark::nothing_shipped();
        let (sink, writer) = store::writer::spawn_shipped(
            &store,
            &local,
            Ledger::empty().shared(),
            watermark.clone(),
        )
        .expect("writer");
        let mut node = Self {
            name,
            _dir: dir,
            local,
            group: group.clone(),
            store,
            sink,
            writer: Some(writer),
            watermark,
            acc,
            shipper: None,
        };
        node.ship(quick());
        node
    }

    /// Starts a shipper (after the last one stopped or died).
    fn ship(&mut self, options: ShipOptions) {
        self.ship_with(options, true);
    }

    /// [`Node::ship`], with or without the incident tracker.
    fn ship_with(&mut self, options: ShipOptions, tracked: bool) {
        let connector = Connector::from_config(&self.group).expect("connector");
        let tracker: Option<Arc<dyn BatchHook>> =
            tracked.then(|| Arc::new(Tracker::shared(Arc::clone(&self.acc))) as _);
        self.shipper = Some(
            Shipper::start(
                &self.store,
                connector,
                self.name.to_string(),
                tracker,
                self.watermark.clone(),
                options,
            )
            .expect("shipper"),
        );
    }

    fn health(&self) -> Arc<ShipHealth> {
        self.shipper.as_ref().expect("shipper").health()
    }

    fn stop_shipping(&mut self) {
        if let Some(s) = self.shipper.take() {
            s.stop();
        }
    }

    /// Each event its own batch (so its own block), committed locally.
    async fn store_each(&self, events: impl IntoIterator<Item = QueryEvent>) {
        for e in events {
            assert!(self.sink.submit(e), "queued");
            self.writer().flush().await.expect("flushed");
        }
    }

    /// All `events` in one batch.
    async fn store_batch(&self, events: impl IntoIterator<Item = QueryEvent>) {
        for e in events {
            assert!(self.sink.submit(e), "queued");
        }
        self.writer().flush().await.expect("flushed");
    }

    fn writer(&self) -> &WriterHandle {
        self.writer.as_ref().expect("writer")
    }

    async fn restart_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.shutdown().await.expect("shutdown");
        }
        let (sink, writer) = store::writer::spawn_shipped(
            &self.store,
            &self.local,
            Ledger::empty().shared(),
            self.watermark.clone(),
        )
        .expect("writer");
        self.sink = sink;
        self.writer = Some(writer);
    }

    fn local_one(&self, sql: &str) -> i64 {
        self.store
            .write_connection()
            .expect("conn")
            .query_row(sql, [], |r| r.get(0))
            .expect(sql)
    }

    /// (rows, sum of times) of the local hits: what PostgreSQL must hold for this node.
    fn local_hits(&self) -> (i64, i64) {
        let rows =
            store::blocks::all_rows(&self.store.write_connection().expect("conn"), Table::Hits)
                .expect("rows");
        (rows.len() as i64, rows.iter().map(|r| r.time_ms).sum())
    }
}

fn pg_hits(pg: &Postgres, node: &str) -> (i64, i64) {
    let out = pg.psql(
        DB,
        &format!("SELECT count(*), coalesce(sum(time_ms), 0) FROM hits WHERE node = '{node}'"),
    );
    let (n, sum) = out.split_once('|').expect("two columns");
    (n.parse().expect("count"), sum.parse().expect("sum"))
}

/// Waits until PostgreSQL holds exactly this node's local hits.
fn wait_shipped(pg: &Postgres, node: &Node) {
    let want = node.local_hits();
    wait_for(&format!("{}'s hits in PostgreSQL", node.name), || {
        let got = pg_hits(pg, node.name);
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}, want {want:?}"))
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_hits_of_one_client_are_one_incident_and_reach_the_threshold_together() {
    let pg = Postgres::start();
    let cfg = group(&pg).await;
    let enforce = |c: &mut Config| {
        c.enforcement.mode = EnforcementMode::Quarantine;
        c.enforcement.incidents_threshold = 0;
        c.enforcement.hits_threshold = 5;
    };
    let a = Node::start("a", &cfg, enforce);
    let b = Node::start("b", &cfg, enforce);
    let ip = "10.0.0.9".parse().expect("ip");

    // The client mines through both resolvers: 3 hits on a, then 2 on b.
    a.store_batch((0..3).map(|i| hit(T0 + i, "10.0.0.9:5300", "x.pool.test")))
        .await;
    wait_shipped(&pg, &a);
    assert!(
        !a.acc.quarantine.contains(ip),
        "3 hits: below the threshold"
    );
    // b's hits come from another feed: the incident's feed list gets it beside a's.
    b.store_batch((3..5).map(|i| QueryEvent {
        feed: Some(Arc::from("crypto")),
        ..hit(T0 + i, "10.0.0.9:5301", "y.pool.test")
    }))
    .await;
    wait_shipped(&pg, &b);

    assert_eq!(
        pg.psql(
            DB,
            "SELECT count(*), sum(hit_count), sum(name_count) FROM incidents WHERE client_key = 'ip:10.0.0.9'"
        ),
        "1|5|2",
        "one incident holding the hits and names of both nodes"
    );
    assert_eq!(
        pg.psql(
            DB,
            "SELECT feeds FROM incidents WHERE client_key = 'ip:10.0.0.9'"
        ),
        "mining,crypto"
    );
    // A node's fold may carry a stale list: the database merges instead of overwriting.
    assert_eq!(
        pg.psql(
            DB,
            "SELECT poolguard_merge_list('mining,crypto', 'mining,adware') || '|' || poolguard_merge_list('', 'a,b')"
        ),
        "mining,crypto,adware|a,b"
    );
    assert_eq!(
        pg.psql(DB, "SELECT count(*) FROM quarantine WHERE ip = '10.0.0.9'"),
        "1",
        "5 hits across two nodes reach the threshold of 5"
    );
    assert!(
        b.acc.quarantine.contains(ip),
        "the node whose hit crossed the threshold applies it"
    );

    // Both nodes at once, a new client: the unique index lets one open it, the other joins.
    let (ra, rb) = tokio::join!(
        a.store_batch((0..20).map(|i| hit(T0 + 100 + i, "10.0.0.10:1", "z.pool.test"))),
        b.store_batch((0..20).map(|i| hit(T0 + 100 + i, "10.0.0.10:2", "z.pool.test"))),
    );
    let ((), ()) = (ra, rb);
    wait_shipped(&pg, &a);
    wait_shipped(&pg, &b);
    assert_eq!(
        pg.psql(
            DB,
            "SELECT count(*), sum(hit_count) FROM incidents WHERE client_key = 'ip:10.0.0.10'"
        ),
        "1|40"
    );
    assert_eq!(
        pg.psql(DB, "SELECT count(*) FROM hit_names"),
        "3",
        "x, y and z, each once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_delays_hits_and_loses_or_doubles_none() {
    let mut pg = Postgres::start();
    let cfg = group(&pg).await;
    let a = Node::start("a", &cfg, |_| {});
    a.store_each((0..5).map(|i| hit(T0 + i, "10.0.0.7:53", "a.pool.test")))
        .await;
    wait_shipped(&pg, &a);
    let health = a.health();
    assert!(health.status(T0).healthy, "{:?}", health.status(T0));

    pg.stop_immediate();
    // DNS goes on: the local writer commits every hit meanwhile.
    a.store_each((5..25).map(|i| hit(T0 + i, "10.0.0.7:53", "a.pool.test")))
        .await;
    a.store_batch((25..60).map(|i| hit(T0 + i, "10.0.0.8:53", "b.pool.test")))
        .await;
    assert_eq!(a.local_hits().0, 60);
    assert!(
        a.writer().health().status().healthy,
        "the local writer is fine"
    );
    wait_for("the shipper to notice the outage", || {
        let s = health.status(T0);
        if !s.healthy && !s.connected && s.last_error.is_some() && s.unshipped_rows > 0 {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    });

    pg.start_again();
    wait_shipped(&pg, &a);
    assert_eq!(
        pg.psql(
            DB,
            "SELECT count(*), count(DISTINCT (local_block, local_index)) FROM hits"
        ),
        "60|60",
        "every hit exactly once"
    );
    assert_eq!(
        pg.psql(DB, "SELECT sum(hit_count) FROM incidents"),
        "60",
        "and counted once by incident tracking"
    );
    wait_for("the shipper to recover", || {
        let s = health.status(T0);
        if s.healthy && s.unshipped_rows == 0 {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipper_dying_before_or_after_its_commit_ships_every_hit_once() {
    let pg = Postgres::start();
    let cfg = group(&pg).await;
    let mut a = Node::start("a", &cfg, |_| {});
    a.stop_shipping();
    a.store_each((0..3).map(|i| hit(T0 + i, "10.0.0.7:53", "a.pool.test")))
        .await;

    for exit in [ExitPoint::BeforeCommit, ExitPoint::AfterCommit] {
        let local = a.local_hits().0;
        a.ship(ShipOptions {
            exit_at: Some(exit),
            ..quick()
        });
        let health = a.health();
        wait_for("the shipper to die", || {
            if health.status(T0).running {
                Err("running".into())
            } else {
                Ok(())
            }
        });
        a.shipper = None;
        let shipped = pg_hits(&pg, "a").0;
        match exit {
            ExitPoint::BeforeCommit => assert_eq!(shipped, 0, "rolled back"),
            ExitPoint::AfterCommit => {
                assert_eq!(shipped, local, "committed, not acknowledged")
            }
        }
        a.store_each((0..2).map(|i| hit(T0 + 10 + i, "10.0.0.7:53", "a.pool.test")))
            .await;
    }

    // Two shippers of the same node at once (a restart while the old one still runs): the
    // cursor row's lock lets one ship each block; the other finds it moved.
    a.ship(quick());
    let second = {
        let connector = Connector::from_config(&cfg).expect("connector");
        Shipper::start(
            &a.store,
            connector,
            "a".into(),
            Some(Arc::new(Tracker::shared(Arc::clone(&a.acc)))),
            a.watermark.clone(),
            quick(),
        )
        .expect("second shipper")
    };
    a.store_each((0..10).map(|i| hit(T0 + 100 + i, "10.0.0.7:53", "a.pool.test")))
        .await;
    wait_shipped(&pg, &a);
    second.stop();
    assert_eq!(a.local_hits().0, 17);
    assert_eq!(
        pg.psql(DB, "SELECT count(*), sum(hit_count) FROM incidents"),
        "1|17",
        "no hit counted twice"
    );
    assert_eq!(
        pg.psql(DB, "SELECT local_block FROM ship_cursor WHERE node = 'a'"),
        a.local_one("SELECT max(id) FROM hit_blocks").to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_never_merges_hit_blocks_that_are_not_shipped() {
    let pg = Postgres::start();
    let cfg = group(&pg).await;
    let mut a = Node::start("a", &cfg, |_| {});
    a.store_each((0..20).map(|i| hit(T0 + i, "10.0.0.7:53", "a.pool.test")))
        .await;
    wait_shipped(&pg, &a);
    assert_eq!(a.watermark.get(), 20, "blocks 1..=20 shipped");
    a.stop_shipping();
    a.store_each((20..40).map(|i| hit(T0 + i, "10.0.0.7:53", "a.pool.test")))
        .await;

    // A writer's upkeep runs as it starts: every block here is small and settled.
    a.restart_writer().await;
    wait_for("compaction of the shipped blocks", || {
        match a.local_one("SELECT count(*) FROM hit_blocks WHERE id <= 20") {
            1 => Ok(()),
            n => Err(format!("{n} blocks")),
        }
    });
    assert_eq!(
        a.local_one("SELECT count(*) FROM hit_blocks WHERE id > 20 AND rows = 1"),
        20,
        "the unshipped blocks are untouched"
    );

    a.ship(quick());
    wait_shipped(&pg, &a);
    assert_eq!(
        pg.psql(
            DB,
            "SELECT count(*), count(DISTINCT local_block), min(local_block) FROM hits WHERE local_block > 20"
        ),
        "20|20|21",
        "each unshipped block shipped as it was"
    );
    assert_eq!(pg.psql(DB, "SELECT sum(hit_count) FROM incidents"), "40");
}

/// Who held the address at the hit's time (the identity index plugged into the local writer)
/// reaches PostgreSQL with the hit: MAC, account, host name and the sources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_at_the_hits_time_is_shipped_with_it() {
    use poolguard::identity::{Event, IdentityIndex, Interval, OPEN, Source};
    let pg = Postgres::start();
    let cfg = group(&pg).await;
    let a = Node::start("a", &cfg, |_| {});
    let index = IdentityIndex::shared();
    let held = |mac: &str, account: Option<&str>, source| {
        Event::Held(Interval {
            addr: "10.0.0.7".parse().expect("ip"),
            start_ms: T0,
            end_ms: OPEN,
            mac: Some(mac.into()),
            account: account.map(Arc::from),
            hostname: (source == Source::Kea).then(|| Arc::from("dorm-pc")),
            source,
        })
    };
    index.apply_all([
        held("00:1a:2b:3c:4d:5e", None, Source::Kea),
        held("00:1a:2b:3c:4d:5e", Some("lina"), Source::Radius),
    ]);
    assert!(a.writer().attribute_with(index));
    a.store_each([hit(T0 + 5, "10.0.0.7:53", "a.pool.test")])
        .await;
    wait_shipped(&pg, &a);
    assert_eq!(
        pg.psql(
            DB,
            "SELECT mac, account, hostname, identity_source FROM hits"
        ),
        "00:1a:2b:3c:4d:5e|lina|dorm-pc|kea+radius"
    );
}

/// Hits shipped per second into PostgreSQL on this machine (with incident tracking unless
/// `SHIP_TRACKER=off`, 256 clients, blocks of 4096 as a busy writer stores them). By hand:
/// `cargo test --release --test store_pg_ship -- --ignored --nocapture ship_rate`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn ship_rate() {
    let total: i64 = std::env::var("SHIP_HITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let pg = Postgres::start();
    let cfg = group(&pg).await;
    let mut a = Node::start("a", &cfg, |_| {});
    a.stop_shipping();
    let conn = a.store.write_connection().expect("conn");
    let ledger = Ledger::empty();
    let mut t = 0;
    while t < total {
        let batch: Vec<QueryEvent> = (t..(t + 4096).min(total))
            .map(|i| {
                hit(
                    T0 + i,
                    &format!("10.1.{}.{}:53", i % 256 / 16, i % 16),
                    &format!("n{}.pool.test", i % 1000),
                )
            })
            .collect();
        store::writer::insert_events(&conn, &batch, &ledger, false).expect("local");
        t += 4096;
    }
    let tracked = std::env::var("SHIP_TRACKER").map_or(true, |v| v != "off");
    if std::env::var("SHIP_ROLLUPS").is_ok_and(|v| v == "off") {
        // The cost of the rollup trigger (schema step 4), measured by its absence.
        pg.psql(DB, "DROP TRIGGER hits_rolled ON hits");
    }
    let started = Instant::now();
    a.ship_with(ShipOptions::default(), tracked);
    wait_shipped(&pg, &a);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "shipped {total} hits in {secs:.2} s: {:.0} hits/s (tracker: {tracked})",
        total as f64 / secs
    );
}
