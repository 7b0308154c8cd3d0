//! The common query, parsed in place: header, one question, at most one well-formed OPT.
//!
//! Nearly every packet a campus resolver sees is "one IN question for an ordinary host name,
//! maybe with EDNS". Those are read here straight from the receive buffer into a stack copy of
//! the lower-cased name, without hickory's `Message` (whose parse allocates the name labels,
//! the query vector and the EDNS option map). Anything else — another opcode, a compression
//! pointer in the question, a label with bytes outside `[a-z0-9_-]`, EDNS version ≠ 0, an OPT
//! that is not exactly right, trailing bytes — is `None`, and the packet takes the general
//! path, which has the answer for every odd case. So this parser only has to be right about
//! what it accepts, never about what it rejects.

use crate::wire::{HEADER_LEN, MIN_UDP_PAYLOAD};

/// Longest name in wire form (RFC 1035 §2.3.4).
const MAX_WIRE_NAME: usize = 255;
/// OPT record type (RFC 6891).
const TYPE_OPT: u16 = 41;
/// The IN class.
const CLASS_IN: u16 = 1;

/// A query the fast path may answer. Borrowed from the receive buffer; the name lives on
/// the stack.
pub struct Query<'p> {
    /// The whole packet, for copying the question (with the client's letter case) back.
    pub packet: &'p [u8],
    /// Offset just past QTYPE/QCLASS.
    pub question_end: usize,
    /// QTYPE.
    pub qtype: u16,
    /// RD, echoed in the answer.
    pub recursion_desired: bool,
    /// The client's EDNS, when it sent an OPT record.
    pub edns: Option<ClientEdns>,
    name: [u8; MAX_WIRE_NAME],
    name_len: usize,
}

/// What the client's OPT record told us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientEdns {
    /// Its UDP payload size (already raised to 512 when smaller, RFC 6891 §6.2.5).
    pub payload: u16,
    /// The DO bit, copied into the answer's OPT (RFC 3225 §3).
    pub dnssec_ok: bool,
}

impl Query<'_> {
    /// The name in presentation form: lower case, no trailing dot (the policy's spelling).
    pub fn name(&self) -> &str {
        // Only `[a-z0-9_-]` and dots are ever written into `name`.
        std::str::from_utf8(&self.name[..self.name_len]).unwrap_or("")
    }

    /// The name's bytes, as [`Query::name`].
    pub fn name_bytes(&self) -> &[u8] {
        &self.name[..self.name_len]
    }

    /// The question section as the client sent it (its letter case, RFC 7766 0x20 stays).
    pub fn question(&self) -> &[u8] {
        &self.packet[HEADER_LEN..self.question_end]
    }

    /// The query ID.
    pub fn id(&self) -> [u8; 2] {
        [self.packet[0], self.packet[1]]
    }

    /// The most a UDP answer may take: the client's EDNS size or 512, capped by ours.
    pub fn udp_limit(&self, ours: u16) -> usize {
        let theirs = self.edns.map_or(MIN_UDP_PAYLOAD, |e| e.payload);
        usize::from(theirs.min(ours.max(MIN_UDP_PAYLOAD)))
    }
}

