//! The merged policy as a list other resolvers and firewalls can pull, with ETag revalidation.
//!
//! `ips?category=` is the firewall's list of one category: the IP feeds of that category and
//! the pool address set's addresses (`dns::pools`), as plain text, or as JSON with each
//! address's name and first/last seen when the client asks for `application/json`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Failure, blocking, registry};
use crate::{ApiError, ApiState};
use poolguard_feeds::publish::{self, PublishFormat, Published};
use poolguard_feeds::registry::RegistryError;
use poolguard_model::rfc3339;

/// The merged policy as `rpz`, `hosts`, `domains` or `ips`, with an ETag (304 on a match).
/// `ips?category=mining` is one category's addresses: its IP feeds and the pool address set;
/// JSON (with names and first/last seen) when `Accept: application/json`.
#[utoipa::path(get, path = "/api/v1/publish/{format}",
    operation_id = "getPublishedList", tag = "publish",
    params(("format" = String, Path, description = "rpz, hosts, domains or ips"),
        ("category" = Option<String>, Query, description = "ips only: the addresses of one category (`mining`, `bypass`): its IP feeds and the pool address set")),
    responses((status = 200, description = "The merged block list in the requested format (JSON for `ips?category=` with `Accept: application/json`)", content_type = "text/plain", body = String), (status = 304, description = "Unchanged since the `If-None-Match` ETag")),
    security((), ("bearer" = [])))]
pub async fn publish(
    State(state): State<ApiState>,
    Path(format): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let r = registry(&state)?;
    let format = PublishFormat::from_name(&format).ok_or_else(|| {
        ApiError::bad_param(
            "format",
            format!("`{format}` is not rpz, hosts, domains or ips"),
        )
    })?;
    let published = match params.get("category") {
        Some(category) if format == PublishFormat::Ips => {
            if wants_json(&headers) {
                return Ok(Json(category_json(&state, &r, category)).into_response());
            }
            let resolved: Vec<std::net::IpAddr> = state
                .pools
                .as_ref()
                .map(|p| p.category(category).iter().map(|a| a.address).collect())
                .unwrap_or_default();
            let compiled = r.loader().compiled();
            let category = category.clone();
            blocking(move || {
                Ok::<_, RegistryError>(std::sync::Arc::new(publish::render_category_ips(
                    &compiled, &category, &resolved,
                )))
            })
            .await?
        }
        Some(_) => {
            return Err(ApiError::bad_param(
                "category",
                "only the `ips` list is published by category".to_string(),
            )
            .into());
        }
        None => blocking(move || Ok::<_, RegistryError>(r.publish(format))).await?,
    };
    Ok(conditional(&headers, &published, format.content_type()))
}

/// The body, or 304 when the client's `If-None-Match` holds its ETag.
fn conditional(headers: &HeaderMap, published: &Published, content_type: &str) -> Response {
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == published.etag)
        });
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, published.etag.clone())],
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::ETAG, published.etag.clone()),
            (header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        published.body.clone(),
    )
        .into_response()
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// One category's addresses with where each comes from.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryAddresses {
    pub category: String,
    /// Prefixes of the category's IP feeds first, then the pool address set, each in address
    /// order. An address of the set inside a feed prefix is shown too (the text list omits it).
    pub addresses: Vec<PublishedAddress>,
}

/// One address or prefix of a category.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedAddress {
    /// An address (`198.51.100.7`) or a feed's prefix (`203.0.113.0/24`).
    pub address: String,
    /// `feed` (listed by an IP feed) or `resolved` (the pool address set).
    pub source: &'static str,
    /// The IP feed that lists it (`source = feed`).
    pub feed: Option<String>,
    /// The listed name whose answer held it (`source = resolved`).
    pub name: Option<String>,
    /// RFC 3339: when an answer first held it (`source = resolved`).
    pub first_seen: Option<String>,
    /// RFC 3339: when an answer last held it (`source = resolved`).
    pub last_seen: Option<String>,
}

fn category_json(
    state: &ApiState,
    r: &poolguard_feeds::registry::Registry,
    category: &str,
) -> CategoryAddresses {
    let compiled = r.loader().compiled();
    let feeds = publish::category_nets(&compiled, category)
        .into_iter()
        .map(|(net, feed)| PublishedAddress {
            address: net.to_string(),
            source: "feed",
            feed: Some(feed.to_string()),
            name: None,
            first_seen: None,
            last_seen: None,
        });
    let resolved = state
        .pools
        .as_ref()
        .map(|p| p.category(category))
        .unwrap_or_default()
        .into_iter()
        .map(|a| PublishedAddress {
            address: a.address.to_string(),
            source: "resolved",
            feed: None,
            name: Some(a.name),
            first_seen: Some(rfc3339(a.first_seen_ms)),
            last_seen: Some(rfc3339(a.last_seen_ms)),
        });
    CategoryAddresses {
        category: category.to_string(),
        addresses: feeds.chain(resolved).collect(),
    }
}
