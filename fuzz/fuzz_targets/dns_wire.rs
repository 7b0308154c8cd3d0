//! Bytes → the wire gate and the hand-built error answers (`dns::wire`): pure and fast, so it
//! explores header corner cases far quicker than the full path.
#![no_main]

use hickory_proto::op::{Message, ResponseCode};
use hickory_server::net::xfer::Protocol;
use libfuzzer_sys::fuzz_target;
use poolguard::dns::wire::{self, Gate};

fuzz_target!(|data: &[u8]| {
    let src = ([127, 0, 0, 1], 5300).into();
    match wire::gate(data.to_vec(), src, Protocol::Udp) {
        Gate::Drop(_) => {}
        Gate::Reply(r) => {
            assert_eq!(r.len(), wire::HEADER_LEN);
            assert_eq!(r[..2], data[..2]);
            assert_eq!(r[2] & 0x80, 0x80);
            Message::from_vec(&r).expect("header-only answers parse");
        }
        Gate::Request(req) => {
            assert_eq!(req.metadata.id, u16::from_be_bytes([data[0], data[1]]));
            assert_eq!(req.queries.queries().len(), 1);
        }
    }
    if data.len() >= wire::HEADER_LEN {
        let slip = wire::slip_reply(data);
        assert!(slip.len() <= data.len().max(wire::HEADER_LEN), "slip amplifies");
        let m = Message::from_vec(&slip).expect("slip parses");
        assert!(m.metadata.truncation);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    }
});
