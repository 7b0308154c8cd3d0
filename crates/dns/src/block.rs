//! Block answers: what a client sees for a listed name, per the feed's [`Action`], described
//! once here and encoded twice — as a hickory [`Reply`](crate::reply::Reply) by
//! [`crate::answer::reply`] (the general path) and as bytes written in place by
//! [`crate::fast::block::BlockWriter`] (the fast path). The rules live only in
//! [`BlockRules::describe`] and [`SyntheticSoa`]; the encoders only encode.
//!
//! * `refuse` → REFUSED; `nxdomain` → NXDOMAIN; `nodata` → NOERROR with no answers;
//! * `sinkhole` → A gets `sinkhole_ipv4`, AAAA gets `sinkhole_ipv6`, every other type is NODATA.
//!   An MX or HTTPS query never gets an A record: that would be a malformed answer that some
//!   stub resolvers cache under the wrong type.
//!
//! Negative answers (NXDOMAIN, NODATA) carry a synthetic SOA in the authority section whose
//! MINIMUM and TTL are `[blocking] ttl`: without it RFC 2308 resolvers do not cache the negative
//! answer and a mining client would ask again every second. The SOA is owned by the query name
//! itself (a one-name synthetic zone), so it never claims authority over a parent domain.
//! Every block answer carries EDE 15 ("Blocked") naming the feed, for clients that use EDNS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;

use crate::reply::EDE_BLOCKED;
use poolguard_config::BlockingConfig;
use poolguard_model::Action;

/// RR type A, as the query's QTYPE spells it.
const TYPE_A: u16 = 1;
/// RR type AAAA, as the query's QTYPE spells it.
const TYPE_AAAA: u16 = 28;

/// The `[blocking]` settings a block answer is made of, read once at start.
#[derive(Debug, Clone)]
pub struct BlockRules {
    ttl: u32,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
}

/// One block answer, before it is encoded: everything an encoder needs besides the request it
/// echoes (ID, question, flags, OPT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockAnswer<'f> {
    /// The response code.
    pub rcode: ResponseCode,
    /// The one record, if any, and the section it goes in.
    pub record: BlockRecord,
    /// TTL of that record (`[blocking] ttl`).
    pub ttl: u32,
    /// The Extended DNS Error, sent only to EDNS clients.
    pub ede: BlockedEde<'f>,
}

/// The record of a block answer; its owner is always the query name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockRecord {
    /// No record: the rcode says it all (REFUSED).
    None,
    /// The [`SyntheticSoa`] in the authority section (NXDOMAIN, NODATA), so it is cached.
    Soa,
    /// One sinkhole address in the answer section: A for IPv4, AAAA for IPv6.
    Address(IpAddr),
}

/// EDE 15 ("Blocked", RFC 8914) naming the feed: EXTRA-TEXT is [`BlockedEde::TEXT_PREFIX`]
/// followed by the feed name, kept as two parts so the fast path writes it without formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockedEde<'f> {
    /// RFC 8914 INFO-CODE: always 15, Blocked.
    pub info_code: u16,
    /// The feed that listed the name.
    pub feed: &'f str,
}

impl BlockedEde<'_> {
    /// What EXTRA-TEXT says before the feed name: what `dig` shows the person asking.
    pub const TEXT_PREFIX: &'static str = "blocked by poolguard feed ";

    /// The whole EXTRA-TEXT (the general path's `ExtendedError`).
    pub fn text(&self) -> String {
        // Sized once: `format!` would start from an empty buffer here and grow it twice.
        let mut text = String::with_capacity(Self::TEXT_PREFIX.len() + self.feed.len());
        text.push_str(Self::TEXT_PREFIX);
        text.push_str(self.feed);
        text
    }
}

/// The SOA of every negative answer poolguard makes itself (blocks, the walled garden,
/// special-use names): `ttl` as TTL, refresh, retry, expire and MINIMUM (RFC 2308 §5: the
/// negative answer is cached for the smaller of TTL and MINIMUM), MNAME `poolguard.invalid.`
/// and RNAME `hostmaster.poolguard.invalid.`: `.invalid` (RFC 6761) can never resolve, so
/// nobody mistakes this SOA for a real zone's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticSoa {
    /// TTL of the record and MINIMUM.
    pub ttl: u32,
}

