//! `[[export.dnstap]]` and `[[export.syslog]]`: where exchanges and hits are shipped. Documented in the shipped
//! `config.toml` and docs/EXPORT.md; validated here so a bad entry stops the start with its key.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[export]`: every export, each a list (several receivers may each get their own stream).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// `[[export.dnstap]]`: Frame Streams receivers.
    pub dnstap: Vec<DnstapConfig>,
    /// `[[export.syslog]]`: RFC 5424 receivers (SIEMs), one message per hit.
    pub syslog: Vec<SyslogConfig>,
}

/// The body of a syslog message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFormat {
    /// Structured data and a short English sentence.
    #[default]
    Text,
    /// Structured data and an Elastic Common Schema JSON object.
    Json,
    /// Structured data and an ArcSight Common Event Format (CEF:0) line.
    Cef,
}

/// Events besides DNS exchanges a syslog receiver may take (`events = [...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogEvent {
    /// Incident opened, status changed, closed, due soon, overdue.
    Incidents,
    /// Quarantine applied and released.
    Quarantine,
}

/// Optional parts of a dnstap message (`include = [...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Include {
    /// The client's identity from the asset ledger, as JSON in the dnstap `extra` field.
    Identity,
}

/// One `[[export.syslog]]` receiver.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogConfig {
    /// UDP receiver (`ip:port`): one datagram per message (exactly one of `udp` and `tcp`).
    pub udp: Option<SocketAddr>,
    /// TCP receiver (`ip:port`): messages framed by octet counting (RFC 6587).
    pub tcp: Option<SocketAddr>,
    /// TLS on the TCP connection (RFC 5425); the receiver's certificate is verified against
    /// `ca_file`.
    pub tls: bool,
    /// PEM file of the CA certificates that may sign the receiver's certificate (with `tls`).
    pub ca_file: Option<PathBuf>,
    /// Name the receiver's certificate must carry; absent = the `tcp` address's IP.
    pub server_name: Option<String>,
    /// `text`, `json` (ECS field names) or `cef` (ArcSight CEF) after the structured data.
    pub format: SyslogFormat,
    /// `hits` (default: one message per hit) or `all` (every answered query; the non-hits are
    /// bounded by `max_per_second` and may use half the queue, so hits are never crowded out).
    pub select: Select,
    /// With `select = "all"`: most non-hit messages admitted per second; beyond it they are
    /// dropped and counted (`reason="rate_limit"`). Hits have no such budget.
    pub max_per_second: u32,
    /// Incident and quarantine events sent too (`["incidents", "quarantine"]`; default none).
    pub events: Vec<SyslogEvent>,
    /// Facility name (`local0` … `local7`, `daemon`, `auth`, ...).
    pub facility: String,
    /// Only hits of these feeds (empty = no feed filter).
    pub feeds: Vec<String>,
    /// Only hits of feeds of these categories (empty = no category filter).
    pub categories: Vec<String>,
    /// The HOSTNAME field; absent = the host name.
    pub hostname: Option<String>,
    /// Hits waiting for the receiver; beyond it new ones are dropped and counted.
    pub queue_size: usize,
    /// First reconnect delay (TCP); doubles after each failure up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay.
    pub reconnect_max_ms: u64,
    /// A write the receiver does not take within this long drops the connection (and
    /// reconnects), so a stuck receiver cannot hold messages forever.
    pub write_timeout_ms: u64,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        Self {
            udp: None,
            tcp: None,
            tls: false,
            ca_file: None,
            server_name: None,
            format: SyslogFormat::Text,
            select: Select::Hits,
            max_per_second: 1000,
            events: Vec::new(),
            facility: "local0".into(),
            feeds: Vec::new(),
            categories: Vec::new(),
            hostname: None,
            queue_size: 8192,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5000,
            write_timeout_ms: 5000,
        }
    }
}

impl SyslogConfig {
    /// The `sink` label of this export's metrics: `syslog:udp:<addr>` or `syslog:tcp:<addr>`.
    pub fn label(&self) -> String {
        match (self.udp, self.tcp) {
            (Some(a), _) => format!("syslog:udp:{a}"),
            (None, Some(a)) if self.tls => format!("syslog:tls:{a}"),
            (None, Some(a)) => format!("syslog:tcp:{a}"),
            (None, None) => "syslog".to_string(),
        }
    }
}

