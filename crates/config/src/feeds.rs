//! `[[feeds]]`: the block lists, local or subscribed, and the names they may have.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::de_opt_duration;
use crate::{Action, FeedFormat, FeedKind, Severity};

/// One `[[feeds]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// Unique, used in logs, hits and the API: `[A-Za-z0-9_.-]{1,64}`.
    pub name: String,
    /// Local file (relative to the config's directory).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Subscription source (issue 4); the local `path` then caches the last good copy.
    #[serde(default)]
    pub url: Option<String>,
    /// Subscription refresh interval, e.g. "6h".
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub refresh: Option<Duration>,
    #[serde(default)]
    pub kind: FeedKind,
    #[serde(default)]
    pub format: FeedFormat,
    /// Overrides `[blocking] default_action` for this feed.
    #[serde(default)]
    pub action: Option<Action>,
    #[serde(default = "default_category")]
    pub category: String,
    #[serde(default)]
    pub severity: Severity,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Subscriptions: a fetch that has not completed after this long fails ("30s" default).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
    /// Subscriptions: bodies over this many MiB are refused (default `[api] max_upload_mb`).
    #[serde(default)]
    pub max_size_mb: Option<u64>,
}

fn default_category() -> String {
    "mining".to_string()
}

fn yes() -> bool {
    true
}

/// Feed names end up in file names and URLs, so they are restricted to a safe alphabet.
pub fn valid_feed_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
