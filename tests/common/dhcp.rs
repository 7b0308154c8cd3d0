//! Real DHCP in the test namespaces ([`super::netns`]): ISC Kea serving a subnet on the server
//! side, `perfdhcp` playing clients with chosen MACs on the client side, and Kea's own lease
//! files read back as the reference of who got which address.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::netns::{Daemon, Link};
use super::tools::require_tool;

/// Waits (bounded) until one of `files` contains `text`.
pub async fn wait_for_text_any(files: &[&Path], text: &str) {
    for _ in 0..200 {
        if files
            .iter()
            .any(|f| std::fs::read_to_string(f).is_ok_and(|s| s.contains(text)))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("none of {files:?} ever contained `{text}`");
}

/// [`wait_for_text_any`] of one file.
pub async fn wait_for_text(file: &Path, text: &str) {
    wait_for_text_any(&[file], text).await;
}

/// What a test's Kea serves: a /24 `net` (like `10.213.50`) with a pool of .100–.199.
pub struct KeaConfig<'a> {
    pub net: &'a str,
    pub leases: &'a Path,
    pub log: &'a Path,
    /// Seconds between Kea's lease file cleanups (0: never).
    pub lfc_interval: u32,
    pub valid_lifetime: u32,
    /// Host reservations: (MAC, last octet).
    pub reservations: &'a [(&'a str, u8)],
}

impl KeaConfig<'_> {
    /// Writes the Kea config for `link`'s server side to `conf`.
    pub fn write(&self, link: &Link, conf: &Path) {
        let net = self.net;
        let hosts: Vec<String> = self
            .reservations
            .iter()
            .map(|(mac, n)| format!(r#"{{"hw-address": "{mac}", "ip-address": "{net}.{n}"}}"#))
            .collect();
        let text = format!(
            r#"{{"Dhcp4": {{"interfaces-config": {{"interfaces": ["{}"]}},
 "lease-database": {{"type": "memfile", "persist": true, "name": "{}", "lfc-interval": {}}},
 "valid-lifetime": {},
 "subnet4": [{{"id": 1, "subnet": "{net}.0/24", "pools": [{{"pool": "{net}.100 - {net}.199"}}],
   "reservations": [{}]}}],
 "loggers": [{{"name": "kea-dhcp4", "output_options": [{{"output": "{}"}}], "severity": "INFO"}}]}}}}"#,
            link.server_if,
            self.leases.display(),
            self.lfc_interval,
            self.valid_lifetime,
            hosts.join(", "),
            self.log.display()
        );
        std::fs::write(conf, text).expect("write the Kea config");
    }
}

/// `kea-dhcp4` on `link`'s server side with `conf`, its pid and lock files in `dir`; returns
/// once its `log` says it started.
pub async fn start_kea(link: &Link, dir: &Path, conf: &Path, log: &Path) -> Daemon {
    let kea = require_tool("kea-dhcp4", "kea-dhcp4-server");
    let daemon = Daemon(
        Link::exec(&link.server_ns, &kea)
            .arg("-c")
            .arg(conf)
            .env("KEA_PIDFILE_DIR", dir)
            .env("KEA_LOCKFILE_DIR", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kea-dhcp4 starts"),
    );
    wait_for_text(log, "DHCP4_STARTED").await;
    daemon
}

/// `clients` DHCP clients with MACs from `base` get a lease from the server on `link`.
pub fn perfdhcp(link: &Link, clients: u32, base: &str) {
    let bin = require_tool("perfdhcp", "kea-admin");
    let out = Link::exec(&link.client_ns, &bin)
        .args([
            "-4",
            "-l",
            &link.client_if,
            "-r",
            "20",
            "-p",
            "5",
            "-W",
            "1000000",
        ])
        .args(["-R", &clients.to_string(), "-n", &(clients * 2).to_string()])
        .args(["-b", &format!("mac={base}")])
        .output()
        .expect("perfdhcp runs");
    // perfdhcp's exit code reports dropped packets (3); the lease file is what counts.
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "perfdhcp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs [`perfdhcp`] until `granted()` lists a lease for the round's first MAC (`base`), at
/// most five rounds: under load perfdhcp gives up on a slow exchange, and the servers' lease
/// files, not perfdhcp's counters, say which clients got an address.
pub fn perfdhcp_until(
    link: &Link,
    clients: u32,
    base: &str,
    granted: impl Fn() -> Vec<(String, String)>,
) -> Vec<(String, String)> {
    for _ in 0..5 {
        perfdhcp(link, clients, base);
        let now = granted();
        if now.iter().any(|(_, m)| m == base) {
            return now;
        }
    }
    panic!(
        "no client of {base} got a lease in five rounds: {:?}",
        granted()
    );
}

/// Each (address, MAC) Kea holds granted now, from its lease files in `dir` (the current one
/// and the ones its cleanup keeps, oldest first): the newest row per address wins, and a
/// released or deleted lease (a non-zero state or a zero lifetime) removes it.
pub fn kea_granted(dir: &Path) -> Vec<(String, String)> {
    let mut out = std::collections::BTreeMap::new();
    for name in [".1", ".completed", ".2", ""] {
        let text =
            std::fs::read_to_string(dir.join(format!("kea-leases4.csv{name}"))).unwrap_or_default();
        for line in text.lines().filter(|l| !l.starts_with("address")) {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() <= 9 {
                continue;
            }
            if f[9] == "0" && f[3] != "0" {
                out.insert(f[0].to_string(), f[1].to_string());
            } else {
                out.remove(f[0]);
            }
        }
    }
    out.into_iter().collect()
}

/// Waits (bounded) until poolguard's `GET /api/v1/clients/{ip}` names `mac` as the holder of
/// `ip` now; returns that answer.
pub async fn holder(bed: &super::TestBed, token: &str, ip: &str, mac: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, body) = bed.api_get(&format!("/api/v1/clients/{ip}"), token).await;
        assert_eq!(status, 200, "{body}");
        last = body;
        if last["identity"]["mac"] == mac {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{ip} never attributed to {mac}: {last}");
}
