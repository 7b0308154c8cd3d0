//! Publishing: the merged policy as files other systems load (firewalls, other resolvers).
//!
//! Four formats from the feeds compiled into the policy in force:
//! - `rpz`: a response-policy zone (RFC-draft RPZ as BIND, Unbound, PowerDNS load it): SOA, NS,
//!   `name CNAME .` and, for subtree entries, `*.name CNAME .`; allowlisted names under a
//!   published subtree become `name CNAME rpz-passthru.` (exact owner names beat wildcards in
//!   RPZ), so the zone answers exactly as poolguard does. Owner names are relative: the zone
//!   loads under whatever name the consumer configures.
//! - `domains`: one name per line, meaning the name and its subdomains; exact-only entries are
//!   written `=name` (poolguard's plain syntax).
//! - `hosts`: `0.0.0.0 name`; hosts files cannot express subtrees or exceptions.
//! - `ips`: one address or prefix per line.
//!
//! Feeds whose action is `log` are not published as names: poolguard answers them.
//! Names are merged across feeds and deduplicated; a name below a published subtree is left
//! out (the parent covers it); a name an allowlist covers is left out. A subtree whose apex is
//! allowed is left out whole (allowlists fail open). Output is sorted, so two renders of the
//! same policy are byte-identical and the ETag (SHA-256 of the body) is stable.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::loader::Compiled;
use poolguard_model::FeedKind;
use poolguard_model::domain::DomainName;

/// A publishable format (`GET /api/v1/publish/{format}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublishFormat {
    /// Response-policy zone.
    Rpz,
    /// `0.0.0.0 name` lines.
    Hosts,
    /// One name per line.
    Domains,
    /// One address or prefix per line.
    Ips,
}

impl PublishFormat {
    /// The format for a URL segment (`rpz`, `hosts`, `domains`, `ips`).
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "rpz" => Some(Self::Rpz),
            "hosts" => Some(Self::Hosts),
            "domains" => Some(Self::Domains),
            "ips" => Some(Self::Ips),
            _ => None,
        }
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Rpz => "text/dns; charset=utf-8",
            _ => "text/plain; charset=utf-8",
        }
    }
}

/// One rendered list.
#[derive(Debug)]
pub struct Published {
    /// The compile it was rendered from ([`Compiled::generation`]).
    pub generation: u64,
    /// The file.
    pub body: bytes::Bytes,
    /// Quoted strong ETag: the SHA-256 of the body.
    pub etag: String,
}

/// The merged view of the compiled feeds.
struct Merged<'a> {
    /// Published block entries: (name, exact), sorted.
    blocked: Vec<(&'a str, bool)>,
    /// Allow entries under a published subtree: (name, exact), sorted.
    passthru: Vec<(&'a str, bool)>,
}

/// Parents of `name`, nearest first (`a.b.c` → `b.c`, `c`).
fn parents(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices('.').map(move |(i, _)| &name[i + 1..])
}

fn merge(c: &Compiled) -> Merged<'_> {
    let mut block_sub: HashSet<&str> = HashSet::new();
    let mut block_exact: HashSet<&str> = HashSet::new();
    let mut allow_sub: HashSet<&str> = HashSet::new();
    let mut allow_exact: HashSet<&str> = HashSet::new();
    for f in &c.feeds {
        let allow = f.info.kind == FeedKind::Allow;
        // A `log` feed (the `bypass` category) is watched, not blocked: a consumer loading
        // the list would block what poolguard answers.
        if !allow && !f.info.action.blocks() {
            continue;
        }
        for d in f.rules.domains() {
            let set = match (allow, d.exact) {
                (true, true) => &mut allow_exact,
                (true, false) => &mut allow_sub,
                (false, true) => &mut block_exact,
                (false, false) => &mut block_sub,
            };
            set.insert(d.name);
        }
        for d in f.rules.exceptions() {
            if d.exact {
                allow_exact.insert(d.name);
            } else {
                allow_sub.insert(d.name);
            }
        }
    }
    let allowed = |n: &str| {
        allow_exact.contains(n)
            || allow_sub.contains(n)
            || parents(n).any(|p| allow_sub.contains(p))
    };
    let under_block = |n: &str| parents(n).any(|p| block_sub.contains(p));
    let mut blocked: Vec<(&str, bool)> = block_sub
        .iter()
        .filter(|n| !allowed(n) && !under_block(n))
        .map(|n| (*n, false))
        .chain(
            block_exact
                .iter()
                .filter(|n| !block_sub.contains(*n) && !allowed(n) && !under_block(n))
                .map(|n| (*n, true)),
        )
        .collect();
    blocked.sort_unstable();
    let published_sub: HashSet<&str> = blocked
        .iter()
        .filter(|(_, exact)| !exact)
        .map(|(n, _)| *n)
        .collect();
    // Allow entries that carve a hole into a published subtree (and are not themselves
    // inside an allowed subtree already carved).
    let mut passthru: Vec<(&str, bool)> = allow_sub
        .iter()
        .map(|n| (*n, false))
        .chain(
            allow_exact
                .iter()
                .filter(|n| !allow_sub.contains(*n))
                .map(|n| (*n, true)),
        )
        .filter(|(n, _)| {
            parents(n).any(|p| published_sub.contains(p))
                && !parents(n).any(|p| allow_sub.contains(p))
        })
        .collect();
    passthru.sort_unstable();
    Merged { blocked, passthru }
}

