//! Adblock Plus / uBlock Origin / AdGuard filter lists, read as a DNS blocker can honour them.
//!
//! Only whole-host rules survive: `||host^` (host and subdomains), `@@||host^` (an exception)
//! and bare host lines (uBO treats `0aqpqdju.me` as `||0aqpqdju.me^`). Modifiers that keep the
//! meaning "this host, everywhere" (`$third-party`, `$important`, `$all`, `$doc`, `$popup`, …)
//! are fine. Everything that narrows a rule to a page, a resource type or a path (`$domain=`,
//! `$script`, `$websocket`, `$denyallow`, `||x/path`, `/minero-proxy-`, wildcards inside a
//! label, cosmetic and scriptlet rules) is *skipped and counted*: the rule is valid, we cannot
//! honour it, and widening it to the whole host would be wrong. `||info^$script,domain=…`
//! must not become "block .info" (TRICKY 5). `||1.2.3.4^` and `||203.0.113.0/24^` are address
//! rules (see docs/FEEDS.md). Hosts lines (`0.0.0.0 x`), which AdGuard-syntax lists include, are
//! read as hosts lines. Every line is accepted, rejected with a reason, skipped with a reason
//! or a comment: none is dropped without a word.

use std::net::IpAddr;

use ipnet::IpNet;

use super::hosts;
use crate::name::{Token, classify, parse_net};
use crate::{Sink, each_line};

/// Modifiers under which a `||host^` rule still means "block this host everywhere".
const HOST_WIDE: [&str; 14] = [
    "third-party",
    "3p",
    "~third-party",
    "first-party",
    "1p",
    "~first-party",
    "important",
    "all",
    "doc",
    "document",
    "popup",
    "match-case",
    "strict1p",
    "strict3p",
];

/// Parses an adblock-syntax filter list.
pub(crate) fn parse(text: &str, sink: &mut Sink) {
    each_line(text, sink, rule);
}

/// Whether a line of another syntax is an adblock host rule (`||x^`, `@@||x^`), so plain and
/// hosts lists hand it here: AdGuard-syntax lists mix the syntaxes line by line.
pub(crate) fn is_host_rule(line: &str) -> bool {
    line.starts_with("||") || line.starts_with("@@||")
}

/// Skip reasons, one sentence per kind of rule a resolver cannot honour.
const COSMETIC: &str = "a cosmetic or scriptlet rule: it acts on the page, not on DNS";
const REGEX: &str = "a regular-expression or URL-part rule: DNS sees no URL";
const NARROWED: &str = "a modifier narrows it to a page, a resource type or some clients; widening it to the whole host would be wrong";
const URL_PART: &str = "a URL fragment, not a host: DNS sees no URL";
const PATH: &str = "a path, port or wildcard inside the host narrows it below a whole host; DNS sees only host names";
const IP_EXCEPTION: &str =
    "an exception for an address: exceptions can only allow names, there is no address allowlist";

/// One line of an adblock list.
fn rule(sink: &mut Sink, no: usize, raw: &str) {
    line(sink, no, raw, raw.trim());
}

