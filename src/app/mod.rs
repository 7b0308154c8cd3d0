//! Wiring: starts every part of poolguard from a [`Config`] and stops it again.
//!
//! [`start`] compiles the feeds into the first policy snapshot (off the async threads), then
//! starts the DNS workers on it and returns a [`Running`] handle. The handle is what `main`,
//! the API and the tests drive: real bound addresses, the live policy, reloads (compiled on a
//! blocking thread, never on a DNS runtime, and swapped in whole) and a clean shutdown.
//! Signals (SIGHUP = reload feeds, API tokens and the ledger, SIGTERM/SIGINT = stop) are handled by
//! [`Running::run_until_signal`].

mod accountability;
mod api_server;
mod evidence;
mod follow;
mod group;
mod identity;
mod listen;
mod listings;
mod reload;
pub mod shared;
mod shipper;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use poolguard_api::revocations::Revocations;
use poolguard_api::{self as api, ApiState};
use poolguard_clients::{LedgerError, SharedLedger};
use poolguard_config::Config;
use poolguard_dns::{DnsContext, DnsError, DnsServer};
use poolguard_export::HitSource;
use poolguard_feeds::loader::Loader;
use poolguard_feeds::registry::{Registry, RegistryError};
use poolguard_feeds::watch::{WatchHandle, spawn_watcher};
use poolguard_incidents::{self as incidents, Accountability, Alerts, SharedClock, SystemClock};
use poolguard_policy::{Policy, SharedPolicy};
use poolguard_record::Recorder;
use poolguard_record::lifecycle::AttributedHitSink;
use poolguard_store::writer::WriterHandle;
use poolguard_store::{self as store, Store, StoreError, Stores};

