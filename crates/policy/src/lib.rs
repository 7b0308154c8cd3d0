//! Policy: the compiled, immutable answer to "should this name or address be blocked?".
//!
//! Feeds are compiled into a [`Policy`] snapshot off the request path; the DNS path reads the
//! current snapshot through [`SharedPolicy`] (an `ArcSwap`), so a reload swaps in a whole new
//! policy atomically and no query ever sees half a feed. Order of precedence: allowlist entries
//! (and adblock `@@` exceptions) win over every blocklist; among blocks the most specific rule
//! (longest matching suffix) is reported; for the same name, the first feed in config order.
//!
//! The pieces: `domains` (one flat arena of names with a hash index, walked suffix by suffix)
//! and `ips` (longest-prefix match). Why they look the way they do, with measurements, is in
//! docs/POLICY.md.

mod decide;
mod domains;
mod ips;
pub mod quarantine;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use serde::Serialize;

pub use poolguard_model::Action;
use poolguard_model::{FeedKind, ParsedFeed, Severity};
pub use quarantine::Quarantine;

pub use decide::{
    Caught, QTYPE_ANY, QTYPE_AXFR, QTYPE_IXFR, QueryDecision, Seen, Site, decide, inspect,
};
use domains::{
    DomainTable, DomainTableBuilder, EXCEPTION, FEED_MASK, Found, Hit, Listing, MAX_FEEDS,
};
use ips::IpTable;

/// What the policy knows about a feed, carried by every verdict it produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedInfo {
    /// The feed's config name, shown in logs, hits and the API.
    pub name: Arc<str>,
    /// Block, allow or IP feed: decides which table its entries go to.
    pub kind: FeedKind,
    /// How a name it blocks is answered (the feed's override or the default action).
    pub action: Action,
    /// What the feed is about (`mining`, ...), carried into hit records for reporting.
    pub category: Arc<str>,
    /// How urgent a hit is, so incident handling can sort by it.
    pub severity: Severity,
}

/// Why a name or address matched: the feed and the rule, as a maintainer would write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The feed that decided (shared, so a verdict costs a refcount, not a copy).
    pub feed: Arc<FeedInfo>,
    /// The matching rule: `pool.example` (with subdomains), `=host` (exact) or `10.0.0.0/8`.
    pub rule: Arc<str>,
}

impl Verdict {
    /// The action the feed asks for.
    pub fn action(&self) -> Action {
        self.feed.action
    }
}

/// The outcome of checking a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not listed anywhere.
    Pass,
    /// Matched an allowlist (which may have overridden a block).
    Allowed(Verdict),
    /// Listed by a blocklist.
    Blocked(Verdict),
}

/// Counts, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PolicyStats {
    /// Distinct names with a block rule (duplicates across feeds counted once).
    pub blocked_names: usize,
    /// Distinct names with an allow rule or `@@` exception.
    pub allowed_names: usize,
    /// Distinct IP prefixes.
    pub ip_prefixes: usize,
}

/// A name match borrowed from the snapshot, so the hot path can act on it (and write the rule
/// into a log line or an EDE text) without allocating; [`NameMatch::verdict`] makes the owned
/// form when one is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameMatch<'p> {
    /// True for an allowlist (or `@@` exception) match, false for a block.
    pub allowed: bool,
    /// The feed whose rule matched.
    pub feed: &'p Arc<FeedInfo>,
    /// The listed name (without `=` or `@@`).
    pub name: &'p str,
    /// The rule matches only `name` itself (`=host`), not its subdomains.
    pub exact: bool,
    /// The rule is an adblock `@@` exception inside a block feed.
    pub exception: bool,
}

