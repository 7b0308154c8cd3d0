//! Measures the store writer's sustained rate: a stream of query events through the real writer
//! thread (full query log on), in rows per second, for the benchmark's two mixes.
//!
//! ```text
//! cargo run --release --example writer_load -- 400000
//! ```
//!
//! Argument: events per run. `mixed` = 90 % allowed + 10 % blocked (hits), `blocked` = 100 %
//! hits. Every row goes to `queries`; hits also to `hits`. Names and clients vary like the
//! dnsperf workload (10k names, 250 clients), so the indexes see realistic key spread.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use poolguard::clients::Ledger;
use poolguard::config::StoreConfig;
use poolguard::record::{Outcome, QueryEvent, Transport};
use poolguard::store;

fn run(events: u64, hit_every: u64) -> Result<(f64, u64, u64), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let cfg = StoreConfig {
        path: dir.path().join("load.db"),
        log_queries: true,
        // Large enough that nothing is shed: this measures the writer, not the budget.
        queue_capacity: usize::MAX / 2,
        // `WRITER_BATCH=16384` to try other batch sizes (default: the shipped default).
        batch_size: std::env::var("WRITER_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(StoreConfig::default().batch_size),
        ..StoreConfig::default()
    };
    let store = store::open(&cfg)?;
    let (sink, writer) = store::writer::spawn(&store, &cfg, Ledger::empty().shared())?;
    let health = writer.health();
    let feed: Arc<str> = Arc::from("bench");
    let rule: Arc<str> = Arc::from("xmr-mine.test");
    let upstream = "127.0.0.1:25300";
    let now = chrono::Utc::now().timestamp_millis();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let start = Instant::now();
    for i in 0..events {
        let ip = Ipv4Addr::from(0x0A00_0000 | (i % 250) as u32);
        let hit = i % hit_every == 0;
        sink.submit(QueryEvent {
            time_ms: now + (i / 100) as i64,
            client: SocketAddr::from((ip, 40_000 + (i % 1000) as u16)),
            transport: Transport::Udp,
            name: if hit {
                format!("pool-{}.xmr-mine.test", i % 100_000).into()
            } else {
                format!("host-{}.campus.test", i % 10_000).into()
            },
            qtype: "A".into(),
            outcome: if hit {
                Outcome::Blocked
            } else {
                Outcome::Allowed
            },
            feed: hit.then(|| feed.clone()),
            rule: hit.then(|| rule.clone()),
            rcode: if hit { "NXDOMAIN" } else { "NOERROR" },
            answer: if hit { "".into() } else { "A 10.1.2.3".into() },
            latency_us: 40,
            upstream: (!hit).then(|| upstream.into()),
        });
    }
    rt.block_on(writer.flush())?;
    let secs = start.elapsed().as_secs_f64();
    let status = health.status();
    rt.block_on(writer.shutdown())?;
    Ok((
        events as f64 / secs,
        status.queries_written,
        status.hits_written,
    ))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(400_000u64);
    for (mix, hit_every) in [("mixed", 10), ("blocked", 1), ("mixed", 10), ("blocked", 1)] {
        let (rate, q, h) = run(events, hit_every)?;
        println!("{mix:8} {events} events: {rate:.0} events/s ({q} query rows, {h} hit rows)");
    }
    Ok(())
}
