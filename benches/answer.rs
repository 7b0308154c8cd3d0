//! Answer synthesis and the whole per-packet path for a blocked name, without sockets:
//! `BlockRules::describe` + `answer::reply` (the `Reply` for NXDOMAIN / sinkhole A), and
//! `Frontend::respond` = wire gate → hickory parse → handler stages (access, checks, policy,
//! block answer) → encode, from query bytes to response bytes. The recorder is off here
//! (writer costs are measured by `examples/writer_load`). Run with `cargo bench --bench answer`;
//! numbers are recorded in docs/BENCHMARKS.md.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hickory_proto::rr::Name;
use hickory_server::net::xfer::Protocol;
use poolguard::config::Config;
use poolguard::dns::answer;
use poolguard::dns::block::BlockRules;
use poolguard::dns::listen::Frontend;
use poolguard::policy::Action;

#[path = "support/packets.rs"]
mod packets;
use packets::query;

fn frontend(runtime: &tokio::runtime::Runtime, action: Action) -> Frontend {
    // Nothing is forwarded in these benches; the upstream only has to exist.
    runtime.block_on(async {
        Frontend::offline_with_feed("pool.example\nxmr-mine.test\n", action).expect("front end")
    })
}

fn synthesis(c: &mut Criterion) {
    let blocks = BlockRules::new(&Config::default().blocking);
    // QTYPE A.
    const A: u16 = 1;
    let name = Name::from_ascii("w1.pool-123.xmr-mine.test.").expect("name");
    let mut g = c.benchmark_group("answer");
    g.throughput(Throughput::Elements(1));
    g.bench_function("synth_nxdomain", |b| {
        b.iter(|| {
            answer::reply(
                &blocks.describe(A, Action::Nxdomain, black_box("mining")),
                black_box(&name),
            )
        })
    });
    g.bench_function("synth_sinkhole_a", |b| {
        b.iter(|| {
            answer::reply(
                &blocks.describe(A, Action::Sinkhole, black_box("mining")),
                black_box(&name),
            )
        })
    });
    g.finish();
}

fn path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let src: SocketAddr = ([127, 0, 0, 1], 40_000).into();
    let mut g = c.benchmark_group("path");
    g.throughput(Throughput::Elements(1));
    for (label, action, edns) in [
        ("blocked_nxdomain", Action::Nxdomain, false),
        ("blocked_nxdomain_edns", Action::Nxdomain, true),
        ("blocked_sinkhole_edns", Action::Sinkhole, true),
    ] {
        let front = frontend(&runtime, action);
        let packet = query(0x1234, "w1.pool-123.xmr-mine.test", 1, edns);
        // Sanity: a bench that measures the wrong answer measures nothing.
        let answer = runtime
            .block_on(front.respond(packet.clone(), src, Protocol::Udp))
            .expect("an answer");
        let rcode = answer[3] & 0x0f;
        assert_eq!(rcode, if action == Action::Nxdomain { 3 } else { 0 });
        g.bench_function(label, |b| {
            b.iter(|| {
                runtime.block_on(front.respond(black_box(packet.clone()), src, Protocol::Udp))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, synthesis, path);
criterion_main!(benches);
