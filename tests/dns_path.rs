//! The DNS request path, end to end: a real upstream, a real poolguard, real UDP/TCP.

mod common;

use std::net::SocketAddr;

use hickory_proto::op::{MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use common::*;
use poolguard::record::Outcome;

const BOTH: [Proto; 2] = [Proto::Udp, Proto::Tcp];

#[tokio::test]
async fn allowed_name_resolves_via_upstream_over_udp_and_tcp() {
    let bed = TestBed::start().await;
    for proto in BOTH {
        let req = request("www.example.test.", RecordType::A, true);
        let resp = query(bed.dns, proto, &req).await;
        assert_eq!(resp.metadata.id, req.metadata.id, "{proto:?}: ID echoed");
        assert_eq!(resp.metadata.message_type, MessageType::Response);
        assert_eq!(resp.metadata.response_code, ResponseCode::NoError);
        assert!(resp.metadata.recursion_available, "RA set");
        assert!(resp.metadata.recursion_desired, "RD echoed");
        assert!(!resp.metadata.authoritative, "forwarded answers are not AA");
        assert_eq!(resp.queries, req.queries, "question echoed");
        assert_eq!(addresses(&resp), vec!["192.0.2.10"]);
        assert!(ede(&resp).is_none(), "no EDE on a normal answer");

        let aaaa = bed.ask(proto, "www.example.test.", RecordType::AAAA).await;
        assert_eq!(addresses(&aaaa), vec!["2001:db8::10"]);
        let mx = bed.ask(proto, "example.test.", RecordType::MX).await;
        assert!(matches!(mx.answers[0].data, RData::MX(_)), "{mx:?}");
        let txt = bed.ask(proto, "txt.example.test.", RecordType::TXT).await;
        assert!(matches!(txt.answers[0].data, RData::TXT(_)), "{txt:?}");
    }
    assert!(bed.upstream.queries_for("www.example.test") >= 1);
    bed.shutdown().await;
}

#[tokio::test]
async fn rd_is_echoed_when_clear() {
    let bed = TestBed::start().await;
    let mut req = request("www.example.test.", RecordType::A, false);
    req.metadata.recursion_desired = false;
    let resp = query(bed.dns, Proto::Udp, &req).await;
    assert!(!resp.metadata.recursion_desired);
    assert!(resp.metadata.recursion_available);
    bed.shutdown().await;
}

#[tokio::test]
async fn upstream_nxdomain_is_preserved_with_its_soa() {
    let bed = TestBed::start().await;
    let resp = bed
        .ask(Proto::Udp, "missing.example.test.", RecordType::A)
        .await;
    assert_eq!(resp.metadata.response_code, ResponseCode::NXDomain);
    assert!(resp.answers.is_empty());
    assert!(
        resp.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA),
        "SOA in authority: {resp:?}"
    );
    // NODATA from upstream stays NOERROR.
    let nodata = bed
        .ask(Proto::Udp, "mail.example.test.", RecordType::AAAA)
        .await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    bed.shutdown().await;
}

#[tokio::test]
async fn cname_chain_is_forwarded_whole() {
    let bed = TestBed::start().await;
    let resp = bed
        .ask(Proto::Udp, "alias.example.test.", RecordType::A)
        .await;
    assert!(matches!(resp.answers[0].data, RData::CNAME(_)), "{resp:?}");
    assert_eq!(addresses(&resp), vec!["192.0.2.10"]);
    bed.shutdown().await;
}

#[tokio::test]
async fn listed_name_and_subdomains_are_blocked_in_any_spelling() {
    let bed = TestBed::start().await;
    for name in [
        "pool.minergate.com.",
        "xmr.pool.minergate.com.",
        "XMR.Pool.MinerGate.COM.",
        "a.b.c.pool.minergate.com.",
        "moneroocean.stream",
        "gulf.MoneroOcean.Stream",
    ] {
        for proto in BOTH {
            let resp = bed.ask(proto, name, RecordType::A).await;
            assert_eq!(resp.metadata.response_code, ResponseCode::NoError, "{name}");
            assert_eq!(addresses(&resp), vec![SINK_V4], "{name} over {proto:?}");
            assert_eq!(resp.answers[0].ttl, BLOCK_TTL);
        }
    }
    // A name that merely ends with the same letters is not below the listed one.
    let resp = bed
        .ask(Proto::Udp, "notmoneroocean.stream.", RecordType::A)
        .await;
    assert_ne!(addresses(&resp), vec![SINK_V4]);
    assert_eq!(
        bed.upstream.queries_for("xmr.pool.minergate.com"),
        0,
        "never forwarded"
    );
    bed.shutdown().await;
}

