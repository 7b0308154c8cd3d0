//! Wiring: starts every part of poolguard from a [`Config`] and stops it again.
//!
//! [`start`] compiles the feeds into the first policy snapshot (off the async threads), then
//! starts the DNS workers on it and returns a [`Running`] handle. The handle is what `main`,
//! the API and the tests drive: real bound addresses, the live policy, reloads (compiled on a
//! blocking thread, never on a DNS runtime, and swapped in whole) and a clean shutdown.
//! Signals (SIGHUP = reload feeds, API tokens and the ledger, SIGTERM/SIGINT = stop) are handled by
//! [`Running::run_until_signal`].

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use poolguard_api::{self as api, ApiState};
use poolguard_clients::{Ledger, LedgerError, SharedLedger};
use poolguard_config::Config;
use poolguard_dns::{DnsContext, DnsError, DnsServer};
use poolguard_feeds::loader::{Loader, ReloadReport};
use poolguard_feeds::registry::{Registry, RegistryError};
use poolguard_feeds::watch::{WatchHandle, spawn_watcher};
use poolguard_incidents::{self as incidents, Accountability, Alerts, SharedClock, SystemClock};
use poolguard_policy::{Policy, SharedPolicy};
use poolguard_record::Recorder;
use poolguard_store::writer::WriterHandle;
use poolguard_store::{self as store, AuditStore, Store, StoreError};

/// Why poolguard could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error("feed loading did not finish: {0}")]
    Reload(String),
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("feed definitions: {0}")]
    Registry(#[from] RegistryError),
    /// An HTTP listener could not be bound. The cause is in the message and deliberately not
    /// returned by `source()`: `main` prints the chain, which printed it twice.
    #[error("cannot listen on {addr} for the {listener}: {cause}")]
    Listen {
        listener: Listener,
        addr: SocketAddr,
        cause: std::io::Error,
    },
}

/// The HTTP listeners poolguard serves besides DNS, named with their config key in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Api,
    Metrics,
    Notice,
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Api => "API (`[api] listen`)",
            Self::Metrics => "metrics (`[api] metrics_listen`)",
            Self::Notice => "notice page (`[notice] listen`)",
        })
    }
}

/// Binds one of the HTTP listeners; the one place their bind errors are made.
async fn bind_listener(
    listener: Listener,
    addr: SocketAddr,
) -> Result<tokio::net::TcpListener, AppError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|cause| AppError::Listen {
            listener,
            addr,
            cause,
        })
}

/// Optional parts plugged in at start.
#[derive(Clone, Default)]
pub struct StartOptions {
    /// Where query events go instead of the store (tests tap events with it). When disabled
    /// (the default), events go to the SQLite store at `[store] path`.
    pub recorder: Recorder,
    /// Where incident deadlines and overdue flags take "now" from; `None` = the system clock.
    /// Tests plug a `ManualClock` in to jump 49 hours without sleeping.
    pub clock: Option<SharedClock>,
}

/// The evidence store and its writer, when poolguard records to SQLite.
struct Evidence {
    store: Store,
    /// This process's claim on the store; released after the writer has shut down.
    _lock: store::lock::StoreLock,
    writer: WriterHandle,
    /// Alert delivery, deadline checks and the notice page; stopped at shutdown.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: tokio_util::sync::CancellationToken,
    /// The notice page's real address, when `[notice] listen` is set.
    notice_addr: Option<SocketAddr>,
}

