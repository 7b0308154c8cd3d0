//! Wire-level decisions taken before a packet reaches the request path, and response encoding.
//!
//! Everything here is a pure function of bytes, so it is fuzzed directly (`fuzz/`):
//!
//! * [`gate`] classifies a raw packet: shorter than a header → dropped; QR=1 (a response) →
//!   dropped, never answered, so two servers can never be made to bounce errors at each other
//!   (hickory-server would answer an unparsable response with FORMERR); not exactly one
//!   question → a header-only FORMERR without parsing the rest (a 12-byte packet claiming 65 535
//!   questions would otherwise make the parser reserve megabytes); unparsable → FORMERR; else
//!   a parsed [`Request`] for the handler.
//! * [`header_reply`] and [`slip_reply`] build the small error answers by hand: never larger
//!   than the request, so they cannot amplify.
//! * [`encode`] turns the handler's response into bytes within the client's UDP size, with
//!   names compressed against the question. What does not fit is cut as RFC 2181 §9 says:
//!   additional records first, then authority records, whole RRsets only; TC is set only when
//!   the answer itself does not fit, so the client retries over TCP. OPT always stays.

use std::net::SocketAddr;

use hickory_proto::ProtoError;
use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordData};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;

/// Size of the fixed DNS header.
pub const HEADER_LEN: usize = 12;
/// The UDP size every client may receive (RFC 1035 §4.2.1), also the floor for EDNS sizes.
pub const MIN_UDP_PAYLOAD: u16 = 512;

/// Why a packet was dropped without an answer (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than a DNS header: nothing to answer to.
    Short,
    /// QR=1: a response, possibly reflected; answering could start a loop.
    Response,
    /// A UDP datagram longer than any real query (see `mmsg::SLOT_SIZE`).
    Oversize,
}

impl DropReason {
    /// The `reason` label of `poolguard_dns_dropped_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Short => "short",
            DropReason::Response => "response",
            DropReason::Oversize => "oversize",
        }
    }
}

/// What to do with a raw packet.
#[derive(Debug)]
pub enum Gate {
    /// Send nothing.
    Drop(DropReason),
    /// Send these bytes (a header-only error answer) and stop.
    Reply(Vec<u8>),
    /// Hand the parsed request to the handler.
    Request(Box<Request>),
}

/// Classifies `bytes` from `src` (see the module docs). Never panics, whatever the input.
pub fn gate(mut bytes: Vec<u8>, src: SocketAddr, protocol: Protocol) -> Gate {
    if bytes.len() < HEADER_LEN {
        return Gate::Drop(DropReason::Short);
    }
    if bytes[2] & 0x80 != 0 {
        return Gate::Drop(DropReason::Response);
    }
    let opcode = (bytes[2] >> 3) & 0x0F;
    let qdcount = u16::from_be_bytes([bytes[4], bytes[5]]);
    if qdcount != 1 {
        let rcode = if opcode == u8::from(OpCode::Query) {
            ResponseCode::FormErr
        } else {
            ResponseCode::NotImp
        };
        return Gate::Reply(header_reply(&bytes, rcode));
    }
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&bytes[..HEADER_LEN]);
    if question_is_compressed(&bytes) {
        return Gate::Reply(header_reply(&header, ResponseCode::FormErr));
    }
    drop_broken_options(&mut bytes);
    match Request::from_bytes(bytes, src, protocol) {
        Ok(request) => Gate::Request(Box::new(request)),
        Err(error) => {
            tracing::debug!(%src, %error, "unparsable request");
            Gate::Reply(header_reply(&header, ResponseCode::FormErr))
        }
    }
}

/// True when the question's name contains a compression pointer. The question is the first
/// name of a query, so a pointer can only lead into the header (or loop): never valid. It must
/// be refused here because hickory echoes the question's raw bytes, and the pointer would then
/// point into the *response's* header: an answer no client can parse (found by fuzzing).
fn question_is_compressed(bytes: &[u8]) -> bool {
    let mut at = HEADER_LEN;
    // At most 128 labels fit in 255 bytes; the bound also ends the scan on junk.
    for _ in 0..128 {
        match bytes.get(at) {
            None | Some(0) => return false,
            Some(&len) if len & 0xC0 != 0 => return len & 0xC0 == 0xC0,
            Some(&len) => at += 1 + usize::from(len),
        }
    }
    false
}

