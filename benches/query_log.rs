//! The query log's block format: what one logged query costs the store writer to encode
//! (`BlockEncoder::push`, with its Bloom keys, and `seal` amortised over the block) and what
//! one row costs the API to decode. The writer does this on the DNS worker's core for every
//! query, so a regression here is a regression in answers per second with the full log on.
//! Hits use the same format with the ledger snapshot (schema 8): the "hit block" case encodes
//! rows that all carry one, as the writer does for every blocked query.
//! Run with `cargo bench --bench query_log`; numbers are recorded in docs/BENCHMARKS.md.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use poolguard::record::{Outcome, Transport};
use poolguard::store::blocks::codec::{Block, BlockEncoder, Entry, Snapshot};

/// A writer batch (the default `batch_size`).
const ROWS: usize = 4096;

/// Rows like a campus's: a few hundred clients, thousands of names, 10 % blocked.
fn names() -> Vec<String> {
    (0..ROWS)
        .map(|i| {
            if i.is_multiple_of(10) {
                format!("w{i}.pool{}.minexmr.com", i % 37)
            } else {
                format!("host{}.site{}.example.edu", i % 1500, i % 97)
            }
        })
        .collect()
}

fn entry(i: usize, name: &str) -> Entry<'_> {
    let blocked = i.is_multiple_of(10);
    Entry {
        time_ms: 1_795_000_000_000 + i as i64 / 8,
        client: IpAddr::V4(Ipv4Addr::new(10, 20, (i % 7) as u8, (i % 250) as u8 + 1)),
        port: 40_000 + (i % 20_000) as u16,
        transport: Transport::Udp,
        outcome: if blocked {
            Outcome::Blocked
        } else {
            Outcome::Allowed
        },
        name,
        qtype: if i.is_multiple_of(3) { "AAAA" } else { "A" },
        feed: blocked.then_some("mining"),
        rule: blocked.then_some("minexmr.com"),
        rcode: if blocked { "NXDOMAIN" } else { "NOERROR" },
        answer: if blocked { "" } else { "A 192.0.2.10" },
        latency_us: 150 + (i % 900) as u32,
        upstream: (!blocked).then_some("127.0.0.1:53"),
        department: Some(["Physics", "Chemistry", "Library"][i % 3]),
        snapshot: None,
    }
}

fn encode(names: &[String]) -> BlockEncoder {
    let mut enc = BlockEncoder::default();
    for (i, n) in names.iter().enumerate() {
        enc.push(&entry(i, n));
    }
    enc
}

/// The ledger snapshot of client `i % 250` (one asset per address, a few buildings).
fn hit_block(names: &[String], assets: &[String]) -> BlockEncoder {
    let mut enc = BlockEncoder::default();
    for (i, n) in names.iter().enumerate() {
        enc.push(&Entry {
            outcome: Outcome::Blocked,
            snapshot: Some(Snapshot {
                network: Some("10.20.0.0/16"),
                asset: Some(&assets[i % 250]),
                mac: None,
                kind: Some("workstation"),
                location: Some(["B1", "B2", "B7"][i % 3]),
                owner: Some(["Ada", "Bo", "Cy", "Di"][i % 4]),
                contact: None,
                ..Snapshot::default()
            }),
            ..entry(i, n)
        });
    }
    enc
}

fn bench(c: &mut Criterion) {
    let names = names();
    let mut g = c.benchmark_group("query_log");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("encode and seal a 4096-row block", |b| {
        b.iter(|| black_box(encode(black_box(&names)).seal()))
    });
    let sealed = encode(&names).seal().expect("rows");
    g.bench_function("decode a 4096-row block", |b| {
        b.iter(|| {
            let block = Block::parse(black_box(&sealed.data)).expect("parses");
            let mut latency = 0u64;
            for row in block.entries() {
                let (_, e) = row.expect("row");
                latency += u64::from(e.latency_us);
            }
            black_box(latency)
        })
    });
    let assets: Vec<String> = (0..250).map(|i| format!("PC-{i:04}")).collect();
    g.bench_function("encode and seal a 4096-row hit block", |b| {
        b.iter(|| black_box(hit_block(black_box(&names), &assets).seal()))
    });
    g.finish();
    let hits = hit_block(&names, &assets).seal().expect("rows");
    eprintln!(
        "hit block of {ROWS} rows: data {} bytes ({:.1} per row), filter {} bytes",
        hits.data.len(),
        hits.data.len() as f64 / ROWS as f64,
        hits.filter.len()
    );
    eprintln!(
        "block of {ROWS} rows: data {} bytes ({:.1} per row), filter {} bytes",
        sealed.data.len(),
        sealed.data.len() as f64 / ROWS as f64,
        sealed.filter.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