impl SyntheticSoa {
    /// MNAME's labels.
    pub const MNAME: [&'static str; 2] = ["poolguard", "invalid"];
    /// RNAME's labels.
    pub const RNAME: [&'static str; 3] = ["hostmaster", "poolguard", "invalid"];
    /// SERIAL: the zone never changes.
    pub const SERIAL: u32 = 1;

    /// REFRESH, RETRY and EXPIRE: the TTL, capped to the signed 32 bits they are.
    pub fn timer(&self) -> i32 {
        i32::try_from(self.ttl).unwrap_or(i32::MAX)
    }

    /// MINIMUM: the negative-caching TTL (RFC 2308 §4).
    pub fn minimum(&self) -> u32 {
        self.ttl
    }
}

impl BlockRules {
    /// Takes the sinkhole addresses and TTL from config.
    pub fn new(config: &BlockingConfig) -> Self {
        Self {
            ttl: config.ttl,
            v4: config.sinkhole_ipv4,
            v6: config.sinkhole_ipv6,
        }
    }

    /// `[blocking] ttl`: the TTL of every block answer's record and SOA.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// `[blocking] sinkhole_ipv4`, the A record of a sinkhole answer.
    pub fn sinkhole_ipv4(&self) -> Ipv4Addr {
        self.v4
    }

    /// `[blocking] sinkhole_ipv6`, the AAAA record of a sinkhole answer.
    pub fn sinkhole_ipv6(&self) -> Ipv6Addr {
        self.v6
    }

    /// The answer to a `qtype` query (the QTYPE number) for a name `feed` lists with `action`.
    #[inline]
    pub fn describe<'f>(&self, qtype: u16, action: Action, feed: &'f str) -> BlockAnswer<'f> {
        let (rcode, record) = match action {
            Action::Refuse => (ResponseCode::Refused, BlockRecord::None),
            Action::Nxdomain => (ResponseCode::NXDomain, BlockRecord::Soa),
            // `log` never blocks (`policy::decide` and `inspect` pass it by); should a caller
            // still ask, NODATA is the answer that claims least.
            Action::Nodata | Action::Log => (ResponseCode::NoError, BlockRecord::Soa),
            Action::Sinkhole => match qtype {
                TYPE_A => (ResponseCode::NoError, BlockRecord::Address(self.v4.into())),
                TYPE_AAAA => (ResponseCode::NoError, BlockRecord::Address(self.v6.into())),
                _ => (ResponseCode::NoError, BlockRecord::Soa),
            },
        };
        BlockAnswer {
            rcode,
            record,
            ttl: self.ttl,
            ede: BlockedEde {
                info_code: EDE_BLOCKED,
                feed,
            },
        }
    }
}

/// Rules for unit tests: sinkhole 192.0.2.1 / 2001:db8::1, TTL 120.
#[cfg(test)]
pub(crate) fn test_rules() -> BlockRules {
    BlockRules::new(&BlockingConfig {
        sinkhole_ipv4: Ipv4Addr::new(192, 0, 2, 1),
        sinkhole_ipv6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        ttl: 120,
        ..BlockingConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinkhole_answers_only_address_queries() {
        let a = test_rules().describe(TYPE_A, Action::Sinkhole, "mining");
        assert_eq!(a.record, BlockRecord::Address([192, 0, 2, 1].into()));
        assert_eq!(a.ttl, 120);
        let aaaa = test_rules().describe(TYPE_AAAA, Action::Sinkhole, "mining");
        assert_eq!(
            aaaa.record,
            BlockRecord::Address("2001:db8::1".parse().unwrap())
        );
        // MX, TXT, HTTPS: NODATA with the SOA, never an address of the wrong type.
        for qtype in [15, 16, 65] {
            let r = test_rules().describe(qtype, Action::Sinkhole, "mining");
            assert_eq!(r.rcode, ResponseCode::NoError, "type {qtype}");
            assert_eq!(r.record, BlockRecord::Soa, "type {qtype}");
        }
    }

    #[test]
    fn refuse_has_no_soa_but_names_the_feed() {
        let r = test_rules().describe(TYPE_A, Action::Refuse, "mining");
        assert_eq!(r.rcode, ResponseCode::Refused);
        assert_eq!(r.record, BlockRecord::None);
        assert_eq!(r.ede.info_code, 15);
        assert_eq!(r.ede.text(), "blocked by poolguard feed mining");
    }

    #[test]
    fn soa_timers_are_the_ttl_capped_to_i32() {
        let soa = SyntheticSoa { ttl: u32::MAX };
        assert_eq!(soa.timer(), i32::MAX);
        assert_eq!(soa.minimum(), u32::MAX);
    }
}
