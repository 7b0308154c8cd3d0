//! The wire form of a [`Reply`] as the answer to a [`Request`]: what every answer of the
//! general path shares whatever stage made it — ID, question, RD and CD echoed, RA as the
//! service says, OPT (our size, DO copied, the EDE) only for EDNS clients — encoded within
//! the client's limit by [`wire::encode`].

use hickory_proto::op::{Edns, MessageType, Metadata, OpCode};
use hickory_proto::rr::RecordType;
use hickory_server::server::Request;

use crate::reply::Reply;
use crate::wire;

/// Encodes `reply` as the response to `request` within `limit` bytes: ID, question, RD and CD
/// echoed, RA as [`recursion_available`] says, OPT (with DO copied and the EDE, if any) only
/// when the client used EDNS.
pub(crate) fn respond(request: &Request, reply: &Reply, udp_payload: u16, limit: u16) -> Vec<u8> {
    let mut metadata = Metadata::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    metadata.recursion_desired = request.metadata.recursion_desired;
    // RFC 4035 §3.2.2: CD is copied to the response. AD stays clear: poolguard does not
    // validate (docs/DNS.md, DNSSEC).
    metadata.checking_disabled = request.metadata.checking_disabled;
    metadata.recursion_available = recursion_available(request);
    metadata.authoritative = reply.authoritative;
    metadata.response_code = reply.rcode;

    let response_edns = request.edns.as_ref().map(|theirs| {
        let mut edns = Edns::new();
        // RFC 3225 §3: the DO bit MUST be copied. No signatures come with it (docs/DNS.md).
        edns.set_dnssec_ok(theirs.flags().dnssec_ok);
        // Our own size (RFC 6891 §6.2.3); what we may send the client is bounded by the
        // smaller of the two when the response is encoded (`wire::response_limit`).
        edns.set_max_payload(udp_payload.max(512));
        edns.set_version(0);
        if let Some(ede) = &reply.ede {
            edns.options_mut().insert(ede.to_option());
        }
        edns
    });
    let response = wire::Response {
        metadata,
        question: request.queries.as_bytes(),
        answers: &reply.answers,
        authorities: &reply.authorities,
        additionals: &reply.additionals,
        edns: response_edns.as_ref(),
    };
    wire::encode(&response, limit)
}

/// RA is set on every answer of the recursive service, blocks and refusals of clients
/// included (a recursive resolver's answers all say it recurses; Unbound does the same), but
/// not on the refusal of what that service does not offer: another opcode (NOTIFY, UPDATE,
/// …) or a zone transfer. ISC's compliance report flags RA there (`opcode=ra`): it tells the
/// client recursion is available for a request that has nothing to do with recursion.
fn recursion_available(request: &Request) -> bool {
    request.metadata.op_code == OpCode::Query
        && !request
            .queries
            .queries()
            .first()
            .is_some_and(|q| matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR))
}
