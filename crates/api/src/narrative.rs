//! `PUT /api/v1/incidents/{id}/narrative`: the investigator's account for the written report.
//!
//! The account (how it was found, cause, measures, outcome, follow-up) is replaced whole, as
//! a form is saved: what is absent or empty is "not recorded". It is one store call that
//! writes the account and its audit row (`incident.narrative`) in one transaction, like every
//! incident write; it may still be edited after closing (a report is often written then).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::incidents::{caller_of, parse_id};
use super::{ApiError, ApiState, Caller};
use poolguard_store::narrative::{NARRATIVE_ACTIONS, Narrative};

/// Longest free-text field of the account, in characters.
const MAX_TEXT: usize = 10_000;

/// The investigator's account. Absent or empty fields are "not recorded".
#[derive(Debug, Default, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NarrativeBody {
    /// How the incident was found.
    #[serde(default)]
    pub found: Option<String>,
    /// The cause.
    #[serde(default)]
    pub cause: Option<String>,
    /// Measures taken: any of `disconnected`, `cleaned`, `reimaged`, `warned`.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Other measures, in words.
    #[serde(default)]
    pub actions_other: Option<String>,
    /// The outcome.
    #[serde(default)]
    pub outcome: Option<String>,
    /// The follow-up.
    #[serde(default)]
    pub follow_up: Option<String>,
}

impl From<Narrative> for NarrativeBody {
    fn from(n: Narrative) -> Self {
        Self {
            found: n.found,
            cause: n.cause,
            actions: n.actions,
            actions_other: n.actions_other,
            outcome: n.outcome,
            follow_up: n.follow_up,
        }
    }
}

fn text(name: &'static str, v: Option<String>) -> Result<Option<String>, ApiError> {
    match v.map(|s| s.trim().to_string()) {
        Some(s) if s.chars().count() > MAX_TEXT => Err(ApiError::bad_param(
            name,
            format!("at most {MAX_TEXT} characters"),
        )),
        Some(s) if s.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// Checks a body and puts it in the stored form (measures deduplicated, in the fixed order).
fn checked(b: NarrativeBody) -> Result<Narrative, ApiError> {
    if let Some(bad) = b
        .actions
        .iter()
        .find(|a| !NARRATIVE_ACTIONS.contains(&a.as_str()))
    {
        return Err(ApiError::bad_param(
            "actions",
            format!(
                "`{bad}` is not one of {}; write other measures in actions_other",
                NARRATIVE_ACTIONS.join(", ")
            ),
        ));
    }
    Ok(Narrative {
        found: text("found", b.found)?,
        cause: text("cause", b.cause)?,
        actions: NARRATIVE_ACTIONS
            .iter()
            .filter(|a| b.actions.iter().any(|x| x == *a))
            .map(|a| a.to_string())
            .collect(),
        actions_other: text("actions_other", b.actions_other)?,
        outcome: text("outcome", b.outcome)?,
        follow_up: text("follow_up", b.follow_up)?,
    })
}

/// Replaces the investigator's account; answers it as stored.
#[utoipa::path(put, path = "/api/v1/incidents/{id}/narrative", request_body = NarrativeBody,
    operation_id = "putIncidentNarrative", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    responses((status = 200, description = "The account as stored", body = NarrativeBody), (status = 400, description = "Bad parameter or body; `error` names it", body = super::error::ErrorBody),
              (status = 404, description = "No such incident", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    caller: Option<axum::Extension<Caller>>,
    body: Result<Json<NarrativeBody>, JsonRejection>,
) -> Result<Json<NarrativeBody>, ApiError> {
    let id = parse_id(&id)?;
    let Json(b) = body.map_err(|e| ApiError::bad_param("body", e.body_text()))?;
    let narrative = checked(b)?;
    let now = state.accountability.clock.now_ms();
    let stored = state
        .store
        .set_narrative(id, narrative, caller_of(caller), now)
        .await
        .map_err(super::incidents::write_error)?
        .ok_or_else(|| super::incidents::not_found(id))?;
    tracing::info!(incident = id, "incident narrative updated");
    Ok(Json(stored.into()))
}
