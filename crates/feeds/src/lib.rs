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
pub mod listed;
pub mod loader;
mod name;
pub mod publish;
pub mod registry;
pub mod review;
pub mod subscribe;
pub mod watch;

use ipnet::IpNet;

use poolguard_config::{FeedFormat, FeedKind};
use poolguard_model::DomainName;
pub use poolguard_model::feed::{DomainEntry, LineCounts, ParsedFeed, Rejected, Skipped};

pub use check::{Problem, check};

pub use watch::{WatchHandle, spawn_watcher};

/// The content history moved down to `poolguard-versions` (the asset ledger keeps one too, and
/// `clients` sits below `feeds`); re-exported so `poolguard_feeds::versions` still names it.
pub use poolguard_versions as versions;

/// Longest line we read, in bytes. Real rules are under 300; anything longer is binary junk or
/// an HTML page saved by mistake, and parsing it would only produce a useless reason.
pub const MAX_LINE: usize = 4096;

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
    /// The line [`each_line`] is on and what happened to it so far; `None` outside
    /// [`each_line`] (RPZ emits its merged entries after the loop, already counted).
    line: Option<(usize, Marks)>,
}

/// What happened to one line, for [`LineCounts`].
#[derive(Debug, Clone, Copy, Default)]
struct Marks {
    accepted: bool,
    rejected: bool,
    skipped: bool,
    comment: bool,
}

impl Sink {
    fn new(kind: FeedKind, format: FeedFormat) -> Self {
        Self {
            kind,
            out: ParsedFeed {
                format: Some(format),
                ..Default::default()
            },
            line: None,
        }
    }

    fn mark(&mut self, f: impl FnOnce(&mut Marks)) {
        if let Some((_, m)) = &mut self.line {
            f(m);
        }
    }

    /// A comment, blank line, header or zone boilerplate: not a rule.
    fn comment(&mut self) {
        self.mark(|m| m.comment = true);
    }

    /// A name whose entry a parser emits later (RPZ merges `x` with its `*.x` twin): the kind
    /// check happens now, so the line is counted as what it will become.
    fn deferred_name(&mut self, line: usize, text: &str) -> bool {
        if self.kind == FeedKind::Ips {
            self.reject(
                line,
                text,
                "is a domain name, but this feed has kind = \"ips\" (addresses and prefixes only)",
            );
            return false;
        }
        self.mark(|m| m.accepted = true);
        true
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
        self.mark(|m| m.accepted = true);
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
        self.mark(|m| m.accepted = true);
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
        self.mark(|m| m.accepted = true);
        self.out.ips.push(net);
    }

    /// A valid rule we cannot honour at DNS level, and why (listed once per line).
    fn skip(&mut self, reason: &'static str) {
        let Some((line, m)) = &mut self.line else {
            return;
        };
        if !m.skipped {
            m.skipped = true;
            self.out.skipped += 1;
            self.out.skipped_lines.push(Skipped {
                line: *line,
                reason,
            });
        }
    }

    fn reject(&mut self, line: usize, text: &str, reason: impl Into<String>) {
        self.mark(|m| m.rejected = true);
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
/// first so no format parser has to, and counts where each line went ([`LineCounts`]).
///
/// This is the one place every line passes, so it is where no line can be lost: a non-blank
/// line that `f` neither accepted, rejected, skipped nor called a comment is rejected here
/// with a reason naming the format. Blank lines need no word from the parser.
pub(crate) fn each_line(text: &str, sink: &mut Sink, mut f: impl FnMut(&mut Sink, usize, &str)) {
    // `str::lines` semantics: a final `\n` ends the last line rather than starting another.
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        sink.line = Some((no, Marks::default()));
        if raw.len() > MAX_LINE {
            sink.reject(
                no,
                raw,
                format!(
                    "line is {} bytes long; lines over {MAX_LINE} bytes are refused",
                    raw.len()
                ),
            );
        } else {
            f(sink, no, raw);
        }
        let marks = sink.line.take().map(|(_, m)| m).unwrap_or_default();
        if marks.skipped && (marks.rejected || marks.accepted) {
            // Counted as what else happened to it; `skipped` lists skipped lines only.
            sink.out.skipped_lines.pop();
            sink.out.skipped -= 1;
        }
        let counts = &mut sink.out.lines;
        counts.lines += 1;
        if marks.rejected {
            counts.rejected += 1;
        } else if marks.accepted {
            counts.accepted += 1;
        } else if marks.skipped {
            counts.skipped += 1;
        } else if marks.comment || raw.trim().is_empty() {
            counts.comments += 1;
        } else {
            let format = syntax_name(sink.out.format);
            sink.reject(
                no,
                raw,
                format!("not a rule poolguard can read in {format} syntax"),
            );
            sink.out.lines.rejected += 1;
        }
    }
}

/// The syntax as `config.toml` spells it, for reasons.
fn syntax_name(format: Option<FeedFormat>) -> &'static str {
    match format {
        None | Some(FeedFormat::Auto) => "feed",
        Some(FeedFormat::Plain) => "plain",
        Some(FeedFormat::Hosts) => "hosts",
        Some(FeedFormat::Adblock) => "adblock",
        Some(FeedFormat::Dnsmasq) => "dnsmasq",
        Some(FeedFormat::Rpz) => "rpz",
        Some(FeedFormat::Wildcard) => "wildcard",
        Some(FeedFormat::Ip) => "ip",
        Some(FeedFormat::Url) => "url",
        Some(FeedFormat::Suricata) => "suricata",
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
