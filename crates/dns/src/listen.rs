//! Our own UDP and TCP front ends, in place of hickory-server's `Server`.
//!
//! hickory-server 0.26 drives our [`Handler`] well, but its socket loops are not hardened for a
//! resolver that every (possibly infected) campus machine can reach; reading its
//! `src/server/mod.rs` shows:
//!
//! * TCP: no connection limit (a connection flood exhausts file descriptors), and queries on one
//!   connection are handled strictly one after another, so one slow upstream lookup stalls every
//!   pipelined query behind it;
//! * UDP: one spawned task per packet with no bound, so a flood during an upstream outage piles
//!   up tasks for the whole upstream timeout;
//! * a packet with QR=1 whose body does not parse is answered with FORMERR (only parsable
//!   responses are dropped), and the UDP size limit is the size we *advertise* in our OPT,
//!   not the size the client asked for.
//!
//! So the loops are ours and hickory keeps the parts that are right: message parsing
//! (`Request::from_bytes`) and record encoding; the handler returns the answer's bytes
//! ([`wire::encode`]) and the loop sends them. Per packet, in order: cheap header checks, the per-client [`RateLimiter`] (UDP
//! only; TCP needs a completed handshake, so its source is real), the fast path
//! ([`crate::fast`]: blocked names and cached answers written in place, no task), then
//! for everything else the in-flight bound, [`wire::gate`] and the handler. Every wait is bounded: reading a TCP frame by
//! `[dns] tcp_idle_timeout_ms`, the handler by the upstream timeout, writing by the idle
//! timeout again (a client that never reads cannot pin a connection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use std::os::fd::AsRawFd;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::DnsError;
use crate::fast::FastPath;
use crate::handler::Handler;
use crate::mmsg::{self, RecvBatch, SendBatch};
use crate::ratelimit::{Admit, RateLimiter};
use crate::shared::Shared;
use crate::upstream::UpstreamPlan;
use crate::wire::{self, DropReason, Gate, HEADER_LEN};
use crate::zones::LocalZones;
use poolguard_config::{Config, DnsConfig};
use poolguard_policy::SharedPolicy;
use poolguard_record::Recorder;
use poolguard_record::Transport;
use poolguard_record::exchange;

/// Largest datagram we read; a DNS message cannot be longer.
const MAX_DATAGRAM: usize = 65_535;
/// Room for a fast-path answer on TCP: a cached answer (at most 4 KiB of sections) or a
/// block answer, with their question and OPT.
const TCP_FAST_ANSWER: usize = 8192;
/// Pause after an accept error that is not the peer's fault (EMFILE, ENFILE, ENOBUFS), so a
/// full descriptor table does not turn the accept loop into a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The limits the front ends enforce, from `[dns]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most we send over UDP, and the EDNS size we advertise.
    pub udp_payload: u16,
    /// Closing time for a TCP connection that does not complete a query.
    pub tcp_idle: Duration,
    /// Open TCP connections per worker.
    pub max_tcp_connections: usize,
    /// Concurrent queries per TCP connection.
    pub max_tcp_pipeline: usize,
    /// UDP queries in flight per worker.
    pub max_udp_inflight: usize,
}

impl Limits {
    /// From `[dns]`.
    pub fn from_config(dns: &DnsConfig) -> Self {
        Self {
            udp_payload: dns.edns_udp_payload.max(wire::MIN_UDP_PAYLOAD),
            tcp_idle: Duration::from_millis(dns.tcp_idle_timeout_ms.max(1)),
            max_tcp_connections: dns.max_tcp_connections.max(1),
            max_tcp_pipeline: dns.max_tcp_pipeline.max(1),
            max_udp_inflight: dns.max_udp_inflight.max(1),
        }
    }
}

