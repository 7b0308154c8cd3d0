//! The merged policy as a list other resolvers and firewalls can pull, with ETag revalidation.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Failure, blocking, registry};
use crate::{ApiError, ApiState};
use poolguard_feeds::publish::PublishFormat;
use poolguard_feeds::registry::RegistryError;

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
    let published = blocking(move || Ok::<_, RegistryError>(r.publish(format))).await?;
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
