//! `GET /api/v1/check`: what DNS would do with a name, from the same code.
//!
//! The feed verdict comes from the registry (`Registry::check`), the client's identity from the
//! asset ledger in force; the decision comes from [`poolguard_policy::decide`] over the DNS server's own site (`[dns] allow`,
//! quarantine, `[[zones]]`, `[[upstream.conditional]]`), the function the DNS paths call. With
//! `resolve=true`, a forwarded name is resolved through the same upstream setup and its answer
//! inspected as DNS inspects it, so a name blocked through a CNAME or an address says so.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use hickory_proto::rr::RecordType;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::ApiError;
use super::feeds::{Failure, blocking, registry, true_or_false};
use crate::views::CheckReport;
use crate::views::Identity;
use poolguard_dns::check::Resolution;
use poolguard_policy::{Caught, NameMatch, QueryDecision};

/// What `GET /api/v1/check` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckAnswer {
    /// The feed verdict and the client. `decision` is what DNS would do: `refused` (client
    /// outside `[dns] allow`, or a zone transfer outside our zones), `quarantined` (walled
    /// garden), `blocked` (by a rule on the name, or with `resolve=true` by answer
    /// inspection), `allowed` (an allow rule matched: answered, never inspected), `logged` (a
    /// rule of a feed whose action is `log` matched: answered as if unlisted, recorded as a
    /// hit) or `pass`.
    #[serde(flatten)]
    pub report: CheckReport,
    /// The client's identity from the asset ledger, when `client` was given.
    pub client: Option<Identity>,
    /// When `client` was given: whether it is quarantined. A quarantined client gets the
    /// walled garden for every name outside `[enforcement] reachable`, and `decision` then says
    /// `quarantined` (the feed verdict is still shown).
    pub quarantined: Option<bool>,
    /// The question type checked (`A` unless `type` was given).
    #[serde(rename = "type")]
    pub qtype: String,
    /// Where the query goes when it is answered at all: `local_zone`, `conditional`,
    /// `forward` or `rfc8482` (ANY); absent for `refused`, `quarantined` and name blocks.
    pub route: Option<&'static str>,
    /// For `route = conditional`: the `[[upstream.conditional]]` domain whose servers answer.
    pub conditional: Option<String>,
    /// With `resolve=true`, when answer inspection blocked it: the listed CNAME target or
    /// address (`feed` and `rule` then name the rule that lists it).
    pub via: Option<Via>,
    /// With `resolve=true` on a forwarded name: what the upstream answered.
    pub resolved: Option<Resolved>,
}

/// What answer inspection caught.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// A CNAME target a block rule lists.
    Cname(String),
    /// An address in a listed prefix.
    Address(String),
}

/// The upstream's answer to a checked name.
#[derive(Debug, Serialize, ToSchema)]
pub struct Resolved {
    /// The upstream's response code (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, …).
    pub rcode: &'static str,
    /// The servers asked.
    pub upstream: String,
    /// The answer section in short.
    pub answer: String,
    /// Whether the answer was inspected (off with `[blocking] inspect_answers = false`, and
    /// for allowlisted names).
    pub inspected: bool,
}

