//! Loading and reloading what can change without a restart: feeds (compiled on a blocking
//! thread, swapped in whole), `[[api.tokens]]` and the asset ledger.

use std::sync::Arc;

use poolguard_api as api;
use poolguard_clients::{Ledger, SharedLedger};
use poolguard_config::Config;
use poolguard_feeds::loader::{Loader, ReloadReport};
use poolguard_store::{self as store, AuditStore};

use super::{AppError, Running};

pub(super) async fn reload_off_thread(loader: &Arc<Loader>) -> Result<ReloadReport, AppError> {
    let loader = loader.clone();
    tokio::task::spawn_blocking(move || loader.reload())
        .await
        .map_err(|e| AppError::Reload(e.to_string()))
}

pub(super) async fn load_ledger(
    path: Option<std::path::PathBuf>,
) -> Result<SharedLedger, AppError> {
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

pub(super) fn log_report(report: &ReloadReport) {
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

    /// Re-reads the DoT and DoH certificates and keys (`[dns.tls]`, `[dns.https]`): new
    /// sessions use the new pair, open ones keep theirs; a pair that does not load leaves the
    /// old one serving (logged with the file and the cause, and returned).
    pub async fn reload_certs(&self) -> Result<usize, poolguard_dns::DnsError> {
        self.dns.reload_certs().await
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
                // A revoked token stays refused whatever the file says.
                let tokens =
                    api::Tokens::from_config(&fresh.api.tokens).without(&self.revocations.load());
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
}
