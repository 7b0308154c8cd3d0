//! The PostgreSQL store against a real PostgreSQL server this test starts (initdb + pg_ctl,
//! as the `postgres` user when run as root): connection with the password from a file or the
//! environment, migrations under the lock when several nodes start at once, `check`.

mod common;

use common::postgres::{PASSWORD, Postgres};
use poolguard::config::{Backend, StoreConfig};
use poolguard::store_pg::{self, PgStore, schema};

fn pg_config(url: String) -> StoreConfig {
    StoreConfig {
        backend: Backend::Postgres,
        url: Some(url),
        ..StoreConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_at_once_migrate_once_and_register() {
    let pg = Postgres::start();
    let url = pg.create_database("group");
    let mut cfg = pg_config(url);
    cfg.password_file = Some(pg.password_file());
    // Three nodes start at the same moment: the advisory lock lets one create the schema; the
    // others wait and find it current (no "relation already exists").
    let opens = ["node-a", "node-b", "node-c"].map(|node| {
        let mut cfg = cfg.clone();
        cfg.node = Some(node.to_string());
        tokio::spawn(async move { PgStore::open(&cfg).await.map(|s| s.node().to_string()) })
    });
    for open in opens {
        let node = open.await.expect("task").expect("node opens the store");
        assert!(node.starts_with("node-"));
    }
    assert_eq!(
        pg.psql(
            "group",
            "SELECT version FROM poolguard_schema ORDER BY version"
        ),
        (1..=schema::SCHEMA_VERSION)
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        "each step applied exactly once"
    );
    assert_eq!(
        pg.psql(
            "group",
            "SELECT string_agg(name, ',' ORDER BY name) FROM nodes"
        ),
        "node-a,node-b,node-c"
    );
    let report = store_pg::check(&cfg).await.expect("check connects");
    assert!(
        report.contains(&format!("schema {} of", schema::SCHEMA_VERSION)),
        "{report}"
    );
}

#[tokio::test]
async fn the_password_comes_from_the_environment_and_a_wrong_one_is_named() {
    let pg = Postgres::start();
    let url = pg.create_database("envpw");
    let mut cfg = pg_config(url);
    // SAFETY: this test binary's tests do not read this variable concurrently elsewhere.
    unsafe { std::env::set_var("POOLGUARD_TEST_PG_PASSWORD", PASSWORD) };
    cfg.password_env = Some("POOLGUARD_TEST_PG_PASSWORD".into());
    let store = PgStore::open(&cfg)
        .await
        .expect("opens with the env password");
    assert_eq!(store.node(), store_pg::node_name(&cfg));

    let mut wrong = cfg.clone();
    wrong.password_env = None;
    let file = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(file.path(), "not-the-password\n").expect("write");
    wrong.password_file = Some(file.path().to_path_buf());
    let err = store_pg::check(&wrong)
        .await
        .expect_err("wrong password refused");
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err}"
    );

    let mut unset = cfg.clone();
    unset.password_env = Some("POOLGUARD_TEST_PG_UNSET_VARIABLE".into());
    let err = store_pg::check(&unset)
        .await
        .expect_err("unset variable refused");
    assert!(
        err.to_string()
            .contains("POOLGUARD_TEST_PG_UNSET_VARIABLE is not set"),
        "{err}"
    );
}

#[tokio::test]
async fn tls_is_used_when_the_url_asks_and_the_certificate_is_verified() {
    let (pg, ca) = Postgres::start_tls();
    let url = pg.create_database("tls");
    let mut cfg = pg_config(format!("{url}?sslmode=require"));
    cfg.password_file = Some(pg.password_file());
    cfg.ca_file = Some(ca);
    let store = PgStore::open(&cfg).await.expect("opens over TLS");
    let client = store.pool().get().await.expect("pooled connection");
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    assert!(row.get::<_, bool>(0), "the session is encrypted");
    let report = store_pg::check(&cfg).await.expect("check over TLS");
    assert!(report.contains("(TLS)"), "{report}");

    // A server whose certificate no trusted CA signed is refused, and the error says TLS.
    let mut untrusted = cfg.clone();
    untrusted.ca_file = None;
    let err = store_pg::check(&untrusted)
        .await
        .expect_err("an unknown CA is refused");
    let text = err.to_string();
    assert!(
        text.contains("certificate") || text.contains("issuer"),
        "{text}"
    );
}
