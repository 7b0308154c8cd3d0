//! `[review]`: the review queue of candidate pool names nobody has listed (docs/REVIEW.md):
//! how often the stored query log is scanned for them, and which feeds' names count as the
//! pool families the scan compares against.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::de_duration;

/// The `[review]` section. On by default wherever the store is: the scan reads what the
/// store already holds, off the DNS path, once a minute.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewConfig {
    /// Scan the stored queries for candidates at all.
    pub enabled: bool,
    /// How often the queries stored since the last scan are read.
    #[serde(deserialize_with = "de_duration")]
    pub interval: Duration,
    /// Names of the feeds of these categories are the pool families: the scan looks for
    /// their lookalikes, and their addresses in the pool address set.
    pub categories: Vec<String>,
    /// At most this many distinct candidate names are kept from one scan (a flood of random
    /// names under an operator's domain cannot grow the queue without bound).
    pub max_per_scan: usize,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(60),
            categories: vec!["mining".into()],
            max_per_scan: 1_000,
        }
    }
}
