//! `GET /api/v1/reports/summary` (the information centre's bulletin) and
//! `GET /api/v1/alerts/deliveries` (did the SIEM get our webhooks?).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::lists::{check_keys, parse_time};
use super::{ApiError, ApiState};
use crate::views::{Delivery, Summary};
use poolguard_incidents::report;
use poolguard_store::Cursor;

/// Default bulletin period: one week.
const DEFAULT_PERIOD_MS: i64 = 7 * 24 * 3600 * 1000;
/// Longest bulletin period: bounds the work of one request.
const MAX_PERIOD_MS: i64 = 366 * 24 * 3600 * 1000;

/// Hits, incidents by department, top offenders and new names of `[since, until)`
/// (default: the last 7 days); `format=json` (default), `html` or `csv`.
#[utoipa::path(get, path = "/api/v1/reports/summary",
    operation_id = "getSummaryReport", tag = "reports",
    params(("since" = Option<String>, Query, description = "RFC 3339, inclusive"),
           ("until" = Option<String>, Query, description = "RFC 3339, exclusive; default now"),
           ("format" = Option<String>, Query, description = "json, html or csv"),
           ("lang" = Option<String>, Query, description = "html: en or zh-CN; default `[reports] language`"),
           ("bom" = Option<bool>, Query, description = "CSV only: true (default) starts with a UTF-8 byte order mark for Excel; false omits it")),
    responses((status = 200, description = "The summary (JSON, HTML or CSV)", body = Summary), (status = 400, description = "Bad parameter or body; `error` names it", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn summary(
    State(state): State<ApiState>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let now = state.accountability.clock.now_ms();
    let (mut since, mut until, mut format) = (None, None, "json".to_string());
    let mut bom = true;
    let mut lang = state.accountability.reports.language;
    for (k, v) in check_keys(
        pairs,
        &["since", "until", "format", "lang", super::csv_export::PARAM],
    )? {
        match k {
            "lang" => {
                lang = poolguard_config::reports::Language::parse(v.trim()).ok_or_else(|| {
                    ApiError::bad_param(
                        "lang",
                        format!(
                            "`{v}` is not one of {}",
                            poolguard_config::reports::Language::TAGS
                        ),
                    )
                })?
            }
            "since" => since = Some(parse_time("since", v.trim())?),
            "until" => until = Some(parse_time("until", v.trim())?),
            super::csv_export::PARAM => bom = super::csv_export::parse_bom(&v)?,
            _ => {
                if !matches!(v.as_str(), "json" | "html" | "csv") {
                    return Err(ApiError::bad_param(
                        "format",
                        format!("`{v}` is not json, html or csv"),
                    ));
                }
                format = v;
            }
        }
    }
    let until = until.unwrap_or(now);
    let since = since.unwrap_or(until - DEFAULT_PERIOD_MS);
    if since >= until {
        return Err(ApiError::bad_param(
            "until",
            "`until` must be after `since`",
        ));
    }
    if until - since > MAX_PERIOD_MS {
        return Err(ApiError::bad_param(
            "since",
            "the period is at most 366 days",
        ));
    }
    let mut s = state.store.summary(since, until, now).await?;
    s.added = poolguard_store::summary::added(&state.listings, since, until);
    Ok(match format.as_str() {
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            report::summary_html(&s, lang),
        )
            .into_response(),
        "csv" => {
            let body = report::summary_csv(&s)
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            super::csv_export::response(body, bom)
        }
        _ => Json(Summary::from(s)).into_response(),
    })
}

/// A page of delivery attempts, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    /// Pass as `cursor` for the next (older) page; null at the end.
    pub next_cursor: Option<String>,
}

/// Every webhook / syslog delivery attempt, newest first (`limit` ≤ 1000, `cursor`).
#[utoipa::path(get, path = "/api/v1/alerts/deliveries",
    operation_id = "listAlertDeliveries", tag = "alerts",
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "One page of alert deliveries, newest first", body = DeliveryPage), (status = 400, description = "Bad parameter or body; `error` names it", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn deliveries(
    State(state): State<ApiState>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let (mut limit, mut before) = (100usize, None);
    for (k, v) in check_keys(pairs, &["limit", "cursor"])? {
        if k == "limit" {
            limit = v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| ApiError::bad_param("limit", "must be 1 to 1000"))?;
        } else {
            before = Some(Cursor(v));
        }
    }
    let page = state.store.deliveries(limit, before).await?;
    Ok(Json(DeliveryPage {
        items: crate::views::all(page.items),
        next_cursor: page.next.map(|c| c.0),
    }))
}