/// What DNS would do with a name for a client (the DNS path's own decision code), and who the
/// client is; with `resolve=true` the name is resolved and its answer inspected.
#[utoipa::path(get, path = "/api/v1/check",
    operation_id = "checkName", tag = "check",
    params(("name" = String, Query, description = "the name to check"),
           ("client" = Option<String>, Query, description = "the client address to decide for (allow list, quarantine); default any allowed client"),
           ("type" = Option<String>, Query, description = "record type, default A"),
           ("resolve" = Option<bool>, Query, description = "resolve a forwarded name and inspect its answer")),
    responses((status = 200, description = "What DNS would do with the name for the client", body = CheckAnswer),
              (status = 400, description = "Bad parameter or body; `error` names it", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn check(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<CheckAnswer>, Failure> {
    let r = registry(&state)?;
    let name = params
        .get("name")
        .cloned()
        .ok_or_else(|| ApiError::bad_param("name", "give the name to check"))?;
    let client: Option<IpAddr> = match params.get("client") {
        Some(c) => Some(
            c.trim()
                .parse::<IpAddr>()
                .map_err(|_| ApiError::bad_param("client", format!("`{c}` is not an IP address")))?
                .to_canonical(),
        ),
        None => None,
    };
    let qtype = qtype(params.get("type"))?;
    let resolve = true_or_false("resolve", params.get("resolve").map(String::as_str))?;
    let report = blocking(move || r.check(&name)).await?;
    Ok(Json(
        answer(&state, report.into(), client, qtype, resolve).await?,
    ))
}

/// Parses `type` (default `A`).
pub(super) fn qtype(param: Option<&String>) -> Result<RecordType, ApiError> {
    let Some(t) = param else {
        return Ok(RecordType::A);
    };
    t.trim()
        .to_ascii_uppercase()
        .parse::<RecordType>()
        .map_err(|_| ApiError::bad_param("type", format!("`{t}` is not a DNS record type")))
}

/// Turns the registry's feed verdict into what DNS would do for `client` (see the module docs).
pub(super) async fn answer(
    state: &ApiState,
    mut report: CheckReport,
    client: Option<IpAddr>,
    qtype: RecordType,
    resolve: bool,
) -> Result<CheckAnswer, ApiError> {
    let mut answer = CheckAnswer {
        report: CheckReport::default(),
        client: client
            .and_then(|ip| state.ledger.load().lookup(ip))
            .map(|i| Identity::from((*i).clone())),
        quarantined: client.map(|ip| state.accountability.quarantine.contains(ip)),
        qtype: qtype.to_string(),
        route: None,
        conditional: None,
        via: None,
        resolved: None,
    };
    let Some(dns) = &state.dns else {
        // No DNS server in this process (API-only tests): the policy verdict and quarantine.
        if answer.quarantined == Some(true)
            && !state.accountability.quarantine.is_reachable(&report.name)
        {
            report.decision = "quarantined";
        }
        answer.report = report;
        return Ok(answer);
    };
    let policy = dns.policy().load();
    // Settle the decision while the snapshot is borrowed; keep owned values only.
    let qname = report.name.clone();
    let forwarded = dns.decide(&policy, client, &qname, qtype, |d| {
        let allowlisted = d.allowlisted();
        set_rule(&mut report, allowlisted);
        if let Some(m) = d.logged() {
            set_block(&mut report, m);
            report.decision = "logged";
        }
        match d {
            QueryDecision::Refused | QueryDecision::TransferRefused => {
                report.decision = "refused";
                None
            }
            QueryDecision::Quarantined { .. } => {
                report.decision = "quarantined";
                None
            }
            QueryDecision::Blocked(m) => {
                set_block(&mut report, m);
                None
            }
            QueryDecision::MinimalAny => {
                answer.route = Some("rfc8482");
                None
            }
            QueryDecision::LocalZone { .. } => {
                answer.route = Some("local_zone");
                None
            }
            QueryDecision::Conditional { domain, .. } => {
                answer.route = Some("conditional");
                answer.conditional = Some(domain.to_string());
                Some(allowlisted.is_some())
            }
            QueryDecision::Forward { .. } => {
                answer.route = Some("forward");
                Some(allowlisted.is_some())
            }
        }
    });
    drop(policy);
    if let (true, Some(allowlisted)) = (resolve, forwarded) {
        let r = dns
            .resolve(&qname, qtype, allowlisted)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
        apply_resolution(&mut answer, &mut report, r);
    }
    answer.report = report;
    Ok(answer)
}

/// An allow rule (or none): `allowed` with its rule, or `pass`.
fn set_rule(report: &mut CheckReport, allowlisted: Option<NameMatch<'_>>) {
    match allowlisted {
        Some(m) => {
            report.decision = "allowed";
            report.feed = Some(m.feed.name.to_string());
            report.rule = Some(m.to_string());
            report.action = None;
        }
        None if report.decision == "allowed" => {
            // Not reached: the registry reads the same snapshot type; kept consistent anyway.
            report.decision = "pass";
        }
        None => {}
    }
}

fn set_block(report: &mut CheckReport, m: NameMatch<'_>) {
    report.decision = "blocked";
    report.feed = Some(m.feed.name.to_string());
    report.rule = Some(m.to_string());
    report.action = Some(m.feed.action);
    report.overrides = None;
}

fn apply_resolution(answer: &mut CheckAnswer, report: &mut CheckReport, r: Resolution) {
    if let Some(caught) = &r.caught {
        let v = caught.verdict();
        report.decision = "blocked";
        report.feed = Some(v.feed.name.to_string());
        report.rule = Some(v.rule.to_string());
        report.action = Some(v.action());
        report.overrides = None;
        answer.via = Some(match caught {
            Caught::Cname { target, .. } => Via::Cname(target.clone()),
            Caught::Address { address, .. } => Via::Address(address.to_string()),
        });
    }
    answer.resolved = Some(Resolved {
        rcode: r.rcode,
        upstream: r.upstream,
        answer: r.answer,
        inspected: r.inspected,
    });
}
