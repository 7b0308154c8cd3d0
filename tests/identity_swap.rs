//! Two machines swap addresses through real DHCP, each queries a mining pool from both of its
//! addresses, and the two incidents name the right machines; then a lease file that arrives
//! late re-attributes a third machine's hit.
//!
//! The parts are real: ISC Kea serves 10.213.52.0/24 in the server namespace, `perfdhcp` plays
//! the machines (each its own MAC) in the client namespace, and poolguard runs in-process
//! *inside* the server namespace (`netns::block_on_in`), listening on the veth's server
//! address, so the DNS queries leave the client namespace from the granted addresses and cross
//! the link. Kea's host reservations decide who gets which address; moving a reservation and
//! restarting Kea moves a machine, as a DHCP administrator would (A moves to a spare address
//! first, so each step takes a free one).
//!
//! poolguard follows a *shipped copy* of Kea's lease file, as on a campus where the DHCP
//! server is another host and its file is copied over (written, then renamed, as rsync does).
//! Shipping after a machine has already queried is the late lease file.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::dhcp::{KeaConfig, holder, kea_granted, perfdhcp, start_kea};
use common::netns::{self, Daemon, Link};
use common::{Proto, TestBed, query_from, request, sha256_hex};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use serde_json::Value;

const TOKEN: &str = "viewer-token-for-the-swap";
const NET: &str = "10.213.52";
const A: &str = "00:0c:52:00:00:0a";
const B: &str = "00:0c:52:00:00:0b";
const C: &str = "00:0c:52:00:00:0c";
const LEDGER: &str = "network,mac,asset,kind,location,department,owner,contact,account
,00:0c:52:00:00:0a,laptop-a,laptop,,Physics,Alice Wang,,
,00:0c:52:00:00:0b,desktop-b,desktop,,History,Bo Chen,,
,00:0c:52:00:00:0c,gpu-c,workstation,,Chemistry,Chen Jie,,
10.213.52.2/32,,probe-2,server,,Network Centre,Net Ops,,
";

#[test]
fn two_machines_swap_addresses_and_a_late_lease_file_re_attributes_a_hit() {
    let link = Link::new(NET);
    let server = link.server_ns.clone();
    netns::block_on_in(&server, move || swap(link));
}

/// Kea in the server namespace, restarted with each new set of reservations.
struct Kea<'a> {
    link: &'a Link,
    dir: PathBuf,
    runs: u32,
    daemon: Option<Daemon>,
}

impl Kea<'_> {
    fn leases(&self) -> PathBuf {
        self.dir.join("kea-leases4.csv")
    }

    /// Restarts Kea with these `(MAC, last octet)` reservations.
    async fn reserve(&mut self, reservations: &[(&str, u8)]) {
        self.daemon = None;
        self.runs += 1;
        let conf = self.dir.join(format!("kea-{}.json", self.runs));
        let log = self.dir.join(format!("kea-{}.log", self.runs));
        KeaConfig {
            net: NET,
            leases: &self.leases(),
            log: &log,
            lfc_interval: 0,
            valid_lifetime: 3600,
            reservations,
        }
        .write(self.link, &conf);
        self.daemon = Some(start_kea(self.link, &self.dir, &conf, &log).await);
    }

    /// The machine `mac` asks for an address (perfdhcp, at most five rounds: under load it
    /// gives up on a slow exchange) until Kea's lease file says it holds `.n`.
    fn grant(&self, mac: &str, n: u8) {
        let want = (format!("{NET}.{n}"), mac.to_string());
        for _ in 0..5 {
            perfdhcp(self.link, 1, mac);
            if kea_granted(&self.dir).contains(&want) {
                return;
            }
        }
        panic!("{mac} never got {}: {:?}", want.0, kea_granted(&self.dir));
    }
}

/// Waits for the wall clock's next whole second. Kea's lease file keeps whole seconds
/// (`expire`, `valid_lifetime`), so poolguard knows a holding's start and end to the second:
/// a query and a move of its address within one second cannot be told apart afterwards (a
/// hit is still attributed right when it is written). On a campus a second always passes;
/// here the second turns between the queries and the next move.
async fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    let rest = 1_000 - u64::from(now.subsec_millis()) + 1;
    tokio::time::sleep(std::time::Duration::from_millis(rest)).await;
}

/// Copies Kea's lease file to where poolguard reads it: written aside, then renamed.
fn ship(from: &Path, to: &Path) {
    let aside = to.with_extension("partial");
    std::fs::copy(from, &aside).expect("copy the lease file");
    std::fs::rename(&aside, to).expect("rename the shipped lease file");
}

/// A query for `name` from `from` (an address on the client side) to poolguard at `server`,
/// sent from inside the client namespace.
async fn ask(link: &Link, from: &str, server: SocketAddr, name: &'static str) -> Message {
    let ns = link.client_ns.clone();
    let from: std::net::IpAddr = from.parse().expect("address");
    tokio::task::spawn_blocking(move || {
        netns::run_in(&ns, move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(query_from(
                    from,
                    server,
                    Proto::Udp,
                    &request(name, RecordType::A, true),
                ))
        })
    })
    .await
    .expect("the client thread")
}