/// The HTTP API listeners and how to stop them.
struct ApiServer {
    addr: SocketAddr,
    /// The tokens the API checks, swapped by [`Running::reload_tokens`].
    tokens: Arc<ArcSwap<api::Tokens>>,
    stop: tokio_util::sync::CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A running poolguard.
pub struct Running {
    config: Arc<Config>,
    policy: SharedPolicy,
    loader: Arc<Loader>,
    recorder: Recorder,
    dns: DnsServer,
    /// `[[export.*]]` receivers; stopped after DNS, so every answered query is offered first.
    exporter: Option<Arc<poolguard_export::Exporter>>,
    ledger: SharedLedger,
    accountability: Arc<Accountability>,
    evidence: Option<Evidence>,
    api: Option<ApiServer>,
    /// Reloads on edits under the feed directories; `None` when `[blocking] watch = false`
    /// or the OS refused (then SIGHUP and the API still reload).
    _watcher: Option<WatchHandle>,
    /// Feed definitions created over the API, versions, publishing.
    registry: Arc<Registry>,
    /// Stops the subscription refresh tasks.
    subscriptions: (
        tokio_util::sync::CancellationToken,
        Vec<tokio::task::JoinHandle<()>>,
    ),
}

/// Starts poolguard with default options (no query recording).
pub async fn start(config: Config) -> Result<Running, AppError> {
    start_with(config, StartOptions::default()).await
}

/// Starts poolguard: loads every feed, then serves DNS on every `[dns] listen` address.
pub async fn start_with(config: Config, options: StartOptions) -> Result<Running, AppError> {
    // The DNS addresses first: an instance refused there (another poolguard holds one) stops
    // before it touches the store, the spool or the feed folder the other one uses.
    let dns_sockets = DnsServer::bind(&config).await?;
    let config = Arc::new(config);
    let policy: SharedPolicy = Arc::new(ArcSwap::from_pointee(Policy::empty()));
    let loader = Arc::new(Loader::new(config.clone(), policy.clone()));
    // API-created feeds (<feeds_dir>/.poolguard/feeds.toml) join the list before the first load.
    let registry = {
        let (c, l) = (config.clone(), loader.clone());
        tokio::task::spawn_blocking(move || {
            // File I/O like the registry's own, so off the async threads with it.
            if let Some(problem) = poolguard_feeds::check::feeds_dir_problem(&c) {
                tracing::warn!("{problem}");
            }
            for problem in incidents::config::walled_garden_problems(&c) {
                tracing::warn!("{problem}");
            }
            Registry::open(c, l)
        })
        .await
        .map_err(|e| AppError::Reload(e.to_string()))??
    };
    let registry = Arc::new(registry);
    let report = reload_off_thread(&loader).await?;
    log_report(&report);
    // Metrics first, so nothing emitted at start-up is lost (idempotent).
    let metrics = api::metrics::install();
    let ledger_path = config.clients.ledger.as_ref().map(|p| config.resolve(p));
    let ledger = load_ledger(ledger_path.clone()).await?;
    let clock = options.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let (alerts, alert_rx) = if config.alerts.webhooks.is_empty() && config.alerts.syslog.is_none()
    {
        (Alerts::disabled(), None)
    } else {
        let (a, rx) = Alerts::channel();
        (a, Some(rx))
    };
    // Exports: their connection tasks run on this (control) runtime; the DNS path only sees the
    // recorder's export handle, the alerts hand incident and quarantine events to syslog ones.
    let exporter = poolguard_export::Exporter::start(&config, &ledger);
    let alerts = match &exporter {
        Some(e) if e.wants_events() => alerts.with_export(e.clone()),
        _ => alerts,
    };
    let accountability = Arc::new(Accountability::new(&config, clock, alerts));
    // Hits on feeds created over the API carry their category and severity too.
    let metas = accountability.feeds.clone();
    registry.on_feeds_changed(Box::new(move |feeds| {
        metas.store(Arc::new(incidents::feed_metas_of(feeds)));
    }));
    let (recorder, evidence) = if options.recorder.is_enabled() {
        (options.recorder, None)
    } else {
        let (recorder, mut evidence) =
            open_store(&config, ledger.clone(), accountability.clone()).await?;
        start_accountability(&config, &mut evidence, &accountability, alert_rx).await?;
        (recorder, Some(evidence))
    };
    let recorder = match &exporter {
        Some(e) => recorder.with_export(e.clone()),
        None => recorder,
    };
    let dns = DnsServer::start_bound(
        DnsContext {
            config: config.clone(),
            policy: policy.clone(),
            recorder: recorder.clone(),
            quarantine: Some(accountability.quarantine.clone()),
        },
        dns_sockets,
    )
    .await?;
    let api = match (&evidence, config.api.listen) {
        (Some(ev), Some(addr)) => {
            let mut state = ApiState::new(
                ev.store.clone(),
                ledger.clone(),
                ledger_path,
                &config.api,
                Some(ev.writer.health()),
            );
            state.metrics = metrics;
            state.feeds = Some(registry.clone());
            state.ledger_uploads = Some(Arc::new(poolguard_clients::LedgerUploads::new(
                registry.state_dir().join("ledger-versions"),
            )));
            state.accountability = accountability.clone();
            state.dns = Some(dns.check());
            Some(start_api(addr, config.api.metrics_listen, state).await?)
        }
        _ => None,
    };
    let watcher = if config.blocking.watch {
        match spawn_watcher(loader.clone()) {
            Ok(w) => Some(w),
            Err(error) => {
                tracing::warn!(%error, "feed files are not watched; reload with SIGHUP");
                None
            }
        }
    } else {
        None
    };
    // Subscriptions refresh on this (the control) runtime, never on a DNS runtime.
    let stop_subscriptions = tokio_util::sync::CancellationToken::new();
    let subscription_tasks = poolguard_feeds::subscribe::spawn(
        registry.clone(),
        stop_subscriptions.clone(),
        evidence.as_ref().map(|e| e.store.clone()),
    );
    Ok(Running {
        config,
        policy,
        loader,
        recorder,
        dns,
        exporter,
        ledger,
        accountability,
        evidence,
        api,
        _watcher: watcher,
        registry,
        subscriptions: (stop_subscriptions, subscription_tasks),
    })
}

async fn reload_off_thread(loader: &Arc<Loader>) -> Result<ReloadReport, AppError> {
    let loader = loader.clone();
    tokio::task::spawn_blocking(move || loader.reload())
        .await
        .map_err(|e| AppError::Reload(e.to_string()))
}

async fn load_ledger(path: Option<std::path::PathBuf>) -> Result<SharedLedger, AppError> {
    let loaded = tokio::task::spawn_blocking(move || Ledger::load_configured(path.as_deref()))
        .await
        .map_err(|e| AppError::Reload(e.to_string()))??;
    let (ledger, report) = loaded;
    for row in report.rejected.iter().take(20) {
        tracing::warn!(line = row.line, reason = %row.reason, "ledger row rejected");
    }
    if !ledger.is_empty() || !report.rejected.is_empty() {
        tracing::info!("asset ledger loaded: {}", report.summary());
    }
    Ok(ledger.shared())
}

async fn open_store(
    config: &Config,
    ledger: SharedLedger,
    accountability: Arc<Accountability>,
) -> Result<(Recorder, Evidence), AppError> {
    let mut store_cfg = config.store.clone();
    store_cfg.path = config.resolve(&config.store.path);
    // Opening creates the directory and migrates the schema: file I/O, off the async threads.
    let opened = tokio::task::spawn_blocking(move || {
        // Claimed before opening: a second instance must not migrate, replay the spool or
        // track incidents on a store another process serves from.
        let lock = store::lock::StoreLock::acquire(&store_cfg.path)?;
        let store = store::open(&store_cfg)?;
        // Quarantine survives restarts: SQLite is the source of truth for the DNS path's set.
        let quarantined = incidents::db::quarantine_list(&store.write_connection()?)?;
        accountability
            .quarantine
            .replace(quarantined.iter().filter_map(|q| q.ip.parse().ok()));
        let tracker = incidents::track::Tracker::new(accountability);
        let (sink, writer) =
            store::writer::spawn_with(&store, &store_cfg, ledger, Some(Arc::new(tracker)))?;
        Ok::<_, StoreError>((lock, store, sink, writer))
    })
    .await
    .map_err(|e| AppError::Reload(e.to_string()))??;
    let (lock, store, sink, writer) = opened;
    Ok((
        Recorder::new(sink),
        Evidence {
            store,
            _lock: lock,
            writer,
            tasks: Vec::new(),
            stop: tokio_util::sync::CancellationToken::new(),
            notice_addr: None,
        },
    ))
}

/// Alert delivery, the periodic deadline check and the notice page, on this (control) runtime.
async fn start_accountability(
    config: &Config,
    evidence: &mut Evidence,
    acc: &Arc<Accountability>,
    alert_rx: Option<tokio::sync::mpsc::Receiver<incidents::AlertEvent>>,
) -> Result<(), AppError> {
    if let Some(rx) = alert_rx {
        evidence.tasks.push(incidents::alerts::spawn(
            config.alerts.clone(),
            Arc::new(evidence.store.clone()),
            acc.clone(),
            rx,
        ));
        evidence
            .tasks
            .push(incidents::alerts::spawn_deadline_checks(
                Arc::new(evidence.store.clone()),
                acc.clone(),
                config.alerts.check_every.0,
                evidence.stop.clone(),
            ));
    }
    if let Some(addr) = config.notice.listen {
        let listener = bind_listener(Listener::Notice, addr).await?;
        let notice_addr = listener.local_addr().ok();
        evidence.notice_addr = notice_addr;
        let task = incidents::notice::serve(
            listener,
            &config.notice,
            evidence.stop.clone().cancelled_owned(),
        );
        evidence.tasks.push(tokio::spawn(async move {
            if let Ok(Err(error)) = task.await {
                tracing::warn!(%error, "notice page server stopped with an error");
            }
        }));
    }
    Ok(())
}

async fn start_api(
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    state: ApiState,
) -> Result<ApiServer, AppError> {
    let stop = tokio_util::sync::CancellationToken::new();
    let listener = bind_listener(Listener::Api, addr).await?;
    let bound = listener.local_addr().map_err(|cause| AppError::Listen {
        listener: Listener::Api,
        addr,
        cause,
    })?;
    let mut tasks = Vec::new();
    if let Some(m) = metrics_addr {
        let ops = bind_listener(Listener::Metrics, m).await?;
        tasks.push(api::serve_ops(
            ops,
            state.clone(),
            stop.clone().cancelled_owned(),
        ));
    }
    let tokens = state.tokens.clone();
    tasks.push(api::serve(listener, state, stop.clone().cancelled_owned()));
    Ok(ApiServer {
        addr: bound,
        tokens,
        stop,
        tasks,
    })
}

fn log_report(report: &ReloadReport) {
    let rejected: usize = report.feeds.iter().map(|f| f.rejected.len()).sum();
    for f in &report.feeds {
        if let Some(error) = &f.error {
            tracing::warn!(feed = %f.name, %error, "feed not loaded");
        }
    }
    tracing::info!(
        elapsed_ms = report.elapsed.as_millis() as u64,
        "policy loaded: {} names, {} prefixes, {} rejected lines",
        report.stats.blocked_names + report.stats.allowed_names,
        report.stats.ip_prefixes,
        rejected
    );
}

impl Running {
    /// The real DNS addresses (UDP and TCP on each), e.g. the port picked for `:0`.
    pub fn dns_addrs(&self) -> Vec<SocketAddr> {
        self.dns.local_addrs().to_vec()
    }

