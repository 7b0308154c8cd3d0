//! Floods and abusive clients: per-IP rate limiting, the TCP connection cap, idle and pipelined
//! TCP, a UDP flood from many ports, in-flight bounds. Every loop is bounded in count; every
//! wait is bounded by the client timeout.
//!
//! A second client address is needed to show limits are per IP: tests send from 127.0.0.2,
//! which is loopback like 127.0.0.1 (Linux routes all of 127/8 to `lo`).

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use common::*;

/// Sends `req` from `sock` and waits for the answer with its ID, resending after 1 s like a
/// stub resolver (during a flood the kernel may drop any datagram), 5 tries in all.
async fn ask_from(sock: &UdpSocket, dns: SocketAddr, req: &Message) -> Message {
    let bytes = req.to_vec().unwrap();
    let mut buf = vec![0u8; 65535];
    for _ in 0..5 {
        sock.send_to(&bytes, dns).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                let (n, _) = sock.recv_from(&mut buf).await.unwrap();
                if buf[..2] == bytes[..2] {
                    return Message::from_vec(&buf[..n]).unwrap();
                }
            }
        })
        .await;
        if let Ok(m) = answer {
            return m;
        }
    }
    panic!("no answer after 5 tries");
}

async fn second_client() -> UdpSocket {
    UdpSocket::bind("127.0.0.2:0")
        .await
        .expect("127.0.0.2 is loopback")
}

#[tokio::test]
async fn rate_limit_is_per_address_slips_with_tc_and_spares_tcp() {
    // 1 qps, burst 10, every over-limit query slips: each of the 40 gets exactly one answer.
    let bed = TestBed::builder()
        .workers(1)
        .dns_option("rate_limit_qps", "1")
        .dns_option("rate_limit_burst", "10")
        .dns_option("rate_limit_slip", "1")
        .start()
        .await;
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut ids = HashSet::new();
    for _ in 0..40 {
        let req = request("sink.test.", RecordType::A, true);
        ids.insert(req.metadata.id);
        a.send_to(&req.to_vec().unwrap(), bed.dns).await.unwrap();
    }
    let (mut full, mut slips) = (0, 0);
    let mut buf = vec![0u8; 65535];
    for _ in 0..40 {
        let (n, _) = tokio::time::timeout(CLIENT_TIMEOUT, a.recv_from(&mut buf))
            .await
            .expect("one answer per query")
            .unwrap();
        let m = Message::from_vec(&buf[..n]).unwrap();
        assert!(ids.remove(&m.metadata.id), "one answer per ID");
        assert_eq!(m.queries.len(), 1, "question echoed");
        if m.metadata.truncation {
            assert_eq!(m.metadata.response_code, ResponseCode::Refused);
            assert!(m.answers.is_empty());
            slips += 1;
        } else {
            assert_eq!(addresses(&m), vec![SINK_V4]);
            full += 1;
        }
    }
    // The burst, plus at most a few tokens refilled while the test ran (1 per second).
    assert!((10..=15).contains(&full), "full answers: {full}");
    assert_eq!(full + slips, 40);

    // Another address is not affected (per IP, never per /24) ...
    let b = second_client().await;
    let resp = ask_from(&b, bed.dns, &request("sink.test.", RecordType::A, true)).await;
    assert_eq!(addresses(&resp), vec![SINK_V4]);
    // ... and TCP from the limited address is never rate limited.
    for _ in 0..20 {
        let resp = bed.ask(Proto::Tcp, "sink.test.", RecordType::A).await;
        assert_eq!(addresses(&resp), vec![SINK_V4]);
    }
    bed.shutdown().await;
}

