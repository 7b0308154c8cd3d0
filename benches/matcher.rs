//! Matcher throughput and build time: hit, miss and deep-subdomain lookups against a
//! 1,000,000-name policy, and compile time for 100k and 1M names. Run with
//! `cargo bench --bench matcher`; numbers are recorded in docs/POLICY.md.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use poolguard::config::FeedKind;
use poolguard::policy::{Decision, Policy};

#[path = "support/names.rs"]
mod names;

const N: usize = 1_000_000;
const BATCH: usize = 1024;

fn lookups(c: &mut Criterion) {
    let feed = names::feed_of(N);
    let info = names::info("mining", FeedKind::Domains);
    let policy = Policy::build([(info, &feed)]);
    // Spread the probes over the whole table so the cache sees a realistic miss rate.
    let stride = N / BATCH;
    // Skip the exact-only entries (i % 50 == 7) so the deep names are hits too.
    let pick = |k: usize| {
        let i = k * stride;
        if i % 50 == 7 { i + 1 } else { i }
    };
    let hit: Vec<String> = (0..BATCH).map(|k| names::pool_name(pick(k))).collect();
    let miss: Vec<String> = (0..BATCH).map(|k| names::campus_name(k * stride)).collect();
    let deep: Vec<String> = (0..BATCH)
        .map(|k| format!("a.b.c.worker-{k}.{}", names::pool_name(pick(k))))
        .collect();
    for (label, set, blocked) in [
        ("hit", &hit, true),
        ("miss", &miss, false),
        ("deep_subdomain", &deep, true),
    ] {
        // Sanity: a bench that measures the wrong answer measures nothing.
        assert_eq!(
            matches!(policy.check_name(&set[0]), Decision::Blocked(_)),
            blocked,
            "{label}"
        );
        let mut g = c.benchmark_group("check_name_1m");
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function(label, |b| {
            b.iter(|| {
                let mut blocked = 0usize;
                for n in set {
                    if matches!(policy.check_name(black_box(n)), Decision::Blocked(_)) {
                        blocked += 1;
                    }
                }
                blocked
            })
        });
        g.finish();
    }
    // The allocation-free path (`match_name`): what `check_name` costs minus the rule `Arc<str>`.
    let mut g = c.benchmark_group("match_name_1m");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("hit", |b| {
        b.iter(|| {
            hit.iter()
                .filter(|n| policy.match_name(black_box(n.as_bytes())).is_some())
                .count()
        })
    });
    g.finish();
}

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("build");
    g.sample_size(10);
    for n in [100_000, N] {
        let feed = names::feed_of(n);
        let info = names::info("mining", FeedKind::Domains);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{}k", n / 1000), |b| {
            b.iter_batched(
                || info.clone(),
                |info| Policy::build([(info, &feed)]),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, lookups, build);
criterion_main!(benches);
