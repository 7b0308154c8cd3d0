//! The general path's encoder of a block answer: a [`BlockAnswer`] (the rules are in
//! [`crate::block`]) becomes the [`Reply`] the handler encodes like every other stage's.
//! Also the hickory form of the [`SyntheticSoa`], which the walled garden and special-use
//! names use for their negative answers too.

use hickory_proto::rr::rdata::{A, AAAA, SOA};
use hickory_proto::rr::{Name, RData, Record};

use crate::block::{BlockAnswer, BlockRecord, SyntheticSoa};
use crate::reply::{ExtendedError, Reply};

/// The [`SyntheticSoa`] of a negative answer, owned by `owner` with `ttl` as TTL and MINIMUM.
pub fn synthetic_soa(owner: Name, ttl: u32) -> Record {
    let soa = SyntheticSoa { ttl };
    let mname = Name::from_labels(SyntheticSoa::MNAME).unwrap_or_else(|_| Name::root());
    let rname = Name::from_labels(SyntheticSoa::RNAME).unwrap_or_else(|_| Name::root());
    let timer = soa.timer();
    let rdata = SOA::new(
        mname,
        rname,
        SyntheticSoa::SERIAL,
        timer,
        timer,
        timer,
        soa.minimum(),
    );
    Record::from_rdata(owner, ttl, RData::SOA(rdata))
}

/// The [`Reply`] for `block`, a block answer to a query for `qname`.
pub fn reply(block: &BlockAnswer<'_>, qname: &Name) -> Reply {
    let mut reply = Reply::code(block.rcode);
    match block.record {
        BlockRecord::None => {}
        BlockRecord::Soa => reply
            .authorities
            .push(synthetic_soa(qname.clone(), block.ttl)),
        BlockRecord::Address(address) => {
            let data = match address {
                std::net::IpAddr::V4(v4) => RData::A(A(v4)),
                std::net::IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
            };
            reply
                .answers
                .push(Record::from_rdata(qname.clone(), block.ttl, data));
        }
    }
    reply.ede = Some(ExtendedError {
        info_code: block.ede.info_code,
        text: block.ede.text(),
    });
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::test_rules;
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::RecordType;
    use poolguard_model::Action;

    fn answer(qtype: RecordType, action: Action) -> Reply {
        let name = Name::from_ascii("x.pool.example.").unwrap();
        reply(
            &test_rules().describe(u16::from(qtype), action, "mining"),
            &name,
        )
    }

    #[test]
    fn sinkhole_answers_only_address_queries() {
        let a = answer(RecordType::A, Action::Sinkhole);
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.answers[0].ttl, 120);
        for t in [RecordType::MX, RecordType::TXT, RecordType::HTTPS] {
            let r = answer(t, Action::Sinkhole);
            assert!(r.answers.is_empty(), "{t} got an answer");
            assert_eq!(r.rcode, ResponseCode::NoError);
            assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        }
    }

    #[test]
    fn refuse_has_no_soa() {
        let r = answer(RecordType::A, Action::Refuse);
        assert_eq!(r.rcode, ResponseCode::Refused);
        assert!(r.authorities.is_empty());
        assert_eq!(
            r.ede,
            Some(ExtendedError {
                info_code: 15,
                text: "blocked by poolguard feed mining".into()
            })
        );
    }
}
