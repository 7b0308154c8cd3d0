//! The admission budget of a syslog export's ordinary (non-hit) queries (`max_per_second`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// At most `limit` admissions per second (fixed one-second windows), lock-free: the window
/// number and the count in it share one atomic word, so `admit` is a compare-and-swap loop
/// that never waits and never allocates (it runs on the DNS path).
#[derive(Debug)]
pub struct Budget {
    limit: u32,
    start: Instant,
    /// `window << 32 | count`.
    state: AtomicU64,
}

impl Budget {
    /// A budget of `limit` per second.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            start: Instant::now(),
            state: AtomicU64::new(0),
        }
    }

    /// Takes one from the current second's budget; `false` when it is spent.
    pub fn admit(&self) -> bool {
        self.admit_at(self.start.elapsed().as_secs())
    }

    /// [`Budget::admit`] in window `second` (tests pass it explicitly).
    pub fn admit_at(&self, second: u64) -> bool {
        let window = second & 0xFFFF_FFFF;
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                let (w, count) = (state >> 32, state & 0xFFFF_FFFF);
                if w != window {
                    Some(window << 32 | 1)
                } else if count < u64::from(self.limit) {
                    Some(state + 1)
                } else {
                    None
                }
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::Budget;

    #[test]
    fn the_budget_admits_its_limit_per_second_then_refills() {
        let b = Budget::new(3);
        assert_eq!((0..5).filter(|_| b.admit_at(7)).count(), 3);
        assert!(b.admit_at(8), "a new second has a new budget");
        assert_eq!((0..5).filter(|_| b.admit_at(8)).count(), 2);
    }
}
