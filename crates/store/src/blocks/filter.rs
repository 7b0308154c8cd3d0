//! The per-block Bloom filter: which clients, names and field values a block may hold.
//!
//! A list request for one client or one name would otherwise decode every block in its time
//! window. Each block therefore carries a small Bloom filter (about one byte per key) over
//! its client addresses, every name and each name's parent domains (so `*.example.com` is
//! one probe), and its feeds, departments and query types. A "no" skips the block without
//! reading its data; a "maybe" costs one decode.
//!
//! The hash is part of the file format, so it is spelled out here (FNV-1a folded through a
//! 64-bit finaliser) rather than taken from a crate whose output may change between versions.

/// Which field a key belongs to, so equal strings in different fields never collide.
#[derive(Debug, Clone, Copy)]
pub enum Field {
    Client = 1,
    Name = 2,
    QueryType = 3,
    Feed = 4,
    Department = 5,
    /// A hit's ledger asset tag: incidents keyed by asset find their evidence by it.
    Asset = 6,
    /// A hit's MAC (the lease's or the ledger's): incidents keyed by device.
    Mac = 7,
    /// A hit's account, lower-cased: incidents keyed by login.
    Account = 8,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Probes per key. With about 8 bits per key (fewer when keys repeat) a miss is a false
/// "maybe" in roughly 2.4 % of blocks.
const PROBES: u32 = 4;
/// Bits per key added (before repeats), rounded up to a power of two.
const BITS_PER_KEY: usize = 8;

/// The final mix (from splitmix64): FNV alone leaves the high bits poorly mixed.
fn finish(mut h: u64, field: Field) -> u64 {
    h ^= (field as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The key of a plain value (feed, department, query type, client address bytes).
pub fn value_key(field: Field, bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    finish(h, field)
}

/// The key of a name (lower case, no trailing dot) as a [`Field::Name`].
///
/// Names hash backwards, byte by byte from the end, so one pass over `www.pool.example`
/// passes through the states of `example` and `pool.example`: [`name_keys`] gets every
/// parent's key for the price of hashing the name once.
pub fn name_key(name: &str) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in name.as_bytes().iter().rev() {
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    finish(h, Field::Name)
}

/// Calls `f` with the key of `name` and of each parent of two or more labels.
///
/// Top-level labels (`com`) are left out: nearly every block holds one, so a probe for them
/// could never skip a block, and the readers do not use the filter for single-label suffixes.
pub fn name_keys(name: &str, mut f: impl FnMut(u64)) {
    let bytes = name.as_bytes();
    let mut h = FNV_OFFSET;
    let mut dots = 0;
    for &b in bytes.iter().rev() {
        if b == b'.' {
            if dots > 0 {
                f(finish(h, Field::Name));
            }
            dots += 1;
        }
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    f(finish(h, Field::Name));
}

/// Gathers keys while a block is written; [`FilterBuilder::finish`] sizes the filter to them.
#[derive(Debug, Default)]
pub struct FilterBuilder {
    keys: Vec<u64>,
}

impl FilterBuilder {
    /// Adds one key (a repeat is harmless).
    #[inline]
    pub fn add(&mut self, key: u64) {
        self.keys.push(key);
    }

    /// The filter's bytes: the bit array, a power of two of at least 64 bits.
    pub fn finish(&self) -> Vec<u8> {
        let bits = (self.keys.len() * BITS_PER_KEY).next_power_of_two().max(64);
        let mut out = vec![0u8; bits / 8];
        for &key in &self.keys {
            for bit in probes(key, bits) {
                out[bit / 8] |= 1 << (bit % 8);
            }
        }
        out
    }
}

fn probes(key: u64, bits: usize) -> impl Iterator<Item = usize> {
    let mask = bits as u64 - 1;
    let step = key.rotate_left(32) | 1;
    (0..u64::from(PROBES)).map(move |i| (key.wrapping_add(i.wrapping_mul(step)) & mask) as usize)
}

/// Whether a block whose filter is `filter` may hold `key`. A filter of the wrong shape
/// (damaged) answers "maybe", so the block is decoded and checked row by row.
pub fn may_contain(filter: &[u8], key: u64) -> bool {
    let bits = filter.len() * 8;
    if bits < 64 || !bits.is_power_of_two() {
        return true;
    }
    probes(key, bits).all(|bit| filter[bit / 8] & (1 << (bit % 8)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_backward_pass_yields_the_keys_of_every_parent() {
        let mut keys = Vec::new();
        name_keys("w1.pool.example.com", |k| keys.push(k));
        assert_eq!(
            keys,
            vec![
                name_key("example.com"),
                name_key("pool.example.com"),
                name_key("w1.pool.example.com"),
            ]
        );
        let mut single = Vec::new();
        name_keys("localhost", |k| single.push(k));
        assert_eq!(single, vec![name_key("localhost")]);
    }

    #[test]
    fn added_keys_are_always_found_and_others_mostly_not() {
        let mut b = FilterBuilder::default();
        for i in 0..1000 {
            b.add(name_key(&format!("host{i}.example")));
        }
        let filter = b.finish();
        for i in 0..1000 {
            assert!(may_contain(&filter, name_key(&format!("host{i}.example"))));
        }
        let false_maybes = (0..10_000)
            .filter(|i| may_contain(&filter, name_key(&format!("other{i}.test"))))
            .count();
        assert!(
            false_maybes < 500,
            "{false_maybes} false positives in 10000"
        );
    }

    #[test]
    fn fields_do_not_collide_and_damaged_filters_say_maybe() {
        assert_ne!(
            value_key(Field::Feed, b"x"),
            value_key(Field::Department, b"x")
        );
        assert!(may_contain(&[0u8; 3], 42));
        let empty = FilterBuilder::default().finish();
        assert!(!may_contain(&empty, name_key("example.com")));
    }
}
