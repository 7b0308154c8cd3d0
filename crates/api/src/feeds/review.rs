//! The review queue (docs/REVIEW.md): candidate pool names nobody has listed, with their
//! evidence; a maintainer accepts one into a feed (the feeds' own audited patch, in force at
//! once) or dismisses it (remembered: the scan never queues it again).
//!
//! Under the postgres backend the queue is the group's (each node's scan adds what its own
//! query log shows); the feed write and the audit rows go where every maintainer write goes.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Failure, audit, blocking, registry, who};
use crate::auth::Caller;
use crate::views::WriteReport;
use crate::{ApiError, ApiState};
use poolguard_model::rfc3339;
use poolguard_store::review::{
    Candidate, Decided, ReviewDecision, ReviewFilter, ReviewReason, ReviewState, ReviewStore,
};
use poolguard_store::{Actor, Cursor};

const DEFAULT_LIMIT: usize = 100;

/// One candidate and its evidence.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewCandidate {
    /// The name as it was asked.
    pub name: String,
    /// `resolves-to-pool`, `cname-to-listed`, `other-tld` or `operator-host`.
    pub reason: String,
    /// `pending`, `accepted` or `dismissed`.
    pub state: String,
    /// Client addresses that asked (at most 16).
    pub clients: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
    /// Stored queries for the name the scans saw.
    pub count: i64,
    /// The latest answer (`A 198.51.100.7`).
    pub resolved: String,
    /// Why it is a candidate, in words.
    pub evidence: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    /// The feed it was added to, or why it was dismissed.
    pub decision: Option<String>,
}

impl From<Candidate> for ReviewCandidate {
    fn from(c: Candidate) -> Self {
        Self {
            name: c.name,
            reason: c.reason.as_str().into(),
            state: c.state.as_str().into(),
            clients: c.clients,
            first_seen: rfc3339(c.first_ms),
            last_seen: rfc3339(c.last_ms),
            count: c.count,
            resolved: c.resolved,
            evidence: c.evidence,
            decided_by: c.decided_by,
            decided_at: c.decided_ms.map(rfc3339),
            decision: c.decision,
        }
    }
}

/// A page of candidates, most recently seen first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewPage {
    pub items: Vec<ReviewCandidate>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// `accept` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    /// The feed the name is added to (a `domains` feed created over the API or in config).
    pub feed: String,
}

/// `dismiss` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DismissBody {
    /// Why the name is not a pool (kept with it, and in the audit log).
    pub reason: String,
}

/// What `accept` did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub candidate: ReviewCandidate,
    /// The feed's write report (the name is in force when this returns).
    pub feed: WriteReport,
}

fn queue(state: &ApiState) -> Result<std::sync::Arc<dyn ReviewStore>, ApiError> {
    state.review.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the review queue needs the store ([store] path)",
        )
    })
}

fn filter(params: &HashMap<String, String>) -> Result<ReviewFilter, ApiError> {
    let mut f = ReviewFilter {
        limit: DEFAULT_LIMIT,
        state: Some(ReviewState::Pending),
        ..ReviewFilter::default()
    };
    for (k, v) in params {
        match k.as_str() {
            "reason" => {
                f.reason = Some(ReviewReason::from_name(v).ok_or_else(|| {
                    ApiError::bad_param(
                        "reason",
                        "one of resolves-to-pool, cname-to-listed, other-tld, operator-host",
                    )
                })?)
            }
            "state" if v == "all" => f.state = None,
            "state" => {
                f.state = Some(ReviewState::from_name(v).ok_or_else(|| {
                    ApiError::bad_param("state", "one of pending, accepted, dismissed, all")
                })?)
            }
            "limit" => f.limit = crate::lists::parse_limit(v)?,
            "cursor" => f.cursor = Some(Cursor(v.clone())),
            _ => {
                return Err(ApiError::bad_param(
                    "query",
                    format!("unknown parameter `{k}` (reason, state, limit, cursor)"),
                ));
            }
        }
    }
    Ok(f)
}

/// Lists review candidates (default: the pending ones), most recently seen first.
#[utoipa::path(get, path = "/api/v1/feeds/review",
    operation_id = "listReviewCandidates", tag = "feeds",
    params(("reason" = Option<String>, Query, description = "resolves-to-pool, cname-to-listed, other-tld or operator-host"),
           ("state" = Option<String>, Query, description = "pending (default), accepted, dismissed or all"),
           ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "One page of candidates with their evidence", body = ReviewPage),
              (status = 400, description = "Bad parameter; `error` names it", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<ReviewPage>, Failure> {
    let f = filter(&params)?;
    let page = queue(&state)?.review_list(f).await?;
    Ok(Json(ReviewPage {
        items: crate::views::all(page.items),
        next_cursor: page.next.map(|c| c.0),
    }))
}

fn actor(caller: &Option<Extension<Caller>>) -> Actor {
    let (name, role) = who(caller);
    Actor { name, role }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The pending candidate `name`, or the 404 / 409 that says why it cannot be decided.
async fn pending(queue: &dyn ReviewStore, name: &str) -> Result<Candidate, ApiError> {
    match queue.review_get(name.to_string()).await? {
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{name} is not in the review queue"),
        )),
        Some(c) if c.state != ReviewState::Pending => Err(decided_already(&c)),
        Some(c) => Ok(c),
    }
}

