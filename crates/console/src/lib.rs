//! The staff web console: the whole accountability loop in a browser, in Chinese and English.
//!
//! Server-rendered HTML, no script, everything compiled into the binary (templates through
//! askama, one stylesheet). Each page is a client of the API *in this process*: a handler
//! calls the API's own router with the signed-in person's credential ([`api`]), reads the
//! JSON and renders it, so what a role may do, how a parameter is validated, why a status
//! move is refused (the 409 reasons) and what is audited are the API's alone. The console
//! adds sign-in ([`session`]), CSRF tokens on every form, the two languages ([`i18n`]) and
//! times in the campus zone ([`time`]). docs/CONSOLE.md has the design and the numbers.

pub mod api;
mod chart;
mod context;
pub mod i18n;
mod pages;
pub mod password;
pub mod session;
pub mod time;
mod views;

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use poolguard_api::{ApiState, Tokens};
use poolguard_config::incidents::NoticeConfig;
use poolguard_config::{ConsoleConfig, PasswordHash, Role};

pub use context::Ctx;

/// A `[[console.users]]` account, its hash parsed once.
struct User {
    name: String,
    role: Role,
    hash: PasswordHash,
}

/// What every console handler shares.
pub(crate) struct Inner {
    pub(crate) api: api::Api,
    pub(crate) sessions: session::Sessions,
    /// The API's live token set (swapped on SIGHUP), for token sign-in.
    tokens: Arc<ArcSwap<Tokens>>,
    users: Vec<User>,
    pub(crate) tz: chrono_tz::Tz,
    secure_cookie: bool,
    pub(crate) notice: NoticeConfig,
}

/// The console: build once, then serve [`Console::router`] (merged into the API's listener
/// or on `[console] listen`).
#[derive(Clone)]
pub struct Console {
    pub(crate) inner: Arc<Inner>,
}

impl Console {
    /// A console over the API built from `state`; `config` is `[console]`, `notice` the
    /// notice page it previews.
    pub fn new(state: &ApiState, config: &ConsoleConfig, notice: &NoticeConfig) -> Self {
        let users = config
            .users
            .iter()
            .filter_map(|u| {
                Some(User {
                    name: u.name.clone(),
                    role: u.role,
                    hash: PasswordHash::parse(&u.password)?,
                })
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                api: api::Api::new(poolguard_api::router(state.clone())),
                sessions: session::Sessions::new(config.ttl()),
                tokens: state.tokens.clone(),
                users,
                tz: config.tz(),
                secure_cookie: config.secure_cookie,
                notice: notice.clone(),
            }),
        }
    }

    /// How many sessions are live on this node.
    pub fn sessions(&self) -> usize {
        self.inner.sessions.len()
    }

    /// Every console route, with the security headers on each answer.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(pages::overview::page))
            .route("/console.css", get(pages::assets::css))
            .route(
                "/signin",
                get(pages::signin::form).post(pages::signin::submit),
            )
            .route("/signout", post(pages::signin::signout))
            .route("/lang", get(pages::signin::switch_lang))
            .route("/hits", get(pages::hits::page))
            .route("/hits/export", get(pages::hits::export))
            .route("/incidents", get(pages::incidents::queue))
            .route(
                "/incidents/{id}",
                get(pages::incidents::page).post(pages::incidents::update),
            )
            .route("/incidents/{id}/notes", post(pages::incidents::note))
            .route(
                "/incidents/{id}/narrative",
                post(pages::incidents::narrative),
            )
            .route("/incidents/{id}/report", get(pages::incidents::report))
            .route(
                "/quarantine",
                get(pages::quarantine::page).post(pages::quarantine::add),
            )
            .route("/quarantine/release", post(pages::quarantine::release))
            .route("/quarantine/notice", get(pages::quarantine::notice))
            .route("/feeds", get(pages::feeds::list).post(pages::feeds::create))
            .route("/feeds/{name}", get(pages::feeds::page))
            .route("/feeds/{name}/upload", post(pages::feeds::upload))
            .route("/feeds/{name}/restore", post(pages::feeds::restore))
            .route("/check", get(pages::feeds::check))
            .route("/publish/{format}", get(pages::feeds::publish))
            .route("/clients", get(pages::clients::page))
            // Uploads are bounded again by the API (`[api] max_upload_mb`).
            .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
            .layer(axum::middleware::map_response(security_headers))
            .with_state(self.clone())
    }

    /// The caller a token or a username/password pair signs in as, if any.
    pub(crate) async fn authenticate(
        &self,
        token: &str,
        user: &str,
        password: &str,
    ) -> Option<(poolguard_api::Caller, session::Credential)> {
        if !token.trim().is_empty() {
            let caller = self.inner.tokens.load().verify(token.trim())?;
            return Some((caller, session::Credential::Token(token.trim().to_string())));
        }
        let account = self.inner.users.iter().find(|u| u.name == user)?;
        let (hash, password, name, role) = (
            account.hash.clone(),
            password.to_string(),
            account.name.clone(),
            account.role,
        );
        // PBKDF2 is deliberately slow: off the async workers.
        let ok = tokio::task::spawn_blocking(move || password::verify(&password, &hash))
            .await
            .unwrap_or(false);
        ok.then_some((
            poolguard_api::Caller { name, role },
            session::Credential::User,
        ))
    }

    /// Whether cookies for this request must be `Secure`.
    pub(crate) fn secure(&self, headers: &axum::http::HeaderMap) -> bool {
        self.inner.secure_cookie
            || headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
    }
}

/// No script may run, nothing loads from another host, no other site may frame the console,
/// and no page is cached (they show evidence about people). A route that sets its own CSP
/// (the notice preview, whose page carries inline style) keeps it.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