impl NameMatch<'_> {
    /// The rule text as the maintainer wrote it: `pool.example`, `=host`, `@@pool.example`.
    /// One allocation (the `Arc<str>`), made only when a verdict is actually wanted.
    pub fn rule(&self) -> Arc<str> {
        if !self.exception && !self.exact {
            return Arc::from(self.name);
        }
        // `@@=` + the longest name (253) fits on the stack: still one allocation.
        let mut buf = [0u8; 256];
        let prefix: &[u8] = match (self.exception, self.exact) {
            (true, true) => b"@@=",
            (true, false) => b"@@",
            _ => b"=",
        };
        let name = self.name.as_bytes();
        let n = (prefix.len() + name.len()).min(buf.len());
        buf[..prefix.len()].copy_from_slice(prefix);
        buf[prefix.len()..n].copy_from_slice(&name[..n - prefix.len()]);
        Arc::from(std::str::from_utf8(&buf[..n]).unwrap_or(self.name))
    }

    /// The owned verdict (clones the feed `Arc`, renders the rule).
    pub fn verdict(&self) -> Verdict {
        Verdict {
            feed: self.feed.clone(),
            rule: self.rule(),
        }
    }

    /// The public decision for this match.
    pub fn decision(&self) -> Decision {
        if self.allowed {
            Decision::Allowed(self.verdict())
        } else {
            Decision::Blocked(self.verdict())
        }
    }
}

impl fmt::Display for NameMatch<'_> {
    /// Writes the rule text (same as [`NameMatch::rule`]) without allocating.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exception {
            f.write_str("@@")?;
        }
        if self.exact {
            f.write_str("=")?;
        }
        f.write_str(self.name)
    }
}

/// One name the publisher should list: blocked, not allowlisted, not already covered by a
/// listed parent. Borrowed from the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockedName<'p> {
    /// The listed name, canonical (lower case, punycode, no trailing dot).
    pub name: &'p str,
    /// Only the name itself is blocked (`=host`), not its subdomains.
    pub exact: bool,
    /// The feed whose rule this is (the first in config order that listed it).
    pub feed: &'p Arc<FeedInfo>,
}

/// One listed IP prefix, for the publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockedNet<'p> {
    /// The prefix as the feed wrote it.
    pub net: IpNet,
    /// The first feed (config order) that listed it.
    pub feed: &'p Arc<FeedInfo>,
}

/// One compiled snapshot of every enabled feed: immutable, `Send + Sync`, swapped whole.
#[derive(Default)]
pub struct Policy {
    feeds: Vec<Arc<FeedInfo>>,
    domains: DomainTable,
    ips: IpTable,
    generation: u64,
}

/// Source of [`Policy::generation`]: 0 is the empty policy, every compiled one gets the next.
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Where a feed's rules come from when a policy is compiled.
#[derive(Debug, Clone, Copy)]
pub enum FeedSource<'a> {
    /// A fresh parse of the feed's file.
    Parsed(&'a ParsedFeed),
    /// The rules of an earlier compile (the feed's file did not change).
    Compiled(&'a FeedRules),
}

/// One domain rule as a feed lists it, borrowed from a parse or a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule<'a> {
    /// The listed name, canonical.
    pub name: &'a str,
    /// Only the name itself (`=host`), not its subdomains.
    pub exact: bool,
    /// An adblock `@@` exception inside a block feed (acts as an allow entry).
    pub exception: bool,
}

impl<'a> FeedSource<'a> {
    /// Every domain rule, exceptions last. Boxed: one virtual call per name is noise next to
    /// the hash insert it feeds.
    fn names(self) -> Box<dyn Iterator<Item = Rule<'a>> + 'a> {
        match self {
            Self::Parsed(p) => {
                let rule = |exception: bool| {
                    move |d: &'a poolguard_model::DomainEntry| Rule {
                        name: d.name.as_str(),
                        exact: d.exact,
                        exception,
                    }
                };
                Box::new(
                    p.domains
                        .iter()
                        .map(rule(false))
                        .chain(p.exceptions.iter().map(rule(true))),
                )
            }
            Self::Compiled(r) => Box::new(r.domains().chain(r.exceptions())),
        }
    }

    fn ips(self) -> &'a [IpNet] {
        match self {
            Self::Parsed(p) => &p.ips,
            Self::Compiled(r) => &r.ips,
        }
    }
}