    /// The live policy, for the API and tests.
    pub fn policy(&self) -> SharedPolicy {
        self.policy.clone()
    }

    /// The config poolguard was started with.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The recorder the DNS path feeds (the store plugs its sink in at start).
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Re-reads every feed on a blocking thread and swaps the new policy in whole. Queries keep
    /// being answered from the old snapshot until the swap.
    pub async fn reload(&self) -> ReloadReport {
        let loader = self.loader.clone();
        let started = std::time::Instant::now();
        match tokio::task::spawn_blocking(move || loader.reload()).await {
            Ok(report) => {
                log_report(&report);
                report
            }
            Err(e) => {
                tracing::warn!(error = %e, "reload task failed; the previous policy stays");
                ReloadReport {
                    feeds: Vec::new(),
                    stats: self.policy.load().stats(),
                    elapsed: started.elapsed(),
                }
            }
        }
    }

    /// Re-reads `[[api.tokens]]` from the config file and swaps them in whole, so ops can
    /// revoke a leaked token (or add one) with a reload instead of a restart. Only the tokens:
    /// every other setting still needs a restart. A config that no longer loads changes
    /// nothing (the error is logged). Returns how many tokens are in force, `None` when the
    /// API is off or the file did not load.
    pub fn reload_tokens(&self) -> Option<usize> {
        let api = self.api.as_ref()?;
        match Config::load(&self.config.path) {
            Ok(fresh) => {
                let tokens = api::Tokens::from_config(&fresh.api.tokens);
                let n = tokens.len();
                api.tokens.store(Arc::new(tokens));
                tracing::info!(tokens = n, "API tokens reloaded");
                Some(n)
            }
            Err(error) => {
                tracing::error!(%error, "config.toml did not load; API tokens unchanged");
                None
            }
        }
    }

