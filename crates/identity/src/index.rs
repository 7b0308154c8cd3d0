//! The [`IdentityIndex`]: every address's holdings over time, answering "who held this
//! address at that moment" for the store writer.
//!
//! Each address has one lane per source (Kea, dhcpd, RADIUS); a lane is a list of
//! non-overlapping holdings sorted by start, so a lookup is a hash probe and a binary search
//! per lane (well under the 5 µs a hit may spend: docs/BENCHMARKS.md, "Identity"). Lanes are
//! kept apart because sources answer different questions about the same moment: DHCP knows
//! the MAC and host name, RADIUS the account; a lookup combines them.
//!
//! Applying evidence is idempotent: a lease file read twice (a restart, a rewrite by Kea's
//! lease file cleanup or dhcpd's periodic rewrite) leaves the same holdings, so followers
//! may re-read a whole file without duplicating history. A renewal by the same holder
//! extends its holding; a new holder ends the previous one where it begins.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use crate::interval::{Event, Holder, Interval, Source};

/// One holding inside a lane (the address and source are the lane's).
#[derive(Debug, Clone)]
struct Held {
    start: i64,
    end: i64,
    mac: Option<Arc<str>>,
    account: Option<Arc<str>>,
    hostname: Option<Arc<str>>,
}

impl Held {
    /// This holding as an [`Interval`] of `addr` from `source`.
    fn interval(&self, addr: IpAddr, source: Option<Source>) -> Interval {
        Interval {
            addr,
            start_ms: self.start,
            end_ms: self.end,
            mac: self.mac.clone(),
            account: self.account.clone(),
            hostname: self.hostname.clone(),
            source: source.unwrap_or(Source::Ledger),
        }
    }

    fn same_holder(&self, other: &Interval) -> bool {
        self.mac == other.mac && self.account == other.account
    }
}

#[derive(Debug, Default)]
struct Lane {
    source: Option<Source>,
    held: Vec<Held>,
}

type Map<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

#[derive(Debug, Default)]
struct Table {
    by_addr: Map<IpAddr, Vec<Lane>>,
    /// MACs, accounts and host names repeat across renewals: one allocation each.
    strings: HashSet<Arc<str>, foldhash::fast::FixedState>,
    intervals: usize,
}

/// How big the index is, for logs, metrics and docs/BENCHMARKS.md.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub addresses: usize,
    pub intervals: usize,
    pub strings: usize,
}

/// Where this node's own evidence goes besides the index: the shared store of a group of
/// nodes (`crates/store-pg/src/identity.rs`), so a hit on any node names the holder whichever
/// node the DHCP server or the NAS told. Called off the DNS path, with the holdings a batch of
/// local evidence created or changed; it must not block (queue and return).
pub trait Outlet: Send + Sync {
    /// Takes the holdings as they stand after the batch.
    fn changed(&self, holdings: Vec<Interval>);
}

/// Every source's holdings, shared by the sources (writers) and the store writer and the API
/// (readers). Readers take a read lock for a lookup; sources apply evidence in batches.
#[derive(Default)]
pub struct IdentityIndex {
    table: RwLock<Table>,
    outlet: OnceLock<Arc<dyn Outlet>>,
    /// Bumped by every batch applied: who follows the index (quarantine) looks again only
    /// when it moved.
    generation: AtomicU64,
}

impl std::fmt::Debug for IdentityIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityIndex")
            .field("stats", &self.stats())
            .field("shared", &self.outlet.get().is_some())
            .finish()
    }
}

/// The index as the app shares it.
pub type SharedIdentities = Arc<IdentityIndex>;

impl IdentityIndex {
    /// An empty index, shared.
    pub fn shared() -> SharedIdentities {
        Arc::new(Self::default())
    }

    /// Applies a batch of this node's evidence under one write lock; with an [`Outlet`] set,
    /// hands it the holdings the batch created or changed.
    pub fn apply_all(&self, events: impl IntoIterator<Item = Event>) {
        let outlet = self.outlet.get();
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        let mut touched = Vec::new();
        for event in events {
            if outlet.is_some() {
                touched.push(Touch::of(&event));
            }
            table.apply(event);
        }
        self.generation.fetch_add(1, Ordering::Relaxed);
        let Some(outlet) = outlet else { return };
        let changed = table.holdings_at(&touched);
        drop(table);
        if !changed.is_empty() {
            outlet.changed(changed);
        }
    }

