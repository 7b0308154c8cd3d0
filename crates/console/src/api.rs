//! Calls into the API's own router, in this process, as the signed-in person.
//!
//! The console never reads the store or decides a permission itself: each page is one or a
//! few API requests (`tower::ServiceExt::oneshot` on a clone of the router) carrying the
//! person's credential, so validation, role checks, the 409 reasons and the audit rows are
//! exactly the API's. A token session presents its token (so revoking it ends the session);
//! a username/password session carries [`SignedIn`], a request extension nothing from the
//! network can set.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use poolguard_api::SignedIn;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::session::{Credential, Session};

/// Largest API answer the console reads (a page of 1,000 rows is well under this).
const MAX_BODY: usize = 64 << 20;

/// An API answer that was not a success: its status and the API's own message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiFailure {
    /// The API's status (403, 409, …), which the page answers with too.
    pub status: StatusCode,
    /// The API's `error` text, shown to the person as it is.
    pub message: String,
}

/// A raw answer: status, content type, the `X-Next-Cursor` header, body.
pub struct Raw {
    /// The API's status.
    pub status: StatusCode,
    /// Passed on for downloads (CSV, reports, published lists).
    pub content_type: Option<HeaderValue>,
    /// `X-Next-Cursor`, how CSV and NDJSON pages chain.
    pub next_cursor: Option<String>,
    /// The answer as sent.
    pub body: axum::body::Bytes,
}

/// The API router the console calls.
#[derive(Clone)]
pub struct Api {
    router: Router,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: String,
}

impl Api {
    /// Wraps the API's router (as built by `poolguard_api::router`).
    pub fn new(router: Router) -> Self {
        Self { router }
    }

    /// Sends one request as `session`; any status comes back (the caller decides).
    pub async fn raw(
        &self,
        session: &Session,
        method: Method,
        uri: &str,
        content_type: Option<&'static str>,
        body: Vec<u8>,
    ) -> Result<Raw, ApiFailure> {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        match &session.credential {
            Credential::Token(token) => {
                req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            Credential::User => {
                req = req.extension(SignedIn(session.caller.clone()));
            }
        }
        let req = req.body(Body::from(body)).map_err(|e| ApiFailure {
            status: StatusCode::BAD_REQUEST,
            message: format!("cannot build the request for {uri}: {e}"),
        })?;
        let resp = match self.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = resp.status();
        let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
        let next_cursor = resp
            .headers()
            .get("x-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = axum::body::to_bytes(resp.into_body(), MAX_BODY)
            .await
            .map_err(|e| ApiFailure {
                status: StatusCode::BAD_GATEWAY,
                message: format!("reading the API's answer to {uri}: {e}"),
            })?;
        Ok(Raw {
            status,
            content_type,
            next_cursor,
            body,
        })
    }

    /// Sends a request and parses a successful JSON answer as `T`; a failure carries the
    /// API's `error` message.
    pub async fn call<T: DeserializeOwned>(
        &self,
        session: &Session,
        method: Method,
        uri: &str,
        json: Option<&serde_json::Value>,
    ) -> Result<T, ApiFailure> {
        let (ct, body) = match json {
            Some(v) => (Some("application/json"), v.to_string().into_bytes()),
            None => (None, Vec::new()),
        };
        let raw = self.raw(session, method, uri, ct, body).await?;
        decode(uri, raw)
    }

    /// `GET uri` as `session`, the body as it is (CSV, text, a report); a failure carries the
    /// API's message.
    pub async fn fetch(&self, session: &Session, uri: &str) -> Result<Raw, ApiFailure> {
        let raw = self
            .raw(session, Method::GET, uri, None, Vec::new())
            .await?;
        if raw.status.is_success() {
            return Ok(raw);
        }
        Err(match decode::<serde_json::Value>(uri, raw) {
            Err(e) => e,
            Ok(_) => ApiFailure {
                status: StatusCode::BAD_GATEWAY,
                message: format!("{uri} failed"),
            },
        })
    }

    /// `GET uri` as `session`, parsed as `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        session: &Session,
        uri: &str,
    ) -> Result<T, ApiFailure> {
        self.call(session, Method::GET, uri, None).await
    }
}

/// A successful answer parsed as `T`, or the failure with the API's message.
pub fn decode<T: DeserializeOwned>(uri: &str, raw: Raw) -> Result<T, ApiFailure> {
    if !raw.status.is_success() {
        let message = serde_json::from_slice::<ErrorBody>(&raw.body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&raw.body).into_owned());
        return Err(ApiFailure {
            status: raw.status,
            message,
        });
    }
    serde_json::from_slice(&raw.body).map_err(|e| ApiFailure {
        status: StatusCode::BAD_GATEWAY,
        message: format!("the API's answer to {uri} did not parse: {e}"),
    })
}

/// `path?k=v&…` with the non-empty pairs, URL-encoded.
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (*k, v.trim()))
        .collect();
    if kept.is_empty() {
        return path.to_string();
    }
    match serde_urlencoded::to_string(&kept) {
        Ok(q) => format!("{path}?{q}"),
        Err(_) => path.to_string(),
    }
}

/// One path segment, percent-encoded (feed names and addresses in API paths).
pub fn segment(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|q| q.trim_start_matches('=').replace('+', "%20"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_filters_are_left_out_and_values_encoded() {
        assert_eq!(with_query("/x", &[("a", ""), ("b", " ")]), "/x");
        assert_eq!(
            with_query(
                "/x",
                &[("name", "*.pool.example"), ("client", "10.0.0.0/8")]
            ),
            "/x?name=*.pool.example&client=10.0.0.0%2F8"
        );
        assert_eq!(segment("fe80::1"), "fe80%3A%3A1");
    }
}
