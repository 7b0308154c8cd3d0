//! `/api/v1/quarantine`: who is in the walled garden, and putting clients in or letting them out.
//!
//! The store holds the list (it survives restarts; `QuarantineStore`, each change one
//! transaction with its audit rows); the DNS path's lock-free set is updated after each
//! committed change. Exports for the NAC/firewall: `?format=txt` (one address per line)
//! and `?format=csv`. Every change is audited and raises `quarantine.on` / `quarantine.off`.

use ipnet::IpNet;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::incidents::caller_of;
use super::lists::check_keys;
use super::{ApiError, ApiState, Caller, neutralise};
use crate::views::QuarantineEntry;
use poolguard_incidents::AlertEvent;
use poolguard_store::{QuarantineAdd, QuarantineRelease};

/// The quarantine list.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct QuarantineList {
    pub items: Vec<QuarantineEntry>,
}

/// Quarantine (or release) one address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuarantineRequest {
    /// The client address.
    pub ip: String,
    /// Why (shown in the list, the audit log and the alert).
    #[serde(default)]
    pub reason: Option<String>,
    /// Link to an incident.
    #[serde(default)]
    pub incident_id: Option<i64>,
}

/// An address, or a network (CIDR) quarantined whole in an emergency.
fn parse_ip(v: &str) -> Result<IpNet, ApiError> {
    poolguard_model::net::parse_target(v).ok_or_else(|| {
        ApiError::bad_param(
            "ip",
            format!("`{v}` is not an IP address or a network (CIDR)"),
        )
    })
}

/// Lists quarantined addresses: `format=json` (default), `txt` (one IP per line) or `csv`.
#[utoipa::path(get, path = "/api/v1/quarantine",
    operation_id = "listQuarantine", tag = "quarantine",
    params(("format" = Option<String>, Query, description = "json (default), txt or csv"),
           ("bom" = Option<bool>, Query, description = "CSV only: true (default) starts with a UTF-8 byte order mark for Excel; false omits it")),
    responses((status = 200, description = "The quarantined clients (JSON, text or CSV)", body = QuarantineList)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<ApiState>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let mut format = "json".to_string();
    let mut bom = true;
    for (k, v) in check_keys(pairs, &["format", super::csv_export::PARAM])? {
        if k == super::csv_export::PARAM {
            bom = super::csv_export::parse_bom(&v)?;
            continue;
        }
        if !matches!(v.as_str(), "json" | "txt" | "csv") {
            return Err(ApiError::bad_param(
                "format",
                format!("`{v}` is not json, txt or csv"),
            ));
        }
        format = v;
    }
    let items = state.store.quarantine_list().await?;
    let quarantine = &state.accountability.quarantine;
    let following = |e: &poolguard_store::incidents::QuarantineEntry| -> Vec<String> {
        e.ip.parse()
            .map(|ip| quarantine.followed_from(ip))
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    Ok(match format.as_str() {
        "txt" => {
            // Every address an edge device should hold back, followed ones included.
            let body: String = items
                .iter()
                .flat_map(|e| std::iter::once(e.ip.clone()).chain(following(e)))
                .map(|ip| format!("{ip}\n"))
                .collect();
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
        }
        "csv" => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let mut write = || -> Result<Vec<u8>, csv::Error> {
                w.write_record(["ip", "since", "actor", "reason", "incident_id"])?;
                for e in &items {
                    let inc = e.incident_id.map(|i| i.to_string()).unwrap_or_default();
                    let rec = [&e.ip, &e.since, &e.actor, &e.reason, &inc];
                    w.write_record(rec.iter().map(|c| neutralise(c).into_owned()))?;
                }
                w.flush()?;
                Ok(w.get_ref().clone())
            };
            let body = write()
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            super::csv_export::response(body, bom)
        }
        _ => Json(QuarantineList {
            items: items
                .into_iter()
                .map(|e| {
                    let following = following(&e);
                    QuarantineEntry {
                        following,
                        ..QuarantineEntry::from(e)
                    }
                })
                .collect(),
        })
        .into_response(),
    })
}

