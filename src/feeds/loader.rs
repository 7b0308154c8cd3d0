//! Loader: reads every configured feed, compiles a policy and swaps it in.
//!
//! Each feed keeps its **last good** version: when a file cannot be read, or a file with rule
//! lines yields nothing usable (all rejected or skipped: a wrong format, an HTML error page
//! saved over the list), the previous parse stays in force and the feed reports an `error`.
//! A file of only comments and blank lines is a deliberately emptied feed and loads. One bad
//! upload must never unblock every mining pool. A file whose content hash has not changed is
//! not parsed again, so a burst of watcher events or an API-triggered reload costs one
//! policy compile, not a re-parse of every list.
//!
//! `reload` is blocking (file I/O, parsing, compiling): call it from a plain thread or
//! `spawn_blocking`, never on a DNS runtime. Reloads are serialised by one mutex.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{Config, FeedFormat, FeedKind};
use crate::feeds::{self, ParsedFeed, Rejected};
use crate::policy::{FeedInfo, Policy, PolicyStats, SharedPolicy};

/// Rejected lines logged at `warn` per feed and load; the rest are summed up in one line (all
/// of them are in the report and in `poolguard check`).
pub const WARN_LINES: usize = 20;

/// One feed's load result.
#[derive(Debug, Clone, Serialize)]
pub struct FeedReport {
    /// The feed's name from the config.
    pub name: String,
    /// Entries in force after this reload (0 when it failed).
    pub accepted: usize,
    /// Valid rules a resolver cannot honour (see [`ParsedFeed::skipped`]).
    pub skipped: usize,
    /// Every rejected line, for the API and `poolguard check`.
    pub rejected: Vec<Rejected>,
    /// Set when the whole feed failed (unreadable file, nothing parsed); its previous
    /// version stays in force.
    pub error: Option<String>,
}

/// What a reload did.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// One report per enabled feed with a local file, in config order.
    pub feeds: Vec<FeedReport>,
    /// Size of the policy swapped in.
    pub stats: PolicyStats,
    /// Reading, parsing and compiling, end to end (the design budget is 1 s for 1M names).
    pub elapsed: Duration,
}

/// A feed's state as the API shows it (`GET /feeds`): what is in force and how it got there.
#[derive(Debug, Clone, Serialize)]
pub struct FeedStatus {
    /// The feed's name from the config.
    pub name: String,
    /// What its entries mean (block, IPs, allow).
    pub kind: FeedKind,
    /// Format in force (after auto-detection); `None` before the first good load.
    pub format: Option<FeedFormat>,
    /// The file, resolved against the config's directory.
    pub path: Option<PathBuf>,
    /// Entries of the version in force.
    pub entries: usize,
    /// Rejected lines of the version in force.
    pub rejected: usize,
    /// Skipped rules of the version in force.
    pub skipped: usize,
    /// When the version in force was loaded.
    pub loaded_at: Option<DateTime<Utc>>,
    /// The last reload's failure, if it failed (the previous version is still in force).
    pub last_error: Option<String>,
    /// Lower-case hex SHA-256 of the file content in force.
    pub sha256: Option<String>,
}

/// The last good version of one feed.
struct Good {
    parsed: Arc<ParsedFeed>,
    sha256: String,
    loaded_at: DateTime<Utc>,
}

#[derive(Default)]
struct FeedState {
    good: Option<Good>,
    last_error: Option<String>,
}

/// Owns the feeds of one config and the live policy they compile into.
pub struct Loader {
    config: Arc<Config>,
    policy: SharedPolicy,
    state: Mutex<HashMap<String, FeedState>>,
}

