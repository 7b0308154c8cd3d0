//! Subscriptions over HTTP: fetch one now instead of waiting for its `refresh` interval.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Failure, audit, registry};
use crate::ApiState;
use crate::auth::Caller;
use poolguard_feeds::registry::RegistryError;
use poolguard_feeds::subscribe::{self, FetchResult};

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
    responses((status = 200, description = "The subscription was fetched", body = RefreshReport), (status = 409, description = "The feed is not a subscription", body = crate::error::ErrorBody)),
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
