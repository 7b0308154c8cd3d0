//! Plain domain lists, one name a line; also the wildcard-domain syntax (`*.x`).
//!
//! `#`, `!` and `;` start a comment line; `#` also ends a line early (no name contains it).
//! `=host` means exactly that name; `*.host` means host and everything below it, which is
//! what a plain `host` already means, so both spellings give the same entry (the hagezi
//! wildcard lists say "subdomains only", but blocking the parent of a listed subtree is what
//! every DNS blocker does with them). A line that looks like a hosts entry (`0.0.0.0 x`) is
//! read as one: lists mix the two, and refusing them would help no one.

use crate::{Sink, each_line};

use super::hosts;

/// Parses a plain (or wildcard) domain list.
pub(crate) fn parse(text: &str, sink: &mut Sink) {
    each_line(text, sink, |sink, no, raw| {
        let Some(line) = super::rule_text(raw) else {
            sink.comment();
            return;
        };
        if super::adblock::is_host_rule(line) {
            // `||x^` in a plain list: AdGuard-syntax lists mix syntaxes line by line.
            super::adblock::line(sink, no, raw, line);
            return;
        }
        if line.bytes().any(|b| b.is_ascii_whitespace()) {
            hosts::line(sink, no, raw, line);
            return;
        }
        entry(sink, no, raw, line);
    });
}

/// One name with its optional `=` (exact) or `*.` (subtree) prefix.
pub(crate) fn entry(sink: &mut Sink, no: usize, raw: &str, token: &str) {
    if let Some(rest) = token.strip_prefix('=') {
        if rest.starts_with("*.") {
            sink.reject(
                no,
                raw,
                "`=` (exact) and `*.` (subtree) contradict each other",
            );
            return;
        }
        sink.token(no, raw, rest, true);
    } else if let Some(rest) = token.strip_prefix("*.") {
        sink.token(no, raw, rest, false);
    } else if token == "*" {
        sink.reject(no, raw, "`*` alone would match every name");
    } else {
        sink.token(no, raw, token, false);
    }
}

#[cfg(test)]
mod tests {
    use crate::parse;
    use poolguard_config::{FeedFormat, FeedKind};

    #[test]
    fn comments_exact_wildcard_and_reasons() {
        let text = "# header\n! also\n; and\n\nPool.Example # trailing\n=exact.example\n*.wild.example\nserver.com:1234\n1.2.3.4\n";
        let p = parse(text, FeedFormat::Plain, FeedKind::Domains);
        let names = crate::entries(&p);
        assert_eq!(
            names,
            [
                ("pool.example", false),
                ("exact.example", true),
                ("wild.example", false)
            ]
        );
        assert_eq!(p.ips, ["1.2.3.4/32".parse().unwrap()]);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].line, 8);
    }

    #[test]
    fn kinds_route_entries() {
        let p = parse("a.example\n1.2.3.4\n", FeedFormat::Plain, FeedKind::Allow);
        assert_eq!(p.domains.len(), 1);
        assert_eq!(p.rejected[0].line, 2);
        let p = parse("a.example\n1.2.3.4\n", FeedFormat::Plain, FeedKind::Ips);
        assert_eq!(p.ips.len(), 1);
        assert_eq!(p.rejected[0].line, 1);
    }

    #[test]
    fn crlf_bom_tabs_and_long_lines() {
        let long = "a".repeat(5000);
        let text = format!("\u{feff}one.example\r\n\ttwo.example  \r\n{long}\n");
        let p = parse(&text, FeedFormat::Auto, FeedKind::Domains);
        assert_eq!(p.domains.len(), 2);
        assert_eq!(p.rejected.len(), 1);
        assert!(p.rejected[0].reason.contains("4096"));
    }
}
