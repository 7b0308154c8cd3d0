//! Maintainers' edits of a feed: list and read, upload, patch entries, delete, enable/disable.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Failure, Refused, audit, blocking, body, registry, true_or_false, who};
use crate::auth::Caller;
use crate::views::{FeedView, WriteReport};
use crate::{ApiError, ApiState};
use poolguard_feeds::registry::{FeedSettings, RegistryError};

fn enum_param<T: serde::de::DeserializeOwned>(
    name: &'static str,
    value: &str,
    allowed: &str,
) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(value.trim().to_ascii_lowercase()))
        .map_err(|_| ApiError::bad_param(name, format!("`{value}` is not one of {allowed}")))
}

fn settings(params: &HashMap<String, String>) -> Result<FeedSettings, ApiError> {
    let mut s = FeedSettings::default();
    for (k, v) in params {
        match k.as_str() {
            "format" => {
                s.format = Some(enum_param(
                    "format",
                    v,
                    "auto, plain, hosts, adblock, dnsmasq, rpz, wildcard, ip, url, suricata",
                )?)
            }
            "kind" => s.kind = Some(enum_param("kind", v, "domains, ips, allow")?),
            "action" => {
                s.action = Some(enum_param(
                    "action",
                    v,
                    "refuse, nxdomain, nodata, sinkhole",
                )?)
            }
            "severity" => {
                s.severity = Some(enum_param("severity", v, "low, medium, high, critical")?)
            }
            "category" => {
                let c = v.trim();
                if c.is_empty()
                    || c.len() > 64
                    || !c
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                {
                    return Err(ApiError::bad_param(
                        "category",
                        "1-64 letters, digits, '-' or '_'",
                    ));
                }
                s.category = Some(c.to_string());
            }
            _ => {
                return Err(ApiError::bad_param(
                    "query",
                    format!(
                        "unknown parameter `{k}` (format, kind, action, category, severity, verbose)"
                    ),
                ));
            }
        }
    }
    Ok(s)
}

/// Every feed: kind, format, source, action, category, severity, enabled, counts, the version
/// in force and the last load (and fetch) result.
#[utoipa::path(get, path = "/api/v1/feeds",
    operation_id = "listFeeds", tag = "feeds",
    responses((status = 200, description = "Every feed with its status", body = [FeedView])), security(("bearer" = [])))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<Vec<FeedView>>, Failure> {
    let r = registry(&state)?;
    Ok(Json(crate::views::all(
        blocking(move || Ok::<_, RegistryError>(r.list())).await?,
    )))
}

