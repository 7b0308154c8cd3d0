//! Answers to the letter of the RFCs (issue 13, "DNS answers"): truncation only when the answer
//! does not fit (RFC 2181 §9), CNAME chains that end negatively (RFC 1034 §4.3.2, RFC 6604),
//! CNAME loops (RFC 1034 §3.6.2), malformed OPT (RFC 6891 §7), DO copied (RFC 3225 §3), RA on
//! refused operations, and SOA on locally made negative answers (RFC 2308).
//!
//! Each test sends real packets to a real poolguard (one worker, so a repeated question is a
//! packet-cache hit on the fast path) forwarding to the in-test authoritative upstream.

mod common;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use common::*;

/// The example upstream plus `rfc.test` (tests/fixtures/rfc.test.zone).
fn rfc_upstream() -> Upstream {
    Upstream::serving(&[
        ("example.test", fixture("example.test.zone")),
        ("minergate.com", fixture("minergate.com.zone")),
        ("rfc.test", fixture("rfc.test.zone")),
    ])
}

/// One worker: the second of two identical plain queries is answered from its packet cache.
async fn bed() -> TestBed {
    TestBed::builder()
        .upstream(rfc_upstream())
        .workers(1)
        .local_zone("campus.test", "campus.test.zone")
        .start()
        .await
}

/// Length of the question section of a raw message (one uncompressed question).
fn question_len(raw: &[u8]) -> usize {
    let mut at = 12;
    while raw[at] != 0 {
        at += 1 + usize::from(raw[at]);
    }
    at + 1 + 4 - 12
}

fn txt_len(m: &Message) -> usize {
    m.answers
        .iter()
        .map(|r| match &r.data {
            RData::TXT(t) => t.txt_data.iter().map(|s| s.len()).sum::<usize>(),
            _ => 0,
        })
        .sum()
}

/// Issue 13, point 1: the first answer's owner is a pointer to the question, on the general
/// path (AD set, as `dig` sends) exactly as on the packet-cache path.
#[tokio::test]
async fn the_answer_owner_is_compressed_against_the_question() {
    let bed = bed().await;
    for name in ["mail.example.test.", "MAIL.Example.TEST."] {
        let mut dig = request(name, RecordType::A, true);
        dig.metadata.authentic_data = true; // takes the general path
        let general = query_raw(bed.dns, Proto::Udp, &dig.to_vec().unwrap()).await;
        let at = 12 + question_len(&general);
        assert_eq!(
            &general[at..at + 2],
            &[0xC0, 0x0C],
            "{name}: the owner points at the question ({} bytes)",
            general.len()
        );
        let plain = request(name, RecordType::A, true);
        let cached = query_raw(bed.dns, Proto::Udp, &plain.to_vec().unwrap()).await;
        assert_eq!(
            general.len(),
            cached.len(),
            "{name}: same size on both paths"
        );
        let m = Message::from_vec(&general).unwrap();
        assert_eq!(addresses(&m), vec!["192.0.2.25"]);
        assert_eq!(m.answers[0].name.to_ascii(), name, "the client's spelling");
    }
    bed.shutdown().await;
}

/// Issue 13, point 1: answers that fit the client's size come back whole, without TC, on a
/// cache miss and on a cache hit; one that does not fit gets TC (with OPT for EDNS queries).
#[tokio::test]
async fn answers_that_fit_are_never_truncated() {
    let bed = bed().await;
    for (name, payload, limit, text) in [
        ("txt480.rfc.test.", None, 512, 458),
        ("txt1200.rfc.test.", Some(1232), 1232, 1163),
    ] {
        for round in ["miss", "hit"] {
            let req = with_payload(name, RecordType::TXT, payload);
            let raw = query_raw(bed.dns, Proto::Udp, &req.to_vec().unwrap()).await;
            let ctx = format!("{name} ({round}, {} bytes)", raw.len());
            assert!(raw.len() <= limit, "{ctx}");
            let m = Message::from_vec(&raw).unwrap();
            assert!(!m.metadata.truncation, "{ctx}: TC on an answer that fits");
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{ctx}");
            assert_eq!(m.answers.len(), 1, "{ctx}");
            assert_eq!(txt_len(&m), text, "{ctx}");
            assert_eq!(m.edns.is_some(), payload.is_some(), "{ctx}");
        }
    }

    // Truly too big: TC, no partial RRset, the question echoed, OPT kept for EDNS.
    for payload in [None, Some(512)] {
        let req = with_payload("txt1200.rfc.test.", RecordType::TXT, payload);
        let raw = query_raw(bed.dns, Proto::Udp, &req.to_vec().unwrap()).await;
        assert!(raw.len() <= 512, "{} bytes", raw.len());
        let m = Message::from_vec(&raw).unwrap();
        assert!(m.metadata.truncation, "{payload:?}: TC");
        assert!(m.answers.is_empty(), "{payload:?}: no partial RRset");
        assert_eq!(m.queries, req.queries);
        assert_eq!(m.edns.is_some(), payload.is_some(), "{payload:?}: OPT");
        // ... and whole over TCP.
        let full = query(bed.dns, Proto::Tcp, &req).await;
        assert!(!full.metadata.truncation);
        assert_eq!(txt_len(&full), 1163);
    }
    bed.shutdown().await;
}

