//! The API's JSON answers as the console reads them.
//!
//! Where the API's own view type can be read back (lists, incidents, notes, quarantine,
//! counts), the console uses it: one type on both sides, so they cannot drift. The rest
//! (stats, feeds, check, client look-up) are written by the API from types that borrow or hold
//! paths, so here are the fields a page shows; serde ignores the others, and the console's
//! tests run against the real API, which keeps them in step.

use serde::Deserialize;

pub use poolguard_api::{
    ClientResponse as Client, Count, DeadlineState, Holding, Identity, IncidentDetail,
    IncidentPage, Item, ListResponse, NarrativeBody, QuarantineEntry, QuarantineList,
};

/// One incident, as the API's list and detail show it.
pub type Incident = poolguard_api::IncidentView;

/// `GET /api/v1/stats` (the API's `StatsResponse` is written, never read, so only the tables
/// the overview shows are here).
#[derive(Debug, Clone, Default, Deserialize)]
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
    #[serde(default)]
    pub top_feeds: Vec<Count>,
}

/// The known fields of an identity as (label, value) rows, in the page's language.
pub fn identity_rows(i: &Identity, t: &'static crate::i18n::Labels) -> Vec<(&'static str, String)> {
    [
        (t.asset, &i.asset),
        (t.mac, &i.mac),
        (t.department, &i.department),
        (t.owner, &i.owner),
        (t.contact, &i.contact),
        (t.location, &i.location),
        (t.account, &i.account),
        (t.hostname, &i.hostname),
        (t.source, &i.source),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
    .collect()
}

/// The deadline still ahead of an incident (identify, then report); None when both are done
/// or not needed. The queue sorts by it.
pub fn next_due(i: &Incident) -> Option<&str> {
    if i.identify_state == DeadlineState::Pending {
        Some(&i.identify_due)
    } else if i.report_state == DeadlineState::Pending {
        Some(&i.report_due)
    } else {
        None
    }
}

/// A deadline state as the API spells it (`met`, `missed`, `pending`, `not_needed`): the CSS
/// class and the key of its label.
pub fn state_word(s: DeadlineState) -> &'static str {
    match s {
        DeadlineState::Pending => "pending",
        DeadlineState::Met => "met",
        DeadlineState::Missed => "missed",
        DeadlineState::NotNeeded => "not_needed",
    }
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
