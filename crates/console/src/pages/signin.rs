//! Sign-in, sign-out and the language switch.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::{Fields, field, local_path};
use crate::context::{Layout, render};
use crate::i18n::{LANG_COOKIE, Lang};
use crate::session::{clear_cookie, session_cookie};
use crate::{Console, Ctx};

#[derive(Template)]
#[template(path = "signin.html")]
struct SignIn {
    l: Layout,
    next: String,
    message: Option<String>,
    message_class: &'static str,
}

fn sign_in_page(
    console: &Console,
    lang: Lang,
    next: &str,
    message: Option<(&str, &'static str)>,
    status: StatusCode,
) -> Response {
    let tpl = SignIn {
        l: Layout::anonymous(lang, "/signin", console.inner.tz.name()),
        next: local_path(next),
        message: message.map(|m| m.0.to_string()),
        message_class: message.map(|m| m.1).unwrap_or(""),
    };
    render(status, &tpl)
}

/// `GET /signin`.
pub async fn form(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(q): Query<Fields>,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let t = lang.labels();
    let message = match field(&q, "msg") {
        "out" => Some((t.signed_out, "ok")),
        _ => None,
    };
    sign_in_page(&console, lang, field(&q, "next"), message, StatusCode::OK)
}

/// `POST /signin`: a token, or a user name and password, becomes a session cookie.
pub async fn submit(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let next = local_path(field(&f, "next"));
    let Some((caller, credential)) = console
        .authenticate(field(&f, "token"), field(&f, "user"), field(&f, "password"))
        .await
    else {
        tracing::info!(user = %field(&f, "user"), "console sign-in refused");
        return sign_in_page(
            &console,
            lang,
            &next,
            Some((lang.labels().bad_sign_in, "error")),
            StatusCode::UNAUTHORIZED,
        );
    };
    tracing::info!(caller = %caller.name, role = ?caller.role, "console sign-in");
    let sid = console.inner.sessions.create(caller, credential);
    let cookie = session_cookie(&sid, console.inner.sessions.ttl(), console.secure(&headers));
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

/// `POST /signout`: the session ends on the server, so its cookie opens nothing afterwards.
pub async fn signout(ctx: Ctx, headers: HeaderMap, Form(f): Form<Fields>) -> Response {
    if let Some(refused) = ctx.csrf_refusal(f.get("csrf")) {
        return refused;
    }
    ctx.console.inner.sessions.remove(&ctx.sid);
    tracing::info!(caller = %ctx.session.caller.name, "console sign-out");
    (
        [(
            header::SET_COOKIE,
            clear_cookie(ctx.console.secure(&headers)),
        )],
        Redirect::to("/signin?msg=out"),
    )
        .into_response()
}

/// `GET /lang?to=zh-CN&back=/hits`: remembers the choice in a cookie for a year.
pub async fn switch_lang(Query(q): Query<Fields>) -> Response {
    let lang = Lang::parse(field(&q, "to")).unwrap_or(Lang::En);
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; SameSite=Strict; Max-Age=31536000",
        lang.tag()
    );
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to(&local_path(field(&q, "back"))),
    )
        .into_response()
}
