//! Policy: the compiled, immutable answer to "should this name or address be blocked?".
//!
//! Feeds are compiled into a [`Policy`] snapshot off the request path; the DNS path reads the
//! current snapshot through [`SharedPolicy`] (an `ArcSwap`), so a reload swaps in a whole new
//! policy atomically and no query ever sees half a feed. Order of precedence: allowlist entries
//! (and adblock `@@` exceptions) win over every blocklist; among blocks the most specific rule
//! (longest matching suffix) is reported.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::{FeedKind, Severity};
use crate::feeds::ParsedFeed;

/// How a blocked query is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// REFUSED: the client is told we will not answer.
    Refuse,
    /// NXDOMAIN: the name does not exist.
    Nxdomain,
    /// NOERROR with no records.
    Nodata,
    /// A → sinkhole_ipv4, AAAA → sinkhole_ipv6, any other type NODATA.
    Sinkhole,
}

/// What the policy knows about a feed, carried by every verdict it produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedInfo {
    pub name: Arc<str>,
    pub kind: FeedKind,
    pub action: Action,
    pub category: Arc<str>,
    pub severity: Severity,
}

/// Why a name or address matched: the feed and the rule, as a maintainer would write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
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
    pub blocked_names: usize,
    pub allowed_names: usize,
    pub ip_prefixes: usize,
}

/// One compiled snapshot of every enabled feed. Placeholder implementation (a HashMap walk);
/// the real matcher replaces the internals, not this API.
#[derive(Debug, Default)]
pub struct Policy {
    block: HashMap<String, Verdict>,
    allow: HashMap<String, Verdict>,
    ips: Vec<(IpNet, Verdict)>,
}

/// The live policy, swapped atomically on reload.
pub type SharedPolicy = Arc<ArcSwap<Policy>>;

impl Policy {
    /// A policy that blocks nothing.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Compiles feeds. Later feeds do not override earlier ones for the same name: the first
    /// listed feed wins, so config order is the priority order.
    pub fn build<'a>(feeds: impl IntoIterator<Item = (Arc<FeedInfo>, &'a ParsedFeed)>) -> Self {
        let mut p = Self::default();
        for (info, parsed) in feeds {
            let verdict = |rule: String| Verdict {
                feed: info.clone(),
                rule: rule.into(),
            };
            for d in &parsed.domains {
                let key = key_of(d.name.as_str(), d.exact);
                let target = if info.kind == FeedKind::Allow {
                    &mut p.allow
                } else {
                    &mut p.block
                };
                target
                    .entry(key.clone())
                    .or_insert_with(|| verdict(rule_text(d)));
            }
            for d in &parsed.exceptions {
                p.allow
                    .entry(key_of(d.name.as_str(), d.exact))
                    .or_insert_with(|| verdict(format!("@@{}", rule_text(d))));
            }
            for net in &parsed.ips {
                p.ips.push((*net, verdict(net.to_string())));
            }
        }
        p
    }

    /// Checks a lower-case name without trailing dot against allowlists, then blocklists.
    pub fn check_name(&self, name: &str) -> Decision {
        if let Some(v) = lookup(&self.allow, name) {
            return Decision::Allowed(v.clone());
        }
        match lookup(&self.block, name) {
            Some(v) => Decision::Blocked(v.clone()),
            None => Decision::Pass,
        }
    }

    /// Checks an address from an upstream answer against the IP feeds.
    pub fn check_ip(&self, ip: IpAddr) -> Option<Verdict> {
        self.ips
            .iter()
            .filter(|(n, _)| n.contains(&ip))
            .max_by_key(|(n, _)| n.prefix_len())
            .map(|(_, v)| v.clone())
    }

    pub fn stats(&self) -> PolicyStats {
        PolicyStats {
            blocked_names: self.block.len(),
            allowed_names: self.allow.len(),
            ip_prefixes: self.ips.len(),
        }
    }
}

fn key_of(name: &str, exact: bool) -> String {
    if exact {
        format!("={name}")
    } else {
        name.to_string()
    }
}

fn rule_text(d: &crate::feeds::DomainEntry) -> String {
    key_of(d.name.as_str(), d.exact)
}

fn lookup<'a>(table: &'a HashMap<String, Verdict>, name: &str) -> Option<&'a Verdict> {
    if let Some(v) = table.get(&format!("={name}")) {
        return Some(v);
    }
    let mut rest = name;
    loop {
        if let Some(v) = table.get(rest) {
            return Some(v);
        }
        match rest.find('.') {
            Some(i) => rest = &rest[i + 1..],
            None => return None,
        }
    }
}