/// Cuts an EDNS option whose length runs past the end of its OPT record, and every option
/// after it, as Unbound does: the query is then answered as if they had not been sent (we
/// act on no option anyway), with our OPT, instead of a FORMERR without one (RFC 6891 §7: an
/// answer to an EDNS query carries OPT). Only for an OPT that is the packet's last record and
/// ends exactly at its end: a record that is itself cut short is a malformed message.
fn drop_broken_options(bytes: &mut Vec<u8>) {
    let count = |at: usize| usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
    let records = count(6) + count(8) + count(10);
    let Some(mut at) = skip_name(bytes, HEADER_LEN).map(|end| end + 4) else {
        return;
    };
    // Bounded by the packet: each record moves `at` forward by at least 11 bytes.
    for i in 0..records {
        let Some(fixed) =
            skip_name(bytes, at).and_then(|end| Some((end, bytes.get(end..end + 10)?)))
        else {
            return;
        };
        let (end, fixed) = fixed;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let rdata = end + 10;
        if rtype == 41 && i + 1 == records && rdata + rdlen == bytes.len() {
            let mut option = rdata;
            while option < bytes.len() {
                let overruns = match bytes.get(option..option + 4) {
                    Some(head) => {
                        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
                        option + 4 + len > bytes.len()
                    }
                    None => true,
                };
                if overruns {
                    let kept = u16::try_from(option - rdata).unwrap_or(0);
                    bytes.truncate(option);
                    bytes[end + 8..end + 10].copy_from_slice(&kept.to_be_bytes());
                    return;
                }
                option +=
                    4 + usize::from(u16::from_be_bytes([bytes[option + 2], bytes[option + 3]]));
            }
            return;
        }
        at = rdata + rdlen;
    }
}

/// The end of the name at `at` (labels ending in a zero, or a pointer); `None` past the end.
fn skip_name(bytes: &[u8], mut at: usize) -> Option<usize> {
    // At most 128 labels fit in 255 bytes; the bound also ends the scan on junk.
    for _ in 0..128 {
        match *bytes.get(at)? {
            0 => return Some(at + 1),
            len if len & 0xC0 == 0xC0 => return Some(at + 2),
            len if len & 0xC0 == 0 => at += 1 + usize::from(len),
            _ => return None,
        }
    }
    None
}

/// A header-only response to `request` (at least [`HEADER_LEN`] bytes): ID, opcode and RD
/// echoed, QR set, every count zero, `rcode` (low 4 bits; extended codes need OPT). RA is set
/// for standard queries only: to another opcode (NOTIFY, UPDATE, …) the recursive service
/// has nothing to offer, and ISC's compliance report flags RA there (`opcode=ra`).
pub fn header_reply(request: &[u8], rcode: ResponseCode) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    let mut query = true;
    if request.len() >= HEADER_LEN {
        out[0] = request[0];
        out[1] = request[1];
        // QR=1, opcode echoed, RD echoed; AA and TC clear.
        out[2] = 0x80 | (request[2] & 0x78) | (request[2] & 0x01);
        query = request[2] & 0x78 == 0;
    }
    out[3] = if query { 0x80 } else { 0 } | (u16::from(rcode) & 0x0F) as u8;
    out
}

/// The rate limiter's "slip": header + the first question echoed, TC=1, REFUSED. The question
/// is echoed because stub resolvers (glibc among them) ignore answers whose question does not
/// match theirs; the answer is never longer than the request.
pub fn slip_reply(request: &[u8]) -> Vec<u8> {
    let mut out = header_reply(request, ResponseCode::Refused);
    out[2] |= 0x02; // TC
    let question = request.get(HEADER_LEN..).and_then(|rest| {
        if u16::from_be_bytes([request[4], request[5]]) == 0 {
            return None;
        }
        let mut decoder = BinDecoder::new(rest);
        Query::read(&mut decoder).ok()?;
        Some(&rest[..decoder.index()])
    });
    if let Some(q) = question {
        out[5] = 1;
        out.extend_from_slice(q);
    }
    out
}

