//! A million names, the size the design promises (DESIGN.md §5): build, then check a sample of
//! hits, misses, subdomains, overlaps between feeds and allowlist holes. Behaviour only; the
//! time and memory it takes are measured by `examples/policy_load.rs` and the bench.

use poolguard::config::FeedKind;
use poolguard::domain::DomainName;
use poolguard::feeds::{DomainEntry, ParsedFeed};
use poolguard::policy::{Decision, Policy};

#[path = "../benches/support/names.rs"]
mod names;

const N: usize = 1_000_000;

fn rule_of(d: Decision) -> Option<(bool, String, String)> {
    match d {
        Decision::Pass => None,
        Decision::Allowed(v) => Some((true, v.feed.name.to_string(), v.rule.to_string())),
        Decision::Blocked(v) => Some((false, v.feed.name.to_string(), v.rule.to_string())),
    }
}

#[test]
fn a_million_names_answer_like_a_small_policy() {
    let big = names::feed_of(N);
    // A second feed repeating every 10th name: deduplicated, and the first feed keeps them.
    let overlap = ParsedFeed {
        domains: big.domains.iter().step_by(10).cloned().collect(),
        ..Default::default()
    };
    // Every 1000th name gets an allowlisted subdomain.
    let allow = ParsedFeed {
        domains: (0..N)
            .step_by(1000)
            .map(|i| DomainEntry {
                name: DomainName::parse(&format!("ok.{}", names::pool_name(i))).unwrap(),
                exact: false,
            })
            .collect(),
        ..Default::default()
    };
    let (mining, other, campus) = (
        names::info("mining", FeedKind::Domains),
        names::info("other", FeedKind::Domains),
        names::info("campus", FeedKind::Allow),
    );
    let p = Policy::build([(mining, &big), (other, &overlap), (campus, &allow)]);

    let stats = p.stats();
    assert_eq!(stats.blocked_names, N);
    assert_eq!(stats.allowed_names, N / 1000);

    for i in (0..N).step_by(997) {
        let name = names::pool_name(i);
        // `feed_of` makes every 50th-plus-7 name exact-only.
        let exact = i % 50 == 7;
        let rule = if exact {
            format!("={name}")
        } else {
            name.clone()
        };
        assert_eq!(
            rule_of(p.check_name(&name)),
            Some((false, "mining".into(), rule.clone())),
            "{name}"
        );
        let sub = format!("deep.worker.{name}");
        let want_sub = (!exact).then(|| (false, "mining".to_string(), rule.clone()));
        assert_eq!(rule_of(p.check_name(&sub)), want_sub, "{sub}");
        assert_eq!(p.check_name(&names::campus_name(i)), Decision::Pass);
    }
    for i in (0..N).step_by(1000) {
        let hole = format!("x.ok.{}", names::pool_name(i));
        let ok = format!("ok.{}", names::pool_name(i));
        assert_eq!(
            rule_of(p.check_name(&hole)),
            Some((true, "campus".into(), ok)),
            "{hole}"
        );
    }
    // Publisher view: every name once, no allowlisted one (none of the blocked names itself
    // is allowlisted here, so all of them).
    assert_eq!(p.blocked_names().count(), N);
}
