//! RADIUS accounting packets (RFC 2866) on the wire: parsing untrusted bytes, checking the
//! Request Authenticator, and building the Accounting-Response.
//!
//! ```text
//! packet := code(1) identifier(1) length(2, big-endian) authenticator(16) attribute*
//! attribute := type(1) length(1, includes these two) value(length - 2)
//! ```
//!
//! An Accounting-Request's authenticator is MD5(code | identifier | length | 16 zero octets |
//! attributes | secret); the response's is MD5(5 | identifier | length | request
//! authenticator | attributes | secret). Only the attributes poolguard uses are decoded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use md5::{Digest, Md5};

/// RFC 2866 codes.
pub const ACCOUNTING_REQUEST: u8 = 4;
pub const ACCOUNTING_RESPONSE: u8 = 5;
const HEADER: usize = 20;
/// RFC 2865: packets are at most 4096 octets.
pub const MAX_PACKET: usize = 4096;

/// Why a packet was dropped; the label of `poolguard_radius_dropped_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Drop {
    #[error("malformed")]
    Malformed,
    #[error("not an Accounting-Request")]
    NotAccounting,
    #[error("unknown NAS")]
    UnknownNas,
    #[error("bad authenticator")]
    BadAuthenticator,
}

impl Drop {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Drop::Malformed => "malformed",
            Drop::NotAccounting => "not_accounting",
            Drop::UnknownNas => "unknown_nas",
            Drop::BadAuthenticator => "bad_authenticator",
        }
    }
}

/// Acct-Status-Type values poolguard acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Start,
    Stop,
    Interim,
    AccountingOn,
    AccountingOff,
    Other(u32),
}

/// The fields of an Accounting-Request that say who held which address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounting {
    pub identifier: u8,
    pub authenticator: [u8; 16],
    pub status: Option<Status>,
    pub user_name: Option<String>,
    pub calling_station_id: Option<String>,
    pub session_id: Option<String>,
    pub framed_ip: Option<IpAddr>,
    pub framed_ipv6: Option<IpAddr>,
    /// Acct-Delay-Time: seconds the NAS held the record before sending it.
    pub delay_secs: u32,
    /// Event-Timestamp (seconds since the epoch), when the NAS sends it.
    pub event_time: Option<u32>,
}

/// Checks the structure of `bytes` and returns its length-bounded part: header and
/// attributes (octets past `length` are padding and ignored, RFC 2865 §3).
fn frame(bytes: &[u8]) -> Result<&[u8], Drop> {
    if bytes.len() < HEADER {
        return Err(Drop::Malformed);
    }
    let length = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    if !(HEADER..=MAX_PACKET).contains(&length) || length > bytes.len() {
        return Err(Drop::Malformed);
    }
    let packet = &bytes[..length];
    let mut rest = &packet[HEADER..];
    while !rest.is_empty() {
        let [_, len, ..] = rest else {
            return Err(Drop::Malformed);
        };
        let len = usize::from(*len);
        if len < 2 || len > rest.len() {
            return Err(Drop::Malformed);
        }
        rest = &rest[len..];
    }
    Ok(packet)
}

fn attributes(packet: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = &packet[HEADER.min(packet.len())..];
    std::iter::from_fn(move || {
        let [kind, len, ..] = rest else { return None };
        let (kind, len) = (*kind, usize::from(*len));
        if len < 2 || len > rest.len() {
            return None;
        }
        let value = &rest[2..len];
        rest = &rest[len..];
        Some((kind, value))
    })
}

/// Reads an Accounting-Request from `bytes` and checks its authenticator with `secret`.
pub fn parse_request(bytes: &[u8], secret: &[u8]) -> Result<Accounting, Drop> {
    let packet = frame(bytes)?;
    if packet[0] != ACCOUNTING_REQUEST {
        return Err(Drop::NotAccounting);
    }
    let mut authenticator = [0u8; 16];
    authenticator.copy_from_slice(&packet[4..HEADER]);
    let mut md5 = Md5::new();
    md5.update(&packet[..4]);
    md5.update([0u8; 16]);
    md5.update(&packet[HEADER..]);
    md5.update(secret);
    let expected: [u8; 16] = md5.finalize().into();
    if !constant_time_eq(&expected, &authenticator) {
        return Err(Drop::BadAuthenticator);
    }
    let mut acct = Accounting {
        identifier: packet[1],
        authenticator,
        status: None,
        user_name: None,
        calling_station_id: None,
        session_id: None,
        framed_ip: None,
        framed_ipv6: None,
        delay_secs: 0,
        event_time: None,
    };
    let text = |v: &[u8]| Some(String::from_utf8_lossy(v).into_owned());
    let u32_of = |v: &[u8]| <[u8; 4]>::try_from(v).ok().map(u32::from_be_bytes);
    for (kind, value) in attributes(packet) {
        match kind {
            1 => acct.user_name = text(value),
            8 => {
                acct.framed_ip = <[u8; 4]>::try_from(value)
                    .ok()
                    .map(|b| IpAddr::V4(Ipv4Addr::from(b)));
            }
            31 => acct.calling_station_id = text(value),
            40 => {
                acct.status = u32_of(value).map(|s| match s {
                    1 => Status::Start,
                    2 => Status::Stop,
                    3 => Status::Interim,
                    7 => Status::AccountingOn,
                    8 => Status::AccountingOff,
                    other => Status::Other(other),
                });
            }
            41 => acct.delay_secs = u32_of(value).unwrap_or(0),
            44 => acct.session_id = text(value),
            55 => acct.event_time = u32_of(value),
            // Framed-IPv6-Address (RFC 6911).
            168 => {
                acct.framed_ipv6 = <[u8; 16]>::try_from(value)
                    .ok()
                    .map(|b| IpAddr::V6(Ipv6Addr::from(b)));
            }
            _ => {}
        }
    }
    Ok(acct)
}

