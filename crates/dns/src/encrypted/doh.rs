//! DNS over HTTPS (RFC 8484) on hyper: HTTP/2 or HTTP/1.1 by ALPN, GET and POST on one path.
//!
//! What a request gets, in order (RFC 8484 §4 and HTTP semantics):
//! * another path → 404; a method other than GET/POST → 405 with `Allow: GET, POST`;
//! * GET: `?dns=` must be base64url (RFC 4648 §5; padding tolerated) → else 400; longer than
//!   `max_body_bytes` decoded → 414;
//! * POST: `Content-Type` must be `application/dns-message` → else 415; a body (declared or
//!   read) over `max_body_bytes` → 413;
//! * bytes that are not a DNS query (too short, a response, unparsable) → 400;
//! * otherwise 200 `application/dns-message` with `Cache-Control: max-age` = the smallest TTL
//!   in the answer and authority sections (RFC 8484 §5.1; 0 when there are none), whatever
//!   the DNS rcode (a block, REFUSED and SERVFAIL are DNS answers, not HTTP errors).
//!
//! The connection's idle bound: one with no request in flight for `idle_timeout_ms` is
//! closed (hyper bounds HTTP/1.1 header reads itself, but not an idle HTTP/2 connection).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use hickory_proto::op::Message;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Encrypted, handshake, rejected};
use crate::listen::{Frontend, accept_loop};

/// The media type of a DNS message in HTTP (RFC 8484 §6).
const DNS_MESSAGE: &str = "application/dns-message";
/// base64url as RFC 8484 §4.1 sends it (no padding); padded input is accepted too.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A DoH listener's settings besides TLS.
pub struct DohSite {
    /// TLS and the connection limits.
    pub tls: Encrypted,
    /// The endpoint's path, e.g. `/dns-query`.
    pub path: String,
    /// Largest query accepted (POST body or decoded GET parameter).
    pub max_body: usize,
    /// Concurrent HTTP/2 streams per connection (`[dns] max_tcp_pipeline`).
    pub max_streams: u32,
}

/// Accepts DoH connections until `token` is cancelled.
pub async fn serve_doh(
    front: Arc<Frontend>,
    listener: TcpListener,
    site: Arc<DohSite>,
    token: CancellationToken,
) {
    let max = site.tls.max_connections;
    accept_loop(
        listener,
        &token,
        max,
        || rejected("doh"),
        |stream, src| {
            let front = front.clone();
            let site = site.clone();
            async move {
                let mut stream = stream;
                let Some(src) = front.proxy().client(&mut stream, src).await else {
                    return;
                };
                let Some(session) = handshake(&site.tls, stream, "doh").await else {
                    return;
                };
                serve_connection(front, site, session, src).await;
            }
        },
    )
    .await;
}