/// Reads `packet` if it is a query the fast path handles; `None` sends it the general way.
pub fn parse(packet: &[u8]) -> Option<Query<'_>> {
    if packet.len() < HEADER_LEN + 5 {
        return None;
    }
    let flags = packet[2];
    // QR=0, OPCODE=0 (QUERY), AA=0, TC=0. RD is free.
    if flags & 0xFE != 0 {
        return None;
    }
    // Z, AD, CD and RCODE: a plain query has none of them; CD would ask for unvalidated data.
    if packet[3] != 0 {
        return None;
    }
    let count = |at: usize| u16::from_be_bytes([packet[at], packet[at + 1]]);
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return None;
    }

    let mut query = Query {
        packet,
        question_end: 0,
        qtype: 0,
        recursion_desired: flags & 0x01 != 0,
        edns: None,
        name: [0; MAX_WIRE_NAME],
        name_len: 0,
    };
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*packet.get(at)?);
        if len == 0 {
            at += 1;
            break;
        }
        // Compression pointers and the reserved label types go the general way.
        if len > 63 || at + 1 + len - HEADER_LEN > MAX_WIRE_NAME - 1 {
            return None;
        }
        let label = packet.get(at + 1..at + 1 + len)?;
        if query.name_len > 0 {
            query.name[query.name_len] = b'.';
            query.name_len += 1;
        }
        for &b in label {
            let b = b.to_ascii_lowercase();
            if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
                return None;
            }
            query.name[query.name_len] = b;
            query.name_len += 1;
        }
        at += 1 + len;
    }
    if query.name_len == 0 {
        return None; // the root: rare, and the general path knows what to say
    }
    let fixed = packet.get(at..at + 4)?;
    query.qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    if u16::from_be_bytes([fixed[2], fixed[3]]) != CLASS_IN || !ordinary_type(query.qtype) {
        return None;
    }
    at += 4;
    query.question_end = at;

    if ar == 1 {
        let (edns, end) = parse_opt(packet, at)?;
        query.edns = Some(edns);
        at = end;
    }
    // Trailing bytes (or a missing OPT) are for the general path to judge.
    (at == packet.len()).then_some(query)
}

/// Types answered by forwarding, blocking or the cache. Meta types (OPT, TSIG, TKEY, IXFR,
/// AXFR, MAILA, MAILB, ANY) have their own rules in the general path.
fn ordinary_type(qtype: u16) -> bool {
    qtype != 0 && qtype != TYPE_OPT && !(249..=255).contains(&qtype)
}

