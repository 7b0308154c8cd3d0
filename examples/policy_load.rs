//! Builds a 1,000,000-name policy from generated mining-pool names and prints what it cost:
//! build time (compiling only; names are parsed first, as the feed loader does) and the RSS it
//! added over the empty policy. The design budget is < 1 s and < 64 MiB (DESIGN.md §5).
//!
//! Then it times `check_name` for hits, misses and deep subdomains in on-CPU nanoseconds
//! (`/proc/thread-self/schedstat`), best of 5 long rounds: on a shared 2-core box wall-clock
//! benches swing ±30 % with the neighbours' load, CPU time much less.
//!
//! `cargo run --release --example policy_load [-- N]`

use std::time::Instant;

use poolguard::config::FeedKind;
use poolguard::policy::{Decision, Policy};

#[path = "../benches/support/names.rs"]
mod names;

/// Resident set size in KiB, from the kernel's own accounting.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Nanoseconds this thread has spent on a CPU (first field of schedstat).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Best-of-5 on-CPU nanoseconds per `check` over `set`, and how many were blocked. Rounds
/// are long (4 M lookups, 0.1–1 s): schedstat advances in scheduler ticks (4 ms here), so
/// short rounds come out quantised to multiples of ~20 ns.
fn time_lookups(set: &[String], check: impl Fn(&str) -> bool) -> Option<(f64, usize)> {
    const ROUNDS: usize = 4000;
    let mut best = f64::INFINITY;
    let mut blocked = 0;
    for _ in 0..5 {
        let t0 = thread_cpu_ns()?;
        blocked = 0;
        for _ in 0..ROUNDS {
            for n in set {
                if check(std::hint::black_box(n)) {
                    blocked += 1;
                }
            }
        }
        let t1 = thread_cpu_ns()?;
        best = best.min(t1.saturating_sub(t0) as f64 / (ROUNDS * set.len()) as f64);
    }
    Some((best, blocked / ROUNDS))
}

fn report(what: &str, label: &str, set: &[String], t: Option<(f64, usize)>) {
    match t {
        Some((ns, blocked)) => println!(
            "{what} {label:<5} {ns:6.1} ns on-CPU ({:.1} M/s per core), {blocked}/{} blocked",
            1e3 / ns,
            set.len()
        ),
        None => println!("{what} {label}: no /proc/thread-self/schedstat"),
    }
}

fn main() {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => match a.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("usage: policy_load [NAMES]  (`{a}` is not a count)");
                std::process::exit(2);
            }
        },
        None => 1_000_000,
    };
    let t = Instant::now();
    let feed = names::feed_of(n);
    let parse = t.elapsed();
    let info = names::info("mining", FeedKind::Domains);
    let empty = Policy::empty();
    let before = rss_kib();
    let (t, cpu) = (Instant::now(), thread_cpu_ns());
    let policy = Policy::build([(info, &feed)]);
    let build = t.elapsed();
    let build_cpu = cpu
        .zip(thread_cpu_ns())
        .map(|(a, b)| b.saturating_sub(a) as f64 / 1e6);
    let after = rss_kib();
    let probe = names::pool_name(n / 2 + 1);
    assert!(
        matches!(policy.check_name(&probe), Decision::Blocked(_)),
        "{probe} must be blocked"
    );
    println!("names:        {n}");
    println!("parse:        {parse:.2?} (DomainName::parse, not part of the budget)");
    match build_cpu {
        Some(ms) => println!("build:        {build:.2?} ({ms:.1} ms on-CPU)"),
        None => println!("build:        {build:.2?}"),
    }
    match (before, after) {
        (Some(b), Some(a)) => println!(
            "rss delta:    {:.1} MiB ({b} KiB -> {a} KiB)",
            a.saturating_sub(b) as f64 / 1024.0
        ),
        _ => println!("rss delta:    unavailable (no /proc/self/status)"),
    }
    println!("stats:        {:?}", policy.stats());

    // The same probe sets as benches/matcher.rs: 1024 names spread over the whole table.
    let stride = (n / 1024).max(1);
    let pick = |k: usize| {
        let i = k * stride;
        if i % 50 == 7 { i + 1 } else { i }
    };
    let hit: Vec<String> = (0..1024).map(|k| names::pool_name(pick(k))).collect();
    let miss: Vec<String> = (0..1024).map(|k| names::campus_name(k * stride)).collect();
    let deep: Vec<String> = (0..1024)
        .map(|k| format!("a.b.c.worker-{k}.{}", names::pool_name(pick(k))))
        .collect();
    for (label, set) in [("hit", &hit), ("miss", &miss), ("deep", &deep)] {
        let check = |n: &str| matches!(policy.check_name(n), Decision::Blocked(_));
        report("check_name", label, set, time_lookups(set, check));
    }
    // The borrowed, allocation-free form the DNS fast path uses: no rule `Arc<str>`, no
    // refcount traffic on the shared `FeedInfo`.
    let check = |n: &str| policy.match_name(n.as_bytes()).is_some_and(|m| !m.allowed);
    report("match_name", "hit", &hit, time_lookups(&hit, check));
    drop(empty);
}
