//! The parts of the API's JSON answers the console reads.
//!
//! Only the fields a page shows; serde ignores the rest, so an API field added later does not
//! break the console. Shapes follow the API's view types (crates/api/src/views, lists.rs,
//! incidents.rs); the console's tests run against the real API, which keeps them in step.

use serde::Deserialize;

/// A value and how often it occurs (stats tables).
#[derive(Debug, Clone, Deserialize)]
pub struct Count {
    pub value: String,
    pub count: u64,
}

/// `GET /api/v1/stats`.
#[derive(Debug, Clone, Deserialize)]
pub struct Stats {
    #[serde(default)]
    pub queries_by_action: Vec<Count>,
    #[serde(default)]
    pub hits_by_action: Vec<Count>,
    #[serde(default)]
    pub top_blocked_names: Vec<Count>,
    #[serde(default)]
    pub top_clients: Vec<Count>,
    #[serde(default)]
    pub top_departments: Vec<Count>,
}

/// Who a client was (ledger, DHCP, RADIUS).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Identity {
    pub asset: Option<String>,
    pub mac: Option<String>,
    pub location: Option<String>,
    pub department: Option<String>,
    pub owner: Option<String>,
    pub contact: Option<String>,
    pub account: Option<String>,
    pub hostname: Option<String>,
    pub source: Option<String>,
}

impl Identity {
    /// The known fields as (label, value) rows, in the page's language.
    pub fn rows(&self, t: &'static crate::i18n::Labels) -> Vec<(&'static str, String)> {
        [
            (t.asset, &self.asset),
            (t.mac, &self.mac),
            (t.department, &self.department),
            (t.owner, &self.owner),
            (t.contact, &self.contact),
            (t.location, &self.location),
            (t.account, &self.account),
            (t.hostname, &self.hostname),
            (t.source, &self.source),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }
}

/// One query or hit.
#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    pub time: String,
    pub client: String,
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: String,
    pub action: String,
    pub feed: Option<String>,
    pub rule: Option<String>,
    pub answer: String,
    pub department: Option<String>,
    /// Hits only: who the client was then.
    #[serde(default)]
    pub identity: Option<Identity>,
}

/// A page of queries or hits.
#[derive(Debug, Clone, Deserialize)]
pub struct ItemPage {
    pub items: Vec<Item>,
    pub next_cursor: Option<String>,
}

/// One incident.
#[derive(Debug, Clone, Deserialize)]
pub struct Incident {
    pub id: i64,
    pub client: String,
    #[serde(default)]
    pub identity: Identity,
    pub device: Option<String>,
    pub owner: Option<String>,
    pub status: String,
    pub resolution: Option<String>,
    pub assignee: Option<String>,
    pub severity: String,
    #[serde(default)]
    pub feeds: Vec<String>,
    pub opened_at: String,
    pub first_hit_at: String,
    pub last_hit_at: String,
    pub hit_count: i64,
    pub distinct_names: i64,
    pub identify_due: String,
    pub report_due: String,
    pub identified_at: Option<String>,
    pub reported_at: Option<String>,
    pub closed_at: Option<String>,
    pub overdue: bool,
    pub identify_state: String,
    pub report_state: String,
    pub quarantined: bool,
}

impl Incident {
    /// The deadline still ahead of the incident (identify, then report); None when both are
    /// done or not needed. The queue sorts by it.
    pub fn next_due(&self) -> Option<&str> {
        if self.identify_state == "pending" {
            Some(&self.identify_due)
        } else if self.report_state == "pending" {
            Some(&self.report_due)
        } else {
            None
        }
    }
}

/// A page of incidents.
#[derive(Debug, Clone, Deserialize)]
pub struct IncidentPage {
    pub items: Vec<Incident>,
}

/// One hit of an incident.
#[derive(Debug, Clone, Deserialize)]
pub struct HitView {
    pub time: String,
    pub name: String,
}

/// One note on an incident.
#[derive(Debug, Clone, Deserialize)]
pub struct Note {
    pub time: String,
    pub author: String,
    pub text: String,
}

/// The investigator's account for the written report (`…/narrative`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Narrative {
    pub found: Option<String>,
    pub cause: Option<String>,
    #[serde(default)]
    pub actions: Vec<String>,
    pub actions_other: Option<String>,
    pub outcome: Option<String>,
    pub follow_up: Option<String>,
}

/// `GET /api/v1/incidents/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    #[serde(default)]
    pub hits: Vec<HitView>,
    #[serde(default)]
    pub notes: Vec<Note>,
    #[serde(default)]
    pub narrative: Narrative,
}

/// One quarantined address.
#[derive(Debug, Clone, Deserialize)]
pub struct Quarantined {
    pub ip: String,
    pub since: String,
    pub actor: String,
    pub reason: String,
    pub incident_id: Option<i64>,
}

/// `GET /api/v1/quarantine`.
#[derive(Debug, Clone, Deserialize)]
pub struct QuarantineList {
    pub items: Vec<Quarantined>,
}

/// A feed's last fetch (subscriptions).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Fetch {
    pub last_success: Option<String>,
    pub error: Option<String>,
}

/// A saved version of a feed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Version {
    pub id: u64,
    pub time: String,
    pub who: String,
    pub action: String,
    pub entries: usize,
    pub rejected: usize,
}

/// `GET /api/v1/feeds` entries.
#[derive(Debug, Clone, Deserialize)]
pub struct Feed {
    pub name: String,
    pub kind: String,
    pub entries: usize,
    pub rejected: usize,
    pub loaded_at: Option<String>,
    pub last_error: Option<String>,
    pub url: Option<String>,
    pub path: Option<String>,
    pub category: String,
    pub severity: String,
    pub enabled: bool,
    pub defined_in: String,
    pub fetch: Option<Fetch>,
}

impl Feed {
    /// Where the list comes from: its URL, else its file.
    pub fn source(&self) -> String {
        self.url
            .clone()
            .or_else(|| self.path.clone())
            .unwrap_or_default()
    }

    /// The last successful update: the last good fetch, else the last load.
    pub fn fresh(&self) -> Option<&str> {
        self.fetch
            .as_ref()
            .and_then(|f| f.last_success.as_deref())
            .or(self.loaded_at.as_deref())
    }
}

/// One rejected line of an upload.
#[derive(Debug, Clone, Deserialize)]
pub struct Rejected {
    pub line: usize,
    pub text: String,
    pub reason: String,
}

/// `PUT /api/v1/feeds/{name}`.
#[derive(Debug, Clone, Deserialize)]
pub struct WriteReport {
    pub accepted: usize,
    #[serde(default)]
    pub rejected: Vec<Rejected>,
    pub skipped: usize,
}

/// `GET /api/v1/check`.
#[derive(Debug, Clone, Deserialize)]
pub struct Check {
    pub name: String,
    pub decision: String,
    pub feed: Option<String>,
    pub rule: Option<String>,
    pub action: Option<String>,
    pub overrides: Option<String>,
}

/// Who held an address when.
#[derive(Debug, Clone, Deserialize)]
pub struct Holding {
    pub start: String,
    pub end: Option<String>,
    pub mac: Option<String>,
    pub account: Option<String>,
    pub hostname: Option<String>,
    pub source: String,
}

/// `GET /api/v1/clients/{ip}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Client {
    pub client: String,
    pub identity: Option<Identity>,
    #[serde(default)]
    pub holdings: Vec<Holding>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub hit_count: i64,
    #[serde(default)]
    pub recent_hits: Vec<Item>,
}
