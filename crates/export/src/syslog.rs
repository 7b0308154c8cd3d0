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
//! * MSG: a short English sentence, with `format = "json"` an ECS JSON object, with
//!   `format = "cef"` an ArcSight CEF line ([`crate::cef`]).
//! * MSGID `hit` (severity warning) for hits, `query` (informational) for the other answered
//!   queries a `select = "all"` export sends.
//!
//! The fields come from the [`Exchange`]: name and type parsed from the query bytes, rcode from
//! the answer's header; the client's identity (asset, department, owner, location from the
//! asset ledger) is looked up by the export task and added as SD-PARAMs when the ledger knows
//! the client ([`crate::identity`]).

use std::fmt::Write as _;
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use hickory_proto::op::Message;

use poolguard_clients::Identity;
pub use poolguard_config::export::SyslogFormat;
pub use poolguard_config::export::{FACILITIES, facility_code};
use poolguard_record::Transport;
use poolguard_record::exchange::Exchange;

/// Our SD-ID (see the module docs).
pub const SD_ID: &str = "poolguard@32473";
/// Severity of a hit: warning (RFC 5424 §6.2.1).
const SEVERITY_WARNING: u8 = 4;
/// Severity of an answered query that is not a hit: informational.
const SEVERITY_INFO: u8 = 6;

/// What a message needs besides the exchange.
#[derive(Debug, Clone)]
pub struct Header {
    /// The facility code (`local0` = 16), part of PRI.
    pub facility: u8,
    /// HOSTNAME: printable ASCII, no spaces (sanitised by [`Header::new`]).
    pub hostname: String,
    /// The body after the structured data: text, ECS JSON or CEF.
    pub format: SyslogFormat,
}

impl Header {
    /// A header; `hostname` is cut to RFC 5424's 255 printable characters.
    pub fn new(facility: u8, hostname: &str, format: SyslogFormat) -> Self {
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
            format,
        }
    }
}

/// The fields of a hit (or query), read from the exchange.
pub(crate) struct Hit<'a> {
    pub name: String,
    pub qtype: String,
    pub rcode: &'static str,
    pub exchange: &'a Exchange,
}

pub(crate) fn hit(exchange: &Exchange) -> Hit<'_> {
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

pub(crate) fn transport(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    }
}

