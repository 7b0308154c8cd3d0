//! `[dns]`, `[upstream]`, `[blocking]` and `[[zones]]`: how queries are received, forwarded
//! and answered when blocked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::Action;

/// The DNS listeners and who may use them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// UDP and TCP are both served on each address.
    pub listen: Vec<SocketAddr>,
    /// Client networks that may query; everyone else gets REFUSED (no open resolver).
    pub allow: Vec<IpNet>,
    /// A TCP connection that sends nothing for this long is closed.
    pub tcp_idle_timeout_ms: u64,
    /// Tokio runtimes serving DNS; 0 = one per core.
    pub workers: usize,
    /// EDNS UDP payload size we advertise and the most we send over UDP (DNS flag day 2020:
    /// 1232 avoids IP fragmentation); larger answers get TC=1 and the client retries over TCP.
    pub edns_udp_payload: u16,
    /// Queries per second each client address may send over UDP; 0 = no rate limiting.
    pub rate_limit_qps: u32,
    /// Queries a client address may send in one burst above `rate_limit_qps`.
    pub rate_limit_burst: u32,
    /// Every n-th over-limit UDP query gets a truncated REFUSED (TC=1) so a real client whose
    /// address is being spoofed can retry over TCP; the rest are dropped. 0 = drop them all
    /// (default: each slip costs a send, and measured here slip = 2 cut what a neighbour of a
    /// flooding client got from 57 to 4 answers/s; see docs/RELIABILITY.md).
    pub rate_limit_slip: u32,
    /// Client addresses the rate limiter tracks at once (fixed memory, ~50 bytes each); a
    /// spoofed-source flood evicts, it never grows the table.
    pub rate_limit_table_size: usize,
    /// Open TCP connections per DNS worker; a connection beyond it is closed at once.
    pub max_tcp_connections: usize,
    /// Queries answered concurrently per TCP connection (pipelining); reading pauses beyond it.
    pub max_tcp_pipeline: usize,
    /// UDP queries in flight per DNS worker (mostly waiting on the upstream); beyond it new
    /// UDP queries are dropped, so a flood during an upstream outage cannot exhaust memory
    /// (measured ~20 KiB per waiting lookup; Unbound's num-queries-per-thread is also 4096).
    pub max_udp_inflight: usize,
    /// Load balancers whose TCP, DoT and DoH connections start with a PROXY protocol v2
    /// header naming the real client (`dns::proxy`); empty = none (the default).
    pub proxy_protocol_from: Vec<IpNet>,
    /// DNS over TLS (RFC 7858); `None` = off.
    pub tls: Option<crate::DotConfig>,
    /// DNS over HTTPS (RFC 8484); `None` = off.
    pub https: Option<crate::DohConfig>,
    /// Canary and relay names answered NXDOMAIN.
    pub canary: crate::CanaryConfig,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 5353))],
            allow: default_allow(),
            tcp_idle_timeout_ms: 10_000,
            workers: 0,
            edns_udp_payload: 1232,
            rate_limit_qps: 200,
            rate_limit_burst: 1000,
            rate_limit_slip: 0,
            rate_limit_table_size: 65_536,
            max_tcp_connections: 1024,
            max_tcp_pipeline: 32,
            max_udp_inflight: 4096,
            proxy_protocol_from: Vec::new(),
            tls: None,
            https: None,
            canary: crate::CanaryConfig::default(),
        }
    }
}

/// Loopback plus the private ranges a campus numbers its clients from.
fn default_allow() -> Vec<IpNet> {
    [
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "fc00::/7",
        "fe80::/10",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// Where allowed queries go.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// `ip:port` of the resolvers to forward to; empty = the system's resolv.conf.
    pub servers: Vec<SocketAddr>,
    /// Per-query upstream budget; past it the client gets SERVFAIL.
    pub timeout_ms: u64,
    /// Entries in the answer cache.
    pub cache_size: u64,
    /// How long past its TTL a cached answer may still be served when the upstream fails
    /// (RFC 8767 serve-stale, with TTL 30 and EDE 3); 0 = never.
    pub serve_stale_secs: u64,
    /// Internal domains forwarded to the campus's own servers instead.
    pub conditional: Vec<ConditionalForward>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            timeout_ms: 2000,
            cache_size: 32_768,
            serve_stale_secs: 86_400,
            conditional: Vec::new(),
        }
    }
}

/// One `[[upstream.conditional]]`: queries at or below `domain` go to `servers`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionalForward {
    pub domain: String,
    pub servers: Vec<SocketAddr>,
}

/// How blocked names are answered.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlockingConfig {
    pub default_action: Action,
    pub sinkhole_ipv4: Ipv4Addr,
    pub sinkhole_ipv6: Ipv6Addr,
    /// TTL of synthesised block answers (and of the SOA used for negative answers).
    pub ttl: u32,
    /// Reload feeds when files under their directories change.
    pub watch: bool,
    /// Also block allowed names whose answers CNAME to, or resolve into, a listed name or address.
    pub inspect_answers: bool,
}

impl Default for BlockingConfig {
    fn default() -> Self {
        Self {
            default_action: Action::Sinkhole,
            sinkhole_ipv4: Ipv4Addr::UNSPECIFIED,
            sinkhole_ipv6: Ipv6Addr::UNSPECIFIED,
            ttl: 300,
            watch: true,
            inspect_answers: true,
        }
    }
}

/// Sinkhole addresses as one value, for answer synthesis.
pub fn sinkhole_addrs(b: &BlockingConfig) -> (IpAddr, IpAddr) {
    (IpAddr::V4(b.sinkhole_ipv4), IpAddr::V6(b.sinkhole_ipv6))
}

/// One `[[zones]]`: a zone the campus is authoritative for, served from an RFC 1035 file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub name: String,
    pub file: PathBuf,
}
