//! The domain suffix table: every listed name, once, in one flat arena.
//!
//! A lookup walks the query's suffixes, longest first (`a.pool.example`, `pool.example`,
//! `example`): one hash probe per label, so the cost is O(labels) whatever the table size.
//!
//! Why not a `HashMap<String, _>`: with a million entries, SipHash over heap keys and the cache
//! misses of chasing one heap `String` per entry were the largest user-space cost of a query,
//! and the per-entry allocations cost ~100 MiB. Here all names live back to back in one
//! `Vec<u8>` (`arena`), entry `i` is `arena[offs[i]..offs[i + 1]]`, and the index is a
//! `hashbrown::HashTable<u32>` of entry numbers keyed by foldhash and verified against the
//! arena bytes. A probe touches the index's control bytes, one `u32`, two offsets and the
//! name's bytes; nothing is allocated. Per entry that is ~20 bytes of name, 4 of offset, 8 of
//! slots and ~5–10 of index.
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

/// The four ways a name can be listed; see the module comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slots {
    block_sub: u16,
    block_exact: u16,
    allow_sub: u16,
    allow_exact: u16,
}

impl Slots {
    const EMPTY: Slots = Slots {
        block_sub: NONE,
        block_exact: NONE,
        allow_sub: NONE,
        allow_exact: NONE,
    };
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
    arena: Vec<u8>,
    /// `offs[i]..offs[i + 1]` is entry `i` in `arena`; `offs[0] == 0`.
    offs: Vec<u32>,
    slots: Vec<Slots>,
    index: HashTable<u32>,
    hasher: RandomState,
    /// Without any allow entry a walk can stop at the first block (the most specific one).
    has_allow: bool,
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
        self.arena.capacity()
            + self.offs.capacity() * size_of::<u32>()
            + self.slots.capacity() * size_of::<Slots>()
            + self.index.allocation_size()
    }

    /// The name of entry `i`, as bytes.
    #[inline]
    fn name_bytes(&self, i: u32) -> &[u8] {
        let i = i as usize;
        match (self.offs.get(i), self.offs.get(i + 1)) {
            (Some(&s), Some(&e)) => self.arena.get(s as usize..e as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The name of entry `i`. The arena only ever holds `DomainName` text (ASCII).
    pub fn name(&self, i: u32) -> &str {
        std::str::from_utf8(self.name_bytes(i)).unwrap_or("")
    }

    #[inline]
    fn get(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&i| self.name_bytes(i) == key)
            .copied()
    }

    /// Walks the suffixes of a normalised name: the most specific allow wins outright;
    /// otherwise the most specific block. `None` when neither lists it.
    #[inline]
    pub fn find(&self, name: &[u8]) -> Option<Found> {
        if self.slots.is_empty() || name.is_empty() {
            return None;
        }
        let mut block: Option<Hit> = None;
        let mut start = 0usize;
        loop {
            let suffix = &name[start..];
            if let Some(entry) = self.get(suffix) {
                let s = self.slots[entry as usize];
                let full = start == 0;
                let allow_exact = if full { s.allow_exact } else { NONE };
                if let Some((slot, exact)) = pick(s.allow_sub, allow_exact) {
                    return Some(Found::Allowed(Hit { entry, slot, exact }));
                }
                if block.is_none() {
                    let block_exact = if full { s.block_exact } else { NONE };
                    if let Some((slot, exact)) = pick(s.block_sub, block_exact) {
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
        }
        block.map(Found::Blocked)
    }

    /// Entries that a publisher should list, in build order: every blocked name whose own
    /// name is not allowed, minus names already covered by an emitted ancestor's subtree block.
    /// Yields `(entry, slot, exact)`; a name blocked both ways is emitted once, as a subtree.
    pub fn publishable(&self) -> impl Iterator<Item = Hit> + '_ {
        (0..self.slots.len() as u32).filter_map(move |entry| {
            let s = self.slots[entry as usize];
            let (slot, exact) = if s.block_sub != NONE {
                (s.block_sub, false)
            } else if s.block_exact != NONE {
                (s.block_exact, true)
            } else {
                return None;
            };
            let name = self.name_bytes(entry);
            if matches!(self.find(name), Some(Found::Allowed(_))) {
                return None;
            }
            // An ancestor's subtree block already covers this name, unless that ancestor is
            // itself held back by an exact allow (then only this entry covers the name).
            let mut rest = name;
            while let Some(dot) = rest.iter().position(|&b| b == b'.') {
                rest = &rest[dot + 1..];
                if let Some(a) = self.get(rest) {
                    let sa = self.slots[a as usize];
                    if sa.block_sub != NONE && sa.allow_exact == NONE {
                        return None;
                    }
                }
            }
            Some(Hit { entry, slot, exact })
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
        let mut offs = Vec::with_capacity(names + 1);
        offs.push(0);
        Self {
            t: DomainTable {
                arena: Vec::with_capacity(bytes),
                offs,
                slots: Vec::with_capacity(names),
                index: HashTable::with_capacity(names),
                ..DomainTable::default()
            },
        }
    }

    /// Records that feed `feed` lists `name` (normalised `DomainName` text). Returns false when
    /// the arena is full (4 GiB of names), which no real feed set reaches.
    pub fn add(&mut self, name: &str, listing: Listing, exact: bool, feed: u16) -> bool {
        let key = name.as_bytes();
        let DomainTable {
            arena,
            offs,
            slots,
            index,
            hasher,
            ..
        } = &mut self.t;
        let hash = hasher.hash_one(key);
        let name_of = |i: u32| -> &[u8] {
            let i = i as usize;
            match (offs.get(i), offs.get(i + 1)) {
                (Some(&s), Some(&e)) => arena.get(s as usize..e as usize).unwrap_or(&[]),
                _ => &[],
            }
        };
        let entry = match index.find(hash, |&i| name_of(i) == key) {
            Some(&i) => i as usize,
            None => {
                let Ok(end) = u32::try_from(arena.len() + key.len()) else {
                    return false;
                };
                let Ok(i) = u32::try_from(slots.len()) else {
                    return false;
                };
                arena.extend_from_slice(key);
                offs.push(end);
                slots.push(Slots::EMPTY);
                let (arena, offs, hasher) = (&*arena, &*offs, &*hasher);
                index.insert_unique(hash, i, |&j| {
                    let j = j as usize;
                    match (offs.get(j), offs.get(j + 1)) {
                        (Some(&s), Some(&e)) => {
                            hasher.hash_one(arena.get(s as usize..e as usize).unwrap_or(&[]))
                        }
                        _ => 0,
                    }
                });
                i as usize
            }
        };
        let s = &mut slots[entry];
        let (slot, value) = match (listing, exact) {
            (Listing::Block, false) => (&mut s.block_sub, feed),
            (Listing::Block, true) => (&mut s.block_exact, feed),
            (Listing::Allow, false) => (&mut s.allow_sub, feed),
            (Listing::Allow, true) => (&mut s.allow_exact, feed),
            (Listing::Exception, false) => (&mut s.allow_sub, feed | EXCEPTION),
            (Listing::Exception, true) => (&mut s.allow_exact, feed | EXCEPTION),
        };
        if *slot == NONE {
            *slot = value;
        }
        true
    }

    /// Freezes the table, returning unused reserve (duplicates across feeds leave some).
    pub fn finish(mut self) -> DomainTable {
        let t = &mut self.t;
        t.arena.shrink_to_fit();
        t.offs.shrink_to_fit();
        t.slots.shrink_to_fit();
        t.blocked = t
            .slots
            .iter()
            .filter(|s| s.block_sub != NONE || s.block_exact != NONE)
            .count();
        t.allowed = t
            .slots
            .iter()
            .filter(|s| s.allow_sub != NONE || s.allow_exact != NONE)
            .count();
        t.has_allow = t.allowed > 0;
        self.t
    }
}
