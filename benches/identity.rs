//! Identity at a hit's time (issue 15): with 50,000 addresses each holding 20 leases over time
//! (1,000,000 intervals, the newest of each still open: 50,000 active leases), one lookup must
//! take well under the 5 µs a hit may spend in the writer. Also the first read of a Kea lease
//! file of 1,000,000 rows (budget: 2 s) and the index's memory (printed once, from VmRSS).
//!
//! `cargo bench --bench identity`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use poolguard::identity::follow::Follower;
use poolguard::identity::{Event, IdentityIndex, Interval, OPEN, Source};

const ADDRESSES: u32 = 50_000;
const PER_ADDRESS: u32 = 20;
/// One lease: an hour, renewed by a new holder each time.
const HOUR_MS: i64 = 3_600_000;
const T0: i64 = 1_796_600_000_000;

fn addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0ad5_0000 + i))
}

fn mac(n: u32) -> Arc<str> {
    let b = n.to_be_bytes();
    format!("00:0c:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3]).into()
}

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn index() -> IdentityIndex {
    let index = IdentityIndex::default();
    for i in 0..ADDRESSES {
        let events = (0..PER_ADDRESS).map(|k| {
            let start = T0 + i64::from(k) * HOUR_MS;
            Event::Held(Interval {
                addr: addr(i),
                start_ms: start,
                end_ms: if k + 1 == PER_ADDRESS {
                    OPEN
                } else {
                    start + HOUR_MS
                },
                // A campus has more devices than addresses: each lease another MAC.
                mac: Some(mac(i * PER_ADDRESS + k)),
                account: None,
                hostname: Some(format!("pc-{}", (i * PER_ADDRESS + k) % 100_000).into()),
                source: Source::Kea,
            })
        });
        index.apply_all(events);
    }
    index
}

fn lookup(c: &mut Criterion) {
    let before = rss_kib();
    let index = index();
    let after = rss_kib();
    let stats = index.stats();
    eprintln!(
        "identity index: {} addresses, {} intervals, {} strings, RSS +{} MiB",
        stats.addresses,
        stats.intervals,
        stats.strings,
        (after.saturating_sub(before)) / 1024
    );
    let mut n: u32 = 0;
    c.bench_function("identity_lookup_1m_intervals", |b| {
        b.iter(|| {
            n = n.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let a = addr(n % ADDRESSES);
            let t = T0 + i64::from(n % (PER_ADDRESS * 3600)) * 1000;
            black_box(index.lookup(black_box(a), black_box(t)))
        })
    });
}

fn load(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("kea-leases4.csv");
    let mut text = String::from(
        "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id\n",
    );
    for k in 0..1_000_000u32 {
        let i = k % ADDRESSES;
        let expire = (T0 + i64::from(k / ADDRESSES + 1) * HOUR_MS) / 1000;
        let m = mac(k);
        text.push_str(&format!(
            "{},{m},01:{m},3600,{expire},1,0,0,pc-{k},0,,0\n",
            addr(i)
        ));
    }
    std::fs::write(&path, text).expect("lease file");
    let mut g = c.benchmark_group("kea_load");
    g.sample_size(10);
    g.bench_function("kea_file_1m_rows", |b| {
        // What start-up pays: read, parse, index (freeing the index is not part of it).
        b.iter_with_large_drop(|| {
            let index = IdentityIndex::default();
            let read = Follower::kea(path.clone()).poll(0);
            assert_eq!(read.events.len(), 1_000_000);
            index.apply_all(read.events);
            assert_eq!(index.stats().intervals, 1_000_000);
            index
        })
    });
    g.finish();
}

criterion_group!(benches, lookup, load);
criterion_main!(benches);
