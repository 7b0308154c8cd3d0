//! Feed maintainers' endpoints: list, upload, patch, delete, enable/disable, versions and
//! rollback, subscription refresh; plus `check`, `publish` and the asset-ledger upload.
//!
//! Handlers only translate HTTP: every write runs [`Registry`]'s one write path on the blocking
//! pool (file I/O, parsing and compiling never run on an async worker), then lands in the audit
//! log with the content hashes before and after. Uploads have their own body limit
//! (`[api] max_upload_mb`, 413 past it) instead of the API's global 1 MiB.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{self, Caller, Permission};
use super::{ApiError, ApiState};
use poolguard_clients::LoadReport;
use poolguard_feeds::publish::PublishFormat;
use poolguard_feeds::registry::{
    FeedSettings, FeedView, LedgerWrite, Registry, RegistryError, WriteReport,
};
use poolguard_feeds::subscribe::{self, FetchResult};
use poolguard_feeds::versions::Version;
use poolguard_store::audit::AuditEntry;

/// The feed, check, publish and ledger-upload routes, with their own body limit.
pub(crate) fn routes(state: &ApiState) -> Router<ApiState> {
    let max_upload_mb = state
        .feeds
        .as_ref()
        .map_or(64, |r| r.config().api.max_upload_mb);
    let max_upload = max_upload_mb.saturating_mul(1 << 20) as usize;
    let public_publish = state
        .feeds
        .as_ref()
        .is_some_and(|r| r.config().api.public_publish);
    let read = Router::new()
        .route("/api/v1/feeds", get(list))
        .route("/api/v1/feeds/{name}", get(one))
        .route("/api/v1/feeds/{name}/versions", get(versions))
        .route("/api/v1/feeds/{name}/versions/{id}", get(version_content))
        .route("/api/v1/check", get(check));
    let write = Router::new()
        .route("/api/v1/feeds/{name}", put(upload).delete(delete))
        .route("/api/v1/feeds/{name}/entries", axum::routing::patch(patch))
        .route("/api/v1/feeds/{name}/enable", post(enable))
        .route("/api/v1/feeds/{name}/disable", post(disable))
        .route("/api/v1/feeds/{name}/versions/{id}/restore", post(restore))
        .route("/api/v1/feeds/{name}/refresh", post(refresh));
    let admin = Router::new()
        .route("/api/v1/clients/ledger", put(put_ledger))
        .route("/api/v1/clients/ledger/versions", get(ledger_versions))
        .route(
            "/api/v1/clients/ledger/versions/{id}",
            get(ledger_version_content),
        )
        .route(
            "/api/v1/clients/ledger/versions/{id}/restore",
            post(restore_ledger),
        );
    let publish_routes = Router::new().route("/api/v1/publish/{format}", get(publish));
    let publish_routes = if public_publish {
        publish_routes
    } else {
        auth::guard(publish_routes, state, Permission::ReadEvidence)
    };
    let read = auth::guard(read, state, Permission::ReadEvidence);
    let write = auth::guard(write, state, Permission::WriteFeeds);
    let admin = auth::guard(admin, state, Permission::Admin);
    read.merge(write)
        .merge(admin)
        .merge(publish_routes)
        .layer(DefaultBodyLimit::max(max_upload))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                refuse_oversized(max_upload_mb, req, next)
            },
        ))
}

/// Refuses an upload whose `Content-Length` is over the limit before its body is read. A
/// client that waits for `100 Continue` (curl does for large bodies) then never sends the
/// body, and no client sees its upload cut off by a reset instead of the 413: without this,
/// the body was read until the limit tripped and the connection closed with the rest unread.
/// Bodies without a length (chunked) are still cut at the limit by `DefaultBodyLimit`.
async fn refuse_oversized(
    limit_mb: u64,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit_mb.saturating_mul(1 << 20)) {
        return axum::response::IntoResponse::into_response(too_large(limit_mb));
    }
    next.run(req).await
}

fn too_large(limit_mb: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is over [api] max_upload_mb = {limit_mb} MiB"),
    )
}

