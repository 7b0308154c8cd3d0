//! Parse throughput: the design promises 1,000,000 blocked names loaded in under 1 s, so the
//! parser's share (1M plain lines) must stay well under 0.5 s. Also a hosts and an adblock file
//! of the same size, since real feeds come in those syntaxes.
//!
//! `cargo bench --bench parsers`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use poolguard::config::{FeedFormat, FeedKind};
use poolguard::feeds::parse;

const LINES: usize = 1_000_000;

/// Names shaped like real pool and cryptojacking hosts: 2–4 labels, a few TLDs.
fn names() -> impl Iterator<Item = String> {
    const TLDS: [&str; 6] = ["com", "org", "net", "pro", "xyz", "stream"];
    (0..LINES).map(|i| match i % 3 {
        0 => format!("pool{i}.example{}.{}", i % 97, TLDS[i % TLDS.len()]),
        1 => format!("xmr-eu{}.miner{i}.{}", i % 7, TLDS[i % TLDS.len()]),
        _ => format!("cdn{i}.{}", TLDS[i % TLDS.len()]),
    })
}

fn bench(c: &mut Criterion) {
    let plain: String = names().map(|n| n + "\n").collect();
    let hosts: String = names().map(|n| format!("0.0.0.0 {n}\n")).collect();
    let adblock: String = std::iter::once("[Adblock Plus 2.0]\n".to_string())
        .chain(names().map(|n| format!("||{n}^$third-party\n")))
        .collect();
    let mut g = c.benchmark_group("parse_1m");
    g.sample_size(10);
    g.throughput(Throughput::Elements(LINES as u64));
    for (name, text, format) in [
        ("plain", &plain, FeedFormat::Plain),
        ("plain_auto", &plain, FeedFormat::Auto),
        ("hosts", &hosts, FeedFormat::Auto),
        ("adblock", &adblock, FeedFormat::Auto),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let p = parse(black_box(text), format, FeedKind::Domains);
                assert_eq!(p.domains.len(), LINES);
                p
            })
        });
    }
    g.finish();
}

/// The whole reload the design budgets at 1 s: read 1M names, parse, compile the policy, swap.
fn load(c: &mut Criterion) {
    use std::sync::Arc;

    use arc_swap::ArcSwap;
    use poolguard::config::Config;
    use poolguard::feeds::loader::Loader;
    use poolguard::policy::Policy;

    let dir = tempfile::tempdir().expect("temp dir");
    let body: String = names().map(|n| n + "\n").collect();
    std::fs::write(dir.path().join("big.txt"), body).expect("write feed");
    let toml = "[[feeds]]\nname = \"big\"\npath = \"big.txt\"\n";
    let config =
        Config::from_toml(toml, &dir.path().join("config.toml"), dir.path()).expect("config");
    let policy = Arc::new(ArcSwap::from_pointee(Policy::empty()));
    let mut g = c.benchmark_group("reload_1m");
    g.sample_size(10);
    g.bench_function("plain_file", |b| {
        b.iter(|| {
            // A fresh loader each time: the content-hash cache would skip the parse otherwise.
            let loader = Loader::new(Arc::new(config.clone()), policy.clone());
            let r = loader.reload();
            assert_eq!(r.feeds[0].accepted, LINES);
            r
        })
    });
    g.finish();
}

criterion_group!(benches, bench, load);
criterion_main!(benches);
