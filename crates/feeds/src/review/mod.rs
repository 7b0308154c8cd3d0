//! The review queue's scan: every `[review] interval`, the queries stored since the last scan
//! are read back from the store and each is classified (`classify`) against the current
//! policy, its pool families (`families`) and the pool address set; what it finds is merged
//! into the queue (`poolguard_store::review`; the group's PostgreSQL queue under the postgres
//! backend) with this node's new scan position, in one transaction.
//!
//! Why a scan of the stored log and not a look at each query as it is answered: the DNS path
//! must not allocate or block more than it does (docs/REVIEW.md). The log is already written
//! and indexed by time; reading it back once a minute costs one reader connection for a
//! moment, on the control runtime. The price: with `[store] log_queries = false` only the
//! hits are stored, so only the candidates the DNS path already caught (CNAME into a listed
//! name, an address of a listed IP feed) are found.

mod classify;
mod families;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use classify::{Gathered, Listed};
pub use families::{Families, family_label, is_endpoint_label, registered};

use poolguard_config::Config;
use poolguard_policy::SharedPolicy;
use poolguard_store::review::ReviewStore;
use poolguard_store::rows::Table;
use poolguard_store::{Store, StoreError};

/// The pool address set as the scan needs it: address → the listed name it came from. A
/// closure, because the set lives in the DNS crate, beside this one.
pub type PoolAddresses = Arc<dyn Fn() -> HashMap<IpAddr, String> + Send + Sync>;

/// Beyond the writer's flush interval, how long the scan leaves the newest queries for the
/// next run, so a batch still being written is read whole next time.
const SETTLE_MARGIN: Duration = Duration::from_secs(1);

/// What one scan did, for the log and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Distinct candidate names found.
    pub candidates: usize,
    /// Candidate names left out because `[review] max_per_scan` was reached.
    pub left_out: u64,
}

/// The scan, with what it reads and where it writes.
#[derive(Clone)]
pub struct ReviewScan {
    pub config: Arc<Config>,
    pub policy: SharedPolicy,
    /// This node's store, whose query log is read back.
    pub log: Store,
    /// The queue: the same store, or the group's under the postgres backend.
    pub queue: Arc<dyn ReviewStore>,
    pub pool: PoolAddresses,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl ReviewScan {
    /// Runs a scan every `[review] interval` until `stop`; `None` when `[review]` is off.
    pub fn spawn(self, stop: CancellationToken) -> Option<JoinHandle<()>> {
        if !self.config.review.enabled {
            return None;
        }
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.config.review.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                match self.scan(now_ms()).await {
                    Ok(r) if r.candidates > 0 => {
                        tracing::debug!(
                            candidates = r.candidates,
                            left_out = r.left_out,
                            "review scan"
                        )
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "review scan failed; retried next interval")
                    }
                }
            }
        }))
    }

    /// Scans what was stored since the last scan, up to `now_ms` less the settle time, in
    /// steps of at most one interval. A step too large to read within the store's read time
    /// limit is skipped with a warning rather than retried for ever.
    pub async fn scan(&self, now_ms: i64) -> Result<ScanReport, StoreError> {
        let cfg = &self.config.review;
        let step = i64::try_from(cfg.interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1_000);
        let settle = self.config.store.flush_interval_ms as i64 + SETTLE_MARGIN.as_millis() as i64;
        let until = now_ms - settle;
        let mut since = self
            .queue
            .review_scanned_until()
            .await?
            .unwrap_or(until - step);
        let mut report = ScanReport::default();
        while since < until {
            let end = until.min(since.saturating_add(step));
            let found = match self.step(since, end).await {
                Ok(g) => g,
                Err(StoreError::Timeout(limit)) => {
                    tracing::warn!(
                        since,
                        until = end,
                        ?limit,
                        "review scan skipped these queries: too many to read within the limit"
                    );
                    Gathered::new(0)
                }
                Err(e) => return Err(e),
            };
            report.left_out += found.left_out;
            let sightings = found.into_sightings();
            report.candidates += sightings.len();
            self.queue.review_record(sightings, end).await?;
            since = end;
        }
        Ok(report)
    }

    /// Reads `[since, until)` of the stored queries (the hits alone without the query log).
    async fn step(&self, since: i64, until: i64) -> Result<Gathered, StoreError> {
        let policy = self.policy.load_full();
        let families = Families::of(&policy, &self.config.review.categories);
        let pool = (self.pool)();
        let max = self.config.review.max_per_scan;
        let categories = self.config.review.categories.clone();
        let table = if self.config.store.log_queries {
            Table::Queries
        } else {
            Table::Hits
        };
        self.log
            .read(move |conn| {
                let listed = Listed {
                    policy: &policy,
                    families: &families,
                    pool: &pool,
                    categories: &categories,
                };
                let mut gathered = Gathered::new(max);
                poolguard_store::blocks::scan(conn, table, since, until, None, |_, e| {
                    gathered.observe(&listed, e)
                })?;
                Ok(gathered)
            })
            .await
    }
}
