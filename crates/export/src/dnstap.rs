//! dnstap messages: the protobuf types and how an [`Exchange`] becomes them.
//!
//! The types follow the published schema `dnstap.proto` (dnstap/dnstap.pb, CC0 public domain
//! dedication, proto2): same messages, field numbers and enum values, written as prost derive
//! structs so no `protoc` is needed (see Cargo.toml). Only the fields poolguard fills or a
//! reader needs are declared; prost skips unknown fields when decoding, so frames from other
//! servers still decode. The structs are the schema and the decoder (tests, readers); frames
//! are written by [`encode`] field by field from the exchange, without allocating, and the
//! tests hold the two to the same bytes.
//!
//! Mapping (docs/EXPORT.md): CLIENT_RESPONSE (and, with `messages = "both"`, a CLIENT_QUERY
//! first); socket family from the client address, protocol UDP/TCP; `policy` for blocked and
//! quarantined answers with type "poolguard", rule = the feed's name, action from the feed's
//! action, match QNAME (the name, or a CNAME target in the answer) or RESPONSE_IP (an address in
//! the answer), value = the rule text.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protobuf;
use poolguard_model::Action;
use poolguard_record::exchange::Exchange;
use poolguard_record::{Outcome, Transport};

/// `Dnstap`: the top-level message of every frame.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dnstap {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub identity: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub version: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub extra: Option<Vec<u8>>,
    #[prost(message, optional, tag = "14")]
    pub message: Option<Message>,
    /// `Dnstap.Type`: always MESSAGE (1).
    #[prost(enumeration = "DnstapType", required, tag = "15")]
    pub r#type: i32,
}

/// `Dnstap.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DnstapType {
    Message = 1,
}

/// `SocketFamily`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SocketFamily {
    Inet = 1,
    Inet6 = 2,
}

/// `SocketProtocol` (DOT, DOH, ... exist in the schema; poolguard serves UDP and TCP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SocketProtocol {
    Udp = 1,
    Tcp = 2,
    Dot = 3,
    Doh = 4,
}

/// `Message.Type` (only the client-side types poolguard emits and readers need).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MessageType {
    ClientQuery = 5,
    ClientResponse = 6,
}

/// `Message`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    #[prost(enumeration = "MessageType", required, tag = "1")]
    pub r#type: i32,
    #[prost(enumeration = "SocketFamily", optional, tag = "2")]
    pub socket_family: Option<i32>,
    #[prost(enumeration = "SocketProtocol", optional, tag = "3")]
    pub socket_protocol: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub query_address: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub response_address: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "6")]
    pub query_port: Option<u32>,
    #[prost(uint32, optional, tag = "7")]
    pub response_port: Option<u32>,
    #[prost(uint64, optional, tag = "8")]
    pub query_time_sec: Option<u64>,
    #[prost(fixed32, optional, tag = "9")]
    pub query_time_nsec: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "10")]
    pub query_message: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "11")]
    pub query_zone: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "12")]
    pub response_time_sec: Option<u64>,
    #[prost(fixed32, optional, tag = "13")]
    pub response_time_nsec: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "14")]
    pub response_message: Option<Vec<u8>>,
    #[prost(message, optional, tag = "15")]
    pub policy: Option<Policy>,
}

/// `Policy`: the operator policy applied to this exchange.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Policy {
    #[prost(string, optional, tag = "1")]
    pub r#type: Option<String>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub rule: Option<Vec<u8>>,
    #[prost(enumeration = "PolicyAction", optional, tag = "3")]
    pub action: Option<i32>,
    #[prost(enumeration = "PolicyMatch", optional, tag = "4")]
    pub r#match: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub value: Option<Vec<u8>>,
}

/// `Policy.Action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PolicyAction {
    Nxdomain = 1,
    Nodata = 2,
    Pass = 3,
    Drop = 4,
    Truncate = 5,
    LocalData = 6,
}

