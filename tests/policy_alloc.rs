//! The hot path allocates nothing: a pass (the common answer) and `match_name` (the borrowed
//! form for the DNS fast path) must not touch the allocator; `check_name` on a block allocates
//! exactly once (the rule `Arc<str>`). Counted with a wrapping global allocator.

use poolguard::config::FeedKind;
use poolguard::policy::{Decision, Policy, QueryDecision, Site, decide};

#[path = "../benches/support/names.rs"]
mod names;

#[path = "support/alloc_counter.rs"]
mod alloc_counter;
use alloc_counter::allocations;

#[test]
fn lookups_do_not_allocate() {
    let feed = names::feed_of(10_000);
    let p = Policy::build([(names::info("mining", FeedKind::Domains), &feed)]);
    let hit = names::pool_name(4);
    let deep = format!("a.b.{hit}");
    let miss = names::campus_name(1);
    let upper = hit.to_uppercase() + ".";

    assert_eq!(
        allocations(|| assert_eq!(p.check_name(&miss), Decision::Pass)),
        0,
        "pass"
    );
    assert_eq!(
        allocations(|| assert!(p.match_name(hit.as_bytes()).is_some())),
        0,
        "match_name"
    );
    assert_eq!(
        allocations(|| assert!(p.match_name(deep.as_bytes()).is_some())),
        0,
        "deep"
    );
    assert_eq!(
        allocations(|| assert!(p.match_name(upper.as_bytes()).is_some())),
        0,
        "upper case"
    );
    let one = allocations(|| assert!(matches!(p.check_name(&hit), Decision::Blocked(_))));
    assert_eq!(one, 1, "a blocked verdict allocates its rule text once");
    // `decide`, the whole pre-resolution decision the fast path takes, borrows too.
    let site = Campus(vec!["corp.example".into()]);
    let client = std::net::Ipv4Addr::LOCALHOST.into();
    assert_eq!(
        allocations(|| assert!(matches!(
            decide(&site, &p, client, &hit, 1),
            QueryDecision::Blocked(_)
        ))),
        0,
        "decide: block"
    );
    assert_eq!(
        allocations(|| assert!(matches!(
            decide(&site, &p, client, &miss, 1),
            QueryDecision::Forward {
                allowlisted: None,
                logged: None
            }
        ))),
        0,
        "decide: forward"
    );
    assert_eq!(
        allocations(|| assert!(matches!(
            decide(&site, &p, client, "host.corp.example", 1),
            QueryDecision::Conditional { .. }
        ))),
        0,
        "decide: conditional"
    );
    let ip = "10.0.0.1"
        .parse()
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    assert_eq!(
        allocations(|| assert!(p.check_ip(ip).is_none())),
        0,
        "check_ip"
    );
}

/// A site with one conditional domain, everyone allowed, nobody quarantined, no zones.
struct Campus(Vec<String>);

impl Site for Campus {
    fn allows(&self, _: std::net::IpAddr) -> bool {
        true
    }
    fn walled(&self, _: std::net::IpAddr, _: &str) -> bool {
        false
    }
    fn local_zone(&self, _: &str) -> bool {
        false
    }
    fn conditional(&self, qname: &str) -> Option<&str> {
        self.0
            .iter()
            .map(String::as_str)
            .find(|d| poolguard::domain::name_within(qname, d))
    }
}
