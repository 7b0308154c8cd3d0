//! `GET /quarantine`: who is cut off and why; add and release with a reason; the notice page
//! the quarantined clients' browsers land on.

use askama::Template;
use axum::Form;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::{Fields, field};
use crate::Ctx;
use crate::api::ApiFailure;
use crate::context::{Layout, render};
use crate::time::show;
use crate::views::{QuarantineEntry, QuarantineList};

#[derive(Template)]
#[template(path = "quarantine.html")]
struct QuarantinePage {
    l: Layout,
    rows: Vec<QuarantineEntry>,
    can_write: bool,
    error: Option<String>,
    done: bool,
}

async fn show_list(ctx: &Ctx, error: Option<ApiFailure>, done: bool) -> Response {
    let tz = ctx.console.inner.tz;
    let (rows, list_error) = match ctx
        .console
        .inner
        .api
        .get::<QuarantineList>(&ctx.session, "/api/v1/quarantine")
        .await
    {
        Ok(l) => (
            l.items
                .into_iter()
                .map(|mut q| {
                    q.since = show(&q.since, tz);
                    q
                })
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(e)),
    };
    let error = error.or(list_error);
    let status = error.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let tpl = QuarantinePage {
        l: ctx.layout("quarantine"),
        rows,
        can_write: ctx.can_investigate(),
        error: error.map(|e| e.message),
        done,
    };
    render(status, &tpl)
}

/// `GET /quarantine`.
pub async fn page(ctx: Ctx, axum::extract::Query(q): axum::extract::Query<Fields>) -> Response {
    show_list(&ctx, None, field(&q, "done") == "1").await
}

/// Sends one quarantine write as the signed-in person; back to the list, or the list with the
/// API's refusal.
async fn write(ctx: &Ctx, method: Method, body: serde_json::Value) -> Response {
    let api = &ctx.console.inner.api;
    let res = api
        .call::<serde_json::Value>(&ctx.session, method, "/api/v1/quarantine", Some(&body))
        .await;
    match res {
        Ok(_) => Redirect::to("/quarantine?done=1").into_response(),
        Err(e) => show_list(ctx, Some(e), false).await,
    }
}

/// `POST /quarantine`: ip, reason, optional incident id.
pub async fn add(ctx: Ctx, Form(f): Form<Fields>) -> Response {
    if let Some(refused) = ctx.csrf_refusal(f.get("csrf")) {
        return refused;
    }
    let mut body = serde_json::json!({ "ip": field(&f, "ip"), "reason": field(&f, "reason") });
    if let Ok(id) = field(&f, "incident_id").parse::<i64>() {
        body["incident_id"] = id.into();
    }
    write(&ctx, Method::POST, body).await
}

/// `POST /quarantine/release`: ip and reason.
pub async fn release(ctx: Ctx, Form(f): Form<Fields>) -> Response {
    if let Some(refused) = ctx.csrf_refusal(f.get("csrf")) {
        return refused;
    }
    let body = serde_json::json!({ "ip": field(&f, "ip"), "reason": field(&f, "reason") });
    write(&ctx, Method::DELETE, body).await
}

/// `GET /quarantine/notice`: the notice page exactly as `[notice] listen` serves it (it
/// carries its own inline style, so this answer allows inline style and nothing else).
pub async fn notice(ctx: Ctx) -> Response {
    let html = poolguard_incidents::notice::page(&ctx.console.inner.notice);
    let mut resp = (StatusCode::OK, html).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'",
        ),
    );
    resp
}