/// `Policy.Match`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PolicyMatch {
    Qname = 1,
    ClientIp = 2,
    ResponseIp = 3,
    NsName = 4,
    NsIp = 5,
}

/// The `Policy.type` poolguard writes.
pub const POLICY_TYPE: &str = "poolguard";

/// The dnstap action for a feed's action. dnstap has no REFUSED: `refuse` maps to DROP
/// ("do not respond" with data), the nearest meaning; the REFUSED rcode itself is in
/// `response_message` (docs/EXPORT.md).
pub fn policy_action(action: Action) -> PolicyAction {
    match action {
        Action::Nxdomain => PolicyAction::Nxdomain,
        Action::Nodata => PolicyAction::Nodata,
        Action::Sinkhole => PolicyAction::LocalData,
        Action::Refuse => PolicyAction::Drop,
        // Answered as resolved: the policy let it through (and recorded it).
        Action::Log => PolicyAction::Pass,
    }
}

/// What the `policy` field of an exchange says, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyOf<'a> {
    pub matched: PolicyMatch,
    pub action: PolicyAction,
    /// The feed's name, or `quarantine`.
    pub rule: &'a [u8],
    /// The rule text, when a feed decided.
    pub value: Option<&'a [u8]>,
}

/// The `policy` field for an exchange, when a policy changed its answer.
pub fn policy_of(exchange: &Exchange) -> Option<PolicyOf<'_>> {
    let (matched, action) = match exchange.outcome {
        Outcome::Blocked | Outcome::CnameBlocked => (PolicyMatch::Qname, None),
        Outcome::IpBlocked => (PolicyMatch::ResponseIp, None),
        // The walled garden answers for a quarantined client (no feed listed the name).
        Outcome::Quarantined => (PolicyMatch::ClientIp, Some(PolicyAction::LocalData)),
        // A `log` rule matched: the answer went through unchanged, the rule is reported.
        Outcome::Logged => (PolicyMatch::Qname, Some(PolicyAction::Pass)),
        _ => return None,
    };
    let verdict = exchange.verdict.as_ref();
    let action = action.or_else(|| verdict.map(|v| policy_action(v.action)))?;
    Some(PolicyOf {
        matched,
        action,
        rule: verdict.map_or(&b"quarantine"[..], |v| v.feed.as_bytes()),
        value: verdict.map(|v| v.rule.as_bytes()),
    })
}

/// Seconds and nanoseconds since the Unix epoch.
fn split_time(t: SystemTime) -> (u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}

/// What an export writes into every frame: `identity` (which server sent it: the configured
/// `identity`, or the host name) and `version` (`poolguard <version>`, so a reader can tell
/// software versions apart). Both never change, so they are encoded once per export, and
/// each frame starts with a copy of those bytes.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `Dnstap` fields 1 and 2, encoded.
    encoded: Vec<u8>,
}

impl Identity {
    /// The identity and version fields for every frame of an export.
    pub fn new(identity: &[u8], version: &[u8]) -> Self {
        let mut encoded = Vec::new();
        protobuf::bytes(1, identity, &mut encoded);
        protobuf::bytes(2, version, &mut encoded);
        Self { encoded }
    }
}

/// The client address as dnstap carries it: 4 bytes for IPv4 (an IPv4-mapped IPv6 client
/// included), 16 for IPv6.
fn client_address(ip: IpAddr) -> (SocketFamily, [u8; 16], usize) {
    let mut octets = [0u8; 16];
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            octets[..4].copy_from_slice(&a.octets());
            (SocketFamily::Inet, octets, 4)
        }
        IpAddr::V6(a) => (SocketFamily::Inet6, a.octets(), 16),
    }
}

/// An enum value as protobuf writes it (dnstap's are all small and positive).
fn enumeration(value: i32) -> u64 {
    u64::from(value.unsigned_abs())
}