async fn serve_connection(
    front: Arc<Frontend>,
    site: Arc<DohSite>,
    session: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    src: SocketAddr,
) {
    let idle = site.tls.idle;
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        let site = site.clone();
        service_fn(move |request| {
            let front = front.clone();
            let site = site.clone();
            let busy = activity.begin();
            async move {
                let response = respond(&front, &site, src, request).await;
                drop(busy);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(idle);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(site.max_streams);
    let connection = builder.serve_connection(TokioIo::new(session), service);
    tokio::select! {
        result = connection => if let Err(error) = result {
            tracing::debug!(%src, %error, "doh connection ended with an error");
        },
        _ = activity.idle(idle) => {
            metrics::counter!("poolguard_dns_tcp_timeouts_total").increment(1);
        }
    }
}

/// One request: the checks of the module docs, then the front end.
async fn respond(
    front: &Frontend,
    site: &DohSite,
    src: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if request.uri().path() != site.path {
        return status(StatusCode::NOT_FOUND);
    }
    let query = match *request.method() {
        Method::GET => match get_query(request.uri().query(), site.max_body) {
            Ok(query) => query,
            Err(code) => return status(code),
        },
        Method::POST => match post_query(request, site.max_body).await {
            Ok(query) => query,
            Err(code) => return status(code),
        },
        _ => {
            let mut response = status(StatusCode::METHOD_NOT_ALLOWED);
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, POST"));
            return response;
        }
    };
    let Some(answer) = front.answer_doh(query, src).await else {
        return status(StatusCode::BAD_REQUEST);
    };
    let max_age = max_age(&answer);
    let mut response = Response::new(Full::new(Bytes::from(answer)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE));
    if let Ok(value) = HeaderValue::from_str(&format!("max-age={max_age}")) {
        headers.insert(CACHE_CONTROL, value);
    }
    response
}

/// The query of a GET: the `dns` parameter, base64url-decoded.
fn get_query(query: Option<&str>, max: usize) -> Result<Vec<u8>, StatusCode> {
    let encoded = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("dns="))
        .ok_or(StatusCode::BAD_REQUEST)?;
    // base64 turns 3 bytes into 4 characters: refuse before decoding what cannot fit.
    if encoded.len() / 4 * 3 > max {
        return Err(StatusCode::URI_TOO_LONG);
    }
    BASE64URL
        .decode(encoded)
        .map_err(|_| StatusCode::BAD_REQUEST)
}

/// The query of a POST: the body, when its type is right and its size within `max`.
async fn post_query(request: Request<Incoming>, max: usize) -> Result<Vec<u8>, StatusCode> {
    let headers = request.headers();
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !media_type.is_some_and(|t| t.eq_ignore_ascii_case(DNS_MESSAGE)) {
        return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    match Limited::new(request.into_body(), max).collect().await {
        Ok(body) => Ok(body.to_bytes().to_vec()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(StatusCode::PAYLOAD_TOO_LARGE)
        }
        Err(_) => Err(StatusCode::BAD_REQUEST),
    }
}

/// The smallest TTL of the answer and authority records (0 without any): how long an HTTP
/// cache may keep this answer (RFC 8484 §5.1).
fn max_age(answer: &[u8]) -> u32 {
    let Ok(message) = Message::from_vec(answer) else {
        return 0;
    };
    message
        .answers
        .iter()
        .chain(message.authorities.iter())
        .map(|r| r.ttl)
        .min()
        .unwrap_or(0)
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}

/// Requests in flight on one connection and when the last one began, for the idle bound.
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `start` to the last request's start.
    last_ms: AtomicU64,
}

/// Marks a request in flight until dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Busy(self.clone())
    }

    /// Returns once nothing has been in flight for `idle`.
    async fn idle(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            tokio::time::sleep_until((last + idle).into()).await;
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            if self.in_flight.load(Ordering::Relaxed) == 0 && last.elapsed() >= idle {
                return;
            }
            if self.in_flight.load(Ordering::Relaxed) > 0 {
                // A slow request (upstream wait) is bounded by the upstream timeout.
                tokio::time::sleep(idle).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_parameter_is_base64url() {
        // RFC 8484 §4.1.1's example query for www.example.com A.
        let q = get_query(
            Some("dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB"),
            4096,
        )
        .expect("decodes");
        assert_eq!(q.len(), 33);
        assert_eq!(
            get_query(Some("ct&dns=AAAB"), 4096).expect("second pair"),
            [0, 0, 1]
        );
        assert_eq!(get_query(None, 4096), Err(StatusCode::BAD_REQUEST));
        assert_eq!(
            get_query(Some("dns=%%%"), 4096),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            get_query(Some("dns=AAAB+/"), 4096),
            Err(StatusCode::BAD_REQUEST)
        );
        let long = format!("dns={}", "A".repeat(8000));
        assert_eq!(get_query(Some(&long), 4096), Err(StatusCode::URI_TOO_LONG));
    }

    #[test]
    fn max_age_of_garbage_is_zero() {
        assert_eq!(max_age(&[1, 2, 3]), 0);
    }
}