#[tokio::test]
async fn over_limit_queries_without_slip_are_dropped() {
    let bed = TestBed::builder()
        .workers(1)
        .dns_option("rate_limit_qps", "1")
        .dns_option("rate_limit_burst", "10")
        .dns_option("rate_limit_slip", "0")
        .start()
        .await;
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..30 {
        let req = request("sink.test.", RecordType::A, true);
        a.send_to(&req.to_vec().unwrap(), bed.dns).await.unwrap();
    }
    // One worker reads its socket in order: once a later client's query is answered, every
    // one of A's 30 has been admitted or dropped, and the admitted ones answered first.
    let b = second_client().await;
    ask_from(&b, bed.dns, &request("sink.test.", RecordType::A, true)).await;
    let mut got = 0;
    let mut buf = vec![0u8; 65535];
    while a.try_recv_from(&mut buf).is_ok() {
        got += 1;
    }
    assert!((10..=15).contains(&got), "answers to A: {got} of 30");
    bed.shutdown().await;
}

#[tokio::test]
async fn tcp_connection_cap_and_idle_timeout() {
    let bed = TestBed::builder()
        .workers(1)
        .dns_option("max_tcp_connections", "50")
        .dns_option("tcp_idle_timeout_ms", "3000")
        .start()
        .await;
    // 200 idle connections: 50 are held, the rest are closed as soon as they are accepted.
    let mut idle = Vec::with_capacity(200);
    for _ in 0..200 {
        idle.push(TcpStream::connect(bed.dns).await.unwrap());
    }
    // UDP keeps flowing.
    for _ in 0..10 {
        let resp = bed
            .ask(Proto::Udp, "www.example.test.", RecordType::A)
            .await;
        assert_eq!(addresses(&resp), vec!["192.0.2.10"]);
    }
    // A new TCP client while the cap is reached is closed without an answer.
    let mut late = TcpStream::connect(bed.dns).await.unwrap();
    let q = request("www.example.test.", RecordType::A, false)
        .to_vec()
        .unwrap();
    let _ = late.write_all(&(q.len() as u16).to_be_bytes()).await;
    let _ = late.write_all(&q).await;
    let mut buf = [0u8; 2];
    let refused = tokio::time::timeout(CLIENT_TIMEOUT, late.read(&mut buf)).await;
    assert!(
        matches!(refused, Ok(Ok(0)) | Ok(Err(_))),
        "over the cap: closed, not served ({refused:?})"
    );
    // Every idle connection is closed by the server (the held ones at the idle timeout).
    let waits = idle.into_iter().map(|mut s| async move {
        let mut b = [0u8; 16];
        matches!(
            tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    });
    for (i, closed) in futures_join_all(waits).await.into_iter().enumerate() {
        assert!(closed, "idle connection {i} still open");
    }
    // Then a well-behaved TCP client is served again.
    let resp = bed
        .ask(Proto::Tcp, "www.example.test.", RecordType::A)
        .await;
    assert_eq!(addresses(&resp), vec!["192.0.2.10"]);
    bed.shutdown().await;
}

/// `join_all` without the futures crate: spawn each and await in order.
async fn futures_join_all<F>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn pipelined_tcp_queries_are_answered_out_of_order() {
    let silent = SilentUpstream::new();
    let bed = TestBed::builder()
        .local_zone("campus.test", "campus.test.zone")
        .conditional("corp.test", silent.addr)
        .timeout_ms(2000)
        .start()
        .await;
    let queries = [
        ("stuck.corp.test.", RecordType::A),
        ("sink.test.", RecordType::A),
        ("www.example.test.", RecordType::A),
        ("printer.campus.test.", RecordType::A),
        ("nx.test.", RecordType::A),
        ("refuse.test.", RecordType::A),
        ("txt.example.test.", RecordType::TXT),
        ("www.example.test.", RecordType::AAAA),
    ];
    let reqs: Vec<Message> = queries.iter().map(|(n, t)| request(n, *t, true)).collect();
    // All eight in one write.
    let mut wire = Vec::new();
    for r in &reqs {
        let b = r.to_vec().unwrap();
        wire.extend_from_slice(&(b.len() as u16).to_be_bytes());
        wire.extend_from_slice(&b);
    }
    let mut s = TcpStream::connect(bed.dns).await.unwrap();
    s.write_all(&wire).await.unwrap();
    let mut answers = Vec::new();
    for _ in 0..reqs.len() {
        let m = tokio::time::timeout(CLIENT_TIMEOUT, async {
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await.unwrap();
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut buf).await.unwrap();
            Message::from_vec(&buf).unwrap()
        })
        .await
        .expect("every pipelined query is answered");
        answers.push(m);
    }
    let sent: HashSet<u16> = reqs.iter().map(|r| r.metadata.id).collect();
    let got: HashSet<u16> = answers.iter().map(|m| m.metadata.id).collect();
    assert_eq!(sent, got, "matched by ID");
    // The query stuck on the silent upstream (2 s budget) did not hold up the others.
    assert_ne!(answers[0].metadata.id, reqs[0].metadata.id);
    let stuck = answers
        .iter()
        .find(|m| m.metadata.id == reqs[0].metadata.id)
        .unwrap();
    assert_eq!(stuck.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(answers.last().unwrap().metadata.id, reqs[0].metadata.id);
    bed.shutdown().await;
}

#[tokio::test]
async fn udp_flood_from_many_ports_does_not_starve_a_normal_client() {
    // Rate limiting off: the server itself has to cope.
    let bed = TestBed::builder()
        .dns_option("rate_limit_qps", "0")
        .start()
        .await;
    let dns = bed.dns;
    // 40 source ports x 60 packets = 2400 packets: queries (blocked, forwarded, unknown
    // names) and junk, as fast as the sockets take them.
    let flood = tokio::spawn(async move {
        let mut socks = Vec::new();
        for _ in 0..40 {
            socks.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        }
        let names = ["sink.test.", "www.example.test.", "nope.example.test."];
        for round in 0..60usize {
            for (i, s) in socks.iter().enumerate() {
                let bytes = if (round + i) % 4 == 3 {
                    vec![0xAB; 11 + (round % 30)]
                } else {
                    request(names[(round + i) % 3], RecordType::A, false)
                        .to_vec()
                        .unwrap()
                };
                let _ = s.send_to(&bytes, dns).await;
            }
        }
    });
    // Meanwhile, and after: a normal client, one query at a time.
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..30 {
        let resp = ask_from(
            &client,
            dns,
            &request("www.example.test.", RecordType::A, true),
        )
        .await;
        assert_eq!(addresses(&resp), vec!["192.0.2.10"]);
    }
    flood.await.unwrap();
    for _ in 0..10 {
        let resp = ask_from(&client, dns, &request("sink.test.", RecordType::A, true)).await;
        assert_eq!(addresses(&resp), vec![SINK_V4]);
    }
    bed.shutdown().await;
}

#[tokio::test]
async fn udp_in_flight_bound_sheds_load_during_an_upstream_outage() {
    let silent = SilentUpstream::new();
    let bed = TestBed::builder()
        .workers(1)
        .upstream_servers(vec![silent.addr])
        .timeout_ms(1500)
        .dns_option("max_udp_inflight", "16")
        .start()
        .await;
    // 100 queries that all wait on the dead upstream: 16 are in flight, the rest are shed
    // instead of queueing behind them.
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..100 {
        let req = request(&format!("h{i}.example.test."), RecordType::A, false);
        a.send_to(&req.to_vec().unwrap(), bed.dns).await.unwrap();
    }
    let mut servfails = 0;
    let mut buf = vec![0u8; 65535];
    for _ in 0..16 {
        let (n, _) = tokio::time::timeout(CLIENT_TIMEOUT, a.recv_from(&mut buf))
            .await
            .expect("the admitted ones get SERVFAIL in time")
            .unwrap();
        let m = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        servfails += 1;
    }
    assert_eq!(servfails, 16);
    // Once they are done, the worker serves again (TCP is not subject to the UDP bound).
    let resp = bed.ask(Proto::Udp, "sink.test.", RecordType::A).await;
    assert_eq!(addresses(&resp), vec![SINK_V4]);
    let resp = bed.ask(Proto::Tcp, "sink.test.", RecordType::A).await;
    assert_eq!(addresses(&resp), vec![SINK_V4]);
    bed.shutdown().await;
}
