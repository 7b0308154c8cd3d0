//! `[pools]`: the pool address set poolguard keeps current itself (docs/FEEDS.md, "Pool
//! address set"): the names of the listed feeds re-resolved through the upstream as their
//! TTLs expire, published for firewalls at `GET /api/v1/publish/ips?category=…`.

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::duration::de_duration;

/// The `[pools]` section. Absent = off: resolving ten thousand names is traffic an operator
/// turns on knowingly (the shipped config.toml does).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolsConfig {
    /// Re-resolve the feeds' names at all.
    pub enabled: bool,
    /// Feeds of these categories are resolved (`mining`, and `bypass` for the resolvers'
    /// addresses).
    pub categories: Vec<String>,
    /// Upper bound on the queries (A and AAAA each count) sent upstream per minute: the
    /// upstream sees at most this much extra load, whatever the feeds hold.
    pub resolve_per_minute: u32,
    /// Addresses inside these networks are never listed: CDN and shared-hosting ranges, where
    /// a pool's address is also everyone else's.
    pub exclude: Vec<IpNet>,
    /// The categories `exclude` applies to. Mining pools on a CDN share its addresses with
    /// everyone; public DoH resolvers (`bypass`) *are* on those ranges and the firewall needs
    /// their addresses, so by default only `mining` is filtered.
    pub exclude_categories: Vec<String>,
    /// An address not seen in an answer for this long is dropped from the set.
    #[serde(deserialize_with = "de_duration")]
    pub max_age: Duration,
    /// A name is not re-resolved sooner than this, whatever its TTL (TTLs of 0–60 s are
    /// common behind load balancers; following them would spend the whole budget on a few).
    #[serde(deserialize_with = "de_duration")]
    pub min_interval: Duration,
    /// The longest wait between two resolutions of a name: a TTL above it, and the backoff
    /// of a name that does not resolve, are cut to it.
    #[serde(deserialize_with = "de_duration")]
    pub max_interval: Duration,
}

impl Default for PoolsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            categories: vec!["mining".into(), "bypass".into()],
            resolve_per_minute: 600,
            exclude: Vec::new(),
            exclude_categories: vec!["mining".into()],
            max_age: Duration::from_secs(7 * 86_400),
            min_interval: Duration::from_secs(300),
            max_interval: Duration::from_secs(86_400),
        }
    }
}
