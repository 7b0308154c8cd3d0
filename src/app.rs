//! Wiring: starts every part of poolguard from a [`Config`] and stops it again.
//!
//! [`start`] compiles the feeds into the first policy snapshot (off the async threads), then
//! starts the DNS workers on it and returns a [`Running`] handle. The handle is what `main`,
//! the API and the tests drive: real bound addresses, the live policy, reloads (compiled on a
//! blocking thread, never on a DNS runtime, and swapped in whole) and a clean shutdown.
//! Signals (SIGHUP = reload, SIGTERM/SIGINT = stop) are handled by [`Running::run_until_signal`].

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::dns::{DnsContext, DnsError, DnsServer};
use crate::feeds::loader::{Loader, ReloadReport};
use crate::feeds::watch::{WatchHandle, spawn_watcher};
use crate::policy::{Policy, SharedPolicy};
use crate::record::Recorder;

/// Why poolguard could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error("feed loading did not finish: {0}")]
    Reload(String),
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
}

/// Optional parts plugged in at start; the defaults run poolguard stand-alone.
#[derive(Clone, Default)]
pub struct StartOptions {
    /// Where query events go (the store's writer); default discards them.
    pub recorder: Recorder,
}

/// A running poolguard.
pub struct Running {
    config: Arc<Config>,
    policy: SharedPolicy,
    loader: Arc<Loader>,
    recorder: Recorder,
    dns: DnsServer,
    /// Reloads on edits under the feed directories; `None` when `[blocking] watch = false`
    /// or the OS refused (then SIGHUP and the API still reload).
    _watcher: Option<WatchHandle>,
}

/// Starts poolguard with default options (no query recording).
pub async fn start(config: Config) -> Result<Running, AppError> {
    start_with(config, StartOptions::default()).await
}

/// Starts poolguard: loads every feed, then serves DNS on every `[dns] listen` address.
pub async fn start_with(config: Config, options: StartOptions) -> Result<Running, AppError> {
    let config = Arc::new(config);
    let policy: SharedPolicy = Arc::new(ArcSwap::from_pointee(Policy::empty()));
    let loader = Arc::new(Loader::new(config.clone(), policy.clone()));
    let report = reload_off_thread(&loader).await?;
    log_report(&report);
    let dns = DnsServer::start(DnsContext {
        config: config.clone(),
        policy: policy.clone(),
        recorder: options.recorder.clone(),
    })
    .await?;
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
    Ok(Running {
        config,
        policy,
        loader,
        recorder: options.recorder,
        dns,
        _watcher: watcher,
    })
}

async fn reload_off_thread(loader: &Arc<Loader>) -> Result<ReloadReport, AppError> {
    let loader = loader.clone();
    tokio::task::spawn_blocking(move || loader.reload())
        .await
        .map_err(|e| AppError::Reload(e.to_string()))
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

    /// Stops the DNS workers and joins their threads.
    pub async fn shutdown(self) {
        self.dns.shutdown().await;
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
                    tracing::info!("SIGHUP: reloading feeds");
                    self.reload().await;
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