/// What a client must see for each action and query type.
fn expect_block(action: &str, rtype: RecordType, resp: &hickory_proto::op::Message) {
    let ctx = format!("{action} {rtype}: {resp:?}");
    let has_soa = resp
        .authorities
        .iter()
        .any(|r| r.record_type() == RecordType::SOA && r.ttl == BLOCK_TTL);
    match action {
        "refuse" => {
            assert_eq!(resp.metadata.response_code, ResponseCode::Refused, "{ctx}");
            assert!(resp.answers.is_empty(), "{ctx}");
        }
        "nxdomain" => {
            assert_eq!(resp.metadata.response_code, ResponseCode::NXDomain, "{ctx}");
            assert!(resp.answers.is_empty(), "{ctx}");
            assert!(has_soa, "negative answers carry the synthetic SOA: {ctx}");
        }
        "nodata" => {
            assert_eq!(resp.metadata.response_code, ResponseCode::NoError, "{ctx}");
            assert!(resp.answers.is_empty(), "{ctx}");
            assert!(has_soa, "{ctx}");
        }
        "sinkhole" => {
            assert_eq!(resp.metadata.response_code, ResponseCode::NoError, "{ctx}");
            match rtype {
                RecordType::A => assert_eq!(addresses(resp), vec![SINK_V4], "{ctx}"),
                RecordType::AAAA => assert_eq!(addresses(resp), vec![SINK_V6], "{ctx}"),
                _ => {
                    assert!(resp.answers.is_empty(), "never an A for {rtype}: {ctx}");
                    assert!(has_soa, "{ctx}");
                }
            }
            for r in &resp.answers {
                assert_eq!(r.ttl, BLOCK_TTL, "{ctx}");
                assert_eq!(r.record_type(), rtype, "{ctx}");
            }
        }
        other => panic!("unknown action {other}"),
    }
    assert!(resp.metadata.recursion_available, "{ctx}");
}

#[tokio::test]
async fn every_action_answers_every_type() {
    let bed = TestBed::start().await;
    let cases = [
        ("refuse", "www.refuse.test.", "refusing"),
        ("nxdomain", "www.nx.test.", "nx"),
        ("nodata", "www.nodata.test.", "empty"),
        ("sinkhole", "www.sink.test.", "mining"),
    ];
    for (action, name, feed) in cases {
        for rtype in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::MX,
            RecordType::TXT,
            RecordType::HTTPS,
        ] {
            for proto in BOTH {
                let req = request(name, rtype, true);
                let resp = query(bed.dns, proto, &req).await;
                assert_eq!(resp.metadata.id, req.metadata.id);
                assert_eq!(resp.queries, req.queries);
                expect_block(action, rtype, &resp);
                let (code, text) = ede(&resp).expect("EDE with EDNS");
                assert_eq!(code, 15, "EDE Blocked");
                assert_eq!(text, format!("blocked by poolguard feed {feed}"));
            }
        }
    }
    bed.shutdown().await;
}

#[tokio::test]
async fn ede_only_when_the_client_speaks_edns() {
    let bed = TestBed::start().await;
    let with = query(
        bed.dns,
        Proto::Udp,
        &request("sink.test.", RecordType::A, true),
    )
    .await;
    assert!(with.edns.is_some(), "OPT echoed");
    assert_eq!(ede(&with).map(|e| e.0), Some(15));

    let without = query(
        bed.dns,
        Proto::Udp,
        &request("sink.test.", RecordType::A, false),
    )
    .await;
    assert!(without.edns.is_none(), "no OPT for a non-EDNS client");
    assert_eq!(addresses(&without), vec![SINK_V4]);
    bed.shutdown().await;
}

#[tokio::test]
async fn allowlist_wins_over_blocklist() {
    let bed = TestBed::start().await;
    let resp = bed
        .ask(Proto::Udp, "ok.pool.minergate.com.", RecordType::A)
        .await;
    assert_eq!(resp.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&resp), vec!["198.51.100.8"]);
    assert!(ede(&resp).is_none());
    bed.shutdown().await;
}

