//! `/api/v1/incidents`: the accountability workflow for investigators.
//!
//! Incidents are opened by the store writer (see `incidents::track`); this API lists them
//! (filters, cursor, CSV), shows one with its hits and notes, moves it through the state
//! machine (`PATCH`, 409 with the reason when the move is not allowed), appends notes and
//! renders the written report. Every write is one store call (`IncidentStore`) that runs in
//! one transaction together with its audit row, so the audit log can never miss a change and
//! two API nodes cannot both win a race. Overdue flags are computed at read time against the
//! injectable clock, never stored.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::lists::{check_keys, parse_time};
use super::{ApiError, ApiState, Caller, neutralise, rfc3339};
use crate::views::Identity;
use crate::views::{DeadlineState, Note};
use poolguard_config::reports::Language;
use poolguard_incidents::{RESOLUTIONS, Status, report};
use poolguard_store::incidents::{IncidentFilter, IncidentHit, IncidentRow};
use poolguard_store::{Actor, Cursor, IncidentChange, IncidentError, StoreError, Updated};

const DEFAULT_LIMIT: usize = 100;
/// Hits returned with one incident (the report has them all).
const DETAIL_HITS: usize = 1000;
/// Longest note or free-text field, in characters.
const MAX_TEXT: usize = 10_000;

/// One incident as the API shows it; overdue flags are judged at the server's clock.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IncidentView {
    pub id: i64,
    /// Address of the first hit.
    pub client: String,
    /// `asset:<name>` (ledger asset) or `ip:<address>`: what later hits are attached by.
    pub client_key: String,
    /// Ledger identity when the incident opened (a snapshot; later ledger edits do not change it).
    pub identity: Identity,
    /// The device, as recorded by staff (prefilled with the ledger's asset).
    pub device: Option<String>,
    /// The responsible person, as recorded by staff (prefilled with the ledger's owner).
    pub owner: Option<String>,
    pub status: String,
    pub resolution: Option<String>,
    pub assignee: Option<String>,
    /// Highest severity among the incident's feeds.
    pub severity: String,
    pub feeds: Vec<String>,
    pub categories: Vec<String>,
    /// The client looked up a public encrypted-DNS resolver (a hit of category `bypass`):
    /// derived from `categories`, so nothing new is stored (docs/FEEDS.md, "Bypass").
    pub bypass_capable: bool,
    /// RFC 3339: when the incident opened, i.e. its first hit (deadlines count from here).
    pub opened_at: String,
    /// RFC 3339: the first hit (same as `opened_at`, named for reports).
    pub first_hit_at: String,
    pub last_hit_at: String,
    pub hit_count: i64,
    pub distinct_names: i64,
    pub identify_due: String,
    pub report_due: String,
    pub identified_at: Option<String>,
    pub reported_at: Option<String>,
    pub closed_at: Option<String>,
    /// The identification deadline missed (also after closing: a miss stays missed).
    pub identify_overdue: bool,
    /// The report deadline missed.
    pub report_overdue: bool,
    /// Either deadline missed.
    pub overdue: bool,
    /// `met`, `missed`, `pending` or `not_needed` (closed before it was due), at the server's
    /// clock (`incidents::deadline`).
    pub identify_state: DeadlineState,
    /// The same for the report deadline.
    pub report_state: DeadlineState,
    /// The client address is quarantined right now.
    pub quarantined: bool,
}

impl IncidentView {
    fn new(r: IncidentRow, now: i64, quarantined: bool) -> Self {
        let (identify, report) = (r.identify_deadline(now), r.report_deadline(now));
        Self {
            identify_overdue: identify.missed(),
            report_overdue: report.missed(),
            overdue: identify.missed() || report.missed(),
            identify_state: identify.state.into(),
            report_state: report.state.into(),
            id: r.id,
            client: r.client,
            client_key: r.client_key,
            identity: r.identity.into(),
            device: r.device,
            owner: r.owner,
            status: r.status.as_str().to_string(),
            resolution: r.resolution,
            assignee: r.assignee,
            severity: r.severity.as_str().to_string(),
            feeds: r.feeds,
            bypass_capable: r
                .categories
                .iter()
                .any(|c| c == poolguard_model::BYPASS_CATEGORY),
            categories: r.categories,
            opened_at: rfc3339(r.opened_ms),
            first_hit_at: rfc3339(r.opened_ms),
            last_hit_at: rfc3339(r.last_hit_ms),
            hit_count: r.hit_count,
            distinct_names: r.name_count,
            identify_due: rfc3339(r.identify_due_ms),
            report_due: rfc3339(r.report_due_ms),
            identified_at: r.identified_ms.map(rfc3339),
            reported_at: r.reported_ms.map(rfc3339),
            closed_at: r.closed_ms.map(rfc3339),
            quarantined,
        }
    }
}