use accountability::start_accountability;
use api_server::start_api;
use evidence::open_store;
use reload::{load_ledger, log_report, reload_off_thread};

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
    /// An `[incidents.exempt]` entry is not an address, network, MAC or account.
    #[error(transparent)]
    Exempt(#[from] poolguard_identity::ExemptError),
    /// An `[identity]` source could not start (a NAS secret, the RADIUS address).
    #[error(transparent)]
    Identity(#[from] poolguard_identity::sources::SourceError),
    /// The shared PostgreSQL store (`[store] backend = "postgres"`) could not be opened.
    #[error("shared store: {0}")]
    SharedStore(#[from] poolguard_store_pg::PgError),
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

pub use listen::Listener;

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
    /// The PostgreSQL store shared with other nodes (`[store] backend = "postgres"`): then
    /// the API, alerts and deadline checks use it, and `store` keeps this node's query log.
    shared: Option<shared::Shared>,
    /// This process's claim on the store; released after the writer has shut down.
    _lock: store::lock::StoreLock,
    writer: WriterHandle,
    /// Alert delivery, deadline checks and the notice page; stopped at shutdown.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: tokio_util::sync::CancellationToken,
    /// The notice page's real address, when `[notice] listen` is set.
    notice_addr: Option<SocketAddr>,
    /// The hit shipper, with `[store] backend = "postgres"`.
    shipping: Option<shipper::Shipping>,
    /// What was added to the feeds and the pool set, for the bulletin and the summary.
    listings: poolguard_store::summary::SharedListings,
}

impl Evidence {
    /// The store the API, the alerts and the deadline checks read and write.
    fn stores(&self) -> Arc<dyn Stores> {
        match &self.shared {
            Some(shared) => Arc::new(shared.store.clone()),
            None => Arc::new(self.store.clone()),
        }
    }

    /// The review queue of candidate pool names: the group's under the postgres backend.
    fn review_queue(&self) -> Arc<dyn store::review::ReviewStore> {
        match &self.shared {
            Some(shared) => Arc::new(shared.store.clone()),
            None => Arc::new(self.store.clone()),
        }
    }
}

/// The HTTP API listeners and how to stop them.
struct ApiServer {
    addr: SocketAddr,
    /// Where the staff console answers: the API's own address, `[console] listen`, or None
    /// when `[console] enabled = false`.
    console_addr: Option<SocketAddr>,
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
    /// `[[export.*]]` receivers; stopped last, after DNS and the store writer, so every
    /// answered query and every committed hit is offered first.
    exporter: Option<Arc<poolguard_export::Exporter>>,
    ledger: SharedLedger,
    /// Who held each address when, and the sources feeding it (`[identity]`).
    identity: Option<identity::Identities>,
    accountability: Arc<Accountability>,
    evidence: Option<Evidence>,
    api: Option<ApiServer>,
    /// Reloads on edits under the feed directories; `None` when `[blocking] watch = false`
    /// or the OS refused (then SIGHUP and the API still reload).
    _watcher: Option<WatchHandle>,
    /// Feed definitions created over the API, versions, publishing.
    registry: Arc<Registry>,
    /// Revoked API tokens, subtracted from `[[api.tokens]]` at every reload.
    revocations: Arc<Revocations>,
    /// The pool address set's refresh task (`[pools]`); `None` when off.
    pools: Option<poolguard_dns::pools::Pools>,
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
    let ledger_uploads = Arc::new(poolguard_clients::LedgerUploads::new(
        registry.state_dir().join("ledger-versions"),
    ));
    let revocations = Arc::new(Revocations::new(
        registry.state_dir().join("revoked-tokens"),
    ));
    let clock = options.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let (alerts, alert_rx) = if config.alerts.webhooks.is_empty()
        && config.alerts.dingtalk.is_empty()
        && config.alerts.wecom.is_empty()
        && config.alerts.email.is_empty()
        && config.alerts.syslog.is_none()
    {
        (Alerts::disabled(), None)
    } else {
        let (a, rx) = Alerts::channel();
        (a, Some(rx))
    };
    // Exports: their connection tasks run on this (control) runtime; the DNS path only sees the
    // recorder's export handle, the alerts hand incident and quarantine events to syslog ones.
    // While the store tracks incidents, syslog hit messages name their incident: the store
    // writer hands them over after each commit (docs/EXPORT.md).
    let tracking = !options.recorder.is_enabled() && config.incidents.enabled;
    let hit_source = if tracking {
        HitSource::Committed
    } else {
        HitSource::Answered
    };
    let exporter = poolguard_export::Exporter::start(&config, &ledger, hit_source);
    let alerts = match &exporter {
        Some(e) if e.wants_events() => alerts.with_export(e.clone()),
        _ => alerts,
    };
    let accountability = Arc::new(Accountability::new(&config, clock, alerts));
    // Hits on feeds created over the API carry their category and severity too.
    let metas = accountability.feeds.clone();
    let default_action = config.blocking.default_action;
    registry.on_feeds_changed(Box::new(move |feeds| {
        metas.store(Arc::new(incidents::feed_metas_of(feeds, default_action)));
    }));
    // Lease files are read whole before the writer starts, so hits right after start are
    // attributed (docs/IDENTITY.md).
    let exempt = Arc::new(poolguard_identity::Exempt::from_config(
        &config.incidents.exempt,
    )?);
    let identity = identity::start_identity(&config).await?;
    let (recorder, evidence) = if options.recorder.is_enabled() {
        (options.recorder, None)
    } else {
        let hit_sink = exporter
            .as_ref()
            .filter(|e| e.takes_committed_hits())
            .map(|e| e.clone() as Arc<dyn AttributedHitSink>);
        let (recorder, mut evidence) =
            open_store(&config, ledger.clone(), accountability.clone(), hit_sink).await?;
        if !exempt.is_empty() {
            evidence.writer.exempt_with(exempt.clone());
        }
        if let Some(i) = &identity {
            evidence.writer.attribute_with(i.index.clone());
            if let Some(shared) = &evidence.shared {
                let task = shared::share_identities(shared, i.index.clone(), &config);
                evidence.tasks.push(task);
            }
            // A quarantined device is quarantined at whatever address it moves to.
            let follow = poolguard_incidents::follow::spawn(
                accountability.quarantine.clone(),
                evidence.stores(),
                i.index.clone(),
            );
            evidence.tasks.push(follow);
        }
        start_accountability(&config, &mut evidence, &accountability, alert_rx).await?;
        (recorder, Some(evidence))
    };
    let recorder = match &exporter {
        Some(e) => recorder.with_export(e.clone()),
        None => recorder,
    };
    let followers = evidence
        .as_ref()
        .and_then(|ev| ev.shared.as_ref())
        .map(|shared| {
            let followers = follow::Followers {
                registry: registry.clone(),
                ledger: ledger.clone(),
                ledger_path: ledger_path.clone(),
                uploads: ledger_uploads.clone(),
                revocations: revocations.clone(),
                tokens: None,
            };
            // Before the API takes a write: every maintainer write reaches the group first.
            followers.share_through(&shared.store);
            followers
        });
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
    // The pool address set: its own resolver on this (the control) runtime, off the DNS path.
    let pools = poolguard_dns::pools::Pools::start(&config, policy.clone())
        .map_err(|e| AppError::Dns(e.into()))?;
    let mut evidence = evidence;
    if let Some(ev) = evidence.as_mut() {
        let (added, task) = listings::AddedToLists::start(
            loader.clone(),
            registry.state_dir(),
            pools.as_ref().map(|p| p.set.clone()),
            ev.stop.clone(),
        )
        .await;
        let _ = ev.listings.set(added);
        ev.tasks.push(task);
    }
    let api = match (&evidence, config.api.listen) {
        (Some(ev), Some(addr)) => {
            let mut state = ApiState::new(
                ev.store.clone(),
                ledger.clone(),
                ledger_path,
                &config.api,
                Some(ev.writer.health()),
            );
            state.identities = identity.as_ref().map(|i| i.index.clone());
            state.listings = ev.listings.clone();
            state.exempt = (!exempt.is_empty()).then(|| exempt.clone());
            state.store = ev.stores();
            state.database = ev
                .shared
                .as_ref()
                .map(|s| Arc::new(s.store.clone()) as Arc<dyn store::Reachable>);
            state.metrics = metrics;
            state.feeds = Some(registry.clone());
            state.ledger_uploads = Some(ledger_uploads.clone());
            state.revocations = Some(revocations.clone());
            let revoked = revocations.load();
            state
                .tokens
                .store(Arc::new(state.tokens.load().without(&revoked)));
            state.accountability = accountability.clone();
            state.dns = Some(dns.check());
            state.pools = pools.as_ref().map(|p| p.set.clone());
            state.review = Some(ev.review_queue());
            state.shipping = ev.shipping.as_ref().map(|s| s.health());
            state.group = ev.shared.as_ref().map(|s| group::group(&config, &s.store));
            let api = start_api(addr, config.api.metrics_listen, state, &config).await?;
            if let Some(shared) = &ev.shared {
                group::register_api(&shared.store, api.addr).await;
            }
            Some(api)
        }
        _ => None,
    };
    // The review queue's scan reads this node's query log back (docs/REVIEW.md) into the
    // queue: the group's under the postgres backend.
    if let Some(ev) = evidence.as_mut() {
        let pool_set = pools.as_ref().map(|p| p.set.clone());
        let categories = config.review.categories.clone();
        let scan = poolguard_feeds::review::ReviewScan {
            config: config.clone(),
            policy: policy.clone(),
            log: ev.store.clone(),
            queue: ev.review_queue(),
            pool: Arc::new(move || {
                pool_set
                    .as_ref()
                    .map(|s| s.names_by_address(&categories))
                    .unwrap_or_default()
            }),
        };
        ev.tasks.extend(scan.spawn(ev.stop.clone()));
    }
    if let (Some(ev), Some(mut followers)) = (evidence.as_mut(), followers)
        && let Some(shared) = &ev.shared
    {
        followers.tokens = api.as_ref().map(|a| a.tokens.clone());
        ev.tasks.push(follow::follow(
            shared.subscribe(),
            shared.store.clone(),
            followers,
        ));
    }
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
        evidence
            .as_ref()
            .map(|e| e.stores() as Arc<dyn store::AuditStore>),
    );
    Ok(Running {
        config,
        policy,
        loader,
        recorder,
        dns,
        exporter,
        ledger,
        identity,
        accountability,
        evidence,
        api,
        _watcher: watcher,
        registry,
        revocations,
        pools,
        subscriptions: (stop_subscriptions, subscription_tasks),
    })
}

impl Running {
    /// The real DNS addresses (UDP and TCP on each), e.g. the port picked for `:0`.
    pub fn dns_addrs(&self) -> Vec<SocketAddr> {
        self.dns.local_addrs().to_vec()
    }

    /// The bound DoT addresses (`[dns.tls]`; empty when off).
    pub fn dot_addrs(&self) -> Vec<SocketAddr> {
        self.dns.dot_addrs().to_vec()
    }

    /// The bound DoH addresses (`[dns.https]`; empty when off).
    pub fn doh_addrs(&self) -> Vec<SocketAddr> {
        self.dns.doh_addrs().to_vec()
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

    /// The API's real address (e.g. the port picked for `:0`); `None` when the API is off.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().map(|a| a.addr)
    }

    /// Where the staff console answers; `None` when the API or the console is off.
    pub fn console_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().and_then(|a| a.console_addr)
    }

    /// The feed registry (API-created feeds, versions, publishing).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The evidence store, when poolguard records to SQLite.
    pub fn store(&self) -> Option<&Store> {
        self.evidence.as_ref().map(|e| &e.store)
    }

    /// The PostgreSQL store shared with other nodes, with `[store] backend = "postgres"`.
    pub fn shared_store(&self) -> Option<&poolguard_store_pg::PgStore> {
        self.evidence
            .as_ref()
            .and_then(|e| e.shared.as_ref())
            .map(|s| &s.store)
    }

    /// The live asset ledger.
    pub fn ledger(&self) -> &SharedLedger {
        &self.ledger
    }

    /// Who held each address when (`[identity]`); None when no source is configured.
    pub fn identities(&self) -> Option<&poolguard_identity::SharedIdentities> {
        self.identity.as_ref().map(|i| &i.index)
    }

    /// Where the RADIUS accounting listener is bound, when `[identity.radius]` is set.
    pub fn radius_addr(&self) -> Option<SocketAddr> {
        self.identity.as_ref().and_then(|i| i.sources.radius_addr)
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
            Some(e) => {
                incidents::alerts::check_deadlines(e.stores().as_ref(), &self.accountability).await
            }
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

    /// Stops answering (DNS first, so no new events arrive), stops the API, commits every
    /// queued event, then lets the exports write what they hold, before returning.
    pub async fn shutdown(self) {
        self.subscriptions.0.cancel();
        for t in self.subscriptions.1 {
            let _ = t.await;
        }
        if let Some(pools) = self.pools {
            pools.stop().await;
        }
        self.dns.shutdown().await;
        if let Some(identity) = self.identity {
            identity.sources.shutdown().await;
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
            if let Some(shared) = &ev.shared {
                shared.stop();
            }
            if let Err(error) = ev.writer.shutdown().await {
                tracing::error!(%error, "could not commit every queued event at shutdown");
            }
            if let Some(shipping) = ev.shipping {
                shipping.stop().await;
            }
            // Alert deliveries still retrying are abandoned; the delivery log shows the tries.
            for t in ev.tasks {
                t.abort();
            }
        }
        // Last: the writer's final commits handed their hits to the syslog exports.
        if let Some(exporter) = &self.exporter {
            exporter.shutdown().await;
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
                    tracing::info!("SIGHUP: reloading feeds, API tokens, the asset ledger and TLS certificates");
                    self.reload().await;
                    self.reload_tokens();
                    self.reload_ledger().await;
                    // Each failure is logged with its file; the old certificate stays.
                    let _ = self.reload_certs().await;
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
