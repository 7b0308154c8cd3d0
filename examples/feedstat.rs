//! Prints what poolguard makes of a feed file: format, counts, rejected lines.
//! `cargo run --example feedstat -- FILE [kind]`; used to review feeds before shipping them.

use poolguard::config::{FeedFormat, FeedKind};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: feedstat FILE [domains|ips|allow] [-v]");
        std::process::exit(2);
    };
    let kind = match args.next().as_deref() {
        Some("ips") => FeedKind::Ips,
        Some("allow") => FeedKind::Allow,
        _ => FeedKind::Domains,
    };
    let verbose = args.next().is_some();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let p = poolguard::feeds::parse(&String::from_utf8_lossy(&bytes), FeedFormat::Auto, kind);
    println!(
        "{path}: format={:?} domains={} exact={} exceptions={} ips={} rejected={} skipped={}",
        p.format.unwrap_or(FeedFormat::Auto),
        p.domains.len(),
        p.domains.iter().filter(|d| d.exact).count(),
        p.exceptions.len(),
        p.ips.len(),
        p.rejected.len(),
        p.skipped
    );
    for r in &p.rejected {
        println!("  {}: `{}` {}", r.line, r.text, r.reason);
    }
    if verbose {
        for d in &p.domains {
            println!("  D {}{}", if d.exact { "=" } else { "" }, d.name);
        }
        for d in &p.exceptions {
            println!("  E {}", d.name);
        }
    }
}