/// A feed's record offsets, by [`group`].
type Groups = [Box<[u32]>; 4];

/// A [`FeedRules`] before its snapshot is wrapped in an `Arc`.
type Parts = (Groups, Box<[IpNet]>);

/// Index into [`FeedRules`]' groups: subtree, exact, exception subtree, exception exact.
fn group(exception: bool, exact: bool) -> usize {
    usize::from(exception) * 2 + usize::from(exact)
}

/// One feed's rules as compiled into a snapshot: what the loader keeps of a feed between
/// reloads (to recompile it when another feed changes, and for publishing).
///
/// Why not the [`ParsedFeed`]: at a million names that is ~60 MiB of `DomainName` heap strings
/// next to the 44 MiB snapshot, which already holds every name once in its arena. Here a name
/// is the 4-byte offset of its record in the snapshot it belongs to (kept alive by the `Arc`),
/// deduplicated per feed, so a feed costs 4 bytes per distinct name plus its addresses.
pub struct FeedRules {
    policy: Arc<Policy>,
    /// Record offsets in `policy`'s name arena, in build order, per [`group`].
    groups: Groups,
    ips: Box<[IpNet]>,
}

impl fmt::Debug for FeedRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeedRules")
            .field("names", &self.groups.iter().map(|g| g.len()).sum::<usize>())
            .field("ips", &self.ips.len())
            .finish()
    }
}

impl FeedRules {
    fn group(&self, exception: bool, exact: bool) -> impl Iterator<Item = Rule<'_>> + '_ {
        self.groups[group(exception, exact)]
            .iter()
            .map(move |&at| Rule {
                name: self.policy.domains.name(at),
                exact,
                exception,
            })
    }

    /// The names the feed lists (blocks, or allows in an allow feed), each once: subtree
    /// rules first, then exact ones.
    pub fn domains(&self) -> impl Iterator<Item = Rule<'_>> + '_ {
        self.group(false, false).chain(self.group(false, true))
    }

    /// Its `@@` exceptions, each once.
    pub fn exceptions(&self) -> impl Iterator<Item = Rule<'_>> + '_ {
        self.group(true, false).chain(self.group(true, true))
    }

    /// Its addresses and prefixes, as listed.
    pub fn ips(&self) -> &[IpNet] {
        &self.ips
    }
}

/// The live policy, swapped atomically on reload.
pub type SharedPolicy = Arc<ArcSwap<Policy>>;

impl fmt::Debug for Policy {
    /// A summary: a million names are not debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("feeds", &self.feeds.len())
            .field("stats", &self.stats())
            .field("heap_bytes", &self.heap_bytes())
            .finish()
    }
}

