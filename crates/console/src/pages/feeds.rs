//! `GET /feeds`: the lists, how fresh each is; one feed's page with upload (the per-line
//! result), versions with a diff and restore; "why is this name blocked" (`/check`); the
//! published lists.

use std::collections::BTreeSet;

use askama::Template;
use axum::extract::{Multipart, Path, Query};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Fields, field};
use crate::Ctx;
use crate::api::{ApiFailure, decode, segment, with_query};
use crate::context::{Layout, render};
use crate::time::{show, show_opt};
use crate::views::{Check, Feed, Version, WriteReport};

/// The published list formats (`GET /api/v1/publish/{format}`).
const PUBLISH: [&str; 4] = ["domains", "hosts", "rpz", "ips"];
/// Most lines of a diff shown per side.
const MAX_DIFF_LINES: usize = 500;

#[derive(Template)]
#[template(path = "feeds.html")]
struct FeedsPage {
    l: Layout,
    can_write: bool,
    feeds: Vec<Feed>,
    fresh: Vec<String>,
    publish: [&'static str; 4],
    error: Option<String>,
}

/// `GET /feeds`.
pub async fn list(ctx: Ctx) -> Response {
    let tz = ctx.console.inner.tz;
    let (feeds, error, status) = match ctx
        .console
        .inner
        .api
        .get::<Vec<Feed>>(&ctx.session, "/api/v1/feeds")
        .await
    {
        Ok(f) => (f, None, StatusCode::OK),
        Err(e) => (Vec::new(), Some(e.message), e.status),
    };
    let fresh = feeds.iter().map(|f| show_opt(f.fresh(), tz)).collect();
    render(
        status,
        &FeedsPage {
            l: ctx.layout("feeds"),
            can_write: ctx.can_edit_feeds(),
            feeds,
            fresh,
            publish: PUBLISH,
            error,
        },
    )
}

/// A diff between two versions: lines only in `from`, lines only in `to`.
struct Diff {
    from: u64,
    to: u64,
    added: Vec<String>,
    removed: Vec<String>,
}

#[derive(Template)]
#[template(path = "feed.html")]
struct FeedPage {
    l: Layout,
    f: Feed,
    fresh: String,
    versions: Vec<(Version, String)>,
    can_write: bool,
    report: Option<WriteReport>,
    before: Option<usize>,
    diff: Option<Diff>,
    error: Option<String>,
}

async fn show_feed(
    ctx: &Ctx,
    name: &str,
    q: &Fields,
    report: Option<(usize, WriteReport)>,
    error: Option<ApiFailure>,
) -> Response {
    let api = &ctx.console.inner.api;
    let tz = ctx.console.inner.tz;
    let base = format!("/api/v1/feeds/{}", segment(name));
    let f = match api.get::<Feed>(&ctx.session, &base).await {
        Ok(f) => f,
        Err(e) => return ctx.failure(e),
    };
    let versions: Vec<Version> = api
        .get(&ctx.session, &format!("{base}/versions"))
        .await
        .unwrap_or_default();
    let mut diff = None;
    let mut error = error;
    if let (Ok(from), Ok(to)) = (
        field(q, "from").parse::<u64>(),
        field(q, "to").parse::<u64>(),
    ) {
        match version_diff(ctx, &base, from, to).await {
            Ok(d) => diff = Some(d),
            Err(e) => error = error.or(Some(e)),
        }
    }
    let status = error.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let (before, report) = match report {
        Some((b, r)) => (Some(b), Some(r)),
        None => (None, None),
    };
    let tpl = FeedPage {
        l: ctx.layout("feeds"),
        fresh: show_opt(f.fresh(), tz),
        f,
        versions: versions
            .into_iter()
            .map(|v| {
                let t = show(&v.time, tz);
                (v, t)
            })
            .collect(),
        can_write: ctx.can_edit_feeds(),
        report,
        before,
        diff,
        error: error.map(|e| e.message),
    };
    render(status, &tpl)
}

async fn version_text(ctx: &Ctx, base: &str, id: u64) -> Result<String, ApiFailure> {
    let uri = format!("{base}/versions/{id}");
    let raw = ctx.console.inner.api.fetch(&ctx.session, &uri).await?;
    Ok(String::from_utf8_lossy(&raw.body).into_owned())
}

async fn version_diff(ctx: &Ctx, base: &str, from: u64, to: u64) -> Result<Diff, ApiFailure> {
    let (a, b) = (
        version_text(ctx, base, from).await?,
        version_text(ctx, base, to).await?,
    );
    let lines = |s: &str| -> BTreeSet<String> {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (la, lb) = (lines(&a), lines(&b));
    Ok(Diff {
        from,
        to,
        added: lb.difference(&la).take(MAX_DIFF_LINES).cloned().collect(),
        removed: la.difference(&lb).take(MAX_DIFF_LINES).cloned().collect(),
    })
}

/// `GET /feeds/{name}?from=&to=`.
pub async fn page(ctx: Ctx, Path(name): Path<String>, Query(q): Query<Fields>) -> Response {
    show_feed(&ctx, &name, &q, None, None).await
}

/// The feed's entry count now (0 when it cannot be read): the "before" of a write's result.
async fn entries(ctx: &Ctx, base: &str) -> usize {
    let api = &ctx.console.inner.api;
    api.get::<Feed>(&ctx.session, base)
        .await
        .map(|f| f.entries)
        .unwrap_or(0)
}

/// The feed page after a write: its per-line result, or the API's refusal.
async fn written(
    ctx: &Ctx,
    name: &str,
    before: usize,
    res: Result<WriteReport, ApiFailure>,
) -> Response {
    match res {
        Ok(report) => show_feed(ctx, name, &Fields::new(), Some((before, report)), None).await,
        Err(e) => show_feed(ctx, name, &Fields::new(), None, Some(e)).await,
    }
}

/// `POST /feeds/{name}/upload` (multipart: `csrf`, `file`): replaces the list; the page then
/// shows each rejected line with its reason and the entry count before and after.
pub async fn upload(ctx: Ctx, Path(name): Path<String>, form: Multipart) -> Response {
    let (fields, content) = match read_form(&ctx, form).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    put(&ctx, &name, fields, content).await
}

/// `POST /feeds` (multipart: `csrf`, `name`, `kind`, `file`): a new feed from a file, as
/// `PUT /api/v1/feeds/{name}?kind=` creates it.
pub async fn create(ctx: Ctx, form: Multipart) -> Response {
    let (fields, content) = match read_form(&ctx, form).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let name = field(&fields, "name").to_string();
    put(&ctx, &name, fields, content).await
}

/// A multipart form's text fields and its `file`, after the CSRF check.
async fn read_form(ctx: &Ctx, mut form: Multipart) -> Result<(Fields, Vec<u8>), Response> {
    let bad = |message: String| {
        ctx.failure(ApiFailure {
            status: StatusCode::BAD_REQUEST,
            message,
        })
    };
    let mut fields = Fields::new();
    let mut content = Vec::new();
    loop {
        match form.next_field().await {
            Ok(Some(f)) => {
                let key = f.name().unwrap_or("").to_string();
                match f.bytes().await {
                    Ok(b) if key == "file" => content = b.to_vec(),
                    Ok(b) => {
                        fields.insert(key, String::from_utf8_lossy(&b).into_owned());
                    }
                    Err(e) => return Err(bad(e.body_text())),
                }
            }
            Ok(None) => break,
            Err(e) => return Err(bad(e.body_text())),
        }
    }
    if let Some(refused) = ctx.csrf_refusal(fields.get("csrf")) {
        return Err(refused);
    }
    Ok((fields, content))
}

/// Replaces (or creates, with `kind`) feed `name` with `content`; the feed page shows the
/// per-line result.
async fn put(ctx: &Ctx, name: &str, fields: Fields, content: Vec<u8>) -> Response {
    let base = format!("/api/v1/feeds/{}", segment(name));
    let before = entries(ctx, &base).await;
    let uri = with_query(
        &base,
        &[("verbose", "true"), ("kind", field(&fields, "kind"))],
    );
    let res = match ctx
        .console
        .inner
        .api
        .raw(&ctx.session, Method::PUT, &uri, Some("text/plain"), content)
        .await
    {
        Ok(raw) => decode::<WriteReport>(&uri, raw),
        Err(e) => Err(e),
    };
    written(ctx, name, before, res).await
}

/// `POST /feeds/{name}/restore` (`csrf`, `id`): puts a saved version back in force.
pub async fn restore(
    ctx: Ctx,
    Path(name): Path<String>,
    axum::Form(f): axum::Form<Fields>,
) -> Response {
    if let Some(refused) = ctx.csrf_refusal(f.get("csrf")) {
        return refused;
    }
    let base = format!("/api/v1/feeds/{}", segment(&name));
    let before = entries(&ctx, &base).await;
    let uri = format!("{base}/versions/{}/restore", segment(field(&f, "id")));
    let res = ctx
        .console
        .inner
        .api
        .call::<WriteReport>(&ctx.session, Method::POST, &uri, None)
        .await;
    written(&ctx, &name, before, res).await
}

#[derive(Template)]
#[template(path = "check.html")]
struct CheckPage {
    l: Layout,
    name: String,
    client: String,
    answer: Option<Check>,
    quarantined: Option<bool>,
    error: Option<String>,
}

#[derive(serde::Deserialize)]
struct CheckAnswer {
    #[serde(flatten)]
    report: Check,
    quarantined: Option<bool>,
}

/// `GET /check?name=&client=`: what DNS would do with the name, and which rule decides.
pub async fn check(ctx: Ctx, Query(q): Query<Fields>) -> Response {
    let (name, client) = (
        field(&q, "name").to_string(),
        field(&q, "client").to_string(),
    );
    let (mut answer, mut quarantined, mut error, mut status) = (None, None, None, StatusCode::OK);
    if !name.is_empty() {
        let uri = with_query("/api/v1/check", &[("name", &name), ("client", &client)]);
        match ctx
            .console
            .inner
            .api
            .get::<CheckAnswer>(&ctx.session, &uri)
            .await
        {
            Ok(a) => {
                answer = Some(a.report);
                quarantined = a.quarantined;
            }
            Err(e) => {
                status = e.status;
                error = Some(e.message);
            }
        }
    }
    render(
        status,
        &CheckPage {
            l: ctx.layout("feeds"),
            name,
            client,
            answer,
            quarantined,
            error,
        },
    )
}

/// `GET /publish/{format}`: a published list as the API serves it (text).
pub async fn publish(ctx: Ctx, Path(format): Path<String>) -> Response {
    let uri = format!("/api/v1/publish/{}", segment(&format));
    match ctx.console.inner.api.fetch(&ctx.session, &uri).await {
        Ok(raw) => {
            let ct = raw
                .content_type
                .unwrap_or(HeaderValue::from_static("text/plain; charset=utf-8"));
            (raw.status, [(header::CONTENT_TYPE, ct)], raw.body).into_response()
        }
        Err(e) => ctx.failure(e),
    }
}
