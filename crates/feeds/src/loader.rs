//! Loader: reads every configured feed, compiles a policy and swaps it in.
//!
//! Each feed keeps its **last good** version: when a file cannot be read, or a file with rule
//! lines yields nothing usable (all rejected or skipped: a wrong format, an HTML error page
//! saved over the list), the previous version stays in force and the feed reports an `error`.
//! A file of only comments and blank lines is a deliberately emptied feed and loads. One bad
//! upload must never unblock every mining pool. A file whose content hash has not changed is
//! not parsed again, so a burst of watcher events or an API-triggered reload costs one
//! policy compile, not a re-parse of every list.
//!
//! A version is kept as its compiled [`FeedRules`] (offsets of its names in the policy
//! snapshot's arena), not as its parse: the parse is dropped as soon as it is compiled, and a
//! reload of one feed recompiles the others from their rules. At a million names that is
//! 4 MiB per feed instead of ~60 MiB of heap strings duplicating the snapshot's own names.
//!
//! `reload` is blocking (file I/O, parsing, compiling): call it from a plain thread or
//! `spawn_blocking`, never on a DNS runtime. Reloads are serialised by one mutex.
//!
//! The feed list is dynamic: it starts as `config.toml`'s `[[feeds]]`, and the API's
//! [`Registry`](super::registry::Registry) replaces it with [`Loader::set_feeds`] when a
//! maintainer creates, deletes or disables a feed. When a reload finds every feed unchanged
//! (same content hash, same settings), the policy is not compiled again: the watcher noticing
//! the API's own write costs a hash per file, not a second compile.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{ParsedFeed, Rejected};
use poolguard_config::{Config, FeedConfig, FeedFormat, FeedKind, Severity};
use poolguard_model::Action;
use poolguard_policy::{FeedInfo, FeedRules, FeedSource, Policy, PolicyStats, SharedPolicy};

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
#[derive(Debug, Clone)]
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
    /// Subscription source, when the feed is fetched from a URL.
    pub url: Option<String>,
    /// The action its blocks get (its own or `[blocking] default_action`).
    pub action: Action,
    /// Category carried by its hits (`mining`, `cryptojacking`, …).
    pub category: String,
    /// Severity carried by its hits.
    pub severity: Severity,
    /// Disabled feeds are listed but not compiled into the policy.
    pub enabled: bool,
}

/// One feed as compiled into the current policy, for publishing and `check`.
#[derive(Debug, Clone)]
pub struct CompiledFeed {
    /// What the policy knows about the feed.
    pub info: Arc<FeedInfo>,
    /// The rules of the version in force, held in the policy snapshot.
    pub rules: Arc<FeedRules>,
    /// Its content hash.
    pub sha256: String,
}

/// The feeds behind the policy in force, swapped together with it, so a publisher never mixes
/// two reloads.
#[derive(Debug, Default)]
pub struct Compiled {
    /// Increases with every compile (not with reloads that changed nothing).
    pub generation: u64,
    /// In the order they were compiled (allow feeds first, then config order).
    pub feeds: Vec<CompiledFeed>,
    /// When this policy was compiled.
    pub compiled_at: Option<DateTime<Utc>>,
}

/// A parse the caller already made of a file it just wrote (the API parses an upload to report
/// on it before writing): the reload takes it instead of reading and parsing the file again.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The feed's name.
    pub name: String,
    /// The parse of the content now on disk.
    pub parsed: ParsedFeed,
    /// SHA-256 of that content.
    pub sha256: String,
}

/// The last good version of one feed: what the API reports about it, and its rules.
struct Good {
    sha256: String,
    loaded_at: DateTime<Utc>,
    format: Option<FeedFormat>,
    accepted: usize,
    skipped: usize,
    rejected: Vec<Rejected>,
    rules: Rules,
}

/// A good version's rules. The parse lives only until the reload that read it compiles it;
/// from then on the feed is kept as [`FeedRules`] (offsets into the snapshot's name arena),
/// which is what lets a later failed reload keep this version without holding a second copy
/// of every name (at a million names, ~60 MiB of parse against 4 MiB of offsets).
enum Rules {
    Parsed(ParsedFeed),
    Compiled(Arc<FeedRules>),
}

impl Good {
    fn new(mut parsed: ParsedFeed, sha256: String) -> Self {
        Self {
            sha256,
            loaded_at: Utc::now(),
            format: parsed.format,
            accepted: parsed.accepted(),
            skipped: parsed.skipped,
            rejected: std::mem::take(&mut parsed.rejected),
            rules: Rules::Parsed(parsed),
        }
    }

