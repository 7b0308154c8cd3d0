//! A staff change to an incident, applied to its row: the rule every backend runs inside its
//! update transaction (`IncidentStore::update_incident`), so two backends cannot disagree on
//! which moves are allowed or what the audit row says.

use poolguard_model::{Status, TransitionError, check_transition};

use crate::StoreError;
use crate::incidents::IncidentRow;
use crate::traits::Actor;

/// The fields staff may change. `None` leaves a field as it is; `Some(None)` clears it.
#[derive(Debug, Clone)]
pub struct IncidentChange {
    pub status: Option<Status>,
    pub assignee: Option<Option<String>>,
    pub device: Option<Option<String>>,
    pub owner: Option<Option<String>>,
    /// Only with `status: closed`.
    pub resolution: Option<String>,
    pub actor: Actor,
    /// When the change happens (the injectable clock's now).
    pub now_ms: i64,
}

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Updated {
    /// The row as written (its audit row was written with it).
    Changed(Box<IncidentRow>),
    /// Nothing differed from the stored incident: nothing written, nothing audited.
    Unchanged(Box<IncidentRow>),
}

/// Why an update did not happen.
#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("no incident {0}")]
    NotFound(i64),
    /// The state machine forbids the move (the API answers 409 with this text).
    #[error(transparent)]
    Refused(#[from] TransitionError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies `change` to `row`: `Ok(Some(detail))` with the audit detail when something
/// changed, `Ok(None)` when nothing differs (a PATCH of `{}` or of the current values, issue
/// 13, even on a closed incident), `Err` when the move is not allowed (`row` is then stale).
pub fn apply(
    row: &mut IncidentRow,
    change: &IncidentChange,
) -> Result<Option<String>, TransitionError> {
    let from = row.status;
    let mut changes = Vec::new();
    for (name, new, old) in [
        ("device", &change.device, &mut row.device),
        ("owner", &change.owner, &mut row.owner),
        ("assignee", &change.assignee, &mut row.assignee),
    ] {
        if let Some(v) = new
            && v != old
        {
            changes.push(format!("{name}={}", v.as_deref().unwrap_or("")));
            old.clone_from(v);
        }
    }
    let to = change.status.unwrap_or(from);
    let resolution = change.resolution.as_deref();
    let same_resolution = resolution.is_none_or(|r| row.resolution.as_deref() == Some(r));
    if changes.is_empty() && to == from && same_resolution {
        return Ok(None);
    }
    let identified = row.device.is_some() && row.owner.is_some();
    check_transition(from, to, identified, resolution)?;
    // Identification cannot be withdrawn once an incident is past it.
    if from >= Status::Identified && !identified {
        return Err(TransitionError::NeedsIdentification(from.as_str()));
    }
    if to != from {
        changes.push(format!("status {}→{}", from.as_str(), to.as_str()));
    }
    let now = change.now_ms;
    // `identified_at` / `reported_at` mark those steps, which deadlines are judged by;
    // closing is neither (a false positive closed early was never identified).
    if matches!(to, Status::Identified | Status::Reported) && row.identified_ms.is_none() {
        row.identified_ms = Some(now);
    }
    if to == Status::Reported && row.reported_ms.is_none() {
        row.reported_ms = Some(now);
    }
    if to == Status::Closed {
        row.closed_ms = Some(now);
        row.resolution = change.resolution.clone();
        changes.push(format!("resolution={}", resolution.unwrap_or("")));
    }
    row.status = to;
    Ok(Some(changes.join("; ")))
}
