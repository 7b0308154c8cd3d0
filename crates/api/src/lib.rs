//! The staff HTTP API: evidence lists, stats, client look-ups, health and metrics.
//!
//! axum on its own listener, JSON by default with CSV/NDJSON export for lists. Every `/api/v1`
//! route sits behind a bearer token ([`auth`]) whose role decides what it may do; `/healthz`
//! and `/metrics` are open so load balancers and Prometheus need no secret. Handlers never
//! see a connection: they validate parameters (400 with the parameter's name), then make one
//! call on the store's traits (`poolguard_store::Stores`), whichever backend implements them.

mod audit;
pub mod auth;
mod check;
mod clients;
mod csv_export;
mod error;
mod feeds;
pub mod group_log;
mod health;
mod identities;
mod incidents;
mod ledger;
mod lists;
pub mod metrics;
mod narrative;
pub mod openapi;
mod quarantine;
mod queries_who;
mod reports;
pub mod revocations;
mod stats;
pub mod token;
mod views;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use axum::Router;
use axum::routing::{delete, get, patch, post, put};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use auth::{Caller, Permission, SignedIn, Tokens};
// The view types the staff console (crates/console) reads back: it deserialises the API's own
// answers into the API's own types, so the two cannot drift apart.
pub use clients::{ClientResponse, Holding};
pub use error::ApiError;
pub use incidents::{HitView, IncidentDetail, IncidentPage, IncidentView};
pub use lists::{Item, ListResponse};
pub use narrative::NarrativeBody;
pub use poolguard_model::{neutralise, rfc3339};
pub use quarantine::QuarantineList;
pub use views::{Count, DeadlineState, Identity, Note, QuarantineEntry};

use poolguard_clients::SharedLedger;
use poolguard_config::ApiConfig;
use poolguard_store::{Reachable, Stores, WriterHealth};

/// Everything the handlers share. Cheap to clone (all `Arc`s).
#[derive(Clone)]
pub struct ApiState {
    /// The evidence store behind its traits (SQLite's `Store` today).
    pub store: Arc<dyn Stores>,
    pub ledger: SharedLedger,
    /// Who held each address when (DHCP leases, RADIUS logins), for
    /// `GET /api/v1/clients/{ip}?at=`; None when no `[identity]` source is configured.
    pub identities: Option<poolguard_identity::SharedIdentities>,
    /// What was added to the feeds and the pool address set, for the summary.
    pub listings: poolguard_store::summary::SharedListings,
    /// `[incidents.exempt]`: shown on `/clients/{ip}` as the writer would mark a hit.
    pub exempt: Option<std::sync::Arc<poolguard_identity::Exempt>>,
    /// Where `POST /api/v1/ledger/reload` re-reads the ledger from; None = reload disabled.
    pub ledger_path: Option<PathBuf>,
    /// Swapped whole on SIGHUP (`Running::reload_tokens`), so a leaked token is revoked and a
    /// new one works without a restart; a request sees the old set or the new, never a mix.
    pub tokens: Arc<ArcSwap<Tokens>>,
    /// The store writer's counters, for `/healthz`; None when this process does not write.
    pub writer: Option<Arc<WriterHealth>>,
    /// The shared database `/healthz` pings (PostgreSQL, when several nodes share one);
    /// None for the embedded store.
    pub database: Option<Arc<dyn Reachable>>,
    /// The hit shipper's state (`[store] backend = "postgres"`), for `/healthz` and
    /// `/metrics`; None on SQLite.
    pub shipping: Option<Arc<poolguard_store::ShipHealth>>,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The feed maintainers' write path (feeds, check, publish); None = those routes answer 503.
    pub feeds: Option<Arc<poolguard_feeds::registry::Registry>>,
    /// The asset ledger's upload path and history (`PUT /api/v1/clients/ledger`, versions,
    /// restore); None = those routes answer 503.
    pub ledger_uploads: Option<Arc<poolguard_clients::LedgerUploads>>,
    /// This node's place in a group (`[store] backend = "postgres"`): `GET /api/v1/queries`
    /// then gathers every node's log; None on a lone node.
    pub group: Option<Arc<group_log::Group>>,
    /// Revoked tokens (`DELETE /api/v1/tokens/{name}`); None = that route answers 503.
    pub revocations: Option<Arc<revocations::Revocations>>,
    /// Incidents, quarantine and alerts (clock, deadlines, the live quarantine set).
    pub accountability: Arc<poolguard_incidents::Accountability>,
    /// The DNS server's decision state, so `GET /api/v1/check` answers what DNS would; None
    /// = `check` answers from the policy alone.
    pub dns: Option<poolguard_dns::check::DnsCheck>,
    /// The pool address set (`[pools]`), merged into `GET /api/v1/publish/ips?category=`;
    /// None = that list holds the IP feeds only.
    pub pools: Option<poolguard_dns::pools::PoolSet>,
    /// The review queue of candidate pool names (the group's under the postgres backend);
    /// None = `/api/v1/feeds/review` answers 503.
    pub review: Option<Arc<dyn poolguard_store::review::ReviewStore>>,
}

impl ApiState {
    /// Builds the shared state from config and the already-started store parts.
    pub fn new(
        store: impl Stores + 'static,
        ledger: SharedLedger,
        ledger_path: Option<PathBuf>,
        api: &ApiConfig,
        writer: Option<Arc<WriterHealth>>,
    ) -> Self {
        Self {
            store: Arc::new(store),
            ledger,
            identities: None,
            exempt: None,
            listings: Default::default(),
            ledger_path,
            tokens: Arc::new(ArcSwap::from_pointee(Tokens::from_config(&api.tokens))),
            writer,
            database: None,
            shipping: None,
            metrics: metrics::install(),
            feeds: None,
            ledger_uploads: None,
            revocations: None,
            group: None,
            accountability: Arc::new(poolguard_incidents::Accountability::disabled()),
            dns: None,
            pools: None,
            review: None,
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
        .route("/api/v1/identities", get(identities::find))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/api/v1/incidents", get(incidents::list))
        .route("/api/v1/incidents/{id}", get(incidents::get))
        .route("/api/v1/incidents/{id}/report", get(incidents::report))
        .route("/api/v1/quarantine", get(quarantine::list))
        .route("/api/v1/alerts/deliveries", get(reports::deliveries))
        .route("/api/v1/reports/summary", get(reports::summary));
    let admin = Router::new()
        .route("/api/v1/ledger/reload", post(ledger::reload_ledger))
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/tokens/{name}", delete(revocations::revoke));
    let incidents = Router::new()
        .route("/api/v1/incidents/{id}", patch(incidents::patch))
        .route("/api/v1/incidents/{id}/notes", post(incidents::add_note))
        .route("/api/v1/incidents/{id}/narrative", put(narrative::put))
        .route(
            "/api/v1/quarantine",
            post(quarantine::add).delete(quarantine::release_body),
        )
        .route("/api/v1/quarantine/{ip}", delete(quarantine::release_path));
    let read = auth::guard(read, &state, Permission::ReadEvidence);
    let admin = auth::guard(admin, &state, Permission::Admin);
    let incidents = auth::guard(incidents, &state, Permission::WriteIncidents);
    read.merge(admin)
        .merge(incidents)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(1 << 20))
        // Feed and ledger uploads have their own limit, `[api] max_upload_mb`.
        .merge(feeds::routes(&state))
        .fallback(error::not_found)
        .with_state(state.clone())
        .merge(ops_router(state))
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

/// Serves any router (the API merged with the console, or the console alone) on `listener`
/// until `shutdown` resolves, then drains connections.
pub fn serve_router<F>(
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
