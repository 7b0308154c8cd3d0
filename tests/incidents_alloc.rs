//! The DNS path's quarantine check allocates nothing and takes no lock: `contains` is one
//! `ArcSwap` load plus one hash lookup, `is_reachable` walks slices of the name. Counted with a
//! wrapping global allocator (the pattern of `tests/policy_alloc.rs`).

use std::net::IpAddr;

use poolguard::incidents::Quarantine;
use poolguard::incidents::config::EnforcementConfig;

#[path = "support/alloc_counter.rs"]
mod alloc_counter;
use alloc_counter::allocations;

#[test]
fn incidents_quarantine_check_does_not_allocate() {
    let q = Quarantine::new(&EnforcementConfig {
        reachable: vec!["portal.campus.edu".into(), "helpdesk.campus.edu".into()],
        ..EnforcementConfig::default()
    });
    let inside: IpAddr = "10.20.3.7".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let outside: IpAddr = "10.20.3.8".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let mapped: IpAddr = "::ffff:10.20.3.7".parse().unwrap_or(inside);
    // Empty set (the common case): still no allocation.
    assert!(!q.contains(inside)); // warms this thread's arc-swap slot (allocated once per thread)
    assert_eq!(allocations(|| assert!(!q.contains(inside))), 0, "empty set");
    for i in 0..10_000u32 {
        q.insert(IpAddr::from((0x0a00_0000 + i).to_be_bytes()));
    }
    q.insert(inside);
    assert_eq!(allocations(|| assert!(q.contains(inside))), 0, "hit");
    assert_eq!(
        allocations(|| assert!(q.contains(mapped))),
        0,
        "IPv4-mapped"
    );
    assert_eq!(allocations(|| assert!(!q.contains(outside))), 0, "miss");
    assert_eq!(
        allocations(|| assert!(q.is_reachable("www.portal.campus.edu"))),
        0,
        "reachable"
    );
    assert_eq!(
        allocations(|| assert!(!q.is_reachable("xmr.pool.minergate.com"))),
        0,
        "not reachable"
    );
}