    /// Re-reads `[clients] ledger` and swaps it in whole, as `POST /api/v1/ledger/reload`
    /// does, so ops who edit the CSV on disk can apply it with the same reload as the feeds.
    /// A file that no longer loads keeps the ledger in force (the error is logged); a reload
    /// is audited as the system's. Returns the networks loaded, `None` when no ledger is
    /// configured or the file did not load.
    pub async fn reload_ledger(&self) -> Option<usize> {
        let path = self.config.resolve(self.config.clients.ledger.as_ref()?);
        let report = match poolguard_clients::reload(&self.ledger, path).await {
            Ok(report) => report,
            Err(error) => {
                tracing::error!(%error, "asset ledger did not load; the one in force stays");
                return None;
            }
        };
        tracing::info!(
            loaded = report.loaded,
            rejected = report.rejected.len(),
            "asset ledger reloaded"
        );
        if let Some(ev) = &self.evidence {
            let mut entry =
                store::audit::AuditEntry::now("system", "system", "ledger.reload", "ledger");
            entry.detail = format!("SIGHUP: {}", report.summary());
            if let Err(error) = ev.store.audit(entry).await {
                tracing::warn!(%error, "ledger reload not audited");
            }
        }
        Some(report.loaded)
    }

    /// The API's real address (e.g. the port picked for `:0`); `None` when the API is off.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().map(|a| a.addr)
    }

