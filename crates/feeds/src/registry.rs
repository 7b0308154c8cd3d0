//! The feed maintainers' write path: create, replace, patch, delete, enable, roll back.
//!
//! Every write goes the same way, one at a time (one mutex): parse the new content first and
//! refuse it whole when nothing in it is usable (the old version stays), keep the previous
//! content as a version if it is not one yet, write the file atomically, keep the new content
//! as a version, persist the feed definition, then reload through the [`Loader`] with the parse
//! already made (no second parse), which swaps the new policy in whole.
//!
//! Where things live (all under `[api] feeds_dir`, default `blocklists/` beside the config):
//! - `blocklists/<name>.txt`: the content of a feed created over the API (a `config.toml`
//!   feed keeps its own `path`; a subscription without `path` caches there too).
//! - `blocklists/.poolguard/feeds.toml`: feeds created over the API (`[[feeds]]`, same keys as
//!   `config.toml`) and API changes to `config.toml` feeds (`[[overrides]]`: enabled, kind,
//!   format, action, category, severity). Merged at start: `config.toml` feeds first (its order
//!   is the priority order), then API feeds in creation order. A `config.toml` feed with the
//!   name of an API feed wins, with a warning.
//! - `blocklists/.poolguard/versions/<name>/`: the history ([`crate::versions`]).
//! - `blocklists/.poolguard/ledger-versions/`: the asset ledger's history.
//!
//! All methods are blocking (file I/O, parsing, compiling): call them from `spawn_blocking`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use super::loader::{FeedStatus, Loader, Seed, feed_file};
use super::publish::{self, PublishFormat, Published};
use super::{ParsedFeed, Rejected};
use crate::versions::{self, NewVersion, Version, VersionError, Versions, write_atomic};
use poolguard_clients::{Ledger, LoadReport};
use poolguard_config::{Config, FeedConfig, FeedFormat, FeedKind, Severity, valid_feed_name};
use poolguard_model::domain::DomainName;
use poolguard_policy::{Action, Decision};

/// Why a maintainer's write was refused or failed. Each maps to one HTTP status in the API.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The name cannot be a feed name (it ends up in file names and URLs).
    #[error(
        "`{0}` is not a valid feed name: 1-64 letters, digits, '_', '-' or '.', not starting with '.'"
    )]
    BadName(String),
    /// No feed (or version) by that name or id.
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts the feed's setup (deleting a `config.toml` feed, uploading
    /// over a subscription).
    #[error("{0}")]
    Conflict(String),
    /// A malformed request (bad parameter value, entry list).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing in the content is usable; the previous version stays in force.
    #[error("{message}")]
    Unusable {
        /// What to fix.
        message: String,
        /// The parse report, with every rejected line.
        report: Box<WriteReport>,
    },
    /// No row of an uploaded asset ledger is usable; the ledger in force stays.
    #[error("{message}")]
    LedgerRefused {
        /// What to fix.
        message: String,
        /// Every rejected row.
        report: LoadReport,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The version history could not be read or written.
    #[error(transparent)]
    Version(#[from] VersionError),
}

/// What a write did: the parse report and the version now in force.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WriteReport {
    /// The feed written.
    pub feed: String,
    /// Entries accepted (lines; duplicates count).
    pub accepted: usize,
    /// Every rejected line with its number and reason.
    pub rejected: Vec<Rejected>,
    /// Valid rules a resolver cannot honour.
    pub skipped: usize,
    /// Where every line went: `accepted + rejected + skipped + comments == lines`.
    pub lines: super::LineCounts,
    /// The skipped lines by number, with why; only with `?verbose=true` (a long adblock list
    /// has thousands of cosmetic rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_lines: Option<Vec<super::Skipped>>,
    /// The skipped lines, kept for [`WriteReport::verbose`].
    #[serde(skip)]
    pub skipped_detail: Vec<super::Skipped>,
    /// The format used (after auto-detection).
    #[schema(value_type = Option<String>)]
    pub format: Option<FeedFormat>,
    /// The version now in force (absent when the write was refused).
    pub version: Option<Version>,
    /// SHA-256 of the content before the write (absent for a new feed).
    #[serde(skip)]
    pub before_sha256: Option<String>,
}

impl WriteReport {
    /// Lists the skipped lines in the answer (`?verbose=true`).
    pub fn verbose(&mut self) {
        self.skipped_lines = Some(std::mem::take(&mut self.skipped_detail));
    }
}

/// Settings a maintainer may give with an upload (`PUT …?kind=ips&action=refuse`).
#[derive(Debug, Clone, Default)]
pub struct FeedSettings {
    /// What the entries mean.
    pub kind: Option<FeedKind>,
    /// The syntax (default `auto`).
    pub format: Option<FeedFormat>,
    /// How blocks are answered.
    pub action: Option<Action>,
    /// Category carried by hits.
    pub category: Option<String>,
    /// Severity carried by hits.
    pub severity: Option<Severity>,
}

/// A feed created over the API, as persisted in `feeds.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiFeed {
    name: String,
    path: PathBuf,
    #[serde(default)]
    kind: FeedKind,
    #[serde(default)]
    format: FeedFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    action: Option<Action>,
    category: String,
    #[serde(default)]
    severity: Severity,
    enabled: bool,
}

