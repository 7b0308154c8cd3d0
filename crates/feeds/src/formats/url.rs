//! Browser URL-match patterns (`*://*.coinhive.com/*`), as NoCoin and MinerBlock ship them.
//!
//! A pattern becomes a DNS rule only when it names a whole host: `scheme://host/*` (that exact
//! host: the pattern matches no subdomain) or `scheme://*.host/*` (host and everything below).
//! A specific path (`*://*.amazonaws.com/doubleclick13/*`), a port, a `*` or missing host, or
//! a wildcard inside a label narrow the rule below what DNS can see: skipped and counted, since
//! taking only the host would block all of AWS (TRICKY 4). An address host is an IP rule.

use crate::name::{Token, classify};
use crate::{Sink, each_line};

use super::plain;

const SCHEMES: [&str; 6] = ["*", "http", "https", "ws", "wss", "ftp"];

/// Parses URL-match patterns.
pub(crate) fn parse(text: &str, sink: &mut Sink) {
    each_line(text, sink, |sink, no, raw| {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', '!', ';']) {
            sink.comment();
            return;
        }
        let Some((scheme, rest)) = line.split_once("://") else {
            plain::entry(sink, no, raw, line);
            return;
        };
        if !SCHEMES.iter().any(|s| scheme.eq_ignore_ascii_case(s)) {
            sink.reject(no, raw, format!("unknown scheme `{scheme}`"));
            return;
        }
        let (host, path) = match rest.split_once('/') {
            Some((h, p)) => (h, p),
            None => (rest, ""),
        };
        if path != "*" || host == "*" || host.is_empty() || host.contains(':') {
            sink.skip("a path, a port or no single host: the pattern is narrower or wider than a whole host, which is all DNS sees");
            return;
        }
        let (wild, bare) = match host.strip_prefix("*.") {
            Some(b) => (true, b),
            None => (false, host),
        };
        if bare.contains('*') {
            sink.skip("a wildcard inside a label: DNS matches whole labels only");
            return;
        }
        match classify(bare) {
            Ok(Token::Name(n)) => sink.domain(no, raw, n, !wild),
            Ok(Token::Ip(net)) => sink.ip(no, raw, net),
            Err(reason) => sink.reject(no, raw, reason),
        }
    });
}

#[cfg(test)]
mod tests {
    use crate::parse;
    use poolguard_config::{FeedFormat, FeedKind};

    #[test]
    fn whole_hosts_only() {
        let text = "*://*.coinhive.com/*\nwss://exact.example/*\n*://coinhive.com/lib*\nwss://*.coinhive.com/proxy*\n*://*.amazonaws.com/doubleclick13/*\nws://*.monerise.com:9333/proxy/*\n*://*/*?proxy=wss://*\n*://185.14.28.10/*\nwss://*.coin-have.com/\n";
        let p = parse(text, FeedFormat::Auto, FeedKind::Domains);
        assert_eq!(p.format, Some(FeedFormat::Url));
        let d = crate::entries(&p);
        assert_eq!(d, [("coinhive.com", false), ("exact.example", true)]);
        assert_eq!(p.ips, ["185.14.28.10/32".parse().unwrap()]);
        assert_eq!(p.skipped, 6);
        assert!(p.rejected.is_empty());
    }
}
