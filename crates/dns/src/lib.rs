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
//! One process per address: before the SO_REUSEPORT sockets are bound, a probe without it checks
//! that nothing holds the address, and after, the kernel's socket tables are checked for a
//! second instance that bound at the same moment ([`exclusive`], docs/RELIABILITY.md). The
//! binds happen first at start ([`DnsServer::bind`]), so a refused instance never opens the store.
//!
//! With port 0 (tests), the probe's port (free of every socket) is used for every socket (UDP
//! and TCP, all workers), so one address serves both transports.
//!
//! `[dns.tls]` (DoT) and `[dns.https]` (DoH) add one TCP listener per worker and address,
//! served by the same front end ([`encrypted`], docs/DNS.md "Encrypted DNS"); their
//! certificates are re-read by [`DnsServer::reload_certs`] (SIGHUP).

pub mod access;
pub mod answer;
pub mod bind;
pub mod block;
pub mod canary;
pub mod check;
pub mod discovery;
pub mod encrypted;
mod error;
mod event;
pub mod exclusive;
pub mod fast;
pub mod handler;
pub mod listen;
pub mod load;
pub mod mmsg;
pub mod pools;
pub mod proxy;
pub mod ratelimit;
pub mod reply;
mod respond;
pub mod shared;
pub mod site;
pub mod special;
mod text;
pub mod upstream;
pub mod walled;
pub mod wire;
pub mod zones;

pub use error::DnsError;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use std::time::Duration;

use crate::bind::{WorkerSockets, bind_all, bind_encrypted};
use crate::encrypted::doh::DohSite;
use crate::encrypted::{Encrypted, TlsCerts};
use crate::handler::Handler;
use crate::listen::{Frontend, Limits};
use crate::ratelimit::RateLimiter;
use crate::shared::Shared;
use crate::upstream::UpstreamPlan;
use crate::zones::LocalZones;
use poolguard_config::Config;
use poolguard_policy::SharedPolicy;
use poolguard_record::Recorder;

/// What the DNS path needs from the rest of poolguard.
pub struct DnsContext {
    /// The whole config: `[dns]`, `[upstream]`, `[blocking]`, `[[zones]]`.
    pub config: Arc<Config>,
    /// The live policy the loader swaps.
    pub policy: SharedPolicy,
    /// The query-log hand-off (disabled when no store is configured).
    pub recorder: Recorder,
    /// Quarantined clients (walled garden); `None` = no enforcement.
    pub quarantine: Option<Arc<poolguard_policy::Quarantine>>,
}

/// The running DNS listeners. Dropping it without [`DnsServer::shutdown`] still stops the
/// workers (they are signalled, not joined).
pub struct DnsServer {
    addrs: Vec<SocketAddr>,
    /// `[dns.tls]` and `[dns.https]` addresses as bound (empty when off).
    dot_addrs: Vec<SocketAddr>,
    doh_addrs: Vec<SocketAddr>,
    /// The encrypted listeners' certificates, re-read by [`DnsServer::reload_certs`].
    certs: Vec<(&'static str, Arc<TlsCerts>)>,
    token: CancellationToken,
    threads: Vec<JoinHandle<()>>,
    /// The workers' decision state and upstream plan, for `GET /api/v1/check`.
    check: check::DnsCheck,
}

impl DnsServer {
    /// Binds every `[dns] listen` address for every worker, refusing an address another
    /// process holds ([`exclusive`]). Called first at start, so a second instance stops before
    /// it opens the store; packets that arrive before [`DnsServer::start_bound`] wait in the
    /// sockets' queues.
    pub async fn bind(config: &Config) -> Result<BoundSockets, DnsError> {
        let workers = worker_count(config);
        let listen = config.dns.listen.clone();
        let dot = config.dns.tls.as_ref().map(|t| t.listen.clone());
        let doh = config.dns.https.as_ref().map(|h| h.listen.clone());
        tokio::task::spawn_blocking(move || {
            let (addrs, mut sockets) = bind_all(&listen, workers)?;
            let dot_addrs =
                bind_encrypted("dns.tls", dot.as_deref(), &mut sockets, |w| &mut w.dot)?;
            let doh_addrs =
                bind_encrypted("dns.https", doh.as_deref(), &mut sockets, |w| &mut w.doh)?;
            Ok(BoundSockets {
                addrs,
                dot_addrs,
                doh_addrs,
                sockets,
            })
        })
        .await
        .map_err(|e| DnsError::Worker {
            worker: 0,
            reason: e.to_string(),
        })?
    }

