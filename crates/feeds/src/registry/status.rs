//! What `GET /feeds` shows about each feed, and the state of subscription fetches.
//!
//! A feed's view joins three sources: the loader's status (entries, last load), the newest
//! kept version, and for a subscription its last fetch. Fetch results are kept in
//! `blocklists/.poolguard/subscriptions.json` so the validators (ETag, Last-Modified) survive a
//! restart and the next fetch can be conditional.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Registry, RegistryError, lock};
use crate::loader::FeedStatus;
use crate::versions::{Version, write_atomic};

/// The last fetch of a subscription, for `GET /feeds` and metrics.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone)]
pub struct FeedView {
    /// The loader's status (kind, format, entries, last load result…).
    pub status: FeedStatus,
    /// `config` (defined in config.toml) or `api` (created over the API).
    pub defined_in: &'static str,
    /// The newest kept version (hash, time, who).
    pub version: Option<Version>,
    /// Subscriptions only: the last fetch.
    pub fetch: Option<FetchStatus>,
}

impl Registry {
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
}

/// The saved fetch state; unreadable state only costs one unconditional fetch per feed.
pub(super) fn load_fetches(state_dir: &Path) -> HashMap<String, FetchStatus> {
    let path = state_dir.join("subscriptions.json");
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|error| {
            tracing::warn!(%error, path = %path.display(), "subscription state unreadable; fetching unconditionally");
            HashMap::new()
        }),
        Err(_) => HashMap::new(),
    }
}
