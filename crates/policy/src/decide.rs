//! The one pre-resolution decision: what the resolver does with a question before (or instead
//! of) asking anyone else. The DNS paths (`dns/handler.rs`, `dns/fast/`) and `GET /api/v1/check`
//! all call [`decide`], so `check` answers what DNS does, in the same order:
//!
//! 1. a client outside `[dns] allow` is refused (no open resolver);
//! 2. a quarantined client gets the walled garden, except for `[enforcement] reachable` names
//!    (a listed name is still reported, so the hit is recorded);
//! 3. the policy: a block is answered at once, before local zones and conditional forwarding,
//!    so no internal zone can be used to reach a pool; an allow rule (or `@@` exception) wins
//!    over every block and exempts the answer from inspection; a rule of a feed whose action
//!    is `log` does not block: the name goes on as if unlisted, carrying the rule (`logged`)
//!    so the query is recorded as a hit, and its answer is still inspected;
//! 4. ANY gets the RFC 8482 answer and is never forwarded;
//! 5. names inside `[[zones]]` are answered locally, zone transfers of anything else refused;
//! 6. everything else is forwarded: to the most specific `[[upstream.conditional]]` domain's
//!    servers, else to the default servers.
//!
//! What happens after forwarding (answer inspection) is [`inspect`]'s job.
//!
//! This module knows nothing of `dns/` or `api/`: what it needs from the site (access list,
//! quarantine, zones, conditional domains) comes through the [`Site`] trait, and the result
//! borrows from the policy snapshot and the site, so the fast path pays no allocation for it.

use std::net::IpAddr;

use super::{NameMatch, Policy, Verdict};

/// `ANY` (RFC 1035 §3.2.3).
pub const QTYPE_ANY: u16 = 255;
/// `AXFR` (RFC 5936).
pub const QTYPE_AXFR: u16 = 252;
/// `IXFR` (RFC 1995).
pub const QTYPE_IXFR: u16 = 251;

/// What the resolver knows about its site besides the feeds. Implemented by the DNS server's
/// shared state; every method is on the hot path, so none may block or allocate.
pub trait Site {
    /// Whether `client` may query at all (`[dns] allow`).
    fn allows(&self, client: IpAddr) -> bool;
    /// Whether `client` is quarantined and `qname` is not one it may still reach.
    fn walled(&self, client: IpAddr, qname: &str) -> bool;
    /// Whether `qname` is at or below one of the `[[zones]]`.
    fn local_zone(&self, qname: &str) -> bool;
    /// The most specific `[[upstream.conditional]]` domain `qname` is at or below.
    fn conditional(&self, qname: &str) -> Option<&str>;
}

/// What happens to a question before any upstream is asked. Borrowed: [`NameMatch::verdict`]
/// makes the owned form where one is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryDecision<'a> {
    /// The client is outside `[dns] allow`: REFUSED.
    Refused,
    /// The client is quarantined: the walled garden answers. `listed` is the name's block
    /// rule, if any (the query is still a hit).
    Quarantined {
        /// The block rule the name matches, if any.
        listed: Option<NameMatch<'a>>,
    },
    /// A block rule matched (never an allow rule): answered by the feed's action.
    Blocked(NameMatch<'a>),
    /// `ANY`: one synthetic HINFO (RFC 8482), never forwarded.
    MinimalAny,
    /// The name is in a local zone: answered authoritatively, never forwarded.
    LocalZone {
        /// The allow rule the name matched, if any.
        allowlisted: Option<NameMatch<'a>>,
        /// The `log` rule the name matched, if any (recorded as a hit, answered normally).
        logged: Option<NameMatch<'a>>,
    },
    /// A zone transfer for a name outside our zones: REFUSED (a forwarder does not proxy them).
    TransferRefused,
    /// Forwarded to the servers of a `[[upstream.conditional]]` domain.
    Conditional {
        /// The conditional domain whose servers answer.
        domain: &'a str,
        /// The allow rule the name matched (then the answer is not inspected).
        allowlisted: Option<NameMatch<'a>>,
        /// The `log` rule the name matched, if any (recorded as a hit, answered normally).
        logged: Option<NameMatch<'a>>,
    },
    /// Forwarded to the default upstream servers.
    Forward {
        /// The allow rule the name matched (then the answer is not inspected).
        allowlisted: Option<NameMatch<'a>>,
        /// The `log` rule the name matched, if any (recorded as a hit, answered normally).
        logged: Option<NameMatch<'a>>,
    },
}