fn view(state: &ApiState, r: IncidentRow) -> IncidentView {
    let acc = &state.accountability;
    let q = r
        .client
        .parse()
        .map(|ip| acc.quarantine.contains(ip))
        .unwrap_or(false);
    IncidentView::new(r, acc.clock.now_ms(), q)
}

/// A page of incidents, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IncidentPage {
    pub items: Vec<IncidentView>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// One hit of an incident.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HitView {
    pub id: i64,
    pub time: String,
    pub client: String,
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: String,
    pub action: String,
    pub feed: Option<String>,
    pub rule: Option<String>,
    pub rcode: String,
}

impl From<IncidentHit> for HitView {
    fn from(h: IncidentHit) -> Self {
        Self {
            id: h.id,
            time: rfc3339(h.time_ms),
            client: h.client,
            name: h.name,
            qtype: h.qtype,
            action: h.action,
            feed: h.feed,
            rule: h.rule,
            rcode: h.rcode,
        }
    }
}

/// One incident with its hits (oldest first, at most 1000) and notes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: IncidentView,
    pub hits: Vec<HitView>,
    pub notes: Vec<Note>,
    /// The investigator's account (`PUT /api/v1/incidents/{id}/narrative`).
    pub narrative: crate::narrative::NarrativeBody,
}

/// Query parameters of the incident list (documentation; parsing is by hand).
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct IncidentParams {
    /// `open`, `investigating`, `identified`, `reported`, `closed`.
    status: Option<String>,
    /// `true`: only incidents with a missed deadline; `false`: only those on time.
    overdue: Option<bool>,
    /// Department from the ledger snapshot.
    department: Option<String>,
    /// Part of the department, anywhere in it, case-insensitive.
    department_contains: Option<String>,
    /// Token name of the assignee.
    assignee: Option<String>,
    /// The MAC the incident opened with (any common spelling).
    mac: Option<String>,
    /// The account the incident opened with (case-insensitive).
    account: Option<String>,
    /// The ledger asset tag (case-insensitive).
    asset: Option<String>,
    /// The responsible person, as the ledger or staff recorded it (case-insensitive).
    owner: Option<String>,
    /// RFC 3339: opened at or after.
    since: Option<String>,
    /// 1–1000, default 100.
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `json` (default) or `csv` (next cursor in `X-Next-Cursor`).
    format: Option<String>,
    /// CSV only: `true` (default) starts the file with a UTF-8 byte order mark, which Excel
    /// needs to read it as UTF-8; `false` omits it.
    bom: Option<bool>,
}

const LIST_KEYS: [&str; 14] = [
    "status",
    "overdue",
    "department",
    "department_contains",
    "assignee",
    "mac",
    "account",
    "asset",
    "owner",
    "since",
    "limit",
    "cursor",
    "format",
    super::csv_export::PARAM,
];

pub(crate) fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::bad_param("id", format!("`{id}` is not an incident id")))
}

pub(crate) fn not_found(id: i64) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no incident {id}"))
}

