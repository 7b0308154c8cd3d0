//! The pool address set: poolguard's own, current list of the addresses the listed names
//! resolve to, for firewalls that stop miners configured with an address instead of a name
//! (docs/FEEDS.md, "Pool address set").
//!
//! A task re-resolves the names of the feeds of `[pools] categories` through the configured
//! upstream as their TTLs expire (`schedule`), at most `resolve_per_minute` queries a minute,
//! leaving out addresses in `[pools] exclude` (`set::listable`); addresses not seen for
//! `max_age` age out. The set lives in memory for the API and in `<store path>.pools.json`
//! across restarts (`set`). It is never on the DNS path: its own resolver, on the control
//! runtime.

mod refresh;
mod schedule;
mod set;

use std::path::PathBuf;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use set::{PoolAddress, PoolSet, PoolStateError, listable};

use crate::upstream::{UpstreamError, UpstreamPlan};
use poolguard_config::Config;
use poolguard_policy::SharedPolicy;

/// The running refresh task and the set it keeps.
pub struct Pools {
    /// The set, for the API.
    pub set: PoolSet,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Pools {
    /// Starts the refresh task when `[pools] enabled`; `None` otherwise. The set starts from
    /// the state file (a damaged one is logged and replaced).
    pub fn start(config: &Config, policy: SharedPolicy) -> Result<Option<Self>, UpstreamError> {
        if !config.pools.enabled {
            return Ok(None);
        }
        let upstreams = UpstreamPlan::new(&config.upstream, 1)?.build()?;
        let path = state_path(config);
        let set = PoolSet::load(&path).unwrap_or_else(|error| {
            tracing::warn!(%error, "pool address set starts empty");
            PoolSet::new()
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(
            refresh::Refresh {
                config: config.pools.clone(),
                policy,
                upstreams,
                set: set.clone(),
                path,
                stop: stop.clone(),
            }
            .run(),
        );
        Ok(Some(Self { set, stop, task }))
    }

    /// Stops the task and waits for its last write of the state file.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// `<[store] path>.pools.json`: next to the evidence it belongs with.
pub fn state_path(config: &Config) -> PathBuf {
    let store = config.resolve(&config.store.path);
    let mut name = store.file_name().unwrap_or_default().to_os_string();
    name.push(".pools.json");
    store.with_file_name(name)
}