    /// Sends this node's evidence to `outlet` from now on, starting with every holding the
    /// index has. Once per index: a second outlet is refused (returned).
    pub fn share_through(&self, outlet: Arc<dyn Outlet>) -> Result<(), Arc<dyn Outlet>> {
        self.outlet.set(Arc::clone(&outlet))?;
        let all = self.all();
        if !all.is_empty() {
            outlet.changed(all);
        }
        Ok(())
    }

    /// Applies holdings another node shared. Each is the holding as its node last saw it, so
    /// its end stands, even when shorter than what this index had (an accounting Stop, a
    /// release told to the other node): the newest word on a holding wins. Never handed to
    /// the [`Outlet`] (the other node already shared them).
    pub fn apply_shared(&self, holdings: impl IntoIterator<Item = Interval>) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::Relaxed);
        for iv in holdings {
            let (addr, source, start, end) = (iv.addr, iv.source, iv.start_ms, iv.end_ms);
            let (mac, account) = (iv.mac.clone(), iv.account.clone());
            table.apply(Event::Held(iv));
            if let Some(lanes) = table.by_addr.get_mut(&addr.to_canonical())
                && let Some(lane) = lanes.iter_mut().find(|l| l.source == Some(source))
            {
                lane.settle_end(start, end, mac.as_deref(), account.as_deref());
            }
        }
    }

    /// How many batches of evidence were applied so far: unchanged means nothing new.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// The addresses held at `at_ms` by one of `macs` (normalised) or `accounts` (compared
    /// case-insensitively), each with the MAC or account that holds it. One scan of the
    /// index: for the quarantine that follows devices, not for hits.
    pub fn held_by(&self, macs: &[&str], accounts: &[&str], at_ms: i64) -> Vec<(IpAddr, String)> {
        if macs.is_empty() && accounts.is_empty() {
            return Vec::new();
        }
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (&addr, lanes) in &table.by_addr {
            for lane in lanes {
                let i = lane.held.partition_point(|h| h.start <= at_ms);
                let Some(h) = i.checked_sub(1).map(|i| &lane.held[i]) else {
                    continue;
                };
                if h.end <= at_ms {
                    continue;
                }
                if let Some(m) = h.mac.as_deref().filter(|m| macs.contains(m)) {
                    out.push((addr, format!("mac:{m}")));
                    break;
                }
                if let Some(a) = h.account.as_deref().and_then(|a| {
                    accounts
                        .iter()
                        .find(|x| poolguard_model::text::same_text(x, a))
                }) {
                    out.push((addr, format!("account:{}", a.to_lowercase())));
                    break;
                }
            }
        }
        out.sort();
        out
    }

    /// Every holding, of every address.
    fn all(&self) -> Vec<Interval> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        table
            .by_addr
            .iter()
            .flat_map(|(&addr, lanes)| {
                lanes
                    .iter()
                    .flat_map(move |l| l.held.iter().map(move |h| h.interval(addr, l.source)))
            })
            .collect()
    }

    /// Applies one piece of evidence.
    pub fn apply(&self, event: Event) {
        self.apply_all([event]);
    }

    /// Who held `addr` at `at_ms`, combined over the sources that knew; `None` when none did.
    pub fn lookup(&self, addr: IpAddr, at_ms: i64) -> Option<Holder> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let lanes = table.by_addr.get(&addr.to_canonical())?;
        let mut holder = Holder::default();
        for lane in lanes {
            let i = lane.held.partition_point(|h| h.start <= at_ms);
            let Some(h) = i.checked_sub(1).map(|i| &lane.held[i]) else {
                continue;
            };
            if h.end <= at_ms {
                continue;
            }
            // Lanes are in source order (Kea, dhcpd, RADIUS): DHCP's MAC comes first.
            holder.mac = holder.mac.or_else(|| h.mac.clone());
            holder.account = holder.account.or_else(|| h.account.clone());
            holder.hostname = holder.hostname.or_else(|| h.hostname.clone());
            if let Some(s) = lane.source {
                holder.sources.insert(s);
            }
        }
        (!holder.sources.is_empty()).then_some(holder)
    }

    /// Every holding of `addr` known, oldest first (all sources).
    pub fn history(&self, addr: IpAddr) -> Vec<Interval> {
        let addr = addr.to_canonical();
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Interval> = table
            .by_addr
            .get(&addr)
            .into_iter()
            .flatten()
            .flat_map(|lane| lane.held.iter().map(move |h| h.interval(addr, lane.source)))
            .collect();
        out.sort_by_key(|i| (i.start_ms, i.source));
        out
    }

    /// Every holding by `mac` or by `account` (case-insensitive), any address, newest first,
    /// at most `limit`. A scan of the whole index (milliseconds at a million holdings): for
    /// staff's searches, never for hits.
    pub fn holdings_of(
        &self,
        mac: Option<&str>,
        account: Option<&str>,
        limit: usize,
    ) -> Vec<Interval> {
        if mac.is_none() && account.is_none() {
            return Vec::new();
        }
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (&addr, lanes) in &table.by_addr {
            for lane in lanes {
                for h in &lane.held {
                    let by_mac = mac.is_some_and(|m| h.mac.as_deref() == Some(m));
                    let by_account = account.is_some_and(|a| {
                        h.account
                            .as_deref()
                            .is_some_and(|x| poolguard_model::text::same_text(x, a))
                    });
                    if by_mac || by_account {
                        out.push(h.interval(addr, lane.source));
                    }
                }
            }
        }
        out.sort_by_key(|i| std::cmp::Reverse((i.start_ms, i.addr)));
        out.truncate(limit);
        out
    }

    /// Forgets holdings that ended before `before_ms` (kept as long as hits are).
    pub fn prune(&self, before_ms: i64) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        let mut removed = 0;
        table.by_addr.retain(|_, lanes| {
            for lane in lanes.iter_mut() {
                let before = lane.held.len();
                lane.held.retain(|h| h.end >= before_ms);
                removed += before - lane.held.len();
            }
            lanes.retain(|l| !l.held.is_empty());
            !lanes.is_empty()
        });
        table.intervals -= removed;
        table.strings.retain(|s| Arc::strong_count(s) > 1);
    }

    /// Sizes, for logs and the benchmark.
    pub fn stats(&self) -> IndexStats {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        IndexStats {
            addresses: table.by_addr.len(),
            intervals: table.intervals,
            strings: table.strings.len(),
        }
    }
}

