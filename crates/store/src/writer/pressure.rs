//! Pressure: what the writer gives up or puts off when it is behind, or when the DNS path
//! needs the core it shares with the writer. Logging must never slow an answer; hits are
//! evidence and are put off (to the spool), never given up while the spool has room.
//!
//! * a saturated DNS worker sheds ordinary events; the writer then drops the ordinary rows it
//!   still holds too ([`Writer::yield_to_dns`]).
//! * while a worker reports saturation, a flush defers its hits to the spool instead of
//!   indexing them ([`defer_hits`]), for at least [`SATURATION_HOLD`].
//! * a flood of hits faster than SQLite goes to the spool rather than memory
//!   ([`Writer::divert_when_flooded`]).
//! * ordinary rows held for a retry after a failed write are bounded
//!   ([`Writer::shed_ordinary_rows`]).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Writer;
use poolguard_config::StoreConfig;

/// How long after a DNS worker last reported saturation deferred hits still wait. A worker at
/// the edge of its capacity flickers in and out of "saturated"; replaying in each gap would
/// take the shared core for up to [`super::backlog::REPLAY_SLICE`] at a time, deepening the
/// very queue that made it saturated. Hits are indexed once the worker has had a second of
/// room.
const SATURATION_HOLD: Duration = Duration::from_secs(1);

impl Writer {
    /// SQLite is healthy but slower than the hit rate (a flood of blocked queries): more than
    /// `queue_capacity` hits wait in the channel. Rather than let them pile up in memory,
    /// this batch's hits go to the backlog (a sequential append to the spool file, far
    /// cheaper than indexed rows), and the usual time-boxed replay writes them into SQLite
    /// as it catches up. Memory stays bounded by the capacity plus what arrives during one
    /// replay slice; the spool's own bounds apply as for a failing store.
    pub(super) fn divert_when_flooded(&mut self) {
        if self.health.hits_queued.load(Ordering::Relaxed) > self.cfg.queue_capacity {
            metrics::counter!("poolguard_store_hit_floods_total").increment(1);
            self.spool_hits();
        }
    }

    /// While the DNS path sheds ordinary events (a worker is saturated), the writer drops the
    /// ordinary rows it still holds too, counted, and writes only hits: rows queued before
    /// the saturation would otherwise keep it busy on the shared core, and logging must never
    /// slow an answer. Once the DNS path stops shedding, every row is written again.
    pub(super) fn yield_to_dns(&mut self) {
        let shed = self.health.shed.load(Ordering::Relaxed);
        if shed == self.seen_shed {
            return;
        }
        self.seen_shed = shed;
        let before = self.batch.len();
        self.batch.retain(|e| e.outcome.is_hit());
        let dropped = (before - self.batch.len()) as u64;
        if dropped > 0 {
            self.health.dropped.fetch_add(dropped, Ordering::Relaxed);
            metrics::counter!("poolguard_log_rows_dropped_total", "reason" => "dns_saturated")
                .increment(dropped);
        }
    }

    /// Ordinary rows wait in memory for the retry, up to the usual budget; past it they are
    /// dropped and counted, as when the queue is full.
    pub(super) fn shed_ordinary_rows(&mut self) {
        let cap = self
            .cfg
            .batch_size
            .saturating_mul(4)
            .max(self.cfg.queue_capacity);
        if self.batch.len() > cap {
            let before = self.batch.len();
            self.batch.retain(|e| e.outcome.is_hit());
            let shed = (before - self.batch.len()) as u64;
            self.publish_oldest();
            self.health.dropped.fetch_add(shed, Ordering::Relaxed);
            metrics::counter!("poolguard_log_rows_dropped_total").increment(shed);
        }
    }

    /// Whether this flush defers its hits to the spool: a worker reported saturation within
    /// [`SATURATION_HOLD`] (and no explicit flush asks for everything), see [`defer_hits`].
    pub(super) fn defers_hits(&mut self) -> bool {
        let now = Instant::now();
        if self.health.dns_saturated.swap(false, Ordering::Relaxed) {
            self.saturated_until = Some(now + SATURATION_HOLD);
        }
        let saturated = !self.force_index && self.saturated_until.is_some_and(|t| now < t);
        defer_hits(
            saturated,
            self.backlog.spool().pending_bytes(),
            self.backlog.held(),
            &self.cfg,
        )
    }
}

/// Whether a flush defers this batch's hits to the spool instead of indexing them now: only
/// while a DNS worker was saturated since the last flush, with a spool file that works
/// (nothing held in memory) and is less than half full, so a long flood still gets indexed
/// before the spool's bound could ever drop a hit.
fn defer_hits(saturated: bool, spool_bytes: u64, held: usize, cfg: &StoreConfig) -> bool {
    saturated
        && cfg.defer_hits_when_saturated
        && cfg.spool_max_bytes > 0
        && held == 0
        && spool_bytes < cfg.spool_max_bytes / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_are_deferred_only_while_saturated_and_the_spool_has_room() {
        let cfg = StoreConfig::default();
        let half = cfg.spool_max_bytes / 2;
        assert!(defer_hits(true, 0, 0, &cfg));
        assert!(defer_hits(true, half - 1, 0, &cfg));
        assert!(!defer_hits(false, 0, 0, &cfg), "not saturated: index now");
        assert!(!defer_hits(true, half, 0, &cfg), "half full: index now");
        assert!(
            !defer_hits(true, 0, 1, &cfg),
            "spool file failing: index now"
        );
        let off = StoreConfig {
            defer_hits_when_saturated: false,
            ..StoreConfig::default()
        };
        assert!(!defer_hits(true, 0, 0, &off));
        let no_file = StoreConfig {
            spool_max_bytes: 0,
            ..StoreConfig::default()
        };
        assert!(!defer_hits(true, 0, 0, &no_file));
    }
}
