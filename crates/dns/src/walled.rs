//! The walled garden: what a quarantined client gets for every name it may not resolve.
//!
//! A → `[enforcement] notice_ipv4`, AAAA → `notice_ipv6` (the notice page, so a browser shows
//! why access stopped), every other type NXDOMAIN. Everything lives [`WALLED_TTL`] seconds,
//! so a released client is back online within that time instead of waiting out cached walled
//! answers: the NXDOMAIN carries the synthetic SOA with that TTL and MINIMUM (RFC 2308 §5),
//! so it is cached that long, no longer, and not re-asked at every lookup either (without an
//! SOA, RFC 2308 §5 says not to cache it at all). EDE 17 ("Filtered") tells `dig` users why.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::answer::synthetic_soa;
use crate::reply::{ExtendedError, Reply};
use poolguard_policy::Quarantine;

/// Seconds a walled-garden answer may be cached.
pub const WALLED_TTL: u32 = 30;
/// RFC 8914 INFO-CODE 17, "Filtered": the client, not the name, is restricted.
pub const EDE_FILTERED: u16 = 17;

/// The walled-garden answer for `qname`/`qtype`.
pub fn answer(q: &Quarantine, qname: &Name, qtype: RecordType) -> Reply {
    let data = match qtype {
        RecordType::A => Some(RData::A(A(q.notice_ipv4))),
        RecordType::AAAA => Some(RData::AAAA(AAAA(q.notice_ipv6))),
        _ => None,
    };
    let mut reply = match data {
        Some(d) => {
            let mut r = Reply::code(ResponseCode::NoError);
            r.answers
                .push(Record::from_rdata(qname.clone(), WALLED_TTL, d));
            r
        }
        None => {
            let mut r = Reply::code(ResponseCode::NXDomain);
            r.authorities.push(synthetic_soa(qname.clone(), WALLED_TTL));
            r
        }
    };
    reply.ede = Some(ExtendedError {
        info_code: EDE_FILTERED,
        text: "client quarantined by poolguard; see the notice page".to_string(),
    });
    reply
}