/// An OPT record at `at` that the fast path accepts: root owner, version 0, options that
/// exactly fill RDLEN. Options themselves are ignored (we act on none of them), as in the
/// general path.
fn parse_opt(packet: &[u8], at: usize) -> Option<(ClientEdns, usize)> {
    let rr = packet.get(at..at + 11)?;
    if rr[0] != 0 || u16::from_be_bytes([rr[1], rr[2]]) != TYPE_OPT {
        return None;
    }
    let payload = u16::from_be_bytes([rr[3], rr[4]]).max(MIN_UDP_PAYLOAD);
    let dnssec_ok = rr[7] & 0x80 != 0;
    // rr[5] = extended RCODE (must be 0 in a query), rr[6] = version.
    if rr[5] != 0 || rr[6] != 0 {
        return None;
    }
    let rdlen = usize::from(u16::from_be_bytes([rr[9], rr[10]]));
    let end = at + 11 + rdlen;
    let mut option = at + 11;
    while option < end {
        let head = packet.get(option..option + 4)?;
        option += 4 + usize::from(u16::from_be_bytes([head[2], head[3]]));
    }
    (option == end && end <= packet.len()).then_some((ClientEdns { payload, dnssec_ok }, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(name: &[&str], qtype: u16, opt: Option<&[u8]>) -> Vec<u8> {
        let mut p = vec![
            0x12,
            0x34,
            0x01,
            0x00,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            opt.is_some() as u8,
        ];
        for label in name {
            p.push(label.len() as u8);
            p.extend_from_slice(label.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&[0, 1]);
        if let Some(opt) = opt {
            p.extend_from_slice(opt);
        }
        p
    }

    const OPT: &[u8] = &[0, 0, 41, 0x04, 0xD0, 0, 0, 0x80, 0, 0, 0];

    #[test]
    fn reads_a_plain_query_lowercased() {
        let p = packet(&["XMR", "Pool", "example"], 1, None);
        let q = parse(&p).expect("fast");
        assert_eq!(q.name(), "xmr.pool.example");
        assert_eq!(q.qtype, 1);
        assert!(q.recursion_desired);
        assert!(q.edns.is_none());
        assert_eq!(q.question(), &p[12..]);
        assert_eq!(q.udp_limit(1232), 512);
    }

    #[test]
    fn reads_edns_and_caps_the_size() {
        let p = packet(&["a", "example"], 28, Some(OPT));
        let q = parse(&p).expect("fast");
        assert_eq!(
            q.edns,
            Some(ClientEdns {
                payload: 1232,
                dnssec_ok: true
            })
        );
        assert_eq!(q.udp_limit(1232), 1232);
        assert_eq!(q.udp_limit(600), 600);
        let mut tiny = OPT.to_vec();
        tiny[3..5].copy_from_slice(&100u16.to_be_bytes());
        let p = packet(&["a", "example"], 28, Some(&tiny));
        assert_eq!(parse(&p).expect("fast").udp_limit(1232), 512);
    }

    #[test]
    fn leaves_everything_unusual_to_the_general_path() {
        let mut opt_v1 = OPT.to_vec();
        opt_v1[6] = 1;
        let mut opt_overrun = OPT.to_vec();
        opt_overrun[10] = 8;
        let mut opt_option = OPT.to_vec();
        opt_option[10] = 6;
        opt_option.extend_from_slice(&[0, 10, 0, 2, 1, 2]); // a whole option: fine
        assert!(parse(&packet(&["a", "example"], 1, Some(&opt_option))).is_some());

        let cases: Vec<Vec<u8>> = vec![
            packet(&["a", "example"], 255, None),        // ANY
            packet(&["a", "example"], 252, None),        // AXFR
            packet(&["a", "example"], 41, None),         // OPT as QTYPE
            packet(&["a b", "example"], 1, None),        // space in a label
            packet(&["a.b", "example"], 1, None),        // dot in a label
            packet(&["caf\u{e9}", "example"], 1, None),  // non-ASCII
            packet(&[], 1, None),                        // root
            packet(&["a", "example"], 1, Some(&opt_v1)), // EDNS version 1
            packet(&["a", "example"], 1, Some(&opt_overrun)),
            {
                let mut p = packet(&["a", "example"], 1, None);
                p.push(0); // trailing byte
                p
            },
            {
                let mut p = packet(&["a", "example"], 1, None);
                p[2] |= 0x80; // a response
                p
            },
            {
                let mut p = packet(&["a", "example"], 1, None);
                p[2] |= 0x28; // opcode 5 (UPDATE)
                p
            },
            {
                let mut p = packet(&["a", "example"], 1, None);
                p[3] |= 0x10; // CD
                p
            },
            {
                let mut p = packet(&["a", "example"], 1, None);
                p[5] = 2; // two questions
                p
            },
            {
                let mut p = packet(&["a", "example"], 1, None);
                let class = p.len() - 1;
                p[class] = 3; // CHAOS
                p
            },
            {
                let mut p = packet(&["a", "example"], 1, None);
                p[11] = 1; // promises an OPT that is not there
                p
            },
            vec![
                0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1,
            ], // pointer
        ];
        for (i, p) in cases.iter().enumerate() {
            assert!(parse(p).is_none(), "case {i} must take the general path");
        }
    }

    #[test]
    fn names_longer_than_255_bytes_are_not_accepted() {
        let label = "a".repeat(63);
        let ok = [label.as_str(), &label, &label, &"b".repeat(61)];
        assert!(
            parse(&packet(&ok, 1, None)).is_some(),
            "255-byte name is legal"
        );
        let long = [label.as_str(), &label, &label, &"b".repeat(62)];
        assert!(parse(&packet(&long, 1, None)).is_none());
    }

    #[test]
    fn truncated_packets_are_never_read_past_their_end() {
        let p = packet(&["xmr", "pool", "example"], 1, Some(OPT));
        for cut in 0..p.len() {
            assert!(parse(&p[..cut]).is_none(), "cut at {cut}");
        }
    }
}
