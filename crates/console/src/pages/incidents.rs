//! `GET /incidents`: the queue by deadline; `GET /incidents/{id}`: one incident, with its
//! notes, status moves, assignee and the written report.
//!
//! Every change is one API call (PATCH or POST notes) as the signed-in person, so the API
//! audits it under their name and refuses what their role or the incident's state does not
//! allow; a refusal (403, 409 with the state machine's reason) is shown on the page as the
//! API worded it.

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;

use super::overview::DueRow;
use super::{Fields, field};
use crate::Ctx;
use crate::api::{ApiFailure, with_query};
use crate::context::{Layout, render};
use crate::time::{countdown, show, show_opt};
use crate::views::{Incident, IncidentDetail, IncidentPage, identity_rows, next_due, state_word};

/// The statuses, in the only order an incident may move through them.
pub const STATUSES: [&str; 5] = ["open", "investigating", "identified", "reported", "closed"];
/// Why an incident may be closed (the API's list).
/// The measures a report may list (the API's list).
pub const MEASURES: [&str; 4] = ["disconnected", "cleaned", "reimaged", "warned"];
/// The narrative's free-text fields, in form order.
const NARRATIVE_TEXT: [&str; 5] = ["found", "cause", "actions_other", "outcome", "follow_up"];
pub const RESOLUTIONS: [&str; 4] = [
    "cleaned",
    "false-positive",
    "authorised-research",
    "device-removed",
];

#[derive(Template)]
#[template(path = "incidents.html")]
struct Queue {
    l: Layout,
    v: Fields,
    rows: Vec<DueRow>,
    error: Option<String>,
    statuses: [&'static str; 5],
}

impl Queue {
    fn val<'a>(&'a self, k: &str) -> &'a str {
        field(&self.v, k)
    }
}

/// `GET /incidents?status=&overdue=&department=&assignee=&mac=&account=&asset=&owner=&severity=`:
/// sorted by the next deadline, overdue first. The department box finds part of a name
/// (`department_contains`). Severity is filtered here (the API's list has no such filter).
pub async fn queue(ctx: Ctx, Query(q): Query<Fields>) -> Response {
    let mut pairs: Vec<(&str, &str)> = [
        ("status", "status"),
        ("overdue", "overdue"),
        ("department", "department_contains"),
        ("assignee", "assignee"),
        ("mac", "mac"),
        ("account", "account"),
        ("asset", "asset"),
        ("owner", "owner"),
    ]
    .iter()
    .map(|(form, api)| (*api, field(&q, form)))
    .filter(|(_, v)| !v.is_empty())
    .collect();
    pairs.push(("limit", "1000"));
    let uri = with_query("/api/v1/incidents", &pairs);
    let now = Utc::now();
    let (rows, error, status) = match ctx
        .console
        .inner
        .api
        .get::<IncidentPage>(&ctx.session, &uri)
        .await
    {
        Ok(p) => {
            let severity = field(&q, "severity");
            let mut items: Vec<Incident> = p
                .items
                .into_iter()
                .filter(|i| severity.is_empty() || i.severity == severity)
                .collect();
            // Pending deadlines soonest first (RFC 3339 UTC sorts as text); none last.
            items.sort_by(|a, b| {
                next_due(a)
                    .unwrap_or("~")
                    .cmp(next_due(b).unwrap_or("~"))
                    .then(b.id.cmp(&a.id))
            });
            (
                items.iter().map(|i| DueRow::new(i, &ctx, now)).collect(),
                None,
                StatusCode::OK,
            )
        }
        Err(e) => (Vec::new(), Some(e.message), e.status),
    };
    let tpl = Queue {
        l: ctx.layout("incidents"),
        v: q,
        rows,
        error,
        statuses: STATUSES,
    };
    render(status, &tpl)
}

/// A deadline as the page shows it.
struct Deadline {
    label: &'static str,
    due: String,
    state: String,
    state_label: &'static str,
    countdown: String,
}

/// Hits on one name.
struct NameSummary {
    name: String,
    count: usize,
    first: String,
    last: String,
}