/// Which messages one exchange becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Messages {
    /// One CLIENT_RESPONSE carrying the query and the answer (half the frames).
    #[default]
    Response,
    /// A CLIENT_QUERY and a CLIENT_RESPONSE, as BIND and Unbound log them.
    Both,
}

/// Which queries are exported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Select {
    /// Every answered query.
    #[default]
    All,
    /// Blocked answers only (listed name, CNAME into a listed name, address in a listed prefix).
    Hits,
}

/// One `[[export.dnstap]]` receiver.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnstapConfig {
    /// Unix socket path of the receiver (exactly one of `unix` and `tcp`).
    pub unix: Option<PathBuf>,
    /// TCP address of the receiver (`ip:port`).
    pub tcp: Option<SocketAddr>,
    /// `response` (one CLIENT_RESPONSE with both messages) or `both`.
    pub messages: Messages,
    /// `all` or `hits`.
    pub select: Select,
    /// Only exchanges decided by these feeds (empty = no feed filter).
    pub feeds: Vec<String>,
    /// Only exchanges decided by feeds of these categories (empty = no category filter).
    pub categories: Vec<String>,
    /// The dnstap `identity`; absent = the host name.
    pub identity: Option<String>,
    /// Optional parts: `["identity"]` puts the client's ledger identity in `extra` (JSON).
    pub include: Vec<Include>,
    /// Exchanges waiting for the receiver; beyond it new ones are dropped and counted.
    pub queue_size: usize,
    /// First reconnect delay; doubles after each failure up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay.
    pub reconnect_max_ms: u64,
    /// A write the receiver does not take within this long drops the connection (and
    /// reconnects), so a stuck receiver cannot hold frames forever.
    pub write_timeout_ms: u64,
}

impl Default for DnstapConfig {
    fn default() -> Self {
        Self {
            unix: None,
            tcp: None,
            messages: Messages::Response,
            select: Select::All,
            feeds: Vec::new(),
            categories: Vec::new(),
            identity: None,
            include: Vec::new(),
            queue_size: 8192,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5000,
            write_timeout_ms: 5000,
        }
    }
}

impl DnstapConfig {
    /// The `sink` label of this export's metrics: `dnstap:<path or address>`.
    pub fn label(&self) -> String {
        match (&self.unix, &self.tcp) {
            (Some(path), _) => format!("dnstap:{}", path.display()),
            (None, Some(addr)) => format!("dnstap:{addr}"),
            (None, None) => "dnstap".to_string(),
        }
    }
}

/// Largest `queue_size`: at most this many exchanges (each up to ~66 KiB, typically a few
/// hundred bytes) are held per receiver.
pub const MAX_QUEUE: usize = 1 << 20;

/// Largest `max_per_second` of a syslog export.
pub const MAX_PER_SECOND: u32 = 1_000_000;