/// Renders the compiled feeds in `format`.
pub fn render(c: &Compiled, format: PublishFormat) -> Published {
    let stamp = c
        .compiled_at
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| "never".into());
    let mut out = String::new();
    match format {
        PublishFormat::Ips => {
            let mut nets: Vec<ipnet::IpNet> = c
                .feeds
                .iter()
                .filter(|f| f.info.kind != FeedKind::Allow)
                .flat_map(|f| f.rules.ips().iter().copied())
                .collect();
            nets.sort_unstable();
            nets.dedup();
            let _ = writeln!(
                out,
                "# poolguard blocked addresses and prefixes ({} entries, policy of {stamp})",
                nets.len()
            );
            for n in nets {
                let _ = writeln!(out, "{n}");
            }
        }
        PublishFormat::Domains | PublishFormat::Hosts => {
            let m = merge(c);
            let _ = writeln!(
                out,
                "# poolguard blocked names ({} entries, policy of {stamp})",
                m.blocked.len()
            );
            for (n, exact) in &m.blocked {
                let _ = match (format, exact) {
                    (PublishFormat::Hosts, _) => writeln!(out, "0.0.0.0 {n}"),
                    (_, true) => writeln!(out, "={n}"),
                    (_, false) => writeln!(out, "{n}"),
                };
            }
        }
        PublishFormat::Rpz => {
            let m = merge(c);
            // Serial: seconds since 2020 fit RFC 1982 arithmetic for a century and grow across
            // restarts, so secondaries pulling the zone see every change.
            let serial = c
                .compiled_at
                .map(|t| (t.timestamp() - 1_577_836_800).max(1) as u32)
                .unwrap_or(1);
            let _ = writeln!(
                out,
                "; poolguard response policy zone ({} names, {} passthru, policy of {stamp})\n\
                 $TTL 300\n\
                 @ IN SOA localhost. hostmaster.localhost. {serial} 3600 600 604800 300\n\
                 @ IN NS localhost.",
                m.blocked.len(),
                m.passthru.len()
            );
            for (n, exact) in &m.blocked {
                let _ = writeln!(out, "{n} CNAME .");
                if !exact {
                    let _ = writeln!(out, "*.{n} CNAME .");
                }
            }
            for (n, exact) in &m.passthru {
                let _ = writeln!(out, "{n} CNAME rpz-passthru.");
                if !exact {
                    let _ = writeln!(out, "*.{n} CNAME rpz-passthru.");
                }
            }
        }
    }
    let etag = format!("\"{}\"", crate::versions::sha256_hex(out.as_bytes()));
    Published {
        generation: c.generation,
        body: bytes::Bytes::from(out),
        etag,
    }
}

/// The prefixes the IP feeds of `category` list, each once with the first feed (compile order)
/// that lists it, in address order: the feed half of `GET /api/v1/publish/ips?category=`.
pub fn category_nets<'c>(c: &'c Compiled, category: &str) -> Vec<(ipnet::IpNet, &'c str)> {
    let mut nets: Vec<(ipnet::IpNet, &str)> = c
        .feeds
        .iter()
        .filter(|f| f.info.kind != FeedKind::Allow && &*f.info.category == category)
        .flat_map(|f| f.rules.ips().iter().map(|n| (*n, &*f.info.name)))
        .collect();
    // Stable: for a prefix listed twice, the first feed stays first and is kept.
    nets.sort_by_key(|(n, _)| *n);
    nets.dedup_by_key(|(n, _)| *n);
    nets
}

