//! Incident and quarantine events as syslog messages (`[[export.syslog]] events = [...]`).
//!
//! ```text
//! <PRI>1 TIME HOST poolguard - incident [poolguard@32473 event="incident.opened"
//!   incident_id="12" client="10.1.2.3" status="open" actor="system" asset="..." ...] MSG
//! ```
//!
//! MSGID `incident` or `quarantine`, severity notice; the same SD-ID as hits, with the event
//! name, incident id, client, status, actor (a token's name or `system`), reason, and the
//! client's ledger identity looked up by the export task. The body follows the receiver's
//! `format`: an English sentence, an ECS document (`event.kind = "event"`, `event.action` =
//! the event name) or a CEF line (signature id = the event name, severity 8).

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::cef;
use crate::syslog::{Header, SD_ID, SyslogFormat, escape_param};
use poolguard_clients::Identity;
use poolguard_record::lifecycle::LifecycleEvent;

/// Severity of an incident or quarantine event: notice (RFC 5424 §6.2.1).
const SEVERITY_NOTICE: u8 = 5;

/// The RFC 5424 message for `event` (no framing); `identity` = the client's ledger entry.
pub fn format(event: &LifecycleEvent, header: &Header, identity: Option<&Identity>) -> String {
    let time = DateTime::parse_from_rfc3339(&event.time)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now());
    let msgid = if event.is_quarantine() {
        "quarantine"
    } else {
        "incident"
    };
    let pri = u16::from(header.facility) * 8 + u16::from(SEVERITY_NOTICE);
    let mut out = String::with_capacity(384);
    let _ = write!(
        out,
        "<{pri}>1 {} {} poolguard - {msgid} [{SD_ID}",
        time.to_rfc3339_opts(SecondsFormat::Millis, true),
        header.hostname
    );
    let id = event.incident_id.map(|i| i.to_string());
    let params = [
        ("event", Some(event.event)),
        ("incident_id", id.as_deref()),
        ("client", event.client.as_deref()),
        ("status", event.status.as_deref()),
        ("actor", event.actor.as_deref()),
        ("reason", event.reason.as_deref()),
    ];
    let present = params
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .chain(identity.into_iter().flat_map(crate::identity::fields));
    for (key, value) in present {
        let _ = write!(out, " {key}=\"");
        escape_param(value, &mut out);
        out.push('"');
    }
    out.push_str("] ");
    match header.format {
        SyslogFormat::Text => sentence(event, &mut out),
        SyslogFormat::Json => out.push_str(&ecs(event, header, time, identity)),
        SyslogFormat::Cef => cef_line(event, time, identity, &mut out),
    }
    out
}

fn sentence(e: &LifecycleEvent, out: &mut String) {
    let _ = write!(out, "{}", e.event);
    if let Some(id) = e.incident_id {
        let _ = write!(out, " incident {id}");
    }
    if let Some(client) = &e.client {
        let _ = write!(out, " client {client}");
    }
    if let Some(status) = &e.status {
        let _ = write!(out, " status {status}");
    }
    if let Some(actor) = &e.actor {
        let _ = write!(out, " by {actor}");
    }
}

fn ecs(
    e: &LifecycleEvent,
    header: &Header,
    time: DateTime<Utc>,
    identity: Option<&Identity>,
) -> String {
    let mut doc = serde_json::json!({
        "@timestamp": time.to_rfc3339_opts(SecondsFormat::Millis, true),
        "event": {
            "kind": "event",
            "category": ["intrusion_detection"],
            "type": [if e.is_quarantine() { "change" } else { "info" }],
            "action": e.event,
            "dataset": if e.is_quarantine() { "poolguard.quarantine" } else { "poolguard.incident" },
            "module": "poolguard",
            "reason": e.reason,
        },
        "source": { "ip": e.client },
        "labels": {
            "incident_id": e.incident_id.map(|i| i.to_string()),
            "status": e.status,
            "actor": e.actor,
        },
        "observer": crate::syslog::observer(&header.hostname),
    });
    if let Some(identity) = identity {
        crate::identity::ecs(identity, &mut doc);
    }
    doc.to_string()
}

fn cef_line(
    e: &LifecycleEvent,
    time: DateTime<Utc>,
    identity: Option<&Identity>,
    out: &mut String,
) {
    let name = match e.event {
        "incident.opened" => "Incident opened",
        "incident.status" => "Incident status changed",
        "incident.closed" => "Incident closed",
        "incident.due_soon" => "Incident deadline near",
        "incident.overdue" => "Incident overdue",
        "quarantine.on" => "Client quarantined",
        "quarantine.off" => "Client released from quarantine",
        other => other,
    };
    cef::header(e.event, name, cef::SEVERITY_EVENT, out);
    let rt = time.timestamp_millis().to_string();
    let id = e.incident_id.map(|i| i.to_string()).unwrap_or_default();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("rt", &rt),
        ("src", e.client.as_deref().unwrap_or("")),
        ("cn1", &id),
        ("cn1Label", if id.is_empty() { "" } else { "incident" }),
        ("outcome", e.status.as_deref().unwrap_or("")),
        ("cs1", e.actor.as_deref().unwrap_or("")),
        ("cs1Label", if e.actor.is_some() { "actor" } else { "" }),
        ("reason", e.reason.as_deref().unwrap_or("")),
    ];
    pairs.extend(cef::identity_pairs(identity));
    cef::extension(pairs, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> LifecycleEvent {
        LifecycleEvent {
            event: "quarantine.on",
            time: "2026-12-07T05:00:00.250Z".into(),
            incident_id: Some(12),
            client: Some("10.1.2.3".into()),
            status: None,
            actor: Some("ops=\"team\"".into()),
            reason: Some("repeat\noffender".into()),
        }
    }

    #[test]
    fn an_event_is_structured_data_with_its_actor_and_reason() {
        let line = format(&event(), &Header::new(16, "dns1", SyslogFormat::Text), None);
        assert_eq!(
            line,
            "<133>1 2026-12-07T05:00:00.250Z dns1 poolguard - quarantine [poolguard@32473 \
             event=\"quarantine.on\" incident_id=\"12\" client=\"10.1.2.3\" actor=\"ops=\\\"team\\\"\" \
             reason=\"repeat\noffender\"] quarantine.on incident 12 client 10.1.2.3 by ops=\"team\""
        );
    }

    #[test]
    fn the_cef_event_escapes_its_values() {
        let line = format(&event(), &Header::new(16, "dns1", SyslogFormat::Cef), None);
        let body = &line[line.find("CEF:0").expect("cef")..];
        assert!(
            body.ends_with(
                "|quarantine.on|Client quarantined|8|rt=1796619600250 src=10.1.2.3 cn1=12 \
                 cn1Label=incident cs1=ops\\=\"team\" cs1Label=actor reason=repeat\\noffender"
            ),
            "{body}"
        );
    }
}