/// `request` with its opcode replaced (raw, so any of the 16 values can be sent).
fn with_opcode(req: &Message, opcode: u8) -> Vec<u8> {
    let mut raw = req.to_vec().unwrap();
    raw[2] = (raw[2] & 0x87) | (opcode << 3);
    raw
}

/// Issue 13, point 6: RA only where recursion is what was asked for. NOTIFY, UPDATE, other
/// opcodes and zone transfers are refused without RA (ISC genreport `opcode=ra`); ordinary
/// answers, blocks and refused blocks keep it.
#[tokio::test]
async fn refused_operations_do_not_claim_recursion() {
    let bed = bed().await;
    let soa = request("example.test.", RecordType::SOA, false);
    for proto in [Proto::Udp, Proto::Tcp] {
        for opcode in [1u8, 2, 3, 4, 5, 6, 15] {
            let raw = query_raw(bed.dns, proto, &with_opcode(&soa, opcode)).await;
            let m = Message::from_vec(&raw).unwrap();
            let ctx = format!("opcode {opcode} over {proto:?}");
            assert_eq!(m.metadata.op_code, OpCode::from_u8(opcode), "{ctx}");
            assert_eq!(m.metadata.response_code, ResponseCode::NotImp, "{ctx}");
            assert!(!m.metadata.recursion_available, "RA: {ctx}");
            assert!(m.metadata.recursion_desired, "RD echoed: {ctx}");
        }
        // A NOTIFY with no question at all (a header-only answer from the gate).
        let mut bare = with_opcode(&soa, 4);
        bare.truncate(12);
        bare[5] = 0;
        let raw = query_raw(bed.dns, proto, &bare).await;
        assert_eq!(raw[3] & 0x0F, 4, "NOTIMP");
        assert_eq!(raw[3] & 0x80, 0, "RA over {proto:?}");
    }
    for (name, rtype) in [
        ("example.test.", RecordType::AXFR),
        ("example.test.", RecordType::IXFR),
        ("campus.test.", RecordType::AXFR),
    ] {
        let m = bed.ask(Proto::Tcp, name, rtype).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::Refused,
            "{name} {rtype}"
        );
        assert!(!m.metadata.recursion_available, "RA: {name} {rtype}");
    }
    // The recursive service itself says RA, refusals included.
    for name in ["www.example.test.", "refuse.test.", "nx.test."] {
        let m = bed.ask(Proto::Udp, name, RecordType::A).await;
        assert!(m.metadata.recursion_available, "RA: {name}");
    }
    bed.shutdown().await;
}

/// The CNAME records of an answer, as `owner -> target` text.
fn chain(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::CNAME(c) => Some(format!("{} -> {}", r.name, c.0)),
            _ => None,
        })
        .collect()
}