#[tokio::test]
async fn cname_into_a_listed_name_is_blocked() {
    let bed = TestBed::start().await;
    for proto in BOTH {
        let resp = bed.ask(proto, "cdn.example.test.", RecordType::A).await;
        assert_eq!(addresses(&resp), vec![SINK_V4], "{resp:?}");
        assert!(
            !resp
                .answers
                .iter()
                .any(|r| matches!(r.data, RData::CNAME(_))),
            "the pool's CNAME is not leaked"
        );
        let (code, text) = ede(&resp).expect("EDE");
        assert_eq!(
            (code, text.as_str()),
            (15, "blocked by poolguard feed mining")
        );
    }
    bed.shutdown().await;
}

#[tokio::test]
async fn address_inside_a_listed_prefix_is_blocked() {
    let bed = TestBed::start().await;
    let a = bed
        .ask(Proto::Udp, "badip.example.test.", RecordType::A)
        .await;
    assert_eq!(addresses(&a), vec![SINK_V4]);
    assert_eq!(
        ede(&a).map(|e| e.1),
        Some("blocked by poolguard feed pool-ips".into())
    );
    let aaaa = bed
        .ask(Proto::Tcp, "badip6.example.test.", RecordType::AAAA)
        .await;
    assert_eq!(addresses(&aaaa), vec![SINK_V6]);
    bed.shutdown().await;
}

#[tokio::test]
async fn inspection_can_be_turned_off() {
    let bed = TestBed::builder().inspect(false).start().await;
    let resp = bed
        .ask(Proto::Udp, "badip.example.test.", RecordType::A)
        .await;
    assert_eq!(addresses(&resp), vec!["203.0.113.7"]);
    bed.shutdown().await;
}

#[tokio::test]
async fn silent_upstream_gives_servfail_and_other_queries_still_work() {
    let silent = SilentUpstream::new();
    let bed = TestBed::builder()
        .upstream_servers(vec![silent.addr])
        .timeout_ms(400)
        .local_zone("campus.test", "campus.test.zone")
        .start()
        .await;
    // Several stuck lookups at once, plus queries that need no upstream.
    let dns = bed.dns;
    let stuck: Vec<_> = (0..4)
        .map(|i| {
            tokio::spawn(async move {
                let name = format!("host{i}.example.test.");
                query(dns, Proto::Udp, &request(&name, RecordType::A, true)).await
            })
        })
        .collect();
    let blocked = bed.ask(Proto::Udp, "sink.test.", RecordType::A).await;
    assert_eq!(addresses(&blocked), vec![SINK_V4]);
    let local = bed
        .ask(Proto::Tcp, "printer.campus.test.", RecordType::A)
        .await;
    assert_eq!(addresses(&local), vec!["10.1.2.3"]);
    for s in stuck {
        // query() panics if nothing arrives within the client timeout (5 s > 400 ms budget).
        let resp = s.await.expect("task");
        assert_eq!(resp.metadata.response_code, ResponseCode::ServFail);
        let (code, _) = ede(&resp).expect("EDE says why");
        assert!(
            code == 22 || code == 23,
            "No Reachable Authority / Network Error: {code}"
        );
    }
    let tcp = bed
        .ask(Proto::Tcp, "www.example.test.", RecordType::A)
        .await;
    assert_eq!(tcp.metadata.response_code, ResponseCode::ServFail);
    bed.shutdown().await;
}

#[tokio::test]
async fn local_zone_is_authoritative_and_never_forwarded() {
    let bed = TestBed::start().await;
    for proto in BOTH {
        let resp = bed.ask(proto, "printer.campus.test.", RecordType::A).await;
        assert_eq!(resp.metadata.response_code, ResponseCode::NoError);
        assert!(resp.metadata.authoritative, "AA set");
        assert!(resp.metadata.recursion_available);
        assert_eq!(addresses(&resp), vec!["10.1.2.3"]);
    }
    let nx = bed
        .ask(Proto::Udp, "nothing.campus.test.", RecordType::A)
        .await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.metadata.authoritative);
    assert!(
        nx.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA)
    );
    let seen = bed.upstream.seen();
    assert!(
        !seen.iter().any(|n| n.ends_with("campus.test")),
        "local names reached the upstream: {seen:?}"
    );
    bed.shutdown().await;
}

