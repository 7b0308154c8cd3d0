//! `GET /api/v1/identities?mac=|account=|asset=|owner=`: where a device or a login has been. Staff ask "which
//! addresses did this laptop use this week" when the ledger or an incident names a MAC; the
//! answer is every lease and login of it that poolguard knows (`poolguard_identity`), newest
//! first, with the ledger's row of that device or account.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::clients::Holding;
use super::{ApiError, ApiState};
use crate::views::Identity;
use poolguard_clients::Identity as LedgerRow;

/// Holdings shown, newest.
const LIMIT: usize = 200;

/// Who to look for: a MAC (any common spelling), an account (case-insensitive), or both; or
/// the ledger's asset tag or owner, which stand for the MACs and accounts of their rows.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct IdentityQuery {
    pub mac: Option<String>,
    pub account: Option<String>,
    pub asset: Option<String>,
    pub owner: Option<String>,
}

/// A device's or login's addresses over time.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentitiesResponse {
    /// The MAC searched, normalised (`00:1a:2b:3c:4d:5e`).
    pub mac: Option<String>,
    pub account: Option<String>,
    /// The ledger's row of that device or account, if it has one.
    pub ledger: Option<Identity>,
    /// Every lease and login of it, newest first (at most 200).
    pub holdings: Vec<Holding>,
    /// Searched by `asset` or `owner`: the ledger rows that matched, each with its leases
    /// and logins.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceHoldings>,
}

/// One ledger row found by asset or owner, and where its MAC or account has been.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceHoldings {
    pub ledger: Identity,
    pub holdings: Vec<Holding>,
}

/// The leases and logins of one MAC or account, and whose it is.
#[utoipa::path(get, path = "/api/v1/identities",
    operation_id = "findIdentities", tag = "clients",
    params(IdentityQuery),
    responses((status = 200, description = "The device's or login's holdings", body = IdentitiesResponse), (status = 400, description = "Bad parameter; `error` names it", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn find(
    State(state): State<ApiState>,
    Query(q): Query<IdentityQuery>,
) -> Result<Json<IdentitiesResponse>, ApiError> {
    let mac = match q.mac.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => Some(
            poolguard_identity::normalise_mac(m)
                .ok_or_else(|| {
                    ApiError::bad_param("mac", format!("`{m}` is not a MAC like 00:1a:2b:3c:4d:5e"))
                })?
                .to_string(),
        ),
        None => None,
    };
    let account = q
        .account
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty());
    let text = |v: Option<String>| v.map(|a| a.trim().to_string()).filter(|a| !a.is_empty());
    let (asset, owner) = (text(q.asset), text(q.owner));
    if mac.is_none() && account.is_none() {
        if asset.is_none() && owner.is_none() {
            return Err(ApiError::bad_param(
                "mac",
                "give `mac`, `account`, `asset` or `owner`",
            ));
        }
        let rows = state
            .ledger
            .load()
            .devices_of(asset.as_deref(), owner.as_deref());
        let devices = rows
            .into_iter()
            .take(LIMIT)
            .map(|row| DeviceHoldings {
                holdings: state
                    .identities
                    .as_ref()
                    .map(|i| i.holdings_of(row.mac.as_deref(), row.account.as_deref(), LIMIT))
                    .unwrap_or_default()
                    .into_iter()
                    .map(Holding::from)
                    .collect(),
                ledger: Identity::from(LedgerRow::clone(&row)),
            })
            .collect();
        return Ok(Json(IdentitiesResponse {
            mac: None,
            account: None,
            ledger: None,
            holdings: Vec::new(),
            devices,
        }));
    }
    let ledger = state
        .ledger
        .load()
        .lookup_device(mac.as_deref(), account.as_deref());
    let holdings = state
        .identities
        .as_ref()
        .map(|i| i.holdings_of(mac.as_deref(), account.as_deref(), LIMIT))
        .unwrap_or_default()
        .into_iter()
        .map(Holding::from)
        .collect();
    Ok(Json(IdentitiesResponse {
        mac,
        account,
        ledger: ledger.as_deref().cloned().map(Identity::from),
        holdings,
        devices: Vec::new(),
    }))
}
