//! Precedence rules, one test each, in the words an operator would use.

use std::net::IpAddr;
use std::sync::Arc;

use super::*;
use poolguard_model::DomainEntry;
use poolguard_model::domain::DomainName;

fn info(name: &str, kind: FeedKind) -> Arc<FeedInfo> {
    Arc::new(FeedInfo {
        name: name.into(),
        kind,
        action: Action::Nxdomain,
        category: "mining".into(),
        severity: Severity::High,
    })
}

fn entry(rule: &str) -> DomainEntry {
    let (exact, name) = match rule.strip_prefix('=') {
        Some(n) => (true, n),
        None => (false, rule),
    };
    DomainEntry {
        name: DomainName::parse(name).unwrap(),
        exact,
    }
}

/// A feed from rules: `name`, `=exact`, `@@exception`, `10.0.0.0/8`.
fn feed(rules: &[&str]) -> ParsedFeed {
    let mut p = ParsedFeed::default();
    for r in rules {
        if let Ok(net) = r.parse::<IpNet>() {
            p.ips.push(net);
        } else if let Some(e) = r.strip_prefix("@@") {
            p.exceptions.push(entry(e));
        } else {
            p.domains.push(entry(r));
        }
    }
    p
}

fn policy(feeds: &[(&str, FeedKind, &[&str])]) -> Policy {
    let parsed: Vec<(Arc<FeedInfo>, ParsedFeed)> = feeds
        .iter()
        .map(|(n, k, rules)| (info(n, *k), feed(rules)))
        .collect();
    Policy::build(parsed.iter().map(|(i, p)| (i.clone(), p)))
}

/// `(feed, rule)` of a block, or panics with what happened instead.
fn blocked(p: &Policy, name: &str) -> (String, String) {
    match p.check_name(name) {
        Decision::Blocked(v) => (v.feed.name.to_string(), v.rule.to_string()),
        other => panic!("{name}: expected a block, got {other:?}"),
    }
}

fn allowed(p: &Policy, name: &str) -> (String, String) {
    match p.check_name(name) {
        Decision::Allowed(v) => (v.feed.name.to_string(), v.rule.to_string()),
        other => panic!("{name}: expected an allow, got {other:?}"),
    }
}

fn pair(feed: &str, rule: &str) -> (String, String) {
    (feed.to_string(), rule.to_string())
}

#[test]
fn empty_policy_passes_everything() {
    let p = Policy::empty();
    assert_eq!(p.check_name("pool.example"), Decision::Pass);
    assert_eq!(p.check_name(""), Decision::Pass);
    assert_eq!(p.check_ip("10.0.0.1".parse().unwrap()), None);
    assert_eq!(p.stats(), PolicyStats::default());
}

#[test]
fn subtree_rule_blocks_the_name_and_everything_below() {
    let p = policy(&[("mining", FeedKind::Domains, &["pool.example"])]);
    assert_eq!(blocked(&p, "pool.example"), pair("mining", "pool.example"));
    assert_eq!(
        blocked(&p, "xmr.eu.pool.example"),
        pair("mining", "pool.example")
    );
    assert_eq!(p.check_name("example"), Decision::Pass);
    // Label-aligned: a name that merely ends with the same letters is not below it.
    assert_eq!(p.check_name("xpool.example"), Decision::Pass);
    assert_eq!(p.check_name("pool.example.org"), Decision::Pass);
}

#[test]
fn exact_rule_blocks_only_the_name_itself() {
    let p = policy(&[("mining", FeedKind::Domains, &["=host.example"])]);
    assert_eq!(blocked(&p, "host.example"), pair("mining", "=host.example"));
    assert_eq!(p.check_name("sub.host.example"), Decision::Pass);
}

#[test]
fn most_specific_block_is_reported() {
    let p = policy(&[
        ("broad", FeedKind::Domains, &["example"]),
        ("narrow", FeedKind::Domains, &["pool.example"]),
    ]);
    assert_eq!(
        blocked(&p, "a.pool.example"),
        pair("narrow", "pool.example")
    );
    assert_eq!(blocked(&p, "other.example"), pair("broad", "example"));
}

#[test]
fn exact_rule_below_a_subtree_rule_is_more_specific() {
    let p = policy(&[("a", FeedKind::Domains, &["pool.example", "=x.pool.example"])]);
    assert_eq!(blocked(&p, "x.pool.example"), pair("a", "=x.pool.example"));
    assert_eq!(blocked(&p, "y.x.pool.example"), pair("a", "pool.example"));
}

