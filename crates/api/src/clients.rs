//! `GET /api/v1/clients/{ip}` (who is this, what did it do) and the admin ledger reload.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::lists::Item;
use super::{ApiError, ApiState};
use poolguard_clients::{Identity, LedgerError, LoadReport};
use poolguard_model::rfc3339;
use poolguard_store::audit::AuditEntry;

/// Hits shown in a client summary.
const RECENT_HITS: usize = 20;

/// One client's summary.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientResponse {
    pub client: String,
    /// Who the ledger says this address is now (hits carry who it was then).
    pub identity: Option<Identity>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub hit_count: i64,
    pub recent_hits: Vec<Item>,
}

/// Identity, first/last seen, hit count and recent hits of one client address.
#[utoipa::path(get, path = "/api/v1/clients/{ip}",
    operation_id = "getClient", tag = "clients",
    params(("ip" = String, Path, description = "Client IP address")),
    responses((status = 200, description = "The client's identity and hit summary", body = ClientResponse), (status = 400, description = "Bad parameter or body; `error` names it", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn client(
    State(state): State<ApiState>,
    Path(ip): Path<String>,
) -> Result<Json<ClientResponse>, ApiError> {
    let ip: IpAddr = ip
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_param("ip", format!("`{ip}` is not an IP address")))?;
    let ip = ip.to_canonical();
    let identity = state.ledger.load().lookup(ip);
    let s = state.store.client_summary(ip, RECENT_HITS).await?;
    Ok(Json(ClientResponse {
        client: ip.to_string(),
        identity: identity.as_deref().cloned(),
        first_seen: s.first_seen_ms.map(rfc3339),
        last_seen: s.last_seen_ms.map(rfc3339),
        hit_count: s.hit_count,
        recent_hits: s.recent_hits.into_iter().map(Item::from).collect(),
    }))
}

/// Re-reads the asset ledger file and swaps it in; bad rows are reported, good rows load.
#[utoipa::path(post, path = "/api/v1/ledger/reload",
    operation_id = "reloadLedger", tag = "ledger",
    responses((status = 200, description = "The ledger file was re-read and is in force", body = LoadReport), (status = 403, description = "The token's role may not do this", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn reload_ledger(
    State(state): State<ApiState>,
    caller: Option<axum::Extension<super::Caller>>,
) -> Result<Json<LoadReport>, ApiError> {
    let Some(path) = state.ledger_path.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no [clients] ledger is configured",
        ));
    };
    let report = poolguard_clients::reload(&state.ledger, path)
        .await
        .map_err(|e| {
            let status = match e {
                LedgerError::Stopped(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            ApiError::new(status, e.to_string())
        })?;
    // The audit trail of a write: who, what, outcome (never the token).
    let (who, role) = caller
        .map(|c| (c.0.name, format!("{:?}", c.0.role).to_lowercase()))
        .unwrap_or_default();
    tracing::info!(caller = %who, loaded = report.loaded, rejected = report.rejected.len(), "asset ledger reloaded via API");
    let mut entry = AuditEntry::now(&who, &role, "ledger.reload", "ledger");
    entry.detail = report.summary();
    state.store.audit(entry).await?;
    metrics::counter!("poolguard_ledger_reloads_total").increment(1);
    Ok(Json(report))
}