impl QueryDecision<'_> {
    /// The allow rule that lets the name through, for the forwarding and local-zone cases.
    pub fn allowlisted(&self) -> Option<NameMatch<'_>> {
        match self {
            Self::LocalZone { allowlisted, .. }
            | Self::Conditional { allowlisted, .. }
            | Self::Forward { allowlisted, .. } => *allowlisted,
            _ => None,
        }
    }

    /// The `log` rule the name matched, for the forwarding and local-zone cases.
    pub fn logged(&self) -> Option<NameMatch<'_>> {
        match self {
            Self::LocalZone { logged, .. }
            | Self::Conditional { logged, .. }
            | Self::Forward { logged, .. } => *logged,
            _ => None,
        }
    }
}

/// Decides what to do with `qname` (lower case, no trailing dot) of type `qtype` from
/// `client`, in the order of the module docs. No allocation, no lock.
pub fn decide<'a, S: Site + ?Sized>(
    site: &'a S,
    policy: &'a Policy,
    client: IpAddr,
    qname: &str,
    qtype: u16,
) -> QueryDecision<'a> {
    if !site.allows(client) {
        return QueryDecision::Refused;
    }
    let found = policy.match_name(qname.as_bytes());
    if site.walled(client, qname) {
        return QueryDecision::Quarantined {
            listed: found.filter(|m| !m.allowed && m.feed.action.blocks()),
        };
    }
    let (allowlisted, logged) = match found {
        Some(m) if m.allowed => (Some(m), None),
        Some(m) if m.feed.action.blocks() => return QueryDecision::Blocked(m),
        Some(m) => (None, Some(m)),
        None => (None, None),
    };
    if qtype == QTYPE_ANY {
        return QueryDecision::MinimalAny;
    }
    if site.local_zone(qname) {
        return QueryDecision::LocalZone {
            allowlisted,
            logged,
        };
    }
    if qtype == QTYPE_AXFR || qtype == QTYPE_IXFR {
        return QueryDecision::TransferRefused;
    }
    match site.conditional(qname) {
        Some(domain) => QueryDecision::Conditional {
            domain,
            allowlisted,
            logged,
        },
        None => QueryDecision::Forward {
            allowlisted,
            logged,
        },
    }
}

/// One thing an upstream answer says, as inspection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen<'r> {
    /// A CNAME target (any case, with or without the trailing dot).
    Cname(&'r str),
    /// An A or AAAA address.
    Address(IpAddr),
}

/// Why inspection blocked an upstream answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caught {
    /// A CNAME target is listed (`Verdict` names its feed and rule).
    Cname {
        /// The listed target, as it appeared in the answer.
        target: String,
        /// The rule that listed it.
        verdict: Verdict,
    },
    /// An address is in a listed prefix.
    Address {
        /// The listed address.
        address: IpAddr,
        /// The prefix rule that listed it.
        verdict: Verdict,
    },
}

impl Caught {
    /// The rule that blocked the answer.
    pub fn verdict(&self) -> &Verdict {
        match self {
            Caught::Cname { verdict, .. } | Caught::Address { verdict, .. } => verdict,
        }
    }
}

/// Answer inspection: the first CNAME target a block rule lists (an allow rule or a `log` rule
/// on the target does not block), or the first address in a listed prefix, in answer order.
pub fn inspect<'r>(policy: &Policy, answer: impl IntoIterator<Item = Seen<'r>>) -> Option<Caught> {
    for seen in answer {
        match seen {
            Seen::Cname(target) => {
                if let Some(m) = policy.match_name(target.as_bytes())
                    && !m.allowed
                    && m.feed.action.blocks()
                {
                    return Some(Caught::Cname {
                        target: target.trim_end_matches('.').to_ascii_lowercase(),
                        verdict: m.verdict(),
                    });
                }
            }
            Seen::Address(address) => {
                if let Some(verdict) = policy.check_ip(address)
                    && verdict.action().blocks()
                {
                    return Some(Caught::Address { address, verdict });
                }
            }
        }
    }
    None
}