#[test]
fn first_feed_in_config_order_wins_for_the_same_name() {
    let p = policy(&[
        ("first", FeedKind::Domains, &["pool.example"]),
        (
            "second",
            FeedKind::Domains,
            &["pool.example", "=pool.example"],
        ),
    ]);
    assert_eq!(blocked(&p, "pool.example"), pair("first", "pool.example"));
    assert_eq!(blocked(&p, "a.pool.example"), pair("first", "pool.example"));
    assert_eq!(p.stats().blocked_names, 1, "duplicates are stored once");
}

#[test]
fn earlier_exact_rule_wins_on_the_name_later_subtree_rule_below_it() {
    let p = policy(&[
        ("first", FeedKind::Domains, &["=pool.example"]),
        ("second", FeedKind::Domains, &["pool.example"]),
    ]);
    assert_eq!(blocked(&p, "pool.example"), pair("first", "=pool.example"));
    assert_eq!(
        blocked(&p, "a.pool.example"),
        pair("second", "pool.example")
    );
}

#[test]
fn same_feed_listing_a_name_both_ways_reports_the_subtree_rule() {
    let p = policy(&[("a", FeedKind::Domains, &["=pool.example", "pool.example"])]);
    assert_eq!(blocked(&p, "pool.example"), pair("a", "pool.example"));
}

#[test]
fn allowlist_wins_over_every_block_even_a_more_specific_one() {
    let p = policy(&[
        (
            "mining",
            FeedKind::Domains,
            &["pool.example", "deep.ok.example"],
        ),
        ("campus", FeedKind::Allow, &["ok.example", "=pool.example"]),
    ]);
    assert_eq!(
        allowed(&p, "x.deep.ok.example"),
        pair("campus", "ok.example")
    );
    assert_eq!(allowed(&p, "pool.example"), pair("campus", "=pool.example"));
    // The exact allow covers only the name; below it the block applies.
    assert_eq!(
        blocked(&p, "a.pool.example"),
        pair("mining", "pool.example")
    );
}

#[test]
fn allowlist_later_in_config_still_wins() {
    let p = policy(&[
        ("mining", FeedKind::Domains, &["pool.example"]),
        ("campus", FeedKind::Allow, &["pool.example"]),
    ]);
    assert_eq!(
        allowed(&p, "a.pool.example"),
        pair("campus", "pool.example")
    );
}

#[test]
fn most_specific_allow_is_reported() {
    let p = policy(&[
        ("broad", FeedKind::Allow, &["example"]),
        ("narrow", FeedKind::Allow, &["ok.example"]),
    ]);
    assert_eq!(allowed(&p, "a.ok.example"), pair("narrow", "ok.example"));
}

#[test]
fn adblock_exceptions_act_as_allowlist_entries_with_their_rule_text() {
    let p = policy(&[
        (
            "adblock",
            FeedKind::Domains,
            &["pool.example", "@@ok.pool.example", "@@=pool.example"],
        ),
        ("later", FeedKind::Domains, &["x.ok.pool.example"]),
    ]);
    assert_eq!(
        allowed(&p, "x.ok.pool.example"),
        pair("adblock", "@@ok.pool.example")
    );
    assert_eq!(
        allowed(&p, "pool.example"),
        pair("adblock", "@@=pool.example")
    );
    assert_eq!(
        blocked(&p, "other.pool.example"),
        pair("adblock", "pool.example")
    );
}

#[test]
fn allow_only_policy_answers_allowed_not_pass() {
    let p = policy(&[("campus", FeedKind::Allow, &["uni.example"])]);
    assert_eq!(
        allowed(&p, "www.uni.example"),
        pair("campus", "uni.example")
    );
    assert_eq!(p.check_name("other.example"), Decision::Pass);
    assert_eq!(p.stats().allowed_names, 1);
    assert_eq!(p.stats().blocked_names, 0);
}