/// Quarantines an address now (201; 200 when it already was).
#[utoipa::path(post, path = "/api/v1/quarantine", request_body = QuarantineRequest,
    operation_id = "quarantineClient", tag = "quarantine",
    responses((status = 201, description = "The client is now quarantined", body = QuarantineEntry), (status = 200, description = "The client was already quarantined; nothing changed", body = QuarantineEntry),
              (status = 400, description = "Bad parameter or body; `error` names it", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn add(
    State(state): State<ApiState>,
    caller: Option<axum::Extension<Caller>>,
    body: Result<Json<QuarantineRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<QuarantineEntry>), ApiError> {
    let Json(r) = body.map_err(|e| ApiError::bad_param("body", e.body_text()))?;
    let ip = parse_ip(&r.ip)?;
    let reason = r.reason.unwrap_or_default().trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::bad_param(
            "reason",
            "a reason of 1 to 500 characters is required",
        ));
    }
    let acc = state.accountability.clone();
    let add = QuarantineAdd {
        ip,
        reason,
        incident_id: r.incident_id,
        actor: caller_of(caller),
        now_ms: acc.clock.now_ms(),
    };
    let (added, entry) = state.store.quarantine_add(add).await?;
    acc.quarantine.insert_target(ip);
    if !added {
        return Ok((StatusCode::OK, Json(QuarantineEntry::from(entry))));
    }
    tracing::info!(client = %entry.ip, actor = %entry.actor, "client quarantined via API");
    let mut ev = AlertEvent {
        event: "quarantine.on",
        time: entry.since.clone(),
        incident_id: entry.incident_id,
        client: Some(entry.ip.clone()),
        detail: serde_json::Value::Null,
    };
    ev.detail = serde_json::json!({ "reason": entry.reason, "applied": true, "by": entry.actor });
    acc.alerts.emit(ev);
    Ok((StatusCode::CREATED, Json(QuarantineEntry::from(entry))))
}

/// Why a release happens.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// The client address (for `DELETE /api/v1/quarantine`; the path form has it in the path).
    #[serde(default)]
    pub ip: Option<String>,
    /// Why the client may go back online.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Releases an address given in the path (`?reason=` optional).
#[utoipa::path(delete, path = "/api/v1/quarantine/{ip}",
    operation_id = "releaseClient", tag = "quarantine",
    params(("ip" = String, Path, description = "Client address"), ("reason" = Option<String>, Query)),
    responses((status = 200, description = "The client is released", body = QuarantineEntry), (status = 404, description = "The client is not quarantined", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn release_path(
    State(state): State<ApiState>,
    Path(ip): Path<String>,
    caller: Option<axum::Extension<Caller>>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<QuarantineEntry>, ApiError> {
    let reason = check_keys(pairs, &["reason"])?
        .into_iter()
        .next()
        .map(|(_, v)| v);
    release(state, parse_ip(&ip)?, reason, caller).await
}

/// Releases the address in the JSON body `{"ip": …, "reason": …}`.
#[utoipa::path(delete, path = "/api/v1/quarantine", request_body = ReleaseRequest,
    operation_id = "releaseClientByBody", tag = "quarantine",
    responses((status = 200, description = "The client is released", body = QuarantineEntry), (status = 404, description = "The client is not quarantined", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn release_body(
    State(state): State<ApiState>,
    caller: Option<axum::Extension<Caller>>,
    body: Result<Json<ReleaseRequest>, JsonRejection>,
) -> Result<Json<QuarantineEntry>, ApiError> {
    let Json(r) = body.map_err(|e| ApiError::bad_param("body", e.body_text()))?;
    let ip =
        r.ip.ok_or_else(|| ApiError::bad_param("ip", "the address to release is required"))?;
    release(state, parse_ip(&ip)?, r.reason, caller).await
}

async fn release(
    state: ApiState,
    ip: IpNet,
    reason: Option<String>,
    caller: Option<axum::Extension<Caller>>,
) -> Result<Json<QuarantineEntry>, ApiError> {
    let acc = state.accountability.clone();
    let now = acc.clock.now_ms();
    let reason = reason
        .unwrap_or_default()
        .trim()
        .chars()
        .take(500)
        .collect::<String>();
    let actor = caller_of(caller);
    let who = actor.name.clone();
    // An address the quarantine followed a device to is released with the device's entry.
    let host = (ip.prefix_len() == ip.max_prefix_len()).then(|| ip.addr());
    let ip = match host.and_then(|h| acc.quarantine.origin_of(h)) {
        Some(origin) => IpNet::from(origin),
        None => ip,
    };
    let release = QuarantineRelease {
        ip,
        reason: reason.clone(),
        actor,
        now_ms: now,
    };
    let removed = state.store.quarantine_release(release).await?;
    let Some(entry) = removed else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "{} is not quarantined",
                poolguard_model::net::target_text(&ip)
            ),
        ));
    };
    acc.quarantine.remove_target(ip);
    tracing::info!(client = %entry.ip, actor = %who, "client released from quarantine");
    acc.alerts.emit(AlertEvent {
        event: "quarantine.off",
        time: poolguard_model::rfc3339(now),
        incident_id: entry.incident_id,
        client: Some(entry.ip.clone()),
        detail: serde_json::json!({ "reason": reason, "by": who }),
    });
    Ok(Json(QuarantineEntry::from(entry)))
}
