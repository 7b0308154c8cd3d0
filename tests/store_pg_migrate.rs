//! `poolguard store migrate --from <sqlite> --to <postgres>`: a single node's evidence, made
//! by a real run of that node, copied into a real PostgreSQL; counts equal, a second run
//! copies nothing, and a run stopped midway (`--limit`) is continued by the next.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::{Proto, TestBed, free_tcp_port, query_from, request, sha256_hex};
use hickory_proto::rr::RecordType;
use serde_json::json;

const DB: &str = "group";
const TOKEN: &str = "investigator-token-for-migrate";
const NODE: &str = "old-resolver";

/// SQLite count of `sql` in the store at `path`.
fn sqlite_count(path: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("open store");
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// A single node on SQLite: two miners (one over the threshold, quarantined), a note, a
/// quarantine through the API, failed webhook deliveries. Returns its stopped directory.
async fn single_node_store() -> tempfile::TempDir {
    let closed = free_tcp_port();
    let bed = TestBed::builder()
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n\
             [[api.tokens]]\nname = \"alice\"\nrole = \"investigator\"\nsha256 = \"{}\"\n\
             [store]\npath = \"data/node.db\"\nflush_interval_ms = 20\n\
             [enforcement]\nmode = \"quarantine\"\nnotice_ipv4 = \"192.0.2.99\"\n\
             notice_ipv6 = \"2001:db8::99\"\nhits_threshold = 3\n\
             [alerts]\nmax_attempts = 1\n[[alerts.webhooks]]\nurl = \"http://127.0.0.1:{closed}/hook\"\n",
            sha256_hex(TOKEN)
        ))
        .start()
        .await;
    for (client, n) in [("127.0.0.20", 4), ("127.0.0.21", 2)] {
        let ip: IpAddr = client.parse().expect("ip");
        for i in 0..n {
            let name = format!("m{i}.pool.minergate.com.");
            query_from(
                ip,
                bed.dns,
                Proto::Udp,
                &request(&name, RecordType::A, true),
            )
            .await;
        }
    }
    bed.running().flush().await.expect("flush");
    let (status, body) = bed
        .api_json(
            reqwest::Method::POST,
            "/api/v1/incidents/1/notes",
            TOKEN,
            &json!({"text": "called the owner"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = bed
        .api_json(
            reqwest::Method::POST,
            "/api/v1/quarantine",
            TOKEN,
            &json!({"ip": "127.0.0.40", "reason": "seen by the NOC"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // incident.opened twice, quarantine.on twice (the threshold, the API): one failed
    // attempt each.
    let store = bed.dir.path().join("data/node.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    while sqlite_count(&store, "SELECT count(*) FROM alert_deliveries") < 4 {
        assert!(
            Instant::now() < deadline,
            "the alert deliveries were not logged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bed.shutdown().await
}

/// Runs `poolguard store migrate` (in an empty directory: no config.toml); returns stdout.
fn migrate(pg: &Postgres, store: &Path, limit: Option<u64>) -> String {
    migrate_as(pg, store, NODE, limit)
}

/// [`migrate`] with the rows carrying node name `node`.
fn migrate_as(pg: &Postgres, store: &Path, node: &str, limit: Option<u64>) -> String {
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_poolguard"));
    cmd.current_dir(cwd.path())
        .args(["store", "migrate", "--from"])
        .arg(store)
        .args(["--to", &pg.url(DB), "--node", node, "--password-file"])
        .arg(pg.password_file());
    if let Some(n) = limit {
        cmd.args(["--limit", &n.to_string()]);
    }
    let out = cmd.output().expect("poolguard runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The line `poolguard store migrate` printed for `table`.
fn line<'a>(out: &'a str, table: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{table}: ")))
        .unwrap_or_else(|| panic!("no {table} line in\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_nodes_evidence_moves_to_postgres_once_and_resumes() {
    let dir = single_node_store().await;
    let store = dir.path().join("data/node.db");
    let pg = Postgres::start();
    pg.create_database(DB);

    // (table, its count in SQLite, the count of this node's rows in PostgreSQL)
    let checks = [
        (
            "incidents",
            "SELECT count(*) FROM incidents",
            "SELECT count(*) FROM incidents WHERE opened_by = 'old-resolver'",
        ),
        (
            "incident_names",
            "SELECT count(*) FROM incident_names",
            "SELECT count(*) FROM incident_names",
        ),
        (
            "incident_notes",
            "SELECT count(*) FROM incident_notes",
            "SELECT count(*) FROM incident_notes",
        ),
        (
            "quarantine",
            "SELECT count(*) FROM quarantine",
            "SELECT count(*) FROM quarantine",
        ),
        (
            "audit",
            "SELECT count(*) FROM audit",
            "SELECT count(*) FROM audit WHERE node = 'old-resolver'",
        ),
        (
            "alert_deliveries",
            "SELECT count(*) FROM alert_deliveries",
            "SELECT count(*) FROM alert_deliveries WHERE node = 'old-resolver'",
        ),
        (
            "hits",
            "SELECT coalesce(sum(rows), 0) FROM hit_blocks",
            "SELECT count(*) FROM hits WHERE node = 'old-resolver'",
        ),
    ];
    let source: Vec<i64> = checks.iter().map(|c| sqlite_count(&store, c.1)).collect();
    assert_eq!(source[0], 2, "two incidents");
    assert!(
        source.iter().all(|&n| n > 0),
        "every table has rows: {source:?}"
    );

    // Stopped midway: one row (or hit block) per table.
    let out = migrate(&pg, &store, Some(1));
    assert!(out.contains("incomplete"), "{out}");
    assert_eq!(pg.psql(DB, "SELECT count(*) FROM incidents"), "1", "{out}");
    assert!(
        line(&out, "incidents").ends_with(" 1 copied by this run"),
        "{out}"
    );

    let out = migrate(&pg, &store, None);
    assert!(
        out.contains("complete: every row is in PostgreSQL once"),
        "{out}"
    );
    let target = |checks: &[(&str, &str, &str)]| -> Vec<i64> {
        checks
            .iter()
            .map(|c| pg.psql(DB, c.2).parse().expect("count"))
            .collect()
    };
    assert_eq!(target(&checks), source, "counts equal\n{out}");
    for ((table, _, _), n) in checks.iter().zip(&source) {
        assert!(
            line(&out, table).starts_with(&format!("{table}: {n} in SQLite, {n} in PostgreSQL")),
            "{out}"
        );
    }
    // The target had no incidents: the node's ids are kept, and new ones come after them.
    assert_eq!(
        pg.psql(
            DB,
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM incidents"
        ),
        "1,2"
    );
    assert_eq!(
        pg.psql(
            DB,
            "SELECT nextval(pg_get_serial_sequence('incidents', 'id'))"
        ),
        "3"
    );
    // The hits' progress is the node's ship cursor: started on this store as node
    // `old-resolver`, the node ships only what is new.
    assert_eq!(
        pg.psql(
            DB,
            "SELECT local_block FROM ship_cursor WHERE node = 'old-resolver'"
        ),
        sqlite_count(&store, "SELECT max(id) FROM hit_blocks").to_string()
    );

    let again = migrate(&pg, &store, None);
    for (table, _, _) in &checks {
        assert!(
            line(&again, table).ends_with(" 0 copied by this run"),
            "{again}"
        );
    }
    assert_eq!(target(&checks), source, "a second run copies nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_a_database_with_incidents_the_nodes_ids_shift_with_every_reference() {
    let dir = single_node_store().await;
    let store = dir.path().join("data/node.db");
    let pg = Postgres::start();
    pg.create_database(DB);
    // The group already has an incident (another node's): schema first, then the row.
    let empty = tempfile::tempdir().expect("tempdir");
    let nothing = empty.path().join("empty.db");
    rusqlite::Connection::open(&nothing).expect("empty store");
    drop(
        TestBed::builder()
            .toml(&format!("[store]\npath = \"{}\"\n", nothing.display()))
            .start()
            .await
            .shutdown()
            .await,
    );
    migrate_as(&pg, &nothing, "other", None);
    pg.psql(
        DB,
        "INSERT INTO incidents (client_key, client, opened_ms, last_hit_ms, identify_due_ms, \
         report_due_ms, opened_by) VALUES ('ip:10.9.9.9', '10.9.9.9', 1, 1, 2, 3, 'other')",
    );

    let out = migrate(&pg, &store, None);
    assert!(out.contains("shifted by 1"), "{out}");
    assert!(out.contains("complete"), "{out}");
    assert_eq!(
        pg.psql(DB, "SELECT string_agg(id::text, ',' ORDER BY id) FROM incidents WHERE opened_by = 'old-resolver'"),
        "2,3"
    );
    // Notes, names, quarantine and audit targets follow their incident.
    assert_eq!(
        pg.psql(DB, "SELECT count(*) FROM incident_notes n JOIN incidents i ON i.id = n.incident_id WHERE i.opened_by = 'old-resolver'"),
        sqlite_count(&store, "SELECT count(*) FROM incident_notes").to_string()
    );
    assert_eq!(
        pg.psql(
            DB,
            "SELECT string_agg(DISTINCT incident_id::text, ',') FROM incident_names"
        ),
        "2,3"
    );
    assert_eq!(
        pg.psql(
            DB,
            "SELECT incident_id FROM quarantine WHERE ip = '127.0.0.20'"
        ),
        "2"
    );
    let about_first = sqlite_count(
        &store,
        "SELECT count(*) FROM audit WHERE target = 'incident/1'",
    );
    assert!(about_first > 0, "the note's audit row names incident/1");
    assert_eq!(
        pg.psql(DB, "SELECT count(*) FROM audit WHERE target = 'incident/2'"),
        about_first.to_string()
    );
}
