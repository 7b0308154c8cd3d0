//! Two real poolguard nodes on one real PostgreSQL (`[store] backend = "postgres"`): a
//! client mining through both resolvers has one incident holding every hit; while PostgreSQL
//! is down both answer DNS, `/healthz` says `degraded`, and every hit arrives once after.

mod common;

use common::postgres::Postgres;
use common::{Proto, SINK_V4, TestBed, addresses, eventually, query_from, request};
use hickory_proto::rr::RecordType;

const DB: &str = "group";

async fn node(pg: &Postgres, url: &str, name: &str) -> TestBed {
    TestBed::builder()
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n\
             [store]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_file = \"{}\"\n\
             node = \"{name}\"\npath = \"data/local.db\"\nflush_interval_ms = 20\n",
            pg.password_file().display()
        ))
        .start()
        .await
}

/// A blocked query from the miner 127.0.0.20, answered with the sinkhole.
async fn mine(bed: &TestBed) {
    let m = query_from(
        "127.0.0.20".parse().expect("ip"),
        bed.dns,
        Proto::Udp,
        &request("xmr.pool.minergate.com.", RecordType::A, true),
    )
    .await;
    assert_eq!(addresses(&m), [SINK_V4]);
}

async fn pg_hits_are(pg: &Postgres, want: &str) {
    eventually("hits in PostgreSQL", || async {
        let got = pg.psql(
            DB,
            "SELECT string_agg(node || '=' || n, ',' ORDER BY node) FROM \
             (SELECT node, count(*) AS n FROM hits GROUP BY node) c",
        );
        if got == want { Ok(()) } else { Err(got) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_ship_one_clients_hits_into_one_incident_and_ride_out_an_outage() {
    let mut pg = Postgres::start();
    let url = pg.create_database(DB);
    let a = node(&pg, &url, "a").await;
    let b = node(&pg, &url, "b").await;

    for _ in 0..3 {
        mine(&a).await;
    }
    for _ in 0..2 {
        mine(&b).await;
    }
    a.running().flush().await.expect("flush a");
    b.running().flush().await.expect("flush b");
    pg_hits_are(&pg, "a=3,b=2").await;
    assert_eq!(
        pg.psql(
            DB,
            "SELECT count(*), sum(hit_count) FROM incidents WHERE client_key = 'ip:127.0.0.20'"
        ),
        "1|5",
        "one incident for the client, whichever node answered"
    );
    let (code, health) = a.healthz().await;
    assert_eq!((code, &health["status"]), (200, &"ok".into()), "{health}");
    assert_eq!(health["pg_ship"]["connected"], true, "{health}");

    pg.stop_immediate();
    for _ in 0..4 {
        mine(&a).await;
        mine(&b).await;
    }
    a.running()
        .flush()
        .await
        .expect("the local store takes hits meanwhile");
    eventually("/healthz to say degraded", || async {
        let (code, health) = a.healthz().await;
        if code == 503 && health["status"] == "degraded" && health["pg_ship"]["connected"] == false
        {
            Ok(())
        } else {
            Err(health.to_string())
        }
    })
    .await;

    pg.start_again();
    b.running().flush().await.expect("flush b");
    pg_hits_are(&pg, "a=7,b=6").await;
    assert_eq!(
        pg.psql(DB, "SELECT sum(hit_count) FROM incidents"),
        "13",
        "each hit counted once"
    );
    eventually("/healthz to recover", || async {
        let (code, health) = a.healthz().await;
        if code == 200 {
            Ok(())
        } else {
            Err(health.to_string())
        }
    })
    .await;
    let metrics = reqwest::get(format!("{}/metrics", a.api_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    // One recorder per process: both nodes of this test count into it.
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("poolguard_pg_ship_hits_total") && l.ends_with(" 13")),
        "{metrics}"
    );
}
