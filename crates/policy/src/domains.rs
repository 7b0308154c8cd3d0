//! The domain suffix table: every listed name, once, in one flat arena.
//!
//! A lookup walks the query's suffixes, longest first (`a.pool.example`, `pool.example`,
//! `example`): one hash probe per label, so the cost is O(labels) whatever the table size.
//!
//! Why not a `HashMap<String, _>`: with a million entries, SipHash over heap keys and the cache
//! misses of chasing one heap `String` per entry were the largest user-space cost of a query,
//! and the per-entry allocations cost ~150 MiB per million names. Here every entry is one
//! *record* in a single `Vec<u8>` (`arena`): `[len][4 slots][name bytes]`, 9 bytes of header
//! and the name, usually within one cache line. The index is a `hashbrown::HashTable<u32>` of
//! record offsets keyed by foldhash and verified against the arena bytes: a miss reads one
//! 16-byte control group (a 7-bit tag filters almost every non-match; at 1M names the control
//! bytes are 2 MiB, small enough to stay cache-warm), a hit also one bucket `u32` and one record;
//! nothing is allocated. Measured and dropped (docs/POLICY.md): offsets and slots in side arrays
//! (two more cache misses per hit), and a custom index of 64-byte, 10-way buckets (one miss
//! fewer per hit on paper, 2 MiB smaller, but its 8 MiB of buckets made misses 75 % slower).
//!
//! Each name carries four *slots*, one per way it can be listed: blocked with subdomains,
//! blocked exactly, allowed with subdomains, allowed exactly. A slot holds the index of the
//! first feed (config order) that listed the name that way, so duplicates across feeds cost
//! nothing and "first feed wins" falls out of build order. Allow and block share one table so a
//! probe answers both questions at once.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;

use hashbrown::HashTable;

/// An empty slot.
pub(super) const NONE: u16 = u16::MAX;
/// Set on an allow slot that came from an adblock `@@` exception inside a block feed, so the
/// rule reads back as `@@pool.example`.
pub(super) const EXCEPTION: u16 = 0x8000;
/// The feed index bits of a slot.
pub(super) const FEED_MASK: u16 = 0x7FFF;
/// Feeds beyond this many cannot be addressed by a slot (`0x7FFF | EXCEPTION` is `NONE`).
pub(super) const MAX_FEEDS: usize = FEED_MASK as usize;

/// How a feed lists a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listing {
    Block,
    Allow,
    Exception,
}

/// Slot positions inside a record's header.
const BLOCK_SUB: usize = 0;
const BLOCK_EXACT: usize = 1;
const ALLOW_SUB: usize = 2;
const ALLOW_EXACT: usize = 3;

/// A record is `[len: u8][4 slots: u16 LE][name: len bytes]`.
const HEADER: usize = 1 + 4 * 2;

/// The name of the record at `at` (empty if `at` is not a record, which build never produces).
#[inline]
fn record_name(arena: &[u8], at: u32) -> &[u8] {
    let at = at as usize;
    match arena.get(at) {
        Some(&len) => arena
            .get(at + HEADER..at + HEADER + len as usize)
            .unwrap_or(&[]),
        None => &[],
    }
}

/// The four slots of the record at `at`.
#[inline]
fn record_slots(arena: &[u8], at: u32) -> [u16; 4] {
    let at = at as usize;
    match arena.get(at + 1..at + HEADER) {
        Some(b) => std::array::from_fn(|k| u16::from_le_bytes([b[2 * k], b[2 * k + 1]])),
        None => [NONE; 4],
    }
}

/// One pass over a name: does it hold upper case, and how many dots. In 32-byte chunks with
/// `u8` counters so the compiler vectorises it; the straightforward `any` + `filter().count()`
/// ran byte by byte and was the largest instruction cost of a lookup (callgrind).
#[inline]
pub(super) fn scan_name(name: &[u8]) -> (bool, u32) {
    let (mut upper, mut dots) = (0u8, 0u32);
    for chunk in name.chunks(32) {
        let (mut u, mut d) = (0u8, 0u8);
        for &b in chunk {
            u |= u8::from(b.wrapping_sub(b'A') < 26);
            d += u8::from(b == b'.');
        }
        upper |= u;
        dots += u32::from(d);
    }
    (upper != 0, dots)
}

/// Of a subtree slot and an exact slot for the same name, the one from the earlier feed; the
/// subtree rule on a tie (it is the broader rule the maintainer wrote). `None` when both are
/// empty. Returns the slot and whether it is the exact one.
#[inline]
fn pick(sub: u16, exact: u16) -> Option<(u16, bool)> {
    match (sub != NONE, exact != NONE) {
        (true, true) if exact & FEED_MASK < sub & FEED_MASK => Some((exact, true)),
        (true, _) => Some((sub, false)),
        (false, true) => Some((exact, true)),
        (false, false) => None,
    }
}