/// One line of the timeline.
struct Event {
    time: String,
    what: String,
    by: String,
    text: String,
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentView {
    l: Layout,
    i: Incident,
    identity: Vec<(&'static str, String)>,
    deadlines: Vec<Deadline>,
    names: Vec<NameSummary>,
    timeline: Vec<Event>,
    opened: String,
    first_hit: String,
    last_hit: String,
    can_write: bool,
    statuses: [&'static str; 5],
    resolutions: [&'static str; 4],
    measures: [&'static str; 4],
    narrative: crate::views::NarrativeBody,
    error: Option<String>,
    done: bool,
}

fn state_label(state: &str, t: &'static crate::i18n::Labels) -> &'static str {
    match state {
        "met" => t.met,
        "missed" => t.missed,
        "pending" => t.pending,
        _ => t.not_needed,
    }
}

async fn show_incident(ctx: &Ctx, id: i64, error: Option<ApiFailure>, done: bool) -> Response {
    let uri = format!("/api/v1/incidents/{id}");
    let d = match ctx
        .console
        .inner
        .api
        .get::<IncidentDetail>(&ctx.session, &uri)
        .await
    {
        Ok(d) => d,
        Err(e) => return ctx.failure(e),
    };
    let (t, tz, now) = (ctx.t, ctx.console.inner.tz, Utc::now());
    let i = d.incident;
    let deadline = |label, due: &str, state: &str| Deadline {
        label,
        due: show(due, tz),
        state: state.to_string(),
        state_label: state_label(state, t),
        countdown: if state == "pending" {
            countdown(due, now, t)
        } else {
            String::new()
        },
    };
    let deadlines = vec![
        deadline(
            t.identify_due,
            &i.identify_due,
            state_word(i.identify_state),
        ),
        deadline(t.report_due, &i.report_due, state_word(i.report_state)),
    ];
    let mut by_name: BTreeMap<String, NameSummary> = BTreeMap::new();
    for h in &d.hits {
        let e = by_name
            .entry(h.name.clone())
            .or_insert_with(|| NameSummary {
                name: h.name.clone(),
                count: 0,
                first: h.time.clone(),
                last: h.time.clone(),
            });
        e.count += 1;
        if h.time < e.first {
            e.first = h.time.clone();
        }
        if h.time > e.last {
            e.last = h.time.clone();
        }
    }
    let mut names: Vec<NameSummary> = by_name.into_values().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.count));
    for n in &mut names {
        n.first = show(&n.first, tz);
        n.last = show(&n.last, tz);
    }
    let mut timeline: Vec<(String, Event)> = Vec::new();
    let mut stamp = |time: &Option<String>, what: &str| {
        if let Some(time) = time {
            timeline.push((
                time.clone(),
                Event {
                    time: show(time, tz),
                    what: what.to_string(),
                    by: String::new(),
                    text: String::new(),
                },
            ));
        }
    };
    stamp(&Some(i.first_hit_at.clone()), t.first_hit);
    stamp(&Some(i.opened_at.clone()), "open");
    stamp(&i.identified_at, "identified");
    stamp(&i.reported_at, "reported");
    stamp(&i.closed_at, "closed");
    stamp(&Some(i.last_hit_at.clone()), t.last_hit);
    for n in d.notes {
        timeline.push((
            n.time.clone(),
            Event {
                time: show(&n.time, tz),
                what: t.notes.to_string(),
                by: n.author,
                text: n.text,
            },
        ));
    }
    timeline.sort_by(|a, b| a.0.cmp(&b.0));
    let status = error.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let tpl = IncidentView {
        l: ctx.layout("incidents"),
        identity: identity_rows(&i.identity, t),
        deadlines,
        names,
        timeline: timeline.into_iter().map(|(_, e)| e).collect(),
        opened: show(&i.opened_at, tz),
        first_hit: show(&i.first_hit_at, tz),
        last_hit: show_opt(Some(&i.last_hit_at), tz),
        can_write: ctx.can_investigate(),
        statuses: STATUSES,
        resolutions: RESOLUTIONS,
        measures: MEASURES,
        narrative: d.narrative,
        error: error.map(|e| e.message),
        done,
        i,
    };
    render(status, &tpl)
}

fn parse_id(id: &str) -> Option<i64> {
    id.parse().ok().filter(|n: &i64| *n > 0)
}

fn no_such(ctx: &Ctx, id: &str) -> Response {
    ctx.failure(ApiFailure {
        status: StatusCode::NOT_FOUND,
        message: format!("no incident {id}"),
    })
}

/// `GET /incidents/{id}`.
pub async fn page(ctx: Ctx, Path(id): Path<String>, Query(q): Query<Fields>) -> Response {
    match parse_id(&id) {
        Some(n) => show_incident(&ctx, n, None, field(&q, "done") == "1").await,
        None => no_such(&ctx, &id),
    }
}

/// `POST /incidents/{id}`: status (with resolution), assignee, device, owner — the fields
/// the form sent, as one PATCH.
pub async fn update(ctx: Ctx, Path(id): Path<String>, Form(f): Form<Fields>) -> Response {
    if let Some(refused) = ctx.csrf_refusal(f.get("csrf")) {
        return refused;
    }
    let Some(n) = parse_id(&id) else {
        return no_such(&ctx, &id);
    };
    let mut patch = serde_json::Map::new();
    for k in ["status", "assignee", "device", "owner", "resolution"] {
        if let Some(v) = f.get(k) {
            if k == "resolution" && v.trim().is_empty() {
                continue;
            }
            patch.insert(
                k.to_string(),
                serde_json::Value::String(v.trim().to_string()),
            );
        }
    }
    let body = serde_json::Value::Object(patch);
    let uri = format!("/api/v1/incidents/{n}");
    match ctx
        .console
        .inner
        .api
        .call::<serde_json::Value>(&ctx.session, Method::PATCH, &uri, Some(&body))
        .await
    {
        Ok(_) => Redirect::to(&format!("/incidents/{n}?done=1")).into_response(),
        Err(e) => show_incident(&ctx, n, Some(e), false).await,
    }
}

/// `POST /incidents/{id}/narrative`: the account for the report, replaced whole (checked
/// measures arrive as repeated `actions` fields).
pub async fn narrative(
    ctx: Ctx,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let csrf = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.clone());
    if let Some(refused) = ctx.csrf_refusal(csrf.as_ref()) {
        return refused;
    }
    let Some(n) = parse_id(&id) else {
        return no_such(&ctx, &id);
    };
    let mut body = serde_json::Map::new();
    for k in NARRATIVE_TEXT {
        if let Some((_, v)) = pairs.iter().find(|(key, _)| key == k) {
            body.insert(
                k.to_string(),
                serde_json::Value::String(v.trim().to_string()),
            );
        }
    }
    let actions: Vec<serde_json::Value> = pairs
        .iter()
        .filter(|(k, _)| k == "actions")
        .map(|(_, v)| serde_json::Value::String(v.clone()))
        .collect();
    body.insert("actions".into(), serde_json::Value::Array(actions));
    let uri = format!("/api/v1/incidents/{n}/narrative");
    let body = serde_json::Value::Object(body);
    match ctx
        .console
        .inner
        .api
        .call::<serde_json::Value>(&ctx.session, Method::PUT, &uri, Some(&body))
        .await
    {
        Ok(_) => Redirect::to(&format!("/incidents/{n}?done=1")).into_response(),
        Err(e) => show_incident(&ctx, n, Some(e), false).await,
    }
}

/// `POST /incidents/{id}/notes`.
pub async fn note(ctx: Ctx, Path(id): Path<String>, Form(f): Form<Fields>) -> Response {
    if let Some(refused) = ctx.csrf_refusal(f.get("csrf")) {
        return refused;
    }
    let Some(n) = parse_id(&id) else {
        return no_such(&ctx, &id);
    };
    let body = serde_json::json!({ "text": field(&f, "text") });
    let uri = format!("/api/v1/incidents/{n}/notes");
    match ctx
        .console
        .inner
        .api
        .call::<serde_json::Value>(&ctx.session, Method::POST, &uri, Some(&body))
        .await
    {
        Ok(_) => Redirect::to(&format!("/incidents/{n}?done=1")).into_response(),
        Err(e) => show_incident(&ctx, n, Some(e), false).await,
    }
}

/// `GET /incidents/{id}/report?format=html|md`: the API's written report, in the console's
/// language. Its HTML carries its own inline style (it stands alone when saved), so this
/// answer allows inline style and nothing else.
pub async fn report(ctx: Ctx, Path(id): Path<String>, Query(q): Query<Fields>) -> Response {
    let Some(n) = parse_id(&id) else {
        return no_such(&ctx, &id);
    };
    let format = if field(&q, "format") == "md" {
        "md"
    } else {
        "html"
    };
    let uri = with_query(
        &format!("/api/v1/incidents/{n}/report"),
        &[("format", format), ("lang", ctx.lang.tag())],
    );
    let raw = match ctx.console.inner.api.fetch(&ctx.session, &uri).await {
        Ok(r) => r,
        Err(e) => return ctx.failure(e),
    };
    let mut resp = (raw.status, raw.body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        raw.content_type
            .unwrap_or(HeaderValue::from_static("text/plain; charset=utf-8")),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
        ),
    );
    resp
}
