//! `[dns.tls]` (DNS over TLS, RFC 7858), `[dns.https]` (DNS over HTTPS, RFC 8484) and
//! `[dns.canary]`: encrypted listeners that answer with the same policy as UDP/TCP, and the
//! names that keep browsers and Apple devices on the campus resolver.
//!
//! Each encrypted listener has its own certificate files (one pair may serve both), re-read
//! on SIGHUP. `name` is the name in that certificate: clients that authenticate the resolver
//! (RFC 7858 strict profile, every DoH client) check it, and RFC 9462 discovery
//! (`_dns.resolver.arpa` SVCB) names it as the target.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// DNS over TLS: `[dns.tls]`. Absent = no DoT listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DotConfig {
    /// Addresses to accept DoT on (TCP only); 853 is the RFC 7858 port.
    pub listen: Vec<SocketAddr>,
    /// The TLS name clients verify; also the SVCB target of RFC 9462 discovery.
    pub name: String,
    /// PEM certificate chain (leaf first), re-read on SIGHUP.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1), re-read on SIGHUP.
    pub key_file: PathBuf,
    /// A TLS handshake not done within this is dropped (slow or idle connects cost nothing).
    pub handshake_timeout_ms: u64,
    /// A session with no complete query for this long is closed. Longer than plain TCP's:
    /// a DoT client keeps one session for many queries to save handshakes (RFC 7858 §3.4).
    pub idle_timeout_ms: u64,
    /// Open sessions per DNS worker; one beyond it is closed at once.
    pub max_connections: usize,
}

impl Default for DotConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 853))],
            name: String::new(),
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            handshake_timeout_ms: 5_000,
            idle_timeout_ms: 30_000,
            max_connections: 1024,
        }
    }
}

/// DNS over HTTPS: `[dns.https]`. Absent = no DoH listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DohConfig {
    /// Addresses to accept DoH on (HTTP/2 and HTTP/1.1 over TLS, chosen by ALPN).
    pub listen: Vec<SocketAddr>,
    /// The TLS name clients verify; also the SVCB target of RFC 9462 discovery.
    pub name: String,
    /// The URI path of the DoH endpoint (RFC 8484 §3: the client's URI template names it).
    pub path: String,
    /// PEM certificate chain (leaf first), re-read on SIGHUP.
    pub cert_file: PathBuf,
    /// PEM private key, re-read on SIGHUP.
    pub key_file: PathBuf,
    /// A TLS handshake not done within this is dropped.
    pub handshake_timeout_ms: u64,
    /// A connection with no request for this long is closed.
    pub idle_timeout_ms: u64,
    /// Open connections per DNS worker; one beyond it is closed at once.
    pub max_connections: usize,
    /// Largest POST body accepted (413 beyond). A DNS query is a few hundred bytes even
    /// with EDNS padding; 4096 leaves room and stops a client from streaming megabytes.
    pub max_body_bytes: usize,
}

impl Default for DohConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 443))],
            name: String::new(),
            path: "/dns-query".into(),
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            handshake_timeout_ms: 5_000,
            idle_timeout_ms: 30_000,
            max_connections: 1024,
            max_body_bytes: 4096,
        }
    }
}

/// `[dns.canary]`: names answered NXDOMAIN so clients keep using the campus resolver
/// (and so its policy); each can be switched off.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CanaryConfig {
    /// `use-application-dns.net`: Firefox does not turn on its own DoH where this is NXDOMAIN.
    pub use_application_dns: bool,
    /// `mask.icloud.com`, `mask-h2.icloud.com`: Apple devices do not use iCloud Private Relay
    /// (which also resolves elsewhere) where these are NXDOMAIN.
    pub icloud_private_relay: bool,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        Self {
            use_application_dns: true,
            icloud_private_relay: true,
        }
    }
}

/// The checks shared by both listeners: `(key, reason)` of the first problem.
fn check_listener(
    section: &str,
    listen: &[SocketAddr],
    name: &str,
    files: [&Path; 2],
    timeouts: [u64; 2],
    max_connections: usize,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<(), (String, String)> {
    let key = |k: &str| format!("{section}.{k}");
    if listen.is_empty() {
        return Err((
            key("listen"),
            "needs at least one address, or remove the section to turn it off".into(),
        ));
    }
    if poolguard_model::domain::DomainName::parse(name).is_err() {
        return Err((
            key("name"),
            format!(
                "`{name}` is not a domain name; give the name in the certificate (clients verify it)"
            ),
        ));
    }
    for (k, file) in ["cert_file", "key_file"].into_iter().zip(files) {
        if file.as_os_str().is_empty() {
            return Err((key(k), "is required (a PEM file)".into()));
        }
        if !resolve(file).is_file() {
            return Err((
                key(k),
                format!("{} does not exist", resolve(file).display()),
            ));
        }
    }
    for (k, ms) in ["handshake_timeout_ms", "idle_timeout_ms"]
        .into_iter()
        .zip(timeouts)
    {
        if ms == 0 {
            return Err((key(k), "must be above 0".into()));
        }
    }
    if max_connections == 0 {
        return Err((key("max_connections"), "must be above 0".into()));
    }
    Ok(())
}

/// Checks `[dns.tls]` and `[dns.https]`: `(key, reason)` of the first problem. The files are
/// only checked to exist here; the DNS crate parses them (and names what is wrong in them).
pub(crate) fn validate(
    tls: Option<&DotConfig>,
    https: Option<&DohConfig>,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<(), (String, String)> {
    if let Some(t) = tls {
        check_listener(
            "dns.tls",
            &t.listen,
            &t.name,
            [&t.cert_file, &t.key_file],
            [t.handshake_timeout_ms, t.idle_timeout_ms],
            t.max_connections,
            resolve,
        )?;
    }
    if let Some(h) = https {
        check_listener(
            "dns.https",
            &h.listen,
            &h.name,
            [&h.cert_file, &h.key_file],
            [h.handshake_timeout_ms, h.idle_timeout_ms],
            h.max_connections,
            resolve,
        )?;
        let path_ok = h.path.starts_with('/')
            && h.path.len() > 1
            && h.path
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'{' | b'}'));
        if !path_ok {
            return Err((
                "dns.https.path".into(),
                format!(
                    "`{}` must be an absolute URI path such as \"/dns-query\" (no query, fragment or spaces)",
                    h.path
                ),
            ));
        }
        if !(12..=65_535).contains(&h.max_body_bytes) {
            return Err((
                "dns.https.max_body_bytes".into(),
                "must be between 12 (a DNS header) and 65535 (the largest DNS message)".into(),
            ));
        }
    }
    if let (Some(t), Some(h)) = (tls, https)
        && let Some(addr) = t
            .listen
            .iter()
            .find(|a| a.port() != 0 && h.listen.contains(a))
    {
        return Err((
            "dns.https.listen".into(),
            format!("{addr} is also in dns.tls.listen; DoT and DoH need their own ports"),
        ));
    }
    Ok(())
}
