//! Counting the most frequent values of a large scan in bounded memory.
//!
//! `/stats` and the summary report rank names and clients over a window of hit blocks. An
//! exact count needs one entry per distinct value, and hits are written by whoever can send a
//! DNS query: a flood of random subdomains, or of spoofed source addresses inside the allowed
//! ranges, would make that millions of entries per request. This is lossy counting (Manku and
//! Motwani, "Approximate frequency counts over data streams", VLDB 2002): exact while at most
//! [`WIDTH`] rows were counted; beyond that every count is low by at most rows / `WIDTH`, no
//! value that occurs more often than that is missed, and at most about
//! `WIDTH × log2(rows / WIDTH)` entries are held.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// Adds `n` to `key`'s count in `counts`, allocating the key only when it is new: the
/// summing of kept counts (rollup rows, minute tables, cached tables) into a request's table.
pub fn add_count(counts: &mut HashMap<String, u64>, key: &str, n: u64) {
    if let Some(v) = counts.get_mut(key) {
        *v += n;
    } else {
        counts.insert(key.to_string(), n);
    }
}

/// Rows per pruning round (and the exactness bound).
pub const WIDTH: u64 = 65_536;

/// Approximate counts of keys `K`, each with an aggregate `V` of its rows.
#[derive(Debug)]
pub struct TopCounts<K, V = ()> {
    /// key → (count, maximum undercount when it was added, aggregate).
    map: HashMap<K, (u64, u64, V)>,
    rows: u64,
    round: u64,
}

impl<K: Hash + Eq, V: Default> Default for TopCounts<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            rows: 0,
            round: 1,
        }
    }
}

impl<K: Hash + Eq, V: Default> TopCounts<K, V> {
    /// Counts one row of `key`, letting `aggregate` fold the row into the key's aggregate.
    pub fn add<Q>(&mut self, key: &Q, aggregate: impl FnOnce(&mut V))
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.map.get_mut(key) {
            Some(e) => {
                e.0 += 1;
                aggregate(&mut e.2);
            }
            None => {
                let mut v = V::default();
                aggregate(&mut v);
                self.map.insert(key.to_owned(), (1, self.round - 1, v));
            }
        }
        self.rows += 1;
        if self.rows.is_multiple_of(WIDTH) {
            let round = self.round;
            self.map.retain(|_, e| e.0 + e.1 > round);
            self.round += 1;
        }
    }

    /// The counted keys and their counts, in no particular order, leaving them in place.
    pub fn counts(&self) -> impl Iterator<Item = (&K, u64)> {
        self.map.iter().map(|(k, (n, _, _))| (k, *n))
    }

    /// The counted keys, their counts and aggregates, in no particular order.
    pub fn into_counts(self) -> impl Iterator<Item = (K, u64, V)> {
        self.map.into_iter().map(|(k, (n, _, v))| (k, n, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_below_the_width() {
        let mut t: TopCounts<String> = TopCounts::default();
        for i in 0..1000u32 {
            t.add(format!("n{}", i % 7).as_str(), |_| ());
        }
        let mut c: Vec<(String, u64)> = t.into_counts().map(|(k, n, _)| (k, n)).collect();
        c.sort();
        assert_eq!(c.len(), 7);
        assert_eq!(c[0], ("n0".to_string(), 143));
        assert_eq!(c[6], ("n6".to_string(), 142));
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_bounded_and_keeps_the_heavy_ones() {
        let mut t: TopCounts<u64, u64> = TopCounts::default();
        let rows = 20 * WIDTH;
        for i in 0..rows {
            // Every 10th row is key 0 (a heavy hitter); the rest are all distinct.
            let key = if i % 10 == 0 { 0 } else { i };
            t.add(&key, |v| *v += 1);
        }
        let counts: Vec<(u64, u64, u64)> = t.into_counts().collect();
        assert!(
            counts.len() as u64 <= 2 * WIDTH,
            "{} entries held",
            counts.len()
        );
        let heavy = counts.iter().find(|c| c.0 == 0).expect("kept");
        let exact = rows / 10;
        assert!(
            heavy.1 <= exact && heavy.1 + rows / WIDTH >= exact,
            "{heavy:?}"
        );
        assert_eq!(heavy.1, heavy.2, "the aggregate saw the rows counted");
    }
}
