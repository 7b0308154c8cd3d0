//! The investigator's account of an incident: how it was found, its cause, what was done,
//! the outcome and the follow-up. These are the prose sections of the written report.
//!
//! The account is one JSON document per incident in `incident_narrative` (replaced whole on
//! every edit, audited as `incident.narrative`), not five columns on `incidents`: the hot
//! incident statements of the writer and the lists stay as they are, and a field added to the
//! account later needs no schema step.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The actions an investigator may tick, as the report and the API spell them.
pub const NARRATIVE_ACTIONS: &[&str] = &["disconnected", "cleaned", "reimaged", "warned"];

/// The account of an incident; `None` / empty = not recorded yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Narrative {
    /// How the incident was found (e.g. "poolguard alert, confirmed by the switch port").
    pub found: Option<String>,
    /// The cause (e.g. "a student's miner in a game mod").
    pub cause: Option<String>,
    /// Ticked actions, each one of [`NARRATIVE_ACTIONS`], in that order.
    pub actions: Vec<String>,
    /// Other actions, in words.
    pub actions_other: Option<String>,
    /// The outcome.
    pub outcome: Option<String>,
    /// What follows (re-check date, training, a ledger correction).
    pub follow_up: Option<String>,
}

impl Narrative {
    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The stored form (JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses the stored form; a row written by a later build keeps what this build knows.
    pub fn from_json(s: &str) -> Self {
        serde_json::from_str(s).unwrap_or_default()
    }

    /// The audit detail of a change: the fields that differ, by name.
    pub fn changed_fields(&self, before: &Narrative) -> String {
        let mut names = Vec::new();
        let pairs: [(&str, bool); 6] = [
            ("found", self.found != before.found),
            ("cause", self.cause != before.cause),
            ("actions", self.actions != before.actions),
            ("actions_other", self.actions_other != before.actions_other),
            ("outcome", self.outcome != before.outcome),
            ("follow_up", self.follow_up != before.follow_up),
        ];
        for (name, changed) in pairs {
            if changed {
                names.push(name);
            }
        }
        format!("narrative: {}", names.join(", "))
    }
}

/// The `incident_narrative` table (schema step 10).
pub(crate) fn schema() -> String {
    "CREATE TABLE IF NOT EXISTS incident_narrative (
    incident_id INTEGER PRIMARY KEY,
    body        TEXT    NOT NULL,
    updated_ms  INTEGER NOT NULL);
"
    .to_string()
}

/// The account of incident `id` (empty when none is recorded).
pub(crate) fn get(c: &Connection, id: i64) -> Result<Narrative, StoreError> {
    let body: Option<String> = c
        .prepare_cached("SELECT body FROM incident_narrative WHERE incident_id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(body.map(|b| Narrative::from_json(&b)).unwrap_or_default())
}

/// Replaces the account of incident `id`.
pub(crate) fn put(c: &Connection, id: i64, n: &Narrative, now_ms: i64) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO incident_narrative (incident_id, body, updated_ms) VALUES (?1, ?2, ?3) \
         ON CONFLICT(incident_id) DO UPDATE SET body = excluded.body, updated_ms = excluded.updated_ms",
    )?
    .execute(params![id, n.to_json(), now_ms])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_changes() {
        let n = Narrative {
            cause: Some("挖矿程序".into()),
            actions: vec!["disconnected".into()],
            ..Default::default()
        };
        assert_eq!(Narrative::from_json(&n.to_json()), n);
        assert!(Narrative::default().is_empty());
        assert_eq!(
            n.changed_fields(&Narrative::default()),
            "narrative: cause, actions"
        );
    }
}
