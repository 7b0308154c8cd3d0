//! Block answers written straight into the send buffer.
//!
//! The fast path's encoder of a [`BlockAnswer`] (the rules are in [`crate::block`]; the
//! general path's encoder is [`crate::answer::reply`]), without building a `Reply`, `Record`s
//! or a `Message`: the SOA RDATA is encoded once at start and the owner is a pointer to the
//! question (offset 12). A unit test decodes every variant with hickory and compares it with
//! the general path's answer, so the two encoders cannot drift apart.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;

use crate::block::{BlockAnswer, BlockRecord, BlockRules, BlockedEde, SyntheticSoa};
use crate::fast::opt::ResponseOpt;
use crate::reply::EDE_OPTION_CODE;
use crate::wire::HEADER_LEN;

/// A compression pointer to the question name, which always starts right after the header.
const QNAME_POINTER: [u8; 2] = [0xC0, HEADER_LEN as u8];
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_SOA: u16 = 6;
const CLASS_IN: u16 = 1;

/// What the caller needs after a block answer is written: the query-log summary and rcode.
pub struct Written {
    pub len: usize,
    pub rcode: ResponseCode,
    /// `A 0.0.0.0` for a sinkhole answer, empty otherwise (as `Reply::summary`).
    pub summary: Arc<str>,
}

/// Block-answer bytes, prepared from the [`BlockRules`] once per worker.
pub struct BlockWriter {
    /// `[blocking] ttl`, the TTL the SOA RDATA below was encoded for.
    ttl: u32,
    /// The [`SyntheticSoa`] RDATA for that TTL, names uncompressed.
    soa: Vec<u8>,
    summary_v4: Arc<str>,
    summary_v6: Arc<str>,
    empty: Arc<str>,
}

/// How the answer's one record is written, before the bytes are.
enum Shape<'a> {
    Code,
    Soa,
    Address(u16, &'a [u8]),
}

