//! The fast path (`crates/dns/src/fast/`): repeated and blocked queries answered in place must look
//! exactly like the general path's answers, per client, and never outlive a policy change.

mod common;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use common::*;
use poolguard::record::{Outcome, Transport};

const BOTH: [Proto; 2] = [Proto::Udp, Proto::Tcp];

/// Asks `name` as spelled (letter case kept), with or without EDNS.
async fn ask_as(bed: &TestBed, proto: Proto, name: &str, edns: bool) -> (Message, Message) {
    let q = request(name, RecordType::A, edns);
    let r = query(bed.dns, proto, &q).await;
    (q, r)
}

#[tokio::test]
async fn repeated_answers_echo_each_clients_id_spelling_and_edns() {
    // One worker: each worker has its own cache, and the kernel spreads clients over them.
    let bed = TestBed::builder().workers(1).start().await;
    // First ask: forwarded (general path), which fills the worker's packet cache.
    let (_, first) = ask_as(&bed, Proto::Udp, "alias.example.test.", true).await;
    assert_eq!(addresses(&first), vec!["192.0.2.10"]);

    for proto in BOTH {
        for (spelling, edns) in [
            ("alias.example.test.", false),
            ("ALIAS.Example.TeSt.", true),
            ("aLiAs.eXaMpLe.tEsT.", false),
        ] {
            let (q, r) = ask_as(&bed, proto, spelling, edns).await;
            let case = format!("{proto:?} {spelling} edns={edns}");
            assert_eq!(r.metadata.id, q.metadata.id, "{case}");
            assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{case}");
            assert!(r.metadata.recursion_available, "{case}");
            assert!(r.metadata.recursion_desired, "{case}");
            assert!(!r.metadata.authoritative, "{case}");
            assert!(!r.metadata.truncation, "{case}");
            assert_eq!(r.queries.len(), 1, "{case}");
            assert_eq!(
                r.queries[0].name().to_ascii(),
                spelling,
                "{case}: 0x20 spelling kept"
            );
            assert_eq!(r.queries[0].query_type(), RecordType::A, "{case}");
            assert_eq!(r.edns.is_some(), edns, "{case}: OPT only for EDNS clients");
            // Same records as the first answer (names and data; TTLs can only have gone down).
            assert_eq!(r.answers.len(), first.answers.len(), "{case}");
            for (got, want) in r.answers.iter().zip(&first.answers) {
                assert_eq!(got.name, want.name, "{case}");
                assert_eq!(got.data, want.data, "{case}");
                assert!(got.ttl <= want.ttl, "{case}");
            }
        }
    }
    assert_eq!(
        bed.upstream.queries_for("alias.example.test"),
        1,
        "repeats are answered locally"
    );
    bed.shutdown().await;
}

#[tokio::test]
async fn a_reload_applies_to_answers_already_cached() {
    let bed = TestBed::start().await;
    let (_, before) = ask_as(&bed, Proto::Udp, "alias.example.test.", false).await;
    assert_eq!(addresses(&before), vec!["192.0.2.10"]);
    let (_, again) = ask_as(&bed, Proto::Udp, "alias.example.test.", false).await;
    assert_eq!(addresses(&again), vec!["192.0.2.10"]);

    // The CNAME target becomes listed: the cached answer must now be a cname-blocked one.
    let path = bed.feed_path("mining");
    let mut text = std::fs::read_to_string(&path).expect("feed");
    text.push_str("www.example.test\n");
    std::fs::write(&path, text).expect("write feed");
    let report = bed.running().reload().await;
    assert!(report.feeds.iter().all(|f| f.error.is_none()));

    for proto in BOTH {
        let (_, after) = ask_as(&bed, proto, "alias.example.test.", true).await;
        assert_eq!(addresses(&after), vec![SINK_V4], "{proto:?}: {after:?}");
        assert!(
            !after
                .answers
                .iter()
                .any(|r| matches!(r.data, RData::CNAME(_))),
            "{proto:?}: the listed target is not leaked"
        );
        assert_eq!(
            ede(&after).map(|(code, _)| code),
            Some(15),
            "{proto:?}: blocked, with EDE"
        );
    }
    bed.shutdown().await;
}

