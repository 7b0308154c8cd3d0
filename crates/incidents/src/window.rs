//! Hits per address over the repeat-offender window, kept in memory by the writer.
//!
//! The threshold ("this many hits of one address within `hits_window`") is checked after
//! every batch for every touched incident. Hits are stored as blocks, where counting one
//! address means decoding the window's blocks, so the tracker keeps a small per-address
//! histogram instead: seeded once from the blocks the first time an address needs checking
//! (inside the batch's transaction, so it sees exactly what is stored), then fed by each
//! batch. If a batch fails to commit the histograms are dropped and re-seeded on demand: the
//! blocks stay the single source of truth.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use poolguard_store::StoreError;
use poolguard_store::hook::IncidentTx;

/// Buckets per window: counts are exact to 1/256 of the window (a bucket straddling the
/// window's start counts whole).
const BUCKETS: i64 = 256;
/// Addresses kept before idle ones (no hit within the window) are swept out.
const SWEEP_AT: usize = 4096;

/// One run of hits: `[first_ms, last_ms]`, `count` hits.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    first_ms: i64,
    last_ms: i64,
    count: u64,
}

/// The hit histogram of every address checked since start (or since the last failed batch).
#[derive(Debug, Default)]
pub struct HitWindows {
    by_ip: HashMap<IpAddr, VecDeque<Bucket>>,
}

fn push(buckets: &mut VecDeque<Bucket>, t: i64, width: i64) {
    match buckets.back_mut() {
        Some(b) if t >= b.first_ms && t - b.first_ms < width => {
            b.last_ms = b.last_ms.max(t);
            b.count += 1;
        }
        _ => buckets.push_back(Bucket {
            first_ms: t,
            last_ms: t,
            count: 1,
        }),
    }
}

impl HitWindows {
    /// Adds one stored hit of an address already being counted (others are seeded later).
    pub fn add(&mut self, ip: IpAddr, time_ms: i64, window_ms: i64) {
        if let Some(b) = self.by_ip.get_mut(&ip) {
            push(b, time_ms, (window_ms / BUCKETS).max(1));
        }
    }

    /// Hits of `ip` at or after `now_ms - window_ms`, seeding the address from the stored
    /// hits (through `tx`, inside the caller's transaction) the first time.
    pub fn count(
        &mut self,
        tx: &dyn IncidentTx,
        ip: IpAddr,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<u64, StoreError> {
        let since = now_ms.saturating_sub(window_ms);
        let width = (window_ms / BUCKETS).max(1);
        if !self.by_ip.contains_key(&ip) {
            if self.by_ip.len() >= SWEEP_AT {
                self.by_ip
                    .retain(|_, b| b.back().is_some_and(|x| x.last_ms >= since));
            }
            // Counted into fixed buckets from `since` (constant memory however long a flood
            // lasted), then kept as runs with the buckets' span.
            let mut counts = vec![0u64; BUCKETS as usize + 1];
            let mut spans = vec![(i64::MAX, i64::MIN); BUCKETS as usize + 1];
            tx.hit_times_since(ip, since, &mut |time_ms| {
                let i = usize::try_from((time_ms - since) / width)
                    .unwrap_or(0)
                    .min(BUCKETS as usize);
                counts[i] += 1;
                spans[i] = (spans[i].0.min(time_ms), spans[i].1.max(time_ms));
            })?;
            let b: VecDeque<Bucket> = counts
                .iter()
                .zip(&spans)
                .filter(|(n, _)| **n > 0)
                .map(|(&count, &(first_ms, last_ms))| Bucket {
                    first_ms,
                    last_ms,
                    count,
                })
                .collect();
            self.by_ip.insert(ip, b);
        }
        let Some(b) = self.by_ip.get_mut(&ip) else {
            return Ok(0);
        };
        while b.front().is_some_and(|x| x.last_ms < since) {
            b.pop_front();
        }
        Ok(b.iter().map(|x| x.count).sum())
    }

    /// Drops every histogram (after a failed batch); they re-seed from the store.
    pub fn forget(&mut self) {
        self.by_ip.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_merge_within_a_width_and_expire_whole() {
        let mut b = VecDeque::new();
        for t in [0, 1, 2, 10, 11, 25] {
            push(&mut b, t, 10);
        }
        let runs: Vec<(i64, i64, u64)> =
            b.iter().map(|x| (x.first_ms, x.last_ms, x.count)).collect();
        assert_eq!(runs, vec![(0, 2, 3), (10, 11, 2), (25, 25, 1)]);
    }
}