fn registry(state: &ApiState) -> Result<Arc<Registry>, ApiError> {
    state.feeds.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "feeds are not managed by this process",
        )
    })
}

fn who(caller: &Option<Extension<Caller>>) -> (String, String) {
    caller
        .as_ref()
        .map(|c| (c.0.name.clone(), format!("{:?}", c.0.role).to_lowercase()))
        .unwrap_or_else(|| ("anonymous".into(), String::new()))
}

/// Runs registry work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| {
            Failure::Api(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("task failed: {e}"),
            ))
        })?
        .map_err(Failure::Registry)
}

/// A handler failure: an API error, or a registry error with its own status mapping
/// (422 carries the parse report, so a maintainer sees every rejected line).
pub enum Failure {
    /// Already an HTTP error.
    Api(ApiError),
    /// From the write path; mapped in `into_response`.
    Registry(RegistryError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl From<poolguard_store::StoreError> for Failure {
    fn from(e: poolguard_store::StoreError) -> Self {
        Failure::Api(e.into())
    }
}

/// The 422 body: the error plus the parse report (every rejected line).
#[derive(Debug, Serialize, ToSchema)]
pub struct Refused {
    /// What to fix.
    pub error: String,
    /// The parse report.
    #[serde(flatten)]
    pub report: WriteReport,
}

/// The 422 body of a refused ledger.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerRefused {
    /// What to fix.
    pub error: String,
    /// Rows loaded (0) and every rejected row.
    #[serde(flatten)]
    pub report: LoadReport,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let e = match self {
            Failure::Api(e) => return e.into_response(),
            Failure::Registry(e) => e,
        };
        match e {
            RegistryError::BadName(_) => ApiError::bad_param("name", e.to_string()).into_response(),
            RegistryError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m).into_response(),
            RegistryError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m).into_response(),
            RegistryError::BadRequest(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, m).into_response()
            }
            RegistryError::Unusable { message, report } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(Refused {
                    error: message,
                    report: *report,
                }),
            )
                .into_response(),
            RegistryError::LedgerRefused { message, report } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(LedgerRefused {
                    error: message,
                    report,
                }),
            )
                .into_response(),
            other => {
                tracing::error!(error = %other, "feed write failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{other}; see the server log"),
                )
                .into_response()
            }
        }
    }
}

async fn audit(
    state: &ApiState,
    caller: &Option<Extension<Caller>>,
    action: &str,
    target: &str,
    before: Option<String>,
    after: Option<String>,
    detail: String,
) -> Result<(), Failure> {
    let (name, role) = who(caller);
    let mut entry = AuditEntry::now(&name, &role, action, target);
    entry.before_hash = before;
    entry.after_hash = after;
    entry.detail = detail;
    state.store.audit(entry).await?;
    Ok(())
}

fn body(b: Result<Bytes, BytesRejection>, limit_mb: u64) -> Result<Bytes, ApiError> {
    b.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(limit_mb)
        } else {
            ApiError::new(r.status(), r.body_text())
        }
    })
}

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
    Ok(Json(blocking(move || Ok(r.list())).await?))
}