#[test]
fn upper_case_and_trailing_dot_are_tolerated() {
    let p = policy(&[(
        "mining",
        FeedKind::Domains,
        &["pool.example", "=host.example"],
    )]);
    assert_eq!(
        blocked(&p, "XMR.Pool.Example."),
        pair("mining", "pool.example")
    );
    assert_eq!(
        blocked(&p, "host.example."),
        pair("mining", "=host.example")
    );
    assert_eq!(blocked(&p, "HOST.EXAMPLE"), pair("mining", "=host.example"));
    assert_eq!(p.check_name("."), Decision::Pass);
    assert_eq!(p.check_name(&"a.".repeat(200)), Decision::Pass);
}

#[test]
fn malformed_names_never_panic() {
    let p = policy(&[("mining", FeedKind::Domains, &["example"])]);
    for n in [
        "..",
        "a..example",
        ".example",
        "example..",
        "\u{e9}.example",
        "a b.example",
    ] {
        let _ = p.check_name(n);
    }
    let _ = p.check_name_bytes(&[0xff, b'.', b'e']);
}

#[test]
fn verdict_carries_the_feed_action() {
    let p = policy(&[("mining", FeedKind::Domains, &["pool.example"])]);
    match p.check_name("pool.example") {
        Decision::Blocked(v) => assert_eq!(v.action(), Action::Nxdomain),
        other => panic!("{other:?}"),
    }
}

#[test]
fn match_name_borrows_and_formats_the_rule() {
    let p = policy(&[(
        "a",
        FeedKind::Domains,
        &["=host.example", "@@ok.host.example"],
    )]);
    let m = p.match_name(b"host.example").unwrap();
    assert!(!m.allowed && m.exact && !m.exception);
    assert_eq!(m.to_string(), "=host.example");
    assert_eq!(&*m.rule(), "=host.example");
    let m = p.match_name(b"ok.host.example").unwrap();
    assert!(m.allowed && m.exception);
    assert_eq!(m.to_string(), "@@ok.host.example");
    assert!(p.match_name(b"elsewhere.example").is_none());
}

#[test]
fn ip_longest_prefix_wins() {
    let p = policy(&[
        ("wide", FeedKind::Ips, &["10.0.0.0/8", "2001:db8::/32"]),
        (
            "narrow",
            FeedKind::Ips,
            &["10.1.0.0/16", "10.1.2.3/32", "2001:db8:1::/48"],
        ),
    ]);
    let rule = |ip: &str| {
        p.check_ip(ip.parse::<IpAddr>().unwrap())
            .map(|v| (v.feed.name.to_string(), v.rule.to_string()))
    };
    assert_eq!(rule("10.9.9.9"), Some(pair("wide", "10.0.0.0/8")));
    assert_eq!(rule("10.1.9.9"), Some(pair("narrow", "10.1.0.0/16")));
    assert_eq!(rule("10.1.2.3"), Some(pair("narrow", "10.1.2.3/32")));
    assert_eq!(rule("11.0.0.1"), None);
    assert_eq!(
        rule("2001:db8:1::5"),
        Some(pair("narrow", "2001:db8:1::/48"))
    );
    assert_eq!(rule("2001:db8:2::5"), Some(pair("wide", "2001:db8::/32")));
    assert_eq!(rule("2001:db9::1"), None);
}

#[test]
fn ipv4_mapped_addresses_are_checked_as_ipv4() {
    let p = policy(&[
        ("v4", FeedKind::Ips, &["10.0.0.0/8"]),
        ("mapped", FeedKind::Ips, &["::ffff:192.0.2.0/120"]),
        ("v6", FeedKind::Ips, &["::/0"]),
    ]);
    let rule = |ip: &str| {
        p.check_ip(ip.parse::<IpAddr>().unwrap())
            .map(|v| v.rule.to_string())
    };
    assert_eq!(rule("::ffff:10.1.2.3").as_deref(), Some("10.0.0.0/8"));
    // A mapped prefix in a feed covers the plain IPv4 address too, rule as written.
    assert_eq!(rule("192.0.2.7").as_deref(), Some("::ffff:192.0.2.0/120"));
    // v6 prefixes covering the mapped range still match when no v4 prefix does.
    assert_eq!(rule("::ffff:172.16.0.1").as_deref(), Some("::/0"));
    assert_eq!(rule("172.16.0.1"), None);
}

