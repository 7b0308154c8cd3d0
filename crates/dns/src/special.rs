//! Special-use names answered here, never forwarded: `localhost` and the loopback reverse
//! zones (RFC 6761 §6.3), `invalid` (RFC 6761 §6.4) and `onion` (RFC 7686 §2).
//!
//! hickory-resolver already answers these without asking upstream, but its negative answers
//! carry no SOA, so RFC 2308 §5 caches would not keep them and stubs would ask again at every
//! lookup. Answered here instead, each negative answer carries the synthetic SOA of
//! [`synthetic_soa`], owned by the special zone's apex, as Unbound's built-in local zones do;
//! AA is set, as for our own `[[zones]]` (poolguard is the authority for these names).
//!
//! * `localhost` and every name below it: A 127.0.0.1, AAAA ::1 (RFC 6761 §6.3 item 4: "for
//!   all such address queries"), any other type NODATA;
//! * `127.in-addr.arpa` and the `::1` reverse zone: PTR `localhost.`, any other type NODATA;
//! * `invalid`, `onion`: every name below them NXDOMAIN;
//! * the apex of each of these zones exists, as a zone's apex does: SOA and NS (`localhost.`)
//!   are answered, other types there are NODATA (as Unbound's local zones; an NXDOMAIN for
//!   `invalid.` itself would come with an SOA owned by the name it says does not exist).

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, NS, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::answer::synthetic_soa;
use crate::reply::Reply;
use poolguard_model::domain::name_within;

/// TTL of these answers and of their SOA: they never change (Unbound uses the same 3 hours).
pub const SPECIAL_TTL: u32 = 10_800;

/// How a special zone answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Addresses of the machine itself.
    Localhost,
    /// PTR `localhost.`.
    LoopbackReverse,
    /// NXDOMAIN.
    Nonexistent,
}

/// The special zones, in the policy's spelling (lower case, no trailing dot).
const ZONES: [(&str, Kind); 5] = [
    ("localhost", Kind::Localhost),
    ("127.in-addr.arpa", Kind::LoopbackReverse),
    (
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
        Kind::LoopbackReverse,
    ),
    ("invalid", Kind::Nonexistent),
    ("onion", Kind::Nonexistent),
];

/// The answer for `qname` (lower case, no trailing dot; `name` is the same name) when it is
/// a special-use name, else `None`.
pub fn answer(qname: &str, name: &Name, qtype: RecordType) -> Option<Reply> {
    let (zone, kind) = ZONES.iter().find(|(zone, _)| name_within(qname, zone))?;
    let apex = Name::from_ascii(format!("{zone}.")).ok()?;
    let at_apex = qname == *zone;
    let localhost = || Name::from_labels(["localhost"]).ok();
    let data = match (kind, qtype) {
        (_, RecordType::SOA) if at_apex => Some(synthetic_soa(apex.clone(), SPECIAL_TTL).data),
        (_, RecordType::NS) if at_apex => Some(RData::NS(NS(localhost()?))),
        (Kind::Localhost, RecordType::A) => Some(RData::A(A(Ipv4Addr::LOCALHOST))),
        (Kind::Localhost, RecordType::AAAA) => Some(RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))),
        (Kind::LoopbackReverse, RecordType::PTR) => Some(RData::PTR(PTR(localhost()?))),
        _ => None,
    };
    let rcode = match kind {
        Kind::Nonexistent if !at_apex => ResponseCode::NXDomain,
        _ => ResponseCode::NoError,
    };
    let mut reply = Reply::code(rcode);
    reply.authoritative = true;
    match data {
        Some(data) => reply
            .answers
            .push(Record::from_rdata(name.clone(), SPECIAL_TTL, data)),
        None => reply.authorities.push(synthetic_soa(apex, SPECIAL_TTL)),
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(qname: &str, qtype: RecordType) -> Option<Reply> {
        answer(
            qname,
            &Name::from_ascii(format!("{qname}.")).unwrap(),
            qtype,
        )
    }

    #[test]
    fn only_special_names_are_answered() {
        for name in [
            "localhostx",
            "xinvalid",
            "example.test",
            "onion.example",
            "local",
        ] {
            assert!(ask(name, RecordType::A).is_none(), "{name}");
        }
    }

    #[test]
    fn every_negative_answer_has_the_zone_soa() {
        for (name, qtype, rcode, apex) in [
            (
                "localhost",
                RecordType::MX,
                ResponseCode::NoError,
                "localhost.",
            ),
            (
                "a.b.invalid",
                RecordType::A,
                ResponseCode::NXDomain,
                "invalid.",
            ),
            ("invalid", RecordType::A, ResponseCode::NoError, "invalid."),
            (
                "x.onion",
                RecordType::AAAA,
                ResponseCode::NXDomain,
                "onion.",
            ),
            (
                "1.0.0.127.in-addr.arpa",
                RecordType::A,
                ResponseCode::NoError,
                "127.in-addr.arpa.",
            ),
        ] {
            let r = ask(name, qtype).expect("special");
            assert_eq!(r.rcode, rcode, "{name}");
            assert!(r.answers.is_empty());
            assert_eq!(r.authorities.len(), 1);
            assert_eq!(r.authorities[0].name.to_ascii(), apex);
            assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        }
        let r = ask("www.localhost", RecordType::AAAA).expect("special");
        assert_eq!(r.answers[0].data, RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)));
        let r = ask("1.0.0.127.in-addr.arpa", RecordType::PTR).expect("special");
        assert_eq!(r.answers.len(), 1);
        for zone in ["invalid", "localhost", "onion"] {
            let r = ask(zone, RecordType::SOA).expect("special");
            assert_eq!(r.rcode, ResponseCode::NoError);
            assert_eq!(r.answers[0].record_type(), RecordType::SOA, "{zone}");
            let r = ask(zone, RecordType::NS).expect("special");
            assert_eq!(r.answers[0].record_type(), RecordType::NS, "{zone}");
        }
    }
}