#[tokio::test]
async fn answers_from_the_fast_path_are_recorded_like_any_other() {
    let (recorder, mut events) = event_tap();
    let bed = TestBed::builder()
        .workers(1)
        .recorder(recorder)
        .start()
        .await;

    // A cached answer: the second ask is recorded as allowed, with its upstream and summary.
    ask_as(&bed, Proto::Udp, "www.example.test.", false).await;
    let forwarded = events.next().await;
    ask_as(&bed, Proto::Tcp, "WWW.example.test.", false).await;
    let cached = events.next().await;
    assert_eq!(cached.outcome, Outcome::Allowed);
    assert_eq!(cached.transport, Transport::Tcp);
    assert_eq!(&*cached.name, "www.example.test");
    assert_eq!(&*cached.qtype, "A");
    assert_eq!(cached.rcode, "NOERROR");
    assert_eq!(cached.answer, forwarded.answer);
    assert_eq!(cached.upstream, forwarded.upstream);
    assert!(cached.upstream.is_some());

    // A blocked name: feed, rule and the sinkhole address, as the general path records them.
    ask_as(&bed, Proto::Udp, "Eu.XMR.pool.minergate.com.", true).await;
    let hit = events.next().await;
    assert_eq!(hit.outcome, Outcome::Blocked);
    assert_eq!(&*hit.name, "eu.xmr.pool.minergate.com");
    assert_eq!(hit.feed.as_deref(), Some("mining"));
    assert!(hit.rule.is_some());
    assert_eq!(&*hit.answer, format!("A {SINK_V4}"));
    assert!(hit.upstream.is_none());
    bed.shutdown().await;
}

#[tokio::test]
async fn the_blocked_answer_is_the_same_whichever_path_makes_it() {
    // The fast path leaves a query with CD=1 to the general path; apart from that bit it is
    // the same query, so both answers must be the same.
    let bed = TestBed::start().await;
    let plain = request("xmr.pool.minergate.com.", RecordType::A, true);
    let plain_bytes = plain.to_vec().expect("encode");
    let mut cd = plain_bytes.clone();
    cd[3] |= 0x10;
    let fast =
        Message::from_vec(&query_raw(bed.dns, Proto::Udp, &plain_bytes).await).expect("decode");
    let general = Message::from_vec(&query_raw(bed.dns, Proto::Udp, &cd).await).expect("decode");
    assert_eq!(fast.metadata.response_code, general.metadata.response_code);
    assert_eq!(fast.answers, general.answers);
    assert_eq!(fast.authorities, general.authorities);
    assert_eq!(ede(&fast), ede(&general));
    assert_eq!(
        fast.queries[0].name(),
        &Name::from_ascii("xmr.pool.minergate.com.").expect("name")
    );
    bed.shutdown().await;
}

#[tokio::test]
async fn an_upstream_outage_is_bridged_with_stale_answers() {
    let mut bed = TestBed::builder().workers(1).timeout_ms(300).start().await;
    let first = bed
        .ask(Proto::Udp, "short.example.test.", RecordType::A)
        .await;
    assert_eq!(addresses(&first), vec!["192.0.2.77"]);

    // The upstream goes away for good.
    drop(std::mem::replace(&mut bed.upstream, Upstream::serving(&[])));

    // Once the record's 1 s TTL has passed, the cache stands in (RFC 8767): same data, TTL 30,
    // EDE 3. Until then the fresh cached copy answers; never a SERVFAIL in between.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stale = loop {
        let q = request("short.example.test.", RecordType::A, true);
        let r = query(bed.dns, Proto::Udp, &q).await;
        assert_eq!(addresses(&r), vec!["192.0.2.77"], "{r:?}");
        if ede(&r).map(|(code, _)| code) == Some(3) {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no stale answer: {r:?}"
        );
        // Paces the polling while the TTL runs out; the loop ends on the answer, not the clock.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(stale.metadata.response_code, ResponseCode::NoError);
    assert!(stale.answers.iter().all(|r| r.ttl == 30), "{stale:?}");
    let (_, text) = ede(&stale).expect("EDE");
    assert!(text.starts_with("stale answer: upstream"), "{text}");

    // A name never answered before has nothing to fall back on.
    let never = bed
        .ask(Proto::Udp, "mail.example.test.", RecordType::A)
        .await;
    assert_eq!(never.metadata.response_code, ResponseCode::ServFail);
    bed.shutdown().await;
}
