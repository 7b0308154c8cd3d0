//! `/healthz` and `/metrics`: open endpoints for load balancers and Prometheus.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use crate::views::{ShipStatus, WriterStatus};

/// Health document: 200 when the store writer (and the hit shipper, with PostgreSQL) keeps
/// up, 503 when either is failing.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: String,
    pub store_writer: Option<WriterStatus>,
    /// The shared database (PostgreSQL): `ok`, or `unreachable: <why>`. Absent with the
    /// embedded store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// With `[store] backend = "postgres"`: hits on their way from this node to PostgreSQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_ship: Option<ShipStatus>,
}

/// Liveness plus the store writer's state and, with a shared database, whether it answers.
#[utoipa::path(get, path = "/healthz",
    operation_id = "getHealth", tag = "ops",
    responses((status = 200, description = "Serving; the store writer keeps up", body = Health), (status = 503, description = "Degraded: the store writer is stopped or failing, or the shared database is unreachable", body = Health)))]
pub async fn healthz(State(state): State<ApiState>) -> impl IntoResponse {
    let writer = state.writer.as_ref().map(|w| w.status());
    let database = match &state.database {
        Some(db) => Some(match db.ping().await {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("unreachable: {e}"),
        }),
        None => None,
    };
    let now = chrono::Utc::now().timestamp_millis();
    let shipping = state.shipping.as_ref().map(|s| s.status(now));
    // PostgreSQL away or the shipper behind: DNS answers and hits are safe locally, but the
    // group does not see them yet.
    let healthy = writer.as_ref().is_none_or(|w| w.healthy)
        && database.as_deref().is_none_or(|d| d == "ok")
        && shipping.as_ref().is_none_or(|s| s.healthy);
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(Health {
            status: if healthy { "ok" } else { "degraded" }.to_string(),
            store_writer: writer.map(WriterStatus::from),
            database,
            pg_ship: shipping.map(|s| ShipStatus::from_status(s, now)),
        }),
    )
}

/// Prometheus text exposition of every poolguard metric.
#[utoipa::path(get, path = "/metrics",
    operation_id = "getMetrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    super::metrics::refresh(&state).await;
    state.metrics.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
