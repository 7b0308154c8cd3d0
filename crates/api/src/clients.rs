//! `GET /api/v1/clients/{ip}`: who is this, what did it do; with `?at=<RFC 3339>`, who held
//! the address then (DHCP leases and RADIUS logins, `poolguard_identity`), and the holdings of
//! the address that poolguard knows.
//!
//! The ledger's own endpoints (reload, upload, versions) are [`crate::ledger`]'s.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::lists::Item;
use super::{ApiError, ApiState};
use crate::views::Identity;
use ipnet::IpNet;
use poolguard_model::rfc3339;
use poolguard_record::Outcome;
use poolguard_store::{EvidenceFilter, Table};

/// Hits shown in a client summary.
const RECENT_HITS: usize = 20;
/// Holdings of the address shown, newest.
const HOLDINGS: usize = 50;

/// `?at=`: the moment asked about; `?scope=`: which nodes' query logs.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct ClientQuery {
    /// RFC 3339 time (`2026-12-07T02:14:00Z`); absent = now.
    pub at: Option<String>,
    /// `group` (default): with several nodes, first/last seen over every node's query log;
    /// `node`: this node's only.
    pub scope: Option<String>,
}

/// One holding of the address: a lease or a login.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Holding {
    /// The address held.
    pub address: String,
    pub start: String,
    /// Absent while it lasts.
    pub end: Option<String>,
    pub mac: Option<String>,
    pub account: Option<String>,
    pub hostname: Option<String>,
    /// `kea`, `dhcpd` or `radius`.
    pub source: String,
}

impl From<poolguard_identity::Interval> for Holding {
    fn from(i: poolguard_identity::Interval) -> Self {
        let own = |v: Option<std::sync::Arc<str>>| v.map(|s| s.to_string());
        Self {
            address: i.addr.to_string(),
            start: rfc3339(i.start_ms),
            end: (i.end_ms != poolguard_identity::OPEN).then(|| rfc3339(i.end_ms)),
            mac: own(i.mac),
            account: own(i.account),
            hostname: own(i.hostname),
            source: i.source.to_string(),
        }
    }
}

/// One client's summary.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ClientResponse {
    pub client: String,
    /// Who held the address at `at` (now when absent): the lease or login then, with the
    /// ledger's row of that device or account, else the ledger's row of the network. Hits
    /// carry who it was at their own time.
    pub identity: Option<Identity>,
    /// The moment `identity` is about.
    pub at: String,
    /// The address's leases and logins poolguard knows, newest first (at most 50).
    pub holdings: Vec<Holding>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub hit_count: i64,
    pub recent_hits: Vec<Item>,
    /// The client looked up a public encrypted-DNS resolver (a `logged` hit, the `bypass`
    /// category): it can resolve around poolguard (docs/FEEDS.md, "Bypass").
    pub bypass_capable: bool,
    /// Nodes of the group whose query logs are missing from first/last seen (they did not
    /// answer), each with why; absent when every node answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<String>,
}

/// Identity, first/last seen, hit count and recent hits of one client address.
#[utoipa::path(get, path = "/api/v1/clients/{ip}",
    operation_id = "getClient", tag = "clients",
    params(("ip" = String, Path, description = "Client IP address"), ClientQuery),
    responses((status = 200, description = "The client's identity and hit summary", body = ClientResponse), (status = 400, description = "Bad parameter or body; `error` names it", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn client(
    State(state): State<ApiState>,
    Path(ip): Path<String>,
    Query(q): Query<ClientQuery>,
) -> Result<Json<ClientResponse>, ApiError> {
    let ip: IpAddr = ip
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_param("ip", format!("`{ip}` is not an IP address")))?;
    let ip = ip.to_canonical();
    let group_wide = match q.scope.as_deref().map(str::trim) {
        None | Some("group") => true,
        Some("node") => false,
        Some(_) => return Err(ApiError::bad_param("scope", "must be group or node")),
    };
    let at_ms = match &q.at {
        Some(t) => super::lists::parse_time("at", t)?,
        None => poolguard_identity::now_ms(),
    };
    let ledger = state.ledger.load();
    let who = poolguard_store::writer::Attribution {
        ledger: &ledger,
        identities: state.identities.as_deref(),
        exempt: state.exempt.as_deref(),
    };
    let identity = who.at(ip, at_ms);
    let holdings: Vec<Holding> = state
        .identities
        .as_ref()
        .map(|i| i.history(ip))
        .unwrap_or_default()
        .into_iter()
        .rev()
        .take(HOLDINGS)
        .map(Holding::from)
        .collect();
    let s = state.store.client_summary(ip, RECENT_HITS).await?;
    // Hits are the group's in a shared store; each node's query log is its own, so the
    // others are asked when they saw the address.
    let (mut first_seen, mut last_seen) = (s.first_seen_ms, s.last_seen_ms);
    let mut incomplete = Vec::new();
    if let (Some(group), true) = (&state.group, group_wide) {
        let ((first, last), missing) = super::group_log::peer_seen(group, ip).await;
        first_seen = first_seen.into_iter().chain(first).min();
        last_seen = last_seen.into_iter().chain(last).max();
        incomplete = missing;
    }
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
        at: rfc3339(at_ms),
        holdings,
        first_seen: first_seen.map(rfc3339),
        last_seen: last_seen.map(rfc3339),
        hit_count: s.hit_count,
        recent_hits: s.recent_hits.into_iter().map(Item::from).collect(),
        bypass_capable,
        incomplete,
    }))
}
