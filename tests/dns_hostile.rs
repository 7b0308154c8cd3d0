//! Hostile input, byte by byte, over real sockets: every malformed or abusive packet gets the
//! right error answer or is dropped, and the server keeps answering everyone else. Plus hostile
//! upstreams (silent, refusing, garbage, wrong IDs, slow then back).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use common::*;

const BOTH: [Proto; 2] = [Proto::Udp, Proto::Tcp];

// ---------------------------------------------------------------------------------------------
// Packet building

/// A 12-byte header: `flags` is the 16-bit flags word (QR, opcode, AA, TC, RD, RA, Z, rcode).
fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    let mut h = Vec::with_capacity(12);
    for v in [id, flags, qd, an, ns, ar] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    h
}

/// RD set, opcode QUERY.
const RD: u16 = 0x0100;

fn qname(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

fn question(name: &str, qtype: u16, class: u16) -> Vec<u8> {
    let mut q = qname(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&class.to_be_bytes());
    q
}

/// An OPT record: root owner, type 41, CLASS = payload, TTL = ext-rcode/version/flags.
fn opt(payload: u16, version: u8, rdata: &[u8]) -> Vec<u8> {
    let mut r = vec![0u8, 0, 41];
    r.extend_from_slice(&payload.to_be_bytes());
    r.extend_from_slice(&[0, version, 0, 0]);
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

/// A well-formed query for `www.example.test A`, with `id`.
fn good(id: u16) -> Vec<u8> {
    let mut p = header(id, RD, 1, 0, 0, 0);
    p.extend(question("www.example.test", 1, 1));
    p
}

fn rcode(raw: &[u8]) -> u8 {
    raw[3] & 0x0F
}

// ---------------------------------------------------------------------------------------------
// Assertions

/// Sends `bytes` and expects an answer with this RCODE (low 4 bits) and the request's ID.
async fn expect_rcode(dns: SocketAddr, proto: Proto, bytes: &[u8], code: ResponseCode) {
    let raw = query_raw(dns, proto, bytes).await;
    assert!(raw.len() >= 12, "{proto:?}: short answer {raw:?}");
    assert_eq!(raw[..2], bytes[..2], "{proto:?}: ID echoed");
    assert_eq!(raw[2] & 0x80, 0x80, "{proto:?}: QR set");
    assert_eq!(
        u16::from(rcode(&raw)),
        u16::from(code) & 0x0F,
        "{proto:?}: expected {code} for {bytes:02x?}, got {raw:02x?}"
    );
}

/// Sends `bytes`, then a good query on the same socket/connection: the first thing that comes
/// back must be the good query's answer, so `bytes` got none (each front end handles one
/// source's packets in order and drops before it reads the next).
async fn expect_silence(dns: SocketAddr, proto: Proto, bytes: &[u8]) {
    let probe = good(0x5A5A);
    let first = tokio::time::timeout(CLIENT_TIMEOUT, async {
        match proto {
            Proto::Udp => {
                let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                sock.send_to(bytes, dns).await.unwrap();
                sock.send_to(&probe, dns).await.unwrap();
                let mut buf = vec![0u8; 65535];
                let (n, _) = sock.recv_from(&mut buf).await.unwrap();
                buf.truncate(n);
                buf
            }
            Proto::Tcp => {
                let mut s = TcpStream::connect(dns).await.unwrap();
                for m in [bytes, &probe[..]] {
                    s.write_all(&(m.len() as u16).to_be_bytes()).await.unwrap();
                    s.write_all(m).await.unwrap();
                }
                read_frame(&mut s).await.expect("an answer to the probe")
            }
        }
    })
    .await
    .expect("the probe is answered");
    assert_eq!(
        first[..2],
        probe[..2],
        "{proto:?}: {bytes:02x?} was answered: {first:02x?}"
    );
}

/// Reads one length-prefixed answer; `None` when the server closed the connection.
async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.ok()?;
    Some(buf)
}

/// A normal query still works over both transports.
async fn still_serves(dns: SocketAddr) {
    for proto in BOTH {
        let resp = query(
            dns,
            proto,
            &request("www.example.test.", RecordType::A, true),
        )
        .await;
        assert_eq!(addresses(&resp), vec!["192.0.2.10"], "{proto:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed requests

#[tokio::test]
async fn truncated_packets() {
    let bed = TestBed::start().await;
    for proto in BOTH {
        // Shorter than a header: nothing to answer.
        expect_silence(bed.dns, proto, &[0x12, 0x34, 0x01]).await;
        // A header promising a question that is not there.
        expect_rcode(
            bed.dns,
            proto,
            &header(0x1001, RD, 1, 0, 0, 0),
            ResponseCode::FormErr,
        )
        .await;
        // A name cut off mid-label, and a question without its type/class.
        let mut cut = header(0x1002, RD, 1, 0, 0, 0);
        cut.extend_from_slice(&[3, b'w', b'w']);
        expect_rcode(bed.dns, proto, &cut, ResponseCode::FormErr).await;
        let mut no_type = header(0x1003, RD, 1, 0, 0, 0);
        no_type.extend(qname("www.example.test"));
        expect_rcode(bed.dns, proto, &no_type, ResponseCode::FormErr).await;
    }
    still_serves(bed.dns).await;
    bed.shutdown().await;
}

/// A UDP datagram longer than any real query (a valid question followed by 5 KB of junk) is
/// dropped before parsing (`reason="oversize"`): the batched receive reads 4 KiB slots and
/// never looks past them. The server keeps answering.
#[tokio::test]
async fn oversized_udp_datagrams_are_dropped() {
    let bed = TestBed::start().await;
    let mut p = header(0x1101, RD, 1, 0, 0, 0);
    p.extend(question("www.example.test", 1, 1));
    p.resize(5_000, 0xAB);
    expect_silence(bed.dns, Proto::Udp, &p).await;
    still_serves(bed.dns).await;
    bed.shutdown().await;
}

#[tokio::test]
async fn bad_counts() {
    let bed = TestBed::start().await;
    for proto in BOTH {
        for (qd, an, ns, ar) in [
            (0, 0, 0, 0),
            (2, 0, 0, 0),
            (0xFFFF, 0, 0, 0),
            (1, 0xFFFF, 0, 0),
            (1, 0, 0xFFFF, 0),
            (1, 0, 0, 0xFFFF),
        ] {
            let mut p = header(0x2000 + qd.min(9), RD, qd, an, ns, ar);
            p.extend(question("www.example.test", 1, 1));
            expect_rcode(bed.dns, proto, &p, ResponseCode::FormErr).await;
        }
        // Two real questions.
        let mut two = header(0x2100, RD, 2, 0, 0, 0);
        two.extend(question("www.example.test", 1, 1));
        two.extend(question("txt.example.test", 16, 1));
        expect_rcode(bed.dns, proto, &two, ResponseCode::FormErr).await;
    }
    still_serves(bed.dns).await;
    assert!(
        bed.upstream.seen().iter().all(|n| n == "www.example.test"),
        "nothing malformed was forwarded: {:?}",
        bed.upstream.seen()
    );
    bed.shutdown().await;
}

#[tokio::test]
async fn compression_loops_and_bad_pointers() {
    let bed = TestBed::start().await;
    for proto in BOTH {
        // The question's name points at itself (offset 12).
        let mut selfloop = header(0x3001, RD, 1, 0, 0, 0);
        selfloop.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        // Two pointers pointing at each other.
        let mut pingpong = header(0x3002, RD, 1, 0, 0, 0);
        pingpong.extend_from_slice(&[1, b'a', 0xC0, 12, 0, 1, 0, 1]);
        // A pointer past the end of the packet, and one forward into the type field.
        let mut beyond = header(0x3003, RD, 1, 0, 0, 0);
        beyond.extend_from_slice(&[0xC0, 0xFF, 0, 1, 0, 1]);
        let mut forward = header(0x3004, RD, 1, 0, 0, 0);
        forward.extend_from_slice(&[0xC0, 14, 0, 1, 0, 1]);
        // A pointer chain in an additional record's owner that loops.
        let mut in_additional = good(0x3005);
        in_additional[11] = 1;
        let at = in_additional.len() as u8;
        in_additional.extend_from_slice(&[0xC0, at, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);
        // Found by fuzzing (fuzz/artifacts → this regression test): a question name that is a
        // pointer into the header decodes, but hickory echoes the question's raw bytes, so the
        // answer's pointer pointed into *our* header and no client could parse it.
        let mut into_header = header(0x0100, 0, 1, 0, 0, 0);
        into_header.extend_from_slice(&[0xC0, 0x00, 0x00, 0x01, 0x00, 0x01]);
        for p in [
            selfloop,
            pingpong,
            beyond,
            forward,
            in_additional,
            into_header,
        ] {
            expect_rcode(bed.dns, proto, &p, ResponseCode::FormErr).await;
            let raw = query_raw(bed.dns, proto, &p).await;
            Message::from_vec(&raw).expect("every answer parses");
        }
    }
    still_serves(bed.dns).await;
    bed.shutdown().await;
}

#[tokio::test]
async fn oversized_labels_and_names() {
    let bed = TestBed::start().await;
    for proto in BOTH {
        // 0x40 is not a label length but the obsolete extended-label type.
        let mut label64 = header(0x4001, RD, 1, 0, 0, 0);
        label64.push(64);
        label64.extend(std::iter::repeat_n(b'a', 64));
        label64.extend_from_slice(&[0, 0, 1, 0, 1]);
        // 0x80 is a reserved label type.
        let mut reserved = header(0x4002, RD, 1, 0, 0, 0);
        reserved.extend_from_slice(&[0x80, b'a', 0, 0, 1, 0, 1]);
        // Five 63-byte labels: 321 bytes, over the 255-byte name limit.
        let mut long = header(0x4003, RD, 1, 0, 0, 0);
        for _ in 0..5 {
            long.push(63);
            long.extend(std::iter::repeat_n(b'b', 63));
        }
        long.extend_from_slice(&[0, 0, 1, 0, 1]);
        for p in [label64, reserved, long] {
            expect_rcode(bed.dns, proto, &p, ResponseCode::FormErr).await;
        }
        // The longest legal name is fine (and simply not found upstream).
        let mut max = header(0x4004, RD, 1, 0, 0, 0);
        for _ in 0..3 {
            max.push(63);
            max.extend(std::iter::repeat_n(b'c', 63));
        }
        max.push(61);
        max.extend(std::iter::repeat_n(b'd', 61));
        max.extend_from_slice(&[0, 0, 1, 0, 1]);
        let raw = query_raw(bed.dns, proto, &max).await;
        assert_ne!(rcode(&raw), 1, "a 255-byte name is legal");
    }
    still_serves(bed.dns).await;
    bed.shutdown().await;
}

#[tokio::test]
async fn unknown_opcodes_classes_and_types() {
    let bed = TestBed::start().await;
    for proto in BOTH {
        for opcode in [1u16, 2, 3, 4, 5, 7, 15] {
            let mut p = header(0x5000 + opcode, RD | (opcode << 11), 1, 0, 0, 0);
            p.extend(question("www.example.test", 1, 1));
            expect_rcode(bed.dns, proto, &p, ResponseCode::NotImp).await;
        }
        for class in [3u16, 4, 254, 0x1234] {
            let mut p = header(0x5100, RD, 1, 0, 0, 0);
            p.extend(question("www.example.test", 1, class));
            expect_rcode(bed.dns, proto, &p, ResponseCode::Refused).await;
        }
        // An unassigned type is forwarded like any other (the upstream has no such data).
        let mut p = header(0x5200, RD, 1, 0, 0, 0);
        p.extend(question("www.example.test", 65280, 1));
        expect_rcode(bed.dns, proto, &p, ResponseCode::NoError).await;
    }
    still_serves(bed.dns).await;
    bed.shutdown().await;
}

#[tokio::test]
async fn edns_edge_cases() {
    let bed = TestBed::start().await;
    for proto in BOTH {
        // Two OPT records: FORMERR (RFC 6891 §6.1.1).
        let mut two = header(0x6001, RD, 1, 0, 0, 2);
        two.extend(question("www.example.test", 1, 1));
        two.extend(opt(1232, 0, &[]));
        two.extend(opt(1232, 0, &[]));
        expect_rcode(bed.dns, proto, &two, ResponseCode::FormErr).await;
        // OPT outside the additional section.
        let mut misplaced = header(0x6002, RD, 1, 1, 0, 0);
        misplaced.extend(question("www.example.test", 1, 1));
        misplaced.extend(opt(1232, 0, &[]));
        expect_rcode(bed.dns, proto, &misplaced, ResponseCode::FormErr).await;
        // An option whose length runs past the record: the option is ignored, as Unbound
        // does, and the query answered with OPT (RFC 6891 §7; docs/DNS.md).
        let mut overrun = header(0x6003, RD, 1, 0, 0, 1);
        overrun.extend(question("www.example.test", 1, 1));
        overrun.extend(opt(1232, 0, &[0xFD, 0xE9, 0x00, 0x40, 1, 2]));
        let raw = query_raw(bed.dns, proto, &overrun).await;
        let m = Message::from_vec(&raw).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{proto:?}");
        assert!(m.edns.is_some(), "{proto:?}: OPT");
        // The OPT record itself runs past the packet: a broken message, FORMERR.
        let mut cut = overrun.clone();
        cut.truncate(cut.len() - 1);
        expect_rcode(bed.dns, proto, &cut, ResponseCode::FormErr).await;
        // Version 1: BADVERS (16 = 0x10: low bits 0 in the header, high bits in the OPT).
        let mut v1 = header(0x6004, RD, 1, 0, 0, 1);
        v1.extend(question("www.example.test", 1, 1));
        v1.extend(opt(1232, 1, &[]));
        let raw = query_raw(bed.dns, proto, &v1).await;
        let m = Message::from_vec(&raw).unwrap();
        assert_eq!(u16::from(m.metadata.response_code), 16, "{proto:?}");
        // Unknown option, zero payload size: answered normally (as if 512).
        let mut odd = header(0x6005, RD, 1, 0, 0, 1);
        odd.extend(question("www.example.test", 1, 1));
        odd.extend(opt(0, 0, &[0xFD, 0xE9, 0x00, 0x02, 0xAB, 0xCD]));
        let raw = query_raw(bed.dns, proto, &odd).await;
        let m = Message::from_vec(&raw).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{proto:?}");
        assert_eq!(addresses(&m), vec!["192.0.2.10"]);
    }
    still_serves(bed.dns).await;
    bed.shutdown().await;
}

#[tokio::test]
async fn responses_are_dropped_never_answered() {
    let bed = TestBed::start().await;
    for proto in BOTH {
        // A well-formed response (QR=1), as a reflection attack would send.
        let mut resp = good(0x7001);
        resp[2] |= 0x80;
        resp[3] |= 0x80;
        expect_silence(bed.dns, proto, &resp).await;
        // QR=1 and an unparsable body: hickory-server alone would answer this with FORMERR.
        let mut junk = header(0x7002, 0x8000 | RD, 1, 0, 0, 0);
        junk.extend_from_slice(&[0xFF; 9]);
        expect_silence(bed.dns, proto, &junk).await;
        // QR=1 claiming 65535 questions.
        let junk = header(0x7003, 0x8000, 0xFFFF, 0, 0, 0);
        expect_silence(bed.dns, proto, &junk).await;
    }
    still_serves(bed.dns).await;
    bed.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Lying TCP clients

/// Waits for the server to close `s` (EOF or reset), within the client timeout.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    matches!(
        tokio::time::timeout(CLIENT_TIMEOUT, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn lying_tcp_length_prefixes_are_cut_off() {
    let bed = TestBed::builder()
        .dns_option("tcp_idle_timeout_ms", "400")
        .start()
        .await;

    // Zero length: closed at once.
    let mut zero = TcpStream::connect(bed.dns).await.unwrap();
    zero.write_all(&[0, 0]).await.unwrap();
    assert!(closed_by_server(&mut zero).await, "zero-length frame");

    // Prefix larger than the data, a 65535 prefix with 10 bytes, half a prefix: all held open
    // at once; the server keeps answering others meanwhile, then closes each at the idle timeout.
    let mut liars = Vec::new();
    let body = good(0x8001);
    for prefix in [&[0u8, 100][..], &[0xFF, 0xFF][..], &[0][..]] {
        let mut s = TcpStream::connect(bed.dns).await.unwrap();
        s.write_all(prefix).await.unwrap();
        if prefix.len() == 2 {
            s.write_all(&body[..10]).await.unwrap();
        }
        liars.push(s);
    }
    still_serves(bed.dns).await;
    for (i, s) in liars.iter_mut().enumerate() {
        assert!(closed_by_server(s).await, "liar {i} was not disconnected");
    }

    // A prefix shorter than the message: the first frame is junk (dropped, too short), the rest
    // of the bytes are read as a new prefix and body; the connection ends without a crash.
    let mut short = TcpStream::connect(bed.dns).await.unwrap();
    short.write_all(&[0, 5]).await.unwrap();
    short.write_all(&body).await.unwrap();
    assert!(closed_by_server(&mut short).await);

    still_serves(bed.dns).await;
    bed.shutdown().await;
}

#[tokio::test]
async fn slow_loris_is_disconnected_before_its_query_completes() {
    let bed = TestBed::builder()
        .dns_option("tcp_idle_timeout_ms", "300")
        .start()
        .await;
    let mut s = TcpStream::connect(bed.dns).await.unwrap();
    let mut frame = (good(0x8101).len() as u16).to_be_bytes().to_vec();
    frame.extend(good(0x8101));
    // One byte every 50 ms (bounded: one frame, ~1.7 s in all), each byte well within the idle
    // timeout of the previous one; the whole message is not.
    let mut cut_off = false;
    for b in &frame {
        if s.write_all(&[*b]).await.is_err() {
            cut_off = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let answer = if cut_off {
        None
    } else {
        read_frame(&mut s).await
    };
    assert!(
        answer.is_none(),
        "the drip-fed query was answered: {answer:?}"
    );
    still_serves(bed.dns).await;
    bed.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Random bytes at a live server

fn random_packet() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Anything at all.
        proptest::collection::vec(any::<u8>(), 0..600),
        // A query header (QR=0, one question) followed by anything: reaches the parser.
        (
            any::<u16>(),
            0u8..16,
            proptest::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(id, op, tail)| {
                let mut p = header(id, (u16::from(op) << 11) | RD, 1, 0, 0, 0);
                p.extend(tail);
                p
            }),
        // A valid question with random records after it.
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(id, tail)| {
            let mut p = header(id, RD, 1, 1, 1, 1);
            p.extend(question("www.example.test", 1, 1));
            p.extend(tail);
            p
        }),
    ]
}

#[test]
fn random_bytes_never_stop_the_server() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bed = rt.block_on(TestBed::start());
    let dns = bed.dns;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let probe_id = std::sync::atomic::AtomicU16::new(0x8000);
    runner
        .run(&random_packet(), |packet| {
            let probe = good(probe_id.fetch_add(1, Ordering::Relaxed) | 0x8000);
            rt.block_on(async {
                // A fresh socket per case: an answer to an earlier case that is still on its
                // way (a forwarded random name) cannot be mistaken for one to this case.
                let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                sock.send_to(&packet, dns).await.unwrap();
                sock.send_to(&probe, dns).await.unwrap();
                // Whatever comes back before the probe's answer must be a response to the
                // random packet (its ID, QR set), never something else.
                let mut buf = vec![0u8; 65535];
                tokio::time::timeout(CLIENT_TIMEOUT, async {
                    for _ in 0..4 {
                        let (n, _) = sock.recv_from(&mut buf).await.unwrap();
                        if buf[..2] == probe[..2] && n >= 12 {
                            return;
                        }
                        assert!(
                            packet.len() >= 12 && buf[..2] == packet[..2],
                            "stray answer"
                        );
                        assert_eq!(buf[2] & 0x80, 0x80, "answers are responses");
                        assert_eq!(packet[2] & 0x80, 0, "a response was answered");
                    }
                    panic!("the probe was not answered");
                })
                .await
                .expect("the server kept answering");
            });
            Ok(())
        })
        .unwrap();
    rt.block_on(still_serves(dns));
    rt.block_on(bed.shutdown());
}

// ---------------------------------------------------------------------------------------------
// Hostile upstreams

/// What the scripted upstream does with each query.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Mode {
    /// Nothing at all.
    Silent = 0,
    /// REFUSED.
    Refuse = 1,
    /// Random-looking junk.
    Garbage = 2,
    /// A correct answer under the wrong ID.
    WrongId = 3,
    /// `A 192.0.2.99` for every name.
    Answer = 4,
}

/// A tiny UDP upstream whose behaviour the test switches at run time.
struct ScriptedUpstream {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
}

impl ScriptedUpstream {
    fn new(mode: Mode) -> Self {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Wakes up regularly to notice `stop`; bounded by the test's lifetime.
        sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let mode_flag = Arc::new(AtomicU8::new(mode as u8));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, st) = (mode_flag.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut counter = 0u8;
            while !st.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
                r.metadata.recursion_desired = q.metadata.recursion_desired;
                r.metadata.recursion_available = true;
                r.queries = q.queries.clone();
                let reply = match m.load(Ordering::Relaxed) {
                    0 => continue,
                    1 => {
                        r.metadata.response_code = ResponseCode::Refused;
                        r.to_vec().unwrap()
                    }
                    2 => {
                        counter = counter.wrapping_add(1);
                        let mut junk: Vec<u8> =
                            (0..40u8).map(|i| i.wrapping_mul(37) ^ counter).collect();
                        // Sometimes with the right ID, so the resolver has to parse it.
                        if counter.is_multiple_of(2) {
                            junk[..2].copy_from_slice(&buf[..2]);
                            junk[2] = 0x81;
                        }
                        junk
                    }
                    3 | 4 => {
                        for query in &q.queries {
                            r.add_answer(Record::from_rdata(
                                query.name().clone(),
                                60,
                                RData::A(A::new(192, 0, 2, 99)),
                            ));
                        }
                        if m.load(Ordering::Relaxed) == 3 {
                            r.metadata.id = r.metadata.id.wrapping_add(1);
                        }
                        r.to_vec().unwrap()
                    }
                    _ => continue,
                };
                let _ = sock.send_to(&reply, from);
            }
        });
        Self {
            addr,
            mode: mode_flag,
            stop,
        }
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }
}

impl Drop for ScriptedUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// SERVFAIL with an EDE saying why, within the client timeout (the budget is 400 ms).
async fn expect_servfail(dns: SocketAddr, name: &str) {
    for proto in BOTH {
        let resp = query(dns, proto, &request(name, RecordType::A, true)).await;
        assert_eq!(
            resp.metadata.response_code,
            ResponseCode::ServFail,
            "{name} {proto:?}"
        );
        let (code, _) = ede(&resp).expect("EDE");
        assert!(code == 22 || code == 23, "{code}");
    }
}

async fn expect_recovered(dns: SocketAddr, name: &str) {
    for proto in BOTH {
        let resp = query(dns, proto, &request(name, RecordType::A, true)).await;
        assert_eq!(
            resp.metadata.response_code,
            ResponseCode::NoError,
            "{name} {proto:?}"
        );
        assert_eq!(addresses(&resp), vec!["192.0.2.99"], "{name} {proto:?}");
    }
}

#[tokio::test]
async fn upstream_faults_give_servfail_and_recovery_is_immediate() {
    let up = ScriptedUpstream::new(Mode::Answer);
    let bed = TestBed::builder()
        .upstream_servers(vec![up.addr])
        .timeout_ms(400)
        .start()
        .await;
    expect_recovered(bed.dns, "first.example.net.").await;
    // Each fault, then the same names again once the upstream behaves: no stuck state.
    for (i, fault) in [Mode::Silent, Mode::Refuse, Mode::Garbage, Mode::WrongId]
        .into_iter()
        .enumerate()
    {
        up.set(fault);
        let name = format!("fault{i}.example.net.");
        expect_servfail(bed.dns, &name).await;
        // Blocked names never need the upstream.
        let blocked = bed.ask(Proto::Udp, "sink.test.", RecordType::A).await;
        assert_eq!(addresses(&blocked), vec![SINK_V4]);
        up.set(Mode::Answer);
        expect_recovered(bed.dns, &name).await;
    }
    bed.shutdown().await;
}

#[tokio::test]
async fn slow_then_recovering_upstream() {
    // The upstream is down (silent) while many clients ask, then comes back.
    let up = ScriptedUpstream::new(Mode::Silent);
    let bed = TestBed::builder()
        .upstream_servers(vec![up.addr])
        .timeout_ms(300)
        .start()
        .await;
    let dns = bed.dns;
    let waiting: Vec<_> = (0..32)
        .map(|i| {
            tokio::spawn(async move {
                let name = format!("slow{}.example.net.", i % 4);
                query(dns, Proto::Udp, &request(&name, RecordType::A, true)).await
            })
        })
        .collect();
    for w in waiting {
        let resp = w.await.unwrap();
        assert_eq!(resp.metadata.response_code, ResponseCode::ServFail);
    }
    up.set(Mode::Answer);
    for i in 0..4 {
        expect_recovered(dns, &format!("slow{i}.example.net.")).await;
    }
    bed.shutdown().await;
}