/// One worker's DNS front end: its handler, the shared rate limiter and the limits.
pub struct Frontend {
    handler: Handler,
    fast: FastPath,
    limiter: Option<Arc<RateLimiter>>,
    limits: Limits,
    /// Peers whose TCP, DoT and DoH connections start with a PROXY v2 header.
    proxy: crate::proxy::ProxyTrust,
}

impl Frontend {
    /// A front end for one worker. `limiter` is shared by all workers (`None` = off).
    pub fn new(handler: Handler, limiter: Option<Arc<RateLimiter>>, limits: Limits) -> Self {
        Self {
            fast: handler.fast_path(),
            handler,
            limiter,
            limits,
            proxy: crate::proxy::ProxyTrust::default(),
        }
    }

    /// This front end, reading a PROXY v2 header first on connections from `trust`'s peers.
    pub fn with_proxy(mut self, trust: crate::proxy::ProxyTrust) -> Self {
        self.proxy = trust;
        self
    }

    /// Which peers' connections start with a PROXY v2 header.
    pub(crate) fn proxy(&self) -> &crate::proxy::ProxyTrust {
        &self.proxy
    }

    /// One worker's front end built from `config` and `policy` the way `DnsServer` builds
    /// each worker's, but without sockets, rate limiter or store: for harnesses that drive
    /// [`Frontend::respond`] (the fuzz target, the answer bench). Call it inside a tokio
    /// runtime (the resolver lives there); it reads zone files and resolv.conf.
    pub fn offline(config: &Config, policy: SharedPolicy) -> Result<Self, DnsError> {
        let plan = UpstreamPlan::new(&config.upstream, 1)?;
        let zones = LocalZones::load(config)?;
        let shared = Arc::new(Shared::new(
            config,
            policy,
            Recorder::disabled(),
            zones,
            None,
            1,
        ));
        Ok(Self::new(
            Handler::new(shared, plan.build()?),
            None,
            Limits::from_config(&config.dns),
        ))
    }

    /// [`Frontend::offline`] with the default config, one feed named `mining` listing
    /// `domains` (plain format) with `action`, and an upstream on the discard port that is
    /// never asked: the fuzz target and the answer bench build exactly this.
    #[doc(hidden)]
    pub fn offline_with_feed(
        domains: &str,
        action: poolguard_model::Action,
    ) -> Result<Self, DnsError> {
        use poolguard_config::{FeedKind, Severity, UpstreamConfig};
        use poolguard_model::{DomainEntry, DomainName, ParsedFeed};
        use poolguard_policy::{FeedInfo, Policy};
        let config = Config {
            upstream: UpstreamConfig {
                servers: vec![SocketAddr::from(([127, 0, 0, 1], 9))],
                timeout_ms: 1,
                cache_size: 64,
                ..UpstreamConfig::default()
            },
            ..Config::default()
        };
        // One name per line, nothing else: the feed parsers live above this crate.
        let feed = ParsedFeed {
            domains: domains
                .lines()
                .filter_map(|l| DomainName::parse(l.trim()).ok())
                .map(|name| DomainEntry { name, exact: false })
                .collect(),
            ..ParsedFeed::default()
        };
        let info = Arc::new(FeedInfo {
            name: "mining".into(),
            kind: FeedKind::Domains,
            action,
            category: "mining".into(),
            severity: Severity::High,
        });
        let policy = Arc::new(arc_swap::ArcSwap::from_pointee(Policy::build([(
            info, &feed,
        )])));
        Self::offline(&config, policy)
    }

    /// The whole request path for one packet without sockets: gate, parse, handle, encode.
    /// `None` = nothing is sent. Used by the fuzz targets; the loops below do the same steps
    /// with their own bounds around them. (No rate limiting here: that is per socket.)
    pub async fn respond(
        &self,
        bytes: Vec<u8>,
        src: SocketAddr,
        protocol: Protocol,
    ) -> Option<Vec<u8>> {
        let transport = match protocol {
            Protocol::Udp => Transport::Udp,
            _ => Transport::Tcp,
        };
        let mut out = vec![0u8; MAX_DATAGRAM];
        if let Some(len) = self.fast.answer(&bytes, src, transport, &mut out) {
            out.truncate(len);
            return Some(out);
        }
        match wire::gate(bytes, src, protocol) {
            Gate::Drop(_) => None,
            Gate::Reply(reply) => Some(reply),
            Gate::Request(request) => Some(self.answer_bytes(&request, transport).await),
        }
    }

