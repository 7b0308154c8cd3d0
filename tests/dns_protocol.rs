//! Protocol behaviour a forwarding resolver owes its clients: EDNS, truncation, ANY, flags.

mod common;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{RData, RecordType};

use common::*;

const BOTH: [Proto; 2] = [Proto::Udp, Proto::Tcp];

/// The example upstream plus `big.test` (large RRsets).
fn big_upstream() -> Upstream {
    Upstream::serving(&[
        ("example.test", fixture("example.test.zone")),
        ("big.test", fixture("big.test.zone")),
    ])
}

#[tokio::test]
async fn edns_is_echoed_with_our_payload_size() {
    let bed = TestBed::start().await;
    for proto in BOTH {
        let resp = query(
            bed.dns,
            proto,
            &with_payload("www.example.test.", RecordType::A, Some(4096)),
        )
        .await;
        let edns = resp.edns.as_ref().expect("OPT echoed");
        assert_eq!(
            edns.max_payload(),
            1232,
            "{proto:?}: our size, not the client's"
        );
        assert_eq!(edns.version(), 0);
        assert_eq!(addresses(&resp), vec!["192.0.2.10"]);

        let plain = query(
            bed.dns,
            proto,
            &with_payload("www.example.test.", RecordType::A, None),
        )
        .await;
        assert!(plain.edns.is_none(), "no OPT for a client without EDNS");
    }
    bed.shutdown().await;
}

#[tokio::test]
async fn edns_version_above_zero_gets_badvers_with_opt() {
    let bed = TestBed::start().await;
    for proto in BOTH {
        let mut req = request("www.example.test.", RecordType::A, true);
        if let Some(e) = req.edns.as_mut() {
            e.set_version(1);
        }
        let resp = query(bed.dns, proto, &req).await;
        assert_eq!(u16::from(resp.metadata.response_code), 16, "BADVERS");
        let edns = resp.edns.as_ref().expect("BADVERS needs OPT");
        assert_eq!(edns.version(), 0, "we speak version 0");
        assert!(resp.answers.is_empty());
    }
    assert_eq!(bed.upstream.queries_for("www.example.test"), 0);
    bed.shutdown().await;
}

#[tokio::test]
async fn unknown_edns_options_are_ignored_not_echoed() {
    let bed = TestBed::start().await;
    let mut req = request("www.example.test.", RecordType::A, true);
    if let Some(e) = req.edns.as_mut() {
        e.options_mut()
            .insert(EdnsOption::Unknown(65001, vec![1, 2, 3]));
    }
    let resp = query(bed.dns, Proto::Udp, &req).await;
    assert_eq!(resp.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&resp), vec!["192.0.2.10"]);
    let edns = resp.edns.as_ref().expect("OPT");
    assert!(
        edns.options()
            .as_ref()
            .iter()
            .all(|(code, _)| u16::from(*code) != 65001),
        "{edns:?}"
    );
    bed.shutdown().await;
}

#[tokio::test]
async fn large_answers_are_truncated_to_the_client_size_and_complete_over_tcp() {
    let bed = TestBed::builder().upstream(big_upstream()).start().await;

    // 40 A records (~700 bytes): too big without EDNS (512), fits 1232.
    let req = with_payload("mid.big.test.", RecordType::A, None);
    let raw = query_raw(bed.dns, Proto::Udp, &req.to_vec().unwrap()).await;
    assert!(
        raw.len() <= 512,
        "{} bytes over UDP without EDNS",
        raw.len()
    );
    let resp = Message::from_vec(&raw).unwrap();
    assert!(resp.metadata.truncation, "TC set");
    assert!(resp.answers.is_empty(), "no partial RRset");
    assert_eq!(resp.queries, req.queries, "question echoed");
    assert_eq!(resp.metadata.id, req.metadata.id);

    // An EDNS size below 512 counts as 512 (RFC 6891 §6.2.5): ~200 bytes go out whole ...
    let tiny = with_payload("few.big.test.", RecordType::A, Some(100));
    let raw = query_raw(bed.dns, Proto::Udp, &tiny.to_vec().unwrap()).await;
    assert!(raw.len() > 100, "{} bytes", raw.len());
    let resp = Message::from_vec(&raw).unwrap();
    assert!(!resp.metadata.truncation);
    assert_eq!(resp.answers.len(), 10);
    // ... ~700 do not, and the truncated answer still carries OPT.
    let tiny = with_payload("mid.big.test.", RecordType::A, Some(100));
    let raw = query_raw(bed.dns, Proto::Udp, &tiny.to_vec().unwrap()).await;
    assert!(raw.len() <= 512, "{} bytes", raw.len());
    let resp = Message::from_vec(&raw).unwrap();
    assert!(resp.metadata.truncation);
    assert!(
        resp.edns.is_some(),
        "a truncated EDNS answer still carries OPT"
    );

    let fits = query(
        bed.dns,
        Proto::Udp,
        &with_payload("mid.big.test.", RecordType::A, Some(1232)),
    )
    .await;
    assert!(!fits.metadata.truncation);
    assert_eq!(fits.answers.len(), 40);

    // 120 A records (~2 KB): over 1232 even if the client offers 4096 (we never send more
    // than our own size over UDP) ...
    let req = with_payload("many.big.test.", RecordType::A, Some(4096));
    let raw = query_raw(bed.dns, Proto::Udp, &req.to_vec().unwrap()).await;
    assert!(raw.len() <= 1232, "{} bytes", raw.len());
    let resp = Message::from_vec(&raw).unwrap();
    assert!(resp.metadata.truncation);
    // ... and complete over TCP.
    let full = query(bed.dns, Proto::Tcp, &req).await;
    assert!(!full.metadata.truncation);
    assert_eq!(full.answers.len(), 120);
    bed.shutdown().await;
}

