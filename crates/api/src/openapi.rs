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
        super::identities::find,
        super::ledger::reload_ledger,
        super::revocations::revoke,
        super::audit::list,
        super::feeds::edits::list,
        super::feeds::edits::one,
        super::feeds::edits::upload,
        super::feeds::edits::patch,
        super::feeds::edits::delete,
        super::feeds::edits::enable,
        super::feeds::edits::disable,
        super::feeds::history::versions,
        super::feeds::history::version_content,
        super::feeds::history::restore,
        super::feeds::subscriptions::refresh,
        super::check::check,
        super::feeds::publish::publish,
        super::feeds::review::list,
        super::feeds::review::accept,
        super::feeds::review::dismiss,
        super::ledger::put_ledger,
        super::ledger::ledger_versions,
        super::ledger::ledger_version_content,
        super::ledger::restore_ledger,
        super::incidents::list,
        super::incidents::get,
        super::incidents::patch,
        super::incidents::add_note,
        super::incidents::report,
        super::narrative::put,
        super::quarantine::list,
        super::quarantine::add,
        super::quarantine::release_path,
        super::quarantine::release_body,
        super::reports::summary,
        super::reports::deliveries,
        super::health::healthz,
        super::health::metrics,
        serve,
    ),
    components(schemas(
        super::lists::Item,
        super::views::Identity,
        super::lists::ListResponse,
        super::stats::StatsResponse,
        super::clients::ClientResponse,
        super::clients::Holding,
        super::identities::IdentitiesResponse,
        super::identities::DeviceHoldings,
        super::feeds::publish::CategoryAddresses,
        super::feeds::publish::PublishedAddress,
        super::error::ErrorBody,
        super::revocations::Revoked,
        super::views::Count,
        super::views::LoadReport,
        super::views::RejectedRow,
        super::audit::AuditPage,
        super::views::AuditEntry,
        super::views::Rejected,
        super::views::WriteReport,
        super::views::FeedView,
        super::views::FetchStatus,
        super::views::CheckReport,
        super::check::CheckAnswer,
        super::check::Via,
        super::check::Resolved,
        super::views::LineCounts,
        super::views::Skipped,
        super::views::Version,
        super::feeds::Refused,
        super::ledger::LedgerRefused,
        super::feeds::edits::EntriesPatch,
        super::feeds::review::ReviewCandidate,
        super::feeds::review::ReviewPage,
        super::feeds::review::AcceptBody,
        super::feeds::review::DismissBody,
        super::feeds::review::Accepted,
        super::feeds::edits::PatchReport,
        super::feeds::subscriptions::RefreshReport,
        super::ledger::LedgerReport,
        super::incidents::IncidentView,
        super::incidents::IncidentPage,
        super::incidents::IncidentDetail,
        super::incidents::IncidentPatch,
        super::incidents::HitView,
        super::incidents::NewNote,
        super::narrative::NarrativeBody,
        super::views::Note,
        super::views::QuarantineEntry,
        super::views::Delivery,
        super::quarantine::QuarantineList,
        super::quarantine::QuarantineRequest,
        super::quarantine::ReleaseRequest,
        super::reports::DeliveryPage,
        super::views::Summary,
        super::views::DepartmentFigures,
        super::views::Offender,
        super::views::OffenderDevice,
        super::views::NewName,
        super::views::Listed,
    )),
    // One tag per resource (not the handlers' Rust modules, which utoipa uses by default), so
    // generated clients and the rendered docs group operations as staff think of them. Every
    // `#[utoipa::path]` names its `tag` and a unique `operation_id` (tests/api_openapi.rs).
    tags(
        (name = "queries", description = "The query log"),
        (name = "hits", description = "Blocked queries, with the client's identity at the time"),
        (name = "stats", description = "Counts and top tables over a window"),
        (name = "clients", description = "One client's identity and history"),
        (name = "ledger", description = "The asset ledger that maps addresses to machines and people"),
        (name = "audit", description = "Who changed what"),
        (name = "tokens", description = "API tokens: revocation on every node"),
        (name = "feeds", description = "Block lists: upload, edit, versions, subscriptions"),
        (name = "check", description = "What the policy decides for a name"),
        (name = "publish", description = "The merged block list for other resolvers"),
        (name = "incidents", description = "Mining incidents and their handling"),
        (name = "quarantine", description = "Clients sent to the walled garden"),
        (name = "reports", description = "Summaries for management"),
        (name = "alerts", description = "Alert deliveries to staff"),
        (name = "ops", description = "Health and Prometheus metrics (no token)"),
        (name = "openapi", description = "This document"),
    ),
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
#[utoipa::path(get, path = "/api/v1/openapi.json",
    operation_id = "getOpenApi", tag = "openapi",
    responses((status = 200, description = "OpenAPI 3 document")), security(("bearer" = [])))]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
