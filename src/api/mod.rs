//! The staff HTTP API: evidence lists, stats, client look-ups, health and metrics.
//!
//! axum on its own listener, JSON by default with CSV/NDJSON export for lists. Every `/api/v1`
//! route sits behind a bearer token ([`auth`]) whose role decides what it may do; `/healthz`
//! and `/metrics` are open so load balancers and Prometheus need no secret. Handlers never
//! touch SQLite directly: they validate parameters (400 with the parameter's name), then run
//! one bounded read through [`Store::read`] on the blocking pool.

mod audit;
pub mod auth;
mod clients;
mod error;
mod health;
mod lists;
pub mod metrics;
pub mod openapi;
mod stats;
pub mod token;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use auth::{Caller, Permission, Tokens};
pub use error::ApiError;

use crate::clients::SharedLedger;
use crate::config::ApiConfig;
use crate::store::{Store, WriterHealth};

/// Everything the handlers share. Cheap to clone (all `Arc`s).
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub ledger: SharedLedger,
    /// Where `POST /api/v1/ledger/reload` re-reads the ledger from; None = reload disabled.
    pub ledger_path: Option<PathBuf>,
    pub tokens: Arc<Tokens>,
    /// The store writer's counters, for `/healthz`; None when this process does not write.
    pub writer: Option<Arc<WriterHealth>>,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

impl ApiState {
    /// Builds the shared state from config and the already-started store parts.
    pub fn new(
        store: Store,
        ledger: SharedLedger,
        ledger_path: Option<PathBuf>,
        api: &ApiConfig,
        writer: Option<Arc<WriterHealth>>,
    ) -> Self {
        Self {
            store,
            ledger,
            ledger_path,
            tokens: Arc::new(Tokens::from_config(&api.tokens)),
            writer,
            metrics: metrics::install(),
        }
    }
}

/// `/healthz` and `/metrics` only, for a separate `metrics_listen` address.
pub fn ops_router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .with_state(state)
}

/// The whole API: `/api/v1/*` (token required) plus `/healthz` and `/metrics`.
pub fn router(state: ApiState) -> Router {
    let read = Router::new()
        .route("/api/v1/queries", get(lists::queries))
        .route("/api/v1/hits", get(lists::hits))
        .route("/api/v1/stats", get(stats::stats))
        .route("/api/v1/clients/{ip}", get(clients::client))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), Permission::ReadEvidence),
            auth::require,
        ));
    let admin = Router::new()
        .route("/api/v1/ledger/reload", post(clients::reload_ledger))
        .route("/api/v1/audit", get(audit::list))
        .route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), Permission::Admin),
            auth::require,
        ));
    read.merge(admin)
        .fallback(error::not_found)
        .with_state(state.clone())
        .merge(ops_router(state))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(1 << 20))
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then drains connections.
pub fn serve<F>(
    listener: TcpListener,
    state: ApiState,
    shutdown: F,
) -> JoinHandle<std::io::Result<()>>
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_router(listener, router(state), shutdown)
}

/// Serves only `/healthz` and `/metrics` (for `[api] metrics_listen`).
pub fn serve_ops<F>(
    listener: TcpListener,
    state: ApiState,
    shutdown: F,
) -> JoinHandle<std::io::Result<()>>
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_router(listener, ops_router(state), shutdown)
}

fn serve_router<F>(
    listener: TcpListener,
    app: Router,
    shutdown: F,
) -> JoinHandle<std::io::Result<()>>
where
    F: Future<Output = ()> + Send + 'static,
{
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "API listening");
    }
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    })
}
