//! The hot path allocates nothing: a pass (the common answer) and `match_name` (the borrowed
//! form for the DNS fast path) must not touch the allocator; `check_name` on a block allocates
//! exactly once (the rule `Arc<str>`). Counted with a wrapping global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use poolguard::config::FeedKind;
use poolguard::policy::{Decision, Policy};

#[path = "../benches/support/names.rs"]
mod names;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: `unsafe` is what `GlobalAlloc` requires; every call is forwarded unchanged to the
// system allocator, only a counter is added. Test-only: proving "zero allocations" needs it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCS.load(Ordering::Relaxed);
    f();
    ALLOCS.load(Ordering::Relaxed) - before
}

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
    let ip = "10.0.0.1"
        .parse()
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    assert_eq!(
        allocations(|| assert!(p.check_ip(ip).is_none())),
        0,
        "check_ip"
    );
}