/// A pool query from `.n`; the answer is the sinkhole's, and the hit is stored.
async fn mine(bed: &TestBed, link: &Link, n: u8) {
    let answer = ask(
        link,
        &format!("{NET}.{n}"),
        bed.dns,
        "xmr.pool.minergate.com.",
    )
    .await;
    assert_eq!(answer.response_code, ResponseCode::NoError);
    assert!(!answer.answers.is_empty(), "sinkholed for .{n}: {answer:?}");
    bed.running().flush().await.expect("flush");
}

async fn get(bed: &TestBed, path: &str) -> Value {
    let (status, body) = bed.api_get(path, TOKEN).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// The incident whose identity names `mac`, with its detail.
async fn incident_of(bed: &TestBed, mac: &str) -> Value {
    let list = get(bed, "/api/v1/incidents").await;
    let id = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["identity"]["mac"] == mac)
        .and_then(|i| i["id"].as_i64())
        .unwrap_or_else(|| panic!("no incident names {mac}: {list}"));
    get(bed, &format!("/api/v1/incidents/{id}")).await
}

/// The addresses of an incident's hits, oldest first (hit ids grow with time).
fn hit_clients(detail: &Value) -> Vec<String> {
    let mut hits: Vec<(i64, String)> = detail["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let id = h["id"].as_i64().unwrap_or(-1);
            (id, h["client"].as_str().unwrap_or("").to_string())
        })
        .collect();
    hits.sort();
    hits.into_iter().map(|(_, c)| c).collect()
}