/// Where a piece of evidence may have changed holdings: the lane, and the moment whose
/// holding (and the one before it, which a new holder cuts) is shared afterwards.
struct Touch {
    addr: IpAddr,
    source: Source,
    at: i64,
}

impl Touch {
    fn of(event: &Event) -> Self {
        match event {
            Event::Held(iv) => Touch {
                addr: iv.addr.to_canonical(),
                source: iv.source,
                at: iv.start_ms,
            },
            // The ended holding contains the moment before its end.
            Event::Ended {
                addr,
                at_ms,
                source,
                ..
            } => Touch {
                addr: addr.to_canonical(),
                source: *source,
                at: at_ms.saturating_sub(1),
            },
        }
    }
}

impl Table {
    /// The holdings in force at each touched moment and the ones just before them, once
    /// each.
    fn holdings_at(&self, touched: &[Touch]) -> Vec<Interval> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for t in touched {
            let Some(lane) = self
                .by_addr
                .get(&t.addr)
                .and_then(|lanes| lanes.iter().find(|l| l.source == Some(t.source)))
            else {
                continue;
            };
            let i = lane.held.partition_point(|h| h.start <= t.at);
            for h in lane.held[i.saturating_sub(2)..i].iter() {
                if seen.insert((t.addr, t.source, h.start)) {
                    out.push(h.interval(t.addr, lane.source));
                }
            }
        }
        out
    }

    fn intern(&mut self, s: Option<Arc<str>>) -> Option<Arc<str>> {
        let s = s?;
        if let Some(known) = self.strings.get(&s) {
            return Some(Arc::clone(known));
        }
        self.strings.insert(Arc::clone(&s));
        Some(s)
    }

    fn lane(&mut self, addr: IpAddr, source: Source) -> &mut Lane {
        let lanes = self.by_addr.entry(addr.to_canonical()).or_default();
        let at = lanes.partition_point(|l| l.source < Some(source));
        if lanes.get(at).is_none_or(|l| l.source != Some(source)) {
            lanes.insert(
                at,
                Lane {
                    source: Some(source),
                    held: Vec::new(),
                },
            );
        }
        &mut lanes[at]
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Held(mut iv) => {
                if iv.end_ms <= iv.start_ms {
                    return;
                }
                iv.mac = self.intern(iv.mac.take());
                iv.account = self.intern(iv.account.take());
                iv.hostname = self.intern(iv.hostname.take());
                let added = self.lane(iv.addr, iv.source).hold(iv);
                self.intervals = self.intervals.wrapping_add_signed(added);
            }
            Event::Ended {
                addr,
                at_ms,
                mac,
                source,
            } => {
                let Some(lanes) = self.by_addr.get_mut(&addr.to_canonical()) else {
                    return;
                };
                let Some(lane) = lanes.iter_mut().find(|l| l.source == Some(source)) else {
                    return;
                };
                let removed = lane.end(at_ms, mac.as_deref());
                self.intervals -= removed;
            }
        }
    }
}

