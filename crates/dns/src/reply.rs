//! `Reply`: what every stage of the request path produces, before it becomes a DNS message.
//!
//! Block synthesis, local zones and upstream forwarding all hand the handler the same small
//! value: a response code, the three record sections and an optional Extended DNS Error. The
//! handler alone turns it into wire format (echoing ID, question and RD, setting RA, adding OPT
//! when the client used EDNS), so those rules live in one place and cannot drift per stage.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::HINFO;
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RData, Record};

/// TTL of the RFC 8482 answer to ANY: long, so stubs do not ask again (RFC 8482 §4.2 suggests
/// a TTL "in the range of 3600 to 86400").
pub const RFC8482_TTL: u32 = 3600;

/// RFC 8914 option code of an Extended DNS Error.
pub const EDE_OPTION_CODE: u16 = 15;
/// RFC 8914 INFO-CODE 15, "Blocked": the operator's blocklist stopped the name.
pub const EDE_BLOCKED: u16 = 15;

/// RFC 8914 INFO-CODE 0, "Other": no code fits (a CNAME loop), the text says what happened.
pub const EDE_OTHER: u16 = 0;

/// RFC 8914 INFO-CODE 3, "Stale Answer": served from cache past its TTL (RFC 8767).
pub const EDE_STALE_ANSWER: u16 = 3;

/// RFC 8914 INFO-CODE 22, "No Reachable Authority": the upstream did not answer in time.
pub const EDE_NO_REACHABLE_AUTHORITY: u16 = 22;
/// RFC 8914 INFO-CODE 23, "Network Error": the upstream failed or answered with an error.
pub const EDE_NETWORK_ERROR: u16 = 23;

/// An RFC 8914 Extended DNS Error, so `dig` and browsers can show *why* a name failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedError {
    /// RFC 8914 INFO-CODE, e.g. 15 = Blocked.
    pub info_code: u16,
    /// EXTRA-TEXT: what a human reading `dig` output needs to know.
    pub text: String,
}

impl ExtendedError {
    /// Why a forwarded query got SERVFAIL, so operators can tell a dead upstream from a block.
    pub fn upstream(info_code: u16, upstream: &str, what: &str) -> Self {
        Self {
            info_code,
            text: format!("upstream {upstream} {what}"),
        }
    }

    /// Why an answer is stale: the upstream failed and the cache stood in (RFC 8767).
    pub fn stale(upstream: &str) -> Self {
        Self {
            info_code: EDE_STALE_ANSWER,
            text: format!("stale answer: upstream {upstream} failed"),
        }
    }

    /// hickory-proto 0.26 has no typed EDE option, so it is sent as a raw option:
    /// 2-byte INFO-CODE followed by the UTF-8 EXTRA-TEXT.
    pub fn to_option(&self) -> EdnsOption {
        let mut data = Vec::with_capacity(2 + self.text.len());
        data.extend_from_slice(&self.info_code.to_be_bytes());
        data.extend_from_slice(self.text.as_bytes());
        EdnsOption::Unknown(EDE_OPTION_CODE, data)
    }
}

/// The content of one response, independent of the request it answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The response code sent to the client.
    pub rcode: ResponseCode,
    /// AA: set only for our own `[[zones]]`.
    pub authoritative: bool,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section (the SOA of negative answers, so clients cache them).
    pub authorities: Vec<Record>,
    /// Additional section (glue), never the OPT record: that is built per request.
    pub additionals: Vec<Record>,
    /// Sent only to clients that used EDNS (RFC 8914 needs an OPT record to carry it).
    pub ede: Option<ExtendedError>,
}

impl Reply {
    /// A response with only a code: SERVFAIL, REFUSED, FORMERR, NOTIMP.
    pub fn code(rcode: ResponseCode) -> Self {
        Self {
            rcode,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            ede: None,
        }
    }

    /// RFC 8482 §4.2: the minimal answer to an ANY query, one `HINFO "RFC8482" ""` record.
    pub fn rfc8482(qname: &Name) -> Self {
        let mut reply = Self::code(ResponseCode::NoError);
        reply.answers.push(Record::from_rdata(
            qname.clone(),
            RFC8482_TTL,
            RData::HINFO(HINFO::new("RFC8482".to_string(), String::new())),
        ));
        reply
    }

    /// Short text of the answer section for the query log: `A 192.0.2.1, CNAME x.example.`.
    /// Capped so a huge answer cannot bloat the log row.
    pub fn summary(&self) -> String {
        const MAX_RECORDS: usize = 8;
        let mut out = String::new();
        for (i, r) in self.answers.iter().enumerate() {
            if i == MAX_RECORDS {
                out.push_str(", …");
                break;
            }
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&record_text(r));
        }
        out
    }
}

fn record_text(r: &Record) -> String {
    match &r.data {
        RData::A(a) => format!("A {}", a.0),
        RData::AAAA(a) => format!("AAAA {}", a.0),
        RData::CNAME(c) => format!("CNAME {}", c.0),
        other => format!("{} {}", r.record_type(), other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ede_payload_is_info_code_then_text() {
        let opt = ExtendedError {
            info_code: EDE_BLOCKED,
            text: "blocked by poolguard feed mining".into(),
        }
        .to_option();
        let EdnsOption::Unknown(code, data) = opt else {
            panic!("EDE must be a raw option");
        };
        assert_eq!(code, 15);
        assert_eq!(&data[..2], &[0, 15]);
        assert_eq!(&data[2..], b"blocked by poolguard feed mining");
    }
}
