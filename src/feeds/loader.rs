//! Loader: reads every configured feed, compiles a policy and swaps it in.
//!
//! Placeholder with the final API; the real one keeps each feed's last good version, runs off
//! the DNS runtimes and watches `blocklists/`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{Config, FeedKind};
use crate::feeds::{self, Rejected};
use crate::policy::{FeedInfo, Policy, PolicyStats, SharedPolicy};

/// One feed's load result.
#[derive(Debug, Clone, Serialize)]
pub struct FeedReport {
    pub name: String,
    pub accepted: usize,
    pub skipped: usize,
    pub rejected: Vec<Rejected>,
    /// Set when the whole feed failed (unreadable file, nothing parsed); its previous
    /// version stays in force.
    pub error: Option<String>,
}

/// What a reload did.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    pub feeds: Vec<FeedReport>,
    pub stats: PolicyStats,
    pub elapsed: Duration,
}

/// Owns the feeds of one config and the live policy they compile into.
pub struct Loader {
    config: Arc<Config>,
    policy: SharedPolicy,
}

impl Loader {
    pub fn new(config: Arc<Config>, policy: SharedPolicy) -> Self {
        Self { config, policy }
    }

    /// Re-reads every enabled feed and swaps in the compiled policy. Blocking: call it from
    /// `spawn_blocking` or a dedicated thread, never on a DNS runtime.
    pub fn reload(&self) -> ReloadReport {
        let start = Instant::now();
        let mut parsed = Vec::new();
        let mut reports = Vec::new();
        for f in self.config.feeds.iter().filter(|f| f.enabled) {
            let Some(path) = &f.path else { continue };
            let path = self.config.resolve(path);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let p = feeds::parse(&text, f.format, f.kind);
                    reports.push(FeedReport {
                        name: f.name.clone(),
                        accepted: p.accepted(),
                        skipped: p.skipped,
                        rejected: p.rejected.clone(),
                        error: None,
                    });
                    let info = Arc::new(FeedInfo {
                        name: f.name.as_str().into(),
                        kind: f.kind,
                        action: self.config.action_of(f),
                        category: f.category.as_str().into(),
                        severity: f.severity,
                    });
                    parsed.push((info, p));
                }
                Err(e) => reports.push(FeedReport {
                    name: f.name.clone(),
                    accepted: 0,
                    skipped: 0,
                    rejected: Vec::new(),
                    error: Some(format!("{}: {e}", path.display())),
                }),
            }
        }
        // Allowlists first is irrelevant to precedence (allow always wins) but keeps order stable.
        parsed.sort_by_key(|(i, _)| i.kind != FeedKind::Allow);
        let policy = Policy::build(parsed.iter().map(|(i, p)| (i.clone(), p)));
        let stats = policy.stats();
        self.policy.store(Arc::new(policy));
        ReloadReport {
            feeds: reports,
            stats,
            elapsed: start.elapsed(),
        }
    }

    /// The live policy handle the DNS path reads.
    pub fn policy(&self) -> &SharedPolicy {
        &self.policy
    }
}
