//! The DNS listener: sockets, worker threads and runtimes.
//!
//! `[dns] workers` OS threads (0 = one per core) each run a **current_thread** tokio runtime with
//! its own front end ([`listen`]), over its own SO_REUSEPORT UDP socket and TCP listener for
//! every `[dns] listen` address; the kernel spreads packets and connections across them. Measured
//! here: 15–20 % more queries per core than one multi_thread runtime (no work stealing, no
//! cross-thread wake-ups). Nothing blocking ever runs on these runtimes: zone files and
//! resolv.conf are read before the workers start, feeds are compiled by the caller.
//!
//! The sockets are served by our own loops in [`listen`] (connection cap, per-client rate
//! limiting, pipelined TCP, bounded in-flight work), which call our handler and send the bytes
//! it returns.
//!
//! With port 0 (tests), the first socket's real port is read and every other socket (UDP and
//! TCP, all workers) is bound to it, so one address serves both transports.

pub mod access;
pub mod answer;
pub mod fast;
pub mod handler;
pub mod listen;
pub mod load;
pub mod mmsg;
pub mod ratelimit;
pub mod reply;
pub mod special;
pub mod upstream;
pub mod walled;
pub mod wire;
pub mod zones;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dns::handler::{Handler, Shared};
use crate::dns::listen::{Frontend, Limits};
use crate::dns::ratelimit::RateLimiter;
use crate::dns::upstream::{UpstreamError, UpstreamPlan};
use crate::dns::zones::{LocalZones, ZoneError};
use crate::policy::SharedPolicy;
use crate::record::Recorder;

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("dns.listen {addr}: cannot bind: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Zone(#[from] ZoneError),
    #[error("dns worker {worker}: {reason}")]
    Worker { worker: usize, reason: String },
}

/// What the DNS path needs from the rest of poolguard.
pub struct DnsContext {
    /// The whole config: `[dns]`, `[upstream]`, `[blocking]`, `[[zones]]`.
    pub config: Arc<Config>,
    /// The live policy the loader swaps.
    pub policy: SharedPolicy,
    /// The query-log hand-off (disabled when no store is configured).
    pub recorder: Recorder,
    /// Quarantined clients (walled garden); `None` = no enforcement.
    pub quarantine: Option<Arc<crate::incidents::Quarantine>>,
}

/// Requested SO_RCVBUF for each UDP socket (see `bind_udp`).
const UDP_RECV_BUFFER: usize = 4 << 20;
/// Pending TCP connections per listener.
const TCP_BACKLOG: i32 = 1024;
/// Attempts to find a port free for both UDP and TCP when binding port 0.
const PORT_ATTEMPTS: usize = 16;

/// The running DNS listeners. Dropping it without [`DnsServer::shutdown`] still stops the
/// workers (they are signalled, not joined).
pub struct DnsServer {
    addrs: Vec<SocketAddr>,
    token: CancellationToken,
    threads: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds every listen address and starts the workers; returns once all are serving.
    pub async fn start(ctx: DnsContext) -> Result<Self, DnsError> {
        let config = ctx.config.clone();
        let workers = match config.dns.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };

        // Blocking preparation (files, resolv.conf, binds) off the caller's async threads.
        let prep_config = config.clone();
        let (plan, zones, addrs, sockets) = tokio::task::spawn_blocking(move || {
            let plan = UpstreamPlan::new(&prep_config.upstream, workers)?;
            let zones = LocalZones::load(&prep_config)?;
            let (addrs, sockets) = bind_all(&prep_config.dns.listen, workers)?;
            Ok::<_, DnsError>((plan, zones, addrs, sockets))
        })
        .await
        .map_err(|e| DnsError::Worker {
            worker: 0,
            reason: e.to_string(),
        })??;

        let shared = Arc::new(Shared::new(
            &config,
            ctx.policy,
            ctx.recorder,
            zones,
            ctx.quarantine,
            workers,
        ));
        let limits = Limits::from_config(&config.dns);
        // One table for all workers: SO_REUSEPORT spreads a client's packets across them.
        let limiter = RateLimiter::new(
            config.dns.rate_limit_qps,
            config.dns.rate_limit_burst,
            config.dns.rate_limit_slip,
            config.dns.rate_limit_table_size,
        )
        .map(Arc::new);
        let token = CancellationToken::new();
        let mut threads = Vec::with_capacity(workers);
        let mut ready = Vec::with_capacity(workers);
        for (worker, worker_sockets) in sockets.into_iter().enumerate() {
            let (tx, rx) = oneshot::channel();
            ready.push(rx);
            let shared = shared.clone();
            let plan = plan.clone();
            let token = token.clone();
            let limiter = limiter.clone();
            let thread = std::thread::Builder::new()
                .name(format!("poolguard-dns-{worker}"))
                .spawn(move || {
                    let serving = Serving {
                        shared,
                        plan,
                        limiter,
                        limits,
                    };
                    run_worker(worker_sockets, serving, token, tx)
                })
                .map_err(|e| DnsError::Worker {
                    worker,
                    reason: e.to_string(),
                })?;
            threads.push(thread);
        }
        let server = Self {
            addrs,
            token,
            threads,
        };
        for (worker, rx) in ready.into_iter().enumerate() {
            let outcome = rx
                .await
                .unwrap_or_else(|_| Err("exited during start".into()));
            if let Err(reason) = outcome {
                server.shutdown().await;
                return Err(DnsError::Worker { worker, reason });
            }
        }
        tracing::info!(addrs = ?server.addrs, workers, "dns listening (udp+tcp)");
        Ok(server)
    }

    /// The real bound addresses (UDP and TCP share each one).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops accepting, lets in-flight work end, and joins every worker thread.
    pub async fn shutdown(mut self) {
        self.token.cancel();
        let threads = std::mem::take(&mut self.threads);
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                if t.join().is_err() {
                    tracing::warn!("a dns worker panicked");
                }
            }
        })
        .await;
        if joined.is_err() {
            tracing::warn!("could not join the dns workers");
        }
        tracing::info!("dns stopped");
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// The sockets one worker serves: a UDP socket and a TCP listener per listen address.
struct WorkerSockets {
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
}