/// A matching entry: which name, which slot (feed and exception bit), exact or subtree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hit {
    pub entry: u32,
    pub slot: u16,
    pub exact: bool,
}

/// The outcome of a suffix walk, before it is turned into a public [`super::Decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    Allowed(Hit),
    Blocked(Hit),
}

/// The compiled table; immutable once built.
#[derive(Default)]
pub(super) struct DomainTable {
    /// Records back to back, in build order; an entry is identified by its record's offset.
    arena: Vec<u8>,
    /// Record offsets, keyed by the hash of the record's name.
    index: HashTable<u32>,
    hasher: RandomState,
    /// Without any allow entry a walk can stop at the first block (the most specific one).
    has_allow: bool,
    /// Bit `k` set when some entry has `k` labels (a name has at most 127). A walk skips the
    /// probes for suffixes no entry could equal: for `a.b.c.worker.pool.example` against feeds
    /// of 2–4-label names, the first three.
    label_counts: u128,
    blocked: usize,
    allowed: usize,
}

impl DomainTable {
    /// Distinct names with a block listing.
    pub fn blocked(&self) -> usize {
        self.blocked
    }

    /// Distinct names with an allow listing.
    pub fn allowed(&self) -> usize {
        self.allowed
    }

    /// Bytes held by the table's allocations (the index's real allocation, not its length).
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.index.allocation_size()
    }

    /// The name of entry `at`. The arena only ever holds `DomainName` text (ASCII) there.
    pub fn name(&self, at: u32) -> &str {
        std::str::from_utf8(record_name(&self.arena, at)).unwrap_or("")
    }

    #[inline]
    fn get(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&at| record_name(&self.arena, at) == key)
            .copied()
    }

    /// Walks the suffixes of a normalised name with `dots` dots: the most specific allow wins
    /// outright; otherwise the most specific block. `None` when neither lists it.
    #[inline]
    pub fn find(&self, name: &[u8], dots: u32) -> Option<Found> {
        if self.arena.is_empty() || name.is_empty() {
            return None;
        }
        let mut block: Option<Hit> = None;
        let mut start = 0usize;
        let mut labels = 1 + dots;
        loop {
            let suffix = &name[start..];
            let possible = self.label_counts.checked_shr(labels).unwrap_or(0) & 1 == 1;
            if let Some(entry) = possible.then(|| self.get(suffix)).flatten() {
                let s = record_slots(&self.arena, entry);
                let full = start == 0;
                let allow_exact = if full { s[ALLOW_EXACT] } else { NONE };
                if let Some((slot, exact)) = pick(s[ALLOW_SUB], allow_exact) {
                    return Some(Found::Allowed(Hit { entry, slot, exact }));
                }
                if block.is_none() {
                    let block_exact = if full { s[BLOCK_EXACT] } else { NONE };
                    if let Some((slot, exact)) = pick(s[BLOCK_SUB], block_exact) {
                        block = Some(Hit { entry, slot, exact });
                        if !self.has_allow {
                            break;
                        }
                    }
                }
            }
            match suffix.iter().position(|&b| b == b'.') {
                Some(dot) => start += dot + 1,
                None => break,
            }
            labels -= 1;
        }
        block.map(Found::Blocked)
    }

    /// Every record's offset, in build order.
    fn records(&self) -> impl Iterator<Item = u32> + '_ {
        let mut at = 0usize;
        std::iter::from_fn(move || {
            let &len = self.arena.get(at)?;
            let this = u32::try_from(at).ok()?;
            at += HEADER + len as usize;
            Some(this)
        })
    }

    /// Every blocked name whose own name is not allowed, in build order, names below another
    /// listed name included (a stratum host under a listed operator has addresses of its own).
    /// A name blocked both ways is reported once, as a subtree.
    pub fn listed(&self) -> impl Iterator<Item = Hit> + '_ {
        self.records().filter_map(move |entry| {
            let s = record_slots(&self.arena, entry);
            let (slot, exact) = if s[BLOCK_SUB] != NONE {
                (s[BLOCK_SUB], false)
            } else if s[BLOCK_EXACT] != NONE {
                (s[BLOCK_EXACT], true)
            } else {
                return None;
            };
            let name = record_name(&self.arena, entry);
            if matches!(self.find(name, scan_name(name).1), Some(Found::Allowed(_))) {
                return None;
            }
            Some(Hit { entry, slot, exact })
        })
    }

    /// Entries that a publisher should list, in build order: [`DomainTable::listed`] minus
    /// names already covered by an emitted ancestor's subtree block.
    pub fn publishable(&self) -> impl Iterator<Item = Hit> + '_ {
        self.listed().filter(move |hit| {
            // An ancestor's subtree block already covers this name, unless that ancestor is
            // itself held back by an exact allow (then only this entry covers the name).
            let mut rest = record_name(&self.arena, hit.entry);
            while let Some(dot) = rest.iter().position(|&b| b == b'.') {
                rest = &rest[dot + 1..];
                if let Some(a) = self.get(rest) {
                    let sa = record_slots(&self.arena, a);
                    if sa[BLOCK_SUB] != NONE && sa[ALLOW_EXACT] == NONE {
                        return false;
                    }
                }
            }
            true
        })
    }
}

