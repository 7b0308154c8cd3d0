//! Bytes → poolguard's whole request path without sockets (`Frontend::respond`): the wire
//! gate, hickory's parser, our handler (access, checks, policy, block answers, RFC 8482, local
//! decisions) and response encoding. Forwarded names go to 127.0.0.1:9 (nothing listens) with
//! a 1 ms budget, so they come back as SERVFAIL quickly.
//!
//! Invariants checked on every input: no panic; an answer, if any, is a well-formed DNS
//! response (QR=1) with the request's ID, never answers a response, and fits the client's UDP
//! size (512 without EDNS, our 1232 at most).
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use hickory_proto::op::{Message, MessageType};
use hickory_server::net::xfer::Protocol;
use libfuzzer_sys::fuzz_target;
use poolguard::dns::listen::Frontend;
use poolguard::policy::Action;

struct Bed {
    runtime: tokio::runtime::Runtime,
    front: Frontend,
}

fn bed() -> &'static Bed {
    static BED: OnceLock<Bed> = OnceLock::new();
    BED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let front = runtime.block_on(async {
            Frontend::offline_with_feed("pool.example\nxmr.test\n*.mine.test\n", Action::Sinkhole)
                .expect("front end")
        });
        Bed { runtime, front }
    })
}

fuzz_target!(|data: &[u8]| {
    let bed = bed();
    // The first byte picks transport and client (allowed or not), the rest is the packet.
    let Some((&selector, packet)) = data.split_first() else {
        return;
    };
    let protocol = if selector & 1 == 0 {
        Protocol::Udp
    } else {
        Protocol::Tcp
    };
    let src: SocketAddr = if selector & 2 == 0 {
        ([127, 0, 0, 1], 5300).into()
    } else {
        ([198, 51, 100, 7], 5300).into()
    };
    let answer = bed
        .runtime
        .block_on(bed.front.respond(packet.to_vec(), src, protocol));
    let Some(answer) = answer else {
        return;
    };
    assert!(
        packet.len() >= 12,
        "answered a packet shorter than a header"
    );
    assert_eq!(packet[2] & 0x80, 0, "answered a response (QR=1)");
    assert_eq!(answer[..2], packet[..2], "ID not echoed");
    let message = Message::from_vec(&answer)
        .unwrap_or_else(|e| panic!("our answer does not parse: {e}: {answer:02x?}"));
    assert_eq!(message.metadata.message_type, MessageType::Response);
    if protocol == Protocol::Udp {
        let edns = Message::from_vec(packet).ok().and_then(|m| m.edns);
        let limit = edns.map_or(512, |e| e.max_payload().clamp(512, 1232));
        assert!(
            answer.len() <= usize::from(limit),
            "{} > {limit}",
            answer.len()
        );
    }
});
