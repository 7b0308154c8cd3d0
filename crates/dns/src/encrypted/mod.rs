//! Encrypted DNS served by poolguard: DNS over TLS (RFC 7858, [`dot`]) and DNS over HTTPS
//! (RFC 8484, [`doh`]), with certificates from PEM files re-read on SIGHUP ([`certs`]).
//!
//! Both run on the DNS workers next to the UDP/TCP loops, each worker with its own
//! SO_REUSEPORT listener per address, and hand queries to that worker's
//! [`crate::listen::Frontend`]: the
//! fast path, `policy::decide`, the handler, the query log and the exports are the ones UDP
//! and TCP use, so an encrypted query gets exactly the same access control, policy and
//! recording. The client address is the TCP peer (the TLS handshake completed from it); the
//! transport is recorded as `dot` / `doh` (dnstap SocketProtocol DOT / DOH).
//!
//! hickory-server has its own TLS and HTTPS listeners, but its DoH does not implement GET
//! (RFC 8484 §4.1: "DoH servers MUST implement both the POST and GET methods") and its loops
//! would bypass our limits; so DoT reuses our TCP connection loop inside a rustls session,
//! and DoH is hyper (HTTP/1.1 and HTTP/2 by ALPN) calling the same front end.
//!
//! Limits, each from `[dns.tls]` / `[dns.https]`: the TLS handshake must finish within
//! `handshake_timeout_ms`; a connection idle for `idle_timeout_ms` is closed; at most
//! `max_connections` per worker (one beyond is closed at once); DoH bodies up to
//! `max_body_bytes` (413 beyond) and at most `[dns] max_tcp_pipeline` concurrent HTTP/2
//! streams per connection, as for pipelined TCP. Not rate limited, like TCP: the peer
//! completed a handshake, so its address is real.

pub mod certs;
pub mod doh;
pub mod dot;

use std::sync::Arc;
use std::time::Duration;

pub use certs::{CertError, TlsCerts};

/// ALPN of DoT (RFC 7858 §3.1 via the IANA registry).
pub const ALPN_DOT: &[&[u8]] = &[b"dot"];
/// ALPN of DoH: HTTP/2 preferred (RFC 8484 §5.2 recommends it), HTTP/1.1 accepted.
pub const ALPN_DOH: &[&[u8]] = &[b"h2", b"http/1.1"];

/// What one encrypted listener needs besides its socket and the front end.
pub struct Encrypted {
    /// The certificate in force (swapped on SIGHUP).
    pub certs: Arc<TlsCerts>,
    /// Bound on the TLS handshake.
    pub handshake: Duration,
    /// Bound on a connection without a query.
    pub idle: Duration,
    /// Open connections per worker.
    pub max_connections: usize,
}

/// Completes the TLS handshake within `handshake`; `None` (counted) when it fails or times
/// out, which costs the server nothing more.
pub(crate) async fn handshake(
    settings: &Encrypted,
    stream: tokio::net::TcpStream,
    transport: &'static str,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let acceptor = settings.certs.acceptor();
    match tokio::time::timeout(settings.handshake, acceptor.accept(stream)).await {
        Ok(Ok(session)) => Some(session),
        Ok(Err(error)) => {
            tracing::debug!(%error, transport, "tls handshake failed");
            metrics::counter!("poolguard_dns_tls_handshake_failures_total", "protocol" => transport, "reason" => "error").increment(1);
            None
        }
        Err(_) => {
            metrics::counter!("poolguard_dns_tls_handshake_failures_total", "protocol" => transport, "reason" => "timeout").increment(1);
            None
        }
    }
}

/// Counts a connection closed at once because `max_connections` are open.
pub(crate) fn rejected(transport: &'static str) {
    metrics::counter!("poolguard_dns_encrypted_rejected_total", "protocol" => transport)
        .increment(1);
}
