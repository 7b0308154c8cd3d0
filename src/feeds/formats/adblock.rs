//! Adblock Plus / uBlock Origin / AdGuard filter lists, read as a DNS blocker can honour them.
//!
//! Only whole-host rules survive: `||host^` (host and subdomains), `@@||host^` (an exception)
//! and bare host lines (uBO treats `0aqpqdju.me` as `||0aqpqdju.me^`). Modifiers that keep the
//! meaning "this host, everywhere" (`$third-party`, `$important`, `$all`, `$doc`, `$popup`, …)
//! are fine. Everything that narrows a rule to a page, a resource type or a path (`$domain=`,
//! `$script`, `$websocket`, `$denyallow`, `||x/path`, `/minero-proxy-`, wildcards inside a
//! label, cosmetic and scriptlet rules) is *skipped and counted*: the rule is valid, we cannot
//! honour it, and widening it to the whole host would be wrong. `||info^$script,domain=…`
//! must not become "block .info" (TRICKY 5). `||1.2.3.4^` is an address rule.

use crate::feeds::name::{Token, classify};
use crate::feeds::{Sink, each_line};

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

fn rule(sink: &mut Sink, no: usize, raw: &str) {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('!') || (line.starts_with('[') && line.ends_with(']')) {
        return;
    }
    if line.contains('#') {
        // `##`, `#@#`, `#?#`, `##+js(…)`: cosmetic or scriptlet rules. A line that merely starts
        // with `# ` is a comment in uBO lists.
        let cosmetic = ["##", "#@#", "#?#", "#$#", "#%#", "#@$#", "#@?#"]
            .iter()
            .any(|m| line.contains(m));
        if cosmetic {
            sink.skip();
        }
        return;
    }
    let (exception, body) = match line.strip_prefix("@@") {
        Some(b) => (true, b),
        None => (false, line),
    };
    if body.starts_with('/') {
        // Regex rules and URL-part rules (`/minero-proxy-`, `/coinblind_beta.`).
        sink.skip();
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
        sink.skip();
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
        sink.skip();
        return;
    };
    if host.is_empty() || !matches!(tail, "" | "^" | "^|" | "|") {
        // A path (`||x/lib.js`), a wildcard in a label (`||minero-proxy-*.now.sh^`), a port.
        sink.skip();
        return;
    }
    match classify(host) {
        Ok(Token::Name(name)) if exception => sink.exception(no, raw, name, false),
        Ok(Token::Name(name)) => sink.domain(no, raw, name, false),
        // An address exception has no allowlist to go to; the rule is valid, so skip it.
        Ok(Token::Ip(_)) if exception => sink.skip(),
        Ok(Token::Ip(net)) => sink.ip(no, raw, net),
        Err(reason) => sink.reject(no, raw, reason),
    }
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
    use crate::config::{FeedFormat, FeedKind};
    use crate::feeds::parse;

    fn run(text: &str) -> crate::feeds::ParsedFeed {
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
