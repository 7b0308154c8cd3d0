//! The matcher against a naive reference: a scan over every rule of every feed, written
//! straight from the precedence rules (allow wins; then the longest matching rule; then the
//! first feed in config order; subtree before exact for the same name and feed). Random feeds
//! over a tiny label alphabet, so names collide, nest and repeat a lot.

use std::cmp::Reverse;
use std::sync::Arc;

use poolguard::config::{FeedKind, Severity};
use poolguard::domain::DomainName;
use poolguard::feeds::{DomainEntry, ParsedFeed};
use poolguard::policy::{Action, Decision, FeedInfo, Policy, Verdict};
use proptest::prelude::*;

const LABELS: &[&str] = &["a", "b", "pool", "x", "ex-1"];

fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(LABELS), 1..5).prop_map(|l| l.join("."))
}

fn rules() -> impl Strategy<Value = Vec<DomainEntry>> {
    prop::collection::vec(
        (name(), any::<bool>()).prop_map(|(n, exact)| DomainEntry {
            name: DomainName::parse(&n).unwrap(),
            exact,
        }),
        0..8,
    )
}

fn feeds() -> impl Strategy<Value = Vec<(Arc<FeedInfo>, ParsedFeed)>> {
    let kind = prop::sample::select(vec![FeedKind::Domains, FeedKind::Domains, FeedKind::Allow]);
    prop::collection::vec(
        (kind, rules(), prop::collection::vec(any::<bool>(), 0..3)),
        1..5,
    )
    .prop_map(|fs| {
        fs.into_iter()
            .enumerate()
            .map(|(i, (kind, domains, exc))| {
                // Exceptions reuse some of the feed's own names, as adblock lists do.
                let exceptions = domains
                    .iter()
                    .zip(&exc)
                    .filter(|(_, e)| **e)
                    .map(|(d, _)| d.clone())
                    .collect();
                let info = Arc::new(FeedInfo {
                    name: format!("feed{i}").into(),
                    kind,
                    action: Action::Nxdomain,
                    category: "mining".into(),
                    severity: Severity::Medium,
                });
                (
                    info,
                    ParsedFeed {
                        domains,
                        exceptions,
                        ..Default::default()
                    },
                )
            })
            .collect()
    })
}

fn covers(rule: &DomainEntry, q: &str) -> bool {
    let n = rule.name.as_str();
    q == n
        || (!rule.exact
            && q.len() > n.len()
            && q.ends_with(n)
            && q.as_bytes()[q.len() - n.len() - 1] == b'.')
}

fn reference(feeds: &[(Arc<FeedInfo>, ParsedFeed)], q: &str) -> Decision {
    type Key = (Reverse<usize>, usize, bool, usize);
    let mut allow: Option<(Key, Verdict)> = None;
    let mut block: Option<(Key, Verdict)> = None;
    for (fi, (info, p)) in feeds.iter().enumerate() {
        let listed = p
            .domains
            .iter()
            .map(|d| (d, false))
            .chain(p.exceptions.iter().map(|d| (d, true)));
        for (seq, (d, exception)) in listed.enumerate() {
            if !covers(d, q) {
                continue;
            }
            let key = (Reverse(d.name.as_str().len()), fi, d.exact, seq);
            let rule = format!(
                "{}{}{}",
                if exception { "@@" } else { "" },
                if d.exact { "=" } else { "" },
                d.name
            );
            let v = Verdict {
                feed: info.clone(),
                rule: rule.into(),
            };
            let target = if exception || info.kind == FeedKind::Allow {
                &mut allow
            } else {
                &mut block
            };
            if target.as_ref().is_none_or(|(k, _)| key < *k) {
                *target = Some((key, v));
            }
        }
    }
    match (allow, block) {
        (Some((_, v)), _) => Decision::Allowed(v),
        (None, Some((_, v))) => Decision::Blocked(v),
        (None, None) => Decision::Pass,
    }
}

fn build(feeds: &[(Arc<FeedInfo>, ParsedFeed)]) -> Policy {
    Policy::build(feeds.iter().map(|(i, p)| (i.clone(), p)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matcher_agrees_with_a_linear_scan(feeds in feeds(), queries in prop::collection::vec(name(), 1..24)) {
        let policy = build(&feeds);
        for q in &queries {
            prop_assert_eq!(policy.check_name(q), reference(&feeds, q), "query {}", q);
            // Same answer for the forms a careless caller might pass.
            prop_assert_eq!(policy.check_name(&format!("{}.", q.to_uppercase())), reference(&feeds, q));
        }
    }

    #[test]
    fn publisher_list_is_blocked_complete_and_minimal(feeds in feeds(), queries in prop::collection::vec(name(), 1..24)) {
        let policy = build(&feeds);
        let published: Vec<(String, bool)> = policy.blocked_names().map(|b| (b.name.to_string(), b.exact)).collect();
        let as_entry = |(n, exact): &(String, bool)| DomainEntry { name: DomainName::parse(n).unwrap(), exact: *exact };
        for (n, _) in &published {
            // Every listed name is blocked by the policy itself...
            prop_assert!(matches!(reference(&feeds, n), Decision::Blocked(_)), "{} listed but not blocked", n);
            // ...and not already covered by another listed entry.
            let others = published.iter().filter(|(m, _)| m != n).map(as_entry);
            for o in others {
                prop_assert!(!covers(&o, n), "{} is redundant under {}", n, o.name);
            }
        }
        // Every blocked name is covered, unless an exact allow holds back its parent rule
        // (documented: the publisher fails open there).
        let exact_allows = feeds.iter().any(|(i, p)| {
            p.exceptions.iter().any(|d| d.exact) || (i.kind == FeedKind::Allow && p.domains.iter().any(|d| d.exact))
        });
        if !exact_allows {
            for q in &queries {
                if matches!(reference(&feeds, q), Decision::Blocked(_)) {
                    prop_assert!(published.iter().map(as_entry).any(|e| covers(&e, q)), "{} blocked but not published", q);
                }
            }
        }
    }
}