/// The RFC 5424 message for a hit or query (no framing); `identity` = the client's ledger
/// entry, when it has one.
pub fn format(exchange: &Exchange, header: &Header, identity: Option<&Identity>) -> String {
    let h = hit(exchange);
    let time: DateTime<Utc> = exchange.response_time.into();
    let mut out = String::with_capacity(512);
    let (severity, msgid) = if exchange.outcome.is_hit() {
        (SEVERITY_WARNING, "hit")
    } else {
        (SEVERITY_INFO, "query")
    };
    let pri = u16::from(header.facility) * 8 + u16::from(severity);
    let _ = write!(
        out,
        "<{pri}>1 {} {} poolguard - {msgid} [{SD_ID}",
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
    let ledger = identity.into_iter().flat_map(crate::identity::fields);
    for (key, value) in params.into_iter().chain(ledger) {
        let _ = write!(out, " {key}=\"");
        escape_param(value, &mut out);
        out.push('"');
    }
    out.push_str("] ");
    if header.format == SyslogFormat::Json {
        out.push_str(&ecs_json(&h, client, &header.hostname, time, identity));
    } else if header.format == SyslogFormat::Cef {
        crate::cef::hit(&h, client, time, identity, &mut out);
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

pub(crate) fn action_name(action: poolguard_model::Action) -> &'static str {
    match action {
        poolguard_model::Action::Refuse => "refuse",
        poolguard_model::Action::Nxdomain => "nxdomain",
        poolguard_model::Action::Nodata => "nodata",
        poolguard_model::Action::Sinkhole => "sinkhole",
    }
}

/// The hit as an ECS document (`event.*`, `source.*`, `dns.*`, `rule.*`, `observer.*`).
fn ecs_json(
    h: &Hit<'_>,
    client: IpAddr,
    hostname: &str,
    time: DateTime<Utc>,
    identity: Option<&Identity>,
) -> String {
    let e = h.exchange;
    let verdict = e.verdict.as_ref();
    let hit = e.outcome.is_hit();
    let mut doc = serde_json::json!({
        "@timestamp": time.to_rfc3339_opts(SecondsFormat::Millis, true),
        "event": {
            "kind": if hit { "alert" } else { "event" },
            "category": ["network"],
            "type": [if hit { "denied" } else { "allowed" }],
            "action": e.outcome.as_str(),
            "dataset": if hit { "poolguard.hit" } else { "poolguard.query" },
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
        "observer": observer(hostname),
    });
    if let Some(identity) = identity {
        crate::identity::ecs(identity, &mut doc);
    }
    doc.to_string()
}

/// ECS `observer`: this poolguard, in every JSON body.
pub(crate) fn observer(hostname: &str) -> serde_json::Value {
    serde_json::json!({
        "hostname": hostname,
        "product": "poolguard",
        "type": "dns",
        "version": env!("CARGO_PKG_VERSION"),
    })
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
        let line = format(
            &exchange(),
            &Header::new(16, "dns 1", SyslogFormat::Text),
            None,
        );
        assert!(
            line.starts_with("<132>1 2023-11-14T22:13:20.123Z dns1 poolguard - hit [poolguard@32473 client=\"10.1.2.3\" client_port=\"40000\" transport=\"udp\" name=\"pool.example\" type=\"AAAA\" action=\"blocked\" feed=\"mining\""),
            "{line}"
        );
        assert!(line.contains(r#"rule="we\"ird\]\\rule""#), "{line}");
        assert!(line.contains(r#"answer="nxdomain" rcode="NXDOMAIN"] blocked pool.example AAAA for 10.1.2.3 (feed mining)"#), "{line}");
    }

    #[test]
    fn the_json_body_uses_ecs_names() {
        let line = format(
            &exchange(),
            &Header::new(16, "dns1", SyslogFormat::Json),
            None,
        );
        let body = &line[line.find("] {").expect("json body") + 2..];
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["source"]["ip"], "10.1.2.3");
        assert_eq!(v["dns"]["question"]["name"], "pool.example");
        assert_eq!(v["dns"]["response_code"], "NXDOMAIN");
        assert_eq!(v["rule"]["ruleset"], "mining");
        assert_eq!(v["event"]["action"], "blocked");
    }

    #[test]
    fn identity_fields_become_sd_params_ecs_fields_and_cef_keys() {
        let id = poolguard_clients::Identity {
            asset: Some("gpu-ws-07".into()),
            department: Some("Phys\"ics".into()),
            owner: Some("Lab Manager".into()),
            ..Default::default()
        };
        let text = format(
            &exchange(),
            &Header::new(16, "dns1", SyslogFormat::Text),
            Some(&id),
        );
        assert!(
            text.contains(
                r#"rcode="NXDOMAIN" asset="gpu-ws-07" department="Phys\"ics" owner="Lab Manager"]"#
            ),
            "{text}"
        );
        let json = format(
            &exchange(),
            &Header::new(16, "dns1", SyslogFormat::Json),
            Some(&id),
        );
        let v: serde_json::Value =
            serde_json::from_str(&json[json.find("] {").expect("json body") + 2..]).expect("json");
        assert_eq!(v["host"]["name"], "gpu-ws-07");
        assert_eq!(v["organization"]["name"], "Phys\"ics");
        assert_eq!(v["user"]["name"], "Lab Manager");
        let cef = format(
            &exchange(),
            &Header::new(16, "dns1", SyslogFormat::Cef),
            Some(&id),
        );
        let body = &cef[cef.find("] CEF:0|").expect("cef body") + 2..];
        assert!(
            body.starts_with(&std::format!(
                "CEF:0|poolguard|poolguard|{}|blocked|DNS query blocked|7|",
                env!("CARGO_PKG_VERSION")
            )),
            "{body}"
        );
        assert!(body.contains(" src=10.1.2.3 spt=40000 proto=udp dhost=pool.example act=nxdomain cs1=mining cs1Label=feed cs2=we\"ird]\\\\rule cs2Label=rule"), "{body}");
        assert!(
            body.ends_with("shost=gpu-ws-07 suser=Lab Manager cs5=Phys\"ics cs5Label=department"),
            "{body}"
        );
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