/// Checks `[[export.*]]`; the error names the key (`export.dnstap[0].unix`) and the fix.
/// `resolve` anchors relative paths (the config file's directory).
pub fn validate(
    config: &ExportConfig,
    resolve: &dyn Fn(&std::path::Path) -> PathBuf,
) -> Result<(), (String, String)> {
    for (i, d) in config.dnstap.iter().enumerate() {
        let key = |k: &str| format!("export.dnstap[{i}].{k}");
        match (&d.unix, &d.tcp) {
            (None, None) => {
                return Err((
                    key("unix"),
                    "a dnstap export needs `unix = \"/path/to.sock\"` or `tcp = \"ip:port\"`"
                        .into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err((
                    key("tcp"),
                    "give either `unix` or `tcp`, not both (add a second [[export.dnstap]])".into(),
                ));
            }
            (Some(p), None) if p.as_os_str().is_empty() => {
                return Err((key("unix"), "must be a socket path".into()));
            }
            _ => {}
        }
        delivery(
            &key,
            d.queue_size,
            d.reconnect_min_ms,
            d.reconnect_max_ms,
            d.write_timeout_ms,
        )?;
        if let Some(identity) = &d.identity
            && identity.is_empty()
        {
            return Err((
                key("identity"),
                "must not be empty (leave it out for the host name)".into(),
            ));
        }
        selection(&key, &d.feeds, &d.categories)?;
    }
    for (i, s) in config.syslog.iter().enumerate() {
        let key = |k: &str| format!("export.syslog[{i}].{k}");
        match (s.udp, s.tcp) {
            (None, None) => {
                return Err((
                    key("tcp"),
                    "a syslog export needs `tcp = \"ip:port\"` or `udp = \"ip:port\"`".into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err((
                    key("udp"),
                    "give either `udp` or `tcp`, not both (add a second [[export.syslog]])".into(),
                ));
            }
            _ => {}
        }
        if s.tls {
            if s.tcp.is_none() {
                return Err((key("tls"), "TLS needs `tcp = \"ip:port\"`".into()));
            }
            let Some(ca) = &s.ca_file else {
                return Err((
                    key("ca_file"),
                    "`tls = true` needs the PEM file of the receiver's CA".into(),
                ));
            };
            check_ca_file(&resolve(ca)).map_err(|reason| (key("ca_file"), reason))?;
            if let Some(name) = &s.server_name
                && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
            {
                return Err((
                    key("server_name"),
                    format!("`{name}` is not a DNS name or IP address"),
                ));
            }
        }
        if facility_code(&s.facility).is_none() {
            return Err((
                key("facility"),
                format!(
                    "`{}` is not a syslog facility; use one of {}",
                    s.facility,
                    FACILITIES.join(", ")
                ),
            ));
        }
        if s.max_per_second == 0 || s.max_per_second > MAX_PER_SECOND {
            return Err((
                key("max_per_second"),
                format!("must be between 1 and {MAX_PER_SECOND} messages per second"),
            ));
        }
        delivery(
            &key,
            s.queue_size,
            s.reconnect_min_ms,
            s.reconnect_max_ms,
            s.write_timeout_ms,
        )?;
        selection(&key, &s.feeds, &s.categories)?;
    }
    Ok(())
}

/// An export's feed and category selection: an empty name would select nothing while
/// looking like a filter, so it is refused rather than silently exporting no hit.
fn selection(
    key: &dyn Fn(&str) -> String,
    feeds: &[String],
    categories: &[String],
) -> Result<(), (String, String)> {
    for (field, names, what) in [
        ("feeds", feeds, "a feed name"),
        ("categories", categories, "a category name"),
    ] {
        if let Some(j) = names.iter().position(|n| n.trim().is_empty()) {
            return Err((key(&format!("{field}[{j}]")), format!("must be {what}")));
        }
    }
    Ok(())
}

/// The queue and connection keys every export has, checked alike.
fn delivery(
    key: &dyn Fn(&str) -> String,
    queue_size: usize,
    reconnect_min_ms: u64,
    reconnect_max_ms: u64,
    write_timeout_ms: u64,
) -> Result<(), (String, String)> {
    if queue_size == 0 || queue_size > MAX_QUEUE {
        return Err((
            key("queue_size"),
            format!("must be between 1 and {MAX_QUEUE}"),
        ));
    }
    if reconnect_min_ms == 0 || reconnect_max_ms < reconnect_min_ms {
        return Err((
            key("reconnect_max_ms"),
            "needs 0 < reconnect_min_ms <= reconnect_max_ms".into(),
        ));
    }
    if write_timeout_ms == 0 {
        return Err((key("write_timeout_ms"), "must be above 0".into()));
    }
    Ok(())
}

/// Syslog facilities by name (RFC 5424 §6.2.1).
pub const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// The facility code of a name from [`FACILITIES`].
pub fn facility_code(name: &str) -> Option<u8> {
    FACILITIES
        .iter()
        .position(|f| *f == name)
        .and_then(|i| u8::try_from(i).ok())
}

/// Whether `path` is a readable PEM file holding at least one certificate: the check `poolguard
/// check` and start-up can make without a TLS stack. The export crate builds the trust store
/// from it when it connects (`poolguard_export::tls::roots`), which also refuses certificates
/// rustls cannot parse.
pub fn check_ca_file(path: &std::path::Path) -> Result<(), String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no CA certificate", path.display()));
    }
    Ok(())
}
