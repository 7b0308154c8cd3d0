//! Feeds: lists of mining-pool names and addresses, in the formats the world publishes them.
//!
//! A feed file is parsed into a [`ParsedFeed`]: the entries we can honour at DNS level, every
//! rejected line with its number and reason, and a count of rules that are valid in their own
//! world (an adblock path rule, a cosmetic filter) but mean nothing to a resolver. Parsing never
//! fails as a whole: good lines are kept, bad ones reported. Compiling feeds into a policy is
//! `policy`'s job; loading files and watching them is `loader`'s and `watch`'s.
//!
//! Layout: one module per syntax under `formats/` (each a loop over lines feeding a `Sink`),
//! `detect` sniffs the syntax when the config says `auto`, `name` turns one token into a
//! [`DomainName`] or an address with a reason a maintainer can act on when it cannot.
//!
//! Decisions that hold for every format (see `docs/FEEDS.md`):
//! - Duplicates are kept: the policy's tables collapse them anyway, and a per-load hash set
//!   would cost more than the duplicates do. `accepted()` therefore counts lines, not names.
//! - A port or a path is never stripped to "repair" a line: `server.com:1234` is a miner's
//!   example value and `server.com` an unrelated domain (TRICKY 3). Such lines are rejected.
//! - Single-label names (`info`) are rejected: they would block a whole top-level domain.
//! - Lines over [`MAX_LINE`] bytes are rejected unread: no real rule is that long.

pub mod check;
pub mod detect;
mod formats;
pub mod loader;
mod name;
pub mod watch;

use ipnet::IpNet;

use crate::config::{FeedFormat, FeedKind};
use crate::domain::DomainName;

pub use check::{Problem, check};
pub use watch::{WatchHandle, spawn_watcher};

/// Longest line we read, in bytes. Real rules are under 300; anything longer is binary junk or
/// an HTML page saved by mistake, and parsing it would only produce a useless reason.
pub const MAX_LINE: usize = 4096;

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

/// Parses feed text in `format` (`Auto` sniffs it, see [`detect::detect`]) for a feed of
/// `kind`. Never fails: every line ends up accepted, skipped or rejected with a reason.
pub fn parse(text: &str, format: FeedFormat, kind: FeedKind) -> ParsedFeed {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let format = match format {
        FeedFormat::Auto => detect::detect(text),
        f => f,
    };
    let mut sink = Sink::new(kind, format);
    match format {
        FeedFormat::Auto | FeedFormat::Plain | FeedFormat::Wildcard => {
            formats::plain::parse(text, &mut sink)
        }
        FeedFormat::Hosts => formats::hosts::parse(text, &mut sink),
        FeedFormat::Adblock => formats::adblock::parse(text, &mut sink),
        FeedFormat::Dnsmasq => formats::dnsmasq::parse(text, &mut sink),
        FeedFormat::Rpz => formats::rpz::parse(text, &mut sink),
        FeedFormat::Ip => formats::ip::parse(text, &mut sink),
        FeedFormat::Url => formats::url::parse(text, &mut sink),
        FeedFormat::Suricata => formats::suricata::parse(text, &mut sink),
    }
    sink.out
}

/// Where format parsers put what they found. It applies the feed kind's rules in one place,
/// so no parser has to know that an `ips` feed refuses names or an `allow` feed refuses
/// addresses.
pub(crate) struct Sink {
    kind: FeedKind,
    out: ParsedFeed,
}

impl Sink {
    fn new(kind: FeedKind, format: FeedFormat) -> Self {
        Self {
            kind,
            out: ParsedFeed {
                format: Some(format),
                ..Default::default()
            },
        }
    }

    /// A name to block (or, in an allow feed, to allow).
    fn domain(&mut self, line: usize, text: &str, name: DomainName, exact: bool) {
        if self.kind == FeedKind::Ips {
            self.reject(
                line,
                text,
                "is a domain name, but this feed has kind = \"ips\" (addresses and prefixes only)",
            );
            return;
        }
        self.out.domains.push(DomainEntry { name, exact });
    }

    /// An exception inside a block feed (adblock `@@`, RPZ passthru, dnsmasq `server=/x/#`).
    fn exception(&mut self, line: usize, text: &str, name: DomainName, exact: bool) {
        if self.kind == FeedKind::Ips {
            self.reject(
                line,
                text,
                "is a domain exception, but this feed has kind = \"ips\" (addresses and prefixes only)",
            );
            return;
        }
        self.out.exceptions.push(DomainEntry { name, exact });
    }

    /// An address or prefix.
    fn ip(&mut self, line: usize, text: &str, net: IpNet) {
        if self.kind == FeedKind::Allow {
            self.reject(
                line,
                text,
                "is an IP address; an allow feed holds names only (put addresses in an \"ips\" feed)",
            );
            return;
        }
        self.out.ips.push(net);
    }

    /// A valid rule we cannot honour at DNS level.
    fn skip(&mut self) {
        self.out.skipped += 1;
    }

    fn reject(&mut self, line: usize, text: &str, reason: impl Into<String>) {
        self.out.rejected.push(Rejected {
            line,
            text: shorten(text.trim()),
            reason: reason.into(),
        });
    }

    /// A token classified by [`name::classify`]: name, address, or rejection.
    fn token(&mut self, line: usize, text: &str, token: &str, exact: bool) {
        match name::classify(token) {
            Ok(name::Token::Name(n)) => self.domain(line, text, n, exact),
            Ok(name::Token::Ip(net)) => self.ip(line, text, net),
            Err(reason) => self.reject(line, text, reason),
        }
    }
}

/// Keeps a rejected line readable in logs and the API: long junk is cut at a char boundary.
fn shorten(text: &str) -> String {
    const KEEP: usize = 200;
    if text.len() <= KEEP {
        return text.to_string();
    }
    let mut end = KEEP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Runs `f` on every line (1-based number, text without `\r`), rejecting over-long lines
/// first so no format parser has to.
pub(crate) fn each_line(text: &str, sink: &mut Sink, mut f: impl FnMut(&mut Sink, usize, &str)) {
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.len() > MAX_LINE {
            sink.reject(
                i + 1,
                raw,
                format!(
                    "line is {} bytes long; lines over {MAX_LINE} bytes are refused",
                    raw.len()
                ),
            );
            continue;
        }
        f(sink, i + 1, raw);
    }
}

/// Test helper: the domain entries as `(name, exact)` pairs, in order.
#[cfg(test)]
pub(crate) fn entries(p: &ParsedFeed) -> Vec<(&str, bool)> {
    p.domains
        .iter()
        .map(|d| (d.name.as_str(), d.exact))
        .collect()
}
