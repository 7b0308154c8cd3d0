//! Who held an address, shared by the nodes of a group (`identity_intervals`): a NAS sends
//! its accounting to node A only, yet a hit answered by node B names the account; a node that
//! starts later knows the login from the database; the Stop told to A ends the holding on B; a
//! login told late to A re-attributes B's earlier hit in the group's database and moves its
//! incident to the laptop. Real PostgreSQL, real poolguard nodes, FreeRADIUS's real
//! `radclient`.

mod common;

use common::postgres::Postgres;
use common::radius::{login, login_from, radclient};
use common::{TestBed, answer_from, api_token_toml, eventually};
use serde_json::Value;

const DB: &str = "identity";
const DB_LATE: &str = "late_identity";
const TOKEN: &str = "viewer-token-for-shared-identity";
const SECRET: &str = "campus-nas-secret";
const LEDGER: &str = "network,mac,asset,kind,location,department,owner,contact,account
127.0.0.0/8,,,,,Residences,,,
,,,,,Chemistry,Li Na,li@example.edu,lina
";
/// The address the login holds.
const CLIENT: &str = "127.0.0.50";

/// A node of the group; `radius` gives it the NAS's accounting listener.
async fn node(pg: &Postgres, url: &str, name: &str, radius: bool) -> TestBed {
    let mut t = String::from("[api]\nlisten = \"127.0.0.1:0\"\n");
    t.push_str(&api_token_toml("staff", "viewer", TOKEN));
    t.push_str(&format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_file = \"{}\"\n\
         node = \"{name}\"\npath = \"data/local.db\"\nflush_interval_ms = 20\n\
         [clients]\nledger = \"clients.csv\"\n",
        pg.password_file().display()
    ));
    if radius {
        t.push_str(
            "[identity.radius]\nlisten = \"127.0.0.1:0\"\n\
             [[identity.radius.clients]]\naddress = \"127.0.0.1\"\nsecret_file = \"nas.secret\"\n",
        );
    }
    TestBed::builder()
        .file("clients.csv", LEDGER)
        .file("nas.secret", &format!("{SECRET}\n"))
        .toml(&t)
        .start()
        .await
}

async fn get(bed: &TestBed, path: &str) -> Value {
    let (status, body) = bed.api_get(path, TOKEN).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Waits until `bed` says the client's current account is `want` (None: nobody's).