#[tokio::test]
async fn blocking_applies_before_local_zones() {
    let bed = TestBed::start().await;
    let resp = bed
        .ask(Proto::Udp, "blocked.campus.test.", RecordType::A)
        .await;
    assert_eq!(addresses(&resp), vec![SINK_V4]);
    assert!(!resp.metadata.authoritative);
    bed.shutdown().await;
}

#[tokio::test]
async fn conditional_domains_go_to_their_own_servers() {
    let corp = Upstream::corp();
    let bed = TestBed::builder()
        .conditional("corp.test", corp.addr)
        .start()
        .await;
    for proto in BOTH {
        let resp = bed.ask(proto, "host.corp.test.", RecordType::A).await;
        assert_eq!(addresses(&resp), vec!["10.20.30.40"], "{resp:?}");
    }
    assert_eq!(bed.upstream.queries_for("host.corp.test"), 0);
    assert!(corp.queries_for("host.corp.test") >= 1);
    // Everything else still goes to the default upstream.
    let www = bed
        .ask(Proto::Udp, "www.example.test.", RecordType::A)
        .await;
    assert_eq!(addresses(&www), vec!["192.0.2.10"]);
    assert_eq!(corp.queries_for("www.example.test"), 0);
    bed.shutdown().await;
}

#[tokio::test]
async fn blocking_applies_before_conditional_forwarding() {
    let corp = Upstream::corp();
    let bed = TestBed::builder()
        .feeds(vec![FeedSpec::new(
            "mining",
            "domains",
            Some("nxdomain"),
            &["host.corp.test"],
        )])
        .conditional("corp.test", corp.addr)
        .start()
        .await;
    let resp = bed.ask(Proto::Udp, "host.corp.test.", RecordType::A).await;
    assert_eq!(resp.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(corp.queries_for("host.corp.test"), 0);
    bed.shutdown().await;
}

#[tokio::test]
async fn clients_outside_allow_are_refused() {
    let bed = TestBed::builder()
        .allow_clients(&["10.0.0.0/8"])
        .start()
        .await;
    for proto in BOTH {
        let resp = bed.ask(proto, "www.example.test.", RecordType::A).await;
        assert_eq!(resp.metadata.response_code, ResponseCode::Refused);
        assert!(resp.answers.is_empty());
        let blocked = bed.ask(proto, "sink.test.", RecordType::A).await;
        assert_eq!(blocked.metadata.response_code, ResponseCode::Refused);
    }
    assert!(
        bed.upstream.seen().is_empty(),
        "refused clients never cause upstream traffic"
    );
    bed.shutdown().await;
}

#[tokio::test]
async fn malformed_and_unsupported_requests() {
    let bed = TestBed::start().await;
    // Two questions: FORMERR.
    let mut two = request("www.example.test.", RecordType::A, false);
    two.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii("txt.example.test.").unwrap(),
        RecordType::TXT,
    ));
    let resp = query(bed.dns, Proto::Udp, &two).await;
    assert_eq!(resp.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(resp.metadata.id, two.metadata.id);

    // NOTIFY opcode: NOTIMP.
    let mut notify = request("www.example.test.", RecordType::SOA, false);
    notify.metadata.op_code = OpCode::Notify;
    let resp = query(bed.dns, Proto::Tcp, &notify).await;
    assert_eq!(resp.metadata.response_code, ResponseCode::NotImp);

    // A header followed by garbage: FORMERR, and the server keeps working.
    let mut junk = vec![
        0xAB, 0xCD, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    junk.extend_from_slice(&[0xFF; 9]);
    let raw = query_raw(bed.dns, Proto::Udp, &junk).await;
    let resp = hickory_proto::op::Message::from_vec(&raw).expect("decodes");
    assert_eq!(resp.metadata.response_code, ResponseCode::FormErr);

    // EDNS version 1: BADVERS.
    let mut v1 = request("www.example.test.", RecordType::A, true);
    if let Some(e) = v1.edns.as_mut() {
        e.set_version(1);
    }
    let resp = query(bed.dns, Proto::Udp, &v1).await;
    // 16 is both BADVERS and BADSIG; hickory decodes it as the latter.
    assert_eq!(u16::from(resp.metadata.response_code), 16, "BADVERS");
    assert!(resp.edns.is_some(), "BADVERS travels in OPT");

    let ok = bed
        .ask(Proto::Udp, "www.example.test.", RecordType::A)
        .await;
    assert_eq!(addresses(&ok), vec!["192.0.2.10"]);
    bed.shutdown().await;
}

#[tokio::test]
async fn every_query_is_recorded_with_its_outcome() {
    let (recorder, mut rx) = event_tap();
    let bed = TestBed::builder()
        .local_zone("campus.test", "campus.test.zone")
        .recorder(recorder)
        .start()
        .await;

    bed.ask(Proto::Udp, "XMR.pool.minergate.com.", RecordType::A)
        .await;
    let e = rx.next().await;
    assert_eq!(e.outcome, Outcome::Blocked);
    assert_eq!(&*e.name, "xmr.pool.minergate.com");
    assert_eq!(&*e.qtype, "A");
    assert_eq!(e.feed.as_deref(), Some("mining"));
    assert_eq!(e.rule.as_deref(), Some("pool.minergate.com"));
    assert_eq!(e.rcode, "NOERROR");
    assert_eq!(&*e.answer, format!("A {SINK_V4}"));
    assert_eq!(e.transport, poolguard::record::Transport::Udp);
    assert!(e.client.ip().is_loopback());
    assert!(e.upstream.is_none());
    assert!(e.time_ms > 0);

    bed.ask(Proto::Tcp, "www.example.test.", RecordType::AAAA)
        .await;
    let e = rx.next().await;
    assert_eq!(e.outcome, Outcome::Allowed);
    assert_eq!(e.transport, poolguard::record::Transport::Tcp);
    assert_eq!(&*e.answer, "AAAA 2001:db8::10");
    assert_eq!(
        e.upstream.as_deref(),
        Some(bed.upstream.addr.to_string().as_str())
    );

    bed.ask(Proto::Udp, "cdn.example.test.", RecordType::A)
        .await;
    assert_eq!(rx.next().await.outcome, Outcome::CnameBlocked);
    bed.ask(Proto::Udp, "badip.example.test.", RecordType::A)
        .await;
    let e = rx.next().await;
    assert_eq!(e.outcome, Outcome::IpBlocked);
    assert_eq!(e.rule.as_deref(), Some("203.0.113.0/24"));
    bed.ask(Proto::Udp, "ok.pool.minergate.com.", RecordType::A)
        .await;
    assert_eq!(rx.next().await.outcome, Outcome::Allowlisted);
    bed.ask(Proto::Udp, "printer.campus.test.", RecordType::A)
        .await;
    assert_eq!(rx.next().await.outcome, Outcome::Local);
    bed.ask(Proto::Udp, "missing.example.test.", RecordType::A)
        .await;
    let e = rx.next().await;
    assert_eq!(e.rcode, "NXDOMAIN");
    bed.shutdown().await;
}

#[tokio::test]
async fn unknown_types_are_logged_in_rfc3597_spelling() {
    let (recorder, mut rx) = event_tap();
    let bed = TestBed::builder().recorder(recorder).start().await;
    let resp = bed
        .ask(Proto::Udp, "sink.test.", RecordType::Unknown(65534))
        .await;
    assert!(
        resp.answers.is_empty(),
        "sinkhole answers no A to an unknown type"
    );
    let e = rx.next().await;
    assert_eq!(&*e.qtype, "TYPE65534");
    bed.shutdown().await;
}

#[tokio::test]
async fn reload_blocks_a_newly_listed_name() {
    let bed = TestBed::start().await;
    let before = bed
        .ask(Proto::Udp, "www.example.test.", RecordType::A)
        .await;
    assert_eq!(addresses(&before), vec!["192.0.2.10"]);

    let path = bed.feed_path("mining");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("www.example.test\n");
    std::fs::write(&path, text).unwrap();
    let report = bed.running().reload().await;
    assert!(report.feeds.iter().all(|f| f.error.is_none()));

    let after = bed
        .ask(Proto::Udp, "www.example.test.", RecordType::A)
        .await;
    assert_eq!(addresses(&after), vec![SINK_V4]);
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_answers_every_query_correctly() {
    let bed = TestBed::start().await;
    let dns: SocketAddr = bed.dns;
    let stop = tokio_util::sync::CancellationToken::new();
    const CLIENTS: usize = 4;
    const MAX_QUERIES: usize = 150;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut done = 0;
                // Count-bounded, and ends early once the reloads are over.
                for i in 0..MAX_QUERIES {
                    if stop.is_cancelled() && i >= 20 {
                        break;
                    }
                    let proto = if (i + c) % 5 == 0 {
                        Proto::Tcp
                    } else {
                        Proto::Udp
                    };
                    let (name, want) = if i % 2 == 0 {
                        ("xmr.pool.minergate.com.", SINK_V4)
                    } else {
                        ("www.example.test.", "192.0.2.10")
                    };
                    let resp = query(dns, proto, &request(name, RecordType::A, true)).await;
                    assert_eq!(resp.metadata.response_code, ResponseCode::NoError, "{name}");
                    assert_eq!(addresses(&resp), vec![want], "{name} during reload");
                    done += 1;
                }
                done
            })
        })
        .collect();

    for round in 0..5 {
        // Each reload rewrites a feed (an unrelated name comes and goes).
        let path = bed.feed_path("nx");
        std::fs::write(&path, format!("nx.test\nround{round}.test\n")).unwrap();
        let report = bed.running().reload().await;
        assert!(report.feeds.iter().all(|f| f.error.is_none()));
    }
    stop.cancel();
    let mut total = 0;
    for c in clients {
        total += c.await.expect("client task");
    }
    assert!(total >= CLIENTS * 20);
    let last = bed.ask(Proto::Udp, "round4.test.", RecordType::A).await;
    assert_eq!(last.metadata.response_code, ResponseCode::NXDomain);
    bed.shutdown().await;
}

