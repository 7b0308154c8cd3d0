//! `GET /hits`: the hit list and the query log with the API's filters, cursor paging and
//! CSV/NDJSON export of the current filter.
//!
//! The form's field names are the API's parameters, so a filter is passed through as typed
//! and the API's 400 names the field that is wrong. Times are typed in the console's zone
//! and sent as UTC.

use askama::Template;
use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Fields, field};
use crate::Ctx;
use crate::api::with_query;
use crate::context::{Layout, render};
use crate::time::{from_local_input, show};
use crate::views::{Item, ListResponse};

/// The filters both lists take, in form order.
const COMMON: [&str; 8] = [
    "client",
    "name",
    "type",
    "action",
    "feed",
    "department",
    "since",
    "until",
];
/// Who sent it: on hits the identity stored with the hit; on the query log the addresses that
/// device or person held at the time (the API's `queries_who`).
const WHO: [&str; 4] = ["mac", "account", "owner", "asset"];
/// Most pages one export gathers (1,000 rows each); docs/CONSOLE.md.
const MAX_EXPORT_PAGES: usize = 100;

/// Which list: hits (blocked queries, with identity) or every query.
fn table(q: &Fields) -> &'static str {
    if field(q, "table") == "queries" {
        "queries"
    } else {
        "hits"
    }
}

/// The API parameters of the current filter (times converted to UTC), without paging.
fn filter(q: &Fields, ctx: &Ctx) -> Vec<(&'static str, String)> {
    let tz = ctx.console.inner.tz;
    COMMON
        .iter()
        .chain(WHO.iter())
        .copied()
        .filter_map(|k| {
            let v = field(q, k);
            let v = if k == "since" || k == "until" {
                from_local_input(v, tz).unwrap_or_else(|| v.to_string())
            } else {
                v.to_string()
            };
            // On hits the department box finds part of a name, as staff type it; the query log
            // (millions of rows a day) keeps the exact match its block filters can skip by.
            let k = if k == "department" && table(q) == "hits" {
                "department_contains"
            } else {
                k
            };
            (!v.is_empty()).then_some((k, v))
        })
        .collect()
}

fn pairs<'a>(f: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    f.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A row ready to show.
struct Row {
    time: String,
    client: String,
    name: String,
    qtype: String,
    action: String,
    feed: String,
    rule: String,
    answer: String,
    department: String,
    /// Hits only: owner, account and MAC at the time, as far as known.
    who: String,
}

impl Row {
    fn new(i: Item, tz: chrono_tz::Tz) -> Self {
        Self {
            time: show(&i.time, tz),
            client: i.client,
            name: i.name,
            qtype: i.qtype,
            action: i.action,
            feed: i.feed.unwrap_or_default(),
            rule: i.rule.unwrap_or_default(),
            answer: i.answer,
            department: i.department.unwrap_or_default(),
            who: i
                .identity
                .map(|id| {
                    [id.owner, id.account, id.mac]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" · ")
                })
                .unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "hits.html")]
struct HitsPage {
    l: Layout,
    table: &'static str,
    /// The form's current values (as typed).
    v: Fields,
    rows: Vec<Row>,
    error: Option<String>,
    older: Option<String>,
    newest: Option<String>,
    csv: String,
    ndjson: String,
    hit_only: bool,
}

impl HitsPage {
    /// The form field's current value, or `default`.
    fn val<'a>(&'a self, k: &str, default: &'a str) -> &'a str {
        match field(&self.v, k) {
            "" => default,
            v => v,
        }
    }
}

/// `GET /hits?table=hits|queries&client=…&cursor=…`.
pub async fn page(ctx: Ctx, Query(q): Query<Fields>) -> Response {
    let table = table(&q);
    let f = filter(&q, &ctx);
    let mut api_pairs = pairs(&f);
    let limit = match field(&q, "limit") {
        "" => "100",
        l => l,
    };
    api_pairs.push(("limit", limit));
    let cursor = field(&q, "cursor");
    api_pairs.push(("cursor", cursor));
    let uri = with_query(&format!("/api/v1/{table}"), &api_pairs);
    let (rows, next, error, status) = match ctx
        .console
        .inner
        .api
        .get::<ListResponse>(&ctx.session, &uri)
        .await
    {
        Ok(p) => (
            p.items
                .into_iter()
                .map(|i| Row::new(i, ctx.console.inner.tz))
                .collect(),
            p.next_cursor,
            None,
            StatusCode::OK,
        ),
        Err(e) => (Vec::new(), None, Some(e.message), e.status),
    };
    // Links keep the form's own values (local times), plus the table and paging.
    let mut own: Vec<(&str, &str)> = vec![("table", table)];
    for k in COMMON.iter().chain(WHO.iter()) {
        own.push((k, field(&q, k)));
    }
    own.push(("limit", field(&q, "limit")));
    let older = next.map(|c| {
        let mut p = own.clone();
        p.push(("cursor", &c));
        with_query("/hits", &p)
    });
    let newest = (!cursor.is_empty()).then(|| with_query("/hits", &own));
    let export = |format: &str| {
        let mut p = own.clone();
        p.push(("format", format));
        with_query("/hits/export", &p)
    };
    let tpl = HitsPage {
        l: ctx.layout("hits"),
        table,
        rows,
        error,
        older,
        newest,
        csv: export("csv"),
        ndjson: export("ndjson"),
        hit_only: table == "hits",
        v: q,
    };
    render(status, &tpl)
}

/// `GET /hits/export?format=csv|ndjson&…`: every page of the current filter (up to
/// [`MAX_EXPORT_PAGES`] × 1,000 rows) as one download, exactly as the API writes it.
pub async fn export(ctx: Ctx, Query(q): Query<Fields>) -> Response {
    let table = table(&q);
    let format = if field(&q, "format") == "ndjson" {
        "ndjson"
    } else {
        "csv"
    };
    let f = filter(&q, &ctx);
    let mut body: Vec<u8> = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..MAX_EXPORT_PAGES {
        let mut p = pairs(&f);
        p.push(("format", format));
        p.push(("limit", "1000"));
        // Only the first page carries the CSV header and Excel's byte order mark.
        if page > 0 && format == "csv" {
            p.push(("bom", "false"));
        }
        if let Some(c) = &cursor {
            p.push(("cursor", c));
        }
        let uri = with_query(&format!("/api/v1/{table}"), &p);
        let raw = match ctx.console.inner.api.fetch(&ctx.session, &uri).await {
            Ok(r) => r,
            Err(e) => return ctx.failure(e),
        };
        let chunk: &[u8] = &raw.body;
        if page > 0 && format == "csv" {
            // Drop the repeated header line.
            let rest = chunk
                .iter()
                .position(|b| *b == b'\n')
                .map(|i| &chunk[i + 1..])
                .unwrap_or(&[]);
            body.extend_from_slice(rest);
        } else {
            body.extend_from_slice(chunk);
        }
        match raw.next_cursor {
            Some(c) if !c.is_empty() => cursor = Some(c),
            _ => break,
        }
    }
    let (ct, ext) = if format == "csv" {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson", "ndjson")
    };
    let name = format!(
        "attachment; filename=\"poolguard-{table}-{}.{ext}\"",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    (
        [
            (header::CONTENT_TYPE, ct.to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        body,
    )
        .into_response()
}
