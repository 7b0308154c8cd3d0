//! Who is asking, in which language: the extractor every signed-in page starts from.
//!
//! [`Ctx`] finds the session from the cookie; without a live one a GET is redirected to the
//! sign-in page (coming back afterwards) and anything else is refused, so a cookie from
//! before sign-out or expiry opens nothing. [`Layout`] is what the shared page frame needs.

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use poolguard_api::Permission;

use crate::Console;
use crate::api::ApiFailure;
use crate::i18n::{Labels, Lang};
use crate::session::{SESSION_COOKIE, Session, cookie};

/// A signed-in request.
pub struct Ctx {
    /// The console's shared state (the API router, sessions, zone).
    pub console: Console,
    /// The signed-in person's session.
    pub session: Session,
    /// The session's id (the cookie's value), for sign-out.
    pub sid: String,
    /// The page's language.
    pub lang: Lang,
    /// Its labels.
    pub t: &'static Labels,
    /// Path and query of this page, for the language switch to come back to.
    pub here: String,
}

impl FromRequestParts<Console> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        let lang = Lang::from_headers(&parts.headers);
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let found = cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|sid| Some((sid.to_string(), console.inner.sessions.get(sid)?)));
        let Some((sid, session)) = found else {
            if parts.method == Method::GET {
                let next = crate::api::with_query("/signin", &[("next", &here)]);
                return Err(Redirect::to(&next).into_response());
            }
            return Err(message_page(
                lang,
                StatusCode::UNAUTHORIZED,
                lang.labels().session_expired,
            ));
        };
        Ok(Ctx {
            console: console.clone(),
            session,
            sid,
            lang,
            t: lang.labels(),
            here,
        })
    }
}

impl Ctx {
    /// The frame around a page: navigation, user, language switch, CSRF token.
    pub fn layout(&self, active: &'static str) -> Layout {
        let other = self.lang.other();
        Layout {
            t: self.t,
            lang: self.lang.tag(),
            other_lang: other.tag(),
            switch_href: crate::api::with_query(
                "/lang",
                &[("to", other.tag()), ("back", &self.here)],
            ),
            user: self.session.caller.name.clone(),
            role: format!("{:?}", self.session.caller.role).to_lowercase(),
            csrf: self.session.csrf.clone(),
            tz: self.console.inner.tz.name().to_string(),
            active,
            signed_in: true,
        }
    }

    /// May this person change incidents and quarantine (investigator, admin)?
    pub fn can_investigate(&self) -> bool {
        Permission::WriteIncidents.allows(self.session.caller.role)
    }

    /// May this person change feeds (feeds, admin)?
    pub fn can_edit_feeds(&self) -> bool {
        Permission::WriteFeeds.allows(self.session.caller.role)
    }

    /// The 403 page to answer with when a form's `csrf` field is not the session's; None when
    /// it matches.
    pub fn csrf_refusal(&self, presented: Option<&String>) -> Option<Response> {
        match presented {
            Some(p) if self.session.csrf_ok(p) => None,
            _ => {
                tracing::info!(caller = %self.session.caller.name, path = %self.here, "console write refused: CSRF token missing or wrong");
                Some(message_page(
                    self.lang,
                    StatusCode::FORBIDDEN,
                    self.t.csrf_refused,
                ))
            }
        }
    }

    /// The page for an API failure: its status and the API's message.
    pub fn failure(&self, f: ApiFailure) -> Response {
        let text = if f.status == StatusCode::FORBIDDEN {
            format!("{} ({})", self.t.forbidden, f.message)
        } else {
            f.message
        };
        let tpl = MessagePage {
            l: self.layout(""),
            title: format!("{} {}", self.t.error, f.status.as_u16()),
            text,
        };
        render(f.status, &tpl)
    }
}

/// The page frame's data (base.html).
pub struct Layout {
    pub t: &'static Labels,
    pub lang: &'static str,
    pub other_lang: &'static str,
    pub switch_href: String,
    pub user: String,
    pub role: String,
    pub csrf: String,
    pub tz: String,
    /// Which navigation entry is the current page.
    pub active: &'static str,
    pub signed_in: bool,
}

impl Layout {
    /// The frame for a page shown before sign-in (no navigation, no user).
    pub fn anonymous(lang: Lang, here: &str, tz: &str) -> Self {
        let other = lang.other();
        Layout {
            t: lang.labels(),
            lang: lang.tag(),
            other_lang: other.tag(),
            switch_href: crate::api::with_query("/lang", &[("to", other.tag()), ("back", here)]),
            user: String::new(),
            role: String::new(),
            csrf: String::new(),
            tz: tz.to_string(),
            active: "",
            signed_in: false,
        }
    }
}

/// An error or notice on its own page.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub l: Layout,
    pub title: String,
    pub text: String,
}

/// A message page without a session (sign-in needed, stale form).
pub fn message_page(lang: Lang, status: StatusCode, text: &str) -> Response {
    let tpl = MessagePage {
        l: Layout::anonymous(lang, "/", ""),
        title: format!("{} {}", lang.labels().error, status.as_u16()),
        text: text.to_string(),
    };
    render(status, &tpl)
}

/// Renders a template as an HTML answer with `status`.
pub fn render<T: Template>(status: StatusCode, tpl: &T) -> Response {
    match tpl.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}
