//! The DNS fast path's block answer allocates nothing: query bytes in, decision, block-answer
//! description, answer bytes written in place, with the query log off. Counted with a
//! wrapping global allocator, in a binary of its own so no other test allocates meanwhile.

use std::sync::Arc;

use poolguard::config::{Config, FeedKind};
use poolguard::dns::fast::FastPath;
use poolguard::dns::fast::cache::PacketCache;
use poolguard::dns::shared::Shared;
use poolguard::dns::zones::LocalZones;
use poolguard::policy::{Action, Policy};
use poolguard::record::{Recorder, Transport};

#[path = "../benches/support/names.rs"]
mod names;

#[path = "../benches/support/packets.rs"]
mod packets;
use packets::query;

#[path = "support/alloc_counter.rs"]
mod alloc_counter;
use alloc_counter::allocations;

/// Every action, for A, AAAA and MX, with and without EDNS.
#[test]
fn fast_path_block_answers_do_not_allocate() {
    let config = Config::default();
    let feed = names::feed_of(1_000);
    let hit = names::pool_name(4);
    let src = std::net::SocketAddr::from(([127, 0, 0, 1], 40_000));
    for action in [
        Action::Refuse,
        Action::Nxdomain,
        Action::Nodata,
        Action::Sinkhole,
    ] {
        let mut info = (*names::info("mining", FeedKind::Domains)).clone();
        info.action = action;
        let policy = Arc::new(arc_swap::ArcSwap::from_pointee(Policy::build([(
            Arc::new(info),
            &feed,
        )])));
        let zones = LocalZones::load(&config).expect("no zones configured");
        let shared = Shared::new(&config, policy, Recorder::disabled(), zones, None, 1);
        let cache = Arc::new(PacketCache::new(16, std::time::Duration::ZERO));
        let fast = FastPath::new(Arc::new(shared), cache, Arc::default());
        for (qtype, edns) in [(1u16, false), (1, true), (28, true), (15, false)] {
            let packet = query(0x1234, &hit, qtype, edns);
            let mut out = [0u8; 512];
            // The first answer may set up per-thread state (the policy snapshot's guard).
            assert!(
                fast.answer(&packet, src, Transport::Udp, &mut out)
                    .is_some()
            );
            let n = allocations(|| {
                assert!(
                    fast.answer(&packet, src, Transport::Udp, &mut out)
                        .is_some()
                );
            });
            assert_eq!(n, 0, "{action:?} type {qtype} edns {edns}");
        }
    }
}
