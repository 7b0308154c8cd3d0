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
//! * [`encode`] turns the handler's response into bytes within the client's UDP size. A
//!   response that does not fit is replaced by question + OPT with TC=1 (RFC 2181 §9: a
//!   partial RRset must not be used), so the client retries over TCP.

use std::net::SocketAddr;

use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;

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
pub fn gate(bytes: Vec<u8>, src: SocketAddr, protocol: Protocol) -> Gate {
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

/// A header-only response to `request` (at least [`HEADER_LEN`] bytes): ID, opcode and RD
/// echoed, QR and RA set, every count zero, `rcode` (low 4 bits; extended codes need OPT).
pub fn header_reply(request: &[u8], rcode: ResponseCode) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    if request.len() >= HEADER_LEN {
        out[0] = request[0];
        out[1] = request[1];
        // QR=1, opcode echoed, RD echoed; AA and TC clear.
        out[2] = 0x80 | (request[2] & 0x78) | (request[2] & 0x01);
    }
    out[3] = 0x80 | (u16::from(rcode) & 0x0F) as u8;
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

/// Encodes a response within `limit` bytes. When the records do not fit, the answer becomes
/// question + OPT with TC=1; when even that fails, a header-only SERVFAIL. Returns `None` only
/// when not even a header can be written, which cannot happen for a 12-byte header.
pub fn encode<'a>(
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    limit: u16,
) -> Option<(ResponseInfo, Vec<u8>)> {
    let id = response.metadata().id;
    // Kept aside: when the records overflow, the OPT record does not make it into `bytes`.
    let edns = response.edns().cloned();
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(limit);
    let encoded = response.destructive_emit(&mut encoder);
    match encoded {
        Ok(info) if !info.truncation => Some((info, bytes)),
        Ok(_) => truncated(&bytes, edns.as_ref(), limit).or_else(|| servfail(id)),
        Err(error) => {
            tracing::debug!(%error, id, "response could not be encoded");
            servfail(id)
        }
    }
}

/// Question + OPT, TC=1, from a (partially) encoded response.
fn truncated(partial: &[u8], edns: Option<&Edns>, limit: u16) -> Option<(ResponseInfo, Vec<u8>)> {
    // Our own encoder wrote this, so it decodes; if it somehow does not, SERVFAIL follows.
    let mut message = Message::from_vec(partial).ok()?;
    message.answers.clear();
    message.authorities.clear();
    message.additionals.clear();
    message.metadata.truncation = true;
    let mut bytes = Vec::with_capacity(HEADER_LEN + 64);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(limit);
    let header = hickory_proto::op::emit_message_parts(
        &message.metadata,
        &mut message.queries.iter(),
        &mut std::iter::empty::<&Record>(),
        &mut std::iter::empty::<&Record>(),
        &mut std::iter::empty::<&Record>(),
        edns,
        None,
        &mut encoder,
    )
    .ok()?;
    Some((ResponseInfo::from(header), bytes))
}

fn servfail(id: u16) -> Option<(ResponseInfo, Vec<u8>)> {
    let mut request = [0u8; HEADER_LEN];
    request[..2].copy_from_slice(&id.to_be_bytes());
    let bytes = header_reply(&request, ResponseCode::ServFail);
    let mut decoder = BinDecoder::new(&bytes);
    let header = hickory_proto::op::Header::read(&mut decoder).ok()?;
    Some((ResponseInfo::from(header), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