/// One feed's status.
#[utoipa::path(get, path = "/api/v1/feeds/{name}",
    operation_id = "getFeed", tag = "feeds",
    params(("name" = String, Path)),
    responses((status = 200, description = "The feed's status", body = FeedView), (status = 404, description = "No such feed", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn one(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<FeedView>, Failure> {
    let r = registry(&state)?;
    Ok(Json(blocking(move || r.get(&name)).await?.into()))
}

/// Creates the feed or replaces its content: the body is the list, in any format.
#[utoipa::path(put, path = "/api/v1/feeds/{name}",
    operation_id = "putFeed", tag = "feeds",
    params(("name" = String, Path), ("format" = Option<String>, Query), ("kind" = Option<String>, Query),
           ("action" = Option<String>, Query), ("category" = Option<String>, Query), ("severity" = Option<String>, Query),
           ("verbose" = Option<bool>, Query, description = "also list the skipped lines by number, with why")),
    request_body(content = String, content_type = "text/plain"),
    responses((status = 200, description = "The feed is stored and in force", body = WriteReport), (status = 413, description = "The body is over `[api] max_upload_mb`", body = crate::error::ErrorBody),
              (status = 422, description = "Lines were rejected; nothing was stored", body = Refused), (status = 409, description = "The feed is a subscription: its next fetch replaces its content", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<ApiState>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    content: Result<Bytes, BytesRejection>,
) -> Result<Json<WriteReport>, Failure> {
    let r = registry(&state)?;
    let content = body(content, r.config().api.max_upload_mb)?;
    let mut params = params;
    let verbose = true_or_false("verbose", params.remove("verbose").as_deref())?;
    let settings = settings(&params)?;
    let (who_name, _) = who(&caller);
    let n = name.clone();
    let mut report = blocking(move || r.upload(&n, &content, settings, &who_name))
        .await
        .map_err(|f| match f {
            Failure::Registry(RegistryError::Unusable {
                message,
                mut report,
            }) if verbose => {
                report.verbose();
                Failure::Registry(RegistryError::Unusable { message, report })
            }
            f => f,
        })?;
    if verbose {
        report.verbose();
    }
    metrics::counter!("poolguard_feed_writes_total", "action" => "upload").increment(1);
    audit(
        &state,
        &caller,
        "feed.upload",
        &name,
        report.before_sha256.clone(),
        report.version.as_ref().map(|v| v.sha256.clone()),
        format!(
            "{} accepted, {} rejected, {} skipped",
            report.accepted,
            report.rejected.len(),
            report.skipped
        ),
    )
    .await?;
    Ok(Json(report.into()))
}

/// `PATCH …/entries` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntriesPatch {
    /// Entries to append (names, `=exact` names, addresses, prefixes).
    #[serde(default)]
    pub add: Vec<String>,
    /// Entries whose lines are removed (matched by line text or by the name a line lists).
    #[serde(default)]
    pub remove: Vec<String>,
}

/// The result of a patch.
#[derive(Debug, Serialize, ToSchema)]
pub struct PatchReport {
    /// The write report of the new content.
    #[serde(flatten)]
    pub report: WriteReport,
    /// Entries of `remove` found in no line.
    pub not_found: Vec<String>,
}

/// Adds and removes entries without re-uploading the list.
#[utoipa::path(patch, path = "/api/v1/feeds/{name}/entries",
    operation_id = "patchFeedEntries", tag = "feeds",
    params(("name" = String, Path)), request_body = EntriesPatch,
    responses((status = 200, description = "Entries added and removed; the feed is in force", body = PatchReport), (status = 422, description = "Entries were rejected; nothing was changed", body = Refused)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<ApiState>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
    Json(p): Json<EntriesPatch>,
) -> Result<Json<PatchReport>, Failure> {
    let r = registry(&state)?;
    if p.add.is_empty() && p.remove.is_empty() {
        return Err(ApiError::bad_param("add", "give `add` and/or `remove` entries").into());
    }
    let (who_name, _) = who(&caller);
    let n = name.clone();
    let (add, remove) = (p.add.len(), p.remove.len());
    let (report, not_found) = blocking(move || r.patch(&n, &p.add, &p.remove, &who_name)).await?;
    metrics::counter!("poolguard_feed_writes_total", "action" => "patch").increment(1);
    audit(
        &state,
        &caller,
        "feed.patch",
        &name,
        report.before_sha256.clone(),
        report.version.as_ref().map(|v| v.sha256.clone()),
        format!(
            "{add} added, {} of {remove} removed",
            remove - not_found.len()
        ),
    )
    .await?;
    Ok(Json(PatchReport {
        report: report.into(),
        not_found,
    }))
}

/// Deletes a feed created over the API (config.toml feeds: 409, disable them instead).
#[utoipa::path(delete, path = "/api/v1/feeds/{name}",
    operation_id = "deleteFeed", tag = "feeds",
    params(("name" = String, Path)),
    responses((status = 204, description = "The feed is deleted"), (status = 404, description = "No such feed", body = crate::error::ErrorBody), (status = 409, description = "The feed is defined in config.toml and cannot be deleted here", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<ApiState>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
) -> Result<StatusCode, Failure> {
    let r = registry(&state)?;
    let (who_name, _) = who(&caller);
    let n = name.clone();
    let before = blocking(move || r.delete(&n, &who_name)).await?;
    metrics::counter!("poolguard_feed_writes_total", "action" => "delete").increment(1);
    audit(
        &state,
        &caller,
        "feed.delete",
        &name,
        before,
        None,
        String::new(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(
    state: ApiState,
    caller: Option<Extension<Caller>>,
    name: String,
    enabled: bool,
) -> Result<Json<FeedView>, Failure> {
    let r = registry(&state)?;
    let n = name.clone();
    let (who_name, _) = who(&caller);
    let view = blocking(move || r.set_enabled(&n, enabled, &who_name)).await?;
    let action = if enabled {
        "feed.enable"
    } else {
        "feed.disable"
    };
    audit(&state, &caller, action, &name, None, None, String::new()).await?;
    Ok(Json(view.into()))
}

/// Puts a disabled feed back into the policy.
#[utoipa::path(post, path = "/api/v1/feeds/{name}/enable", params(("name" = String, Path)),
    operation_id = "enableFeed", tag = "feeds",
    responses((status = 200, description = "The feed is enabled", body = FeedView)), security(("bearer" = [])))]
pub async fn enable(
    State(state): State<ApiState>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
) -> Result<Json<FeedView>, Failure> {
    set_enabled(state, caller, name, true).await
}

/// Takes a feed out of the policy without deleting it (also for config.toml feeds).
#[utoipa::path(post, path = "/api/v1/feeds/{name}/disable", params(("name" = String, Path)),
    operation_id = "disableFeed", tag = "feeds",
    responses((status = 200, description = "The feed is disabled", body = FeedView)), security(("bearer" = [])))]
pub async fn disable(
    State(state): State<ApiState>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
) -> Result<Json<FeedView>, Failure> {
    set_enabled(state, caller, name, false).await
}
