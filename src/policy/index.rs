//! The name index: hash → record offset, one cache line per probe.
//!
//! Buckets are 64-byte, cache-line-aligned blocks of 10 entries: 10 16-bit hash tags, then the
//! 10 matching `u32` record offsets. A lookup reads its home bucket (one line), compares the
//! tags (a false match is 1 in 65,535 per occupied entry, settled against the record bytes),
//! and moves on to the next bucket only while the one it read is full. With `hashbrown`'s
//! `HashTable<u32>` a hit cost three cache misses (control bytes, bucket, record); here it is
//! two (bucket line, record), and the table holds up to 8 entries per bucket on average (80 %
//! load): 1,000,000 names fit in 2¹⁷ buckets = 8 MiB, where hashbrown's 7/8 load needed 2²¹
//! buckets × 5 bytes = 10 MiB.
//!
//! Entries are only ever added (a policy is immutable once built), so buckets fill front to
//! back and "not full" means "nothing homed here spilled further": that is what lets a miss
//! stop after one line.

/// Entries per bucket: 10 × (2 + 4) bytes + 4 spare = one 64-byte line.
const WAYS: usize = 10;
/// Average entries per bucket at most (80 % load): spills stay rare and short.
const MAX_PER_BUCKET: usize = 8;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    /// 0 = empty; entries fill from index 0, so the first 0 ends the bucket.
    tags: [u16; WAYS],
    offs: [u32; WAYS],
}

impl Bucket {
    /// Bit masks of the ways whose tag is `tag`, and of the free ways. Branch-free over the
    /// line so the compiler compares all ten tags at once.
    #[inline]
    fn scan(&self, tag: u16) -> (u16, u16) {
        let (mut hits, mut free) = (0u16, 0u16);
        for (i, &t) in self.tags.iter().enumerate() {
            hits |= u16::from(t == tag) << i;
            free |= u16::from(t == 0) << i;
        }
        (hits, free)
    }
}

const EMPTY: Bucket = Bucket {
    tags: [0; WAYS],
    offs: [0; WAYS],
};

/// What [`Index::find_or_insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    /// An entry for which `eq` held was already there.
    Found(u32),
    /// The value was added.
    Inserted,
    /// No free way left (more entries than the index was sized for).
    Full,
}

/// A fixed-size hash index from 64-bit hashes to `u32` values (record offsets).
pub(super) struct Index {
    buckets: Vec<Bucket>,
    mask: usize,
    len: usize,
}

impl Default for Index {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

/// The tag stored for a hash: its top 16 bits, never 0 (0 marks an empty way). The bucket is
/// chosen from the low bits, so the two are independent.
#[inline]
fn tag_of(hash: u64) -> u16 {
    ((hash >> 48) as u16).max(1)
}

impl Index {
    /// An index for up to `n` entries; it never grows (the builder knows an upper bound).
    pub fn with_capacity(n: usize) -> Self {
        let buckets = Self::buckets_for(n);
        Self {
            buckets: vec![EMPTY; buckets],
            mask: buckets - 1,
            len: 0,
        }
    }

    /// Buckets needed for `n` entries at no more than 80 % load.
    fn buckets_for(n: usize) -> usize {
        n.div_ceil(MAX_PER_BUCKET).max(1).next_power_of_two()
    }

    /// True when an index for `n` entries would be smaller than this one (worth rebuilding
    /// after many duplicates).
    pub fn oversized_for(&self, n: usize) -> bool {
        Self::buckets_for(n) < self.buckets.len()
    }

    /// Bytes allocated.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * size_of::<Bucket>()
    }

