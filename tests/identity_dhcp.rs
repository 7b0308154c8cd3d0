//! Real DHCP servers writing real lease files that poolguard follows: ISC Kea (memfile, with
//! its lease file cleanup rotating the file meanwhile) and ISC dhcpd, each in a network
//! namespace with `perfdhcp` playing the clients on a veth link. poolguard answers
//! `GET /api/v1/clients/{ip}` with the MAC that got each address, and the ledger's owner of it.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::dhcp::{
    KeaConfig, holder, kea_granted, perfdhcp_until, start_kea, wait_for_text as wait_for,
    wait_for_text_any as wait_for_any,
};
use common::netns::{Daemon, Link};
use common::tools::require_tool;
use common::{TestBed, sha256_hex};
use serde_json::Value;

const TOKEN: &str = "viewer-token-for-dhcp";

async fn bed(kind: &str, lease_file: &Path) -> TestBed {
    let ledger = "network,mac,asset,kind,location,department,owner,contact,account\n\
                  ,00:0c:01:02:03:04,laptop-4,laptop,,Physics,Zhang Wei,,\n";
    TestBed::builder()
        .file("clients.csv", ledger)
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname = \"t\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
             [store]\npath = \"data/e.db\"\n[clients]\nledger = \"clients.csv\"\n\
             [identity]\nfollow_every = \"100ms\"\n[[identity.{kind}]]\npath = \"{}\"\n",
            sha256_hex(TOKEN),
            lease_file.display()
        ))
        .start()
        .await
}

async fn client(bed: &TestBed, ip: &str) -> Value {
    let (status, body) = bed.api_get(&format!("/api/v1/clients/{ip}"), TOKEN).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kea_leases_are_followed_through_its_lease_file_cleanup() {
    let link = Link::new("10.213.50");
    let dir = tempfile::tempdir().unwrap();
    let leases = dir.path().join("kea-leases4.csv");
    let log = dir.path().join("kea.log");
    let conf = dir.path().join("kea.json");
    // lfc-interval 1: Kea's lease file cleanup rotates the file every second.
    KeaConfig {
        net: "10.213.50",
        leases: &leases,
        log: &log,
        lfc_interval: 1,
        valid_lifetime: 600,
        reservations: &[],
    }
    .write(&link, &conf);
    let _kea = start_kea(&link, dir.path(), &conf, &log).await;
    let bed = bed("kea", &leases).await;

    let granted = perfdhcp_until(&link, 3, "00:0c:01:02:03:04", || kea_granted(dir.path()));
    let ip = address_of(&granted, "00:0c:01:02:03:04");
    let first = holder(&bed, TOKEN, &ip, "00:0c:01:02:03:04").await;
    assert_eq!(first["identity"]["owner"], "Zhang Wei", "{first}");
    assert_eq!(first["identity"]["source"], "kea");
    assert_eq!(first["holdings"][0]["source"], "kea");
    let round_one = kea_granted(dir.path());

    // The cleanup has rotated the file (`.2` while it merges, `.1` after); then more clients.
    let (merged, rotated) = (
        dir.path().join("kea-leases4.csv.1"),
        dir.path().join("kea-leases4.csv.2"),
    );
    wait_for_any(&[&merged, &rotated], &format!("{ip},")).await;
    assert!(
        !std::fs::read_to_string(&leases)
            .unwrap()
            .contains(&format!("{ip},")),
        "the lease file was rotated"
    );
    // Every lease Kea wrote, before and after the rotation, is followed: Kea's own files
    // (whichever clients perfdhcp completed) are the reference.
    let all = perfdhcp_until(&link, 2, "00:0c:09:00:00:01", || kea_granted(dir.path()));
    assert!(
        all.len() > round_one.len(),
        "the second round got leases: {all:?}"
    );
    for (ip, mac) in &all {
        holder(&bed, TOKEN, ip, mac).await;
    }
    let history = client(&bed, "10.213.50.100").await;
    assert_eq!(
        history["holdings"].as_array().map(Vec::len),
        Some(1),
        "{history}"
    );
    bed.shutdown().await;
}

/// The address `mac` was granted (the test's first client always gets one).
fn address_of(granted: &[(String, String)], mac: &str) -> String {
    granted
        .iter()
        .find(|(_, m)| m == mac)
        .map(|(ip, _)| ip.clone())
        .unwrap_or_else(|| panic!("{mac} got no lease: {granted:?}"))
}

/// Each (address, MAC) of an active lease in dhcpd.leases, newest record per address.
fn dhcpd_granted(file: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut out = std::collections::BTreeMap::new();
    for block in text.split("lease ").skip(1) {
        let ip = block.split_whitespace().next().unwrap_or("").to_string();
        let mac = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("hardware ethernet "))
            .map(|m| m.trim_end_matches(';').to_string());
        match mac {
            Some(mac) if block.contains("binding state active;") => {
                out.insert(ip, mac);
            }
            _ => {
                out.remove(&ip);
            }
        }
    }
    out.into_iter().collect()
}

