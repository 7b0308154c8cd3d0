//! Times each step of loading one feed file: read, hash, parse, policy compile.
//! `cargo run --release --example loadtime -- FILE`; used for the numbers in docs/FEEDS.md.

use std::sync::Arc;
use std::time::Instant;

use poolguard::config::{FeedFormat, FeedKind, Severity};
use poolguard::policy::{Action, FeedInfo, Policy};
use sha2::Digest;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: loadtime FILE");
        std::process::exit(2);
    };
    let t = Instant::now();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let read = t.elapsed();
    let t = Instant::now();
    let digest = sha2::Sha256::digest(&bytes);
    let hash = t.elapsed();
    let t = Instant::now();
    let text = String::from_utf8_lossy(&bytes);
    let parsed = poolguard::feeds::parse(&text, FeedFormat::Auto, FeedKind::Domains);
    let parse = t.elapsed();
    let info = Arc::new(FeedInfo {
        name: "bench".into(),
        kind: FeedKind::Domains,
        action: Action::Sinkhole,
        category: "mining".into(),
        severity: Severity::Medium,
    });
    let t = Instant::now();
    let policy = Policy::build([(info, &parsed)]);
    let compile = t.elapsed();
    println!(
        "{} entries (sha256 {:02x}{:02x}…): read {read:?}, hash {hash:?}, parse {parse:?}, compile {compile:?}; {:?}",
        parsed.accepted(),
        digest[0],
        digest[1],
        policy.stats()
    );
}
