//! `config.toml`: the one file network ops edit.
//!
//! Every section is a plain serde struct with `deny_unknown_fields`, so a typo is an error at
//! start (with the TOML line and the key) rather than a silently ignored setting. Defaults live
//! here and are documented in the shipped `config.toml`. Relative paths are resolved against the
//! directory of the config file, so `poolguard --config /etc/poolguard/config.toml` finds
//! `/etc/poolguard/blocklists/` no matter where it was started from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

pub use poolguard_model::{Action, FeedFormat, FeedKind, Severity};

pub mod export;
pub mod incidents;

/// Why a config could not be used. Messages name the file, the key and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {key}: {error}")]
    Parse {
        path: PathBuf,
        /// The key path, e.g. `dns.listen[0]`; empty for syntax errors.
        key: String,
        error: Box<toml::de::Error>,
    },
    #[error("{path}: {key}: {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

/// The whole configuration, as loaded from `config.toml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub dns: DnsConfig,
    #[serde(default)]
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub blocking: BlockingConfig,
    #[serde(default)]
    pub feeds: Vec<FeedConfig>,
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub clients: ClientsConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Incident deadlines (campus policy: identify in 48 h, report in 72 h).
    #[serde(default)]
    pub incidents: crate::incidents::IncidentsConfig,
    /// Repeat-offender thresholds and the walled garden.
    #[serde(default)]
    pub enforcement: crate::incidents::EnforcementConfig,
    /// The notice page quarantined clients are sent to.
    #[serde(default)]
    pub notice: crate::incidents::NoticeConfig,
    /// Webhooks (and syslog) for incident and quarantine events.
    #[serde(default)]
    pub alerts: crate::incidents::AlertsConfig,
    /// Exports of every query or hit to the operators' pipelines (`[[export.dnstap]]`).
    #[serde(default)]
    pub export: crate::export::ExportConfig,
    /// Directory of the config file; relative paths are resolved against it. Not a TOML key.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The config file itself, re-read on SIGHUP for `[[api.tokens]]`. Not a TOML key.
    #[serde(skip)]
    pub path: PathBuf,
}

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

/// One `[[feeds]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// Unique, used in logs, hits and the API: `[A-Za-z0-9_.-]{1,64}`.
    pub name: String,
    /// Local file (relative to the config's directory).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Subscription source (issue 4); the local `path` then caches the last good copy.
    #[serde(default)]
    pub url: Option<String>,
    /// Subscription refresh interval, e.g. "6h".
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub refresh: Option<Duration>,
    #[serde(default)]
    pub kind: FeedKind,
    #[serde(default)]
    pub format: FeedFormat,
    /// Overrides `[blocking] default_action` for this feed.
    #[serde(default)]
    pub action: Option<Action>,
    #[serde(default = "default_category")]
    pub category: String,
    #[serde(default)]
    pub severity: Severity,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Subscriptions: a fetch that has not completed after this long fails ("30s" default).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
    /// Subscriptions: bodies over this many MiB are refused (default `[api] max_upload_mb`).
    #[serde(default)]
    pub max_size_mb: Option<u64>,
}

fn default_category() -> String {
    "mining".to_string()
}

fn yes() -> bool {
    true
}

/// One `[[zones]]`: a zone the campus is authoritative for, served from an RFC 1035 file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub name: String,
    pub file: PathBuf,
}

/// The HTTP API for staff and feed maintainers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Absent = API off.
    pub listen: Option<SocketAddr>,
    /// Optional separate listener for `/metrics` and `/healthz`.
    pub metrics_listen: Option<SocketAddr>,
    pub max_upload_mb: u64,
    /// Serve `/api/v1/publish/*` without a token (for firewalls pulling the lists).
    pub public_publish: bool,
    pub tokens: Vec<TokenConfig>,
    /// Where list files poolguard writes itself go: feeds created or uploaded over the API,
    /// the last good copy of each subscription without a `path`, and the version history
    /// (`.poolguard/`). A setting of its own because it must be writable, while the config
    /// beside it may be read-only (systemd's `ProtectSystem=strict`, a read-only mount).
    pub feeds_dir: PathBuf,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: None,
            metrics_listen: None,
            max_upload_mb: 64,
            public_publish: false,
            tokens: Vec::new(),
            feeds_dir: PathBuf::from("blocklists"),
        }
    }
}

