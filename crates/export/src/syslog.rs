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
//! The fields come from the DNS path's [`Exchange`] (name and type parsed from the query
//! bytes, rcode from the answer's header) or, while incident tracking is on, from the hit the
//! store committed ([`AttributedHit`]), which adds the incident id (`incident_id`, ECS
//! `labels.incident_id`, CEF `cn1`). The client's identity (asset, department, owner,
//! location from the asset ledger) is looked up by the export task and added as SD-PARAMs
//! when the ledger knows the client ([`crate::identity`]).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use chrono::{DateTime, SecondsFormat, Utc};
use hickory_proto::op::Message;

use poolguard_clients::Identity;
pub use poolguard_config::export::SyslogFormat;
pub use poolguard_config::export::{FACILITIES, facility_code};
use poolguard_record::exchange::Exchange;
use poolguard_record::lifecycle::AttributedHit;
use poolguard_record::{Outcome, Transport};

/// Our SD-ID (see the module docs).
pub const SD_ID: &str = "poolguard@32473";
/// Severity of a hit: warning (RFC 5424 §6.2.1).
const SEVERITY_WARNING: u8 = 4;
/// Severity of an answered query that is not a hit: informational.
const SEVERITY_INFO: u8 = 6;

/// What a message needs besides the hit or query itself.
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

/// What a hit or query message says, from either source: the DNS path's [`Exchange`] (name
/// and type parsed from the query bytes, rcode from the answer's header) or, while incident
/// tracking is on, the store's [`AttributedHit`] (the stored row and its incident).
pub(crate) struct Hit<'a> {
    pub time: DateTime<Utc>,
    /// As received; messages show the address canonical (an IPv4-mapped client as IPv4).
    pub client: SocketAddr,
    pub transport: Transport,
    pub name: Cow<'a, str>,
    pub qtype: Cow<'a, str>,
    pub outcome: Outcome,
    pub feed: Option<&'a str>,
    pub category: Option<&'a str>,
    pub rule: Option<&'a str>,
    /// The feed's action (`sinkhole`, `nxdomain`, ...).
    pub answer: Option<&'static str>,
    pub rcode: &'static str,
    pub incident_id: Option<i64>,
}

impl<'a> Hit<'a> {
    /// The fields of an exchange from the DNS path (no incident is known yet).
    pub(crate) fn of_exchange(exchange: &'a Exchange) -> Self {
        let (name, qtype) = Message::from_vec(exchange.messages.query())
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
        let rcode = match exchange.messages.response().get(3).map(|b| b & 0x0F) {
            Some(0) => "NOERROR",
            Some(1) => "FORMERR",
            Some(2) => "SERVFAIL",
            Some(3) => "NXDOMAIN",
            Some(4) => "NOTIMP",
            Some(5) => "REFUSED",
            _ => "OTHER",
        };
        let verdict = exchange.verdict.as_ref();
        Hit {
            time: exchange.response_time.into(),
            client: exchange.client,
            transport: exchange.transport,
            name: Cow::Owned(name),
            qtype: Cow::Owned(qtype),
            outcome: exchange.outcome,
            feed: verdict.map(|v| &*v.feed),
            category: verdict.map(|v| &*v.category),
            rule: verdict.map(|v| &*v.rule),
            answer: verdict.map(|v| action_name(v.action)),
            rcode,
            incident_id: None,
        }
    }

    /// The fields of a committed hit: the stored row, its feed's category and action, and the
    /// incident that took it.
    pub(crate) fn of_committed(hit: &'a AttributedHit) -> Self {
        let e = &hit.event;
        Hit {
            time: DateTime::from_timestamp_millis(e.time_ms).unwrap_or_default(),
            client: e.client,
            transport: e.transport,
            name: Cow::Borrowed(&e.name),
            qtype: Cow::Borrowed(&e.qtype),
            outcome: e.outcome,
            feed: e.feed.as_deref(),
            category: hit.category.as_deref(),
            rule: e.rule.as_deref(),
            answer: hit.action.map(action_name),
            rcode: e.rcode,
            incident_id: hit.incident_id,
        }
    }