impl Policy {
    /// A policy that blocks nothing.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Compiles feeds. Later feeds do not override earlier ones for the same name: the first
    /// listed feed wins, so config order is the priority order. Duplicates (within and across
    /// feeds) are stored once. Feeds beyond the 32,767th are ignored with a warning.
    pub fn build<'a>(feeds: impl IntoIterator<Item = (Arc<FeedInfo>, &'a ParsedFeed)>) -> Self {
        let sources = feeds
            .into_iter()
            .map(|(info, parsed)| (info, FeedSource::Parsed(parsed)));
        Self::build_with_offsets(sources).0
    }

    /// [`Policy::build`] from fresh parses or from the [`FeedRules`] of an earlier compile,
    /// returning each compiled feed's rules as they are held in the new snapshot. The loader
    /// keeps those instead of the parses, so a reload of one feed recompiles the others
    /// without re-reading their files and without a second copy of every name.
    pub fn compile<'a>(
        feeds: impl IntoIterator<Item = (Arc<FeedInfo>, FeedSource<'a>)>,
    ) -> (Arc<Self>, Vec<Arc<FeedRules>>) {
        let (policy, offsets) = Self::build_with_offsets(feeds);
        let policy = Arc::new(policy);
        let rules = offsets
            .into_iter()
            .map(|(groups, ips)| {
                Arc::new(FeedRules {
                    policy: policy.clone(),
                    groups,
                    ips,
                })
            })
            .collect();
        (policy, rules)
    }

    /// The policy, and per feed the record offsets of its names (see [`FeedRules`]) and its
    /// addresses.
    fn build_with_offsets<'a>(
        feeds: impl IntoIterator<Item = (Arc<FeedInfo>, FeedSource<'a>)>,
    ) -> (Self, Vec<Parts>) {
        let mut feeds: Vec<(Arc<FeedInfo>, FeedSource<'a>)> = feeds.into_iter().collect();
        if feeds.len() > MAX_FEEDS {
            tracing::warn!(
                feeds = feeds.len(),
                max = MAX_FEEDS,
                "too many feeds for one policy; the last ones are ignored"
            );
            feeds.truncate(MAX_FEEDS);
        }
        // Size everything once: an upper bound (duplicates are trimmed in `finish`).
        let (names, bytes) = feeds
            .iter()
            .flat_map(|(_, f)| f.names())
            .fold((0, 0), |(n, b), r| (n + 1, b + r.name.len()));
        let mut table = DomainTableBuilder::with_capacity(names, bytes);
        let mut ips = IpTable::default();
        let mut full = false;
        let mut offsets = Vec::with_capacity(feeds.len());
        for (i, (info, source)) in feeds.iter().enumerate() {
            let feed = i as u16; // < MAX_FEEDS, checked above
            let listing = if info.kind == FeedKind::Allow {
                Listing::Allow
            } else {
                Listing::Block
            };
            let mut groups: [Vec<u32>; 4] = Default::default();
            for r in source.names() {
                let l = if r.exception {
                    Listing::Exception
                } else {
                    listing
                };
                match table.add(r.name, l, r.exact, feed) {
                    Some(at) => groups[group(r.exception, r.exact)].push(at),
                    None => full = true,
                }
            }
            // Offsets grow in build order, so sorting keeps each name's first listing in
            // place and drops the file's duplicates.
            let groups = groups.map(|mut g| {
                g.sort_unstable();
                g.dedup();
                g.into_boxed_slice()
            });
            let nets: Box<[IpNet]> = source.ips().into();
            for net in &nets {
                ips.add(*net, feed);
            }
            offsets.push((groups, nets));
        }
        if full {
            tracing::warn!("policy name arena is full (4 GiB); some names were not compiled");
        }
        let policy = Self {
            feeds: feeds.into_iter().map(|(info, _)| info).collect(),
            domains: table.finish(),
            ips,
            generation: GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        (policy, offsets)
    }

    /// Unique per compiled policy (unlike its address, which a later policy may reuse): what
    /// was checked against one snapshot, such as a cached answer, is known stale after a swap.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Checks a lower-case name without trailing dot against allowlists, then blocklists.
    /// Upper case or one trailing dot are tolerated (normalised on the stack).
    pub fn check_name(&self, name: &str) -> Decision {
        self.check_name_bytes(name.as_bytes())
    }

    /// [`Policy::check_name`] for a name straight out of a packet buffer.
    pub fn check_name_bytes(&self, name: &[u8]) -> Decision {
        match self.match_name(name) {
            Some(m) => m.decision(),
            None => Decision::Pass,
        }
    }

    /// The match behind [`Policy::check_name`], borrowed and allocation-free: `None` means pass.
    #[inline]
    pub fn match_name(&self, name: &[u8]) -> Option<NameMatch<'_>> {
        let mut buf = [0u8; 255];
        let (name, dots) = normalise(name, &mut buf)?;
        let (allowed, hit) = match self.domains.find(name, dots)? {
            Found::Allowed(h) => (true, h),
            Found::Blocked(h) => (false, h),
        };
        self.to_match(allowed, hit)
    }

    fn to_match(&self, allowed: bool, hit: Hit) -> Option<NameMatch<'_>> {
        Some(NameMatch {
            allowed,
            feed: self.feeds.get((hit.slot & FEED_MASK) as usize)?,
            name: self.domains.name(hit.entry),
            exact: hit.exact,
            exception: hit.slot & EXCEPTION != 0,
        })
    }

    /// Checks an address from an upstream answer against the IP feeds (longest prefix wins;
    /// IPv4-mapped IPv6 addresses are checked as IPv4).
    pub fn check_ip(&self, ip: IpAddr) -> Option<Verdict> {
        let r = self.ips.find(ip)?;
        Some(Verdict {
            feed: self.feeds.get(r.feed as usize)?.clone(),
            rule: r.rule.clone(),
        })
    }

    /// Counts of distinct names and prefixes, for logs and metrics.
    pub fn stats(&self) -> PolicyStats {
        PolicyStats {
            blocked_names: self.domains.blocked(),
            allowed_names: self.domains.allowed(),
            ip_prefixes: self.ips.len(),
        }
    }

    /// Approximate bytes held by the name table, so operators can see what a feed set costs.
    pub fn heap_bytes(&self) -> usize {
        self.domains.heap_bytes()
    }

    /// The feeds compiled into this snapshot, in config (priority) order.
    pub fn feeds(&self) -> &[Arc<FeedInfo>] {
        &self.feeds
    }

    /// The merged blocklist for publishing (RPZ, hosts files): each blocked name once, minus
    /// names an allowlist covers, minus names a listed parent already covers. Build order
    /// (config order, then file order). A parent blocked with subdomains whose own name is
    /// allowed exactly (`=pool.example` allowed) is left out, so its subdomains are listed
    /// only if they are entries themselves: allowlists fail open.
    pub fn blocked_names(&self) -> impl Iterator<Item = BlockedName<'_>> + '_ {
        self.domains.publishable().filter_map(move |hit| {
            Some(BlockedName {
                name: self.domains.name(hit.entry),
                exact: hit.exact,
                feed: self.feeds.get((hit.slot & FEED_MASK) as usize)?,
            })
        })
    }

    /// Every blocked name not allowed, names below a listed parent included, each once with
    /// the first feed (config order) that lists it: what the pool address set resolves.
    pub fn listed_names(&self) -> impl Iterator<Item = BlockedName<'_>> + '_ {
        self.domains.listed().filter_map(move |hit| {
            Some(BlockedName {
                name: self.domains.name(hit.entry),
                exact: hit.exact,
                feed: self.feeds.get((hit.slot & FEED_MASK) as usize)?,
            })
        })
    }

    /// Every listed IP prefix once (first feed wins), IPv4 first, in address order.
    pub fn ip_prefixes(&self) -> impl Iterator<Item = BlockedNet<'_>> + '_ {
        self.ips.iter().filter_map(move |r| {
            Some(BlockedNet {
                net: r.net,
                feed: self.feeds.get(r.feed as usize)?,
            })
        })
    }
}

/// The name as the table stores it (lower case, no trailing dot) and its number of dots.
/// Borrowed as-is in the common case; otherwise lower-cased into `buf`. `None` for names no
/// table can hold (empty, root, longer than 253 bytes).
#[inline]
fn normalise<'b>(name: &'b [u8], buf: &'b mut [u8; 255]) -> Option<(&'b [u8], u32)> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    let (upper, dots) = domains::scan_name(name);
    if !upper {
        return Some((name, dots));
    }
    let out = &mut buf[..name.len()];
    out.copy_from_slice(name);
    out.make_ascii_lowercase();
    Some((out, dots))
}
