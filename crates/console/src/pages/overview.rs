//! `GET /`: the state of the campus at a glance.
//!
//! Hits over time (24 h, 7 d or 30 d), the top clients, departments and pool names, open and
//! overdue incidents with their countdowns, quarantined clients, feed freshness and the
//! store's health. The chart's buckets are whole hours (or 6 h, or days) so the API answers
//! each from its hourly rollups instead of scanning rows.

use askama::Template;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DurationRound, TimeDelta, Utc};
use tokio::task::JoinSet;

use super::{Fields, field};
use crate::Ctx;
use crate::api::with_query;
use crate::chart::{Chart, bars};
use crate::context::{Layout, render};
use crate::time::{countdown, show};
use crate::views::{
    Count, Feed, Incident, IncidentPage, QuarantineEntry, QuarantineList, Stats, next_due,
};

/// An incident row with its countdown already worded.
pub struct DueRow {
    pub id: i64,
    pub client: String,
    pub department: String,
    pub status: String,
    pub severity: String,
    pub due: String,
    pub countdown: String,
    pub overdue: bool,
}

impl DueRow {
    /// Words `i`'s next deadline for the page.
    pub fn new(i: &Incident, ctx: &Ctx, now: chrono::DateTime<Utc>) -> Self {
        let tz = ctx.console.inner.tz;
        Self {
            id: i.id,
            client: i.client.clone(),
            department: i.identity.department.clone().unwrap_or_default(),
            status: i.status.clone(),
            severity: i.severity.clone(),
            due: next_due(i).map(|d| show(d, tz)).unwrap_or_default(),
            countdown: next_due(i)
                .map(|d| countdown(d, now, ctx.t))
                .unwrap_or_default(),
            overdue: i.overdue,
        }
    }
}

/// A feed's freshness row.
pub struct FreshRow {
    pub name: String,
    pub entries: usize,
    pub fresh: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    l: Layout,
    range: &'static str,
    chart: Chart,
    total_hits: u64,
    total_queries: u64,
    top_clients: Vec<Count>,
    top_departments: Vec<Count>,
    top_feeds: Vec<Count>,
    top_names: Vec<Count>,
    open: Vec<DueRow>,
    overdue: usize,
    quarantined: Vec<QuarantineEntry>,
    feeds: Vec<FreshRow>,
    health: Vec<(String, String)>,
    errors: Vec<String>,
}

/// The window and its bucket size: `24h` by hours, `7d` by 6 hours, `30d` by days.
fn window(range: &str) -> (&'static str, i64, i64) {
    match range {
        "7d" => ("7d", 28, 6),
        "30d" => ("30d", 30, 24),
        _ => ("24h", 24, 1),
    }
}

fn total(counts: &[Count]) -> u64 {
    counts.iter().map(|c| c.count.max(0) as u64).sum()
}

/// `GET /?range=24h|7d|30d`.
pub async fn page(ctx: Ctx, Query(q): Query<Fields>) -> Response {
    let (range, buckets, hours) = window(field(&q, "range"));
    let now = Utc::now();
    let end = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now) + TimeDelta::hours(1);
    let start = end - TimeDelta::hours(buckets * hours);
    let rfc = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let api = &ctx.console.inner.api;
    let s = &ctx.session;
    let mut errors = Vec::new();

    // One stats call per bucket, concurrently (each is answered from the rollups).
    let mut set = JoinSet::new();
    for b in 0..buckets {
        let (from, to) = (
            start + TimeDelta::hours(b * hours),
            start + TimeDelta::hours((b + 1) * hours),
        );
        let uri = with_query(
            "/api/v1/stats",
            &[("since", &rfc(from)), ("until", &rfc(to)), ("top", "1")],
        );
        let (api, s) = (api.clone(), s.clone());
        set.spawn(async move { (b, api.get::<Stats>(&s, &uri).await) });
    }
    let whole = with_query(
        "/api/v1/stats",
        &[("since", &rfc(start)), ("until", &rfc(end)), ("top", "10")],
    );
    let (stats, incidents, quarantine, feeds, health) = tokio::join!(
        api.get::<Stats>(s, &whole),
        api.get::<IncidentPage>(s, "/api/v1/incidents?limit=1000"),
        api.get::<QuarantineList>(s, "/api/v1/quarantine"),
        api.get::<Vec<Feed>>(s, "/api/v1/feeds"),
        api.get::<serde_json::Value>(s, "/healthz"),
    );
    let mut counts = vec![0u64; buckets as usize];
    while let Some(done) = set.join_next().await {
        match done {
            Ok((b, Ok(st))) => counts[b as usize] = total(&st.hits_by_action),
            Ok((_, Err(e))) => errors.push(e.message),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let tz = ctx.console.inner.tz;
    let fmt = if hours >= 24 { "%m-%d" } else { "%m-%d %H:00" };
    let labelled: Vec<(String, u64)> = counts
        .iter()
        .enumerate()
        .map(|(b, c)| {
            let from = start + TimeDelta::hours(b as i64 * hours);
            (from.with_timezone(&tz).format(fmt).to_string(), *c)
        })
        .collect();

    let stats = stats.unwrap_or_else(|e| {
        errors.push(e.message);
        Stats::default()
    });
    let mut open: Vec<&Incident> = Vec::new();
    let incidents = incidents.map(|p| p.items).unwrap_or_else(|e| {
        errors.push(e.message);
        vec![]
    });
    open.extend(incidents.iter().filter(|i| i.status != "closed"));
    open.sort_by(|a, b| next_due(a).unwrap_or("~").cmp(next_due(b).unwrap_or("~")));
    let overdue = open.iter().filter(|i| i.overdue).count();
    let quarantined = quarantine.map(|q| q.items).unwrap_or_else(|e| {
        errors.push(e.message);
        vec![]
    });
    let feeds = match feeds {
        Ok(f) => f
            .iter()
            .map(|f| FreshRow {
                name: f.name.clone(),
                entries: f.entries,
                fresh: f
                    .fresh()
                    .map(|t| show(t, tz))
                    .unwrap_or_else(|| ctx.t.unknown.into()),
                error: f
                    .last_error
                    .clone()
                    .or_else(|| f.fetch.as_ref().and_then(|x| x.error.clone()))
                    .unwrap_or_default(),
            })
            .collect(),
        // No feed registry on this node (503): not an error worth a banner.
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => vec![],
        Err(e) => {
            errors.push(e.message);
            vec![]
        }
    };
    let tpl = Overview {
        l: ctx.layout("overview"),
        range,
        chart: bars(&labelled),
        total_hits: total(&stats.hits_by_action),
        total_queries: total(&stats.queries_by_action),
        top_clients: stats.top_clients,
        top_departments: stats.top_departments,
        top_feeds: stats.top_feeds,
        top_names: stats.top_blocked_names,
        open: open
            .iter()
            .take(20)
            .map(|i| DueRow::new(i, &ctx, now))
            .collect(),
        overdue,
        quarantined,
        feeds,
        health: health
            .map(|h| flatten(&h))
            .unwrap_or_else(|e| vec![("status".into(), e.message)]),
        errors,
    };
    render(StatusCode::OK, &tpl)
}

/// `/healthz` as `key: value` lines (`store_writer.queued: 0`), for a generic table.
fn flatten(v: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(obj) = v.as_object() {
        for (k, v) in obj {
            match v {
                serde_json::Value::Object(inner) => {
                    for (k2, v2) in inner {
                        out.push((format!("{k}.{k2}"), scalar(v2)));
                    }
                }
                other => out.push((k.clone(), scalar(other))),
            }
        }
    }
    out
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".into(),
        other => other.to_string(),
    }
}
