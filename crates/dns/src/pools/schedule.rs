//! When each listed name is resolved next: at its TTL (bounded below and above), or, for a
//! name that gave no address, after a backoff that doubles per failure up to the longest
//! interval. A heap of due times with lazy deletion: a policy reload replaces the names
//! without rebuilding the heap, and stale heap entries are skipped when they surface.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// The bounds of the intervals, from `[pools]`.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    /// Never sooner than this after the last resolution.
    pub min: Duration,
    /// Never later than this.
    pub max: Duration,
}

impl Intervals {
    /// The wait after an answer whose shortest TTL was `ttl`.
    fn after_answer(&self, ttl: Duration) -> Duration {
        ttl.clamp(self.min, self.max.max(self.min))
    }

    /// The wait after the `failures`-th resolution in a row that gave no address.
    fn after_failure(&self, failures: u32) -> Duration {
        let doubled = self
            .min
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        doubled.min(self.max.max(self.min))
    }
}

#[derive(Debug)]
struct Slot {
    category: Arc<str>,
    due: Instant,
    failures: u32,
}

/// What to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Resolve this name (of this category) now.
    Due(Arc<str>, Arc<str>),
    /// Nothing is due before this instant.
    Wait(Instant),
    /// No names at all.
    Empty,
}

/// Every listed name and when it is due.
#[derive(Debug, Default)]
pub struct Schedule {
    slots: HashMap<Arc<str>, Slot>,
    heap: BinaryHeap<Reverse<(Instant, Arc<str>)>>,
}

impl Schedule {
    /// How many names are scheduled.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Replaces the names after a policy change: names kept keep their due time and failure
    /// count, new names are due `now`, names no longer listed are dropped.
    pub fn replace<'a>(&mut self, names: impl Iterator<Item = (&'a str, &'a str)>, now: Instant) {
        let mut old = std::mem::take(&mut self.slots);
        for (name, category) in names {
            if self.slots.contains_key(name) {
                continue;
            }
            let (key, slot) = match old.remove_entry(name) {
                Some((key, mut slot)) => {
                    if &*slot.category != category {
                        slot.category = Arc::from(category);
                    }
                    (key, slot)
                }
                None => {
                    let key: Arc<str> = Arc::from(name);
                    self.heap.push(Reverse((now, key.clone())));
                    let slot = Slot {
                        category: Arc::from(category),
                        due: now,
                        failures: 0,
                    };
                    (key, slot)
                }
            };
            self.slots.insert(key, slot);
        }
        // Heap entries of dropped names are skipped in `next`; compact when they dominate.
        if self.heap.len() > 2 * self.slots.len() + 64 {
            self.heap = self
                .slots
                .iter()
                .map(|(k, s)| Reverse((s.due, k.clone())))
                .collect();
        }
    }

    /// The next name due at `now`, or when the next one will be.
    pub fn next(&mut self, now: Instant) -> Next {
        while let Some(Reverse((due, name))) = self.heap.peek() {
            let live = self.slots.get(name).is_some_and(|s| s.due == *due);
            if !live {
                self.heap.pop();
                continue;
            }
            if *due > now {
                return Next::Wait(*due);
            }
            let category = self.slots.get(name).map(|s| s.category.clone());
            let name = name.clone();
            self.heap.pop();
            return match category {
                Some(c) => Next::Due(name, c),
                None => continue,
            };
        }
        Next::Empty
    }

    fn reschedule(&mut self, name: &Arc<str>, due: Instant, failed: bool) {
        if let Some(slot) = self.slots.get_mut(name) {
            slot.due = due;
            slot.failures = if failed { slot.failures + 1 } else { 0 };
            self.heap.push(Reverse((due, name.clone())));
        }
    }

    /// `name` answered with addresses whose shortest TTL was `ttl`.
    pub fn resolved(&mut self, name: &Arc<str>, ttl: Duration, now: Instant, i: Intervals) {
        self.reschedule(name, now + i.after_answer(ttl), false);
    }

    /// `name` gave no address (NXDOMAIN, NODATA, or the upstream failed): back off.
    pub fn failed(&mut self, name: &Arc<str>, now: Instant, i: Intervals) {
        let failures = self.slots.get(name).map_or(0, |s| s.failures) + 1;
        self.reschedule(name, now + i.after_failure(failures), true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Intervals = Intervals {
        min: Duration::from_secs(60),
        max: Duration::from_secs(3600),
    };

    #[test]
    fn new_names_are_due_at_once_then_at_their_ttl_within_bounds() {
        let now = Instant::now();
        let mut s = Schedule::default();
        s.replace([("a.example", "mining")].into_iter(), now);
        let Next::Due(name, category) = s.next(now) else {
            panic!("due")
        };
        assert_eq!((&*name, &*category), ("a.example", "mining"));
        s.resolved(&name, Duration::from_secs(5), now, I);
        assert_eq!(
            s.next(now),
            Next::Wait(now + I.min),
            "a 5 s TTL waits the minimum"
        );
        let later = now + I.min;
        let Next::Due(name, _) = s.next(later) else {
            panic!("due again")
        };
        s.resolved(&name, Duration::from_secs(86_400), later, I);
        assert_eq!(
            s.next(later),
            Next::Wait(later + I.max),
            "a day's TTL waits the maximum"
        );
    }

    #[test]
    fn failures_back_off_doubling_up_to_the_maximum() {
        let now = Instant::now();
        let mut s = Schedule::default();
        s.replace([("dead.example", "mining")].into_iter(), now);
        let mut at = now;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let Next::Due(name, _) = s.next(at) else {
                panic!("due")
            };
            s.failed(&name, at, I);
            let Next::Wait(next) = s.next(at) else {
                panic!("wait")
            };
            waits.push((next - at).as_secs());
            at = next;
        }
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn a_reload_keeps_known_names_and_drops_unlisted_ones() {
        let now = Instant::now();
        let mut s = Schedule::default();
        s.replace(
            [("a.example", "mining"), ("b.example", "mining")].into_iter(),
            now,
        );
        while let Next::Due(name, _) = s.next(now) {
            s.resolved(&name, Duration::from_secs(600), now, I);
        }
        s.replace(
            [("a.example", "mining"), ("c.example", "bypass")].into_iter(),
            now,
        );
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.next(now),
            Next::Due(Arc::from("c.example"), Arc::from("bypass")),
            "only the new name is due; b is gone"
        );
        assert_eq!(s.next(now), Next::Wait(now + Duration::from_secs(600)));
    }
}
