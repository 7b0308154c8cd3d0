//! `[api]` and `[[api.tokens]]`: the HTTP API for staff and feed maintainers, and who may do what.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The HTTP API for staff and feed maintainers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Absent = API off.
    pub listen: Option<SocketAddr>,
    /// Optional separate listener for `/metrics` and `/healthz`.
    pub metrics_listen: Option<SocketAddr>,
    pub max_upload_mb: u64,
    /// Serve `/api/v1/publish/*` without a token (for firewalls pulling the lists).
    pub public_publish: bool,
    pub tokens: Vec<TokenConfig>,
    /// Where list files poolguard writes itself go: feeds created or uploaded over the API,
    /// the last good copy of each subscription without a `path`, and the version history
    /// (`.poolguard/`). A setting of its own because it must be writable, while the config
    /// beside it may be read-only (systemd's `ProtectSystem=strict`, a read-only mount).
    pub feeds_dir: PathBuf,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: None,
            metrics_listen: None,
            max_upload_mb: 64,
            public_publish: false,
            tokens: Vec::new(),
            feeds_dir: PathBuf::from("blocklists"),
        }
    }
}

/// A bearer token, stored only as its SHA-256 hash.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub name: String,
    pub role: Role,
    /// Lower-case hex SHA-256 of the token.
    pub sha256: String,
}

/// What a token may do; each role includes the ones before it, except as noted in the API.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    Serialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Investigator,
    Feeds,
    Admin,
}