#[test]
fn check_reports_rejected_lines_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mining.txt"),
        "pool.example\nserver.com:1234\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[[feeds]]\nname = \"mining\"\npath = \"mining.txt\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_poolguard"))
        .args(["check", "--config"])
        .arg(dir.path().join("config.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("mining.txt:2:"), "{stdout}");

    std::fs::write(dir.path().join("mining.txt"), "pool.example\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_poolguard"))
        .args(["check", "--config"])
        .arg(dir.path().join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn check_names_the_bad_config_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[upstream]\ntimeout_ms = 0\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_poolguard"))
        .args(["check", "--config"])
        .arg(dir.path().join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("upstream.timeout_ms"));
}

/// Waits for a stderr line containing `needle` (bounded by the client timeout, twice).
fn wait_line(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = std::time::Instant::now() + 2 * CLIENT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => continue,
            Err(e) => panic!("no `{needle}` line from poolguard: {e}"),
        }
    }
}

/// Kills the child poolguard if the test fails half-way, so no server outlives the test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test]
async fn binary_serves_reloads_on_sighup_and_stops_on_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("mining.txt");
    std::fs::write(&feed, "pool.example\n").unwrap();
    let silent = SilentUpstream::new();
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[dns]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n[upstream]\nservers = [\"{}\"]\ntimeout_ms = 300\n[[feeds]]\nname = \"mining\"\npath = \"mining.txt\"\n",
            silent.addr
        ),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_poolguard"))
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .env("RUST_LOG", "poolguard=info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stderr = child.0.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let listening = wait_line(&lines, "dns listening");
    let port: u16 = listening
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in `{listening}`"));
    let dns: SocketAddr = ([127, 0, 0, 1], port).into();

    let before = query(
        dns,
        Proto::Udp,
        &request("new.example.", RecordType::A, true),
    )
    .await;
    assert_eq!(before.metadata.response_code, ResponseCode::ServFail);

    std::fs::write(&feed, "pool.example\nnew.example\n").unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_line(&lines, "SIGHUP");
    wait_line(&lines, "policy loaded");
    let after = query(
        dns,
        Proto::Udp,
        &request("new.example.", RecordType::A, true),
    )
    .await;
    assert_eq!(addresses(&after), vec!["0.0.0.0"], "default sinkhole");

    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_line(&lines, "dns stopped");
    assert!(child.0.wait().unwrap().success(), "clean exit on SIGTERM");
}
