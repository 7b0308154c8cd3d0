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
//!   asset, `suser` the owner, `cn1` the incident id, `outcome` an incident status.
//! * Escaping (CEF spec rev. 25): in the header `\` and `|` get a backslash; in extension
//!   values `\` and `=` do, and CR / LF become `\r` / `\n`. Header fields never hold a newline
//!   (replaced by a space).

use std::fmt::Write as _;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::syslog::{Hit, action_name, transport};
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
pub(crate) fn hit(
    h: &Hit<'_>,
    client: IpAddr,
    time: DateTime<Utc>,
    identity: Option<&Identity>,
    out: &mut String,
) {
    let e = h.exchange;
    let (severity, name) = if e.outcome.is_hit() {
        (SEVERITY_HIT, "DNS query blocked")
    } else {
        (SEVERITY_QUERY, "DNS query")
    };
    header(e.outcome.as_str(), name, severity, out);
    let verdict = e.verdict.as_ref();
    let (rt, src, spt) = (
        time.timestamp_millis().to_string(),
        client.to_string(),
        e.client.port().to_string(),
    );
    let mut pairs: Vec<(&str, &str)> = vec![
        ("rt", &rt),
        ("src", &src),
        ("spt", &spt),
        ("proto", transport(e.transport)),
        ("dhost", &h.name),
        ("act", verdict.map_or("", |v| action_name(v.action))),
        ("cs1", verdict.map_or("", |v| &*v.feed)),
        ("cs1Label", verdict.map_or("", |_| "feed")),
        ("cs2", verdict.map_or("", |v| &*v.rule)),
        ("cs2Label", verdict.map_or("", |_| "rule")),
        ("cs3", verdict.map_or("", |v| &*v.category)),
        ("cs3Label", verdict.map_or("", |_| "category")),
        ("cs4", h.rcode),
        ("cs4Label", "rcode"),
        ("flexString1", &h.qtype),
        ("flexString1Label", "qtype"),
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
