//! Sending RADIUS accounting with FreeRADIUS's real `radclient` (package freeradius-utils).

use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::tools::require_tool;

/// Sends one accounting request (`attrs`, radclient's `Name = value, …` line); true when the
/// server answered it.
pub async fn radclient(server: SocketAddr, secret: &str, attrs: &str) -> bool {
    let bin = require_tool("radclient", "freeradius-utils");
    let mut child = tokio::process::Command::new(bin)
        .args(["-r", "1", "-t", "2", "-q"])
        .arg(server.to_string())
        .arg("acct")
        .arg(secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("radclient starts");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(attrs.as_bytes()).await.expect("attributes");
    drop(stdin);
    child.wait().await.expect("radclient ends").success()
}

/// A portal login of `user` at `ip` from MAC 00-1A-2B-3C-4D-5F: `status` is `Start`,
/// `Interim-Update` or `Stop`.
pub fn login(status: &str, user: &str, ip: &str) -> String {
    login_from(status, user, "00-1A-2B-3C-4D-5F", ip)
}

/// [`login`] from the machine with MAC `mac` (as a NAS spells it: `00-1A-…`).
pub fn login_from(status: &str, user: &str, mac: &str, ip: &str) -> String {
    format!(
        "Acct-Status-Type = {status}, User-Name = \"{user}\", Framed-IP-Address = {ip}, \
         Calling-Station-Id = \"{mac}\", Acct-Session-Id = \"s-{user}-{ip}\", \
         NAS-IP-Address = 127.0.0.1\n"
    )
}

/// Asserts what an incident's detail (`/api/v1/incidents/{id}`) says once the login of
/// [`login`] ("lina", MAC 00-1A-2B-3C-4D-5F) was told late and covered its one hit: it follows
/// the laptop, names the account, notes what was learned, and still finds its hit.
pub fn assert_learned_late(detail: &serde_json::Value) {
    let text = detail.to_string();
    assert!(text.contains("mac:00:1a:2b:3c:4d:5f"), "{detail}");
    assert!(text.contains("Identity learned late (radius)"), "{detail}");
    assert!(text.contains("\"account\":\"lina\""), "{detail}");
    assert_eq!(
        detail["hits"].as_array().map(Vec::len),
        Some(1),
        "its evidence is still found: {detail}"
    );
}
