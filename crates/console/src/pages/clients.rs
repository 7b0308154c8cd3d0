//! `GET /clients?ip=&at=`: who an address was (at a time), its recent queries and hits, and
//! its incidents.

use askama::Template;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;

use super::{Fields, field};
use crate::Ctx;
use crate::api::{segment, with_query};
use crate::context::{Layout, render};
use crate::time::{from_local_input, show, show_opt};
use crate::views::{Client, Holding, Incident, IncidentPage, Item, ListResponse, identity_rows};

/// A query or hit row.
struct Row {
    time: String,
    name: String,
    qtype: String,
    action: String,
    feed: String,
}

impl Row {
    fn new(i: Item, tz: chrono_tz::Tz) -> Self {
        Self {
            time: show(&i.time, tz),
            name: i.name,
            qtype: i.qtype,
            action: i.action,
            feed: i.feed.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "clients.html")]
struct ClientsPage {
    l: Layout,
    ip: String,
    at: String,
    client: Option<Client>,
    identity: Vec<(&'static str, String)>,
    holdings: Vec<Holding>,
    first_seen: String,
    last_seen: String,
    hits: Vec<Row>,
    queries: Vec<Row>,
    incidents: Vec<Incident>,
    error: Option<String>,
}

/// Incidents of this client among the most recent 1,000 (the API's list has no client filter).
const INCIDENTS_SCANNED: &str = "1000";

/// `GET /clients?ip=10.20.3.7&at=2026-12-01T09:00`.
pub async fn page(ctx: Ctx, Query(q): Query<Fields>) -> Response {
    let (ip, at) = (field(&q, "ip").to_string(), field(&q, "at").to_string());
    let tz = ctx.console.inner.tz;
    let t = ctx.t;
    let mut tpl = ClientsPage {
        l: ctx.layout("clients"),
        ip: ip.clone(),
        at: at.clone(),
        client: None,
        identity: vec![],
        holdings: vec![],
        first_seen: String::new(),
        last_seen: String::new(),
        hits: vec![],
        queries: vec![],
        incidents: vec![],
        error: None,
    };
    if ip.is_empty() {
        return render(StatusCode::OK, &tpl);
    }
    let api = &ctx.console.inner.api;
    let s = &ctx.session;
    let at_utc = from_local_input(&at, tz).unwrap_or_default();
    let one = with_query(
        &format!("/api/v1/clients/{}", segment(&ip)),
        &[("at", &at_utc)],
    );
    let recent = with_query("/api/v1/queries", &[("client", &ip), ("limit", "20")]);
    let list = format!("/api/v1/incidents?limit={INCIDENTS_SCANNED}");
    let (client, queries, incidents) = tokio::join!(
        api.get::<Client>(s, &one),
        api.get::<ListResponse>(s, &recent),
        api.get::<IncidentPage>(s, &list),
    );
    let mut status = StatusCode::OK;
    match client {
        Ok(mut c) => {
            if let Some(i) = &c.identity {
                tpl.identity = identity_rows(i, t);
            }
            tpl.first_seen = show_opt(c.first_seen.as_deref(), tz);
            tpl.last_seen = show_opt(c.last_seen.as_deref(), tz);
            tpl.holdings = std::mem::take(&mut c.holdings)
                .into_iter()
                .map(|mut h| {
                    h.start = show(&h.start, tz);
                    h.end = h.end.map(|e| show(&e, tz));
                    h
                })
                .collect();
            tpl.hits = std::mem::take(&mut c.recent_hits)
                .into_iter()
                .map(|i| Row::new(i, tz))
                .collect();
            tpl.client = Some(c);
        }
        Err(e) => {
            status = e.status;
            tpl.error = Some(e.message);
        }
    }
    if let Ok(p) = queries {
        tpl.queries = p.items.into_iter().map(|i| Row::new(i, tz)).collect();
    }
    if let Ok(p) = incidents {
        tpl.incidents = p.items.into_iter().filter(|i| i.client == ip).collect();
    }
    render(status, &tpl)
}
