//! RADIUS accounting from the real FreeRADIUS `radclient` to a running poolguard: a portal
//! login's Start names the account on the hits of its address; Interim keeps it; Stop ends
//! it; a wrong secret and an unknown NAS are dropped, counted and never stored.

mod common;

use common::radius::radclient;
use common::{Proto, TestBed, query_from, request, sha256_hex};
use hickory_proto::rr::RecordType;
use serde_json::Value;

const TOKEN: &str = "viewer-token-for-identity";
const SECRET: &str = "campus-nas-secret";
const LEDGER: &str = "network,mac,asset,kind,location,department,owner,contact,account
127.0.0.0/8,,,,,Residences,,,
,,,,,Chemistry,Li Na,li@example.edu,lina
";

/// A poolguard whose only NAS is `nas` (an address or network).
async fn bed(nas: &str) -> TestBed {
    bed_with(nas, "").await
}

/// [`bed`] with more config (`extra`, TOML tables after the rest).
async fn bed_with(nas: &str, extra: &str) -> TestBed {
    TestBed::builder()
        .file("clients.csv", LEDGER)
        .file("nas.secret", &format!("{SECRET}\n"))
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname = \"t\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
             [store]\npath = \"data/e.db\"\nflush_interval_ms = 50\n[clients]\nledger = \"clients.csv\"\n\
             [identity.radius]\nlisten = \"127.0.0.1:0\"\n\
             [[identity.radius.clients]]\naddress = \"{nas}\"\nsecret_file = \"nas.secret\"\n{extra}",
            sha256_hex(TOKEN)
        ))
        .start()
        .await
}