fn decided_already(c: &Candidate) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "{} was {} already by {}",
            c.name,
            c.state.as_str(),
            c.decided_by.as_deref().unwrap_or("someone")
        ),
    )
}

async fn decide(
    queue: &dyn ReviewStore,
    name: String,
    decision: ReviewDecision,
    caller: &Option<Extension<Caller>>,
) -> Result<Candidate, Failure> {
    match queue
        .review_decide(name.clone(), decision, actor(caller), now_ms())
        .await?
    {
        Decided::Done(c) => Ok(c),
        Decided::AlreadyDecided(c) => Err(decided_already(&c).into()),
        Decided::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{name} is not in the review queue"),
        )
        .into()),
    }
}

/// Adds the candidate to a feed (the same audited write as `PATCH …/entries`, in force when
/// this returns) and marks it accepted.
#[utoipa::path(post, path = "/api/v1/feeds/review/{name}/accept",
    operation_id = "acceptReviewCandidate", tag = "feeds",
    params(("name" = String, Path)), request_body = AcceptBody,
    responses((status = 200, description = "The name is in the feed and blocked", body = Accepted),
              (status = 404, description = "No such candidate, or no such feed", body = crate::error::ErrorBody),
              (status = 409, description = "The candidate was decided already", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn accept(
    State(state): State<ApiState>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
    Json(body): Json<AcceptBody>,
) -> Result<Json<Accepted>, Failure> {
    let queue = queue(&state)?;
    let candidate = pending(queue.as_ref(), &name).await?;
    let r = registry(&state)?;
    let (who_name, _) = who(&caller);
    let (feed, entry) = (body.feed.clone(), candidate.name.clone());
    let (report, _) = blocking(move || r.patch(&feed, &[entry], &[], &who_name)).await?;
    metrics::counter!("poolguard_feed_writes_total", "action" => "patch").increment(1);
    audit(
        &state,
        &caller,
        "feed.patch",
        &body.feed,
        report.before_sha256.clone(),
        report.version.as_ref().map(|v| v.sha256.clone()),
        format!("1 added, 0 of 0 removed (review candidate {name})"),
    )
    .await?;
    let decided = decide(
        queue.as_ref(),
        name.clone(),
        ReviewDecision::Accept {
            feed: body.feed.clone(),
        },
        &caller,
    )
    .await?;
    audit(
        &state,
        &caller,
        "review.accept",
        &format!("review/{name}"),
        None,
        None,
        format!("into feed {}: {}", body.feed, decided.evidence),
    )
    .await?;
    Ok(Json(Accepted {
        candidate: decided.into(),
        feed: report.into(),
    }))
}

/// Dismisses the candidate: it stays in the queue as `dismissed` and is never queued again.
#[utoipa::path(post, path = "/api/v1/feeds/review/{name}/dismiss",
    operation_id = "dismissReviewCandidate", tag = "feeds",
    params(("name" = String, Path)), request_body = DismissBody,
    responses((status = 200, description = "The candidate is dismissed", body = ReviewCandidate),
              (status = 400, description = "No reason given", body = crate::error::ErrorBody),
              (status = 404, description = "No such candidate", body = crate::error::ErrorBody),
              (status = 409, description = "The candidate was decided already", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn dismiss(
    State(state): State<ApiState>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
    Json(body): Json<DismissBody>,
) -> Result<Json<ReviewCandidate>, Failure> {
    let reason = body.reason.trim().to_string();
    if reason.is_empty() || reason.len() > 1000 {
        return Err(ApiError::bad_param("reason", "say why, in 1 to 1000 characters").into());
    }
    let queue = queue(&state)?;
    let decided = decide(
        queue.as_ref(),
        name.clone(),
        ReviewDecision::Dismiss {
            reason: reason.clone(),
        },
        &caller,
    )
    .await?;
    audit(
        &state,
        &caller,
        "review.dismiss",
        &format!("review/{name}"),
        None,
        None,
        reason,
    )
    .await?;
    Ok(Json(decided.into()))
}