    /// One DoH query (RFC 8484): the fast path, else the gate and the handler, as for a TCP
    /// frame. `None` = not a DNS query (the HTTP layer answers 400): DoH has no way to send
    /// the header-only FORMERR of TCP, and a client that sent bytes that do not parse as a
    /// query made an HTTP request error, not a DNS one.
    pub(crate) async fn answer_doh(&self, query: Vec<u8>, src: SocketAddr) -> Option<Vec<u8>> {
        let mut out = vec![0u8; TCP_FAST_ANSWER];
        if let Some(len) = self.fast.answer(&query, src, Transport::Doh, &mut out) {
            out.truncate(len);
            return Some(out);
        }
        match wire::gate(query, src, Protocol::Tcp) {
            Gate::Request(request) => Some(self.answer_bytes(&request, Transport::Doh).await),
            Gate::Drop(reason) => {
                dropped(reason);
                None
            }
            Gate::Reply(_) => {
                metrics::counter!("poolguard_dns_malformed_total", "protocol" => "doh")
                    .increment(1);
                None
            }
        }
    }

    /// Runs the handler on a parsed request and sends its answer to `to`.
    async fn answer(&self, request: &Request, transport: Transport, to: Destination) {
        to.send(self.answer_bytes(request, transport).await).await;
    }

    /// Runs the handler on a parsed request and returns its answer, encoded within the
    /// client's limit ([`wire::response_limit`]).
    pub(crate) async fn answer_bytes(&self, request: &Request, transport: Transport) -> Vec<u8> {
        let limit = wire::response_limit(request, request.protocol(), self.limits.udp_payload);
        let handling = self.handler.answer::<TokioTime>(request, transport, limit);
        // export (docs/EXPORT.md): a slot where the handler leaves the exchange, completed
        // here with the exact bytes sent; no slot (no work) when no export is configured.
        // Boxed: inline, the scope would hold a second copy of the handler's future in every
        // request's task, and in-flight tasks would grow by that much with no export at all
        // (peak RSS 44 → 73 MiB in the harness's mixed run).
        if self.handler.exports() {
            Box::pin(exchange::scope(async {
                let answer = handling.await;
                exchange::complete(&answer);
                answer
            }))
            .await
        } else {
            handling.await
        }
    }
}

/// Receive batches per readiness event before the loop checks for cancellation again.
const UDP_ROUNDS: usize = 8;

/// Serves one UDP socket until `token` is cancelled: up to [`mmsg::SLOTS`] datagrams per
/// `recvmmsg`, fast-path answers gathered and sent with one `sendmmsg` per batch, the rest
/// handed to tasks on the general path.
pub async fn serve_udp(front: Arc<Frontend>, socket: UdpSocket, token: CancellationToken) {
    let socket = Arc::new(socket);
    let fd = socket.as_raw_fd();
    let inflight = Arc::new(Semaphore::new(front.limits.max_udp_inflight));
    let mut tasks = JoinSet::new();
    let mut received = RecvBatch::new();
    let mut answers = SendBatch::new();
    loop {
        tokio::select! {
            ready = socket.readable() => if let Err(error) = ready {
                tracing::warn!(%error, "udp socket failed; this listener stops");
                break;
            },
            _ = token.cancelled() => break,
        }
        for _ in 0..UDP_ROUNDS {
            let count = match socket.try_io(Interest::READABLE, || received.recv(fd)) {
                Ok(count) => count,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) => {
                    // ICMP errors from earlier sends surface here on some systems; not fatal.
                    // A socket that is gone for good ends the loop, as in hickory-server.
                    tracing::debug!(%error, "udp receive error");
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::NotConnected | std::io::ErrorKind::ConnectionAborted
                    ) {
                        tracing::warn!(%error, "udp socket closed; this listener stops");
                        return;
                    }
                    continue;
                }
            };
            front.handler.load().observe(count, mmsg::SLOTS);
            let udp = Udp {
                front: &front,
                socket: &socket,
                inflight: &inflight,
            };
            for i in 0..count {
                let Some(datagram) = received.get(i) else {
                    continue;
                };
                if datagram.truncated {
                    dropped(DropReason::Oversize);
                    continue;
                }
                let Some(src) = datagram.src else {
                    continue;
                };
                udp.packet(datagram.bytes, src, &mut answers, &mut tasks);
            }
            send_batch(&socket, &mut answers, &mut tasks);
            if count < mmsg::SLOTS {
                break;
            }
        }
        while tasks.try_join_next().is_some() {}
    }
}