    /// The feed registry (API-created feeds, versions, publishing).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The evidence store, when poolguard records to SQLite.
    pub fn store(&self) -> Option<&Store> {
        self.evidence.as_ref().map(|e| &e.store)
    }

    /// The live asset ledger.
    pub fn ledger(&self) -> &SharedLedger {
        &self.ledger
    }

    /// Incidents, quarantine and alerts: the clock, the quarantine set, the alert hand-off.
    pub fn accountability(&self) -> &Arc<Accountability> {
        &self.accountability
    }

    /// The notice page's real address, when `[notice] listen` is set.
    pub fn notice_addr(&self) -> Option<SocketAddr> {
        self.evidence.as_ref().and_then(|e| e.notice_addr)
    }

    /// Runs one deadline check now (`incident.due_soon` / `incident.overdue`), instead of
    /// waiting for `[alerts] check_every`; returns how many alerts it raised.
    pub async fn check_deadlines(&self) -> Result<usize, StoreError> {
        match &self.evidence {
            Some(e) => incidents::alerts::check_deadlines(&e.store, &self.accountability).await,
            None => Ok(0),
        }
    }

    /// Applies a simulated store failure (disk full, read-only) or heals it, on the store
    /// writer's own connection. For tests; `Ok` and nothing happens without a store.
    #[doc(hidden)]
    pub async fn store_fault(&self, fault: store::writer::StoreFault) -> Result<(), StoreError> {
        match &self.evidence {
            Some(e) => e.writer.inject_fault(fault).await,
            None => Ok(()),
        }
    }

    /// Commits every event recorded so far (tests and the API use it to read their writes).
    pub async fn flush(&self) -> Result<(), StoreError> {
        match &self.evidence {
            Some(e) => e.writer.flush().await,
            None => Ok(()),
        }
    }

    /// Stops answering (DNS first, so no new events arrive), stops the API, then commits
    /// every queued event before returning.
    pub async fn shutdown(self) {
        self.subscriptions.0.cancel();
        for t in self.subscriptions.1 {
            let _ = t.await;
        }
        self.dns.shutdown().await;
        if let Some(exporter) = &self.exporter {
            exporter.shutdown().await;
        }
        if let Some(api) = self.api {
            api.stop.cancel();
            for t in api.tasks {
                if let Ok(Err(error)) = t.await {
                    tracing::warn!(%error, "API server stopped with an error");
                }
            }
        }
        if let Some(ev) = self.evidence {
            ev.stop.cancel();
            if let Err(error) = ev.writer.shutdown().await {
                tracing::error!(%error, "could not commit every queued event at shutdown");
            }
            // Alert deliveries still retrying are abandoned; the delivery log shows the tries.
            for t in ev.tasks {
                t.abort();
            }
        }
    }

    /// Serves until SIGTERM or SIGINT, reloading feeds on SIGHUP, then shuts down cleanly.
    pub async fn run_until_signal(self) -> Result<(), AppError> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).map_err(AppError::Signal)?;
        let mut term = signal(SignalKind::terminate()).map_err(AppError::Signal)?;
        let mut int = signal(SignalKind::interrupt()).map_err(AppError::Signal)?;
        // Bounded by signals: each iteration waits for one.
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading feeds, API tokens and the asset ledger");
                    self.reload().await;
                    self.reload_tokens();
                    self.reload_ledger().await;
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        tracing::info!("shutting down");
        self.shutdown().await;
        Ok(())
    }
}
