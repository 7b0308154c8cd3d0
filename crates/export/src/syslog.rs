//! Syslog messages for SIEMs: one RFC 5424 message per hit, with structured data a SIEM parses
//! without regex, and optionally a JSON body with Elastic Common Schema (ECS) field names.
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME poolguard - hit [poolguard@32473 client="10.1.2.3" ...] MSG
//! ```
//!
//! * PRI = facility × 8 + 4 (warning): a hit is a security finding, not an error of ours.
//! * SD-ID `poolguard@32473`: RFC 5424 §7.2.2 requires `name@<private enterprise number>` for
//!   our own SD-IDs; 32473 is the number RFC 5612 reserves for documentation and examples.
//!   Until poolguard has its own IANA number, that is the honest choice (a SIEM keys on it).
//! * SD-PARAM values escape `"`, `\` and `]` with a backslash (§6.3.3).
//! * MSG: a short English sentence, or with `format = "json"` an ECS JSON object.
//!
//! The fields come from the [`Exchange`]: name and type parsed from the query bytes, rcode from
//! the answer's header. The client's *identity* (owner, department from the asset ledger) is
//! attached later, in the store writer, and is not available at this point: it is not sent.

use std::fmt::Write as _;
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use hickory_proto::op::Message;

pub use poolguard_config::export::{FACILITIES, facility_code};
use poolguard_record::Transport;
use poolguard_record::exchange::Exchange;

/// Our SD-ID (see the module docs).
pub const SD_ID: &str = "poolguard@32473";
/// Severity of a hit: warning (RFC 5424 §6.2.1).
const SEVERITY_WARNING: u8 = 4;

/// What a message needs besides the exchange.
#[derive(Debug, Clone)]
pub struct Header {
    /// The facility code (`local0` = 16), part of PRI.
    pub facility: u8,
    /// HOSTNAME: printable ASCII, no spaces (sanitised by [`Header::new`]).
    pub hostname: String,
    /// An ECS JSON body instead of the English sentence (`format = "json"`).
    pub json: bool,
}

impl Header {
    /// A header; `hostname` is cut to RFC 5424's 255 printable characters.
    pub fn new(facility: u8, hostname: &str, json: bool) -> Self {
        let hostname: String = hostname
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(255)
            .collect();
        Self {
            facility,
            hostname: if hostname.is_empty() {
                "-".into()
            } else {
                hostname
            },
            json,
        }
    }
}

/// The fields of a hit, read from the exchange.
struct Hit<'a> {
    name: String,
    qtype: String,
    rcode: &'static str,
    exchange: &'a Exchange,
}

fn hit(exchange: &Exchange) -> Hit<'_> {
    let (name, qtype) = Message::from_vec(&exchange.query)
        .ok()
        .and_then(|m| m.queries.first().cloned())
        .map(|q| {
            let mut name = q.name().to_ascii().to_lowercase();
            if name.ends_with('.') {
                name.pop();
            }
            (name, q.query_type().to_string())
        })
        .unwrap_or_default();
    let rcode = match exchange.response.get(3).map(|b| b & 0x0F) {
        Some(0) => "NOERROR",
        Some(1) => "FORMERR",
        Some(2) => "SERVFAIL",
        Some(3) => "NXDOMAIN",
        Some(4) => "NOTIMP",
        Some(5) => "REFUSED",
        _ => "OTHER",
    };
    Hit {
        name,
        qtype,
        rcode,
        exchange,
    }
}

/// Escapes an SD-PARAM value (RFC 5424 §6.3.3).
pub fn escape_param(value: &str, out: &mut String) {
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

fn transport(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    }
}

/// The RFC 5424 message for a hit (no framing).
pub fn format(exchange: &Exchange, header: &Header) -> String {
    let h = hit(exchange);
    let time: DateTime<Utc> = exchange.response_time.into();
    let mut out = String::with_capacity(512);
    let pri = u16::from(header.facility) * 8 + u16::from(SEVERITY_WARNING);
    let _ = write!(
        out,
        "<{pri}>1 {} {} poolguard - hit [{SD_ID}",
        time.to_rfc3339_opts(SecondsFormat::Millis, true),
        header.hostname
    );
    let client = exchange.client.ip().to_canonical();
    let verdict = exchange.verdict.as_ref();
    let params: [(&str, &str); 11] = [
        ("client", &client.to_string()),
        ("client_port", &exchange.client.port().to_string()),
        ("transport", transport(exchange.transport)),
        ("name", &h.name),
        ("type", &h.qtype),
        ("action", exchange.outcome.as_str()),
        ("feed", verdict.map_or("", |v| &*v.feed)),
        ("category", verdict.map_or("", |v| &*v.category)),
        ("rule", verdict.map_or("", |v| &*v.rule)),
        ("answer", verdict.map_or("", |v| action_name(v.action))),
        ("rcode", h.rcode),
    ];
    for (key, value) in params {
        let _ = write!(out, " {key}=\"");
        escape_param(value, &mut out);
        out.push('"');
    }
    out.push_str("] ");
    if header.json {
        out.push_str(&ecs_json(&h, client, &header.hostname, time));
    } else {
        let _ = write!(
            out,
            "{} {} {} for {client} (feed {})",
            exchange.outcome.as_str(),
            h.name,
            h.qtype,
            verdict.map_or("-", |v| &*v.feed)
        );
    }
    out
}