/// dhcpd on `link` with `dir`'s `dhcpd.conf` and `dhcpd.leases`, its log in `dhcpd.out`
/// (appended: a restart keeps the earlier lines).
fn start_dhcpd(link: &Link, dir: &Path) -> Daemon {
    let dhcpd = require_tool("dhcpd", "isc-dhcp-server");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("dhcpd.out"))
        .unwrap();
    Daemon(
        Link::exec(&link.server_ns, &dhcpd)
            .args(["-4", "-f", "-d", "-cf"])
            .arg(dir.join("dhcpd.conf"))
            .arg("-lf")
            .arg(dir.join("dhcpd.leases"))
            .arg("-pf")
            .arg(dir.join("dhcpd.pid"))
            .arg(&link.server_if)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dhcpd starts"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcpd_leases_are_followed_through_its_rewrites() {
    let link = Link::new("10.213.51");
    let dir = tempfile::tempdir().unwrap();
    let leases = dir.path().join("dhcpd.leases");
    std::fs::write(&leases, "").unwrap();
    let conf = dir.path().join("dhcpd.conf");
    std::fs::write(
        &conf,
        "default-lease-time 600;\nmax-lease-time 600;\nauthoritative;\nping-check false;\n\
         subnet 10.213.51.0 netmask 255.255.255.0 {\n  range 10.213.51.100 10.213.51.199;\n}\n",
    )
    .unwrap();
    let out = dir.path().join("dhcpd.out");
    let _dhcpd = start_dhcpd(&link, dir.path());
    wait_for(&out, "Server starting service").await;
    let bed = bed("dhcpd", &leases).await;

    let granted = perfdhcp_until(&link, 2, "00:0c:01:02:03:04", || dhcpd_granted(&leases));
    let ip = address_of(&granted, "00:0c:01:02:03:04");
    let first = holder(&bed, TOKEN, &ip, "00:0c:01:02:03:04").await;
    assert_eq!(first["identity"]["owner"], "Zhang Wei", "{first}");
    assert_eq!(first["identity"]["source"], "dhcpd");
    let round_one = dhcpd_granted(&leases);
    // dhcpd rewrites its file at start and periodically (the old one becomes `dhcpd.leases~`):
    // a restart of dhcpd rewrites it now, and the next clients' leases are still followed.
    drop(_dhcpd);
    let _dhcpd = start_dhcpd(&link, dir.path());
    wait_for(
        &out,
        &format!("Wrote {} leases to leases file", round_one.len()),
    )
    .await;
    let all = perfdhcp_until(&link, 2, "00:0c:09:00:00:01", || dhcpd_granted(&leases));
    assert!(
        all.len() > round_one.len(),
        "the second round got leases: {all:?}"
    );
    for (ip, mac) in &all {
        holder(&bed, TOKEN, ip, mac).await;
    }
    let (status, device) = bed
        .api_get("/api/v1/identities?mac=00-0C-01-02-03-04", TOKEN)
        .await;
    assert_eq!(status, 200);
    assert_eq!(device["ledger"]["owner"], "Zhang Wei", "{device}");
    assert_eq!(device["holdings"][0]["address"], ip.as_str(), "{device}");
    bed.shutdown().await;
}
