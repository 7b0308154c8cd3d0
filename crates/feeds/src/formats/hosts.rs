//! Hosts files: `0.0.0.0 name [name…]`, as Steven Black, AdAway and CoinBlocker publish them.
//!
//! Only sinkhole addresses (`0.0.0.0`, `127.0.0.0/8`, `::`, `::1`) mean "block"; a line mapping
//! a name to a real address is a redirect, valid but not something a blocklist should honour,
//! so it is skipped and counted. The boilerplate names every hosts file starts with
//! (`localhost`, `broadcasthost`, `ip6-*`, …) are ignored silently: they are not rules.

use std::net::IpAddr;

use crate::{Sink, each_line};

use super::plain;

/// Parses a hosts file.
pub(crate) fn parse(text: &str, sink: &mut Sink) {
    each_line(text, sink, |sink, no, raw| {
        let Some(line) = super::rule_text(raw) else {
            sink.comment();
            return;
        };
        if super::adblock::is_host_rule(line) {
            super::adblock::line(sink, no, raw, line);
            return;
        }
        self::line(sink, no, raw, line);
    });
}

/// One hosts line (comments already cut). A single field is read as a plain name, so a
/// hosts file with a stray bare name loses nothing.
pub(crate) fn line(sink: &mut Sink, no: usize, raw: &str, line: &str) {
    let mut fields = line.split_ascii_whitespace();
    let Some(first) = fields.next() else { return };
    // `fe80::1%lo0 localhost` (macOS): a scoped link-local address is the machine itself.
    let unscoped = first.split_once('%').map_or(first, |(a, _)| a);
    let Ok(addr) = unscoped.parse::<IpAddr>() else {
        if fields.next().is_none() {
            plain::entry(sink, no, raw, first);
        } else {
            sink.reject(
                no,
                raw,
                format!(
                    "has several fields but `{first}` is not an IP address: neither one name \
                     nor a hosts line (`0.0.0.0 name`)"
                ),
            );
        }
        return;
    };
    if unscoped.len() != first.len() {
        sink.skip("a scoped link-local address (`fe80::1%lo0`): the machine's own entry, not a block rule");
        return;
    }
    if !is_sinkhole(addr) {
        sink.skip("maps names to a real address (a redirect), not to a sinkhole: not a block rule");
        return;
    }
    let mut any = false;
    let mut boilerplate = false;
    for name in fields {
        any = true;
        if is_boilerplate(name) {
            boilerplate = true;
            continue;
        }
        if name.parse::<IpAddr>().is_ok() {
            sink.reject(
                no,
                raw,
                format!("`{name}` is an address where a name belongs"),
            );
            continue;
        }
        sink.token(no, raw, name, false);
    }
    if !any {
        sink.reject(no, raw, "an address with no name after it");
    } else if boilerplate {
        // Only counts when nothing else on the line did (`127.0.0.1 localhost`).
        sink.skip("the machine's own names (`localhost`, `broadcasthost`, `ip6-*`): hosts-file boilerplate, not block rules");
    }
}

/// Addresses hosts-file blocklists point names at.
fn is_sinkhole(addr: IpAddr) -> bool {
    addr.is_unspecified() || addr.is_loopback()
}

/// Names every hosts file defines for the machine itself; never rules. The `ip6-*` ones
/// (`ip6-localhost`, `ip6-allnodes`, …) are single labels: `ip6-a.example` is a domain.
fn is_boilerplate(name: &str) -> bool {
    const NAMES: [&str; 6] = [
        "localhost",
        "localhost.localdomain",
        "local",
        "broadcasthost",
        "0.0.0.0",
        "localdomain",
    ];
    NAMES.iter().any(|n| name.eq_ignore_ascii_case(n))
        || (!name.contains('.')
            && name
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("ip6-")))
}

#[cfg(test)]
mod tests {
    use crate::parse;
    use poolguard_config::{FeedFormat, FeedKind};

    #[test]
    fn only_single_label_ip6_names_are_boilerplate() {
        let p = parse(
            "::1 ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\n0.0.0.0 ip6-a.aa\n",
            FeedFormat::Hosts,
            FeedKind::Domains,
        );
        let names: Vec<String> = p.domains.iter().map(|d| d.name.to_string()).collect();
        assert_eq!(names, ["ip6-a.aa"]);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
    }

    #[test]
    fn several_names_boilerplate_and_redirects() {
        let text = "127.0.0.1  localhost\nfe80::1%lo0 localhost\n::1 localhost ip6-loopback\n0.0.0.0 a.example b.example # c\n:: c.example\n10.0.0.1 intranet.example\n0.0.0.0adminer.com\n0.0.0.0\n";
        let p = parse(text, FeedFormat::Hosts, FeedKind::Domains);
        let names: Vec<_> = p.domains.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["a.example", "b.example", "c.example"]);
        // `10.0.0.1 intranet.example` (a redirect) and the three boilerplate lines.
        assert_eq!(p.skipped, 4);
        let skipped: Vec<_> = p.skipped_lines.iter().map(|s| s.line).collect();
        assert_eq!(skipped, [1, 2, 3, 6]);
        assert_eq!(p.rejected.len(), 2);
        assert_eq!(p.rejected[0].line, 7);
        assert!(p.rejected[0].reason.contains("glued"));
        assert_eq!(p.rejected[1].line, 8);
    }
}