#[tokio::test]
async fn any_gets_the_rfc8482_answer_and_is_never_forwarded() {
    let bed = TestBed::start().await;
    for proto in BOTH {
        let resp = bed.ask(proto, "www.example.test.", RecordType::ANY).await;
        assert_eq!(resp.metadata.response_code, ResponseCode::NoError);
        assert_eq!(resp.answers.len(), 1, "{resp:?}");
        let RData::HINFO(hinfo) = &resp.answers[0].data else {
            panic!("HINFO expected: {resp:?}");
        };
        assert_eq!(&*hinfo.cpu, b"RFC8482");
        assert!(hinfo.os.is_empty());
        assert_eq!(resp.answers[0].ttl, 3600);
    }
    assert_eq!(bed.upstream.queries_for("www.example.test"), 0);

    // A listed name still gets its block answer (NODATA for non-address types), with EDE.
    let blocked = bed.ask(Proto::Udp, "sink.test.", RecordType::ANY).await;
    assert!(blocked.answers.is_empty(), "{blocked:?}");
    assert_eq!(ede(&blocked).map(|(c, _)| c), Some(15));
    bed.shutdown().await;
}

#[tokio::test]
async fn flags_are_those_of_a_forwarding_resolver() {
    let bed = TestBed::start().await;
    for proto in BOTH {
        for (name, aa) in [
            ("www.example.test.", false),
            ("sink.test.", false),
            ("printer.campus.test.", true),
        ] {
            let req = request(name, RecordType::A, true);
            let resp = query(bed.dns, proto, &req).await;
            let ctx = format!("{name} over {proto:?}");
            assert_eq!(resp.metadata.id, req.metadata.id, "{ctx}");
            assert_eq!(
                resp.metadata.message_type,
                hickory_proto::op::MessageType::Response
            );
            assert!(resp.metadata.recursion_available, "RA: {ctx}");
            assert!(resp.metadata.recursion_desired, "RD echoed: {ctx}");
            assert_eq!(
                resp.metadata.authoritative, aa,
                "AA only for own zones: {ctx}"
            );
            assert!(!resp.metadata.truncation, "{ctx}");
            assert_eq!(resp.queries, req.queries, "question echoed: {ctx}");
        }
    }
    let blocked = bed
        .ask(Proto::Tcp, "xmr.pool.minergate.com.", RecordType::A)
        .await;
    let (code, text) = ede(&blocked).expect("EDE on a blocked answer");
    assert_eq!(code, 15);
    assert!(text.contains("mining"), "{text}");
    bed.shutdown().await;
}

/// DNSSEC bits of a non-validating forwarder: CD is copied back (RFC 4035 §3.2.2), AD is never
/// set even when asked for, and DO is copied into the OPT (RFC 3225 §3: MUST), though no
/// signatures are passed on. On the general path, the packet cache and block answers.
#[tokio::test]
async fn dnssec_bits_are_those_of_a_non_validating_forwarder() {
    let bed = TestBed::start().await;
    for proto in BOTH {
        for name in [
            "www.example.test.",
            "xmr.pool.minergate.com.",
            "printer.campus.test.",
        ] {
            // Each plain one twice: the second is answered from the packet cache (fast path).
            for (cd, ad, dnssec_ok) in [
                (false, false, true),
                (false, false, true),
                (false, false, false),
                (false, false, false),
                (true, false, true),
                (false, true, true),
                (false, true, false),
            ] {
                let mut req = with_payload(name, RecordType::A, Some(1232));
                req.metadata.checking_disabled = cd;
                req.metadata.authentic_data = ad;
                if let Some(e) = req.edns.as_mut() {
                    e.set_dnssec_ok(dnssec_ok);
                }
                let resp = query(bed.dns, proto, &req).await;
                let ctx = format!("{name} over {proto:?}, CD={cd} AD={ad} DO={dnssec_ok}");
                assert_eq!(resp.metadata.response_code, ResponseCode::NoError, "{ctx}");
                assert_eq!(resp.metadata.checking_disabled, cd, "CD copied: {ctx}");
                assert!(!resp.metadata.authentic_data, "never AD: {ctx}");
                let edns = resp.edns.as_ref().expect("OPT echoed");
                assert_eq!(edns.flags().dnssec_ok, dnssec_ok, "DO copied: {ctx}");
                assert!(
                    resp.answers
                        .iter()
                        .all(|r| r.record_type() != RecordType::RRSIG),
                    "{ctx}"
                );
            }
        }
    }
    bed.shutdown().await;
}

#[tokio::test]
async fn meta_types_in_the_question_are_rejected() {
    let bed = TestBed::start().await;
    for (rtype, rcode) in [
        (RecordType::OPT, ResponseCode::FormErr),
        (RecordType::TSIG, ResponseCode::FormErr),
        (RecordType::Unknown(249), ResponseCode::FormErr),
        (RecordType::Unknown(254), ResponseCode::NotImp),
        (RecordType::AXFR, ResponseCode::Refused),
    ] {
        let resp = bed.ask(Proto::Tcp, "www.example.test.", rtype).await;
        assert_eq!(resp.metadata.response_code, rcode, "{rtype}");
    }
    assert_eq!(bed.upstream.queries_for("www.example.test"), 0);
    bed.shutdown().await;
}
