//! The asset ledger's admin endpoints: reload it from disk, replace it by upload, list and
//! download its kept versions, roll it back.
//!
//! Handlers only translate HTTP: the checks, the atomic write and the version history are
//! [`poolguard_clients::upload`]'s, run on the blocking pool; the handler swaps the new table
//! into the live ledger (hits recorded from then on carry the new identities) and audits the
//! write with the file's hashes before and after. Uploads share the feeds' body limit
//! (`[api] max_upload_mb`) and are mounted with the feed routes (`crate::feeds::routes`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::feeds::{Failure, audit, blocking, body, max_upload_mb, version_id, who};
use super::{ApiError, ApiState};
use crate::views::{LoadReport, Version};
use poolguard_clients::{LedgerError, LedgerUploads, LedgerWrite, UploadError};
use poolguard_store::audit::AuditEntry;

/// Re-reads the asset ledger file and swaps it in; bad rows are reported, good rows load.
#[utoipa::path(post, path = "/api/v1/ledger/reload",
    operation_id = "reloadLedger", tag = "ledger",
    responses((status = 200, description = "The ledger file was re-read and is in force", body = LoadReport), (status = 403, description = "The token's role may not do this", body = crate::error::ErrorBody)),
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
    Ok(Json(report.into()))
}

/// The ledger's write path; 503 when this process does not manage uploads (no feed registry,
/// so no `blocklists/.poolguard/` for the history).
fn uploads(state: &ApiState) -> Result<Arc<LedgerUploads>, ApiError> {
    state.ledger_uploads.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger uploads are not managed by this process",
        )
    })
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
        report: report.into(),
        dry_run: false,
        version: Some(version.into()),
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
              (status = 400, description = "A bad query parameter", body = crate::error::ErrorBody),
              (status = 409, description = "No [clients] ledger is configured", body = crate::error::ErrorBody),
              (status = 413, description = "Over [api] max_upload_mb", body = crate::error::ErrorBody),
              (status = 422, description = "Refused, nothing changed: wrong encoding or header, no usable row, or rejected rows without partial=true", body = LedgerRefused)),
    security(("bearer" = [])))]
pub async fn put_ledger(
    State(state): State<ApiState>,
    caller: Option<Extension<Caller>>,
    Query(params): Query<HashMap<String, String>>,
    content: Result<Bytes, BytesRejection>,
) -> Result<Json<LedgerReport>, Failure> {
    let uploads = uploads(&state)?;
    let content = body(content, max_upload_mb(&state))?;
    let (dry_run, partial) = ledger_flags(&params)?;
    let path = ledger_path(&state)?;
    if dry_run {
        let report = blocking(move || uploads.check(&path, &content)).await?;
        return Ok(Json(LedgerReport {
            report: report.into(),
            dry_run: true,
            version: None,
        }));
    }
    let (who_name, _) = who(&caller);
    let write = blocking(move || uploads.replace(&path, &content, &who_name, partial)).await?;
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
    let uploads = uploads(&state)?;
    Ok(Json(crate::views::all(
        blocking(move || uploads.versions()).await?,
    )))
}

/// The content of one ledger version (UTF-8 CSV, as it was written), with a UTF-8 byte order
/// mark unless `bom=false`, like every CSV export: staff open it in Excel to edit and upload
/// it again, and the ledger reader accepts the BOM.
#[utoipa::path(get, path = "/api/v1/clients/ledger/versions/{id}",
    operation_id = "getLedgerVersion", tag = "ledger",
    params(("id" = u64, Path, description = "Version id from the versions list"),
           ("bom" = Option<bool>, Query, description = "true (default) starts with a UTF-8 byte order mark for Excel; false omits it")),
    responses((status = 200, description = "The CSV", content_type = "text/csv", body = String),
              (status = 400, description = "Not a version id", body = crate::error::ErrorBody),
              (status = 404, description = "No such version kept", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn ledger_version_content(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, Failure> {
    let mut bom = true;
    for (k, v) in &params {
        if k != crate::csv_export::PARAM {
            return Err(
                ApiError::bad_param("query", format!("unknown parameter `{k}` (bom)")).into(),
            );
        }
        bom = crate::csv_export::parse_bom(v)?;
    }
    let uploads = uploads(&state)?;
    let id = version_id(&id)?;
    let bytes = blocking(move || uploads.version_content(id)).await?;
    Ok(crate::csv_export::response(bytes, bom))
}

/// Rolls the asset ledger back to version `id`, in force at once (recorded as a new version,
/// so it can be undone).
#[utoipa::path(post, path = "/api/v1/clients/ledger/versions/{id}/restore",
    operation_id = "restoreLedgerVersion", tag = "ledger",
    params(("id" = u64, Path, description = "Version id from the versions list")),
    responses((status = 200, description = "Restored and in force", body = LedgerReport),
              (status = 404, description = "No such version kept", body = crate::error::ErrorBody),
              (status = 409, description = "No [clients] ledger is configured", body = crate::error::ErrorBody),
              (status = 422, description = "No row of that version is usable", body = LedgerRefused)),
    security(("bearer" = [])))]
pub async fn restore_ledger(
    State(state): State<ApiState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<Json<LedgerReport>, Failure> {
    let uploads = uploads(&state)?;
    let id = version_id(&id)?;
    let path = ledger_path(&state)?;
    let (who_name, _) = who(&caller);
    let write = blocking(move || uploads.restore(&path, id, &who_name)).await?;
    let detail = format!("restored version {id}: {}", write.report.summary());
    install_ledger(&state, &caller, write, "ledger.restore", detail).await
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

/// Maps a ledger write's failure to its status: 422 with every rejected row, 404 for a version
/// not kept, 500 (logged) for I/O.
pub(crate) fn response(e: UploadError) -> Response {
    match e {
        UploadError::Share(e) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
        UploadError::Refused { message, report } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(LedgerRefused {
                error: message,
                report: report.into(),
            }),
        )
            .into_response(),
        UploadError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m).into_response(),
        other => {
            tracing::error!(error = %other, "ledger write failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{other}; see the server log"),
            )
            .into_response()
        }
    }
}
