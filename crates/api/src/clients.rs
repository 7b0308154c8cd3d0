//! `GET /api/v1/clients/{ip}`: who is this, what did it do.
//!
//! The ledger's own endpoints (reload, upload, versions) are [`crate::ledger`]'s.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::lists::Item;
use super::{ApiError, ApiState};
use crate::views::Identity;
use ipnet::IpNet;
use poolguard_model::rfc3339;
use poolguard_record::Outcome;
use poolguard_store::{EvidenceFilter, Table};

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
    /// The client looked up a public encrypted-DNS resolver (a `logged` hit, the `bypass`
    /// category): it can resolve around poolguard (docs/FEEDS.md, "Bypass").
    pub bypass_capable: bool,
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
    // One indexed page of at most one row: the hit log's client and action filters.
    let logged = EvidenceFilter {
        client: Some(IpNet::from(ip)),
        action: Some(Outcome::Logged.as_str().to_string()),
        limit: 1,
        ..EvidenceFilter::default()
    };
    let bypass_capable = !state
        .store
        .list_evidence(Table::Hits, logged)
        .await?
        .items
        .is_empty();
    Ok(Json(ClientResponse {
        client: ip.to_string(),
        identity: identity.as_deref().cloned().map(Identity::from),
        first_seen: s.first_seen_ms.map(rfc3339),
        last_seen: s.last_seen_ms.map(rfc3339),
        hit_count: s.hit_count,
        recent_hits: s.recent_hits.into_iter().map(Item::from).collect(),
        bypass_capable,
    }))
}