/// One feed's status.
#[utoipa::path(get, path = "/api/v1/feeds/{name}",
    operation_id = "getFeed", tag = "feeds",
    params(("name" = String, Path)),
    responses((status = 200, description = "The feed's status", body = FeedView), (status = 404, description = "No such feed", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn one(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<FeedView>, Failure> {
    let r = registry(&state)?;
    Ok(Json(blocking(move || r.get(&name)).await?))
}

/// Creates the feed or replaces its content: the body is the list, in any format.
#[utoipa::path(put, path = "/api/v1/feeds/{name}",
    operation_id = "putFeed", tag = "feeds",
    params(("name" = String, Path), ("format" = Option<String>, Query), ("kind" = Option<String>, Query),
           ("action" = Option<String>, Query), ("category" = Option<String>, Query), ("severity" = Option<String>, Query),
           ("verbose" = Option<bool>, Query, description = "also list the skipped lines by number, with why")),
    request_body(content = String, content_type = "text/plain"),
    responses((status = 200, description = "The feed is stored and in force", body = WriteReport), (status = 413, description = "The body is over `[api] max_upload_mb`", body = super::error::ErrorBody),
              (status = 422, description = "Lines were rejected; nothing was stored", body = Refused), (status = 409, description = "The feed is a subscription: its next fetch replaces its content", body = super::error::ErrorBody)),
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
    Ok(Json(report))
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
    Ok(Json(PatchReport { report, not_found }))
}

/// Deletes a feed created over the API (config.toml feeds: 409, disable them instead).
#[utoipa::path(delete, path = "/api/v1/feeds/{name}",
    operation_id = "deleteFeed", tag = "feeds",
    params(("name" = String, Path)),
    responses((status = 204, description = "The feed is deleted"), (status = 404, description = "No such feed", body = super::error::ErrorBody), (status = 409, description = "The feed is defined in config.toml and cannot be deleted here", body = super::error::ErrorBody)),
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
    let view = blocking(move || r.set_enabled(&n, enabled)).await?;
    let action = if enabled {
        "feed.enable"
    } else {
        "feed.disable"
    };
    audit(&state, &caller, action, &name, None, None, String::new()).await?;
    Ok(Json(view))
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

/// The kept versions of a feed, newest first.
#[utoipa::path(get, path = "/api/v1/feeds/{name}/versions", params(("name" = String, Path)),
    operation_id = "listFeedVersions", tag = "feeds",
    responses((status = 200, description = "The kept versions, newest first", body = [Version])), security(("bearer" = [])))]
pub async fn versions(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<Version>>, Failure> {
    let r = registry(&state)?;
    Ok(Json(blocking(move || r.versions_of(&name)).await?))
}

/// The content of one version, as it was uploaded.
#[utoipa::path(get, path = "/api/v1/feeds/{name}/versions/{id}",
    operation_id = "getFeedVersion", tag = "feeds",
    params(("name" = String, Path), ("id" = u64, Path)),
    responses((status = 200, description = "The version's content as uploaded", content_type = "text/plain", body = String), (status = 404, description = "No such feed or version", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn version_content(
    State(state): State<ApiState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let r = registry(&state)?;
    let id = version_id(&id)?;
    let bytes = blocking(move || r.version_content(&name, id)).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], bytes).into_response())
}

fn version_id(id: &str) -> Result<u64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_param("id", format!("`{id}` is not a version id")))
}