/// Lists incidents, newest first.
#[utoipa::path(get, path = "/api/v1/incidents", params(IncidentParams),
    operation_id = "listIncidents", tag = "incidents",
    responses((status = 200, description = "One page of incidents (JSON), or the CSV export", body = IncidentPage), (status = 400, description = "Bad parameter or body; `error` names it", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<ApiState>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let mut f = IncidentFilter {
        limit: DEFAULT_LIMIT,
        now: state.accountability.clock.now_ms(),
        ..IncidentFilter::default()
    };
    let mut csv = false;
    let mut bom = true;
    for (key, v) in check_keys(pairs, &LIST_KEYS)? {
        let v = v.trim().to_string();
        match key {
            "status" => {
                let s = Status::parse(&v).ok_or_else(|| {
                    ApiError::bad_param(
                        "status",
                        format!(
                            "`{v}` is not one of open, investigating, identified, reported, closed"
                        ),
                    )
                })?;
                f.status = Some(s);
            }
            "overdue" => {
                f.overdue = Some(match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(ApiError::bad_param("overdue", "must be true or false")),
                })
            }
            "department" => f.department = Some(v),
            "assignee" => f.assignee = Some(v),
            "mac" => {
                let mac = poolguard_identity::normalise_mac(&v).ok_or_else(|| {
                    ApiError::bad_param("mac", format!("`{v}` is not a MAC like 00:1a:2b:3c:4d:5e"))
                })?;
                f.who.mac = Some(mac.to_string());
            }
            "account" | "asset" | "owner" | "department_contains" => {
                if v.is_empty() || v.chars().count() > 200 {
                    return Err(ApiError::bad_param(key, "must be 1-200 characters"));
                }
                let slot = match key {
                    "account" => &mut f.who.account,
                    "asset" => &mut f.who.asset,
                    "owner" => &mut f.who.owner,
                    _ => &mut f.who.department_contains,
                };
                *slot = Some(v);
            }
            "since" => f.since = Some(parse_time("since", &v)?),
            "limit" => f.limit = crate::lists::parse_limit(&v)?,
            "cursor" => f.cursor = Some(Cursor(v)),
            "format" => {
                csv = match v.as_str() {
                    "json" => false,
                    "csv" => true,
                    _ => {
                        return Err(ApiError::bad_param(
                            "format",
                            format!("`{v}` is not json or csv"),
                        ));
                    }
                }
            }
            super::csv_export::PARAM => bom = super::csv_export::parse_bom(&v)?,
            _ => {}
        }
    }
    let page = state.store.list_incidents(f).await?;
    let next = page.next.map(|c| c.0);
    let items: Vec<IncidentView> = page.items.into_iter().map(|r| view(&state, r)).collect();
    if !csv {
        return Ok(Json(IncidentPage {
            items,
            next_cursor: next,
        })
        .into_response());
    }
    let body = to_csv(&items)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut resp = super::csv_export::response(body, bom);
    if let Some(c) = next.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert("x-next-cursor", c);
    }
    Ok(resp)
}