fn action_name(action: poolguard_model::Action) -> &'static str {
    match action {
        poolguard_model::Action::Refuse => "refuse",
        poolguard_model::Action::Nxdomain => "nxdomain",
        poolguard_model::Action::Nodata => "nodata",
        poolguard_model::Action::Sinkhole => "sinkhole",
    }
}

/// The hit as an ECS document (`event.*`, `source.*`, `dns.*`, `rule.*`, `observer.*`).
fn ecs_json(h: &Hit<'_>, client: IpAddr, hostname: &str, time: DateTime<Utc>) -> String {
    let e = h.exchange;
    let verdict = e.verdict.as_ref();
    serde_json::json!({
        "@timestamp": time.to_rfc3339_opts(SecondsFormat::Millis, true),
        "event": {
            "kind": "alert",
            "category": ["network"],
            "type": ["denied"],
            "action": e.outcome.as_str(),
            "dataset": "poolguard.hit",
            "module": "poolguard",
        },
        "source": { "ip": client.to_string(), "port": e.client.port() },
        "client": { "ip": client.to_string(), "port": e.client.port() },
        "network": { "transport": transport(e.transport), "protocol": "dns" },
        "dns": {
            "type": "answer",
            "question": { "name": h.name, "type": h.qtype },
            "response_code": h.rcode,
        },
        "rule": {
            "name": verdict.map(|v| &*v.rule),
            "ruleset": verdict.map(|v| &*v.feed),
            "category": verdict.map(|v| &*v.category),
        },
        "observer": {
            "hostname": hostname,
            "product": "poolguard",
            "type": "dns",
            "version": env!("CARGO_PKG_VERSION"),
        },
    })
    .to_string()
}

/// Appends `message` with RFC 6587 §3.4.1 octet counting (`LEN SP MSG`), for TCP.
pub fn octet_counted(message: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(message.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(message.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};
    use poolguard_model::Action;
    use poolguard_record::Outcome;
    use poolguard_record::exchange::ExchangeVerdict;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    fn exchange() -> Exchange {
        let mut q = Message::new(7, MessageType::Query, OpCode::Query);
        q.add_query(Query::query(
            Name::from_ascii("Pool.Example.").unwrap(),
            RecordType::AAAA,
        ));
        Exchange {
            client: SocketAddr::from(([10, 1, 2, 3], 40000)),
            transport: Transport::Udp,
            query_time: UNIX_EPOCH,
            response_time: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            query: q.to_vec().unwrap().into(),
            response: vec![0, 7, 0x81, 0x83].into(),
            outcome: Outcome::Blocked,
            verdict: Some(ExchangeVerdict {
                feed: Arc::from("mining"),
                category: Arc::from("mining"),
                rule: Arc::from("we\"ird]\\rule"),
                action: Action::Nxdomain,
            }),
        }
    }

    #[test]
    fn a_hit_is_one_rfc5424_line_with_escaped_structured_data() {
        let line = format(&exchange(), &Header::new(16, "dns 1", false));
        assert!(
            line.starts_with("<132>1 2023-11-14T22:13:20.123Z dns1 poolguard - hit [poolguard@32473 client=\"10.1.2.3\" client_port=\"40000\" transport=\"udp\" name=\"pool.example\" type=\"AAAA\" action=\"blocked\" feed=\"mining\""),
            "{line}"
        );
        assert!(line.contains(r#"rule="we\"ird\]\\rule""#), "{line}");
        assert!(line.contains(r#"answer="nxdomain" rcode="NXDOMAIN"] blocked pool.example AAAA for 10.1.2.3 (feed mining)"#), "{line}");
    }

    #[test]
    fn the_json_body_uses_ecs_names() {
        let line = format(&exchange(), &Header::new(16, "dns1", true));
        let body = &line[line.find("] {").expect("json body") + 2..];
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["source"]["ip"], "10.1.2.3");
        assert_eq!(v["dns"]["question"]["name"], "pool.example");
        assert_eq!(v["dns"]["response_code"], "NXDOMAIN");
        assert_eq!(v["rule"]["ruleset"], "mining");
        assert_eq!(v["event"]["action"], "blocked");
    }

    #[test]
    fn tcp_framing_counts_octets() {
        let mut out = Vec::new();
        octet_counted("<13>1 - - - - - - é", &mut out);
        // Octets, not characters: é is two.
        assert_eq!(out, "20 <13>1 - - - - - - é".as_bytes());
        assert_eq!(facility_code("local0"), Some(16));
        assert_eq!(facility_code("nope"), None);
    }
}
