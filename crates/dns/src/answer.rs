//! Block answers: what a client sees for a listed name, per the feed's [`Action`].
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

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::reply::{ExtendedError, Reply};
use poolguard_config::BlockingConfig;
use poolguard_model::Action;

/// The block-answer synthesiser, built once from `[blocking]`.
#[derive(Debug, Clone)]
pub struct BlockAnswers {
    ttl: u32,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
}

/// The SOA of every negative answer poolguard makes itself (blocks, the walled garden,
/// special-use names): owned by `owner`, `ttl` as TTL, refresh, retry, expire and MINIMUM
/// (RFC 2308 §5: the negative answer is cached for the smaller of TTL and MINIMUM), MNAME
/// `poolguard.invalid.` and RNAME `hostmaster.poolguard.invalid.`: `.invalid` (RFC 6761)
/// can never resolve, so nobody mistakes this SOA for a real zone's.
pub fn synthetic_soa(owner: Name, ttl: u32) -> Record {
    let mname = Name::from_labels(["poolguard", "invalid"]).unwrap_or_else(|_| Name::root());
    let rname =
        Name::from_labels(["hostmaster", "poolguard", "invalid"]).unwrap_or_else(|_| Name::root());
    let timer = i32::try_from(ttl).unwrap_or(i32::MAX);
    let soa = SOA::new(mname, rname, 1, timer, timer, timer, ttl);
    Record::from_rdata(owner, ttl, RData::SOA(soa))
}

impl BlockAnswers {
    /// Takes the sinkhole addresses and TTL from config.
    pub fn new(config: &BlockingConfig) -> Self {
        Self {
            ttl: config.ttl,
            v4: config.sinkhole_ipv4,
            v6: config.sinkhole_ipv6,
        }
    }

    /// The answer for `qname`/`qtype` blocked by `feed` with `action`.
    pub fn answer(&self, qname: &Name, qtype: RecordType, action: Action, feed: &str) -> Reply {
        let mut reply = match action {
            Action::Refuse => Reply::code(ResponseCode::Refused),
            Action::Nxdomain => self.negative(qname, ResponseCode::NXDomain),
            Action::Nodata => self.negative(qname, ResponseCode::NoError),
            Action::Sinkhole => match qtype {
                RecordType::A => self.positive(qname, RData::A(A(self.v4))),
                RecordType::AAAA => self.positive(qname, RData::AAAA(AAAA(self.v6))),
                _ => self.negative(qname, ResponseCode::NoError),
            },
        };
        reply.ede = Some(ExtendedError::blocked(feed));
        reply
    }

    fn positive(&self, qname: &Name, data: RData) -> Reply {
        let mut reply = Reply::code(ResponseCode::NoError);
        reply
            .answers
            .push(Record::from_rdata(qname.clone(), self.ttl, data));
        reply
    }

    fn negative(&self, qname: &Name, rcode: ResponseCode) -> Reply {
        let mut reply = Reply::code(rcode);
        reply
            .authorities
            .push(synthetic_soa(qname.clone(), self.ttl));
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers() -> BlockAnswers {
        BlockAnswers::new(&BlockingConfig {
            sinkhole_ipv4: Ipv4Addr::new(192, 0, 2, 1),
            sinkhole_ipv6: "2001:db8::1".parse().unwrap(),
            ttl: 120,
            ..BlockingConfig::default()
        })
    }

    #[test]
    fn sinkhole_answers_only_address_queries() {
        let name = Name::from_ascii("x.pool.example.").unwrap();
        let a = answers().answer(&name, RecordType::A, Action::Sinkhole, "mining");
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.answers[0].ttl, 120);
        for t in [RecordType::MX, RecordType::TXT, RecordType::HTTPS] {
            let r = answers().answer(&name, t, Action::Sinkhole, "mining");
            assert!(r.answers.is_empty(), "{t} got an answer");
            assert_eq!(r.rcode, ResponseCode::NoError);
            assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        }
    }

    #[test]
    fn refuse_has_no_soa() {
        let name = Name::from_ascii("x.pool.example.").unwrap();
        let r = answers().answer(&name, RecordType::A, Action::Refuse, "mining");
        assert_eq!(r.rcode, ResponseCode::Refused);
        assert!(r.authorities.is_empty());
        assert!(r.ede.is_some());
    }
}
