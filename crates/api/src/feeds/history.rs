//! A feed's kept versions over HTTP: list them, download one, roll back to one.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::{Failure, audit, blocking, registry, version_id, who};
use crate::ApiState;
use crate::auth::Caller;
use crate::views::{Version, WriteReport};

/// The kept versions of a feed, newest first.
#[utoipa::path(get, path = "/api/v1/feeds/{name}/versions", params(("name" = String, Path)),
    operation_id = "listFeedVersions", tag = "feeds",
    responses((status = 200, description = "The kept versions, newest first", body = [Version])), security(("bearer" = [])))]
pub async fn versions(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<Version>>, Failure> {
    let r = registry(&state)?;
    Ok(Json(crate::views::all(
        blocking(move || r.versions_of(&name)).await?,
    )))
}

/// The content of one version, as it was uploaded.
#[utoipa::path(get, path = "/api/v1/feeds/{name}/versions/{id}",
    operation_id = "getFeedVersion", tag = "feeds",
    params(("name" = String, Path), ("id" = u64, Path)),
    responses((status = 200, description = "The version's content as uploaded", content_type = "text/plain", body = String), (status = 404, description = "No such feed or version", body = crate::error::ErrorBody)),
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

/// Rolls the feed back to version `id` (recorded as a new version, so it can be undone).
#[utoipa::path(post, path = "/api/v1/feeds/{name}/versions/{id}/restore",
    operation_id = "restoreFeedVersion", tag = "feeds",
    params(("name" = String, Path), ("id" = u64, Path)),
    responses((status = 200, description = "The version is restored and in force", body = WriteReport), (status = 404, description = "No such feed or version", body = crate::error::ErrorBody)),
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
    Ok(Json(report.into()))
}