/// The Accounting-Response to a request (no attributes).
pub fn response(request: &Accounting, secret: &[u8]) -> [u8; HEADER] {
    let mut out = [0u8; HEADER];
    out[0] = ACCOUNTING_RESPONSE;
    out[1] = request.identifier;
    out[2..4].copy_from_slice(&(HEADER as u16).to_be_bytes());
    let mut md5 = Md5::new();
    md5.update(&out[..4]);
    md5.update(request.authenticator);
    md5.update(secret);
    let auth: [u8; 16] = md5.finalize().into();
    out[4..].copy_from_slice(&auth);
    out
}

/// Builds an Accounting-Request (for tests and tools): `attrs` as (type, value).
pub fn request(identifier: u8, attrs: &[(u8, &[u8])], secret: &[u8]) -> Vec<u8> {
    let mut out = vec![ACCOUNTING_REQUEST, identifier, 0, 0];
    out.extend_from_slice(&[0u8; 16]);
    for (kind, value) in attrs {
        out.push(*kind);
        out.push((value.len() + 2) as u8);
        out.extend_from_slice(value);
    }
    let len = (out.len() as u16).to_be_bytes();
    out[2..4].copy_from_slice(&len);
    let mut md5 = Md5::new();
    md5.update(&out);
    md5.update(secret);
    let auth: [u8; 16] = md5.finalize().into();
    out[4..HEADER].copy_from_slice(&auth);
    out
}

fn constant_time_eq(a: &[u8; 16], b: &[u8; 16]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn start() -> Vec<u8> {
        request(
            7,
            &[
                (40, &1u32.to_be_bytes()),
                (1, b"alice"),
                (31, b"00-1A-2B-3C-4D-5E"),
                (44, b"sess-1"),
                (8, &[10, 213, 3, 45]),
            ],
            b"s3cret",
        )
    }

    #[test]
    fn a_signed_request_parses_and_a_wrong_secret_is_refused() {
        let acct = parse_request(&start(), b"s3cret").expect("valid");
        assert_eq!(acct.status, Some(Status::Start));
        assert_eq!(acct.user_name.as_deref(), Some("alice"));
        assert_eq!(acct.framed_ip, Some("10.213.3.45".parse().unwrap()));
        assert_eq!(acct.session_id.as_deref(), Some("sess-1"));
        assert_eq!(
            parse_request(&start(), b"wrong"),
            Err(Drop::BadAuthenticator)
        );
        let mut tampered = start();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            parse_request(&tampered, b"s3cret"),
            Err(Drop::BadAuthenticator)
        );
    }

    #[test]
    fn the_response_authenticator_follows_rfc_2866() {
        let acct = parse_request(&start(), b"s3cret").unwrap();
        let resp = response(&acct, b"s3cret");
        let mut md5 = Md5::new();
        md5.update([5, 7, 0, 20]);
        md5.update(acct.authenticator);
        md5.update(b"s3cret");
        let expected: [u8; 16] = md5.finalize().into();
        assert_eq!(&resp[4..], &expected);
    }

    #[test]
    fn broken_framing_is_malformed() {
        let p = start();
        assert_eq!(parse_request(&p[..19], b"s3cret"), Err(Drop::Malformed));
        let mut bad_len = p.clone();
        bad_len[2..4].copy_from_slice(&5000u16.to_be_bytes());
        assert_eq!(parse_request(&bad_len, b"s3cret"), Err(Drop::Malformed));
        let mut bad_attr = p.clone();
        bad_attr[21] = 1;
        assert_eq!(parse_request(&bad_attr, b"s3cret"), Err(Drop::Malformed));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_request(&bytes, b"s3cret");
        }

        #[test]
        fn mutated_requests_never_panic(
            flips in proptest::collection::vec((0usize..80, any::<u8>()), 1..8),
        ) {
            let mut p = start();
            for (i, v) in flips {
                let n = p.len();
                p[i % n] = v;
            }
            let _ = parse_request(&p, b"s3cret");
        }
    }
}
