//! Feeds: lists of mining-pool names and addresses, in the formats the world publishes them.
//!
//! A feed file is parsed into a [`ParsedFeed`]: the entries we can honour at DNS level, every
//! rejected line with its number and reason, and a count of rules that are valid in their own
//! world (an adblock path rule, a cosmetic filter) but mean nothing to a resolver. Parsing never
//! fails as a whole: good lines are kept, bad ones reported. Compiling feeds into a policy is
//! `policy`'s job; loading files and watching them is `loader`'s.

pub mod loader;

use ipnet::IpNet;

use crate::config::{FeedFormat, FeedKind};
use crate::domain::DomainName;

/// A line that was not accepted, for the maintainer to fix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejected {
    /// 1-based line number in the source.
    pub line: usize,
    pub text: String,
    pub reason: String,
}

/// One domain rule. `exact` rules (`=host` in plain lists, or RPZ without its `*.` twin) match
/// only the name itself; all others match the name and everything below it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainEntry {
    pub name: DomainName,
    pub exact: bool,
}

/// What a feed file yielded.
#[derive(Debug, Clone, Default)]
pub struct ParsedFeed {
    /// The format actually used (after auto-detection).
    pub format: Option<FeedFormat>,
    /// Names to block (kind `domains`), or to allow (kind `allow`).
    pub domains: Vec<DomainEntry>,
    /// Exceptions inside a block feed (adblock `@@||x^`): they act as allowlist entries.
    pub exceptions: Vec<DomainEntry>,
    /// Addresses and prefixes (kind `ips`, or IP rules mixed into a domain feed).
    pub ips: Vec<IpNet>,
    pub rejected: Vec<Rejected>,
    /// Valid rules that cannot be honoured by a resolver (path rules, cosmetic filters,
    /// modifiers that restrict by page): skipped on purpose and counted.
    pub skipped: usize,
}

impl ParsedFeed {
    /// Entries accepted, all kinds together.
    pub fn accepted(&self) -> usize {
        self.domains.len() + self.exceptions.len() + self.ips.len()
    }
}

/// Parses feed text. Placeholder: plain lists only, replaced by the full parser set.
pub fn parse(text: &str, format: FeedFormat, kind: FeedKind) -> ParsedFeed {
    let _ = kind;
    let mut out = ParsedFeed {
        format: Some(if format == FeedFormat::Auto {
            FeedFormat::Plain
        } else {
            format
        }),
        ..Default::default()
    };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Ok(net) = line.parse::<IpNet>() {
            out.ips.push(net);
            continue;
        }
        if let Ok(ip) = line.parse::<std::net::IpAddr>() {
            out.ips.push(IpNet::from(ip));
            continue;
        }
        match DomainName::parse(line) {
            Ok(name) => out.domains.push(DomainEntry { name, exact: false }),
            Err(e) => out.rejected.push(Rejected {
                line: i + 1,
                text: raw.to_string(),
                reason: e.to_string(),
            }),
        }
    }
    out
}