fn to_csv(items: &[IncidentView]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "id",
        "client",
        "asset",
        "department",
        "location",
        "device",
        "owner",
        "status",
        "resolution",
        "assignee",
        "severity",
        "feeds",
        "opened_at",
        "last_hit_at",
        "hit_count",
        "distinct_names",
        "identify_due",
        "report_due",
        "overdue",
    ])?;
    for i in items {
        let o = |s: &Option<String>| s.clone().unwrap_or_default();
        let rec = [
            i.id.to_string(),
            i.client.clone(),
            o(&i.identity.asset),
            o(&i.identity.department),
            o(&i.identity.location),
            o(&i.device),
            o(&i.owner),
            i.status.clone(),
            o(&i.resolution),
            o(&i.assignee),
            i.severity.clone(),
            i.feeds.join(" "),
            i.opened_at.clone(),
            i.last_hit_at.clone(),
            i.hit_count.to_string(),
            i.distinct_names.to_string(),
            i.identify_due.clone(),
            i.report_due.clone(),
            i.overdue.to_string(),
        ];
        w.write_record(rec.iter().map(|c| neutralise(c).into_owned()))?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// One incident with its hits and notes.
#[utoipa::path(get, path = "/api/v1/incidents/{id}",
    operation_id = "getIncident", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    responses((status = 200, description = "The incident with its hits and notes", body = IncidentDetail), (status = 404, description = "No such incident", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let id = parse_id(&id)?;
    let found = state.store.incident_detail(id, DETAIL_HITS).await?;
    let r = found.ok_or_else(|| not_found(id))?;
    Ok(Json(IncidentDetail {
        incident: view(&state, r.incident),
        hits: r.hits.into_iter().map(HitView::from).collect(),
        notes: crate::views::all(r.notes),
        narrative: r.narrative.into(),
    }))
}

/// The fields staff may change. Absent fields stay as they are; `""` clears a text field. A
/// PATCH that changes nothing answers the incident as it is and writes no audit row.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentPatch {
    /// New status: only forward (`open → investigating → identified → reported → closed`).
    pub status: Option<String>,
    /// Token name (or person) handling the incident.
    pub assignee: Option<String>,
    /// The device found (asset tag, host name, serial).
    pub device: Option<String>,
    /// The responsible person.
    pub owner: Option<String>,
    /// Only with `status: closed`: cleaned, false-positive, authorised-research, device-removed.
    pub resolution: Option<String>,
}

fn text_field(name: &'static str, v: Option<String>) -> Result<Option<Option<String>>, ApiError> {
    match v {
        None => Ok(None),
        Some(s) if s.chars().count() > 200 => {
            Err(ApiError::bad_param(name, "at most 200 characters"))
        }
        Some(s) if s.trim().is_empty() => Ok(Some(None)),
        Some(s) => Ok(Some(Some(s.trim().to_string()))),
    }
}

/// Changes status, assignee, device, owner or resolution; 409 with the reason when the state
/// machine forbids the move.
#[utoipa::path(patch, path = "/api/v1/incidents/{id}", request_body = IncidentPatch,
    operation_id = "patchIncident", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    responses((status = 200, description = "The incident as updated", body = IncidentView), (status = 400, description = "Bad parameter or body; `error` names it", body = super::error::ErrorBody),
              (status = 404, description = "No such incident", body = super::error::ErrorBody), (status = 409, description = "The change is not allowed from the incident's current state", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    caller: Option<axum::Extension<Caller>>,
    body: Result<Json<IncidentPatch>, JsonRejection>,
) -> Result<Json<IncidentView>, ApiError> {
    let id = parse_id(&id)?;
    let Json(p) = body.map_err(|e| ApiError::bad_param("body", e.body_text()))?;
    let status = match p.status.as_deref() {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::bad_param(
                "status",
                format!("`{s}` is not one of open, investigating, identified, reported, closed"),
            )
        })?),
    };
    if let Some(r) = p.resolution.as_deref()
        && !RESOLUTIONS.contains(&r)
    {
        return Err(ApiError::bad_param(
            "resolution",
            format!("`{r}` is not one of {}", RESOLUTIONS.join(", ")),
        ));
    }
    let assignee = text_field("assignee", p.assignee)?;
    let device = text_field("device", p.device)?;
    let owner = text_field("owner", p.owner)?;
    let now_ms = state.accountability.clock.now_ms();
    let change = IncidentChange {
        status,
        assignee,
        device,
        owner,
        resolution: p.resolution,
        actor: caller_of(caller),
        now_ms,
    };
    let actor = change.actor.name.clone();
    match state.store.update_incident(id, change).await {
        Ok(Updated::Changed(row)) => {
            tracing::info!(
                incident = id,
                status = row.status.as_str(),
                "incident updated"
            );
            if let Some(new) = status {
                let event = if new == Status::Closed {
                    "incident.closed"
                } else {
                    "incident.status"
                };
                let mut ev =
                    poolguard_incidents::AlertEvent::incident(event, id, &row.client, now_ms);
                ev.detail = serde_json::json!({
                    "status": row.status.as_str(), "by": actor, "resolution": row.resolution,
                });
                state.accountability.alerts.export_only(&ev);
            }
            Ok(Json(view(&state, *row)))
        }
        Ok(Updated::Unchanged(row)) => Ok(Json(view(&state, *row))),
        Err(IncidentError::NotFound(_)) => Err(not_found(id)),
        Err(IncidentError::Refused(e)) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
        Err(IncidentError::Store(e)) => Err(write_error(e)),
    }
}

pub(crate) fn write_error(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "incident write failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "store write failed; see the server log",
    )
}

/// The caller as audit rows name it (`unknown` when auth is off).
pub(crate) fn caller_of(caller: Option<axum::Extension<Caller>>) -> Actor {
    caller
        .map(|c| Actor {
            name: c.0.name,
            role: format!("{:?}", c.0.role).to_lowercase(),
        })
        .unwrap_or_else(|| Actor {
            name: "unknown".into(),
            role: "unknown".into(),
        })
}