/// A bearer token, stored only as its SHA-256 hash.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub name: String,
    pub role: Role,
    /// Lower-case hex SHA-256 of the token.
    pub sha256: String,
}

/// What a token may do; each role includes the ones before it, except as noted in the API.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    Serialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Investigator,
    Feeds,
    Admin,
}

/// The query log and evidence store.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// Record every query, not only hits.
    pub log_queries: bool,
    pub query_retention_days: u32,
    pub hit_retention_days: u32,
    /// Rows per write transaction, at most.
    pub batch_size: usize,
    /// A partial batch is written after this long; bounds what a crash can lose.
    pub flush_interval_ms: u64,
    /// Query events buffered in memory before ordinary rows are dropped. Also the number of
    /// hits held in memory when SQLite and the spool file both fail (`store::spool`).
    pub queue_capacity: usize,
    /// Most bytes the hit spool (`<path>.spool`) may take while SQLite cannot be written
    /// (disk full, read-only): hits go there and are replayed when writes succeed again.
    /// 0 = no spool file (hits are then held in memory only, up to `queue_capacity`).
    pub spool_max_bytes: u64,
    /// While a DNS worker is saturated (its socket queue stays deep), ordinary query rows are
    /// shed (counted) so logging never costs answers; hits are always kept. `false` keeps
    /// every row, and answers slow down instead when the server is at capacity.
    pub shed_when_saturated: bool,
    /// While a DNS worker is saturated, hits are appended to the spool file (durable at once)
    /// instead of being indexed into SQLite on the worker's core, and are indexed as soon as
    /// the worker has room again, or earlier once the spool is half full. `false` indexes
    /// every hit immediately and lets answers slow down at capacity instead.
    pub defer_hits_when_saturated: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/poolguard.db"),
            log_queries: true,
            query_retention_days: 7,
            hit_retention_days: 400,
            batch_size: 4096,
            flush_interval_ms: 500,
            queue_capacity: 65_536,
            spool_max_bytes: 1024 * 1024 * 1024,
            shed_when_saturated: true,
            defer_hits_when_saturated: true,
        }
    }
}

/// The campus asset ledger.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientsConfig {
    pub ledger: Option<PathBuf>,
}

