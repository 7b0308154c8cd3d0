//! `GET /api/v1/stats`: what happened in a time window, for the security desk's dashboard.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::lists::{check_keys, parse_time};
use super::{ApiError, ApiState};
use crate::views::{Count, all};
use poolguard_model::rfc3339;

/// Longest window a stats request may cover; bounds the rows one request aggregates.
const MAX_WINDOW_MS: i64 = 31 * 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// The default `since`: the top of the hour 24 hours before `until` (a window of 24 to 25
/// hours, stated in the response). Whole hours are answered from the rollups, so the default
/// window reads only the hour under way from the log; a window starting mid-hour also reads
/// that hour's part, which at a campus's billion rows a week was most of the request (issue
/// 18). The console's dashboards align their windows to the hour the same way.
fn default_since(until: i64) -> i64 {
    (until - 86_400_000).div_euclid(HOUR_MS) * HOUR_MS
}

/// Query parameters of `/stats`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct StatsParams {
    /// RFC 3339, inclusive; default the top of the hour 24 h before `until` (24 to 25 h:
    /// whole hours are answered from the rollups).
    since: Option<String>,
    /// RFC 3339, exclusive; default now.
    until: Option<String>,
    /// Rows in each top table, 1–100 (default 10).
    top: Option<u32>,
    /// `group` (default): with several nodes, the query counts of every node's own log;
    /// `node`: this node's only.
    scope: Option<String>,
}

/// The stats document.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsResponse {
    pub since: String,
    pub until: String,
    pub queries_by_action: Vec<Count>,
    pub hits_by_action: Vec<Count>,
    pub top_blocked_names: Vec<Count>,
    pub top_clients: Vec<Count>,
    pub top_departments: Vec<Count>,
    /// Hits per feed (the list that matched), largest first.
    pub top_feeds: Vec<Count>,
    /// Nodes of the group whose query counts are missing (they did not answer), each with
    /// why; absent when every node answered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<String>,
}

/// Totals by action, top blocked names, clients, departments and feeds in a window (≤ 31 days).
///
/// Totals are exact to the millisecond. Whole hours come from hourly rollups that keep each
/// hour's 1,000 largest names and clients, so over many hours a name or client outside some
/// hour's 1,000 largest may be counted low; the heaviest rank right.
#[utoipa::path(get, path = "/api/v1/stats", params(StatsParams),
    operation_id = "getStats", tag = "stats",
    responses((status = 200, description = "Counts by action and the top tables for the window", body = StatsResponse), (status = 400, description = "Bad parameter or body; `error` names it", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn stats(
    State(state): State<ApiState>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<StatsResponse>, ApiError> {
    let mut since = None;
    let mut until = None;
    let mut top = 10usize;
    let (pairs, group_wide) = super::group_log::take_scope(pairs)?;
    for (k, v) in check_keys(Ok(Query(pairs)), &["since", "until", "top"])? {
        match k {
            "since" => since = Some(parse_time("since", v.trim())?),
            "until" => until = Some(parse_time("until", v.trim())?),
            _ => {
                top = v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_param("top", format!("`{v}` is not a number from 1 to 100"))
                    })?;
            }
        }
    }
    let until = until.unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    let since = since.unwrap_or_else(|| default_since(until));
    if since >= until {
        return Err(ApiError::bad_param(
            "until",
            "`until` must be after `since`",
        ));
    }
    if until - since > MAX_WINDOW_MS {
        return Err(ApiError::bad_param(
            "since",
            "the window may be at most 31 days",
        ));
    }
    let s = state.store.stats(since, until, top).await?;
    let (since, until) = (rfc3339(since), rfc3339(until));
    // Hits are the group's in the shared store; the query log is each node's own, so the
    // node asked adds the others' counts (as the group's query log gathers their rows).
    let mut queries_by_action = s.queries_by_action;
    let mut incomplete = Vec::new();
    if let (Some(group), true) = (&state.group, group_wide) {
        let (theirs, missing) = super::group_log::peer_query_counts(group, &since, &until).await;
        incomplete = missing;
        for (value, count) in theirs {
            match queries_by_action.iter_mut().find(|c| c.value == value) {
                Some(c) => c.count += count,
                None => queries_by_action.push(poolguard_store::Count { value, count }),
            }
        }
        queries_by_action.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    }
    Ok(Json(StatsResponse {
        since,
        until,
        incomplete,
        queries_by_action: all(queries_by_action),
        hits_by_action: all(s.hits_by_action),
        top_blocked_names: all(s.top_blocked_names),
        top_clients: all(s.top_clients),
        top_departments: all(s.top_departments),
        top_feeds: all(s.top_feeds),
    }))
}
