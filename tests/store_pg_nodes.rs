//! Two poolguard nodes sharing one PostgreSQL (`[store] backend = "postgres"`), as a campus
//! runs them: a quarantine made through node A's API is in force on node B's DNS without a
//! restart (the `poolguard_changes` notification), a release through B frees the client on
//! A, B's audit log shows A's change, and `/healthz` reports the database when it goes away.

mod common;

use common::postgres::Postgres;
use common::{POLL, TestBed, WAIT, answer_from, sha256_hex};
use serde_json::json;

const TOKEN: &str = "investigator-token-for-node-tests";
const CLIENT: &str = "127.0.0.30";
/// The notice page's address a quarantined client's A queries get.
const NOTICE: &str = "192.0.2.99";

/// A node named `node` on the shared database `url`.
async fn node(pg: &Postgres, url: &str, node: &str) -> TestBed {
    let toml = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\
         [[api.tokens]]\nname = \"alice\"\nrole = \"investigator\"\nsha256 = \"{}\"\n\
         [store]\npath = \"data/node.db\"\nflush_interval_ms = 20\nbackend = \"postgres\"\n\
         url = \"{url}\"\npassword_file = \"{}\"\nnode = \"{node}\"\n\
         [enforcement]\nmode = \"quarantine\"\nnotice_ipv4 = \"{NOTICE}\"\nnotice_ipv6 = \"2001:db8::99\"\n",
        sha256_hex(TOKEN),
        pg.password_file().display()
    );
    TestBed::builder().toml(&toml).start().await
}

/// `bed`'s answer to `CLIENT` for `www.example.test A`.
async fn www_for_client(bed: &TestBed) -> Vec<String> {
    answer_from(bed, CLIENT, "www.example.test.").await
}

/// Polls `bed`'s DNS until `CLIENT` gets `expected` (every [`POLL`], at most [`WAIT`]).
async fn until_answer(bed: &TestBed, expected: &str, what: &str) {
    let tries = WAIT.as_millis() / POLL.as_millis();
    for _ in 0..tries {
        if www_for_client(bed).await == [expected] {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantine_through_one_node_is_in_force_on_the_other() {
    let mut pg = Postgres::start();
    let url = pg.create_database("campus");
    let a = node(&pg, &url, "node-a").await;
    let b = node(&pg, &url, "node-b").await;
    assert_eq!(
        www_for_client(&b).await,
        ["192.0.2.10"],
        "not quarantined yet"
    );

    let (status, body) = a
        .api_json(
            reqwest::Method::POST,
            "/api/v1/quarantine",
            TOKEN,
            &json!({"ip": CLIENT, "reason": "mining seen by the NOC"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    until_answer(
        &b,
        NOTICE,
        "node B to wall the client quarantined through node A",
    )
    .await;
    assert_eq!(
        pg.psql(
            "campus",
            "SELECT node || ' ' || action FROM audit WHERE target LIKE 'quarantine/%'"
        ),
        "node-a quarantine.add"
    );
    let (_, audit) = b
        .api_request(reqwest::Method::GET, "/api/v1/quarantine", TOKEN, None)
        .await;
    assert_eq!(
        audit["items"][0]["ip"], CLIENT,
        "B's API reads the shared list: {audit}"
    );

    let (status, body) = b
        .api_request(
            reqwest::Method::DELETE,
            &format!("/api/v1/quarantine/{CLIENT}?reason=cleaned"),
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status.as_u16(), 200, "{body}");
    until_answer(
        &a,
        "192.0.2.10",
        "node A to free the client released through node B",
    )
    .await;

    // The deadline checks, alerts and health read the shared store too.
    assert_eq!(
        a.running().check_deadlines().await.expect("deadline check"),
        0
    );
    // The shipper connects on its own task after start-up: until its first connection
    // `/healthz` says degraded (pg_ship.connected = false), which a loaded machine can stretch
    // past this point. Poll (bounded) for the healthy state instead of taking the first answer.
    let b_api = b.api_url();
    common::eventually("node B healthy with its database reachable", || {
        let b_api = b_api.clone();
        async move {
            let (code, doc) = common::healthz_at(&b_api).await;
            if code == 200 && doc["database"] == "ok" {
                Ok(())
            } else {
                Err(format!("{code} {doc}"))
            }
        }
    })
    .await;

    pg.stop_immediate();
    let health = reqwest::get(format!("{}/healthz", b.api_url()))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 503);
    let doc: serde_json::Value = health.json().await.expect("json");
    assert_eq!(doc["status"], "degraded");
    assert!(
        doc["database"]
            .as_str()
            .unwrap_or("")
            .starts_with("unreachable"),
        "{doc}"
    );
    // DNS does not wait for the database: the node still answers.
    assert_eq!(www_for_client(&b).await, ["192.0.2.10"]);
    a.shutdown().await;
    b.shutdown().await;
}

/// `poolguard check` with `backend = "postgres"` at `url`, the password in `password`.
fn check_with(url: &str, password: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("db-password"), format!("{password}\n")).expect("password");
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[upstream]\nservers = [\"127.0.0.1:5300\"]\n\
             [store]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_file = \"db-password\"\n"
        ),
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_poolguard"))
        .arg("check")
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .output()
        .expect("poolguard runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_connects_to_the_shared_database_and_names_a_failure() {
    let pg = Postgres::start();
    let url = pg.create_database("checked");
    // The password file's path is relative to the config, as every path in it.
    let (ok, out) = check_with(&url, common::postgres::PASSWORD);
    assert!(ok, "{out}");
    assert!(out.contains("store: PostgreSQL"), "{out}");
    assert!(out.contains("schema not created yet"), "{out}");
    let (ok, out) = check_with(&url, "wrong");
    assert!(!ok, "{out}");
    assert!(out.contains("password authentication failed"), "{out}");
}