/// One adblock rule: `line` is its text (trimmed; from a plain or hosts list, with the `#`
/// comment already cut), `raw` the whole line for reports.
pub(crate) fn line(sink: &mut Sink, no: usize, raw: &str, line: &str) {
    if line.is_empty() || line.starts_with('!') || (line.starts_with('[') && line.ends_with(']')) {
        sink.comment();
        return;
    }
    // `##`, `#@#`, `#?#`, `##+js(…)`: cosmetic or scriptlet rules.
    let cosmetic = ["##", "#@#", "#?#", "#$#", "#%#", "#@$#", "#@?#"]
        .iter()
        .any(|m| line.contains(m));
    if cosmetic {
        sink.skip(COSMETIC);
        return;
    }
    if line.starts_with('#') {
        // A line that merely starts with `#` is a comment in uBO and AdGuard lists.
        sink.comment();
        return;
    }
    if is_hosts_line(line) {
        // `0.0.0.0 pool.example`: a hosts line, as AdGuard-syntax lists include them.
        let rule = line.find('#').map_or(line, |i| line[..i].trim_end());
        hosts::line(sink, no, raw, rule);
        return;
    }
    if line.contains('#') {
        sink.reject(
            no,
            raw,
            "`#` inside a rule: adblock syntax has no trailing comments (put comments on their own `!` line)",
        );
        return;
    }
    let (exception, body) = match line.strip_prefix("@@") {
        Some(b) => (true, b),
        None => (false, line),
    };
    if body.starts_with('/') {
        // Regex rules and URL-part rules (`/minero-proxy-`, `/coinblind_beta.`).
        sink.skip(REGEX);
        return;
    }
    let (pattern, options) = match body.find('$') {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if let Some(opts) = options
        && !opts
            .split(',')
            .map(str::trim)
            .all(|o| HOST_WIDE.iter().any(|h| o.eq_ignore_ascii_case(h)))
    {
        sink.skip(NARROWED);
        return;
    }
    let (host, tail) = if let Some(rest) = pattern.strip_prefix("||") {
        let end = rest
            .find(['^', '/', '*', '|', ':', '?', '&', '='])
            .unwrap_or(rest.len());
        (&rest[..end], &rest[end..])
    } else if is_bare_host(pattern) {
        (pattern, "")
    } else {
        // `|https://…`, `-coin-hive.js`, `.js?key=`: generic URL parts.
        sink.skip(URL_PART);
        return;
    };
    if let Some(net) = prefix_rule(host, tail) {
        // `||203.0.113.0/24^`: an address prefix. A domain feed keeps IP rules (as it keeps
        // `||1.2.3.4^`); the kind check rejects it in an allow feed, with its reason.
        match net {
            _ if exception => sink.skip(IP_EXCEPTION),
            Ok(net) => sink.ip(no, raw, net),
            Err(reason) => sink.reject(no, raw, reason),
        }
        return;
    }
    if host.is_empty() || !matches!(tail, "" | "^" | "^|" | "|") {
        // A path (`||x/lib.js`), a wildcard in a label (`||minero-proxy-*.now.sh^`), a port.
        sink.skip(PATH);
        return;
    }
    match classify(host) {
        Ok(Token::Name(name)) if exception => sink.exception(no, raw, name, false),
        Ok(Token::Name(name)) => sink.domain(no, raw, name, false),
        // An address exception has no allowlist to go to; the rule is valid, so skip it.
        Ok(Token::Ip(_)) if exception => sink.skip(IP_EXCEPTION),
        Ok(Token::Ip(net)) => sink.ip(no, raw, net),
        Err(reason) => sink.reject(no, raw, reason),
    }
}

/// `0.0.0.0 name …`: an address, whitespace, then more.
fn is_hosts_line(line: &str) -> bool {
    let mut fields = line.split_ascii_whitespace();
    let first = fields.next().unwrap_or("");
    let first = first.split_once('%').map_or(first, |(a, _)| a);
    fields.next().is_some() && first.parse::<IpAddr>().is_ok()
}

/// `||203.0.113.0/24^`: an address, `/`, a prefix length, then the end of the host. `None`
/// when the host is not an address with a prefix length (a path after an address stays a
/// path rule); otherwise the prefix or why it is refused (host bits set, too broad).
fn prefix_rule(host: &str, tail: &str) -> Option<Result<IpNet, String>> {
    host.parse::<IpAddr>().ok()?;
    let after = tail.strip_prefix('/')?;
    let len_end = after
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(after.len());
    if len_end == 0 || !matches!(&after[len_end..], "" | "^" | "^|" | "|") {
        return None;
    }
    let len = &after[..len_end];
    Some(parse_net(&format!("{host}/{len}")).unwrap_or_else(|| {
        Err(format!(
            "`/{len}` is not a prefix length for the address `{host}`"
        ))
    }))
}

/// A bare line that is meant as a host (`0aqpqdju.me`), not a URL fragment (`-coin-hive.js`,
/// `.wasm`, `miner.js?`): host characters only, a dot, and no leading or trailing punctuation.
fn is_bare_host(p: &str) -> bool {
    let b = p.as_bytes();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && (last.is_ascii_alphanumeric() || last == b'.')
        && p.contains('.')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_') || c >= 0x80)
}

#[cfg(test)]
mod tests {
    use crate::parse;
    use poolguard_config::{FeedFormat, FeedKind};

    fn run(text: &str) -> poolguard_model::ParsedFeed {
        parse(text, FeedFormat::Adblock, FeedKind::Domains)
    }

    #[test]
    fn host_rules_exceptions_and_ips() {
        let p = run(
            "[Adblock Plus 2.0]\n! c\n||a.example^$third-party\n@@||b.example^\n||1.2.3.4^\nbare.example\n||c.example^$important,all\n",
        );
        let d: Vec<_> = p.domains.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(d, ["a.example", "bare.example", "c.example"]);
        assert_eq!(p.exceptions[0].name.as_str(), "b.example");
        assert_eq!(p.ips, ["1.2.3.4/32".parse().unwrap()]);
        assert_eq!(p.skipped, 0);
        assert!(p.rejected.is_empty());
    }

    #[test]
    fn narrowed_rules_are_skipped_not_widened() {
        let p = run(
            "||info^$script,third-party,domain=oload.info\n||kisshentai.net/Content/js/c-hive.js\n||2giga.link^*hive$script\n||minero-proxy-*.now.sh^$third-party\n-coin-hive.js\n/minero-proxy-\n/coinblind_beta.\nthepiratebay.*##+js(aopr, _wm)\nexample.com#@#.ad\n@@||api.nyda.pro^$websocket\n||edgeno.de^$denyallow=x.com\n",
        );
        assert!(p.domains.is_empty(), "{:?}", p.domains);
        assert!(p.exceptions.is_empty());
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.skipped, 11);
    }

    #[test]
    fn broken_hosts_are_rejected() {
        let p = run("||info^\n||0.0.0.0adminer.com^\n||bad-.com^\n");
        assert_eq!(p.rejected.len(), 3);
        assert!(p.rejected[0].reason.contains("single label"));
        assert!(p.rejected[1].reason.contains("glued"));
    }
}
