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
//! - `blocklists/.poolguard/subscriptions.json`: the last fetch of every subscription.
//!
//! (The asset ledger's upload and history, `blocklists/.poolguard/ledger-versions/`, are
//! `poolguard_clients::upload`'s: the ledger is not a feed.)
//!
//! One file per job, each adding its methods to [`Registry`]: `definitions` (what feeds exist,
//! `feeds.toml`, enable/disable), `edits` (the one write path: upload, delete, fetched
//! content), `entries` (patching single entries into a list in its own syntax), `history`
//! (versions and rollback), `shared` (what a group of nodes shares), `status` (what `GET /feeds` shows, fetch state), `check` (what the
//! policy in force says about a name) and `published` (the rendered-list cache).
//!
//! All methods are blocking (file I/O, parsing, compiling): call them from `spawn_blocking`.

mod check;
mod definitions;
mod edits;
mod entries;
mod history;
mod published;
mod shared;
mod status;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use check::CheckReport;
use definitions::Defs;
pub use definitions::FeedSettings;
pub use status::{FeedView, FetchStatus};

use crate::loader::Loader;
use crate::publish::{PublishFormat, Published};
use crate::versions::{Version, VersionError};
use crate::{LineCounts, Rejected, Skipped};
use poolguard_config::{Config, FeedConfig, FeedFormat, valid_feed_name};

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
    /// The group's shared database did not take the change; nothing changed.
    #[error(transparent)]
    Share(#[from] crate::versions::share::ShareError),
}

/// What a write did: the parse report and the version now in force.
#[derive(Debug, Clone)]
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
    pub lines: LineCounts,
    /// The skipped lines by number, with why; only with `?verbose=true` (a long adblock list
    /// has thousands of cosmetic rules).
    pub skipped_lines: Option<Vec<Skipped>>,
    /// The skipped lines, kept for [`WriteReport::verbose`].
    pub skipped_detail: Vec<Skipped>,
    /// The format used (after auto-detection).
    pub format: Option<FeedFormat>,
    /// The version now in force (absent when the write was refused).
    pub version: Option<Version>,
    /// SHA-256 of the content before the write (absent for a new feed).
    pub before_sha256: Option<String>,
}

impl WriteReport {
    /// Lists the skipped lines in the answer (`?verbose=true`).
    pub fn verbose(&mut self) {
        self.skipped_lines = Some(std::mem::take(&mut self.skipped_detail));
    }
}

pub(super) fn empty_report(name: &str) -> WriteReport {
    WriteReport {
        feed: name.to_string(),
        accepted: 0,
        rejected: Vec::new(),
        skipped: 0,
        lines: LineCounts::default(),
        skipped_lines: None,
        skipped_detail: Vec::new(),
        format: None,
        version: None,
        before_sha256: None,
    }
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
    /// Where maintainer writes go before they change anything here, when the node is one
    /// of a group (`shared`); None alone.
    share: crate::versions::share::Sharing,
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
        let defs = definitions::load(&state_dir)?;
        let fetches = status::load_fetches(&state_dir);
        let registry = Self {
            config,
            loader,
            state_dir,
            defs: Mutex::new(defs),
            fetches: Mutex::new(fetches),
            published: Mutex::new(HashMap::new()),
            listeners: Mutex::new(Vec::new()),
            share: Default::default(),
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

    /// `<feeds_dir>/.poolguard/`, where poolguard keeps its own files (definitions, histories,
    /// fetch state); the asset ledger's history is kept there too, beside the feeds'.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
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
}