/// Diagnostics.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter; `RUST_LOG` overrides it. hickory logs every response at info, so warn.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "warn,poolguard=info".to_string(),
        }
    }
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// Parses "30s", "6h", "30d": the forms operators write.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration like \"30s\", \"6h\" or \"30d\": {e}"))
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::from_toml(&text, path, &base)
    }

    /// Parses and validates config text; `base` anchors relative paths.
    pub fn from_toml(text: &str, path: &Path, base: &Path) -> Result<Self, ConfigError> {
        let parse_error = |key: String, error: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            key: if key.is_empty() || key == "." {
                "syntax".to_string()
            } else {
                key
            },
            error: Box::new(error),
        };
        let de = toml::Deserializer::parse(text).map_err(|e| parse_error(String::new(), e))?;
        let mut config: Config = serde_path_to_error::deserialize(de)
            .map_err(|e| parse_error(e.path().to_string(), e.into_inner()))?;
        config.base_dir = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base.to_path_buf()
        };
        config.path = path.to_path_buf();
        config.validate(path)?;
        Ok(config)
    }

    /// Resolves a path from the config against the config's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The folder list files poolguard writes go to (`[api] feeds_dir`), resolved.
    pub fn feeds_dir(&self) -> PathBuf {
        self.resolve(&self.api.feeds_dir)
    }

    /// The file of a feed poolguard writes itself, as stored in a feed definition (relative
    /// to the config's directory unless `feeds_dir` is absolute).
    pub fn written_feed_path(&self, name: &str) -> PathBuf {
        self.api.feeds_dir.join(format!("{name}.txt"))
    }

    /// The action a feed's blocks get.
    pub fn action_of(&self, feed: &FeedConfig) -> Action {
        feed.action.unwrap_or(self.blocking.default_action)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            reason,
        };
        if self.dns.listen.is_empty() {
            return Err(invalid(
                "dns.listen".into(),
                "needs at least one address, e.g. [\"127.0.0.1:5353\"]".into(),
            ));
        }
        if self.dns.edns_udp_payload < 512 {
            return Err(invalid(
                "dns.edns_udp_payload".into(),
                "must be at least 512 (RFC 6891); 1232 is the usual choice".into(),
            ));
        }
        if self.dns.tcp_idle_timeout_ms == 0 {
            return Err(invalid(
                "dns.tcp_idle_timeout_ms".into(),
                "must be above 0, or idle TCP clients are never disconnected".into(),
            ));
        }
        if self.dns.max_tcp_connections == 0
            || self.dns.max_tcp_pipeline == 0
            || self.dns.max_udp_inflight == 0
        {
            return Err(invalid(
                "dns.max_tcp_connections / dns.max_tcp_pipeline / dns.max_udp_inflight".into(),
                "must be above 0".into(),
            ));
        }
        if self.upstream.timeout_ms == 0 {
            return Err(invalid(
                "upstream.timeout_ms".into(),
                "must be above 0".into(),
            ));
        }
        for (i, c) in self.upstream.conditional.iter().enumerate() {
            if poolguard_model::domain::DomainName::parse(&c.domain).is_err() {
                return Err(invalid(
                    format!("upstream.conditional[{i}].domain"),
                    format!("`{}` is not a domain name", c.domain),
                ));
            }
            if c.servers.is_empty() {
                return Err(invalid(
                    format!("upstream.conditional[{i}].servers"),
                    "needs at least one ip:port".into(),
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, f) in self.feeds.iter().enumerate() {
            let key = |k: &str| format!("feeds[{i}] ({}).{k}", f.name);
            if !valid_feed_name(&f.name) {
                return Err(invalid(
                    format!("feeds[{i}].name"),
                    format!(
                        "`{}` must be 1-64 characters of letters, digits, '_', '-' or '.', not starting with '.'",
                        f.name
                    ),
                ));
            }
            if !names.insert(f.name.as_str()) {
                return Err(invalid(key("name"), "is used by another feed".into()));
            }
            match (&f.path, &f.url) {
                (None, None) => {
                    return Err(invalid(key("path"), "a feed needs `path` or `url`".into()));
                }
                (Some(p), None) if f.enabled && !self.resolve(p).is_file() => {
                    return Err(invalid(
                        key("path"),
                        format!("{} does not exist", self.resolve(p).display()),
                    ));
                }
                _ => {}
            }
            if let Some(u) = &f.url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                return Err(invalid(
                    key("url"),
                    format!("`{u}` must be an http:// or https:// URL"),
                ));
            }
            if f.url.is_some() && f.refresh.is_none() {
                return Err(invalid(
                    key("refresh"),
                    "a subscription needs a refresh interval, e.g. \"6h\"".into(),
                ));
            }
        }
        for (i, z) in self.zones.iter().enumerate() {
            if poolguard_model::domain::DomainName::parse(&z.name).is_err() {
                return Err(invalid(
                    format!("zones[{i}].name"),
                    format!("`{}` is not a domain name", z.name),
                ));
            }
            if !self.resolve(&z.file).is_file() {
                return Err(invalid(
                    format!("zones[{i}].file"),
                    format!("{} does not exist", self.resolve(&z.file).display()),
                ));
            }
        }
        if let Some(l) = &self.clients.ledger
            && !self.resolve(l).is_file()
        {
            return Err(invalid(
                "clients.ledger".into(),
                format!("{} does not exist", self.resolve(l).display()),
            ));
        }
        for (i, t) in self.api.tokens.iter().enumerate() {
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    format!("api.tokens[{i}].sha256"),
                    "must be 64 hex digits (run `poolguard token` to make one)".into(),
                ));
            }
        }
        crate::incidents::validate(self).map_err(|(key, reason)| invalid(key, reason))?;
        crate::export::validate(&self.export, &|p| self.resolve(p))
            .map_err(|(key, reason)| invalid(key, reason))?;
        if self.store.batch_size == 0 || self.store.queue_capacity == 0 {
            return Err(invalid(
                "store.batch_size / store.queue_capacity".into(),
                "must be above 0".into(),
            ));
        }
        if self.store.spool_max_bytes != 0 && self.store.spool_max_bytes < MIN_SPOOL_BYTES {
            return Err(invalid(
                "store.spool_max_bytes".into(),
                format!("must be 0 (no spool file) or at least {MIN_SPOOL_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

/// The smallest useful hit spool: room for a few hundred hits (one is ~250 bytes).
pub const MIN_SPOOL_BYTES: u64 = 64 * 1024;

/// Feed names end up in file names and URLs, so they are restricted to a safe alphabet.
pub fn valid_feed_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Sinkhole addresses as one value, for answer synthesis.
pub fn sinkhole_addrs(b: &BlockingConfig) -> (IpAddr, IpAddr) {
    (IpAddr::V4(b.sinkhole_ipv4), IpAddr::V6(b.sinkhole_ipv6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("t.toml"), Path::new("."))
    }

    #[test]
    fn spool_bound_is_validated() {
        let default = parse("").expect("defaults");
        assert_eq!(default.store.spool_max_bytes, 1024 * 1024 * 1024);
        let off = parse("[store]\nspool_max_bytes = 0\n").expect("0 turns the file off");
        assert_eq!(off.store.spool_max_bytes, 0);
        let err = parse("[store]\nspool_max_bytes = 100\n").expect_err("too small");
        assert!(err.to_string().contains("store.spool_max_bytes"), "{err}");
    }

    #[test]
    fn dnstap_exports_are_validated_naming_the_key() {
        let ok = parse("[[export.dnstap]]\nunix = \"/run/dnstap.sock\"\nselect = \"hits\"\n")
            .expect("valid");
        assert_eq!(ok.export.dnstap.len(), 1);
        assert_eq!(ok.export.dnstap[0].queue_size, 8192);
        for (text, key) in [
            ("[[export.dnstap]]\n", "export.dnstap[0].unix"),
            (
                "[[export.dnstap]]\nunix = \"/a\"\ntcp = \"127.0.0.1:6000\"\n",
                "export.dnstap[0].tcp",
            ),
            (
                "[[export.dnstap]]\ntcp = \"127.0.0.1:6000\"\nqueue_size = 0\n",
                "export.dnstap[0].queue_size",
            ),
            (
                "[[export.dnstap]]\ntcp = \"127.0.0.1:6000\"\nreconnect_min_ms = 900\nreconnect_max_ms = 10\n",
                "export.dnstap[0].reconnect_max_ms",
            ),
            (
                "[[export.dnstap]]\ntcp = \"127.0.0.1:6000\"\nmessages = \"all\"\n",
                "export.dnstap[0].messages",
            ),
            (
                "[[export.dnstap]]\ntcp = \"127.0.0.1:6000\"\nidentity = \"\"\n",
                "export.dnstap[0].identity",
            ),
            ("[[export.syslog]]\n", "export.syslog[0].tcp"),
            (
                "[[export.syslog]]\nudp = \"127.0.0.1:514\"\nfacility = \"local9\"\n",
                "export.syslog[0].facility",
            ),
            (
                "[[export.syslog]]\nudp = \"127.0.0.1:514\"\ntcp = \"127.0.0.1:514\"\n",
                "export.syslog[0].udp",
            ),
            (
                "[[export.syslog]]\ntcp = \"127.0.0.1:6514\"\ntls = true\n",
                "export.syslog[0].ca_file",
            ),
            (
                "[[export.syslog]]\ntcp = \"127.0.0.1:6514\"\ntls = true\nca_file = \"missing-ca.pem\"\n",
                "export.syslog[0].ca_file",
            ),
            (
                "[[export.syslog]]\nudp = \"127.0.0.1:514\"\ntls = true\nca_file = \"x.pem\"\n",
                "export.syslog[0].tls",
            ),
            (
                "[[export.syslog]]\nudp = \"127.0.0.1:514\"\nmax_per_second = 0\n",
                "export.syslog[0].max_per_second",
            ),
            (
                "[[export.syslog]]\nudp = \"127.0.0.1:514\"\nevents = [\"dns\"]\n",
                "export.syslog[0].events",
            ),
            (
                "[[export.dnstap]]\ntcp = \"127.0.0.1:6000\"\ninclude = [\"owner\"]\n",
                "export.dnstap[0].include",
            ),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }
}