async fn get(bed: &TestBed, path: &str) -> Value {
    let (status, body) = bed.api_get(path, TOKEN).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// The value of a counter series in the `/metrics` text (0 when absent).
fn counter(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn login(status: &str, ip: &str) -> String {
    common::radius::login(status, "lina", ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_from_radclient_names_the_account_of_a_hit() {
    let bed = bed("127.0.0.1").await;
    let radius = bed.running().radius_addr().expect("RADIUS listening");
    assert!(
        radclient(radius, SECRET, &login("Start", "127.0.0.8")).await,
        "Start answered"
    );
    assert!(radclient(radius, SECRET, &login("Interim-Update", "127.0.0.8")).await);

    query_from(
        "127.0.0.8".parse().unwrap(),
        bed.dns,
        Proto::Udp,
        &request("xmr.pool.minergate.com.", RecordType::A, true),
    )
    .await;
    let mut items = Vec::new();
    for _ in 0..100 {
        bed.running().flush().await.expect("flush");
        let hits = get(&bed, "/api/v1/hits?client=127.0.0.8").await;
        items = hits["items"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(items.len(), 1);
    let id = &items[0]["identity"];
    assert_eq!(id["account"], "lina", "{id}");
    assert_eq!(id["owner"], "Li Na");
    assert_eq!(id["department"], "Chemistry");
    assert_eq!(id["mac"], "00:1a:2b:3c:4d:5f");
    assert_eq!(id["source"], "radius");

    let now = get(&bed, "/api/v1/clients/127.0.0.8").await;
    assert_eq!(now["identity"]["account"], "lina", "{now}");
    assert_eq!(now["holdings"].as_array().map(Vec::len), Some(1));
    assert!(now["holdings"][0]["end"].is_null());

    assert!(
        radclient(radius, SECRET, &login("Stop", "127.0.0.8")).await,
        "Stop answered"
    );
    let after = get(&bed, "/api/v1/clients/127.0.0.8").await;
    assert!(after["identity"]["account"].is_null(), "{after}");
    assert!(after["holdings"][0]["end"].is_string(), "{after}");
    // The hit keeps who held the address at its time.
    let hits = get(&bed, "/api/v1/hits?client=127.0.0.8").await;
    assert_eq!(hits["items"][0]["identity"]["account"], "lina");
    // Searched as staff ask: by account or owner whatever the case, by MAC in any spelling.
    for (query, want) in [
        ("account=LINA", 1),
        ("owner=li%20na", 1),
        ("mac=00-1A-2B-3C-4D-5F", 1),
        ("account=bob", 0),
        ("mac=00:1a:2b:3c:4d:5f&owner=Zhang%20Wei", 0),
    ] {
        let found = get(&bed, &format!("/api/v1/hits?{query}")).await;
        assert_eq!(
            found["items"].as_array().map(Vec::len),
            Some(want),
            "{query}: {found}"
        );
    }
    let (status, body) = bed.api_get("/api/v1/hits?mac=not-a-mac", TOKEN).await;
    assert_eq!(status, 400, "{body}");
    // Where the login has been, and whose it is.
    let where_ = get(&bed, "/api/v1/identities?account=LINA").await;
    assert_eq!(where_["ledger"]["owner"], "Li Na", "{where_}");
    assert_eq!(where_["holdings"][0]["address"], "127.0.0.8", "{where_}");
    assert_eq!(where_["holdings"][0]["source"], "radius");
    let (status, body) = bed.api_get("/api/v1/identities", TOKEN).await;
    assert_eq!(status, 400, "{body}");
    // By the owner's name: the ledger rows of that person, each with where it has been.
    let by_owner = get(&bed, "/api/v1/identities?owner=LI%20NA").await;
    assert_eq!(
        by_owner["devices"][0]["ledger"]["account"], "lina",
        "{by_owner}"
    );
    assert_eq!(
        by_owner["devices"][0]["holdings"][0]["address"], "127.0.0.8",
        "{by_owner}"
    );

    // A wrong secret: no answer, counted, nothing stored.
    let before = bed.metrics_text().await;
    let bad = "poolguard_radius_dropped_total{reason=\"bad_authenticator\"}";
    assert!(!radclient(radius, "not-the-secret", &login("Start", "127.0.0.9")).await);
    let text = bed.metrics_text().await;
    assert!(counter(&text, bad) > counter(&before, bad), "{text}");
    let other = get(&bed, "/api/v1/clients/127.0.0.9").await;
    assert_eq!(
        other["holdings"].as_array().map(Vec::len),
        Some(0),
        "{other}"
    );
    let accepted = "poolguard_radius_requests_total{status=\"start\"}";
    assert!(counter(&text, accepted) >= 1.0, "{text}");
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_nas_is_dropped_and_counted() {
    // Only a NAS in 198.51.100.0/24 may send; radclient sends from 127.0.0.1.
    let bed = bed("198.51.100.0/24").await;
    let radius = bed.running().radius_addr().expect("RADIUS listening");
    let before = bed.metrics_text().await;
    let unknown = "poolguard_radius_dropped_total{reason=\"unknown_nas\"}";
    assert!(!radclient(radius, SECRET, &login("Start", "127.0.0.10")).await);
    let text = bed.metrics_text().await;
    assert!(
        counter(&text, unknown) > counter(&before, unknown),
        "{text}"
    );
    let held = get(&bed, "/api/v1/clients/127.0.0.10").await;
    assert_eq!(held["holdings"].as_array().map(Vec::len), Some(0), "{held}");
    bed.shutdown().await;
}

/// One blocked query from `ip`, stored before this returns.
async fn hit_from(bed: &TestBed, ip: &str) {
    let answer = query_from(
        ip.parse().unwrap(),
        bed.dns,
        Proto::Udp,
        &request("xmr.pool.minergate.com.", RecordType::A, true),
    )
    .await;
    assert!(!answer.answers.is_empty(), "answered from {ip}");
    bed.running().flush().await.expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_follows_the_machine_not_the_address() {
    use common::radius::login_from;
    let bed = bed("127.0.0.1").await;
    let radius = bed.running().radius_addr().expect("RADIUS listening");
    let (laptop, other) = ("00-1A-2B-3C-4D-5F", "00-1A-2B-3C-4D-60");
    // Li Na's laptop mines at .21, moves to .22 and mines again.
    assert!(
        radclient(
            radius,
            SECRET,
            &login_from("Start", "lina", laptop, "127.0.0.21")
        )
        .await
    );
    hit_from(&bed, "127.0.0.21").await;
    assert!(
        radclient(
            radius,
            SECRET,
            &login_from("Stop", "lina", laptop, "127.0.0.21")
        )
        .await
    );
    assert!(
        radclient(
            radius,
            SECRET,
            &login_from("Start", "lina", laptop, "127.0.0.22")
        )
        .await
    );
    hit_from(&bed, "127.0.0.22").await;
    // Another machine gets .21 and mines too.
    assert!(
        radclient(
            radius,
            SECRET,
            &login_from("Start", "bob", other, "127.0.0.21")
        )
        .await
    );
    hit_from(&bed, "127.0.0.21").await;

    let list = get(&bed, "/api/v1/incidents").await;
    let mut got: Vec<(String, i64, String)> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["client_key"].as_str().unwrap_or_default().to_string(),
                i["hit_count"].as_i64().unwrap_or_default(),
                i["identity"]["account"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("mac:00:1a:2b:3c:4d:5f".to_string(), 2, "lina".to_string()),
            ("mac:00:1a:2b:3c:4d:60".to_string(), 1, "bob".to_string()),
        ],
        "{list}"
    );
    // The laptop's incident holds its hits from both addresses.
    let laptop_incident = list["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["hit_count"] == 2))
        .expect("the laptop's incident");
    let id = &laptop_incident["id"];
    let detail = get(&bed, &format!("/api/v1/incidents/{id}")).await;
    let mut clients: Vec<&str> = detail["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .filter_map(|h| h["client"].as_str())
        .collect();
    clients.sort();
    assert_eq!(clients, ["127.0.0.21", "127.0.0.22"], "{detail}");

    // Searched as staff ask: by MAC in any spelling, account or owner whatever the case,
    // part of the department; the same on hits.
    for (query, want) in [
        ("mac=00-1A-2B-3C-4D-5F", 1),
        ("account=BOB", 1),
        ("owner=li%20na", 1),
        ("department_contains=CHEM", 1),
        ("department_contains=sidence", 1),
        ("department_contains=physics", 0),
        ("asset=LAB-7", 0),
    ] {
        let found = get(&bed, &format!("/api/v1/incidents?{query}")).await;
        let n = found["items"].as_array().map(Vec::len);
        assert_eq!(n, Some(want), "incidents?{query}: {found}");
    }
    for (query, want) in [("department_contains=chem", 2), ("asset=LAB-7", 0)] {
        let found = get(&bed, &format!("/api/v1/hits?{query}")).await;
        let n = found["items"].as_array().map(Vec::len);
        assert_eq!(n, Some(want), "hits?{query}: {found}");
    }
    let (status, body) = bed.api_get("/api/v1/incidents?mac=nope", TOKEN).await;
    assert_eq!(status, 400, "{body}");
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_test_machine_is_answered_as_usual_and_opens_no_incident() {
    use common::radius::login_from;
    let bed = bed_with(
        "127.0.0.1",
        "[incidents.exempt]\naddresses = [\"127.0.0.31\"]\naccounts = [\"SecOps\"]\n",
    )
    .await;
    let radius = bed.running().radius_addr().expect("RADIUS listening");
    // The security team's laptop logs in at .32 (exempt by its account, whatever address).
    assert!(
        radclient(
            radius,
            SECRET,
            &login_from("Start", "secops", "00-1A-2B-3C-4D-61", "127.0.0.32")
        )
        .await
    );
    let pool = "xmr.pool.minergate.com.";
    let student = common::answer_from(&bed, "127.0.0.33", pool).await;
    assert!(!student.is_empty());
    for staff in ["127.0.0.31", "127.0.0.32"] {
        let answer = common::answer_from(&bed, staff, pool).await;
        assert_eq!(answer, student, "{staff} is answered as everyone is");
    }
    bed.running().flush().await.expect("flush");

    for (client, mark) in [
        ("127.0.0.31", Some("127.0.0.31")),
        ("127.0.0.32", Some("account:secops")),
        ("127.0.0.33", None),
    ] {
        let hits = get(&bed, &format!("/api/v1/hits?client={client}")).await;
        assert_eq!(hits["items"].as_array().map(Vec::len), Some(1), "{hits}");
        assert_eq!(
            hits["items"][0]["identity"]["exempt"].as_str(),
            mark,
            "{client}: {hits}"
        );
    }
    let incidents = get(&bed, "/api/v1/incidents").await;
    let clients: Vec<&str> = incidents["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["client"].as_str())
        .collect();
    assert_eq!(clients, ["127.0.0.33"], "{incidents}");
    let who = get(&bed, "/api/v1/clients/127.0.0.32").await;
    assert_eq!(who["identity"]["exempt"], "account:secops", "{who}");
    bed.shutdown().await;
}

#[tokio::test]
async fn a_bad_exempt_entry_stops_the_start_naming_it() {
    let started = TestBed::builder()
        .toml("[incidents.exempt]\naddresses = [\"10.0.0.1\", \"10.0.0/8\"]\n")
        .try_start()
        .await;
    let error = match started {
        Ok(bed) => {
            bed.shutdown().await;
            panic!("started with a bad exempt entry");
        }
        Err(error) => error.to_string(),
    };
    assert!(error.contains("incidents.exempt.addresses[1]"), "{error}");
    assert!(error.contains("10.0.0/8"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quarantine_follows_the_device_to_its_new_address_and_is_released_everywhere() {
    use common::radius::login_from;
    const INVESTIGATOR: &str = "investigator-token-for-identity";
    let bed = bed_with(
        "127.0.0.1",
        &common::api_token_toml("ivan", "investigator", INVESTIGATOR),
    )
    .await;
    let radius = bed.running().radius_addr().expect("RADIUS listening");
    let laptop = "00-1A-2B-3C-4D-5F";
    let site = "www.example.test.";
    let free = common::answer_from(&bed, "127.0.0.49", site).await;
    assert!(!free.is_empty());

    // Li Na's laptop mines at .41; staff quarantine it from its incident.
    assert!(
        radclient(
            radius,
            SECRET,
            &login_from("Start", "lina", laptop, "127.0.0.41")
        )
        .await
    );
    hit_from(&bed, "127.0.0.41").await;
    let list = get(&bed, "/api/v1/incidents").await;
    let id = list["items"][0]["id"].as_i64().expect("an incident");
    assert_eq!(list["items"][0]["client_key"], "mac:00:1a:2b:3c:4d:5f");
    let (status, entry) = bed
        .api_post_json(
            "/api/v1/quarantine",
            INVESTIGATOR,
            &serde_json::json!({"ip": "127.0.0.41", "reason": "mining", "incident_id": id}),
        )
        .await;
    assert_eq!(status, 201, "{entry}");
    let walled = common::answer_from(&bed, "127.0.0.41", site).await;
    assert_ne!(walled, free, "the quarantined address gets the notice page");

    // It logs out and comes back at .42: quarantined there as soon as the login is seen.
    assert!(
        radclient(
            radius,
            SECRET,
            &login_from("Stop", "lina", laptop, "127.0.0.41")
        )
        .await
    );
    assert!(
        radclient(
            radius,
            SECRET,
            &login_from("Start", "lina", laptop, "127.0.0.42")
        )
        .await
    );
    common::eventually("the quarantine to follow the laptop to .42", || async {
        let got = common::answer_from(&bed, "127.0.0.42", site).await;
        if got == walled {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
    let listed = get(&bed, "/api/v1/quarantine").await;
    assert_eq!(listed["items"][0]["ip"], "127.0.0.41", "{listed}");
    assert_eq!(
        listed["items"][0]["following"],
        serde_json::json!(["127.0.0.42"]),
        "{listed}"
    );
    let (_, txt) = bed
        .api_request(
            reqwest::Method::GET,
            "/api/v1/quarantine?format=txt",
            TOKEN,
            None,
        )
        .await;
    assert_eq!(
        txt,
        serde_json::json!("127.0.0.41\n127.0.0.42\n"),
        "edge devices get both"
    );

    // Releasing it by its new address lifts the quarantine everywhere, at once.
    let (status, released) = bed
        .api_request(
            reqwest::Method::DELETE,
            "/api/v1/quarantine/127.0.0.42?reason=cleaned",
            INVESTIGATOR,
            None,
        )
        .await;
    assert_eq!(status, 200, "{released}");
    assert_eq!(released["ip"], "127.0.0.41", "{released}");
    assert_eq!(common::answer_from(&bed, "127.0.0.42", site).await, free);
    assert_eq!(common::answer_from(&bed, "127.0.0.41", site).await, free);
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_told_late_re_attributes_the_earlier_hit_and_its_incident() {
    use common::radius::login_from;
    let bed = bed("127.0.0.1").await;
    let radius = bed.running().radius_addr().expect("RADIUS listening");
    // A hit nobody can name yet: its incident is the address's.
    hit_from(&bed, "127.0.0.61").await;
    let list = get(&bed, "/api/v1/incidents").await;
    assert_eq!(list["items"][0]["client_key"], "ip:127.0.0.61", "{list}");
    let id = list["items"][0]["id"].as_i64().expect("id");

    // The NAS tells of the login ten minutes late (Acct-Delay-Time): it covers the hit.
    let late = login_from("Start", "lina", "00-1A-2B-3C-4D-5F", "127.0.0.61")
        .replace('\n', ", Acct-Delay-Time = 600\n");
    assert!(radclient(radius, SECRET, &late).await);
    common::eventually("the earlier hit to be re-attributed", || async {
        // Traffic keeps the writer's upkeep turning, as on a campus.
        common::answer_from(&bed, "127.0.0.69", "www.example.test.").await;
        let hits = get(&bed, "/api/v1/hits?client=127.0.0.61").await;
        let account = hits["items"][0]["identity"]["account"].clone();
        if account == "lina" {
            Ok(())
        } else {
            Err(format!("{hits}"))
        }
    })
    .await;
    let hits = get(&bed, "/api/v1/hits?client=127.0.0.61").await;
    assert_eq!(hits["items"][0]["identity"]["source"], "radius", "{hits}");
    assert_eq!(hits["items"][0]["identity"]["owner"], "Li Na", "{hits}");

    // Its incident now follows the laptop, names it, and says what was learned.
    let detail = get(&bed, &format!("/api/v1/incidents/{id}")).await;
    common::radius::assert_learned_late(&detail);
    bed.shutdown().await;
}
