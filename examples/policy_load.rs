//! Builds a 1,000,000-name policy from generated mining-pool names and prints what it cost:
//! build time (compiling only; names are parsed first, as the feed loader does) and the RSS it
//! added over the empty policy. The design budget is < 1 s and < 64 MiB (DESIGN.md §5).
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
    let t = Instant::now();
    let policy = Policy::build([(info, &feed)]);
    let build = t.elapsed();
    let after = rss_kib();
    let probe = names::pool_name(n / 2 + 1);
    assert!(
        matches!(policy.check_name(&probe), Decision::Blocked(_)),
        "{probe} must be blocked"
    );
    println!("names:        {n}");
    println!("parse:        {parse:.2?} (DomainName::parse, not part of the budget)");
    println!("build:        {build:.2?}");
    match (before, after) {
        (Some(b), Some(a)) => println!(
            "rss delta:    {:.1} MiB ({b} KiB -> {a} KiB)",
            a.saturating_sub(b) as f64 / 1024.0
        ),
        _ => println!("rss delta:    unavailable (no /proc/self/status)"),
    }
    println!("stats:        {:?}", policy.stats());
    drop(empty);
}