/// What a worker needs besides its sockets.
struct Serving {
    shared: Arc<Shared>,
    plan: UpstreamPlan,
    limiter: Option<Arc<RateLimiter>>,
    limits: Limits,
}

fn run_worker(
    sockets: WorkerSockets,
    serving: Serving,
    token: CancellationToken,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot build runtime: {e}")));
            return;
        }
    };
    runtime.block_on(async move {
        let upstreams = match serving.plan.build() {
            Ok(u) => u,
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        };
        let front = Arc::new(Frontend::new(
            Handler::new(serving.shared, upstreams),
            serving.limiter,
            serving.limits,
        ));
        let mut loops = tokio::task::JoinSet::new();
        for udp in sockets.udp {
            match tokio::net::UdpSocket::from_std(udp) {
                Ok(s) => {
                    loops.spawn(listen::serve_udp(front.clone(), s, token.clone()));
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("udp socket: {e}")));
                    return;
                }
            }
        }
        for tcp in sockets.tcp {
            match tokio::net::TcpListener::from_std(tcp) {
                Ok(l) => {
                    loops.spawn(listen::serve_tcp(front.clone(), l, token.clone()));
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("tcp listener: {e}")));
                    return;
                }
            }
        }
        let _ = ready.send(Ok(()));
        token.cancelled().await;
        while let Some(joined) = loops.join_next().await {
            if let Err(error) = joined {
                tracing::warn!(%error, "a dns listener ended abnormally");
            }
        }
    });
}

/// Binds `workers` UDP sockets and TCP listeners on every address, all with SO_REUSEPORT.
/// Returns the real addresses and the sockets grouped per worker.
fn bind_all(
    listen: &[SocketAddr],
    workers: usize,
) -> Result<(Vec<SocketAddr>, Vec<WorkerSockets>), DnsError> {
    let mut per_worker: Vec<WorkerSockets> = (0..workers)
        .map(|_| WorkerSockets {
            udp: Vec::new(),
            tcp: Vec::new(),
        })
        .collect();
    let mut addrs = Vec::with_capacity(listen.len());
    for &addr in listen {
        let (real, first_udp, first_tcp) = bind_first(addr)?;
        addrs.push(real);
        let mut udp = vec![first_udp];
        let mut tcp = vec![first_tcp];
        for _ in 1..workers {
            udp.push(bind_udp(real).map_err(|source| DnsError::Bind { addr: real, source })?);
            tcp.push(bind_tcp(real).map_err(|source| DnsError::Bind { addr: real, source })?);
        }
        for (w, (u, t)) in udp.into_iter().zip(tcp).enumerate() {
            per_worker[w].udp.push(u);
            per_worker[w].tcp.push(t);
        }
    }
    Ok((addrs, per_worker))
}

/// Binds the first UDP socket and the TCP listener on the same port. With port 0 the kernel's
/// UDP port may be taken for TCP; then a new port is tried (bounded).
fn bind_first(addr: SocketAddr) -> Result<(SocketAddr, UdpSocket, TcpListener), DnsError> {
    let mut last_error = None;
    for _ in 0..PORT_ATTEMPTS {
        let udp = bind_udp(addr).map_err(|source| DnsError::Bind { addr, source })?;
        let real = udp
            .local_addr()
            .map_err(|source| DnsError::Bind { addr, source })?;
        match bind_tcp(real) {
            Ok(tcp) => return Ok((real, udp, tcp)),
            Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse => {
                last_error = Some(e);
            }
            Err(source) => return Err(DnsError::Bind { addr: real, source }),
        }
    }
    Err(DnsError::Bind {
        addr,
        source: last_error.unwrap_or_else(|| std::io::Error::other("no free port")),
    })
}

fn new_socket(addr: SocketAddr, ty: Type, proto: Protocol) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = new_socket(addr, Type::DGRAM, Protocol::UDP)?;
    // A deep receive queue absorbs bursts instead of dropping them in the kernel; the kernel
    // caps it at net.core.rmem_max, so this is a request, and failure is not an error.
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = new_socket(addr, Type::STREAM, Protocol::TCP)?;
    socket.bind(&addr.into())?;
    socket.listen(TCP_BACKLOG)?;
    Ok(socket.into())
}
