//! `[[alerts.email]]`: incident alerts by mail, to the duty desk and to each department.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::incidents::EVENTS;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: only to a relay on loopback, where the password never crosses a network.
    None,
}

/// One `[[alerts.email]]`: an SMTP submission server and who gets which mail.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `host:port` of the submission server (`smtp.campus.edu:587`).
    pub server: String,
    #[serde(default)]
    pub tls: SmtpTls,
    /// PEM CA certificates trusted for the server's certificate; absent = the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// SMTP AUTH user (PLAIN or LOGIN); absent = no authentication.
    #[serde(default)]
    pub username: Option<String>,
    /// A file whose first line is the SMTP password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the SMTP password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The sender (`Poolguard <poolguard@campus.edu>`).
    pub from: String,
    /// Who gets every mail (the duty desk).
    #[serde(default)]
    pub to: Vec<String>,
    /// Department (as the ledger spells it) → its recipients, added when an alert names
    /// that department.
    #[serde(default)]
    pub departments: BTreeMap<String, Vec<String>>,
    /// Also send to the ledger's `contact` of the alert's client, when it is a mail address.
    #[serde(default)]
    pub ledger_contact: bool,
    /// What the delivery log calls it (default `email[N]`).
    #[serde(default)]
    pub name: Option<String>,
    /// At most one message per this many minutes: events in between are held back and sent
    /// as one summary when the window ends. 0 = every event at once.
    #[serde(default)]
    pub digest_minutes: u32,
    /// Subscribed events; empty = all.
    #[serde(default)]
    pub events: Vec<String>,
}

fn loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `host:port` split, the host without IPv6 brackets; None when malformed.
pub fn split_server(server: &str) -> Option<(String, u16)> {
    let (host, port) = server.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_matches(['[', ']']);
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// Checks one `[[alerts.email]]`; `Err((key, reason))`.
pub(crate) fn validate_email(n: usize, e: &EmailConfig) -> Result<(), (String, String)> {
    let key = |k: &str| format!("alerts.email[{n}].{k}");
    let Some((host, _)) = split_server(&e.server) else {
        return Err((key("server"), format!("`{}` is not host:port", e.server)));
    };
    if e.tls == SmtpTls::None && !loopback(&host) {
        return Err((
            key("tls"),
            "\"none\" only to a relay on loopback (127.0.0.1, ::1): the password and the \
             incident details would cross the network in clear"
                .into(),
        ));
    }
    if !e.from.contains('@') {
        return Err((key("from"), format!("`{}` is not a mail address", e.from)));
    }
    let addresses = e.to.iter().chain(e.departments.values().flatten());
    if let Some(bad) = addresses.clone().find(|a| !a.contains('@')) {
        return Err((key("to"), format!("`{bad}` is not a mail address")));
    }
    if addresses.count() == 0 && !e.ledger_contact {
        return Err((
            key("to"),
            "no recipients: set `to`, `departments` or `ledger_contact = true`".into(),
        ));
    }
    if e.password_file.is_some() && e.password_env.is_some() {
        return Err((
            key("password_file / password_env"),
            "set one of them, not both".into(),
        ));
    }
    if e.username.is_some() && e.password_file.is_none() && e.password_env.is_none() {
        return Err((
            key("username"),
            "needs password_file or password_env".into(),
        ));
    }
    if let Some(bad) = e.events.iter().find(|ev| !EVENTS.contains(&ev.as_str())) {
        return Err((
            key("events"),
            format!("`{bad}` is not one of {}", EVENTS.join(", ")),
        ));
    }
    Ok(())
}