/// Issue 13, point 2: a CNAME chain that ends at a name that does not exist (or has no
/// record of the type) keeps the chain in the answer, with the final rcode and the SOA of
/// the zone that said so (RFC 1034 §4.3.2 step 3, RFC 6604 §2), on a miss and on a hit.
#[tokio::test]
async fn a_chain_that_ends_negatively_keeps_its_cnames() {
    let bed = bed().await;
    for (name, rtype, rcode, want, soa) in [
        (
            "chain.rfc.test.",
            RecordType::A,
            ResponseCode::NXDomain,
            vec![
                "chain.rfc.test. -> hop.rfc.test.",
                "hop.rfc.test. -> gone.rfc.test.",
            ],
            "rfc.test.",
        ),
        (
            "out.rfc.test.",
            RecordType::A,
            ResponseCode::NXDomain,
            vec!["out.rfc.test. -> missing.example.test."],
            "example.test.",
        ),
        (
            "nodata.rfc.test.",
            RecordType::AAAA,
            ResponseCode::NoError,
            vec!["nodata.rfc.test. -> ns1.rfc.test."],
            "rfc.test.",
        ),
    ] {
        for round in ["miss", "hit"] {
            for proto in [Proto::Udp, Proto::Tcp] {
                let m = query(bed.dns, proto, &request(name, rtype, false)).await;
                let ctx = format!("{name} {rtype} ({round}, {proto:?})");
                assert_eq!(m.metadata.response_code, rcode, "{ctx}");
                assert_eq!(chain(&m), want, "{ctx}: the chain is kept");
                assert_eq!(m.answers.len(), want.len(), "{ctx}: nothing else");
                let owners: Vec<String> = m
                    .authorities
                    .iter()
                    .filter(|r| r.record_type() == RecordType::SOA)
                    .map(|r| r.name.to_string())
                    .collect();
                assert_eq!(owners, vec![soa], "{ctx}: the SOA, so it is cached");
            }
        }
    }
    bed.shutdown().await;
}

/// Issue 13, point 3: a CNAME loop is a failure to resolve (RFC 1034 §3.6.2): SERVFAIL, never
/// an empty NOERROR that claims the name has no records.
#[tokio::test]
async fn a_cname_loop_is_servfail() {
    let bed = bed().await;
    for round in ["first", "again"] {
        for proto in [Proto::Udp, Proto::Tcp] {
            for name in ["loop1.rfc.test.", "loop2.rfc.test."] {
                let m = bed.ask(proto, name, RecordType::A).await;
                let ctx = format!("{name} ({round}, {proto:?})");
                assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{ctx}");
            }
        }
    }
    bed.shutdown().await;
}

/// A query for `name` A whose OPT carries `options` as raw bytes (RDLEN = their length).
fn with_raw_options(name: &str, options: &[u8]) -> Vec<u8> {
    let mut raw = request(name, RecordType::A, false).to_vec().unwrap();
    raw[11] = 1; // ARCOUNT
    raw.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0]);
    raw.extend_from_slice(&u16::try_from(options.len()).unwrap().to_be_bytes());
    raw.extend_from_slice(options);
    raw
}

/// Issue 13, point 4: an EDNS option whose length runs past the end of the OPT record is
/// ignored, with the options after it, as Unbound does: the query gets its answer, with OPT
/// (RFC 6891 §7). A record that is itself cut short is still a header-only FORMERR.
#[tokio::test]
async fn a_broken_edns_option_is_ignored() {
    let bed = bed().await;
    let cases: [(&str, Vec<u8>); 3] = [
        // COOKIE claiming 8 bytes, carrying 2.
        ("overrun", vec![0, 10, 0, 8, 1, 2]),
        // A whole option, then half an option header.
        ("half a header", vec![0, 10, 0, 2, 1, 2, 0, 12]),
        // A whole padding option, then one that overruns.
        ("after a good one", vec![0, 12, 0, 1, 0, 0, 8, 0, 9, 1]),
    ];
    for proto in [Proto::Udp, Proto::Tcp] {
        for (case, options) in &cases {
            let raw = query_raw(
                bed.dns,
                proto,
                &with_raw_options("www.example.test.", options),
            )
            .await;
            let m = Message::from_vec(&raw).unwrap();
            let ctx = format!("{case} over {proto:?}");
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{ctx}");
            assert_eq!(addresses(&m), vec!["192.0.2.10"], "{ctx}");
            assert!(m.edns.is_some(), "{ctx}: OPT in the answer");
        }
        // RDLEN past the end of the packet: the message itself is broken.
        let mut cut = with_raw_options("www.example.test.", &[0, 10, 0, 2, 1, 2]);
        cut.truncate(cut.len() - 1);
        let raw = query_raw(bed.dns, proto, &cut).await;
        assert_eq!(raw.len(), 12, "header only over {proto:?}");
        assert_eq!(raw[3] & 0x0F, 1, "FORMERR over {proto:?}");
    }
    bed.shutdown().await;
}