/// The most a response to `request` over `protocol` may take: TCP 65 535; UDP the client's
/// EDNS size (at least 512, RFC 6891 §6.2.5), but never above our own `udp_payload`.
pub fn response_limit(request: &Request, protocol: Protocol, udp_payload: u16) -> u16 {
    match protocol {
        Protocol::Udp => request
            .edns
            .as_ref()
            .map_or(MIN_UDP_PAYLOAD, |e| e.max_payload())
            .max(MIN_UDP_PAYLOAD)
            .min(udp_payload.max(MIN_UDP_PAYLOAD)),
        _ => u16::MAX,
    }
}

/// A response in parts, as the handler has it: encoded by [`encode`].
pub struct Response<'a> {
    /// Header flags and RCODE (the counts are computed; TC is set by [`encode`] only).
    pub metadata: Metadata,
    /// The question section exactly as the client sent it (hickory keeps the bytes).
    pub question: &'a [u8],
    /// Answer section.
    pub answers: &'a [Record],
    /// Authority section.
    pub authorities: &'a [Record],
    /// Additional section, without OPT.
    pub additionals: &'a [Record],
    /// Our OPT record, for clients that sent one.
    pub edns: Option<&'a Edns>,
}

/// Encodes `response` within `limit` bytes, the way RFC 2181 §9 asks:
///
/// * names are compressed, the question included: an owner equal to the question name is
///   written as a pointer to it (hickory-server echoes the question as raw bytes and records
///   them, type and class included, as one "name" that never matches, so the first owner went
///   out in full: 86 bytes for an answer that is 77 from the authoritative server);
/// * room for the OPT record is kept first: an EDNS client always gets it (RFC 6891 §7);
/// * records are written whole RRset by RRset; when one does not fit, the additional section
///   is cut first, then the authority section, without TC ("extra information"); TC is set
///   only when an answer RRset does not fit (or the authority of an answer with no answer
///   records, the SOA that makes a negative answer cachable), keeping the RRsets before it.
///
/// When not even the question and OPT fit, or a record cannot be encoded, the answer is a
/// header-only SERVFAIL (12 bytes, within any limit a client can give).
pub fn encode(response: &Response<'_>, limit: u16) -> Vec<u8> {
    let id = response.metadata.id;
    encode_within(response, limit).unwrap_or_else(|error| {
        tracing::debug!(%error, id, "response could not be encoded");
        servfail(id)
    })
}

fn encode_within(response: &Response<'_>, limit: u16) -> Result<Vec<u8>, ProtoError> {
    // The OPT record, encoded first so its room is known (and kept) before any record.
    let opt = match response.edns {
        Some(edns) => {
            let mut edns = edns.clone();
            edns.set_rcode_high(response.metadata.response_code.high());
            let mut bytes = Vec::with_capacity(64);
            Record::from(&edns).emit(&mut BinEncoder::new(&mut bytes))?;
            bytes
        }
        None => Vec::new(),
    };
    // Checked after each RRset rather than with the encoder's own limit: hickory writes a
    // name in full before replacing it with a pointer, so near the limit it would refuse a
    // record whose compressed form fits.
    let budget = usize::from(limit).saturating_sub(opt.len());

    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.emit_vec(&[0; HEADER_LEN])?;
    // The question, re-read so its name is in the client's spelling and its labels are
    // known to the compressor.
    let mut decoder = BinDecoder::new(response.question);
    let mut queries = 0u16;
    let mut qname = None;
    while !decoder.is_empty() {
        let query = Query::read(&mut decoder)
            .map_err(|_| ProtoError::Message("question does not decode"))?;
        query.emit(&mut encoder)?;
        queries += 1;
        qname.get_or_insert(query.name().clone());
    }
    if encoder.offset() > budget {
        return Err(ProtoError::Message("no room for the question and OPT"));
    }

    let answers = emit_section(&mut encoder, budget, response.answers, qname.as_ref())?;
    let mut truncation = !answers.complete;
    let mut authorities = Section::default();
    let mut additionals = Section::default();
    if answers.complete {
        authorities = emit_section(&mut encoder, budget, response.authorities, qname.as_ref())?;
        // Without answer records, the authority section is the answer (RFC 2308 §5).
        truncation = !authorities.complete && response.answers.is_empty();
        if authorities.complete {
            additionals = emit_section(&mut encoder, budget, response.additionals, qname.as_ref())?;
        }
    }
    let mut additional_count = additionals.count;
    if !opt.is_empty() {
        encoder.emit_vec(&opt)?;
        additional_count += 1;
    }
    drop(encoder);

    let mut metadata = response.metadata;
    metadata.truncation = truncation;
    let header = Header {
        metadata,
        counts: HeaderCounts {
            queries,
            answers: answers.count,
            authorities: authorities.count,
            additionals: additional_count,
        },
    };
    let mut head = Vec::with_capacity(HEADER_LEN);
    header.emit(&mut BinEncoder::new(&mut head))?;
    bytes[..HEADER_LEN].copy_from_slice(&head);
    Ok(bytes)
}

