//! DNS over TLS (RFC 7858): the RFC 7766 framing of plain TCP inside a TLS session, served by
//! the same connection loop (`listen::connection`) with [`Transport::Dot`].

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Encrypted, handshake, rejected};
use crate::listen::{Frontend, accept_loop, connection};
use poolguard_record::Transport;

/// Accepts DoT sessions until `token` is cancelled.
pub async fn serve_dot(
    front: Arc<Frontend>,
    listener: TcpListener,
    settings: Arc<Encrypted>,
    token: CancellationToken,
) {
    let max = settings.max_connections;
    accept_loop(
        listener,
        &token,
        max,
        || rejected("dot"),
        |stream, src| {
            let front = front.clone();
            let settings = settings.clone();
            async move {
                let mut stream = stream;
                let Some(src) = front.proxy().client(&mut stream, src).await else {
                    return;
                };
                let Some(session) = handshake(&settings, stream, "dot").await else {
                    return;
                };
                let halves = tokio::io::split(session);
                connection(&front, halves, src, Transport::Dot, settings.idle).await;
            }
        },
    )
    .await;
}