/// Rolls the feed back to version `id` (recorded as a new version, so it can be undone).
#[utoipa::path(post, path = "/api/v1/feeds/{name}/versions/{id}/restore",
    operation_id = "restoreFeedVersion", tag = "feeds",
    params(("name" = String, Path), ("id" = u64, Path)),
    responses((status = 200, description = "The version is restored and in force", body = WriteReport), (status = 404, description = "No such feed or version", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn restore(
    State(state): State<ApiState>,
    caller: Option<Extension<Caller>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<WriteReport>, Failure> {
    let r = registry(&state)?;
    let id = version_id(&id)?;
    let (who_name, _) = who(&caller);
    let n = name.clone();
    let report = blocking(move || r.restore(&n, id, &who_name)).await?;
    metrics::counter!("poolguard_feed_writes_total", "action" => "restore").increment(1);
    audit(
        &state,
        &caller,
        "feed.restore",
        &name,
        report.before_sha256.clone(),
        report.version.as_ref().map(|v| v.sha256.clone()),
        format!("restored version {id}"),
    )
    .await?;
    Ok(Json(report))
}

/// The result of a manual refresh.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshReport {
    /// `updated`, `not_modified` or `failed`.
    pub result: String,
    /// Entries in force after an update.
    pub accepted: Option<usize>,
    /// Why it failed (the last good copy stays in force).
    pub error: Option<String>,
}

/// Fetches a subscription now.
#[utoipa::path(post, path = "/api/v1/feeds/{name}/refresh", params(("name" = String, Path)),
    operation_id = "refreshFeed", tag = "feeds",
    responses((status = 200, description = "The subscription was fetched", body = RefreshReport), (status = 409, description = "The feed is not a subscription", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn refresh(
    State(state): State<ApiState>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
) -> Result<Json<RefreshReport>, Failure> {
    let r = registry(&state)?;
    if !poolguard_config::valid_feed_name(&name) {
        return Err(Failure::Registry(RegistryError::BadName(name)));
    }
    let result = subscribe::fetch(&r, &name)
        .await
        .map_err(Failure::Registry)?;
    let (report, before, after) = match result {
        FetchResult::Updated {
            accepted,
            before,
            after,
        } => (
            RefreshReport {
                result: "updated".into(),
                accepted: Some(accepted),
                error: None,
            },
            before,
            Some(after),
        ),
        FetchResult::NotModified => (
            RefreshReport {
                result: "not_modified".into(),
                accepted: None,
                error: None,
            },
            None,
            None,
        ),
        FetchResult::Failed(e) => (
            RefreshReport {
                result: "failed".into(),
                accepted: None,
                error: Some(e),
            },
            None,
            None,
        ),
    };
    audit(
        &state,
        &caller,
        "feed.refresh",
        &name,
        before,
        after,
        report.result.clone(),
    )
    .await?;
    Ok(Json(report))
}

/// What DNS would do with a name for a client (the DNS path's own decision code), and who the
/// client is; with `resolve=true` the name is resolved and its answer inspected.
#[utoipa::path(get, path = "/api/v1/check",
    operation_id = "checkName", tag = "check",
    params(("name" = String, Query, description = "the name to check"),
           ("client" = Option<String>, Query, description = "the client address to decide for (allow list, quarantine); default any allowed client"),
           ("type" = Option<String>, Query, description = "record type, default A"),
           ("resolve" = Option<bool>, Query, description = "resolve a forwarded name and inspect its answer")),
    responses((status = 200, description = "What DNS would do with the name for the client", body = super::check::CheckAnswer),
              (status = 400, description = "Bad parameter or body; `error` names it", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn check(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<super::check::CheckAnswer>, Failure> {
    let r = registry(&state)?;
    let name = params
        .get("name")
        .cloned()
        .ok_or_else(|| ApiError::bad_param("name", "give the name to check"))?;
    let client: Option<IpAddr> = match params.get("client") {
        Some(c) => Some(
            c.trim()
                .parse::<IpAddr>()
                .map_err(|_| ApiError::bad_param("client", format!("`{c}` is not an IP address")))?
                .to_canonical(),
        ),
        None => None,
    };
    let qtype = super::check::qtype(params.get("type"))?;
    let resolve = true_or_false("resolve", params.get("resolve").map(String::as_str))?;
    let ledger = state.ledger.load_full();
    let report = blocking(move || r.check(&name, client.map(|ip| (ip, &*ledger)))).await?;
    Ok(Json(
        super::check::answer(&state, report, client, qtype, resolve).await?,
    ))
}

/// The merged policy as `rpz`, `hosts`, `domains` or `ips`, with an ETag (304 on a match).
#[utoipa::path(get, path = "/api/v1/publish/{format}",
    operation_id = "getPublishedList", tag = "publish",
    params(("format" = String, Path, description = "rpz, hosts, domains or ips")),
    responses((status = 200, description = "The merged block list in the requested format", content_type = "text/plain", body = String), (status = 304, description = "Unchanged since the `If-None-Match` ETag")),
    security((), ("bearer" = [])))]
pub async fn publish(
    State(state): State<ApiState>,
    Path(format): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let r = registry(&state)?;
    let format = PublishFormat::from_name(&format).ok_or_else(|| {
        ApiError::bad_param(
            "format",
            format!("`{format}` is not rpz, hosts, domains or ips"),
        )
    })?;
    let published = blocking(move || Ok(r.publish(format))).await?;
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == published.etag)
        });
    if matches {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, published.etag.clone())],
        )
            .into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (header::ETAG, published.etag.clone()),
            (header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        published.body.clone(),
    )
        .into_response())
}