#[test]
fn ip_first_feed_wins_for_the_same_prefix_and_host_bits_are_ignored() {
    let p = policy(&[
        ("first", FeedKind::Ips, &["10.0.0.0/8"]),
        ("second", FeedKind::Ips, &["10.0.0.0/8", "10.2.3.4/8"]),
    ]);
    let v = p.check_ip("10.5.5.5".parse().unwrap()).unwrap();
    assert_eq!(&*v.feed.name, "first");
    assert_eq!(p.stats().ip_prefixes, 1);
    assert_eq!(p.ip_prefixes().count(), 1);
}

#[test]
fn publisher_list_is_merged_deduplicated_and_allowlist_subtracted() {
    let p = policy(&[
        (
            "mining",
            FeedKind::Domains,
            &[
                "pool.example",
                "x.pool.example",
                "=host.example",
                "ok.example",
                "=ex.example",
                "10.0.0.0/8",
            ],
        ),
        (
            "more",
            FeedKind::Domains,
            &[
                "pool.example",
                "=host.example",
                "other.example",
                "sub.ex.example",
            ],
        ),
        ("campus", FeedKind::Allow, &["ok.example", "=ex.example"]),
    ]);
    let mut got: Vec<(String, bool, String)> = p
        .blocked_names()
        .map(|b| (b.name.to_string(), b.exact, b.feed.name.to_string()))
        .collect();
    got.sort();
    let want = [
        ("host.example", true, "mining"),
        ("other.example", false, "more"),
        ("pool.example", false, "mining"),
        ("sub.ex.example", false, "more"),
    ];
    let want: Vec<(String, bool, String)> = want
        .iter()
        .map(|(n, e, f)| (n.to_string(), *e, f.to_string()))
        .collect();
    assert_eq!(got, want);
    let nets: Vec<String> = p.ip_prefixes().map(|n| n.net.to_string()).collect();
    assert_eq!(nets, ["10.0.0.0/8"]);
    // What the pool address set resolves: the same, plus names below a listed parent.
    let mut listed: Vec<&str> = p.listed_names().map(|b| b.name).collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        [
            "host.example",
            "other.example",
            "pool.example",
            "sub.ex.example",
            "x.pool.example"
        ]
    );
}

/// A site that allows everyone and has no zones, quarantine or conditional domains.
struct Open;

impl Site for Open {
    fn allows(&self, _: IpAddr) -> bool {
        true
    }
    fn walled(&self, _: IpAddr, _: &str) -> bool {
        false
    }
    fn local_zone(&self, _: &str) -> bool {
        false
    }
    fn conditional(&self, _: &str) -> Option<&str> {
        None
    }
}

#[test]
fn a_log_rule_forwards_the_name_and_carries_the_rule() {
    let watched = Arc::new(FeedInfo {
        action: Action::Log,
        category: "bypass".into(),
        ..(*info("bypass", FeedKind::Domains)).clone()
    });
    let parsed = [
        (info("mining", FeedKind::Domains), feed(&["pool.example"])),
        (watched, feed(&["dns.example", "cdn.example"])),
        (info("campus", FeedKind::Allow), feed(&["=cdn.example"])),
    ];
    let p = Policy::build(parsed.iter().map(|(i, f)| (i.clone(), f)));
    let client: IpAddr = [127, 0, 0, 1].into();
    match decide(&Open, &p, client, "doh.dns.example", 1) {
        QueryDecision::Forward {
            allowlisted: None,
            logged: Some(m),
        } => assert_eq!((&*m.feed.name, m.name), ("bypass", "dns.example")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        decide(&Open, &p, client, "pool.example", 1),
        QueryDecision::Blocked(_)
    ));
    // An allow rule wins over a log rule as over a block.
    assert!(matches!(
        decide(&Open, &p, client, "cdn.example", 1),
        QueryDecision::Forward {
            allowlisted: Some(_),
            logged: None
        }
    ));
    // Inspection never blocks on a log rule.
    assert_eq!(inspect(&p, [Seen::Cname("dns.example.")]), None);
    assert!(inspect(&p, [Seen::Cname("pool.example.")]).is_some());
}

#[test]
fn policy_is_send_sync_and_swappable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
    let shared: SharedPolicy = Arc::new(ArcSwap::from_pointee(Policy::empty()));
    shared.store(Arc::new(policy(&[(
        "m",
        FeedKind::Domains,
        &["pool.example"],
    )])));
    assert!(matches!(
        shared.load().check_name("pool.example"),
        Decision::Blocked(_)
    ));
}