/// One UDP socket's per-packet work, split from the read loop.
struct Udp<'a> {
    front: &'a Arc<Frontend>,
    socket: &'a Arc<UdpSocket>,
    inflight: &'a Arc<Semaphore>,
}

impl Udp<'_> {
    /// Cheap drops, rate limit, then the fast path (answered right here) or a task for the
    /// general path.
    fn packet(
        &self,
        packet: &[u8],
        src: SocketAddr,
        answers: &mut SendBatch,
        tasks: &mut JoinSet<()>,
    ) {
        let (front, socket) = (self.front, self.socket);
        if packet.len() < HEADER_LEN {
            dropped(DropReason::Short);
            return;
        }
        if packet[2] & 0x80 != 0 {
            dropped(DropReason::Response);
            return;
        }
        if src.port() == 0 {
            // Nothing can be sent back to port 0; it is always spoofed.
            metrics::counter!("poolguard_dns_dropped_total", "reason" => "port0").increment(1);
            return;
        }
        if let Some(limiter) = &front.limiter {
            match limiter.admit(src.ip()) {
                Admit::Pass => {}
                Admit::Drop => {
                    metrics::counter!("poolguard_dns_ratelimited_total", "action" => "drop")
                        .increment(1);
                    return;
                }
                Admit::Slip => {
                    metrics::counter!("poolguard_dns_ratelimited_total", "action" => "slip")
                        .increment(1);
                    let _ = socket.try_send_to(&wire::slip_reply(packet), src);
                    return;
                }
            }
        }
        if let Some(out) = answers.next_buffer()
            && let Some(len) = front.fast.answer(packet, src, Transport::Udp, out)
        {
            answers.push(len, src);
            return;
        }
        let Ok(permit) = self.inflight.clone().try_acquire_owned() else {
            metrics::counter!("poolguard_dns_dropped_total", "reason" => "overload").increment(1);
            return;
        };
        match wire::gate(packet.to_vec(), src, Protocol::Udp) {
            Gate::Drop(reason) => dropped(reason),
            Gate::Reply(reply) => {
                metrics::counter!("poolguard_dns_malformed_total", "protocol" => "udp")
                    .increment(1);
                // Never larger than the request; if the socket buffer is full, it is lost
                // like any UDP packet.
                let _ = socket.try_send_to(&reply, src);
            }
            Gate::Request(request) => {
                let front = front.clone();
                let socket = socket.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    front
                        .answer(&request, Transport::Udp, Destination::Udp(socket, src))
                        .await;
                });
            }
        }
    }
}

