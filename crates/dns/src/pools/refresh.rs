//! The refresh task: takes the next due name, asks the upstream for its A and AAAA records at
//! the paced rate, and folds the answer into the set; ages out what was not seen for
//! `max_age`, and writes the state file when something changed.
//!
//! It runs on the control runtime with a resolver of its own (built from `[upstream]`, with
//! its own cache), so the DNS workers never wait for it and their caches never see it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::rr::{Name, RData, RecordType};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::schedule::{Intervals, Next, Schedule};
use super::set::{PoolSet, listable};
use crate::upstream::Upstreams;
use poolguard_config::PoolsConfig;
use poolguard_policy::SharedPolicy;

/// The longest the task sleeps without looking at the policy (a reload adds names) and the
/// clock (addresses age out).
const LOOK_AGAIN: Duration = Duration::from_secs(1);
/// The state file is written at most this often while addresses keep changing, and at stop.
const SAVE_EVERY: Duration = Duration::from_secs(10);

/// Everything the task needs.
pub(super) struct Refresh {
    pub config: PoolsConfig,
    pub policy: SharedPolicy,
    pub upstreams: Upstreams,
    pub set: PoolSet,
    pub path: PathBuf,
    pub stop: CancellationToken,
}

/// What one name's A and AAAA answers gave.
struct Resolution {
    addresses: Vec<IpAddr>,
    /// The shortest TTL of the answer records; `None` when no answer had an address.
    ttl: Option<Duration>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Refresh {
    fn intervals(&self) -> Intervals {
        // Resolved at least twice per `max_age`, so an address still answered never ages out.
        Intervals {
            min: self.config.min_interval,
            max: self.config.max_interval.min(self.config.max_age / 2),
        }
    }

    /// Runs until `stop`, then writes the state file one last time.
    pub(super) async fn run(self) {
        let per_query = Duration::from_secs(60) / self.config.resolve_per_minute.max(1);
        let mut pace = tokio::time::interval(per_query);
        pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut schedule = Schedule::default();
        let mut generation = None;
        let mut dirty = false;
        let mut saved_at = Instant::now();
        let max_age_ms = self.config.max_age.as_millis() as i64;
        let intervals = self.intervals();
        while !self.stop.is_cancelled() {
            let now = Instant::now();
            let policy = self.policy.load();
            if generation != Some(policy.generation()) {
                generation = Some(policy.generation());
                let categories = &self.config.categories;
                schedule.replace(
                    policy
                        .listed_names()
                        .filter(|b| categories.iter().any(|c| **c == *b.feed.category))
                        .map(|b| (b.name, &*b.feed.category)),
                    now,
                );
                tracing::info!(
                    names = schedule.len(),
                    per_minute = self.config.resolve_per_minute,
                    "pool address set: resolving the listed names"
                );
            }
            drop(policy);
            let gone = self.set.expire(now_ms() - max_age_ms);
            if gone > 0 {
                tracing::info!(
                    addresses = gone,
                    "pool address set: stale addresses aged out"
                );
                dirty = true;
            }
            if dirty && saved_at.elapsed() >= SAVE_EVERY {
                self.save();
                (dirty, saved_at) = (false, Instant::now());
            }
            let name = match schedule.next(now) {
                Next::Due(name, category) => (name, category),
                Next::Wait(until) => {
                    self.pause(until.min(now + LOOK_AGAIN)).await;
                    continue;
                }
                Next::Empty => {
                    self.pause(now + LOOK_AGAIN).await;
                    continue;
                }
            };
            let (name, category) = name;
            let Some(found) = self.resolve(&name, &category, &mut pace).await else {
                break;
            };
            let now = Instant::now();
            match found.ttl {
                Some(ttl) => {
                    let new = self.set.seen(&name, &category, &found.addresses, now_ms());
                    if new > 0 {
                        tracing::debug!(%name, new, "pool address set: new addresses");
                    }
                    dirty |= !found.addresses.is_empty();
                    schedule.resolved(&name, ttl, now, intervals);
                }
                None => schedule.failed(&name, now, intervals),
            }
        }
        self.save();
    }

    async fn pause(&self, until: Instant) {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            _ = self.stop.cancelled() => {}
        }
    }

    fn save(&self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(error) = self.set.save(&self.path) {
            tracing::warn!(%error, "pool address set not saved; it is kept in memory");
        }
    }

    /// A and AAAA of `name` (a name of a `category` feed), each query waiting for its turn;
    /// `None` when stopped meanwhile. `[pools] exclude` filters the categories it names.
    async fn resolve(
        &self,
        name: &str,
        category: &str,
        pace: &mut tokio::time::Interval,
    ) -> Option<Resolution> {
        let no_exclude: &[ipnet::IpNet] = &[];
        let exclude = if self.config.exclude_categories.iter().any(|c| c == category) {
            &self.config.exclude[..]
        } else {
            no_exclude
        };
        let mut found = Resolution {
            addresses: Vec::new(),
            ttl: None,
        };
        let Ok(fqdn) = Name::from_ascii(format!("{name}.")) else {
            return Some(found);
        };
        let forwarder = self.upstreams.for_name(name);
        for qtype in [RecordType::A, RecordType::AAAA] {
            tokio::select! {
                _ = pace.tick() => {}
                _ = self.stop.cancelled() => return None,
            }
            let forwarded = forwarder.forward(fqdn.clone(), qtype).await;
            if forwarded.failed {
                continue;
            }
            for record in &forwarded.reply.answers {
                let address = match &record.data {
                    RData::A(a) => IpAddr::V4(a.0),
                    RData::AAAA(a) => IpAddr::V6(a.0),
                    _ => continue,
                };
                let ttl = Duration::from_secs(u64::from(record.ttl));
                found.ttl = Some(found.ttl.map_or(ttl, |t| t.min(ttl)));
                if listable(address, exclude) {
                    found.addresses.push(address);
                }
            }
        }
        found.addresses.sort_unstable();
        found.addresses.dedup();
        Some(found)
    }
}
