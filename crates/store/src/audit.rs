//! The audit log: who changed what through the API, and when.
//!
//! Every write (feed upload, entry patch, rollback, ledger replacement, incident change) adds
//! one row with the caller's configured token *name* (never the token), the action, the target
//! and the content hashes before and after, so "who unblocked this pool, and what did the list
//! look like before?" has an answer a year later. Rows are only ever inserted.

use rusqlite::{Connection, Row, params};

use super::StoreError;
use crate::traits::Actor;

/// One audited write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Assigned by the store; 0 before insertion.
    pub id: i64,
    pub time_ms: i64,
    /// The token name of the caller (`alice`), or `system` for poolguard itself.
    pub actor: String,
    pub role: String,
    /// What was done: `feed.upload`, `feed.patch`, `feed.restore`, `ledger.replace`, …
    pub action: String,
    /// What it was done to: a feed name, `ledger`, `incident/42`.
    pub target: String,
    pub before_hash: Option<String>,
    pub after_hash: Option<String>,
    /// Short human-readable detail (counts, the new status).
    pub detail: String,
}

impl AuditEntry {
    /// A new entry stamped with the current time.
    pub fn now(actor: &str, role: &str, action: &str, target: &str) -> Self {
        Self {
            id: 0,
            time_ms: chrono::Utc::now().timestamp_millis(),
            actor: actor.to_string(),
            role: role.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            before_hash: None,
            after_hash: None,
            detail: String::new(),
        }
    }
}

impl AuditEntry {
    /// An entry by `actor` at `now` about `target`: how every backend writes the rows of the
    /// store traits' changes, so their audit logs read the same.
    pub fn by(actor: &Actor, action: &str, target: String, now: i64, detail: String) -> Self {
        let mut e = AuditEntry::now(&actor.name, &actor.role, action, &target);
        e.time_ms = now;
        e.detail = detail;
        e
    }
}

/// A quarantine change as the audit log records it: one row on the address and, when the
/// entry belongs to an incident, one on the incident's trail (its report lists it).
#[derive(Debug, Clone, Copy)]
pub struct QuarantineChange {
    /// `quarantine.add` or `quarantine.release`.
    pub action: &'static str,
    /// The past tense the incident's row uses: `quarantined`, `released`.
    pub done: &'static str,
    pub incident: Option<i64>,
}

impl QuarantineChange {
    /// An address put in quarantine (for `incident`, if any).
    pub fn added(incident: Option<i64>) -> Self {
        Self {
            action: "quarantine.add",
            done: "quarantined",
            incident,
        }
    }

    /// An address let out of quarantine.
    pub fn released(incident: Option<i64>) -> Self {
        Self {
            action: "quarantine.release",
            done: "released",
            incident,
        }
    }

    /// The audit rows of this change of `ip` by `actor` at `now`.
    pub fn rows(&self, ip: &str, actor: &Actor, now: i64, reason: &str) -> Vec<AuditEntry> {
        let target = format!("quarantine/{ip}");
        let mut rows = vec![AuditEntry::by(
            actor,
            self.action,
            target,
            now,
            reason.to_string(),
        )];
        if let Some(id) = self.incident {
            let detail = format!("{ip} {}: {reason}", self.done);
            rows.push(AuditEntry::by(
                actor,
                self.action,
                format!("incident/{id}"),
                now,
                detail,
            ));
        }
        rows
    }
}

/// The audit detail of a note: its id and length, never its text (notes may name people).
pub fn note_detail(note_id: i64, text: &str) -> String {
    format!("note {note_id} ({} characters)", text.chars().count())
}

/// Inserts one entry on `conn` (inside the caller's transaction when there is one).
pub fn insert(conn: &Connection, e: &AuditEntry) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO audit (time_ms, actor, role, action, target, before_hash, after_hash, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            e.time_ms,
            e.actor,
            e.role,
            e.action,
            e.target,
            e.before_hash,
            e.after_hash,
            e.detail
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The columns [`map_audit`] reads, in order.
const AUDIT_COLUMNS: &str =
    "id, time_ms, actor, role, action, target, before_hash, after_hash, detail";

/// Maps a row selected with [`AUDIT_COLUMNS`]: the one place an audit row becomes an entry.
fn map_audit(r: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.get(0)?,
        time_ms: r.get(1)?,
        actor: r.get(2)?,
        role: r.get(3)?,
        action: r.get(4)?,
        target: r.get(5)?,
        before_hash: r.get(6)?,
        after_hash: r.get(7)?,
        detail: r.get(8)?,
    })
}

/// Newest first, `limit` rows with id below `before_id` (keyset pagination).
pub fn list(
    conn: &Connection,
    limit: usize,
    before_id: Option<i64>,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {AUDIT_COLUMNS} FROM audit WHERE id < ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(
        params![before_id.unwrap_or(i64::MAX), limit as i64],
        map_audit,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every entry about `target` (`incident/42`), oldest first: an incident's trail for its report.
pub fn trail(conn: &Connection, target: &str) -> Result<Vec<AuditEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {AUDIT_COLUMNS} FROM audit WHERE target = ?1 ORDER BY time_ms, id"
    ))?;
    let rows = stmt.query_map(params![target], map_audit)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