/// What [`emit_section`] wrote.
#[derive(Default)]
struct Section {
    count: u16,
    /// Every record of the section fitted.
    complete: bool,
}

/// Writes `records` whole RRset by RRset (RFC 2181 §5: consecutive records with one owner,
/// type and class) until one ends past `budget` bytes; that RRset is taken back out.
/// Owners equal to the question name are written as the question's name, so they compress
/// to a pointer to it whatever the letter case (as the packet cache's answers do).
fn emit_section(
    encoder: &mut BinEncoder<'_>,
    budget: usize,
    records: &[Record],
    qname: Option<&Name>,
) -> Result<Section, ProtoError> {
    let mut section = Section {
        count: 0,
        complete: true,
    };
    let mut rest = records;
    while let Some(first) = rest.first() {
        let len = rest
            .iter()
            .take_while(|r| {
                r.name == first.name
                    && r.record_type() == first.record_type()
                    && r.dns_class == first.dns_class
            })
            .count();
        let (rrset, tail) = rest.split_at(len);
        let mark = encoder.offset();
        let written = rrset
            .iter()
            .try_for_each(|r| emit_record(encoder, r, qname));
        match written {
            Ok(()) if encoder.offset() <= budget => {
                section.count = section
                    .count
                    .checked_add(u16::try_from(len).map_err(|_| ProtoError::Message("count"))?)
                    .ok_or(ProtoError::Message("too many records"))?;
            }
            Ok(()) | Err(ProtoError::MaxBufferSizeExceeded(_)) => {
                encoder.set_offset(mark);
                encoder.trim();
                section.complete = false;
                return Ok(section);
            }
            Err(error) => return Err(error),
        }
        rest = tail;
    }
    Ok(section)
}

/// `Record::emit`, with the owner written as `qname` when they are the same name.
fn emit_record(
    encoder: &mut BinEncoder<'_>,
    record: &Record,
    qname: Option<&Name>,
) -> Result<(), ProtoError> {
    let owner = match qname {
        Some(q) if *q == record.name => q,
        _ => &record.name,
    };
    owner.emit(encoder)?;
    record.record_type().emit(encoder)?;
    record.dns_class.emit(encoder)?;
    encoder.emit_u32(record.ttl)?;
    let place = encoder.place::<u16>()?;
    if !record.data.is_update() {
        record.data.emit(encoder)?;
    }
    let len = encoder.len_since_place(&place);
    let len = u16::try_from(len).map_err(|_| ProtoError::Message("RDATA too long"))?;
    place.replace(encoder, len)
}