impl Loader {
    /// A loader for `config`'s feeds that publishes into `policy`. Loads nothing until
    /// [`reload`](Self::reload), so the caller decides when the first (slow) load happens.
    pub fn new(config: Arc<Config>, policy: SharedPolicy) -> Self {
        Self {
            config,
            policy,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Re-reads every enabled feed and swaps in the compiled policy. Blocking: call it from
    /// `spawn_blocking` or a dedicated thread, never on a DNS runtime.
    pub fn reload(&self) -> ReloadReport {
        let start = Instant::now();
        // A poisoned lock only means an earlier reload panicked; the map is still consistent
        // (each entry is replaced whole), so carry on rather than stop reloading forever.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut reports = Vec::new();
        let mut in_force = Vec::new();
        for f in self.config.feeds.iter().filter(|f| f.enabled) {
            let Some(path) = &f.path else { continue };
            let path = self.config.resolve(path);
            let st = state.entry(f.name.clone()).or_default();
            let report = load_one(f, &path, st);
            reports.push(report);
            if let Some(good) = &st.good {
                let info = Arc::new(FeedInfo {
                    name: f.name.as_str().into(),
                    kind: f.kind,
                    action: self.config.action_of(f),
                    category: f.category.as_str().into(),
                    severity: f.severity,
                });
                in_force.push((info, good.parsed.clone()));
            }
        }
        // Allow feeds first: precedence does not depend on it (allow always wins), but a stable
        // order keeps compiled policies comparable between reloads.
        in_force.sort_by_key(|(i, _)| i.kind != FeedKind::Allow);
        let policy = Policy::build(in_force.iter().map(|(i, p)| (i.clone(), p.as_ref())));
        let stats = policy.stats();
        self.policy.store(Arc::new(policy));
        let elapsed = start.elapsed();
        tracing::info!(
            blocked = stats.blocked_names,
            allowed = stats.allowed_names,
            ip_prefixes = stats.ip_prefixes,
            elapsed_ms = elapsed.as_millis() as u64,
            "policy compiled and swapped in"
        );
        ReloadReport {
            feeds: reports,
            stats,
            elapsed,
        }
    }

    /// The live policy handle the DNS path reads.
    pub fn policy(&self) -> &SharedPolicy {
        &self.policy
    }

    /// The config this loader serves (the watcher needs the feed paths).
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Status of every configured feed, in config order, for the API and `poolguard status`.
    pub fn feeds(&self) -> Vec<FeedStatus> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.config
            .feeds
            .iter()
            .map(|f| {
                let st = state.get(&f.name);
                let good = st.and_then(|s| s.good.as_ref());
                FeedStatus {
                    name: f.name.clone(),
                    kind: f.kind,
                    format: good.and_then(|g| g.parsed.format),
                    path: f.path.as_ref().map(|p| self.config.resolve(p)),
                    entries: good.map_or(0, |g| g.parsed.accepted()),
                    rejected: good.map_or(0, |g| g.parsed.rejected.len()),
                    skipped: good.map_or(0, |g| g.parsed.skipped),
                    loaded_at: good.map(|g| g.loaded_at),
                    last_error: st.and_then(|s| s.last_error.clone()),
                    sha256: good.map(|g| g.sha256.clone()),
                }
            })
            .collect()
    }
}

/// Loads one feed into its state, keeping the last good version on failure.
fn load_one(
    f: &crate::config::FeedConfig,
    path: &std::path::Path,
    st: &mut FeedState,
) -> FeedReport {
    let failed = |st: &mut FeedState, error: String, rejected: Vec<Rejected>| {
        tracing::warn!(feed = %f.name, path = %path.display(), %error, "feed not loaded; previous version stays in force");
        st.last_error = Some(error.clone());
        FeedReport {
            name: f.name.clone(),
            accepted: 0,
            skipped: 0,
            rejected,
            error: Some(error),
        }
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            return failed(
                st,
                format!("cannot read {}: {e}", path.display()),
                Vec::new(),
            );
        }
    };
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if let Some(good) = &st.good
        && good.sha256 == sha256
    {
        st.last_error = None;
        return FeedReport {
            name: f.name.clone(),
            accepted: good.parsed.accepted(),
            skipped: good.parsed.skipped,
            rejected: good.parsed.rejected.clone(),
            error: None,
        };
    }
    let text = String::from_utf8_lossy(&bytes);
    let parsed = feeds::parse(&text, f.format, f.kind);
    log_rejected(&f.name, path, &parsed.rejected);
    if parsed.accepted() == 0 && (parsed.rejected.len() + parsed.skipped) > 0 {
        let error = format!(
            "{}: no usable entry ({} lines rejected, {} skipped); wrong `format` or `kind`?",
            path.display(),
            parsed.rejected.len(),
            parsed.skipped
        );
        return failed(st, error, parsed.rejected);
    }
    tracing::info!(
        feed = %f.name,
        format = ?parsed.format,
        entries = parsed.accepted(),
        rejected = parsed.rejected.len(),
        skipped = parsed.skipped,
        "feed {} loaded: {} entries, {} rejected, {} skipped",
        f.name,
        parsed.accepted(),
        parsed.rejected.len(),
        parsed.skipped
    );
    let report = FeedReport {
        name: f.name.clone(),
        accepted: parsed.accepted(),
        skipped: parsed.skipped,
        rejected: parsed.rejected.clone(),
        error: None,
    };
    st.good = Some(Good {
        parsed: Arc::new(parsed),
        sha256,
        loaded_at: Utc::now(),
    });
    st.last_error = None;
    report
}

fn log_rejected(feed: &str, path: &std::path::Path, rejected: &[Rejected]) {
    for r in rejected.iter().take(WARN_LINES) {
        tracing::warn!(
            feed,
            line = r.line,
            "{}:{}: `{}` {}",
            path.display(),
            r.line,
            r.text,
            r.reason
        );
    }
    if rejected.len() > WARN_LINES {
        tracing::warn!(
            feed,
            more = rejected.len() - WARN_LINES,
            "{} more rejected lines in {} (run `poolguard check` for all)",
            rejected.len() - WARN_LINES,
            path.display()
        );
    }
}
