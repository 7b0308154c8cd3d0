//! Properties: the parsers never panic, everything they accept is a valid name, and a set of
//! names written in any supported syntax reads back as the same set.

use std::collections::BTreeSet;

use poolguard::config::{FeedFormat, FeedKind};
use poolguard::domain::DomainName;
use poolguard::feeds::parse;
use proptest::prelude::*;

const FORMATS: [FeedFormat; 10] = [
    FeedFormat::Auto,
    FeedFormat::Plain,
    FeedFormat::Hosts,
    FeedFormat::Adblock,
    FeedFormat::Dnsmasq,
    FeedFormat::Rpz,
    FeedFormat::Wildcard,
    FeedFormat::Ip,
    FeedFormat::Url,
    FeedFormat::Suricata,
];
/// Writes one name as a line (or lines) of some syntax.
type Writer = fn(&str) -> String;

const KINDS: [FeedKind; 3] = [FeedKind::Domains, FeedKind::Ips, FeedKind::Allow];

/// Lines that look like feed syntax, so the fuzzer reaches deep into each parser.
fn feedish_line() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9.*_/:=|^@$#!;,~ -]{0,40}",
        "(0\\.0\\.0\\.0|127\\.0\\.0\\.1|::|\\|\\||@@\\|\\||\\*\\.|=|address=/|server=/|\\*://)[a-z0-9.*/^$#-]{0,30}",
        "[a-z0-9.*-]{1,20} (CNAME|IN|NS|SOA) [a-z0-9.*-]{0,10}",
        "\\$(TTL|ORIGIN) [a-z0-9.]{0,10}",
        "alert (dns|tls|udp) any any -> any any \\(msg:\"x\"; (dns\\.query|tls\\.sni|http_host)?;? ?content:\"[a-z0-9.|0-9a-f ]{0,20}\"; (endswith|bsize:[0-9]{1,2}|startswith)?;? ?\\)",
        "[0-9./:a-f]{1,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_and_accepts_only_valid_names(
        lines in prop::collection::vec(feedish_line(), 0..30),
        f in 0..FORMATS.len(),
        k in 0..KINDS.len(),
        crlf in any::<bool>(),
    ) {
        let text = lines.join(if crlf { "\r\n" } else { "\n" });
        let p = parse(&text, FORMATS[f], KINDS[k]);
        for d in p.domains.iter().chain(&p.exceptions) {
            let again = DomainName::parse(d.name.as_str());
            prop_assert_eq!(again.as_ref(), Ok(&d.name));
            prop_assert!(d.name.label_count() >= 2, "{}", d.name);
        }
        // Every line is counted exactly once (issue 13, point 11).
        let c = p.lines;
        let unbommed = text.strip_prefix('\u{feff}').unwrap_or(&text);
        prop_assert_eq!(c.lines, unbommed.lines().count());
        prop_assert_eq!(c.accepted + c.rejected + c.skipped + c.comments, c.lines);
        let rejected: BTreeSet<usize> = p.rejected.iter().map(|r| r.line).collect();
        let skipped: BTreeSet<usize> = p.skipped_lines.iter().map(|s| s.line).collect();
        prop_assert_eq!(rejected.len(), c.rejected);
        prop_assert_eq!(skipped.len(), c.skipped);
        prop_assert!(rejected.is_disjoint(&skipped));
        prop_assert!(skipped.iter().all(|&l| l >= 1 && l <= c.lines));
        let n_lines = text.split('\n').count();
        for r in &p.rejected {
            prop_assert!(r.line >= 1 && r.line <= n_lines);
            prop_assert!(!r.reason.is_empty());
        }
        if KINDS[k] == FeedKind::Ips {
            prop_assert!(p.domains.is_empty() && p.exceptions.is_empty());
        }
        if KINDS[k] == FeedKind::Allow {
            prop_assert!(p.ips.is_empty());
        }
    }

    #[test]
    fn names_round_trip_through_every_syntax(
        set in prop::collection::btree_set(
            "([a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?\\.){1,3}[a-z]{2,6}",
            1..40,
        )
    ) {
        let names: BTreeSet<String> = set;
        let writers: [(FeedFormat, Writer); 6] = [
            (FeedFormat::Plain, |n| format!("{n}\n")),
            (FeedFormat::Hosts, |n| format!("0.0.0.0 {n}\n")),
            (FeedFormat::Adblock, |n| format!("||{n}^\n")),
            (FeedFormat::Rpz, |n| format!("{n} CNAME .\n*.{n} CNAME .\n")),
            (FeedFormat::Wildcard, |n| format!("*.{n}\n")),
            (FeedFormat::Dnsmasq, |n| format!("address=/{n}/0.0.0.0\n")),
        ];
        for (format, write) in writers {
            let text: String = names.iter().map(|n| write(n)).collect();
            let p = parse(&text, FeedFormat::Auto, FeedKind::Domains);
            prop_assert_eq!(p.format, Some(format));
            prop_assert!(p.rejected.is_empty(), "{:?}", p.rejected);
            let back: BTreeSet<String> = p.domains.iter().map(|d| d.name.to_string()).collect();
            prop_assert_eq!(&back, &names);
            prop_assert!(p.domains.iter().all(|d| !d.exact));
        }
    }
}
