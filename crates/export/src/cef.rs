//! ArcSight Common Event Format (CEF:0) bodies for `[[export.syslog]] format = "cef"`.
//!
//! ```text
//! CEF:0|poolguard|poolguard|<version>|<signature id>|<name>|<severity>|<extension>
//! ```
//!
//! * Signature id: the outcome (`blocked`, `cname-blocked`, `ip-blocked`, `quarantined`,
//!   `allowed`, ...), or the event (`incident.opened`, `quarantine.on`, ...).
//! * Severity (0-10): 7 for a hit, 8 for incident and quarantine events, 1 for an ordinary query.
//! * Extension keys: `rt` (ms since the epoch), `src`, `spt`, `proto`, `dhost` (the query name),
//!   `act` (the answer: sinkhole, nxdomain, ...), `cs1` feed, `cs2` rule, `cs3` category,
//!   `cs4` rcode, `cs5` department, `cs6` location (each with its `csNLabel`), `shost` the
//!   asset, `suser` the owner, `cn1` the incident id (with `cn1Label=incident`: events, and
//!   hits while incident tracking is on), `outcome` an incident status.
//! * Escaping (CEF spec rev. 25): in the header `\` and `|` get a backslash; in extension
//!   values `\` and `=` do, and CR / LF become `\r` / `\n`. Header fields never hold a newline
//!   (replaced by a space).

use std::fmt::Write as _;

use crate::syslog::{Hit, transport};
use poolguard_clients::Identity;

/// Severity of a hit.
const SEVERITY_HIT: u8 = 7;
/// Severity of an incident or quarantine event.
pub const SEVERITY_EVENT: u8 = 8;
/// Severity of an answered query that is not a hit.
const SEVERITY_QUERY: u8 = 1;

/// Appends a header field, escaped.
pub fn escape_header(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' | '|' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
}

/// Appends an extension value, escaped.
pub fn escape_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Appends the header up to and including the severity's trailing `|`.
pub fn header(signature: &str, name: &str, severity: u8, out: &mut String) {
    let _ = write!(
        out,
        "CEF:0|poolguard|poolguard|{}|",
        env!("CARGO_PKG_VERSION")
    );
    escape_header(signature, out);
    out.push('|');
    escape_header(name, out);
    let _ = write!(out, "|{severity}|");
}

/// Appends `key=value` pairs separated by spaces, empty values left out.
pub fn extension<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, out: &mut String) {
    let mut first = true;
    for (key, value) in pairs {
        if value.is_empty() {
            continue;
        }
        if !first {
            out.push(' ');
        }
        first = false;
        out.push_str(key);
        out.push('=');
        escape_value(value, out);
    }
}

/// The identity's extension pairs (`shost`, `suser`, `cs5` department, `cs6` location).
pub fn identity_pairs(identity: Option<&Identity>) -> Vec<(&'static str, &str)> {
    let Some(id) = identity else {
        return Vec::new();
    };
    let mut pairs = Vec::new();
    for (key, label, value) in [
        ("shost", None, &id.asset),
        ("suser", None, &id.owner),
        ("cs5", Some("department"), &id.department),
        ("cs6", Some("location"), &id.location),
    ] {
        if let Some(v) = value {
            pairs.push((key, v.as_str()));
            if let Some(label) = label {
                pairs.push((if key == "cs5" { "cs5Label" } else { "cs6Label" }, label));
            }
        }
    }
    pairs
}

/// Appends the CEF line of a hit or query.
pub(crate) fn hit(h: &Hit<'_>, identity: Option<&Identity>, out: &mut String) {
    let (severity, name) = if h.outcome.is_hit() {
        (SEVERITY_HIT, "DNS query blocked")
    } else {
        (SEVERITY_QUERY, "DNS query")
    };
    header(h.outcome.as_str(), name, severity, out);
    let label = |value: Option<&str>, label: &'static str| value.map_or("", |_| label);
    let (rt, src, spt) = (
        h.time.timestamp_millis().to_string(),
        h.client_ip().to_string(),
        h.client.port().to_string(),
    );
    let incident = h.incident_id.map(|id| id.to_string()).unwrap_or_default();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("rt", &rt),
        ("src", &src),
        ("spt", &spt),
        ("proto", transport(h.transport)),
        ("dhost", &h.name),
        ("act", h.answer.unwrap_or("")),
        ("cs1", h.feed.unwrap_or("")),
        ("cs1Label", label(h.feed, "feed")),
        ("cs2", h.rule.unwrap_or("")),
        ("cs2Label", label(h.rule, "rule")),
        ("cs3", h.category.unwrap_or("")),
        ("cs3Label", label(h.category, "category")),
        ("cs4", h.rcode),
        ("cs4Label", "rcode"),
        ("flexString1", &h.qtype),
        ("flexString1Label", "qtype"),
        ("cn1", &incident),
        (
            "cn1Label",
            if incident.is_empty() { "" } else { "incident" },
        ),
    ];
    pairs.extend(identity_pairs(identity));
    extension(pairs, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_escapes_pipes_and_backslashes_and_drops_newlines() {
        let mut out = String::new();
        header("a|b\\c", "two\nlines", 7, &mut out);
        assert_eq!(
            out,
            format!(
                "CEF:0|poolguard|poolguard|{}|a\\|b\\\\c|two lines|7|",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn extension_values_escape_equals_backslashes_and_newlines_but_not_pipes() {
        let mut out = String::new();
        extension(
            [("cs2", "a=b\\c|d"), ("empty", ""), ("msg", "one\r\ntwo")],
            &mut out,
        );
        assert_eq!(out, "cs2=a\\=b\\\\c|d msg=one\\r\\ntwo");
    }
}
