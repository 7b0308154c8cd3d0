//! Feed maintainers' endpoints: list, upload, patch, delete, enable/disable, versions and
//! rollback, subscription refresh; plus `publish`, and the router that also mounts `check` and
//! the asset-ledger upload (`crate::ledger`) under the same upload limit.
//!
//! Handlers only translate HTTP: every write runs [`Registry`]'s one write path on the blocking
//! pool (file I/O, parsing and compiling never run on an async worker), then lands in the audit
//! log with the content hashes before and after. Uploads have their own body limit
//! (`[api] max_upload_mb`, 413 past it) instead of the API's global 1 MiB.
//!
//! This file holds the router and what every maintainer write shares (the body limit, the
//! blocking pool, failures and their statuses, the audit row); the handlers are one file per
//! job: `edits` (list, upload, patch, delete, enable), `history` (versions, rollback),
//! `subscriptions` (refresh), `publish` and `review` (the queue of candidate pool names).

pub(crate) mod edits;
pub(crate) mod history;
pub(crate) mod publish;
pub(crate) mod review;
pub(crate) mod subscriptions;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use edits::{delete, disable, enable, list, one, patch, upload};
use history::{restore, version_content, versions};
use publish::publish;
use subscriptions::refresh;

use crate::auth::{self, Caller, Permission};
use crate::check::check;
use crate::ledger::{ledger_version_content, ledger_versions, put_ledger, restore_ledger};
use crate::views::WriteReport;
use crate::{ApiError, ApiState};
use poolguard_clients::UploadError;
use poolguard_feeds::registry::{Registry, RegistryError};
use poolguard_store::audit::AuditEntry;

/// The feed, check, publish and ledger-upload routes, with their own body limit.
pub(crate) fn routes(state: &ApiState) -> Router<ApiState> {
    let max_upload_mb = max_upload_mb(state);
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
        .route("/api/v1/feeds/{name}/refresh", post(refresh))
        .route("/api/v1/feeds/review", get(review::list))
        .route("/api/v1/feeds/review/{name}/accept", post(review::accept))
        .route("/api/v1/feeds/review/{name}/dismiss", post(review::dismiss));
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

/// `[api] max_upload_mb` (64 MiB when this process manages no feeds).
pub(crate) fn max_upload_mb(state: &ApiState) -> u64 {
    state
        .feeds
        .as_ref()
        .map_or(64, |r| r.config().api.max_upload_mb)
}

fn too_large(limit_mb: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is over [api] max_upload_mb = {limit_mb} MiB"),
    )
}

pub(crate) fn registry(state: &ApiState) -> Result<Arc<Registry>, ApiError> {
    state.feeds.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "feeds are not managed by this process",
        )
    })
}

pub(crate) fn who(caller: &Option<Extension<Caller>>) -> (String, String) {
    caller
        .as_ref()
        .map(|c| (c.0.name.clone(), format!("{:?}", c.0.role).to_lowercase()))
        .unwrap_or_else(|| ("anonymous".into(), String::new()))
}

/// Runs registry (or ledger) work on the blocking pool.
pub(crate) async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, Failure>
where
    T: Send + 'static,
    E: Into<Failure> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| {
            Failure::Api(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("task failed: {e}"),
            ))
        })?
        .map_err(Into::into)
}

/// A handler failure: an API error, or a registry or ledger error with its own status mapping
/// (422 carries the parse report, so a maintainer sees every rejected line).
pub enum Failure {
    /// Already an HTTP error.
    Api(ApiError),
    /// From the feeds' write path; mapped in `into_response`.
    Registry(RegistryError),
    /// From the asset ledger's write path; mapped by `crate::ledger::response`.
    Ledger(UploadError),
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Self {
        Failure::Registry(e)
    }
}

impl From<UploadError> for Failure {
    fn from(e: UploadError) -> Self {
        Failure::Ledger(e)
    }
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

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let e = match self {
            Failure::Api(e) => return e.into_response(),
            Failure::Ledger(e) => return crate::ledger::response(e),
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
                    report: (*report).into(),
                }),
            )
                .into_response(),
            RegistryError::Share(e) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
            }
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

pub(crate) async fn audit(
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

pub(crate) fn body(b: Result<Bytes, BytesRejection>, limit_mb: u64) -> Result<Bytes, ApiError> {
    b.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(limit_mb)
        } else {
            ApiError::new(r.status(), r.body_text())
        }
    })
}

pub(crate) fn version_id(id: &str) -> Result<u64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_param("id", format!("`{id}` is not a version id")))
}

/// A `true`/`false` query parameter (absent = false); anything else is a 400 naming it, so a
/// typo is not silently taken as the default.
pub(crate) fn true_or_false(
    parameter: &'static str,
    value: Option<&str>,
) -> Result<bool, ApiError> {
    match value.map(str::trim) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(ApiError::bad_param(
            parameter,
            format!("`{v}` is not true or false"),
        )),
    }
}