async fn swap(link: Link) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dhcp = dir.path().join("dhcp");
    std::fs::create_dir_all(&dhcp).expect("mkdir");
    let shipped = dir.path().join("kea-leases4.csv");
    let mut kea = Kea {
        link: &link,
        dir: dhcp,
        runs: 0,
        daemon: None,
    };
    // The machines' addresses, on the client side of the link.
    for n in [10, 11, 13] {
        netns::add_address(&link.client_ns, &link.client_if, &format!("{NET}.{n}/32"));
    }

    // A gets .10, B gets .11.
    kea.reserve(&[(A, 10), (B, 11), (C, 13)]).await;
    kea.grant(A, 10);
    kea.grant(B, 11);
    ship(&kea.leases(), &shipped);
    let bed = TestBed::builder()
        .listen(format!("{NET}.1:0").parse().expect("address"))
        .allow_clients(&[&format!("{NET}.0/24"), "127.0.0.0/8"])
        .file("clients.csv", LEDGER)
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname = \"t\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
             [store]\npath = \"data/e.db\"\nflush_interval_ms = 50\n[clients]\nledger = \"clients.csv\"\n\
             [identity]\nfollow_every = \"100ms\"\n[[identity.kea]]\npath = \"{}\"\n",
            sha256_hex(TOKEN),
            shipped.display()
        ))
        .start()
        .await;
    holder(&bed, TOKEN, &format!("{NET}.10"), A).await;
    holder(&bed, TOKEN, &format!("{NET}.11"), B).await;
    mine(&bed, &link, 10).await;
    mine(&bed, &link, 11).await;

    // They swap: A to the spare .12, B to .10, A to .11.
    next_second().await;
    kea.reserve(&[(A, 12), (B, 11), (C, 13)]).await;
    kea.grant(A, 12);
    kea.reserve(&[(A, 12), (B, 10), (C, 13)]).await;
    kea.grant(B, 10);
    kea.reserve(&[(A, 11), (B, 10), (C, 13)]).await;
    kea.grant(A, 11);
    ship(&kea.leases(), &shipped);
    holder(&bed, TOKEN, &format!("{NET}.10"), B).await;
    holder(&bed, TOKEN, &format!("{NET}.11"), A).await;
    mine(&bed, &link, 11).await;
    mine(&bed, &link, 10).await;

    // One incident per machine, each with both of its addresses, in the order it held them.
    let a = incident_of(&bed, A).await;
    assert_eq!(a["owner"], "Alice Wang", "{a}");
    assert_eq!(a["client_key"], "asset:laptop-a", "{a}");
    assert_eq!(
        hit_clients(&a),
        [format!("{NET}.10"), format!("{NET}.11")],
        "{a}"
    );
    let b = incident_of(&bed, B).await;
    assert_eq!(b["owner"], "Bo Chen", "{b}");
    assert_eq!(b["client_key"], "asset:desktop-b", "{b}");
    assert_eq!(
        hit_clients(&b),
        [format!("{NET}.11"), format!("{NET}.10")],
        "{b}"
    );
    // Each address's hits name whoever held it at the time.
    let ten = get(&bed, &format!("/api/v1/hits?client={NET}.10")).await;
    let macs: Vec<&Value> = ten["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| &h["identity"]["mac"])
        .collect();
    assert_eq!(macs, [B, A], "newest first: {ten}");

    // The query log has no identity; asked by MAC or owner, it answers through who held
    // which address when: A's queries from both its addresses, never B's from the same ones.
    let clients_of = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|q| q["client"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let a_queries = get(&bed, &format!("/api/v1/queries?mac={}", A.to_uppercase())).await;
    assert_eq!(
        clients_of(&a_queries),
        [format!("{NET}.11"), format!("{NET}.10")],
        "{a_queries}"
    );
    let b_queries = get(&bed, "/api/v1/queries?owner=bo%20chen").await;
    assert_eq!(
        clients_of(&b_queries),
        [format!("{NET}.10"), format!("{NET}.11")],
        "{b_queries}"
    );
    let paged = get(&bed, "/api/v1/queries?owner=bo%20chen&limit=1").await;
    assert_eq!(clients_of(&paged), [format!("{NET}.10")], "{paged}");
    let cursor = paged["next_cursor"].as_str().expect("a second page");
    let rest = get(
        &bed,
        &format!("/api/v1/queries?owner=bo%20chen&limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(clients_of(&rest), [format!("{NET}.11")], "{rest}");
    let one = get(
        &bed,
        &format!("/api/v1/queries?asset=laptop-a&client={NET}.10"),
    )
    .await;
    assert_eq!(clients_of(&one), [format!("{NET}.10")], "{one}");
    // A fixed-address machine of the ledger is found by its asset tag.
    ask(&link, &format!("{NET}.2"), bed.dns, "www.example.test.").await;
    bed.running().flush().await.expect("flush");
    let probe = get(&bed, "/api/v1/queries?asset=PROBE-2").await;
    assert_eq!(clients_of(&probe), [format!("{NET}.2")], "{probe}");

    // C gets .13 and mines before its lease reaches poolguard: the hit is the address's.
    kea.grant(C, 13);
    mine(&bed, &link, 13).await;
    let list = get(&bed, "/api/v1/incidents").await;
    let late = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["client_key"] == format!("ip:{NET}.13"))
        .unwrap_or_else(|| panic!("an address's incident for .13: {list}"));
    let id = late["id"].as_i64().expect("id");
    // The lease file arrives: the hit and its incident now name C.
    ship(&kea.leases(), &shipped);
    common::eventually("the late lease to re-attribute the hit", || async {
        // Traffic keeps the writer's upkeep turning, as on a campus.
        ask(&link, &format!("{NET}.2"), bed.dns, "www.example.test.").await;
        let hits = get(&bed, &format!("/api/v1/hits?client={NET}.13")).await;
        if hits["items"][0]["identity"]["mac"] == C {
            Ok(())
        } else {
            Err(format!("{hits}"))
        }
    })
    .await;
    let hits = get(&bed, &format!("/api/v1/hits?client={NET}.13")).await;
    assert_eq!(hits["items"][0]["identity"]["owner"], "Chen Jie", "{hits}");
    assert_eq!(hits["items"][0]["identity"]["source"], "kea", "{hits}");
    // The bulletin names the machines behind each address, and where that came from.
    let bulletin = get(&bed, "/api/v1/reports/summary").await;
    let devices_at = |ip: String| -> Vec<(String, String, String)> {
        let offender = bulletin["top_offenders"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["client"] == ip.as_str())
            .unwrap_or_else(|| panic!("{ip} among the offenders: {bulletin}"));
        let mut devices: Vec<(String, String, String)> = offender["devices"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                let text = |k: &str| d[k].as_str().unwrap_or("").to_string();
                (text("mac"), text("owner"), text("source"))
            })
            .collect();
        devices.sort();
        devices
    };
    let who = |mac: &str, owner: &str| (mac.to_string(), owner.to_string(), "kea".to_string());
    let both = vec![who(A, "Alice Wang"), who(B, "Bo Chen")];
    assert_eq!(devices_at(format!("{NET}.10")), both);
    assert_eq!(devices_at(format!("{NET}.11")), both);
    assert_eq!(devices_at(format!("{NET}.13")), [who(C, "Chen Jie")]);
    let html = get(&bed, "/api/v1/reports/summary?format=html").await;
    let html = html.as_str().expect("HTML");
    assert!(
        html.contains("00:0c:52:00:00:0c · Chen Jie (kea, 1)"),
        "{html}"
    );

    let detail = get(&bed, &format!("/api/v1/incidents/{id}")).await;
    assert_eq!(detail["client_key"], "asset:gpu-c", "{detail}");
    assert_eq!(detail["owner"], "Chen Jie", "{detail}");
    assert!(
        detail.to_string().contains("Identity learned late (kea)"),
        "{detail}"
    );
    bed.shutdown().await;
}