/// The SOA records of the authority section, as `owner TTL MINIMUM`.
fn soas(m: &Message) -> Vec<String> {
    m.authorities
        .iter()
        .filter_map(|r| match &r.data {
            RData::SOA(soa) => Some(format!("{} {} {}", r.name, r.ttl, soa.minimum)),
            _ => None,
        })
        .collect()
}

/// Issue 13, point 7: special-use names are answered here, never forwarded, and every
/// negative answer poolguard makes carries an SOA so it can be cached (RFC 2308 §5).
#[tokio::test]
async fn locally_made_negative_answers_carry_an_soa() {
    let bed = bed().await;
    for proto in [Proto::Udp, Proto::Tcp] {
        for (name, rtype, rcode, soa) in [
            (
                "x.invalid.",
                RecordType::A,
                ResponseCode::NXDomain,
                "invalid.",
            ),
            (
                "invalid.",
                RecordType::MX,
                ResponseCode::NoError,
                "invalid.",
            ),
            (
                "hidden.onion.",
                RecordType::AAAA,
                ResponseCode::NXDomain,
                "onion.",
            ),
            (
                "localhost.",
                RecordType::MX,
                ResponseCode::NoError,
                "localhost.",
            ),
            (
                "www.localhost.",
                RecordType::TXT,
                ResponseCode::NoError,
                "localhost.",
            ),
            (
                "1.0.0.127.in-addr.arpa.",
                RecordType::A,
                ResponseCode::NoError,
                "127.in-addr.arpa.",
            ),
            // Block answers already did (with the block TTL).
            (
                "nx.test.",
                RecordType::A,
                ResponseCode::NXDomain,
                "nx.test.",
            ),
        ] {
            for edns in [false, true] {
                let m = query(bed.dns, proto, &request(name, rtype, edns)).await;
                let ctx = format!("{name} {rtype} over {proto:?}");
                assert_eq!(m.metadata.response_code, rcode, "{ctx}");
                assert!(m.answers.is_empty(), "{ctx}");
                let got = soas(&m);
                assert_eq!(got.len(), 1, "{ctx}: {got:?}");
                assert!(got[0].starts_with(&format!("{soa} ")), "{ctx}: {got:?}");
            }
        }
        // The positive side of localhost (RFC 6761 §6.3).
        let a = bed.ask(proto, "localhost.", RecordType::A).await;
        assert_eq!(addresses(&a), vec!["127.0.0.1"]);
        let aaaa = bed.ask(proto, "db.localhost.", RecordType::AAAA).await;
        assert_eq!(addresses(&aaaa), vec!["::1"]);
    }
    let seen = bed.upstream.seen();
    assert!(
        seen.iter()
            .all(|n| !n.ends_with("invalid") && !n.ends_with("onion") && !n.contains("localhost")),
        "special-use names are never forwarded: {seen:?}"
    );
    bed.shutdown().await;
}

/// Every chain is the question's own: hickory-resolver caches each hop of a chain it follows
/// with the CNAMEs that led there, so without care `www.example.test A` would come back with
/// `cross.rfc.test CNAME www.example.test`, and a chain meeting that hop would lose its own
/// first CNAME (found by tests/dns_differential.rs).
#[tokio::test]
async fn each_answer_has_its_own_cname_chain() {
    let bed = bed().await;
    // The general path (AD set), so every answer comes from the resolver, not our cache.
    async fn ask(bed: &TestBed, name: &str) -> Message {
        let mut m = request(name, RecordType::A, true);
        m.metadata.authentic_data = true;
        query(bed.dns, Proto::Udp, &m).await
    }
    let cross = ask(&bed, "cross.rfc.test.").await;
    assert_eq!(chain(&cross), vec!["cross.rfc.test. -> www.example.test."]);
    assert_eq!(addresses(&cross), vec!["192.0.2.10"]);
    let www = ask(&bed, "www.example.test.").await;
    assert_eq!(chain(&www), Vec::<String>::new(), "no other name's CNAME");
    assert_eq!(addresses(&www), vec!["192.0.2.10"]);
    let meet = ask(&bed, "meet.rfc.test.").await;
    assert_eq!(
        chain(&meet),
        vec![
            "meet.rfc.test. -> cross.rfc.test.",
            "cross.rfc.test. -> www.example.test."
        ],
        "the whole chain, from the question on"
    );
    assert_eq!(addresses(&meet), vec!["192.0.2.10"]);
    bed.shutdown().await;
}