/// The result of a ledger upload, dry run or restore.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerReport {
    /// Rows read, networks loaded and every rejected row (line number and reason).
    #[serde(flatten)]
    pub report: LoadReport,
    /// True for `?dry_run=true`: nothing was changed, written, versioned or audited.
    pub dry_run: bool,
    /// The version now in force (absent for a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
}

/// `dry_run` and `partial` of a ledger upload.
fn ledger_flags(params: &HashMap<String, String>) -> Result<(bool, bool), ApiError> {
    let (mut dry_run, mut partial) = (false, false);
    for (k, v) in params {
        let flag = match k.as_str() {
            "dry_run" => &mut dry_run,
            "partial" => &mut partial,
            _ => {
                return Err(ApiError::bad_param(
                    "query",
                    format!("unknown parameter `{k}` (dry_run, partial)"),
                ));
            }
        };
        *flag = match v.trim() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => {
                return Err(ApiError::bad_param(
                    if k == "dry_run" { "dry_run" } else { "partial" },
                    "must be true or false",
                ));
            }
        };
    }
    Ok((dry_run, partial))
}

/// A `true`/`false` query parameter (absent = false); anything else is a 400 naming it, so a
/// typo is not silently taken as the default.
fn true_or_false(parameter: &'static str, value: Option<&str>) -> Result<bool, ApiError> {
    match value.map(str::trim) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(ApiError::bad_param(
            parameter,
            format!("`{v}` is not true or false"),
        )),
    }
}

fn ledger_path(state: &ApiState) -> Result<std::path::PathBuf, ApiError> {
    state.ledger_path.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no [clients] ledger is configured; set one in config.toml first",
        )
    })
}

/// Swaps a written ledger in (at once, as a reload does) and audits it.
async fn install_ledger(
    state: &ApiState,
    caller: &Option<Extension<Caller>>,
    write: LedgerWrite,
    action: &str,
    detail: String,
) -> Result<Json<LedgerReport>, Failure> {
    let LedgerWrite {
        ledger,
        report,
        version,
        before_sha256,
    } = write;
    state.ledger.store(Arc::new(ledger));
    metrics::counter!("poolguard_ledger_reloads_total").increment(1);
    audit(
        state,
        caller,
        action,
        "ledger",
        before_sha256,
        Some(version.sha256.clone()),
        detail,
    )
    .await?;
    Ok(Json(LedgerReport {
        report,
        dry_run: false,
        version: Some(version),
    }))
}

/// Replaces the asset ledger (CSV, UTF-8 or GB18030/GBK): written atomically, versioned,
/// swapped in live. An upload that rejects any row is refused whole (422, every row listed)
/// unless `partial=true`; `dry_run=true` only reports. Hits recorded before keep the identity
/// they were recorded with.
#[utoipa::path(put, path = "/api/v1/clients/ledger",
    operation_id = "putLedger", tag = "ledger",
    params(("dry_run" = Option<bool>, Query, description = "Parse and report every row; change nothing, audit nothing"),
           ("partial" = Option<bool>, Query, description = "Load the good rows even when some are rejected (audited as partial)")),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, description = "Loaded (or, for a dry run, parsed)", body = LedgerReport),
              (status = 400, description = "A bad query parameter", body = super::error::ErrorBody),
              (status = 409, description = "No [clients] ledger is configured", body = super::error::ErrorBody),
              (status = 413, description = "Over [api] max_upload_mb", body = super::error::ErrorBody),
              (status = 422, description = "Refused, nothing changed: wrong encoding or header, no usable row, or rejected rows without partial=true", body = LedgerRefused)),
    security(("bearer" = [])))]