impl Lane {
    /// Adds or merges a holding; returns the change in the number of holdings.
    fn hold(&mut self, iv: Interval) -> isize {
        let held = &mut self.held;
        let mut i = held.partition_point(|h| h.start <= iv.start_ms);
        let mut removed = 0isize;
        if let Some(p) = i.checked_sub(1).map(|p| &mut held[p]) {
            if p.same_holder(&iv) && p.end >= iv.start_ms {
                // A renewal (or the same row read again): the holding goes on.
                p.end = p.end.max(iv.end_ms);
                if iv.hostname.is_some() {
                    p.hostname = iv.hostname;
                }
                let end = p.end;
                return removed - self.absorb_after(i - 1, end);
            }
            if p.end > iv.start_ms {
                // Someone else holds it from now on.
                p.end = iv.start_ms;
                if p.end <= p.start {
                    held.remove(i - 1);
                    i -= 1;
                    removed += 1;
                }
            }
        }
        let mut end = iv.end_ms;
        if let Some(next) = held.get_mut(i)
            && next.start < end
        {
            if next.same_holder(&iv) {
                next.start = iv.start_ms;
                next.end = next.end.max(end);
                return -removed;
            }
            end = next.start;
        }
        held.insert(
            i,
            Held {
                start: iv.start_ms,
                end,
                mac: iv.mac,
                account: iv.account,
                hostname: iv.hostname,
            },
        );
        1 - removed
    }

    /// After holding `at` grew to `end`, later holdings of the same holder it now covers are
    /// merged into it and a different later holder cuts it; returns holdings removed.
    fn absorb_after(&mut self, at: usize, end: i64) -> isize {
        let mut removed = 0;
        while let Some(next) = self.held.get(at + 1) {
            if next.start >= end {
                break;
            }
            let same = next.mac == self.held[at].mac && next.account == self.held[at].account;
            if same {
                let next_end = next.end;
                self.held[at].end = self.held[at].end.max(next_end);
                self.held.remove(at + 1);
                removed += 1;
            } else {
                self.held[at].end = next.start;
                break;
            }
        }
        removed
    }

    /// Makes the holding of this holder that starts at `start` end at `end` when it ends later
    /// (another node's newer word on it). A holding merged here from an earlier start is a
    /// different row of the shared table and is left alone.
    fn settle_end(&mut self, start: i64, end: i64, mac: Option<&str>, account: Option<&str>) {
        let i = self.held.partition_point(|h| h.start <= start);
        let Some(h) = i.checked_sub(1).map(|i| &mut self.held[i]) else {
            return;
        };
        if h.start == start && h.mac.as_deref() == mac && h.account.as_deref() == account {
            h.end = h.end.min(end);
        }
    }

