//! Address lists: one IPv4/IPv6 address or CIDR prefix a line (ipset, firehol, plain).
//!
//! `#` and `;` comments (whole line or trailing). Prefixes with host bits set are rejected,
//! not normalised: `10.1.2.3/8` is a typo in either the address or the length, and guessing
//! the length wrong blocks 16 million addresses. Prefixes broader than /8 (IPv4) or /16
//! (IPv6) are rejected for the same reason. Names are handed to the kind check, so an `ips`
//! feed rejects them and a domain feed in this format keeps them.

use crate::name::parse_net;
use crate::{Sink, each_line};

/// Parses an address list.
pub(crate) fn parse(text: &str, sink: &mut Sink) {
    each_line(text, sink, |sink, no, raw| {
        let line = match raw.find(['#', ';']) {
            Some(i) => &raw[..i],
            None => raw,
        }
        .trim();
        if line.is_empty() {
            sink.comment();
            return;
        }
        match parse_net(line) {
            Some(Ok(net)) => sink.ip(no, raw, net),
            Some(Err(reason)) => sink.reject(no, raw, reason),
            None if line.contains('-')
                && line.split('-').all(|p| parse_net(p.trim()).is_some()) =>
            {
                sink.reject(no, raw, "an address range; write it as CIDR prefixes")
            }
            None => sink.token(no, raw, line, false),
        }
    });
}

#[cfg(test)]
mod tests {
    use crate::parse;
    use poolguard_config::{FeedFormat, FeedKind};

    #[test]
    fn addresses_prefixes_and_reasons() {
        let text = "# ipset\n1.2.3.4\n10.0.0.0/8 ; campus\n2001:db8::/32\n10.1.2.3/8\n1.2.3.4-1.2.3.9\npool.example\n";
        assert_eq!(
            crate::detect::detect("# ipset\n1.2.3.4\n10.0.0.0/8 ; campus\n"),
            FeedFormat::Ip
        );
        let p = parse(text, FeedFormat::Ip, FeedKind::Ips);
        assert_eq!(p.ips.len(), 3);
        let lines: Vec<_> = p.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [5, 6, 7]);
        assert!(p.rejected[0].reason.contains("`10.0.0.0/8`"));
        assert!(p.rejected[2].reason.contains("kind = \"ips\""));
    }
}