/// Sends the batch's fast-path answers, as many per `sendmmsg` as the kernel takes. Called
/// directly (MSG_DONTWAIT), not through tokio's readiness: a UDP socket is nearly always
/// writable. When its buffer is full, the rest get a task each that waits for room, like a
/// general-path answer; one destination failing (e.g. unreachable) skips only that answer.
fn send_batch(socket: &Arc<UdpSocket>, answers: &mut SendBatch, tasks: &mut JoinSet<()>) {
    let mut sent = 0;
    while sent < answers.len() {
        match answers.send(socket.as_raw_fd(), sent) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                for i in sent..answers.len() {
                    if let Some((bytes, dst)) = answers.get(i) {
                        let socket = socket.clone();
                        let bytes = bytes.to_vec();
                        tasks.spawn(async move {
                            let _ = socket.send_to(&bytes, dst).await;
                        });
                    }
                }
                break;
            }
            Err(error) => {
                tracing::debug!(%error, "udp send failed; answer skipped");
                sent += 1;
            }
        }
    }
    answers.clear();
}

/// Accepts TCP connections until `token` is cancelled, at most `max_tcp_connections` at once.
pub async fn serve_tcp(front: Arc<Frontend>, listener: TcpListener, token: CancellationToken) {
    let max = front.limits.max_tcp_connections;
    let rejected = || metrics::counter!("poolguard_dns_tcp_rejected_total").increment(1);
    accept_loop(listener, &token, max, rejected, |stream, src| {
        let front = front.clone();
        async move {
            let mut stream = stream;
            let Some(src) = front.proxy.client(&mut stream, src).await else {
                return;
            };
            let idle = front.limits.tcp_idle;
            let (reader, writer) = stream.into_split();
            connection(&front, (reader, writer), src, Transport::Tcp, idle).await;
        }
    })
    .await;
}

/// Accepts connections until `token` is cancelled and runs `serve` on each in its own task,
/// at most `max` at once: one beyond is closed at once (`rejected` counts it), so a flood of
/// connections costs one accept each. Every connection's task ends when `token` is
/// cancelled. The TCP, DoT and DoH listeners all accept through here.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    token: &CancellationToken,
    max: usize,
    rejected: impl Fn(),
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let open = Arc::new(Semaphore::new(max));
    let mut connections = JoinSet::new();
    loop {
        let (stream, src) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::debug!(%error, "tcp accept error");
                    if !is_peer_error(&error) {
                        tokio::select! {
                            _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                            _ = token.cancelled() => break,
                        }
                    }
                    continue;
                }
            },
            _ = token.cancelled() => break,
        };
        while connections.try_join_next().is_some() {}
        let Ok(permit) = open.clone().try_acquire_owned() else {
            // Closed at once: a flood of connections costs us one accept each, nothing more.
            rejected();
            drop(stream);
            continue;
        };
        let token = token.clone();
        let serving = serve(stream, src);
        connections.spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = serving => {}
                _ = token.cancelled() => {}
            }
        });
    }
}

/// Errors caused by one peer (it reset before we accepted); the next accept is fine.
fn is_peer_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    )
}

