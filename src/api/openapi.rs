//! The OpenAPI 3 document, derived from the handlers' `#[utoipa::path]` annotations and the
//! response types, so it cannot drift from the code.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "poolguard API", description = "Evidence of crypto-mining DNS queries on the campus network"),
    paths(
        super::lists::queries,
        super::lists::hits,
        super::stats::stats,
        super::clients::client,
        super::clients::reload_ledger,
        super::audit::list,
        super::health::healthz,
        super::health::metrics,
        serve,
    ),
    components(schemas(
        super::lists::Item,
        crate::clients::Identity,
        super::lists::ListResponse,
        super::stats::StatsResponse,
        super::clients::ClientResponse,
        super::error::ErrorBody,
        crate::store::Count,
        crate::clients::LoadReport,
        crate::clients::RejectedRow,
        super::audit::AuditPage,
        crate::store::audit::AuditEntry,
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", responses((status = 200, description = "OpenAPI 3 document")), security(("bearer" = [])))]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