/// API changes to a `config.toml` feed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Override {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<FeedKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<FeedFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    action: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    severity: Option<Severity>,
}

impl Override {
    fn settings(&self) -> FeedSettings {
        FeedSettings {
            kind: self.kind,
            format: self.format,
            action: self.action,
            category: self.category.clone(),
            severity: self.severity,
        }
    }
}

/// `feeds.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defs {
    #[serde(default)]
    feeds: Vec<ApiFeed>,
    #[serde(default)]
    overrides: Vec<Override>,
}

/// The last fetch of a subscription, for `GET /feeds` and metrics.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FetchStatus {
    /// When the last fetch was attempted.
    pub last_attempt: Option<chrono::DateTime<chrono::Utc>>,
    /// When a fetch last succeeded (new content or 304).
    pub last_success: Option<chrono::DateTime<chrono::Utc>>,
    /// `updated`, `not_modified` or `failed`.
    pub result: Option<String>,
    /// Why the last fetch failed (the last good copy stays in force).
    pub error: Option<String>,
    /// The server's ETag for the cached copy (sent as If-None-Match).
    pub etag: Option<String>,
    /// The server's Last-Modified for the cached copy (sent as If-Modified-Since).
    pub last_modified: Option<String>,
    /// SHA-256 of the cached copy these validators belong to.
    pub sha256: Option<String>,
}

/// One feed as `GET /api/v1/feeds` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FeedView {
    /// The loader's status (kind, format, entries, last load result…).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub status: FeedStatus,
    /// `config` (defined in config.toml) or `api` (created over the API).
    pub defined_in: &'static str,
    /// The newest kept version (hash, time, who).
    pub version: Option<Version>,
    /// Subscriptions only: the last fetch.
    pub fetch: Option<FetchStatus>,
}

/// What `GET /api/v1/check` answers about the feeds and the client (the API adds what DNS
/// would do with the name).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct CheckReport {
    /// The name as matched (lower case, punycode).
    pub name: String,
    /// From the feeds: `blocked`, `allowed` (an allow rule matched) or `pass` (not listed).
    /// `GET /api/v1/check` replaces it with what DNS would do (`api::check`): also `refused`
    /// or `quarantined`, and `blocked` by answer inspection.
    pub decision: &'static str,
    /// The feed whose rule decided.
    pub feed: Option<String>,
    /// The rule as the maintainer wrote it (`pool.example`, `=host`, `@@x`).
    pub rule: Option<String>,
    /// For a block: how it is answered.
    #[schema(value_type = Option<String>)]
    pub action: Option<Action>,
    /// For an allow: the block it overrides, if any (`feed: rule`).
    pub overrides: Option<String>,
    /// The client's identity from the asset ledger, when `client` was given.
    pub client: Option<poolguard_clients::Identity>,
    /// When `client` was given: whether it is quarantined. A quarantined client gets the
    /// walled garden for every name outside `[enforcement] reachable`, and `decision` then says
    /// `quarantined` (the feed verdict is still shown).
    pub quarantined: Option<bool>,
}

/// The feed maintainers' write path (see the module docs).
pub struct Registry {
    config: Arc<Config>,
    loader: Arc<Loader>,
    state_dir: PathBuf,
    defs: Mutex<Defs>,
    fetches: Mutex<HashMap<String, FetchStatus>>,
    published: Mutex<HashMap<PublishFormat, Arc<Published>>>,
    listeners: Mutex<Vec<FeedsListener>>,
}

