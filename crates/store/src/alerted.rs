//! Deadline alerts, raised once each: `incidents.alerted` holds a bit per alert already sent.
//!
//! [`due`] decides from a row which alerts are due (the rule every backend shares);
//! [`claim`] is the SQLite side of `AlertStore::claim_deadline_alerts`: it finds candidate
//! rows, decides, and sets their bits in the caller's transaction, so an alert is raised by
//! whoever commits first and never twice.

use rusqlite::{Transaction, params};

use crate::StoreError;
use crate::incidents::{INCIDENT_COLUMNS, IncidentRow, map_incident};
use poolguard_model::deadline::DeadlineState;

/// Bits of `incidents.alerted`: which deadline alerts were already sent.
const IDENTIFY_SOON: i64 = 1;
const IDENTIFY_OVERDUE: i64 = 2;
const REPORT_SOON: i64 = 4;
const REPORT_OVERDUE: i64 = 8;

/// One alert to raise about an incident's deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineAlert {
    /// `incident.due_soon` or `incident.overdue`.
    pub event: &'static str,
    /// `identify` or `report`.
    pub deadline: &'static str,
    pub due_ms: i64,
    pub incident_id: i64,
    pub client: String,
    pub department: Option<String>,
    pub assignee: Option<String>,
}

/// The alerts due for `r` at `now` (`soon` ms before a deadline counts as due soon) and the
/// row's new `alerted` bits. The deadline rule is `poolguard_model::deadline`, as everywhere:
/// alert while the step is not done (a step done late was already alerted as overdue).
pub fn due(r: &IncidentRow, now: i64, soon: i64) -> (Vec<DeadlineAlert>, i64) {
    let mut bits = r.alerted;
    let mut out = Vec::new();
    let checks = [
        (
            "identify",
            r.identify_deadline(now),
            IDENTIFY_SOON,
            IDENTIFY_OVERDUE,
        ),
        (
            "report",
            r.report_deadline(now),
            REPORT_SOON,
            REPORT_OVERDUE,
        ),
    ];
    for (deadline, j, soon_bit, over_bit) in checks {
        let due = j.due_ms;
        let event = match j.state {
            DeadlineState::Missed if j.done_ms.is_none() && bits & over_bit == 0 => {
                bits |= over_bit | soon_bit;
                "incident.overdue"
            }
            DeadlineState::Pending if now >= due - soon && bits & soon_bit == 0 => {
                bits |= soon_bit;
                "incident.due_soon"
            }
            _ => continue,
        };
        out.push(DeadlineAlert {
            event,
            deadline,
            due_ms: due,
            incident_id: r.id,
            client: r.client.clone(),
            department: r.identity.department.clone(),
            assignee: r.assignee.clone(),
        });
    }
    (out, bits)
}

/// Finds and marks the due alerts inside `tx` (at most 1000 incidents per pass).
pub fn claim(tx: &Transaction<'_>, now: i64, soon: i64) -> Result<Vec<DeadlineAlert>, StoreError> {
    let sql = format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status != 'closed' AND alerted != 15 \
         AND ((identified_ms IS NULL AND identify_due_ms - ?1 <= ?2) \
           OR (reported_ms IS NULL AND report_due_ms - ?1 <= ?2)) LIMIT 1000"
    );
    let rows: Vec<IncidentRow> = tx
        .prepare(&sql)?
        .query_map(params![soon, now], map_incident)?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for r in rows {
        let (alerts, bits) = due(&r, now, soon);
        out.extend(alerts);
        if bits != r.alerted {
            tx.prepare_cached("UPDATE incidents SET alerted = ?2 WHERE id = ?1")?
                .execute(params![r.id, bits])?;
        }
    }
    Ok(out)
}