pub async fn put_ledger(
    State(state): State<ApiState>,
    caller: Option<Extension<Caller>>,
    Query(params): Query<HashMap<String, String>>,
    content: Result<Bytes, BytesRejection>,
) -> Result<Json<LedgerReport>, Failure> {
    let r = registry(&state)?;
    let content = body(content, r.config().api.max_upload_mb)?;
    let (dry_run, partial) = ledger_flags(&params)?;
    let path = ledger_path(&state)?;
    if dry_run {
        let report = blocking(move || r.check_ledger(&path, &content)).await?;
        return Ok(Json(LedgerReport {
            report,
            dry_run: true,
            version: None,
        }));
    }
    let (who_name, _) = who(&caller);
    let write = blocking(move || r.replace_ledger(&path, &content, &who_name, partial)).await?;
    let detail = if write.report.rejected.is_empty() {
        write.report.summary()
    } else {
        // The audit row names the rejected lines, up to a bound (the answer has them all).
        const NAMED: usize = 20;
        let rejected = &write.report.rejected;
        let mut lines: Vec<String> = rejected
            .iter()
            .take(NAMED)
            .map(|row| row.line.to_string())
            .collect();
        if rejected.len() > NAMED {
            lines.push("…".into());
        }
        format!(
            "partial: {} (lines {})",
            write.report.summary(),
            lines.join(", ")
        )
    };
    install_ledger(&state, &caller, write, "ledger.replace", detail).await
}

/// The asset ledger's kept versions, newest first (hash, rows, who, when).
#[utoipa::path(get, path = "/api/v1/clients/ledger/versions",
    operation_id = "listLedgerVersions", tag = "ledger",
    responses((status = 200, description = "Kept versions, newest first", body = [Version])),
    security(("bearer" = [])))]
pub async fn ledger_versions(State(state): State<ApiState>) -> Result<Json<Vec<Version>>, Failure> {
    let r = registry(&state)?;
    Ok(Json(blocking(move || r.ledger_versions()).await?))
}

/// The content of one ledger version (UTF-8 CSV, as it was written), with a UTF-8 byte order
/// mark unless `bom=false`, like every CSV export: staff open it in Excel to edit and upload
/// it again, and the ledger reader accepts the BOM.
#[utoipa::path(get, path = "/api/v1/clients/ledger/versions/{id}",
    operation_id = "getLedgerVersion", tag = "ledger",
    params(("id" = u64, Path, description = "Version id from the versions list"),
           ("bom" = Option<bool>, Query, description = "true (default) starts with a UTF-8 byte order mark for Excel; false omits it")),
    responses((status = 200, description = "The CSV", content_type = "text/csv", body = String),
              (status = 400, description = "Not a version id", body = super::error::ErrorBody),
              (status = 404, description = "No such version kept", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn ledger_version_content(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, Failure> {
    let mut bom = true;
    for (k, v) in &params {
        if k != super::csv_export::PARAM {
            return Err(
                ApiError::bad_param("query", format!("unknown parameter `{k}` (bom)")).into(),
            );
        }
        bom = super::csv_export::parse_bom(v)?;
    }
    let r = registry(&state)?;
    let id = version_id(&id)?;
    let bytes = blocking(move || r.ledger_version_content(id)).await?;
    Ok(super::csv_export::response(bytes, bom))
}

/// Rolls the asset ledger back to version `id`, in force at once (recorded as a new version,
/// so it can be undone).
#[utoipa::path(post, path = "/api/v1/clients/ledger/versions/{id}/restore",
    operation_id = "restoreLedgerVersion", tag = "ledger",
    params(("id" = u64, Path, description = "Version id from the versions list")),
    responses((status = 200, description = "Restored and in force", body = LedgerReport),
              (status = 404, description = "No such version kept", body = super::error::ErrorBody),
              (status = 409, description = "No [clients] ledger is configured", body = super::error::ErrorBody),
              (status = 422, description = "No row of that version is usable", body = LedgerRefused)),
    security(("bearer" = [])))]
pub async fn restore_ledger(
    State(state): State<ApiState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<Json<LedgerReport>, Failure> {
    let r = registry(&state)?;
    let id = version_id(&id)?;
    let path = ledger_path(&state)?;
    let (who_name, _) = who(&caller);
    let write = blocking(move || r.restore_ledger(&path, id, &who_name)).await?;
    let detail = format!("restored version {id}: {}", write.report.summary());
    install_ledger(&state, &caller, write, "ledger.restore", detail).await
}
