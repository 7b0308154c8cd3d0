//! The blocked names `hit_names` already holds, remembered by the writer so that a name hit
//! again skips its upsert.
//!
//! `hit_names` keeps each blocked name's first and last hit (the reports' "new names", and
//! retention of that table). Upserting every distinct name of every batch is a B-tree walk per
//! name, and in a flood over many names it was the largest cost of a hit once hits were
//! stored as blocks (docs/BENCHMARKS.md, session 4). Here a name's 64-bit hash maps to the
//! `(first, last)` already stored; a batch writes the name only when it moves `first` earlier
//! or `last` more than [`LAST_SLACK_MS`] later (`last` only drives pruning, measured in days).
//! The map is bounded and simply cleared when full, and cleared after a failed batch (it may
//! then hold names the rollback removed): forgetting only costs upserts again.

use std::collections::HashMap;
use std::hash::BuildHasher;

/// Names remembered before the map is cleared (about 6 MiB at most).
const MAX_NAMES: usize = 1 << 18;
/// How stale a stored `last_ms` may get before a hit rewrites it.
pub const LAST_SLACK_MS: i64 = 3_600_000;

/// The writer's memory of `hit_names`.
#[derive(Debug, Default)]
pub struct KnownNames {
    stored: HashMap<u64, (i64, i64), foldhash::fast::FixedState>,
    hasher: foldhash::fast::FixedState,
}

impl KnownNames {
    /// Whether a batch whose hits of `name` span `[first, last]` must write it; if so, the
    /// span is remembered as written (a failed write fails the batch, which calls
    /// [`KnownNames::forget`]). One hash per name.
    pub fn should_write(&mut self, name: &str, first: i64, last: i64) -> bool {
        let key = self.hasher.hash_one(name);
        if let Some(&(f, l)) = self.stored.get(&key)
            && first >= f
            && last <= l.saturating_add(LAST_SLACK_MS)
        {
            return false;
        }
        if self.stored.len() >= MAX_NAMES {
            self.stored.clear();
        }
        let e = self.stored.entry(key).or_insert((first, last));
        *e = (e.0.min(first), e.1.max(last));
        true
    }

    /// Forgets everything (after a failed batch).
    pub fn forget(&mut self) {
        self.stored.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_rewritten_only_when_its_span_grows_enough() {
        let mut k = KnownNames::default();
        assert!(k.should_write("a.pool.test", 100, 100));
        assert!(!k.should_write("a.pool.test", 100, 100));
        assert!(!k.should_write("a.pool.test", 100, 100 + LAST_SLACK_MS));
        assert!(k.should_write("a.pool.test", 100, 101 + LAST_SLACK_MS));
        assert!(
            k.should_write("a.pool.test", 99, 100),
            "an older replayed hit"
        );
        assert!(k.should_write("b.pool.test", 100, 100));
        k.forget();
        assert!(k.should_write("a.pool.test", 100, 100));
    }
}