/// Told the whole feed list whenever it changes (incident tracking keeps feed categories and
/// severities for hits on feeds created over the API).
pub type FeedsListener = Box<dyn Fn(&[FeedConfig]) + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in an earlier write leaves whole values behind; keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    /// Reads `blocklists/.poolguard/feeds.toml` (if any) and gives the loader the merged feed
    /// list. Call before the first reload.
    pub fn open(config: Arc<Config>, loader: Arc<Loader>) -> Result<Self, RegistryError> {
        let state_dir = config.feeds_dir().join(".poolguard");
        let path = state_dir.join("feeds.toml");
        let defs = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<Defs>(&text).map_err(|e| RegistryError::Io {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Defs::default(),
            Err(source) => return Err(RegistryError::Io { path, source }),
        };
        let fetches = load_fetches(&state_dir);
        let registry = Self {
            config,
            loader,
            state_dir,
            defs: Mutex::new(defs),
            fetches: Mutex::new(fetches),
            published: Mutex::new(HashMap::new()),
            listeners: Mutex::new(Vec::new()),
        };
        let feeds = registry.effective(&lock(&registry.defs));
        registry.loader.set_feeds(feeds);
        Ok(registry)
    }

    /// The loader this registry writes through.
    pub fn loader(&self) -> &Arc<Loader> {
        &self.loader
    }

    /// The config poolguard runs with.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    fn versions(&self, name: &str) -> Versions {
        Versions::new(self.state_dir.join("versions").join(name))
    }

    /// `config.toml` feeds with API overrides, then API-created feeds.
    fn effective(&self, defs: &Defs) -> Vec<FeedConfig> {
        let mut out = self.config.feeds.clone();
        for f in &mut out {
            if let Some(o) = defs.overrides.iter().find(|o| o.name == f.name) {
                f.enabled = o.enabled.unwrap_or(f.enabled);
                apply_settings(f, &o.settings());
            }
        }
        for a in &defs.feeds {
            if out.iter().any(|f| f.name == a.name) {
                tracing::warn!(feed = %a.name, "config.toml defines a feed with the name of an API-created feed; the config.toml one is used");
                continue;
            }
            out.push(FeedConfig {
                name: a.name.clone(),
                path: Some(a.path.clone()),
                url: None,
                refresh: None,
                kind: a.kind,
                format: a.format,
                action: a.action,
                category: a.category.clone(),
                severity: a.severity,
                enabled: a.enabled,
                timeout: None,
                max_size_mb: None,
            });
        }
        out
    }

    /// Gives the loader (and every listener) the merged feed list.
    fn set_feeds(&self, defs: &Defs) {
        let feeds = self.effective(defs);
        for l in lock(&self.listeners).iter() {
            l(&feeds);
        }
        self.loader.set_feeds(feeds);
    }

    /// Calls `listener` with the feed list now and after every change.
    pub fn on_feeds_changed(&self, listener: FeedsListener) {
        listener(&self.loader.feed_configs());
        lock(&self.listeners).push(listener);
    }

    fn save_defs(&self, defs: &Defs) -> Result<(), RegistryError> {
        let path = self.state_dir.join("feeds.toml");
        let body = toml::to_string_pretty(defs).map_err(|e| RegistryError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let text = format!(
            "# Written by poolguard's API (feeds created or changed by maintainers).\n\
             # Feeds in config.toml come first and win on a name clash; see docs/FEEDS-API.md.\n\n{body}"
        );
        write_atomic(&path, text.as_bytes()).map_err(|source| RegistryError::Io { path, source })
    }

    fn find(&self, name: &str) -> Result<FeedConfig, RegistryError> {
        if !valid_feed_name(name) {
            return Err(RegistryError::BadName(name.to_string()));
        }
        self.loader
            .feed_configs()
            .iter()
            .find(|f| f.name == name)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(format!("no feed named `{name}`")))
    }

    fn in_config(&self, name: &str) -> bool {
        self.config.feeds.iter().any(|f| f.name == name)
    }

    /// Every feed with its load status, newest version and last fetch.
    pub fn list(&self) -> Vec<FeedView> {
        let fetches = lock(&self.fetches).clone();
        self.loader
            .feeds()
            .into_iter()
            .map(|status| {
                let version = self.versions(&status.name).latest().ok().flatten();
                let fetch = status
                    .url
                    .as_ref()
                    .map(|_| fetches.get(&status.name).cloned().unwrap_or_default());
                FeedView {
                    defined_in: if self.in_config(&status.name) {
                        "config"
                    } else {
                        "api"
                    },
                    version,
                    fetch,
                    status,
                }
            })
            .collect()
    }

    /// One feed's view.
    pub fn get(&self, name: &str) -> Result<FeedView, RegistryError> {
        self.find(name)?;
        self.list()
            .into_iter()
            .find(|v| v.status.name == name)
            .ok_or_else(|| RegistryError::NotFound(format!("no feed named `{name}`")))
    }

    /// `PUT /feeds/{name}`: creates the feed or replaces its content (and the given settings).
    pub fn upload(
        &self,
        name: &str,
        content: &[u8],
        settings: FeedSettings,
        who: &str,
    ) -> Result<WriteReport, RegistryError> {
        if !valid_feed_name(name) {
            return Err(RegistryError::BadName(name.to_string()));
        }
        if content.is_empty() {
            return Err(RegistryError::Unusable {
                message: "the body is empty; to empty a feed, upload a comment line (`# emptied`)"
                    .into(),
                report: Box::new(empty_report(name)),
            });
        }
        let mut defs = lock(&self.defs);
        let existing = self
            .loader
            .feed_configs()
            .iter()
            .find(|f| f.name == name)
            .cloned();
        let mut feed = match existing {
            Some(f) if f.url.is_some() => {
                return Err(RegistryError::Conflict(format!(
                    "`{name}` is a subscription to {}; it is replaced by its next fetch (POST /api/v1/feeds/{name}/refresh)",
                    f.url.as_deref().unwrap_or_default()
                )));
            }
            Some(f) => f,
            None => FeedConfig {
                name: name.to_string(),
                path: Some(self.config.written_feed_path(name)),
                url: None,
                refresh: None,
                kind: FeedKind::default(),
                format: FeedFormat::Auto,
                action: None,
                category: "mining".into(),
                severity: Severity::default(),
                enabled: true,
                timeout: None,
                max_size_mb: None,
            },
        };
        apply_settings(&mut feed, &settings);
        self.remember(&mut defs, &feed, &settings);
        self.write(&mut defs, &feed, content, who, "upload")
    }

    /// Records `feed`'s settings in the definitions (API feed or override of a config feed).
    fn remember(&self, defs: &mut Defs, feed: &FeedConfig, s: &FeedSettings) {
        if self.in_config(&feed.name) {
            if s.kind.is_none()
                && s.format.is_none()
                && s.action.is_none()
                && s.category.is_none()
                && s.severity.is_none()
            {
                return;
            }
            let o = match defs.overrides.iter_mut().find(|o| o.name == feed.name) {
                Some(o) => o,
                None => {
                    defs.overrides.push(Override {
                        name: feed.name.clone(),
                        ..Default::default()
                    });
                    let last = defs.overrides.len() - 1;
                    &mut defs.overrides[last]
                }
            };
            o.kind = s.kind.or(o.kind);
            o.format = s.format.or(o.format);
            o.action = s.action.or(o.action);
            o.severity = s.severity.or(o.severity);
            if s.category.is_some() {
                o.category = s.category.clone();
            }
            return;
        }
        let def = ApiFeed {
            name: feed.name.clone(),
            path: feed
                .path
                .clone()
                .unwrap_or_else(|| self.config.written_feed_path(&feed.name)),
            kind: feed.kind,
            format: feed.format,
            action: feed.action,
            category: feed.category.clone(),
            severity: feed.severity,
            enabled: feed.enabled,
        };
        match defs.feeds.iter_mut().find(|a| a.name == feed.name) {
            Some(a) => *a = def,
            None => defs.feeds.push(def),
        }
    }

    /// The one write path: parse, refuse unusable content, version, write, persist, reload.
    fn write(
        &self,
        defs: &mut Defs,
        feed: &FeedConfig,
        content: &[u8],
        who: &str,
        action: &str,
    ) -> Result<WriteReport, RegistryError> {
        let started = std::time::Instant::now();
        let text = String::from_utf8_lossy(content);
        let parsed = super::parse(&text, feed.format, feed.kind);
        let parse_ms = started.elapsed().as_millis() as u64;
        let mut report = WriteReport {
            feed: feed.name.clone(),
            accepted: parsed.accepted(),
            rejected: parsed.rejected.clone(),
            skipped: parsed.skipped,
            lines: parsed.lines,
            skipped_lines: None,
            skipped_detail: parsed.skipped_lines.clone(),
            format: parsed.format,
            version: None,
            before_sha256: None,
        };
        if parsed.accepted() == 0 && (parsed.rejected.len() + parsed.skipped) > 0 {
            return Err(RegistryError::Unusable {
                message: format!(
                    "no usable entry ({} lines rejected, {} skipped); wrong `format` or `kind`? The previous version stays in force",
                    parsed.rejected.len(),
                    parsed.skipped
                ),
                report: Box::new(report),
            });
        }
        let path = feed_file(&self.config, feed)
            .ok_or_else(|| RegistryError::Conflict(format!("feed `{}` has no file", feed.name)))?;
        let versions = self.versions(&feed.name);
        let before = match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(RegistryError::Io { path, source }),
        };
        if let Some(before) = &before {
            let sha = versions::sha256_hex(before);
            // Content written by hand or shipped with config.toml becomes a version before it
            // is replaced, so a rollback can reach it.
            if versions.latest()?.map(|v| v.sha256) != Some(sha.clone()) {
                let (entries, rejected) = self
                    .loader
                    .feeds()
                    .into_iter()
                    .find(|s| s.name == feed.name && s.sha256.as_deref() == Some(&sha))
                    .map_or((0, 0), |s| (s.entries, s.rejected));
                versions.record(
                    before,
                    NewVersion {
                        who: "file",
                        action: "existing",
                        entries,
                        rejected,
                    },
                )?;
            }
            report.before_sha256 = Some(sha);
        }
        let written = std::time::Instant::now();
        write_atomic(&path, content).map_err(|source| RegistryError::Io {
            path: path.clone(),
            source,
        })?;
        let write_ms = written.elapsed().as_millis() as u64;
        let version = versions.record(
            content,
            NewVersion {
                who,
                action,
                entries: parsed.accepted(),
                rejected: parsed.rejected.len(),
            },
        )?;
        self.save_defs(defs)?;
        self.set_feeds(defs);
        let sha256 = version.sha256.clone();
        report.version = Some(version);
        let reloaded = std::time::Instant::now();
        self.loader.reload_with(Some(Seed {
            name: feed.name.clone(),
            parsed,
            sha256,
        }));
        tracing::info!(
            feed = %feed.name,
            who,
            action,
            accepted = report.accepted,
            rejected = report.rejected.len(),
            parse_ms,
            write_ms,
            reload_ms = reloaded.elapsed().as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "feed written over the API"
        );
        Ok(report)
    }

    /// `PATCH /feeds/{name}/entries`: appends `add` (in the feed's format) and drops the lines
    /// that are, or list exactly, one of `remove`. Returns the report and the entries of
    /// `remove` that were not found.
    pub fn patch(
        &self,
        name: &str,
        add: &[String],
        remove: &[String],
        who: &str,
    ) -> Result<(WriteReport, Vec<String>), RegistryError> {
        let mut defs = lock(&self.defs);
        let feed = self.find(name)?;
        if feed.url.is_some() {
            return Err(RegistryError::Conflict(format!(
                "`{name}` is a subscription; its entries come from its URL"
            )));
        }
        let path = feed_file(&self.config, &feed)
            .ok_or_else(|| RegistryError::Conflict(format!("feed `{name}` has no file")))?;
        let current = match std::fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(RegistryError::Io { path, source }),
        };
        let format = match feed.format {
            FeedFormat::Auto if !current.trim().is_empty() => super::detect::detect(&current),
            FeedFormat::Auto => FeedFormat::Plain,
            f => f,
        };
        // Every added entry must be one valid rule on its own.
        let mut bad = Vec::new();
        let mut lines_to_add = Vec::new();
        for (i, entry) in add.iter().enumerate() {
            let entry = entry.trim();
            let one = super::parse(entry, FeedFormat::Plain, feed.kind);
            if one.accepted() != 1 || entry.contains('\n') {
                let reason = one
                    .rejected
                    .first()
                    .map(|r| r.reason.clone())
                    .unwrap_or_else(|| "is not one name, address or prefix".into());
                bad.push(Rejected {
                    line: i + 1,
                    text: entry.to_string(),
                    reason,
                });
                continue;
            }
            lines_to_add.push(render_entry(&one, format).ok_or_else(|| {
                RegistryError::Conflict(format!(
                    "`{entry}` cannot be written in this feed's format ({format:?}); upload the whole list"
                ))
            })?);
        }
        if !bad.is_empty() {
            let mut report = empty_report(name);
            report.rejected = bad;
            return Err(RegistryError::Unusable {
                message: "some entries in `add` are not valid; nothing was changed".into(),
                report: Box::new(report),
            });
        }
        let targets: Vec<Target> = remove.iter().map(|r| Target::new(r, feed.kind)).collect();
        let mut found = vec![false; targets.len()];
        let mut out = String::with_capacity(current.len() + lines_to_add.len() * 32);
        for line in current.split_inclusive('\n') {
            let hit = targets
                .iter()
                .position(|t| t.matches(line, format, feed.kind));
            match hit {
                Some(i) => found[i] = true,
                None => out.push_str(line),
            }
        }
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        for l in lines_to_add {
            out.push_str(&l);
            out.push('\n');
        }
        let missing: Vec<String> = remove
            .iter()
            .zip(&found)
            .filter(|(_, f)| !**f)
            .map(|(r, _)| r.clone())
            .collect();
        let report = self.write(&mut defs, &feed, out.as_bytes(), who, "patch")?;
        Ok((report, missing))
    }

    /// `DELETE /feeds/{name}`: removes an API-created feed (its history stays).
    pub fn delete(&self, name: &str, who: &str) -> Result<Option<String>, RegistryError> {
        let mut defs = lock(&self.defs);
        let feed = self.find(name)?;
        if self.in_config(name) {
            return Err(RegistryError::Conflict(format!(
                "`{name}` is defined in config.toml; disable it (POST /api/v1/feeds/{name}/disable) or remove it there"
            )));
        }
        let path = feed_file(&self.config, &feed);
        let before = path.as_ref().and_then(|p| std::fs::read(p).ok()).map(|b| {
            // Keep the last content reachable for a later re-creation and restore.
            let _ = self.versions(name).record(
                &b,
                NewVersion {
                    who,
                    action: "delete",
                    entries: 0,
                    rejected: 0,
                },
            );
            versions::sha256_hex(&b)
        });
        defs.feeds.retain(|a| a.name != name);
        self.save_defs(&defs)?;
        if let Some(p) = &path
            && let Err(e) = std::fs::remove_file(p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(RegistryError::Io {
                path: p.clone(),
                source: e,
            });
        }
        self.set_feeds(&defs);
        self.loader.reload();
        tracing::info!(feed = %name, who, "feed deleted over the API");
        Ok(before)
    }

    /// `POST /feeds/{name}/enable|disable`.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<FeedView, RegistryError> {
        {
            let mut defs = lock(&self.defs);
            self.find(name)?;
            if self.in_config(name) {
                match defs.overrides.iter_mut().find(|o| o.name == name) {
                    Some(o) => o.enabled = Some(enabled),
                    None => defs.overrides.push(Override {
                        name: name.to_string(),
                        enabled: Some(enabled),
                        ..Default::default()
                    }),
                }
            } else if let Some(a) = defs.feeds.iter_mut().find(|a| a.name == name) {
                a.enabled = enabled;
            }
            self.save_defs(&defs)?;
            self.set_feeds(&defs);
            self.loader.reload();
        }
        self.get(name)
    }

    /// `GET /feeds/{name}/versions`, newest first.
    pub fn versions_of(&self, name: &str) -> Result<Vec<Version>, RegistryError> {
        if !valid_feed_name(name) {
            return Err(RegistryError::BadName(name.to_string()));
        }
        Ok(self.versions(name).list()?)
    }

    /// `GET /feeds/{name}/versions/{id}`: the content.
    pub fn version_content(&self, name: &str, id: u64) -> Result<Vec<u8>, RegistryError> {
        if !valid_feed_name(name) {
            return Err(RegistryError::BadName(name.to_string()));
        }
        self.versions(name)
            .content(id)?
            .map(|(_, b)| b)
            .ok_or_else(|| RegistryError::NotFound(format!("feed `{name}` has no version {id}")))
    }

    /// `POST /feeds/{name}/versions/{id}/restore`: makes version `id` the content in force
    /// (as a new version, so the restore itself can be undone).
    pub fn restore(&self, name: &str, id: u64, who: &str) -> Result<WriteReport, RegistryError> {
        let content = self.version_content(name, id)?;
        let mut defs = lock(&self.defs);
        let feed = self.find(name)?;
        self.write(&mut defs, &feed, &content, who, "restore")
    }

    /// Installs content fetched for subscription `name` (the cache file, a version, a reload).
    pub fn install_fetched(
        &self,
        name: &str,
        content: &[u8],
    ) -> Result<WriteReport, RegistryError> {
        let mut defs = lock(&self.defs);
        let feed = self.find(name)?;
        self.write(&mut defs, &feed, content, "subscription", "fetch")
    }

    /// The last fetch status of subscription `name`.
    pub fn fetch_status(&self, name: &str) -> FetchStatus {
        lock(&self.fetches).get(name).cloned().unwrap_or_default()
    }

    /// Records a fetch result (kept across restarts for conditional requests).
    pub fn set_fetch_status(&self, name: &str, status: FetchStatus) {
        let mut all = lock(&self.fetches);
        all.insert(name.to_string(), status);
        let path = self.state_dir.join("subscriptions.json");
        match serde_json::to_vec_pretty(&*all) {
            Ok(json) => {
                if let Err(error) = write_atomic(&path, &json) {
                    tracing::warn!(%error, path = %path.display(), "cannot save subscription state");
                }
            }
            Err(error) => tracing::warn!(%error, "cannot encode subscription state"),
        }
    }

    /// `GET /api/v1/check`: what the policy in force would do with `name`, and who `client` is.
    pub fn check(
        &self,
        name: &str,
        client: Option<(IpAddr, &Ledger)>,
    ) -> Result<CheckReport, RegistryError> {
        let name = DomainName::parse(name.trim()).map_err(|e| {
            RegistryError::BadRequest(format!("`{name}` is not a domain name: {e}"))
        })?;
        let decision = self.loader.policy().load().check_name(name.as_str());
        let mut report = CheckReport {
            name: name.as_str().to_string(),
            decision: "pass",
            feed: None,
            rule: None,
            action: None,
            overrides: None,
            client: client
                .and_then(|(ip, l)| l.lookup(ip))
                .map(|i| (*i).clone()),
            quarantined: None,
        };
        match decision {
            Decision::Pass => {}
            Decision::Blocked(v) => {
                report.decision = "blocked";
                report.feed = Some(v.feed.name.to_string());
                report.rule = Some(v.rule.to_string());
                report.action = Some(v.action());
            }
            Decision::Allowed(v) => {
                report.decision = "allowed";
                report.feed = Some(v.feed.name.to_string());
                report.rule = Some(v.rule.to_string());
                report.overrides = publish::blocking_rule(&self.loader.compiled(), &name);
            }
        }
        Ok(report)
    }

    /// `GET /api/v1/publish/{format}`: rendered once per compiled policy, then cached.
    pub fn publish(&self, format: PublishFormat) -> Arc<Published> {
        let compiled = self.loader.compiled();
        if let Some(p) = lock(&self.published).get(&format)
            && p.generation == compiled.generation
        {
            return p.clone();
        }
        let p = Arc::new(publish::render(&compiled, format));
        lock(&self.published).insert(format, p.clone());
        p
    }

    /// `PUT /api/v1/clients/ledger?dry_run=true`: parses the CSV and reports every row, nothing
    /// else (no write, no version, no lock: the ledger in force is not touched). Refused only
    /// when the file cannot be read as a ledger at all (encoding, header).
    pub fn check_ledger(&self, path: &Path, content: &[u8]) -> Result<LoadReport, RegistryError> {
        parse_ledger(path, content).map(|p| p.report)
    }

    /// `PUT /api/v1/clients/ledger`: checks the CSV, writes it atomically to `path`, keeps a
    /// version. The caller swaps the returned ledger in. Refused (422, nothing changes) when
    /// any row is rejected, unless `partial` (then the good rows load and the version is kept
    /// as `partial`); refused in any case when no row loads.
    pub fn replace_ledger(
        &self,
        path: &Path,
        content: &[u8],
        who: &str,
        partial: bool,
    ) -> Result<LedgerWrite, RegistryError> {
        let parsed = usable(parse_ledger(path, content)?)?;
        let r = &parsed.report;
        if !partial && !r.rejected.is_empty() {
            return Err(RegistryError::LedgerRefused {
                message: format!(
                    "{} of {} rows rejected; nothing changed, the ledger in force stays. Fix \
                     the rows listed, or upload with ?partial=true to load the {} good rows",
                    r.rejected.len(),
                    r.rows,
                    r.loaded
                ),
                report: parsed.report,
            });
        }
        let action = if r.rejected.is_empty() {
            "upload"
        } else {
            "partial"
        };
        let _one_writer = lock(&self.defs);
        self.install_ledger(path, parsed, who, action)
    }

    /// `POST /api/v1/clients/ledger/versions/{id}/restore`: makes version `id` the ledger in
    /// force (written to `path`, kept as a new version so the restore can be undone). Rows the
    /// version had rejected when it was kept are rejected again; refused when none loads.
    pub fn restore_ledger(
        &self,
        path: &Path,
        id: u64,
        who: &str,
    ) -> Result<LedgerWrite, RegistryError> {
        let content = self.ledger_version_content(id)?;
        let parsed = usable(parse_ledger(path, &content)?)?;
        let _one_writer = lock(&self.defs);
        self.install_ledger(path, parsed, who, "restore")
    }

    /// The one ledger write (upload and restore): keeps the file in force as a version if it
    /// is not one yet, writes the new content atomically, keeps it as a version. The caller
    /// holds the write lock.
    fn install_ledger(
        &self,
        path: &Path,
        parsed: ParsedLedger,
        who: &str,
        action: &str,
    ) -> Result<LedgerWrite, RegistryError> {
        let versions = self.ledger_history();
        let before = match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(RegistryError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let before_sha256 = before.as_ref().map(|b| versions::sha256_hex(b));
        if let Some(b) = &before
            && versions.latest()?.map(|v| v.sha256) != before_sha256
        {
            versions.record(
                b,
                NewVersion {
                    who: "file",
                    action: "existing",
                    entries: 0,
                    rejected: 0,
                },
            )?;
        }
        write_atomic(path, &parsed.utf8).map_err(|source| RegistryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let version = versions.record(
            &parsed.utf8,
            NewVersion {
                who,
                action,
                entries: parsed.report.loaded,
                rejected: parsed.report.rejected.len(),
            },
        )?;
        Ok(LedgerWrite {
            ledger: parsed.ledger,
            report: parsed.report,
            version,
            before_sha256,
        })
    }

    fn ledger_history(&self) -> Versions {
        Versions::new(self.state_dir.join("ledger-versions"))
    }

    /// The asset ledger's kept versions, newest first.
    pub fn ledger_versions(&self) -> Result<Vec<Version>, RegistryError> {
        Ok(self.ledger_history().list()?)
    }

    /// `GET /api/v1/clients/ledger/versions/{id}`: the content (UTF-8, as it was written).
    pub fn ledger_version_content(&self, id: u64) -> Result<Vec<u8>, RegistryError> {
        self.ledger_history()
            .content(id)?
            .map(|(_, b)| b)
            .ok_or_else(|| RegistryError::NotFound(format!("the ledger has no version {id}")))
    }
}

/// A ledger write: the table to swap in, its report, the version now in force.
#[derive(Debug)]
pub struct LedgerWrite {
    /// The parsed table; the caller swaps it in.
    pub ledger: Ledger,
    /// Rows read, loaded and rejected.
    pub report: LoadReport,
    /// The version now in force.
    pub version: Version,
    /// SHA-256 of the file before the write (absent when there was none).
    pub before_sha256: Option<String>,
}

/// An uploaded ledger, parsed: the table, the report and the content as UTF-8 (what is
/// written and versioned, so the file on disk and every version are UTF-8 whatever was sent).
struct ParsedLedger {
    ledger: Ledger,
    report: LoadReport,
    utf8: Vec<u8>,
}

/// Refuses (422) a ledger of which no row is usable: installing it would make every client
/// anonymous.
fn usable(parsed: ParsedLedger) -> Result<ParsedLedger, RegistryError> {
    let r = &parsed.report;
    if r.loaded == 0 && !r.rejected.is_empty() {
        return Err(RegistryError::LedgerRefused {
            message: format!(
                "no row of the ledger is usable ({} rejected); the ledger in force stays",
                r.rejected.len()
            ),
            report: parsed.report,
        });
    }
    Ok(parsed)
}

/// Decodes (UTF-8, or GB18030 when not UTF-8) and parses; refused (422) when the encoding or
/// the header is wrong. Row rejects are in the report.
fn parse_ledger(path: &Path, content: &[u8]) -> Result<ParsedLedger, RegistryError> {
    let refused = |e: poolguard_clients::LedgerError| RegistryError::LedgerRefused {
        message: e.to_string(),
        report: LoadReport::default(),
    };
    let decoded = poolguard_clients::decode(content, path).map_err(refused)?;
    let (ledger, mut report) = Ledger::from_text(&decoded.text, path).map_err(refused)?;
    report.decoded_from = decoded.from.map(str::to_string);
    // Bytes sent as UTF-8 are kept byte for byte (BOM included); converted ones as UTF-8.
    let utf8 = match decoded.from {
        None => content.to_vec(),
        Some(_) => decoded.text.into_owned().into_bytes(),
    };
    Ok(ParsedLedger {
        ledger,
        report,
        utf8,
    })
}

fn empty_report(name: &str) -> WriteReport {
    WriteReport {
        feed: name.to_string(),
        accepted: 0,
        rejected: Vec::new(),
        skipped: 0,
        lines: super::LineCounts::default(),
        skipped_lines: None,
        skipped_detail: Vec::new(),
        format: None,
        version: None,
        before_sha256: None,
    }
}

fn apply_settings(feed: &mut FeedConfig, s: &FeedSettings) {
    feed.kind = s.kind.unwrap_or(feed.kind);
    feed.format = s.format.unwrap_or(feed.format);
    feed.action = s.action.or(feed.action);
    feed.severity = s.severity.unwrap_or(feed.severity);
    if let Some(c) = &s.category {
        feed.category = c.clone();
    }
}

/// One parsed entry written as a line of `format`; `None` for formats we do not write.
fn render_entry(one: &ParsedFeed, format: FeedFormat) -> Option<String> {
    if let Some(net) = one.ips.first() {
        return match format {
            FeedFormat::Adblock => Some(format!("||{}^", net.addr())),
            FeedFormat::Url | FeedFormat::Suricata | FeedFormat::Rpz | FeedFormat::Dnsmasq => None,
            _ => Some(net.to_string()),
        };
    }
    let d = one.domains.first()?;
    let n = d.name.as_str();
    Some(match (format, d.exact) {
        (FeedFormat::Plain | FeedFormat::Auto | FeedFormat::Wildcard, true) => format!("={n}"),
        (FeedFormat::Plain | FeedFormat::Auto, false) => n.to_string(),
        (FeedFormat::Wildcard, false) => format!("*.{n}"),
        // Our hosts reading is "the name and below"; an exact-only entry has no hosts form.
        (FeedFormat::Hosts, false) => format!("0.0.0.0 {n}"),
        (FeedFormat::Adblock, false) => format!("||{n}^"),
        (FeedFormat::Dnsmasq, false) => format!("address=/{n}/0.0.0.0"),
        (FeedFormat::Rpz, true) => format!("{n} CNAME ."),
        (FeedFormat::Rpz, false) => format!("{n} CNAME .\n*.{n} CNAME ."),
        _ => return None,
    })
}

/// An entry to remove: matched by line text, or by the name/prefix a line lists.
struct Target {
    text: String,
    name: Option<String>,
    net: Option<ipnet::IpNet>,
}

impl Target {
    fn new(text: &str, kind: FeedKind) -> Self {
        let text = text.trim().to_string();
        let one = super::parse(&text, FeedFormat::Plain, kind);
        Self {
            name: one.domains.first().map(|d| d.name.as_str().to_string()),
            net: one.ips.first().copied(),
            text,
        }
    }

    fn matches(&self, line: &str, format: FeedFormat, kind: FeedKind) -> bool {
        let trimmed = line.trim();
        if trimmed.eq_ignore_ascii_case(&self.text) {
            return true;
        }
        let needle = match (&self.name, &self.net) {
            (Some(n), _) => n.clone(),
            (None, Some(net)) => net.addr().to_string(),
            _ => return false,
        };
        // Cheap pre-filter; only candidate lines are parsed.
        if !trimmed.to_ascii_lowercase().contains(&needle) {
            return false;
        }
        let one = super::parse(trimmed, format, kind);
        let names = one.domains.iter().chain(&one.exceptions);
        match (&self.name, &self.net) {
            (Some(n), _) => {
                one.accepted() > 0
                    && one.ips.is_empty()
                    && names.clone().all(|d| d.name.as_str() == n)
            }
            (None, Some(net)) => one.ips.len() == 1 && one.ips[0] == *net,
            _ => false,
        }
    }
}

fn load_fetches(state_dir: &Path) -> HashMap<String, FetchStatus> {
    let path = state_dir.join("subscriptions.json");
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|error| {
            tracing::warn!(%error, path = %path.display(), "subscription state unreadable; fetching unconditionally");
            HashMap::new()
        }),
        Err(_) => HashMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(entry: &str) -> ParsedFeed {
        super::super::parse(entry, FeedFormat::Plain, FeedKind::Domains)
    }

    /// An added entry, written in the feed's format, parses back to the same entry there.
    #[test]
    fn added_entries_round_trip_in_each_format() {
        for format in [
            FeedFormat::Plain,
            FeedFormat::Wildcard,
            FeedFormat::Hosts,
            FeedFormat::Adblock,
            FeedFormat::Dnsmasq,
            FeedFormat::Rpz,
        ] {
            for entry in ["pool.example", "=exact.pool.example"] {
                let p = one(entry);
                let Some(line) = render_entry(&p, format) else {
                    // These syntaxes have no exact-only form.
                    assert!(
                        matches!(
                            format,
                            FeedFormat::Adblock | FeedFormat::Dnsmasq | FeedFormat::Hosts
                        ) && entry.starts_with('='),
                        "{format:?} {entry}"
                    );
                    continue;
                };
                let back = super::super::parse(&line, format, FeedKind::Domains);
                assert!(back.rejected.is_empty(), "{format:?}: {line}");
                assert_eq!(back.domains.len(), 1, "{format:?}: {line}");
                assert_eq!(
                    back.domains[0].name, p.domains[0].name,
                    "{format:?}: {line}"
                );
                if format != FeedFormat::Hosts {
                    assert_eq!(
                        back.domains[0].exact, p.domains[0].exact,
                        "{format:?}: {line}"
                    );
                }
            }
        }
    }

    /// A removal matches the line that lists the name, not lines that merely contain it.
    #[test]
    fn removal_matches_the_listed_name_only() {
        let t = Target::new("pool.example", FeedKind::Domains);
        let k = FeedKind::Domains;
        assert!(t.matches("||pool.example^\n", FeedFormat::Adblock, k));
        assert!(t.matches("0.0.0.0 pool.example\n", FeedFormat::Hosts, k));
        assert!(t.matches("address=/pool.example/0.0.0.0\n", FeedFormat::Dnsmasq, k));
        assert!(t.matches("  pool.example  \n", FeedFormat::Plain, k));
        assert!(!t.matches("x.pool.example\n", FeedFormat::Plain, k));
        assert!(!t.matches("||notpool.example^\n", FeedFormat::Adblock, k));
        assert!(!t.matches("# pool.example was here\n", FeedFormat::Plain, k));
        let ip = Target::new("203.0.113.0/24", FeedKind::Ips);
        assert!(ip.matches("203.0.113.0/24\n", FeedFormat::Ip, FeedKind::Ips));
        assert!(!ip.matches("203.0.113.0/25\n", FeedFormat::Ip, FeedKind::Ips));
    }
}