    /// The report of a reload that kept this version.
    fn report(&self, name: &str) -> FeedReport {
        FeedReport {
            name: name.to_string(),
            accepted: self.accepted,
            skipped: self.skipped,
            rejected: self.rejected.clone(),
            error: None,
        }
    }

    fn source(&self) -> FeedSource<'_> {
        match &self.rules {
            Rules::Parsed(p) => FeedSource::Parsed(p),
            Rules::Compiled(r) => FeedSource::Compiled(r),
        }
    }
}

#[derive(Default)]
struct FeedState {
    good: Option<Good>,
    last_error: Option<String>,
}

#[derive(Default)]
struct State {
    feeds: HashMap<String, FeedState>,
    /// What the policy in force was compiled from: (feed, content hash) in compile order.
    compiled_from: Option<Vec<(FeedInfo, String)>>,
}

/// Owns the feeds of one config and the live policy they compile into.
pub struct Loader {
    config: Arc<Config>,
    policy: SharedPolicy,
    feeds: ArcSwap<Vec<FeedConfig>>,
    compiled: ArcSwap<Compiled>,
    state: Mutex<State>,
}

/// The file a feed is read from: its `path`, or for a subscription without one the cache
/// `<feeds_dir>/<name>.txt`; resolved against the config's directory.
pub fn feed_file(config: &Config, f: &FeedConfig) -> Option<PathBuf> {
    match (&f.path, &f.url) {
        (Some(p), _) => Some(config.resolve(p)),
        (None, Some(_)) => Some(config.resolve(&config.written_feed_path(&f.name))),
        (None, None) => None,
    }
}

impl Loader {
    /// A loader for `config`'s feeds that publishes into `policy`. Loads nothing until
    /// [`reload`](Self::reload), so the caller decides when the first (slow) load happens.
    pub fn new(config: Arc<Config>, policy: SharedPolicy) -> Self {
        let feeds = ArcSwap::from_pointee(config.feeds.clone());
        Self {
            config,
            policy,
            feeds,
            compiled: ArcSwap::from_pointee(Compiled::default()),
            state: Mutex::new(State::default()),
        }
    }

    /// Re-reads every enabled feed and swaps in the compiled policy. Blocking: call it from
    /// `spawn_blocking` or a dedicated thread, never on a DNS runtime.
    pub fn reload(&self) -> ReloadReport {
        self.reload_with(None)
    }

    /// [`reload`](Self::reload), taking `seed` as the parse of its feed's file (which the
    /// caller has just written) instead of parsing it again.
    pub fn reload_with(&self, seed: Option<Seed>) -> ReloadReport {
        let report = self.reload_locked(seed);
        release_freed_memory();
        report
    }