    /// Ends the holding in force at `at_ms` (only if `mac` matches when given); returns
    /// holdings removed (one that had not begun yet).
    fn end(&mut self, at_ms: i64, mac: Option<&str>) -> usize {
        let i = self.held.partition_point(|h| h.start <= at_ms);
        let Some(h) = i.checked_sub(1).map(|i| &mut self.held[i]) else {
            return 0;
        };
        if h.end <= at_ms || mac.is_some_and(|m| h.mac.as_deref() != Some(m)) {
            return 0;
        }
        h.end = at_ms;
        if h.end <= h.start {
            self.held.remove(i - 1);
            return 1;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interval::OPEN;

    fn addr() -> IpAddr {
        "10.12.3.45".parse().unwrap()
    }

    fn held(start: i64, end: i64, mac: &str, source: Source) -> Event {
        Event::Held(Interval {
            addr: addr(),
            start_ms: start,
            end_ms: end,
            mac: Some(mac.into()),
            account: None,
            hostname: None,
            source,
        })
    }

    fn mac_at(index: &IdentityIndex, t: i64) -> Option<String> {
        index
            .lookup(addr(), t)
            .and_then(|h| h.mac.map(|m| m.to_string()))
    }

    #[test]
    fn the_holder_at_a_moment_is_found() {
        let index = IdentityIndex::default();
        index.apply_all([
            held(100, 200, "aa", Source::Kea),
            held(200, 300, "bb", Source::Kea),
        ]);
        assert_eq!(mac_at(&index, 99), None);
        assert_eq!(mac_at(&index, 100).as_deref(), Some("aa"));
        assert_eq!(mac_at(&index, 199).as_deref(), Some("aa"));
        assert_eq!(mac_at(&index, 200).as_deref(), Some("bb"));
        assert_eq!(mac_at(&index, 300), None);
    }

    #[test]
    fn renewals_extend_and_rereading_adds_nothing() {
        let index = IdentityIndex::default();
        let rows = [
            held(100, 200, "aa", Source::Kea),
            held(150, 250, "aa", Source::Kea),
            held(240, 340, "aa", Source::Kea),
        ];
        index.apply_all(rows.clone());
        index.apply_all(rows);
        assert_eq!(index.stats().intervals, 1);
        let h = index.history(addr());
        assert_eq!((h[0].start_ms, h[0].end_ms), (100, 340));
    }

    #[test]
    fn a_new_holder_ends_the_previous_one_even_when_read_late() {
        let index = IdentityIndex::default();
        index.apply(held(100, OPEN, "aa", Source::Kea));
        index.apply(held(500, 900, "bb", Source::Kea));
        // A late row in between: cut by the later holder, cuts the earlier one.
        index.apply(held(300, 700, "cc", Source::Kea));
        assert_eq!(mac_at(&index, 299).as_deref(), Some("aa"));
        assert_eq!(mac_at(&index, 300).as_deref(), Some("cc"));
        assert_eq!(mac_at(&index, 499).as_deref(), Some("cc"));
        assert_eq!(mac_at(&index, 500).as_deref(), Some("bb"));
        assert_eq!(index.stats().intervals, 3);
    }

    #[test]
    fn an_end_closes_the_holding_of_that_mac_only() {
        let index = IdentityIndex::default();
        index.apply(held(100, OPEN, "aa", Source::Radius));
        index.apply(Event::Ended {
            addr: addr(),
            at_ms: 150,
            mac: Some("other".into()),
            source: Source::Radius,
        });
        assert_eq!(mac_at(&index, 160).as_deref(), Some("aa"));
        index.apply(Event::Ended {
            addr: addr(),
            at_ms: 150,
            mac: None,
            source: Source::Radius,
        });
        assert_eq!(mac_at(&index, 160), None);
        assert_eq!(mac_at(&index, 149).as_deref(), Some("aa"));
    }

    #[test]
    fn sources_combine_dhcp_mac_with_radius_account() {
        let index = IdentityIndex::default();
        index.apply(held(100, 200, "aa", Source::Kea));
        index.apply(Event::Held(Interval {
            addr: addr(),
            start_ms: 120,
            end_ms: OPEN,
            mac: Some("AA-from-nas".into()),
            account: Some("alice".into()),
            hostname: None,
            source: Source::Radius,
        }));
        let h = index.lookup(addr(), 150).expect("held");
        assert_eq!(h.mac.as_deref(), Some("aa"));
        assert_eq!(h.account.as_deref(), Some("alice"));
        assert_eq!(h.source_label(), "kea+radius");
        assert_eq!(index.history(addr()).len(), 2);
    }

    #[test]
    fn holdings_are_found_by_mac_and_account_across_addresses() {
        let index = IdentityIndex::default();
        index.apply(held(100, 200, "aa", Source::Kea));
        index.apply(Event::Held(Interval {
            addr: "10.12.9.9".parse().unwrap(),
            start_ms: 300,
            end_ms: OPEN,
            mac: Some("aa".into()),
            account: Some("LiNa".into()),
            hostname: None,
            source: Source::Radius,
        }));
        let by_mac = index.holdings_of(Some("aa"), None, 10);
        assert_eq!(by_mac.len(), 2);
        assert_eq!(by_mac[0].addr.to_string(), "10.12.9.9", "newest first");
        assert_eq!(index.holdings_of(None, Some("lina"), 10).len(), 1);
        assert_eq!(index.holdings_of(Some("bb"), None, 10).len(), 0);
        assert_eq!(index.holdings_of(Some("aa"), None, 1).len(), 1);
    }

    #[test]
    fn pruning_forgets_old_holdings() {
        let index = IdentityIndex::default();
        index.apply(held(100, 200, "aa", Source::Kea));
        index.apply(held(300, 400, "bb", Source::Kea));
        index.prune(250);
        assert_eq!(index.stats().intervals, 1);
        assert_eq!(index.stats().strings, 1);
        assert_eq!(mac_at(&index, 350).as_deref(), Some("bb"));
    }

    /// Collects what the index hands its outlet.
    #[derive(Default)]
    struct Collect(std::sync::Mutex<Vec<Interval>>);

    impl Outlet for Collect {
        fn changed(&self, holdings: Vec<Interval>) {
            self.0.lock().unwrap().extend(holdings);
        }
    }

    fn extents(c: &Collect) -> Vec<(i64, i64, Option<String>)> {
        let mut v: Vec<_> =
            c.0.lock()
                .unwrap()
                .drain(..)
                .map(|i| (i.start_ms, i.end_ms, i.mac.map(|m| m.to_string())))
                .collect();
        v.sort();
        v
    }

    #[test]
    fn local_evidence_reaches_the_outlet_as_the_holdings_it_changed() {
        let index = IdentityIndex::default();
        index.apply(held(100, 200, "aa", Source::Kea));
        let out = Arc::new(Collect::default());
        assert!(index.share_through(out.clone()).is_ok());
        assert_eq!(
            extents(&out),
            [(100, 200, Some("aa".into()))],
            "what it had"
        );
        // A renewal: the same holding, longer.
        index.apply(held(150, 300, "aa", Source::Kea));
        assert_eq!(extents(&out), [(100, 300, Some("aa".into()))]);
        // A new holder cuts the previous one: both are shared.
        index.apply(held(250, 400, "bb", Source::Kea));
        assert_eq!(
            extents(&out),
            [(100, 250, Some("aa".into())), (250, 400, Some("bb".into()))]
        );
        index.apply(Event::Ended {
            addr: addr(),
            at_ms: 350,
            mac: None,
            source: Source::Kea,
        });
        // The ended holding (and, unchanged, the one before it: sharing it again is a no-op).
        assert_eq!(
            extents(&out),
            [(100, 250, Some("aa".into())), (250, 350, Some("bb".into()))]
        );
    }

    #[test]
    fn shared_holdings_are_applied_with_their_end_and_not_echoed() {
        let index = IdentityIndex::default();
        let out = Arc::new(Collect::default());
        assert!(index.share_through(out.clone()).is_ok());
        let iv = |start, end| Interval {
            addr: addr(),
            start_ms: start,
            end_ms: end,
            mac: Some("aa".into()),
            account: Some("lina".into()),
            hostname: None,
            source: Source::Radius,
        };
        index.apply_shared([iv(100, OPEN)]);
        assert_eq!(
            index
                .lookup(addr(), 5_000)
                .and_then(|h| h.account)
                .as_deref(),
            Some("lina")
        );
        // The other node heard the Stop: the holding ends here too.
        index.apply_shared([iv(100, 400)]);
        assert!(index.lookup(addr(), 400).is_none());
        assert!(index.lookup(addr(), 399).is_some());
        // Applying the same word again changes nothing.
        index.apply_shared([iv(100, 400)]);
        assert_eq!(index.stats().intervals, 1);
        assert!(
            extents(&out).is_empty(),
            "another node's holdings are not shared back"
        );
    }
}
