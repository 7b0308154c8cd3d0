//! `config.toml`: the one file network ops edit.
//!
//! Every section is a plain serde struct with `deny_unknown_fields`, so a typo is an error at
//! start (with the TOML line and the key) rather than a silently ignored setting. Defaults live
//! here and are documented in the shipped `config.toml`. Relative paths are resolved against the
//! directory of the config file, so `poolguard --config /etc/poolguard/config.toml` finds
//! `/etc/poolguard/blocklists/` no matter where it was started from.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use poolguard_model::{Action, FeedFormat, FeedKind, Severity};

pub mod bulletin;
pub mod email;
pub mod export;
pub mod identity;
pub mod incidents;
pub mod reports;
pub mod robots;

mod api;
mod console;
mod dns;
mod duration;
mod encrypted;
mod feeds;
mod pools;
mod review;
mod store;
mod validate;

pub use api::{ApiConfig, Role, TokenConfig};
pub use console::{ConsoleConfig, ConsoleUser, PasswordHash};
pub use dns::{
    BlockingConfig, ConditionalForward, DnsConfig, UpstreamConfig, ZoneConfig, sinkhole_addrs,
};
pub use duration::parse_duration;
pub use encrypted::{CanaryConfig, DohConfig, DotConfig};
pub use feeds::{FeedConfig, valid_feed_name};
pub use pools::PoolsConfig;
pub use review::ReviewConfig;
pub use store::{Backend, MIN_SPOOL_BYTES, StoreConfig};

/// Why a config could not be used. Messages name the file, the key and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {key}: {error}")]
    Parse {
        path: PathBuf,
        /// The key path, e.g. `dns.listen[0]`; empty for syntax errors.
        key: String,
        error: Box<toml::de::Error>,
    },
    #[error("{path}: {key}: {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

/// The whole configuration, as loaded from `config.toml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub dns: DnsConfig,
    #[serde(default)]
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub blocking: BlockingConfig,
    #[serde(default)]
    pub feeds: Vec<FeedConfig>,
    /// The pool address set kept current by re-resolving the feeds' names (`[pools]`).
    #[serde(default)]
    pub pools: PoolsConfig,
    /// The review queue of candidate pool names nobody has listed (`[review]`).
    #[serde(default)]
    pub review: ReviewConfig,
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    #[serde(default)]
    pub api: ApiConfig,
    /// The staff web console (docs/CONSOLE.md).
    #[serde(default)]
    pub console: ConsoleConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub clients: ClientsConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Incident deadlines (campus policy: identify in 48 h, report in 72 h).
    #[serde(default)]
    pub incidents: crate::incidents::IncidentsConfig,
    /// Repeat-offender thresholds and the walled garden.
    #[serde(default)]
    pub enforcement: crate::incidents::EnforcementConfig,
    /// The notice page quarantined clients are sent to.
    #[serde(default)]
    pub notice: crate::incidents::NoticeConfig,
    /// Webhooks (and syslog) for incident and quarantine events.
    #[serde(default)]
    pub alerts: crate::incidents::AlertsConfig,
    /// Exports of every query or hit to the operators' pipelines (`[[export.dnstap]]`).
    #[serde(default)]
    pub export: crate::export::ExportConfig,
    /// The written incident report: language, time zone, institution header.
    #[serde(default)]
    pub reports: crate::reports::ReportsConfig,
    /// Who held an address when: DHCP lease files and RADIUS accounting.
    #[serde(default)]
    pub identity: crate::identity::IdentityConfig,
    /// Directory of the config file; relative paths are resolved against it. Not a TOML key.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The config file itself, re-read on SIGHUP for `[[api.tokens]]`. Not a TOML key.
    #[serde(skip)]
    pub path: PathBuf,
}

/// The campus asset ledger.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientsConfig {
    pub ledger: Option<PathBuf>,
}

/// Diagnostics.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter; `RUST_LOG` overrides it. hickory logs every response at info, so warn.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "warn,poolguard=info".to_string(),
        }
    }
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::from_toml(&text, path, &base)
    }

    /// Parses and validates config text; `base` anchors relative paths.
    pub fn from_toml(text: &str, path: &Path, base: &Path) -> Result<Self, ConfigError> {
        let parse_error = |key: String, error: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            key: if key.is_empty() || key == "." {
                "syntax".to_string()
            } else {
                key
            },
            error: Box::new(error),
        };
        let de = toml::Deserializer::parse(text).map_err(|e| parse_error(String::new(), e))?;
        let mut config: Config = serde_path_to_error::deserialize(de)
            .map_err(|e| parse_error(e.path().to_string(), e.into_inner()))?;
        config.base_dir = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base.to_path_buf()
        };
        config.path = path.to_path_buf();
        config.validate(path)?;
        Ok(config)
    }

    /// Resolves a path from the config against the config's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The folder list files poolguard writes go to (`[api] feeds_dir`), resolved.
    pub fn feeds_dir(&self) -> PathBuf {
        self.resolve(&self.api.feeds_dir)
    }

    /// The file of a feed poolguard writes itself, as stored in a feed definition (relative
    /// to the config's directory unless `feeds_dir` is absolute).
    pub fn written_feed_path(&self, name: &str) -> PathBuf {
        self.api.feeds_dir.join(format!("{name}.txt"))
    }

    /// The action a feed's blocks get.
    pub fn action_of(&self, feed: &FeedConfig) -> Action {
        feed.action.unwrap_or(self.blocking.default_action)
    }
}