    fn reload_locked(&self, seed: Option<Seed>) -> ReloadReport {
        let start = Instant::now();
        // A poisoned lock only means an earlier reload panicked; the map is still consistent
        // (each entry is replaced whole), so carry on rather than stop reloading forever.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let seeded = seed.as_ref().map(|s| s.name.clone());
        if let Some(seed) = seed {
            let st = state.feeds.entry(seed.name).or_default();
            // The same content as the version in force: its compiled rules stay.
            if st.good.as_ref().is_none_or(|g| g.sha256 != seed.sha256) {
                st.good = Some(Good::new(seed.parsed, seed.sha256));
            }
            st.last_error = None;
        }
        let mut reports = Vec::new();
        let mut in_force = Vec::new();
        let feeds = self.feeds.load_full();
        for f in feeds.iter().filter(|f| f.enabled) {
            let Some(path) = feed_file(&self.config, f) else {
                continue;
            };
            let st = state.feeds.entry(f.name.clone()).or_default();
            // The seeded file was written a moment ago by the caller, who parsed and hashed
            // it: reading and hashing it again would only repeat that.
            let report = match (&seeded, &st.good) {
                (Some(n), Some(good)) if n == &f.name => good.report(&f.name),
                _ => load_one(f, &path, st),
            };
            reports.push(report);
            if let Some(good) = &st.good {
                let info = FeedInfo {
                    name: f.name.as_str().into(),
                    kind: f.kind,
                    action: self.config.action_of(f),
                    category: f.category.as_str().into(),
                    severity: f.severity,
                };
                in_force.push((info, good.sha256.clone()));
            }
        }
        // Allow feeds first: precedence does not depend on it (allow always wins), but a stable
        // order keeps compiled policies comparable between reloads.
        in_force.sort_by_key(|(i, _)| i.kind != FeedKind::Allow);
        // Feeds not in force (disabled) keep nothing: their rules would keep an old snapshot
        // alive. Enabling one reads its file again.
        for (name, st) in state.feeds.iter_mut() {
            if !in_force
                .iter()
                .any(|(i, _)| i.name.as_ref() == name.as_str())
            {
                st.good = None;
            }
        }
        if state.compiled_from.as_ref() == Some(&in_force) {
            let stats = self.policy.load().stats();
            tracing::debug!("feeds unchanged; policy in force kept");
            return ReloadReport {
                feeds: reports,
                stats,
                elapsed: start.elapsed(),
            };
        }
        // Every feed in force has a good version (that is how it got into `in_force`).
        let sources = in_force.iter().filter_map(|(info, _)| {
            let good = state.feeds.get(info.name.as_ref())?.good.as_ref()?;
            Some((Arc::new(info.clone()), good.source()))
        });
        let (policy, rules) = Policy::compile(sources);
        let compiled: Vec<CompiledFeed> = policy
            .feeds()
            .iter()
            .zip(rules)
            .zip(&in_force)
            .map(|((info, rules), (_, sha256))| CompiledFeed {
                info: info.clone(),
                rules,
                sha256: sha256.clone(),
            })
            .collect();
        // From now on each feed is kept as its compiled rules; the parses are dropped here.
        for c in &compiled {
            if let Some(good) = state
                .feeds
                .get_mut(c.info.name.as_ref())
                .and_then(|st| st.good.as_mut())
            {
                good.rules = Rules::Compiled(c.rules.clone());
            }
        }
        let stats = policy.stats();
        let generation = self.compiled.load().generation + 1;
        self.policy.store(policy);
        self.compiled.store(Arc::new(Compiled {
            generation,
            feeds: compiled,
            compiled_at: Some(Utc::now()),
        }));
        state.compiled_from = Some(in_force);
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

    /// Replaces the feed list (config feeds plus API-created ones, with API overrides); takes
    /// effect at the next reload. Feeds no longer listed lose their state.
    pub fn set_feeds(&self, feeds: Vec<FeedConfig>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .feeds
            .retain(|name, _| feeds.iter().any(|f| &f.name == name));
        self.feeds.store(Arc::new(feeds));
    }

    /// The feed list in force (see [`set_feeds`](Self::set_feeds)).
    pub fn feed_configs(&self) -> Arc<Vec<FeedConfig>> {
        self.feeds.load_full()
    }

    /// The feeds behind the policy in force, for publishing and `check`.
    pub fn compiled(&self) -> Arc<Compiled> {
        self.compiled.load_full()
    }

    /// The live policy handle the DNS path reads.
    pub fn policy(&self) -> &SharedPolicy {
        &self.policy
    }

    /// The config this loader serves (the watcher needs the feed paths).
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Status of every feed, in config order (API-created feeds last), for the API and
    /// `poolguard status`.
    pub fn feeds(&self) -> Vec<FeedStatus> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.feeds
            .load()
            .iter()
            .map(|f| {
                let st = state.feeds.get(&f.name);
                let good = st.and_then(|s| s.good.as_ref());
                FeedStatus {
                    name: f.name.clone(),
                    kind: f.kind,
                    format: good.and_then(|g| g.format),
                    path: feed_file(&self.config, f),
                    entries: good.map_or(0, |g| g.accepted),
                    rejected: good.map_or(0, |g| g.rejected.len()),
                    skipped: good.map_or(0, |g| g.skipped),
                    loaded_at: good.map(|g| g.loaded_at),
                    last_error: st.and_then(|s| s.last_error.clone()),
                    sha256: good.map(|g| g.sha256.clone()),
                    url: f.url.clone(),
                    action: self.config.action_of(f),
                    category: f.category.clone(),
                    severity: f.severity,
                    enabled: f.enabled,
                }
            })
            .collect()
    }
}

/// Hands the heap pages freed by a reload back to the OS. A parse is a million small
/// allocations (one `DomainName` each) that are all freed once the feed is compiled, but glibc
/// keeps those pages mapped: at 1M names RSS stayed at 110 MiB instead of 65 MiB after the
/// first load (docs/BENCHMARKS.md). `malloc_trim(0)` releases them; it runs once per reload,
/// after the lock is released.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim takes no pointers and locks each arena it trims; it may
        // be called from any thread at any time.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Loads one feed into its state, keeping the last good version on failure.
fn load_one(f: &FeedConfig, path: &std::path::Path, st: &mut FeedState) -> FeedReport {
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
        return good.report(&f.name);
    }
    let text = String::from_utf8_lossy(&bytes);
    let parsed = crate::parse(&text, f.format, f.kind);
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
    st.good = Some(Good::new(parsed, sha256));
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
