//! What parsing a feed yields: the entries, and where every line went.

use ipnet::IpNet;

use crate::domain::DomainName;
use crate::vocab::FeedFormat;

/// A line that was not accepted, for the maintainer to fix.
/// `Serialize` stays: the loader's `FeedReport` derives it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejected {
    /// 1-based line number in the source.
    pub line: usize,
    /// The line as written (trimmed, cut at 200 bytes).
    pub text: String,
    /// What is wrong, in words the list's maintainer can act on.
    pub reason: String,
}

/// A valid rule a resolver cannot honour, with its line, listed by `?verbose=true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line number in the source.
    pub line: usize,
    /// Why a resolver cannot honour it (a fixed sentence per kind of rule, so a list of
    /// 100,000 cosmetic rules costs 16 bytes a line, not a string each).
    pub reason: &'static str,
}

/// Where every line of a file went. Each line is counted exactly once, by [`each_line`] (the
/// one place that sees every line), so `accepted + rejected + skipped + comments == lines`
/// holds by construction whatever a format parser does: a line no parser classified is
/// rejected there, never dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineCounts {
    /// Lines in the file (a final newline does not start another line).
    pub lines: usize,
    /// Lines that gave at least one entry and no rejection.
    pub accepted: usize,
    /// Lines with at least one rejection (listed in `rejected`, with line and reason).
    pub rejected: usize,
    /// Valid rules a resolver cannot honour (listed in `skipped_lines`).
    pub skipped: usize,
    /// Comments, blank lines, headers (`[Adblock Plus 2.0]`) and zone boilerplate
    /// (`$TTL`, SOA, NS): not rules.
    pub comments: usize,
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
    /// Lines holding valid rules that cannot be honoured by a resolver (path rules, cosmetic
    /// filters, modifiers that restrict by page): skipped on purpose and counted.
    pub skipped: usize,
    /// The skipped lines, with why.
    pub skipped_lines: Vec<Skipped>,
    /// Where every line went.
    pub lines: LineCounts,
}

impl ParsedFeed {
    /// Entries accepted, all kinds together.
    pub fn accepted(&self) -> usize {
        self.domains.len() + self.exceptions.len() + self.ips.len()
    }
}
