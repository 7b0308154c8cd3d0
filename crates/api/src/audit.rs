//! `GET /api/v1/audit`: the write history, for admins.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use serde::Serialize;

use super::{ApiError, ApiState};
use crate::views::AuditEntry;
use poolguard_store::Cursor;

const DEFAULT_LIMIT: usize = 100;

/// A page of audit entries, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; null at the end.
    pub next_cursor: Option<String>,
}

/// Lists audited writes, newest first (`limit` ≤ 1000, `cursor` from the previous page).
#[utoipa::path(get, path = "/api/v1/audit",
    operation_id = "listAudit", tag = "audit",
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "One page of the audit log, newest first", body = AuditPage), (status = 400, description = "Bad parameter or body; `error` names it", body = super::error::ErrorBody),
              (status = 403, description = "The token's role may not do this", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<AuditPage>, ApiError> {
    let mut limit = DEFAULT_LIMIT;
    let mut before = None;
    for (k, v) in &params {
        match k.as_str() {
            "limit" => limit = crate::lists::parse_limit(v)?,
            "cursor" => {
                before = Some(Cursor(v.clone()));
            }
            _ => {
                return Err(ApiError::bad_param(
                    "query",
                    format!("unknown parameter `{k}` (limit, cursor)"),
                ));
            }
        }
    }
    let page = state.store.audit_list(limit, before).await?;
    Ok(Json(AuditPage {
        items: crate::views::all(page.items),
        next_cursor: page.next.map(|c| c.0),
    }))
}