/// A new note.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    /// The note (1–10 000 characters); the author is the token's name.
    pub text: String,
}

/// Appends a note (notes are never edited or deleted).
#[utoipa::path(post, path = "/api/v1/incidents/{id}/notes", request_body = NewNote,
    operation_id = "addIncidentNote", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    responses((status = 201, description = "The note is added", body = Note), (status = 400, description = "Bad parameter or body; `error` names it", body = super::error::ErrorBody),
              (status = 404, description = "No such incident", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_note(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    caller: Option<axum::Extension<Caller>>,
    body: Result<Json<NewNote>, JsonRejection>,
) -> Result<(StatusCode, Json<Note>), ApiError> {
    let id = parse_id(&id)?;
    let Json(n) = body.map_err(|e| ApiError::bad_param("body", e.body_text()))?;
    let text = n.text.trim().to_string();
    if text.is_empty() || text.chars().count() > MAX_TEXT {
        return Err(ApiError::bad_param(
            "text",
            format!("must be 1 to {MAX_TEXT} characters"),
        ));
    }
    let now = state.accountability.clock.now_ms();
    let note = state
        .store
        .add_note(id, caller_of(caller), text, now)
        .await
        .map_err(write_error)?;
    let note = note.ok_or_else(|| not_found(id))?;
    Ok((StatusCode::CREATED, Json(Note::from(note))))
}

/// The response header carrying the report's evidence hash (`report::evidence`).
pub const EVIDENCE_HEADER: &str = "x-poolguard-evidence-sha256";

/// The written report, `format=html` (default, printable A4) or `format=md`; `lang=en|zh-CN`
/// (default `[reports] language`); `rows=all` lists every timeline row instead of runs. The
/// SHA-256 of the evidence it is built from is in the `X-Poolguard-Evidence-SHA256` header.
#[utoipa::path(get, path = "/api/v1/incidents/{id}/report",
    operation_id = "getIncidentReport", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id"), ("format" = Option<String>, Query, description = "html (default) or md"),
           ("lang" = Option<String>, Query, description = "en or zh-CN; default `[reports] language`"),
           ("rows" = Option<String>, Query, description = "`all`: every timeline row; default: runs of identical rows")),
    responses((status = 200, description = "text/html or text/markdown; header X-Poolguard-Evidence-SHA256", headers(("X-Poolguard-Evidence-SHA256" = String, description = "SHA-256 (hex) of the evidence's canonical form, docs/INCIDENTS.md"))),
              (status = 400, description = "Bad parameter; `error` names it", body = super::error::ErrorBody),
              (status = 404, description = "No such incident", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn report(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let settings = &state.accountability.reports;
    let mut md = false;
    let mut view = report::View {
        language: settings.language,
        all_rows: false,
    };
    for (k, v) in check_keys(pairs, &["format", "lang", "rows"])? {
        match k {
            "lang" => {
                view.language = Language::parse(&v).ok_or_else(|| {
                    ApiError::bad_param("lang", format!("`{v}` is not one of {}", Language::TAGS))
                })?;
            }
            "rows" => {
                view.all_rows = match v.as_str() {
                    "all" => true,
                    "runs" => false,
                    _ => {
                        return Err(ApiError::bad_param(
                            "rows",
                            format!("`{v}` is not all or runs"),
                        ));
                    }
                };
            }
            _ => {
                md = match v.as_str() {
                    "html" => false,
                    "md" | "markdown" => true,
                    _ => {
                        return Err(ApiError::bad_param(
                            "format",
                            format!("`{v}` is not html or md"),
                        ));
                    }
                };
            }
        }
    }
    let now = state.accountability.clock.now_ms();
    let feeds = state.accountability.feeds.load_full();
    let data = report::load(state.store.as_ref(), id, &feeds, now)
        .await?
        .ok_or_else(|| not_found(id))?;
    let (kind, body) = if md {
        (
            "text/markdown; charset=utf-8",
            report::markdown(&data, settings, view),
        )
    } else {
        (
            "text/html; charset=utf-8",
            report::html(&data, settings, view),
        )
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (
                header::HeaderName::from_static(EVIDENCE_HEADER),
                data.evidence_sha256,
            ),
        ],
        body,
    )
        .into_response())
}