/// The dnstap frames for `exchange`: one CLIENT_RESPONSE carrying both messages, preceded
/// by a CLIENT_QUERY when `both`, each with `extra` (the client's identity, with
/// `include = ["identity"]`). Appended to `out` as Frame Streams data frames (4-byte length,
/// then the protobuf), written field by field from the exchange ([`crate::protobuf`]): no
/// allocation of its own, only `out` grows. Field numbers and types are those of the structs
/// above (`dnstap.proto`), in their order; the tests hold the bytes to their prost encoding.
pub fn encode(
    exchange: &Exchange,
    id: &Identity,
    both: bool,
    extra: Option<&[u8]>,
    out: &mut Vec<u8>,
) {
    let (family, octets, len) = client_address(exchange.client.ip());
    let protocol = match exchange.transport {
        Transport::Udp => SocketProtocol::Udp,
        Transport::Tcp => SocketProtocol::Tcp,
        Transport::Dot => SocketProtocol::Dot,
        Transport::Doh => SocketProtocol::Doh,
    };
    let (qs, qns) = split_time(exchange.query_time);
    let policy = policy_of(exchange);
    let mut frame = |response: bool| {
        // Never empty (the type field is always there) and far below 4 GiB (two DNS
        // messages).
        let _ = crate::fstrm::data_frame(out, |buf| {
            buf.extend_from_slice(&id.encoded);
            if let Some(extra) = extra {
                protobuf::bytes(3, extra, buf);
            }
            // A `Message` takes 128 bytes to 16 KiB (two UDP DNS messages): a 2-byte length.
            protobuf::message(14, 2, buf, |m| {
                let kind = match response {
                    true => MessageType::ClientResponse,
                    false => MessageType::ClientQuery,
                };
                protobuf::varint(1, enumeration(kind as i32), m);
                protobuf::varint(2, enumeration(family as i32), m);
                protobuf::varint(3, enumeration(protocol as i32), m);
                protobuf::bytes(4, &octets[..len], m);
                protobuf::varint(6, u64::from(exchange.client.port()), m);
                protobuf::varint(8, qs, m);
                protobuf::fixed32(9, qns, m);
                protobuf::bytes(10, exchange.messages.query(), m);
                if !response {
                    return;
                }
                let (rs, rns) = split_time(exchange.response_time);
                protobuf::varint(12, rs, m);
                protobuf::fixed32(13, rns, m);
                protobuf::bytes(14, exchange.messages.response(), m);
                if let Some(p) = &policy {
                    // Under 128 bytes unless the rule text is long.
                    protobuf::message(15, 1, m, |m| {
                        protobuf::bytes(1, POLICY_TYPE.as_bytes(), m);
                        protobuf::bytes(2, p.rule, m);
                        protobuf::varint(3, enumeration(p.action as i32), m);
                        protobuf::varint(4, enumeration(p.matched as i32), m);
                        if let Some(value) = p.value {
                            protobuf::bytes(5, value, m);
                        }
                    });
                }
            });
            protobuf::varint(15, enumeration(DnstapType::Message as i32), buf);
        });
    };
    if both {
        frame(false);
    }
    frame(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits Frame Streams data frames (4-byte big-endian length, then the payload).
    fn frames(mut bytes: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while let Some((len, rest)) = bytes.split_first_chunk::<4>() {
            let len = u32::from_be_bytes(*len) as usize;
            assert!(len > 0 && len <= rest.len(), "a whole data frame");
            out.push(&rest[..len]);
            bytes = &rest[len..];
        }
        assert!(bytes.is_empty(), "no trailing bytes");
        out
    }
    use poolguard_record::exchange::{ExchangeVerdict, Messages};
    use std::net::SocketAddr;
    use std::sync::Arc;

    fn exchange(outcome: Outcome, action: Option<Action>) -> Exchange {
        Exchange {
            client: SocketAddr::from(([10, 1, 2, 3], 40000)),
            transport: Transport::Tcp,
            query_time: UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5),
            response_time: UNIX_EPOCH + std::time::Duration::new(1_700_000_001, 7),
            messages: Messages::new(&[1, 2, 3], &[4, 5]),
            outcome,
            verdict: action.map(|action| ExchangeVerdict {
                feed: Arc::from("mining"),
                category: Arc::from("mining"),
                rule: Arc::from("pool.example"),
                action,
            }),
        }
    }

    fn id() -> Identity {
        Identity::new(b"node1", b"poolguard 0")
    }

    /// The frames of `exchange` as prost encodes the schema's structs, built the obvious way:
    /// the reference [`encode`] must match byte for byte.
    fn reference(exchange: &Exchange, both: bool, extra: Option<&[u8]>) -> Vec<u8> {
        use prost::Message as _;
        let address = match exchange.client.ip().to_canonical() {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let family = if address.len() == 4 {
            SocketFamily::Inet
        } else {
            SocketFamily::Inet6
        };
        let (qs, qns) = split_time(exchange.query_time);
        let (rs, rns) = split_time(exchange.response_time);
        let query = Message {
            r#type: MessageType::ClientQuery as i32,
            socket_family: Some(family as i32),
            socket_protocol: Some(SocketProtocol::Tcp as i32),
            query_address: Some(address),
            query_port: Some(u32::from(exchange.client.port())),
            query_time_sec: Some(qs),
            query_time_nsec: Some(qns),
            query_message: Some(exchange.messages.query().to_vec()),
            ..Message::default()
        };
        let response = Message {
            r#type: MessageType::ClientResponse as i32,
            response_time_sec: Some(rs),
            response_time_nsec: Some(rns),
            response_message: Some(exchange.messages.response().to_vec()),
            policy: policy_of(exchange).map(|p| Policy {
                r#type: Some(POLICY_TYPE.to_string()),
                rule: Some(p.rule.to_vec()),
                action: Some(p.action as i32),
                r#match: Some(p.matched as i32),
                value: p.value.map(<[u8]>::to_vec),
            }),
            ..query.clone()
        };
        let mut out = Vec::new();
        let messages = if both {
            vec![query, response]
        } else {
            vec![response]
        };
        for message in messages {
            let dnstap = Dnstap {
                identity: Some(b"node1".to_vec()),
                version: Some(b"poolguard 0".to_vec()),
                extra: extra.map(<[u8]>::to_vec),
                message: Some(message),
                r#type: DnstapType::Message as i32,
            };
            let bytes = dnstap.encode_to_vec();
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    }

    #[test]
    fn frames_are_the_bytes_prost_writes_for_the_schema() {
        let mut big = exchange(Outcome::IpBlocked, Some(Action::Refuse));
        // Lengths past one varint byte, and an IPv6 client.
        big.messages = Messages::new(&[7; 300], &[9; 70_000]);
        big.client = "[2001:db8::7]:53000".parse().unwrap();
        let mut mapped = exchange(Outcome::Quarantined, None);
        mapped.client = "[::ffff:10.1.2.3]:5300".parse().unwrap();
        // A policy past 127 bytes.
        let mut long_rule = exchange(Outcome::Blocked, Some(Action::Nxdomain));
        if let Some(v) = long_rule.verdict.as_mut() {
            v.rule = Arc::from("x".repeat(200));
        }
        let cases = [
            long_rule,
            exchange(Outcome::Blocked, Some(Action::Sinkhole)),
            exchange(Outcome::Allowed, None),
            big,
            mapped,
        ];
        for e in &cases {
            for (both, extra) in [(false, None), (true, Some(&b"{\"asset\":\"x\"}"[..]))] {
                let mut out = Vec::new();
                encode(e, &id(), both, extra, &mut out);
                assert!(
                    out == reference(e, both, extra),
                    "{:?} both={both}: frames differ from prost's",
                    e.outcome
                );
            }
        }
    }

    #[test]
    fn encrypted_transports_are_dot_and_doh() {
        use prost::Message as _;
        for (transport, want) in [
            (Transport::Dot, SocketProtocol::Dot),
            (Transport::Doh, SocketProtocol::Doh),
        ] {
            let mut out = Vec::new();
            let exchange = Exchange {
                transport,
                ..exchange(Outcome::Allowed, None)
            };
            encode(&exchange, &id(), false, None, &mut out);
            let d = Dnstap::decode(frames(&out)[0]).expect("decodes");
            let m = d.message.expect("message");
            assert_eq!(m.socket_protocol, Some(want as i32), "{transport:?}");
        }
    }

    #[test]
    fn a_block_becomes_one_client_response_with_its_policy() {
        use prost::Message as _;
        let mut out = Vec::new();
        encode(
            &exchange(Outcome::Blocked, Some(Action::Sinkhole)),
            &id(),
            false,
            None,
            &mut out,
        );
        let out = frames(&out);
        assert_eq!(out.len(), 1);
        let d = Dnstap::decode(out[0]).expect("decodes");
        assert_eq!(d.identity.as_deref(), Some(&b"node1"[..]));
        assert!(d.extra.is_none());
        let m = d.message.expect("message");
        assert_eq!(m.r#type, MessageType::ClientResponse as i32);
        assert_eq!(m.socket_family, Some(SocketFamily::Inet as i32));
        assert_eq!(m.socket_protocol, Some(SocketProtocol::Tcp as i32));
        assert_eq!(m.query_address.as_deref(), Some(&[10, 1, 2, 3][..]));
        assert_eq!(m.query_port, Some(40000));
        assert_eq!(m.query_message.as_deref(), Some(&[1, 2, 3][..]));
        assert_eq!(m.response_message.as_deref(), Some(&[4, 5][..]));
        assert_eq!(
            (m.query_time_sec, m.query_time_nsec),
            (Some(1_700_000_000), Some(5))
        );
        let p = m.policy.expect("policy");
        assert_eq!(p.r#type.as_deref(), Some("poolguard"));
        assert_eq!(p.rule.as_deref(), Some(&b"mining"[..]));
        assert_eq!(p.action, Some(PolicyAction::LocalData as i32));
        assert_eq!(p.r#match, Some(PolicyMatch::Qname as i32));
        assert_eq!(p.value.as_deref(), Some(&b"pool.example"[..]));
    }

    #[test]
    fn both_sends_the_query_first_and_allowed_answers_carry_no_policy() {
        use prost::Message as _;
        let mut out = Vec::new();
        encode(
            &exchange(Outcome::Allowed, None),
            &id(),
            true,
            Some(b"{}"),
            &mut out,
        );
        let out = frames(&out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            Dnstap::decode(out[1]).unwrap().extra.as_deref(),
            Some(&b"{}"[..])
        );
        let q = Dnstap::decode(out[0]).unwrap().message.unwrap();
        assert_eq!(q.r#type, MessageType::ClientQuery as i32);
        assert!(q.response_message.is_none());
        let r = Dnstap::decode(out[1]).unwrap().message.unwrap();
        assert!(r.policy.is_none());
    }

    #[test]
    fn actions_and_matches_map_as_documented() {
        assert_eq!(policy_action(Action::Refuse), PolicyAction::Drop);
        assert_eq!(policy_action(Action::Nxdomain), PolicyAction::Nxdomain);
        assert_eq!(policy_action(Action::Nodata), PolicyAction::Nodata);
        let ip = exchange(Outcome::IpBlocked, Some(Action::Nxdomain));
        let ip = policy_of(&ip).unwrap();
        assert_eq!(ip.matched, PolicyMatch::ResponseIp);
        let q = exchange(Outcome::Quarantined, None);
        let q = policy_of(&q).unwrap();
        assert_eq!(q.matched, PolicyMatch::ClientIp);
        assert_eq!(q.action, PolicyAction::LocalData);
        assert_eq!(q.rule, b"quarantine");
    }
}