/// Appends `labels` as an uncompressed wire-format name.
fn put_name(out: &mut Vec<u8>, labels: &[&str]) {
    for label in labels {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

impl BlockWriter {
    /// From the rules the [`BlockAnswer`]s it writes come from.
    pub fn new(rules: &BlockRules) -> Self {
        let soa_fields = SyntheticSoa { ttl: rules.ttl() };
        let mut soa = Vec::with_capacity(64);
        put_name(&mut soa, &SyntheticSoa::MNAME);
        put_name(&mut soa, &SyntheticSoa::RNAME);
        soa.extend_from_slice(&SyntheticSoa::SERIAL.to_be_bytes());
        for _ in 0..3 {
            // refresh, retry, expire
            soa.extend_from_slice(&soa_fields.timer().to_be_bytes());
        }
        soa.extend_from_slice(&soa_fields.minimum().to_be_bytes());
        Self {
            ttl: rules.ttl(),
            soa,
            summary_v4: format!("A {}", rules.sinkhole_ipv4()).into(),
            summary_v6: format!("AAAA {}", rules.sinkhole_ipv6()).into(),
            empty: "".into(),
        }
    }

    /// Writes `block`, the answer to a blocked query, into `out`: `None` when it does not fit
    /// `limit` (the general path then answers, with truncation).
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &self,
        id: [u8; 2],
        recursion_desired: bool,
        question: &[u8],
        block: &BlockAnswer<'_>,
        opt: Option<ResponseOpt>,
        limit: usize,
        out: &mut [u8],
    ) -> Option<Written> {
        debug_assert_eq!(
            block.ttl, self.ttl,
            "BlockWriter built from other [blocking]"
        );
        let (v4, v6);
        let shape = match block.record {
            BlockRecord::None => Shape::Code,
            BlockRecord::Soa => Shape::Soa,
            BlockRecord::Address(IpAddr::V4(a)) => {
                v4 = a.octets();
                Shape::Address(TYPE_A, &v4[..])
            }
            BlockRecord::Address(IpAddr::V6(a)) => {
                v6 = a.octets();
                Shape::Address(TYPE_AAAA, &v6[..])
            }
        };
        let record_len = match &shape {
            Shape::Code => 0,
            Shape::Soa => 12 + self.soa.len(),
            Shape::Address(_, data) => 12 + data.len(),
        };
        let feed = block.ede.feed;
        let ede_len = 4 + 2 + BlockedEde::TEXT_PREFIX.len() + feed.len();
        let opt_len = opt.map_or(0, |_| 11 + ede_len);
        let len = HEADER_LEN + question.len() + record_len + opt_len;
        if len > limit || len > out.len() || ede_len - 4 > usize::from(u16::MAX) {
            return None;
        }

        let (answers, authorities) = match shape {
            Shape::Code => (0u16, 0u16),
            Shape::Soa => (0, 1),
            Shape::Address(..) => (1, 0),
        };
        out[..2].copy_from_slice(&id);
        out[2] = 0x80 | u8::from(recursion_desired);
        out[3] = 0x80 | (u16::from(block.rcode) as u8 & 0x0F);
        out[4..6].copy_from_slice(&1u16.to_be_bytes());
        out[6..8].copy_from_slice(&answers.to_be_bytes());
        out[8..10].copy_from_slice(&authorities.to_be_bytes());
        out[10..12].copy_from_slice(&u16::from(opt.is_some()).to_be_bytes());
        let mut at = HEADER_LEN;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(question);
        let ttl = block.ttl.to_be_bytes();
        let summary = match shape {
            Shape::Code => self.empty.clone(),
            Shape::Soa => {
                put(&QNAME_POINTER);
                put(&TYPE_SOA.to_be_bytes());
                put(&CLASS_IN.to_be_bytes());
                put(&ttl);
                put(&(self.soa.len() as u16).to_be_bytes());
                put(&self.soa);
                self.empty.clone()
            }
            Shape::Address(rtype, data) => {
                put(&QNAME_POINTER);
                put(&rtype.to_be_bytes());
                put(&CLASS_IN.to_be_bytes());
                put(&ttl);
                put(&(data.len() as u16).to_be_bytes());
                put(data);
                if rtype == TYPE_A {
                    self.summary_v4.clone()
                } else {
                    self.summary_v6.clone()
                }
            }
        };
        if let Some(opt) = opt {
            put(&opt.head());
            put(&(ede_len as u16).to_be_bytes());
            put(&EDE_OPTION_CODE.to_be_bytes());
            put(&((ede_len - 4) as u16).to_be_bytes());
            put(&block.ede.info_code.to_be_bytes());
            put(BlockedEde::TEXT_PREFIX.as_bytes());
            put(feed.as_bytes());
        }
        Some(Written {
            len: at,
            rcode: block.rcode,
            summary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::test_rules;
    use hickory_proto::op::Message;
    use hickory_proto::rr::{Name, RecordType};
    use poolguard_model::Action;

    fn question(qtype: u16) -> Vec<u8> {
        let mut q = b"\x03XMR\x04pool\x07example\x00".to_vec();
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }

    /// Every action × type × EDNS combination decodes to what the general path builds.
    #[test]
    fn matches_the_general_block_answers() {
        let rules = test_rules();
        let writer = BlockWriter::new(&rules);
        let name = Name::from_ascii("XMR.pool.example.").unwrap();
        for action in [
            Action::Refuse,
            Action::Nxdomain,
            Action::Nodata,
            Action::Sinkhole,
        ] {
            for qtype in [
                RecordType::A,
                RecordType::AAAA,
                RecordType::MX,
                RecordType::HTTPS,
            ] {
                for edns in [None, Some(1232u16)] {
                    let opt = edns.map(|payload| ResponseOpt {
                        payload,
                        dnssec_ok: true,
                    });
                    let q = question(u16::from(qtype));
                    let block = rules.describe(u16::from(qtype), action, "mining");
                    let mut out = [0u8; 512];
                    let w = writer
                        .write([1, 2], true, &q, &block, opt, 512, &mut out)
                        .expect("fits");
                    let m = Message::from_vec(&out[..w.len]).expect("valid DNS");
                    let want = crate::answer::reply(&block, &name);
                    let case = format!("{action:?} {qtype} {edns:?}");
                    assert_eq!(m.metadata.id, 0x0102, "{case}");
                    assert!(
                        m.metadata.recursion_desired && m.metadata.recursion_available,
                        "{case}"
                    );
                    assert!(!m.metadata.authoritative, "{case}");
                    assert_eq!(m.metadata.response_code, want.rcode, "{case}");
                    assert_eq!(w.rcode, want.rcode, "{case}");
                    assert_eq!(
                        m.queries[0].name(),
                        &name,
                        "{case}: question echoed as sent"
                    );
                    assert_eq!(m.answers, want.answers, "{case}");
                    assert_eq!(m.authorities, want.authorities, "{case}");
                    assert_eq!(&*w.summary, want.summary(), "{case}");
                    match edns {
                        None => assert!(m.edns.is_none(), "{case}"),
                        Some(size) => {
                            let e = m.edns.as_ref().expect("OPT");
                            assert_eq!(e.max_payload(), size, "{case}");
                            assert!(e.flags().dnssec_ok, "{case}: DO copied");
                            let ede = want.ede.as_ref().expect("EDE").to_option();
                            let got: Vec<_> =
                                e.options().options.iter().map(|(_, o)| o.clone()).collect();
                            assert_eq!(got, vec![ede], "{case}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn an_answer_that_does_not_fit_is_left_to_the_general_path() {
        let rules = test_rules();
        let writer = BlockWriter::new(&rules);
        let q = question(1);
        let mut out = [0u8; 512];
        let block = rules.describe(1, Action::Sinkhole, "mining");
        let r = writer.write([0, 0], false, &q, &block, None, 40, &mut out);
        assert!(r.is_none());
    }
}