    /// Starts the workers on sockets from [`DnsServer::bind`] (with the same config); returns
    /// once all are serving.
    pub async fn start_bound(ctx: DnsContext, bound: BoundSockets) -> Result<Self, DnsError> {
        let config = ctx.config.clone();
        let BoundSockets {
            addrs,
            dot_addrs,
            doh_addrs,
            sockets,
        } = bound;
        let workers = sockets.len();

        // Blocking preparation (files, resolv.conf, certificates) off the caller's async threads.
        let prep_config = config.clone();
        let (plan, zones, encrypted) = tokio::task::spawn_blocking(move || {
            let plan = UpstreamPlan::new(&prep_config.upstream, workers)?;
            let zones = LocalZones::load(&prep_config)?;
            let encrypted = EncryptedServing::load(&prep_config)?;
            Ok::<_, DnsError>((plan, zones, encrypted))
        })
        .await
        .map_err(|e| DnsError::Worker {
            worker: 0,
            reason: e.to_string(),
        })??;

        let mut shared = Shared::new(
            &config,
            ctx.policy,
            ctx.recorder,
            zones,
            ctx.quarantine,
            workers,
        );
        shared.discovery = discovery::Discovery::bound(&config.dns, &dot_addrs, &doh_addrs);
        let shared = Arc::new(shared);
        let limits = Limits::from_config(&config.dns);
        let proxy = proxy::ProxyTrust::new(&config.dns.proxy_protocol_from);
        // One table for all workers: SO_REUSEPORT spreads a client's packets across them.
        let limiter = RateLimiter::new(
            config.dns.rate_limit_qps,
            config.dns.rate_limit_burst,
            config.dns.rate_limit_slip,
            config.dns.rate_limit_table_size,
        )
        .map(Arc::new);
        let check = check::DnsCheck::new(shared.clone(), plan.clone());
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
            let encrypted = encrypted.clone();
            let proxy = proxy.clone();
            let thread = std::thread::Builder::new()
                .name(format!("poolguard-dns-{worker}"))
                .spawn(move || {
                    let serving = Serving {
                        shared,
                        plan,
                        limiter,
                        limits,
                        proxy,
                        encrypted,
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
            dot_addrs,
            doh_addrs,
            certs: encrypted.certs(),
            token,
            threads,
            check,
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
        if !server.dot_addrs.is_empty() {
            tracing::info!(addrs = ?server.dot_addrs, "dns listening (dot)");
        }
        if !server.doh_addrs.is_empty() {
            tracing::info!(addrs = ?server.doh_addrs, "dns listening (doh)");
        }
        Ok(server)
    }

    /// The real bound addresses (UDP and TCP share each one).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The real bound `[dns.tls]` addresses (empty when DoT is off).
    pub fn dot_addrs(&self) -> &[SocketAddr] {
        &self.dot_addrs
    }

    /// The real bound `[dns.https]` addresses (empty when DoH is off).
    pub fn doh_addrs(&self) -> &[SocketAddr] {
        &self.doh_addrs
    }

    /// Re-reads every encrypted listener's certificate and key (SIGHUP). A pair that loads
    /// serves every new session from now on; open sessions keep theirs. A pair that does not
    /// load leaves the old one serving and is logged with the file and the cause. Returns
    /// how many were replaced, or the first failure.
    pub async fn reload_certs(&self) -> Result<usize, DnsError> {
        let certs = self.certs.clone();
        tokio::task::spawn_blocking(move || {
            let mut replaced = 0;
            let mut first_error = None;
            for (section, certs) in certs {
                match certs.reload() {
                    Ok(()) => {
                        replaced += 1;
                        tracing::info!(section, cert_file = %certs.cert_file().display(), "certificate reloaded");
                    }
                    Err(error) => {
                        tracing::error!(section, %error, "certificate not reloaded; the previous one stays in use");
                        first_error.get_or_insert(DnsError::Cert { section, error });
                    }
                }
            }
            first_error.map_or(Ok(replaced), Err)
        })
        .await
        .map_err(|e| DnsError::Worker {
            worker: 0,
            reason: e.to_string(),
        })?
    }

    /// What `GET /api/v1/check` needs to answer as this server would.
    pub fn check(&self) -> check::DnsCheck {
        self.check.clone()
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

/// `[dns] workers`, with 0 = one per core.
fn worker_count(config: &Config) -> usize {
    match config.dns.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Every worker's sockets, bound by [`DnsServer::bind`] and not served yet.
pub struct BoundSockets {
    addrs: Vec<SocketAddr>,
    dot_addrs: Vec<SocketAddr>,
    doh_addrs: Vec<SocketAddr>,
    sockets: Vec<WorkerSockets>,
}

/// What a worker needs besides its sockets.
struct Serving {
    shared: Arc<Shared>,
    plan: UpstreamPlan,
    limiter: Option<Arc<RateLimiter>>,
    limits: Limits,
    /// Load balancers whose connections start with a PROXY v2 header.
    proxy: proxy::ProxyTrust,
    encrypted: EncryptedServing,
}

/// The encrypted listeners' settings, shared by every worker (`None` = off).
#[derive(Clone, Default)]
struct EncryptedServing {
    dot: Option<Arc<Encrypted>>,
    doh: Option<Arc<DohSite>>,
}

impl EncryptedServing {
    /// Reads the certificates of `[dns.tls]` and `[dns.https]` (blocking: files).
    fn load(config: &Config) -> Result<Self, DnsError> {
        let load = |section, cert: &std::path::Path, key: &std::path::Path, alpn| {
            TlsCerts::load(&config.resolve(cert), &config.resolve(key), alpn)
                .map(Arc::new)
                .map_err(|error| DnsError::Cert { section, error })
        };
        let dot = match &config.dns.tls {
            Some(t) => Some(Arc::new(Encrypted {
                certs: load("dns.tls", &t.cert_file, &t.key_file, encrypted::ALPN_DOT)?,
                handshake: Duration::from_millis(t.handshake_timeout_ms.max(1)),
                idle: Duration::from_millis(t.idle_timeout_ms.max(1)),
                max_connections: t.max_connections.max(1),
            })),
            None => None,
        };
        let doh = match &config.dns.https {
            Some(h) => Some(Arc::new(DohSite {
                tls: Encrypted {
                    certs: load("dns.https", &h.cert_file, &h.key_file, encrypted::ALPN_DOH)?,
                    handshake: Duration::from_millis(h.handshake_timeout_ms.max(1)),
                    idle: Duration::from_millis(h.idle_timeout_ms.max(1)),
                    max_connections: h.max_connections.max(1),
                },
                path: h.path.clone(),
                max_body: h.max_body_bytes,
                max_streams: u32::try_from(config.dns.max_tcp_pipeline.max(1)).unwrap_or(u32::MAX),
            })),
            None => None,
        };
        Ok(Self { dot, doh })
    }

    /// The certificates to reload on SIGHUP, with their config section.
    fn certs(&self) -> Vec<(&'static str, Arc<TlsCerts>)> {
        let dot = self.dot.iter().map(|d| ("dns.tls", d.certs.clone()));
        let doh = self.doh.iter().map(|d| ("dns.https", d.tls.certs.clone()));
        dot.chain(doh).collect()
    }
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
        let front = Arc::new(
            Frontend::new(
                Handler::new(serving.shared, upstreams),
                serving.limiter,
                serving.limits,
            )
            .with_proxy(serving.proxy),
        );
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
        let encrypted = &serving.encrypted;
        let dot = sockets
            .dot
            .into_iter()
            .zip(std::iter::repeat(&encrypted.dot));
        for (listener, settings) in dot {
            let (Some(settings), Ok(l)) = (settings, tokio::net::TcpListener::from_std(listener))
            else {
                let _ = ready.send(Err("dot listener could not be registered".into()));
                return;
            };
            let serve =
                encrypted::dot::serve_dot(front.clone(), l, settings.clone(), token.clone());
            loops.spawn(serve);
        }
        let doh = sockets
            .doh
            .into_iter()
            .zip(std::iter::repeat(&encrypted.doh));
        for (listener, site) in doh {
            let (Some(site), Ok(l)) = (site, tokio::net::TcpListener::from_std(listener)) else {
                let _ = ready.send(Err("doh listener could not be registered".into()));
                return;
            };
            let serve = encrypted::doh::serve_doh(front.clone(), l, site.clone(), token.clone());
            loops.spawn(serve);
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
