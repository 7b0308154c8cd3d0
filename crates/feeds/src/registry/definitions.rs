//! What feeds exist and how they are set up, beyond `config.toml`: `feeds.toml`.
//!
//! Feeds created over the API and API changes to `config.toml` feeds (enabled, kind, format,
//! action, category, severity) are kept in `blocklists/.poolguard/feeds.toml` (`[[feeds]]`
//! and `[[overrides]]`), so `config.toml`, which operators own and may keep in git, is never
//! rewritten by the API. `Registry::effective` merges both into the list the loader gets:
//! `config.toml` feeds first (its order is the priority order), then API feeds in creation
//! order; a `config.toml` feed with the name of an API feed wins, with a warning.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{FeedView, Registry, RegistryError, lock};
use crate::versions::write_atomic;
use poolguard_config::{FeedConfig, FeedFormat, FeedKind, Severity};
use poolguard_policy::Action;

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
pub(super) struct Defs {
    #[serde(default)]
    feeds: Vec<ApiFeed>,
    #[serde(default)]
    overrides: Vec<Override>,
}

impl Defs {
    /// Forgets the API-created feed `name` (its file and history are the caller's).
    pub(super) fn remove_feed(&mut self, name: &str) {
        self.feeds.retain(|a| a.name != name);
    }

    /// Points every API-created feed at this node's file for it: definitions written
    /// through another node name that node's paths.
    pub(super) fn localise(&mut self, config: &poolguard_config::Config) {
        for a in &mut self.feeds {
            a.path = config.written_feed_path(&a.name);
        }
    }
}

/// Reads `<state_dir>/feeds.toml`; none yet is an empty list.
pub(super) fn load(state_dir: &Path) -> Result<Defs, RegistryError> {
    let path = state_dir.join("feeds.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str::<Defs>(&text).map_err(|e| RegistryError::Io {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Defs::default()),
        Err(source) => Err(RegistryError::Io { path, source }),
    }
}

/// Lays a maintainer's settings over a feed's.
pub(super) fn apply_settings(feed: &mut FeedConfig, s: &FeedSettings) {
    feed.kind = s.kind.unwrap_or(feed.kind);
    feed.format = s.format.unwrap_or(feed.format);
    feed.action = s.action.or(feed.action);
    feed.severity = s.severity.unwrap_or(feed.severity);
    if let Some(c) = &s.category {
        feed.category = c.clone();
    }
}

impl Registry {
    /// `config.toml` feeds with API overrides, then API-created feeds.
    pub(super) fn effective(&self, defs: &Defs) -> Vec<FeedConfig> {
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

    pub(super) fn save_defs(&self, defs: &Defs) -> Result<(), RegistryError> {
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

    /// Records `feed`'s settings in the definitions (API feed or override of a config feed).
    pub(super) fn remember(&self, defs: &mut Defs, feed: &FeedConfig, s: &FeedSettings) {
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

    /// `POST /feeds/{name}/enable|disable`.
    pub fn set_enabled(
        &self,
        name: &str,
        enabled: bool,
        who: &str,
    ) -> Result<FeedView, RegistryError> {
        {
            let mut guard = lock(&self.defs);
            self.find(name)?;
            // Changed on a copy: a change the group refused leaves the one in force.
            let mut defs = guard.clone();
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
            self.share_defs(&defs, who, if enabled { "enable" } else { "disable" })?;
            self.save_defs(&defs)?;
            self.set_feeds(&defs);
            *guard = defs;
            self.loader.reload();
        }
        self.get(name)
    }
}
