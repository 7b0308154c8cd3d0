//! dnsmasq configuration lines, as blocklist projects publish them.
//!
//! `address=/x/0.0.0.0` (also `/x/`, `/x/::`, `/x/#`) and `local=/x/` and `server=/x/` with no
//! upstream (answer locally: NXDOMAIN) block x and below. `server=/x/#` sends x back to the
//! normal resolvers, which in a blocklist is an exception. `server=/x/1.2.3.4` is a real
//! forward and `address=/x/10.0.0.1` a redirect: valid, not blocks, so skipped. Several
//! domains may share one directive (`address=/a/b/0.0.0.0`). Other directives are skipped.

use std::net::IpAddr;

use crate::name::{Token, classify};
use crate::{Sink, each_line};

#[derive(Clone, Copy)]
enum Meaning {
    Block,
    Exception,
}

/// Parses dnsmasq directives.
pub(crate) fn parse(text: &str, sink: &mut Sink) {
    each_line(text, sink, |sink, no, raw| {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            sink.comment();
            return;
        }
        let Some((key, value)) = line.split_once('=') else {
            sink.reject(no, raw, "not a dnsmasq directive (`key=value`)");
            return;
        };
        let key = key.trim();
        if !matches!(key, "address" | "server" | "local") {
            sink.skip("a dnsmasq directive other than address, server or local: not a block rule");
            return;
        }
        let Some(value) = value.trim().strip_prefix('/') else {
            // `server=1.2.3.4`: a global upstream, nothing to do with blocking.
            sink.skip("a global upstream server, not a block rule");
            return;
        };
        let Some((domains, target)) = value.rsplit_once('/') else {
            sink.reject(no, raw, "the domain is missing its closing '/'");
            return;
        };
        let meaning = match (key, target.trim()) {
            ("address", t) if t.is_empty() || t == "#" || is_sinkhole(t) => Meaning::Block,
            ("server" | "local", "") => Meaning::Block,
            ("server" | "local", "#") => Meaning::Exception,
            _ => {
                sink.skip(
                    "a forward to a real server or a redirect to a real address: not a block rule",
                );
                return;
            }
        };
        for d in domains.split('/') {
            match d.trim() {
                "" => sink.reject(no, raw, "empty domain between '/'"),
                "#" => sink.reject(no, raw, "`#` matches every name; it would block everything"),
                d => match classify(d) {
                    Ok(Token::Name(n)) => match meaning {
                        Meaning::Block => sink.domain(no, raw, n, false),
                        Meaning::Exception => sink.exception(no, raw, n, false),
                    },
                    Ok(Token::Ip(_)) => sink.reject(
                        no,
                        raw,
                        format!("`{d}` is an address where a domain belongs"),
                    ),
                    Err(reason) => sink.reject(no, raw, reason),
                },
            }
        }
    });
}

fn is_sinkhole(t: &str) -> bool {
    t.parse::<IpAddr>()
        .is_ok_and(|a| a.is_unspecified() || a.is_loopback())
}

#[cfg(test)]
mod tests {
    use crate::parse;
    use poolguard_config::{FeedFormat, FeedKind};

    #[test]
    fn directives() {
        let text = "# c\nserver=/0slot.trade/\naddress=/a.example/0.0.0.0\naddress=/b.example/\naddress=/c.example/::\nlocal=/d.example/\nserver=/fwd.example/1.2.3.4\naddress=/redir.example/10.0.0.1\nserver=/ok.example/#\naddress=/e.example/f.example/0.0.0.0\nserver=/x.example\ncache-size=100\n";
        let p = parse(text, FeedFormat::Dnsmasq, FeedKind::Domains);
        let d: Vec<_> = p.domains.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            d,
            [
                "0slot.trade",
                "a.example",
                "b.example",
                "c.example",
                "d.example",
                "e.example",
                "f.example"
            ]
        );
        assert_eq!(p.exceptions[0].name.as_str(), "ok.example");
        assert_eq!(p.skipped, 3);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].line, 11);
    }
}