async fn account_becomes(bed: &TestBed, what: &str, want: Option<&str>) {
    eventually(what, || async {
        let v = get(bed, &format!("/api/v1/clients/{CLIENT}")).await;
        let account = v["identity"]["account"].as_str().map(str::to_string);
        if account.as_deref() == want {
            Ok(())
        } else {
            Err(format!("{account:?}: {v}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_told_to_one_node_names_the_account_on_every_node() {
    let pg = Postgres::start();
    let url = pg.create_database(DB);
    let a = node(&pg, &url, "node-a", true).await;
    let b = node(&pg, &url, "node-b", false).await;
    let nas = a.running().radius_addr().expect("A listens for RADIUS");

    assert!(
        radclient(nas, SECRET, &login("Start", "lina", CLIENT)).await,
        "A answered the Start"
    );
    account_becomes(&b, "B to learn the login told to A", Some("lina")).await;
    assert_eq!(
        pg.psql(
            DB,
            "SELECT node || ' ' || source || ' ' || account || ' ' || (end_ms = 9223372036854775807) \
             FROM identity_intervals"
        ),
        "node-a radius lina true",
        "one open holding, written by A"
    );

    // A hit answered by B names the account A was told of.
    let answer = answer_from(&b, CLIENT, "xmr.pool.minergate.com.").await;
    assert!(!answer.is_empty(), "B answered the blocked name");
    eventually("B's hit to reach the group's store", || async {
        let hits = get(&b, &format!("/api/v1/hits?client={CLIENT}")).await;
        match hits["items"].as_array().map(Vec::as_slice) {
            Some([hit]) => {
                let id = &hit["identity"];
                assert_eq!(id["account"], "lina", "{hit}");
                assert_eq!(id["owner"], "Li Na", "{hit}");
                assert_eq!(id["mac"], "00:1a:2b:3c:4d:5f", "{hit}");
                assert_eq!(id["source"], "radius", "{hit}");
                Ok(())
            }
            _ => Err(format!("{hits}")),
        }
    })
    .await;

    assert_eq!(
        pg.psql(
            DB,
            "SELECT node || ' ' || account || ' ' || identity_source FROM hits"
        ),
        "node-b lina radius",
        "the hit was B's"
    );

    // A node that starts later knows the login from the database alone.
    let c = node(&pg, &url, "node-c", false).await;
    account_becomes(&c, "C to load the group's holdings at start", Some("lina")).await;

    // The Stop told to A ends the holding on B and C; B's hit keeps who held the address.
    assert!(radclient(nas, SECRET, &login("Stop", "lina", CLIENT)).await);
    account_becomes(&b, "B to learn the Stop told to A", None).await;
    account_becomes(&c, "C to learn the Stop told to A", None).await;
    let hits = get(&b, &format!("/api/v1/hits?client={CLIENT}")).await;
    assert_eq!(hits["items"][0]["identity"]["account"], "lina", "{hits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_told_late_to_one_node_re_attributes_another_nodes_hit_and_its_incident() {
    const LATE: &str = "127.0.0.61";
    let pg = Postgres::start();
    let url = pg.create_database(DB_LATE);
    let a = node(&pg, &url, "node-a", true).await;
    let b = node(&pg, &url, "node-b", false).await;
    let nas = a.running().radius_addr().expect("A listens for RADIUS");

    // B answers a hit from an address nobody can name yet: the group's incident is the
    // address's, and the hit's row in PostgreSQL has no identity.
    let answer = answer_from(&b, LATE, "xmr.pool.minergate.com.").await;
    assert!(!answer.is_empty(), "B answered the blocked name");
    let id = std::cell::Cell::new(0);
    eventually(
        "B's hit and its incident to reach the group's store",
        || async {
            let list = get(&b, "/api/v1/incidents").await;
            match list["items"].as_array().map(Vec::as_slice) {
                Some([incident]) if incident["client_key"] == format!("ip:{LATE}") => {
                    id.set(incident["id"].as_i64().expect("id"));
                    Ok(())
                }
                _ => Err(format!("{list}")),
            }
        },
    )
    .await;
    let id = id.get();
    assert_eq!(
        pg.psql(
            DB_LATE,
            "SELECT node || ' ' || client_key || ' ' || coalesce(account, '-') || ' ' || \
             coalesce(identity_source, '-') FROM hits"
        ),
        format!("node-b ip:{LATE} - -"),
        "B's hit, without identity"
    );

    // The NAS tells A of the login ten minutes late (Acct-Delay-Time): it covers B's hit.
    let late = login_from("Start", "lina", "00-1A-2B-3C-4D-5F", LATE)
        .replace('\n', ", Acct-Delay-Time = 600\n");
    assert!(radclient(nas, SECRET, &late).await, "A answered the Start");
    eventually(
        "B's hit in the group's store to be re-attributed",
        || async {
            // Traffic keeps both nodes' writers and shippers turning, as on a campus.
            answer_from(&b, "127.0.0.69", "www.example.test.").await;
            let hits = get(&b, &format!("/api/v1/hits?client={LATE}")).await;
            match hits["items"].as_array().map(Vec::as_slice) {
                Some([hit]) if hit["identity"]["account"] == "lina" => Ok(()),
                _ => Err(format!("{hits}")),
            }
        },
    )
    .await;
    let hits = get(&b, &format!("/api/v1/hits?client={LATE}")).await;
    let who = &hits["items"][0]["identity"];
    assert_eq!(who["source"], "radius", "{hits}");
    assert_eq!(who["owner"], "Li Na", "{hits}");
    assert_eq!(who["mac"], "00:1a:2b:3c:4d:5f", "{hits}");
    assert_eq!(
        pg.psql(
            DB_LATE,
            "SELECT node || ' ' || client_key || ' ' || account || ' ' || mac || ' ' || \
             owner || ' ' || department || ' ' || identity_source FROM hits"
        ),
        "node-b mac:00:1a:2b:3c:4d:5f lina 00:1a:2b:3c:4d:5f Li Na Chemistry radius",
        "the row B shipped now names the holder, as a hit shipped with it would"
    );

    // The group's incident now follows the laptop, names it, and says what was learned.
    let detail = get(&b, &format!("/api/v1/incidents/{id}")).await;
    common::radius::assert_learned_late(&detail);
    assert_eq!(
        pg.psql(
            DB_LATE,
            "SELECT client_key || ' ' || account || ' ' || \
             (SELECT count(*) FROM incident_notes n WHERE n.incident_id = i.id \
              AND n.text LIKE 'Identity learned late (radius)%') FROM incidents i"
        ),
        "mac:00:1a:2b:3c:4d:5f lina 1",
        "one incident, moved once, one note"
    );
}