    /// The client address as messages show it.
    pub(crate) fn client_ip(&self) -> IpAddr {
        self.client.ip().to_canonical()
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
    t.as_str()
}

/// The RFC 5424 message for a hit or query from the DNS path (no framing); `identity` = the
/// client's ledger entry, when it has one.
pub fn format(exchange: &Exchange, header: &Header, identity: Option<&Identity>) -> String {
    message(&Hit::of_exchange(exchange), header, identity)
}

/// The RFC 5424 message for a hit the store committed, naming its incident (`incident_id`).
pub fn format_committed(
    hit: &AttributedHit,
    header: &Header,
    identity: Option<&Identity>,
) -> String {
    message(&Hit::of_committed(hit), header, identity)
}

fn message(h: &Hit<'_>, header: &Header, identity: Option<&Identity>) -> String {
    let mut out = String::with_capacity(512);
    let (severity, msgid) = if h.outcome.is_hit() {
        (SEVERITY_WARNING, "hit")
    } else {
        (SEVERITY_INFO, "query")
    };
    let pri = u16::from(header.facility) * 8 + u16::from(severity);
    let _ = write!(
        out,
        "<{pri}>1 {} {} poolguard - {msgid} [{SD_ID}",
        h.time.to_rfc3339_opts(SecondsFormat::Millis, true),
        header.hostname
    );
    let client = h.client_ip();
    let incident = h.incident_id.map(|id| id.to_string());
    let params: [(&str, &str); 11] = [
        ("client", &client.to_string()),
        ("client_port", &h.client.port().to_string()),
        ("transport", transport(h.transport)),
        ("name", &h.name),
        ("type", &h.qtype),
        ("action", h.outcome.as_str()),
        ("feed", h.feed.unwrap_or("")),
        ("category", h.category.unwrap_or("")),
        ("rule", h.rule.unwrap_or("")),
        ("answer", h.answer.unwrap_or("")),
        ("rcode", h.rcode),
    ];
    let incident = incident.as_deref().map(|id| ("incident_id", id));
    let ledger = identity.into_iter().flat_map(crate::identity::fields);
    for (key, value) in params.into_iter().chain(incident).chain(ledger) {
        let _ = write!(out, " {key}=\"");
        escape_param(value, &mut out);
        out.push('"');
    }
    out.push_str("] ");
    if header.format == SyslogFormat::Json {
        out.push_str(&ecs_json(h, &header.hostname, identity));
    } else if header.format == SyslogFormat::Cef {
        crate::cef::hit(h, identity, &mut out);
    } else {
        let _ = write!(
            out,
            "{} {} {} for {client} (feed {}",
            h.outcome.as_str(),
            h.name,
            h.qtype,
            h.feed.unwrap_or("-")
        );
        if let Some(id) = h.incident_id {
            let _ = write!(out, ", incident {id}");
        }
        out.push(')');
    }
    out
}

pub(crate) fn action_name(action: poolguard_model::Action) -> &'static str {
    match action {
        poolguard_model::Action::Refuse => "refuse",
        poolguard_model::Action::Nxdomain => "nxdomain",
        poolguard_model::Action::Nodata => "nodata",
        poolguard_model::Action::Sinkhole => "sinkhole",
        poolguard_model::Action::Log => "log",
    }
}

/// The hit as an ECS document (`event.*`, `source.*`, `dns.*`, `rule.*`, `observer.*`, and
/// `labels.incident_id` as the incident events carry it).
fn ecs_json(h: &Hit<'_>, hostname: &str, identity: Option<&Identity>) -> String {
    let hit = h.outcome.is_hit();
    let client = h.client_ip().to_string();
    let mut doc = serde_json::json!({
        "@timestamp": h.time.to_rfc3339_opts(SecondsFormat::Millis, true),
        "event": {
            "kind": if hit { "alert" } else { "event" },
            "category": ["network"],
            "type": [if hit { "denied" } else { "allowed" }],
            "action": h.outcome.as_str(),
            "dataset": if hit { "poolguard.hit" } else { "poolguard.query" },
            "module": "poolguard",
        },
        "source": { "ip": client, "port": h.client.port() },
        "client": { "ip": client, "port": h.client.port() },
        "network": { "transport": transport(h.transport), "protocol": "dns" },
        "dns": {
            "type": "answer",
            "question": { "name": h.name, "type": h.qtype },
            "response_code": h.rcode,
        },
        "rule": {
            "name": h.rule,
            "ruleset": h.feed,
            "category": h.category,
        },
        "observer": observer(hostname),
    });
    if let Some(identity) = identity {
        crate::identity::ecs(identity, &mut doc);
    }
    if let Some(id) = h.incident_id {
        doc["labels"]["incident_id"] = serde_json::Value::from(id.to_string());
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
    use poolguard_record::exchange::{ExchangeVerdict, Messages};
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
            messages: Messages::new(&q.to_vec().unwrap(), &[0, 7, 0x81, 0x83]),
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
    fn a_committed_hit_names_its_incident_in_every_format() {
        let hit = AttributedHit {
            event: poolguard_record::QueryEvent {
                time_ms: 1_700_000_000_123,
                client: SocketAddr::from(([10, 1, 2, 3], 40000)),
                transport: Transport::Tcp,
                name: "pool.example".into(),
                qtype: "AAAA".into(),
                outcome: Outcome::Blocked,
                feed: Some(Arc::from("mining")),
                rule: Some(Arc::from("pool.example")),
                rcode: "NXDOMAIN",
                answer: Arc::from(""),
                latency_us: 1,
                upstream: None,
            },
            category: Some("mining".into()),
            action: Some(Action::Nxdomain),
            incident_id: Some(12),
        };
        let text = format_committed(&hit, &Header::new(16, "dns1", SyslogFormat::Text), None);
        assert_eq!(
            text,
            "<132>1 2023-11-14T22:13:20.123Z dns1 poolguard - hit [poolguard@32473 \
             client=\"10.1.2.3\" client_port=\"40000\" transport=\"tcp\" name=\"pool.example\" \
             type=\"AAAA\" action=\"blocked\" feed=\"mining\" category=\"mining\" \
             rule=\"pool.example\" answer=\"nxdomain\" rcode=\"NXDOMAIN\" incident_id=\"12\"] \
             blocked pool.example AAAA for 10.1.2.3 (feed mining, incident 12)"
        );
        let json = format_committed(&hit, &Header::new(16, "dns1", SyslogFormat::Json), None);
        let v: serde_json::Value =
            serde_json::from_str(&json[json.find("] {").expect("json body") + 2..]).expect("json");
        assert_eq!(v["labels"]["incident_id"], "12");
        assert_eq!(v["rule"]["category"], "mining");
        let cef = format_committed(&hit, &Header::new(16, "dns1", SyslogFormat::Cef), None);
        assert!(
            cef.ends_with("flexString1=AAAA flexString1Label=qtype cn1=12 cn1Label=incident"),
            "{cef}"
        );
        // From the DNS path no incident is known: no field at all, not an empty one.
        let answered = format(
            &exchange(),
            &Header::new(16, "dns1", SyslogFormat::Cef),
            None,
        );
        assert!(!answered.contains("incident"), "{answered}");
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