    /// The value whose hash is `hash` and for which `eq` holds.
    #[inline]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag_of(hash);
        let mut b = hash as usize & self.mask;
        // Bounded by the bucket count: the table is never full (80 % load), so a bucket with
        // room ends every chain.
        for _ in 0..self.buckets.len() {
            let bucket = self.buckets.get(b)?;
            let (mut hits, free) = bucket.scan(tag);
            while hits != 0 {
                let i = hits.trailing_zeros() as usize;
                hits &= hits - 1;
                if let Some(&v) = bucket.offs.get(i)
                    && eq(v)
                {
                    return Some(v);
                }
            }
            if free != 0 {
                return None;
            }
            b = (b + 1) & self.mask;
        }
        None
    }

    /// The build's one-pass "get or add": walks the chain like [`Index::find`]; if `eq` holds
    /// for no entry, stores `value` in the first free way (where the chain ends) and returns
    /// `Inserted`. One scan instead of a find and then an insert (~20 % of build time).
    pub fn find_or_insert(
        &mut self,
        hash: u64,
        mut eq: impl FnMut(u32) -> bool,
        value: u32,
    ) -> Entry {
        let tag = tag_of(hash);
        let mut b = hash as usize & self.mask;
        for _ in 0..self.buckets.len() {
            let Some(bucket) = self.buckets.get_mut(b) else {
                return Entry::Full;
            };
            let (mut hits, free) = bucket.scan(tag);
            while hits != 0 {
                let i = hits.trailing_zeros() as usize;
                hits &= hits - 1;
                if let Some(&v) = bucket.offs.get(i)
                    && eq(v)
                {
                    return Entry::Found(v);
                }
            }
            if free != 0 {
                let i = free.trailing_zeros() as usize;
                bucket.tags[i] = tag;
                bucket.offs[i] = value;
                self.len += 1;
                return Entry::Inserted;
            }
            b = (b + 1) & self.mask;
        }
        Entry::Full
    }

    /// Adds a value the caller has checked is not present. Returns false only if the index is
    /// full, which `with_capacity` rules out for up to the requested number of entries.
    pub fn insert(&mut self, hash: u64, value: u32) -> bool {
        if self.len >= self.buckets.len() * WAYS {
            return false;
        }
        let tag = tag_of(hash);
        let mut b = hash as usize & self.mask;
        for _ in 0..self.buckets.len() {
            let Some(bucket) = self.buckets.get_mut(b) else {
                return false;
            };
            if let Some(i) = bucket.tags.iter().position(|&t| t == 0) {
                bucket.tags[i] = tag;
                bucket.offs[i] = value;
                self.len += 1;
                return true;
            }
            b = (b + 1) & self.mask;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_is_one_cache_line() {
        assert_eq!(size_of::<Bucket>(), 64);
        assert_eq!(align_of::<Bucket>(), 64);
    }

    #[test]
    fn finds_everything_inserted_even_when_all_hashes_collide() {
        // Every entry homed in bucket 0 with the same tag: chains spill over the whole table
        // and `eq` must settle every candidate.
        let mut ix = Index::with_capacity(50);
        for v in 0..50u32 {
            assert!(ix.insert(7, v));
        }
        for v in 0..50u32 {
            assert_eq!(ix.find(7, |x| x == v), Some(v));
        }
        assert_eq!(ix.find(7, |x| x == 999), None);
        // Same home bucket, another tag: the tags alone rule every entry out.
        assert_eq!(ix.find(7 | 5 << 48, |_| true), None);
    }

    #[test]
    fn full_table_refuses_and_lookups_terminate() {
        let mut ix = Index::with_capacity(1);
        let slots = ix.buckets.len() * WAYS;
        for v in 0..slots as u32 {
            assert!(ix.insert(u64::from(v) << 50, v));
        }
        assert!(!ix.insert(3, 12345));
        assert_eq!(ix.find(3, |_| false), None);
    }

    #[test]
    fn find_or_insert_finds_first_then_inserts() {
        let mut ix = Index::with_capacity(30);
        for v in 0..30u32 {
            assert_eq!(ix.find_or_insert(9, |x| x == v, v), Entry::Inserted);
        }
        for v in 0..30u32 {
            assert_eq!(ix.find_or_insert(9, |x| x == v, 1000), Entry::Found(v));
        }
        let slots = (ix.buckets.len() * WAYS) as u32;
        for v in 30..slots {
            assert_eq!(ix.find_or_insert(9, |_| false, v), Entry::Inserted);
        }
        assert_eq!(ix.find_or_insert(9, |_| false, 0), Entry::Full);
    }

    #[test]
    fn zero_tag_is_remapped_not_lost() {
        let mut ix = Index::with_capacity(4);
        assert!(ix.insert(0, 1));
        assert_eq!(ix.find(0, |x| x == 1), Some(1));
    }
}
