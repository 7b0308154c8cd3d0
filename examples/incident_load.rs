//! Measures what incident tracking costs the store writer: the same stream of hits through the
//! real writer thread, with and without the tracker, in hits per second.
//!
//! ```text
//! cargo run --release --example incident_load -- 200000 2000 [notify]
//! ```
//!
//! Arguments: hits, distinct clients, and `notify` to run the repeat-offender check after
//! every batch too (`[enforcement] mode = "notify"`, incidents threshold 3; default off). Every hit is a blocked query (the worst case: ordinary
//! queries never reach the tracker).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use poolguard::clients::Ledger;
use poolguard::config::{Config, StoreConfig};
use poolguard::incidents::config::EnforcementMode;
use poolguard::incidents::track::Tracker;
use poolguard::incidents::{Accountability, Alerts, SystemClock};
use poolguard::record::{Outcome, QueryEvent, Transport};
use poolguard::store;
use poolguard::store::hook::BatchHook;

fn run(
    hits: u64,
    clients: u32,
    tracked: bool,
    mode: EnforcementMode,
) -> Result<f64, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let cfg = StoreConfig {
        path: dir.path().join("load.db"),
        log_queries: false,
        ..StoreConfig::default()
    };
    let store = store::open(&cfg)?;
    let mut config = Config::default();
    config.enforcement.mode = mode;
    let tracker = tracked.then(|| -> Arc<dyn BatchHook> {
        Arc::new(Tracker::new(Arc::new(Accountability::new(
            &config,
            Arc::new(SystemClock),
            Alerts::disabled(),
        ))))
    });
    let (sink, writer) =
        store::writer::spawn_with(&store, &cfg, Ledger::empty().shared(), tracker)?;
    let feed: Arc<str> = Arc::from("mining");
    let now = chrono::Utc::now().timestamp_millis();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let start = Instant::now();
    for i in 0..hits {
        let c = (i % u64::from(clients)) as u32;
        let ip = Ipv4Addr::from(0x0A00_0000 | c);
        sink.submit(QueryEvent {
            time_ms: now + i as i64,
            client: SocketAddr::from((ip, 40_000)),
            transport: Transport::Udp,
            name: format!("w{}.pool{}.minexmr.com", i % 50, i % 7).into(),
            qtype: "A".into(),
            outcome: Outcome::Blocked,
            feed: Some(feed.clone()),
            rule: Some(Arc::from("minexmr.com")),
            rcode: "NOERROR",
            answer: "A 0.0.0.0".into(),
            latency_us: 40,
            upstream: None,
        });
    }
    rt.block_on(writer.flush())?;
    let secs = start.elapsed().as_secs_f64();
    rt.block_on(writer.shutdown())?;
    Ok(hits as f64 / secs)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let hits = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000u64);
    let clients = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2_000u32);
    let mode = match args.get(3).map(String::as_str) {
        Some("notify") => EnforcementMode::Notify,
        _ => EnforcementMode::Off,
    };
    for tracked in [false, true, false, true] {
        let rate = run(hits, clients, tracked, mode)?;
        println!(
            "{hits} hits, {clients} clients, tracker {} (enforcement {mode:?}): {rate:.0} hits/s",
            if tracked { "on " } else { "off" }
        );
    }
    Ok(())
}