/// Accumulates listings in config order; "first feed wins" holds because a slot, once set,
/// is never overwritten.
pub(super) struct DomainTableBuilder {
    t: DomainTable,
}

impl DomainTableBuilder {
    /// Sized for at most `names` distinct names totalling `bytes`, so the arena and index never
    /// regrow (a regrow of a 1M index rehashes every name and doubles peak memory).
    pub fn with_capacity(names: usize, bytes: usize) -> Self {
        Self {
            t: DomainTable {
                arena: Vec::with_capacity(bytes + names * HEADER),
                index: HashTable::with_capacity(names),
                ..DomainTable::default()
            },
        }
    }

    /// Records that feed `feed` lists `name` (normalised `DomainName` text, so at most 253
    /// bytes) and returns the offset of its record (for [`super::FeedRules`]). `None` when the
    /// arena is full (4 GiB), which no real feed set reaches.
    pub fn add(&mut self, name: &str, listing: Listing, exact: bool, feed: u16) -> Option<u32> {
        let key = name.as_bytes();
        let len = u8::try_from(key.len()).ok()?;
        let DomainTable {
            arena,
            index,
            hasher,
            ..
        } = &mut self.t;
        let hash = hasher.hash_one(key);
        // Offsets are u32 and the record must fit too.
        let next = u32::try_from(arena.len()).ok()?;
        u32::try_from(arena.len() + HEADER + key.len()).ok()?;
        let at = match index.find(hash, |&at| record_name(arena, at) == key) {
            Some(&at) => at as usize,
            None => {
                arena.push(len);
                arena.extend_from_slice(&[0xff; HEADER - 1]); // every slot NONE
                arena.extend_from_slice(key);
                // Pre-sized, so the rehash closure never runs; it is correct if it ever does
                // (the new record is already in the arena).
                let (arena, hasher) = (&*arena, &*hasher);
                index.insert_unique(hash, next, |&a| hasher.hash_one(record_name(arena, a)));
                next as usize
            }
        };
        let (k, value) = match (listing, exact) {
            (Listing::Block, false) => (BLOCK_SUB, feed),
            (Listing::Block, true) => (BLOCK_EXACT, feed),
            (Listing::Allow, false) => (ALLOW_SUB, feed),
            (Listing::Allow, true) => (ALLOW_EXACT, feed),
            (Listing::Exception, false) => (ALLOW_SUB, feed | EXCEPTION),
            (Listing::Exception, true) => (ALLOW_EXACT, feed | EXCEPTION),
        };
        let pos = at + 1 + 2 * k;
        if let Some(slot) = arena.get_mut(pos..pos + 2)
            && slot == NONE.to_le_bytes()
        {
            slot.copy_from_slice(&value.to_le_bytes());
        }
        u32::try_from(at).ok()
    }

    /// Freezes the table, returning unused reserve (duplicates across feeds leave some).
    pub fn finish(mut self) -> DomainTable {
        let t = &mut self.t;
        t.arena.shrink_to_fit();
        // The index was sized for every listing; shrink it when duplicates were many.
        let (arena, hasher) = (&t.arena, &t.hasher);
        t.index
            .shrink_to_fit(|&a| hasher.hash_one(record_name(arena, a)));
        let (mut blocked, mut allowed, mut label_counts) = (0, 0, 0u128);
        for at in t.records() {
            let labels = 1 + scan_name(record_name(&t.arena, at)).1;
            label_counts |= 1u128.checked_shl(labels).unwrap_or(0);
            let s = record_slots(&t.arena, at);
            blocked += usize::from(s[BLOCK_SUB] != NONE || s[BLOCK_EXACT] != NONE);
            allowed += usize::from(s[ALLOW_SUB] != NONE || s[ALLOW_EXACT] != NONE);
        }
        t.blocked = blocked;
        t.allowed = allowed;
        t.has_allow = allowed > 0;
        t.label_counts = label_counts;
        self.t
    }
}