/// One TCP connection: frames are read one after another; each query is answered in its own
/// task (up to `max_tcp_pipeline` at once), so answers may leave out of order, matched by ID
/// (RFC 7766 §6.2.1.1). The connection closes when a frame is not complete within `idle`
/// (slow-loris, lying length prefix), on a zero-length frame, on EOF, or when the
/// client stops reading; in-flight answers are still written first.
///
/// DoT (RFC 7858) is this same framing inside a TLS session: `crate::encrypted::dot` hands
/// the session's halves here with [`Transport::Dot`], so both get the same fast path,
/// pipelining, policy and recording.
pub(crate) async fn connection<R, W>(
    front: &Arc<Frontend>,
    (mut reader, mut writer): (R, W),
    src: SocketAddr,
    transport: Transport,
    idle: Duration,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(front.limits.max_tcp_pipeline);

    let write = async move {
        while let Some(bytes) = rx.recv().await {
            // `encode` bounds every TCP answer to 65 535 bytes.
            let Ok(len) = u16::try_from(bytes.len()) else {
                continue;
            };
            let mut framed = Vec::with_capacity(bytes.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&bytes);
            match tokio::time::timeout(idle, writer.write_all(&framed)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
        let _ = writer.shutdown().await;
    };

    let read = async move {
        let pipeline = Arc::new(Semaphore::new(front.limits.max_tcp_pipeline));
        let mut tasks = JoinSet::new();
        // Fast-path answers are written here first. Allocated with the first query, so the
        // idle connections of a flood cost nothing; bigger answers take the general path.
        let mut out = Vec::new();
        loop {
            let frame = match tokio::time::timeout(idle, read_frame(&mut reader)).await {
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) => break,
                Ok(Err(error)) => {
                    tracing::debug!(%src, %error, "tcp read error");
                    break;
                }
                Err(_) => {
                    metrics::counter!("poolguard_dns_tcp_timeouts_total").increment(1);
                    break;
                }
            };
            while tasks.try_join_next().is_some() {}
            if out.is_empty() {
                out = vec![0u8; TCP_FAST_ANSWER];
            }
            if let Some(len) = front.fast.answer(&frame, src, transport, &mut out) {
                if tx.send(out[..len].to_vec()).await.is_err() {
                    break;
                }
                continue;
            }
            match wire::gate(frame, src, Protocol::Tcp) {
                Gate::Drop(reason) => dropped(reason),
                Gate::Reply(reply) => {
                    metrics::counter!("poolguard_dns_malformed_total", "protocol" => transport.as_str())
                        .increment(1);
                    if tx.send(reply).await.is_err() {
                        break;
                    }
                }
                Gate::Request(request) => {
                    // Waits while `max_tcp_pipeline` queries are in flight: each ends within
                    // the upstream timeout, so this wait is bounded too.
                    let Ok(permit) = pipeline.clone().acquire_owned().await else {
                        break;
                    };
                    let front = front.clone();
                    let tx = tx.clone();
                    tasks.spawn(async move {
                        let _permit = permit;
                        front
                            .answer(&request, transport, Destination::Tcp(tx))
                            .await;
                    });
                }
            }
        }
        drop(tx);
        while tasks.join_next().await.is_some() {}
    };

    tokio::join!(read, write);
}

/// Reads one length-prefixed message. `None` on a clean EOF between messages; an error on a
/// zero length (RFC 7766 gives it no meaning) or EOF inside a message. The buffer grows only
/// as bytes arrive, so a lying 65 535-byte prefix costs nothing until the data is really sent.
async fn read_frame<R: AsyncReadExt + Unpin>(reader: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut prefix = [0u8; 2];
    match reader.read(&mut prefix[..1]).await? {
        0 => return Ok(None),
        _ => reader.read_exact(&mut prefix[1..]).await?,
    };
    let len = u16::from_be_bytes(prefix) as usize;
    if len == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "zero-length DNS message",
        ));
    }
    let mut frame = Vec::new();
    let got = reader.take(len as u64).read_to_end(&mut frame).await?;
    if got < len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some(frame))
}

fn dropped(reason: DropReason) {
    metrics::counter!("poolguard_dns_dropped_total", "reason" => reason.as_str()).increment(1);
}

/// Where an encoded answer goes: the UDP socket or the connection's writer.
enum Destination {
    Udp(Arc<UdpSocket>, SocketAddr),
    Tcp(mpsc::Sender<Vec<u8>>),
}

impl Destination {
    /// Sends `bytes`; a failure loses this answer only (as any lost UDP packet would).
    async fn send(&self, bytes: Vec<u8>) {
        match self {
            Destination::Udp(socket, dst) => {
                if let Err(error) = socket.send_to(&bytes, *dst).await {
                    tracing::debug!(%error, "could not send the response");
                }
            }
            Destination::Tcp(tx) => {
                // The writer is gone only when the connection closed: nobody to answer.
                let _ = tx.send(bytes).await;
            }
        }
    }
}