/// `ips` for one category: its IP feeds' prefixes merged with `resolved` (the pool address
/// set's addresses of that category), one per line, sorted; an address inside a listed prefix
/// is left out (the prefix covers it). The same plain form as [`render`]'s `ips`, so a
/// firewall loads either.
pub fn render_category_ips(c: &Compiled, category: &str, resolved: &[IpAddr]) -> Published {
    let mut nets: Vec<ipnet::IpNet> = category_nets(c, category)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let covered = |a: &IpAddr| nets.iter().any(|n| n.contains(a));
    let extra: Vec<ipnet::IpNet> = resolved
        .iter()
        .filter(|a| !covered(a))
        .map(|a| ipnet::IpNet::from(*a))
        .collect();
    nets.extend(extra);
    nets.sort_unstable();
    nets.dedup();
    let stamp = c
        .compiled_at
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| "never".into());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# poolguard {category} addresses and prefixes ({} entries: IP feeds of policy of {stamp}, \
         and the pool address set)",
        nets.len()
    );
    for n in nets {
        let _ = writeln!(out, "{n}");
    }
    let etag = format!("\"{}\"", crate::versions::sha256_hex(out.as_bytes()));
    Published {
        generation: c.generation,
        body: bytes::Bytes::from(out),
        etag,
    }
}

/// For `check`: the block rule an allow entry overrides for `name` (`feed: rule`), if any.
/// A scan of the compiled feeds: fine for a diagnostic request, never on the DNS path.
pub fn blocking_rule(c: &Compiled, name: &DomainName) -> Option<String> {
    let n = name.as_str();
    c.feeds
        .iter()
        .filter(|f| f.info.kind != FeedKind::Allow)
        .find_map(|f| {
            f.rules
                .domains()
                .find(|d| d.name == n || (!d.exact && parents(n).any(|p| p == d.name)))
                .map(|d| {
                    let rule = if d.exact {
                        format!("={}", d.name)
                    } else {
                        d.name.to_string()
                    };
                    format!("{}: {rule}", f.info.name)
                })
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::*;
    use crate::loader::CompiledFeed;
    use poolguard_config::{FeedFormat, Severity};
    use poolguard_model::ParsedFeed;
    use poolguard_policy::{Action, FeedInfo, FeedSource, Policy};

    fn compiled(feeds: &[(&str, FeedKind, &str)]) -> (Compiled, Arc<Policy>) {
        let parsed: Vec<(Arc<FeedInfo>, ParsedFeed)> = feeds
            .iter()
            .map(|(name, kind, text)| {
                let info = Arc::new(FeedInfo {
                    name: (*name).into(),
                    kind: *kind,
                    action: Action::Sinkhole,
                    category: "mining".into(),
                    severity: Severity::Medium,
                });
                (info, crate::parse(text, FeedFormat::Auto, *kind))
            })
            .collect();
        let (policy, rules) = Policy::compile(
            parsed
                .iter()
                .map(|(info, p)| (info.clone(), FeedSource::Parsed(p))),
        );
        let feeds = parsed
            .into_iter()
            .zip(rules)
            .map(|((info, _), rules)| CompiledFeed {
                info,
                rules,
                sha256: String::new(),
            })
            .collect();
        let compiled = Compiled {
            generation: 1,
            compiled_at: None,
            feeds,
        };
        (compiled, policy)
    }

    /// The merged list agrees with the matcher's own publisher iterator.
    #[test]
    fn merge_agrees_with_the_policy() {
        let (c, policy) = compiled(&[
            (
                "allow",
                FeedKind::Allow,
                "ok.pool.example\n=apex.example\nfree.example\n",
            ),
            (
                "a",
                FeedKind::Domains,
                "pool.example\nx.pool.example\n=exact.example\napex.example\nsub.free.example\n",
            ),
            (
                "b",
                FeedKind::Domains,
                "||pool.example^\n||deep.a.b.example^\n@@||b.example^\n=exact.example\nb.example\n",
            ),
        ]);
        let ours: BTreeSet<(String, bool)> = merge(&c)
            .blocked
            .iter()
            .map(|(n, e)| (n.to_string(), *e))
            .collect();
        let theirs: BTreeSet<(String, bool)> = policy
            .blocked_names()
            .map(|b| (b.name.to_string(), b.exact))
            .collect();
        assert_eq!(ours, theirs);
        assert!(ours.contains(&("pool.example".to_string(), false)));
        assert!(ours.contains(&("exact.example".to_string(), true)));
        assert!(
            !ours
                .iter()
                .any(|(n, _)| n == "apex.example" || n == "sub.free.example")
        );
        let holes: Vec<(&str, bool)> = merge(&c).passthru;
        assert_eq!(holes, [("ok.pool.example", false)]);
    }
}