/// A header-only SERVFAIL with `id`.
fn servfail(id: u16) -> Vec<u8> {
    let mut request = [0u8; HEADER_LEN];
    request[..2].copy_from_slice(&id.to_be_bytes());
    header_reply(&request, ResponseCode::ServFail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::{A, CNAME, NS};

    fn src() -> SocketAddr {
        "127.0.0.1:5300".parse().unwrap()
    }

    fn query_bytes() -> Vec<u8> {
        let mut m = Message::new(0x4242, hickory_proto::op::MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(
            hickory_proto::rr::Name::from_ascii("www.example.test.").unwrap(),
            hickory_proto::rr::RecordType::A,
        ));
        m.to_vec().unwrap()
    }

    #[test]
    fn short_and_response_packets_are_dropped() {
        assert!(matches!(
            gate(vec![1, 2, 3], src(), Protocol::Udp),
            Gate::Drop(DropReason::Short)
        ));
        let mut r = query_bytes();
        r[2] |= 0x80;
        assert!(matches!(
            gate(r, src(), Protocol::Udp),
            Gate::Drop(DropReason::Response)
        ));
    }

    #[test]
    fn bad_counts_get_a_header_only_formerr() {
        let mut q = query_bytes();
        q[4] = 0xFF;
        q[5] = 0xFF;
        let Gate::Reply(r) = gate(q, src(), Protocol::Udp) else {
            panic!("expected a reply");
        };
        assert_eq!(r.len(), HEADER_LEN);
        assert_eq!(&r[..2], &[0x42, 0x42]);
        assert_eq!(r[3] & 0x0F, 1, "FORMERR");
        assert_eq!(r[2] & 0x81, 0x81, "QR and RD");
    }

    #[test]
    fn compressed_question_is_formerr() {
        // Regression (fuzz/artifacts/dns_request/crash-e44b…): pointer to offset 0.
        let mut q = query_bytes()[..HEADER_LEN].to_vec();
        q.extend_from_slice(&[0xC0, 0x00, 0x00, 0x01, 0x00, 0x01]);
        let Gate::Reply(r) = gate(q.clone(), src(), Protocol::Udp) else {
            panic!("expected a reply");
        };
        assert_eq!(r[3] & 0x0F, 1);
        // Also after a first label.
        let mut q = query_bytes()[..HEADER_LEN].to_vec();
        q.extend_from_slice(&[3, b'w', b'w', b'w', 0xC0, 0x00, 0x00, 0x01, 0x00, 0x01]);
        assert!(matches!(gate(q, src(), Protocol::Udp), Gate::Reply(_)));
        // An uncompressed question still parses.
        assert!(matches!(
            gate(query_bytes(), src(), Protocol::Udp),
            Gate::Request(_)
        ));
    }

    #[test]
    fn garbage_after_a_header_is_formerr() {
        let mut q = query_bytes();
        q.truncate(HEADER_LEN + 3);
        let Gate::Reply(r) = gate(q, src(), Protocol::Udp) else {
            panic!("expected a reply");
        };
        assert_eq!(r[3] & 0x0F, 1);
    }

    #[test]
    fn slip_echoes_the_question_with_tc() {
        let q = query_bytes();
        let r = slip_reply(&q);
        let m = Message::from_vec(&r).unwrap();
        assert!(m.metadata.truncation);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert_eq!(m.queries.len(), 1);
        assert!(r.len() <= q.len());
    }

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn a(owner: &str, last: u8) -> Record {
        Record::from_rdata(name(owner), 60, RData::A(A::new(192, 0, 2, last)))
    }

    /// Encodes the parts within `limit` and decodes the result.
    fn encoded(
        answers: &[Record],
        authorities: &[Record],
        additionals: &[Record],
        edns: Option<&Edns>,
        limit: u16,
    ) -> (usize, Message) {
        let query = query_bytes();
        let mut metadata = Metadata::new(0x4242, MessageType::Response, OpCode::Query);
        metadata.recursion_available = true;
        let response = Response {
            metadata,
            question: &query[HEADER_LEN..],
            answers,
            authorities,
            additionals,
            edns,
        };
        let bytes = encode(&response, limit);
        assert!(bytes.len() <= usize::from(limit));
        let message = Message::from_vec(&bytes).expect("decodes");
        (bytes.len(), message)
    }

    #[test]
    fn the_first_owner_is_a_pointer_to_the_question() {
        let answers = [a("WWW.example.test.", 10)];
        let (len, m) = encoded(&answers, &[], &[], None, 512);
        // header + question (22) + pointer, type, class, TTL, RDLEN, address (16).
        assert_eq!(len, HEADER_LEN + 22 + 16);
        assert_eq!(
            m.answers[0].name.to_ascii(),
            "www.example.test.",
            "question's case"
        );
    }

    /// RFC 2181 §9: additional records go first, then authority records, whole RRsets only,
    /// without TC; TC only when an answer RRset does not fit, keeping the RRsets before it.
    #[test]
    fn cuts_follow_rfc_2181_section_9() {
        let answers = [
            Record::from_rdata(
                name("www.example.test."),
                60,
                RData::CNAME(CNAME(name("edge.cdn.example.test."))),
            ),
            a("edge.cdn.example.test.", 1),
            a("edge.cdn.example.test.", 2),
        ];
        let authorities: Vec<Record> = (1..=3)
            .map(|i| {
                Record::from_rdata(
                    name("example.test."),
                    60,
                    RData::NS(NS(name(&format!("ns{i}.far-away-provider.example.")))),
                )
            })
            .collect();
        let additionals: Vec<Record> = (1..=3)
            .map(|i| a(&format!("ns{i}.far-away-provider.example."), i))
            .collect();
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        for edns in [None, Some(&edns)] {
            let (full, whole) = encoded(&answers, &authorities, &additionals, edns, u16::MAX);
            assert!(!whole.metadata.truncation);
            assert_eq!(
                (
                    whole.answers.len(),
                    whole.authorities.len(),
                    whole.additionals.len()
                ),
                (3, 3, 3)
            );
            let mut seen = std::collections::BTreeSet::new();
            for limit in (HEADER_LEN as u16 + 40)..=(full as u16) {
                let (_, m) = encoded(&answers, &authorities, &additionals, edns, limit);
                let shape = (
                    m.metadata.truncation,
                    m.answers.len(),
                    m.authorities.len(),
                    m.additionals.len(),
                );
                assert_eq!(m.edns.is_some(), edns.is_some(), "OPT always kept: {limit}");
                assert!(
                    matches!(
                        shape,
                        (true, 0, 0, 0) | (true, 1, 0, 0) | (false, 3, 0, 0) | (false, 3, 3, _)
                    ),
                    "limit {limit}: {shape:?}"
                );
                seen.insert(shape);
            }
            // The glue records have an owner each: one RRset each, cut one by one.
            assert_eq!(seen.len(), 7, "every cut was reached: {seen:?}");
        }
    }

    #[test]
    fn a_negative_answer_without_room_for_its_soa_is_truncated() {
        let soa = Record::from_rdata(
            name("example.test."),
            60,
            RData::SOA(hickory_proto::rr::rdata::SOA::new(
                name("ns1.example.test."),
                name("hostmaster.example.test."),
                1,
                2,
                3,
                4,
                5,
            )),
        );
        let (full, m) = encoded(&[], std::slice::from_ref(&soa), &[], None, 512);
        assert!(!m.metadata.truncation);
        let (_, m) = encoded(&[], &[soa], &[], None, full as u16 - 1);
        assert!(m.metadata.truncation);
        assert!(m.authorities.is_empty());
    }

    #[test]
    fn a_broken_option_is_cut_and_the_query_parses() {
        let mut q = query_bytes();
        q[11] = 1;
        q.extend_from_slice(&[0, 0, 41, 4, 0xD0, 0, 0, 0x80, 0, 0, 10]);
        q.extend_from_slice(&[0, 12, 0, 1, 0, 0, 10, 0, 8, 1]);
        let Gate::Request(r) = gate(q.clone(), src(), Protocol::Udp) else {
            panic!("the query parses once the broken option is cut");
        };
        let edns = r.edns.as_ref().expect("OPT kept");
        assert!(edns.flags().dnssec_ok);
        assert_eq!(edns.max_payload(), 1232);
        // Every prefix and every single-byte corruption: never a panic.
        for cut in 0..q.len() {
            let _ = gate(q[..cut].to_vec(), src(), Protocol::Udp);
        }
        for at in HEADER_LEN..q.len() {
            for byte in [0x00, 0x3F, 0xC0, 0xFF] {
                let mut bad = q.clone();
                bad[at] = byte;
                let _ = gate(bad, src(), Protocol::Udp);
            }
        }
    }
}
