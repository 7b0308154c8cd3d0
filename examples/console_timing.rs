//! Server-side render time of every staff-console page over a large store (docs/CONSOLE.md).
//!
//! ```text
//! cargo run --release --example gen_store -- /tmp/pg10m.db 10000000
//! cargo run --release --example console_timing -- /tmp/pg10m.db --incidents
//! cargo run --release --example console_timing -- /tmp/pg10m.db [rounds]
//! ```
//!
//! `--incidents`: `gen_store` opens no incidents, so this writes 2 000 more hits from 100 of its
//! clients through the real store writer with incident tracking (as a running poolguard does),
//! which opens 100 incidents; run it once before timing, so the incident pages are timed too.
//!
//! Builds the API over the store as `gen_store --measure` does, puts the console in front of
//! it, signs in once (as a viewer, through the sign-in form), then asks each page `rounds`
//! times (default 20) straight through the console's router: from request to the last byte of
//! HTML, everything the server does (the API calls in-process, the store's reads, the
//! template), without a socket. Prints p50 / p95 / max per page and the answer's status.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use poolguard::api::{self, ApiState};
use poolguard::clients::Ledger;
use poolguard::config::incidents::NoticeConfig;
use poolguard::config::{ApiConfig, ConsoleConfig, Role, TokenConfig};
use poolguard::console::Console;
use poolguard::store::Store;
use tower::ServiceExt;

/// The pages, with a client and names that exist in `gen_store`'s data.
const PAGES: [&str; 16] = [
    "/",
    "/?range=7d",
    "/?range=30d",
    "/hits",
    "/hits?client=10.0.0.1",
    "/hits?name=*.pool1.minexmr.com",
    "/hits?table=queries",
    "/hits?table=queries&client=10.0.0.1",
    "/hits?department=Dept%207",
    "/incidents",
    "/incidents/1",
    "/incidents/1/report?format=html",
    "/quarantine",
    "/clients?ip=10.0.0.1",
    "/feeds",
    "/signin",
];

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or_default()
}

/// Opens incidents the way a running poolguard does: hits through the store writer with the
/// incident tracker as its batch hook.
fn open_incidents(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::Arc;

    use poolguard::config::{Config, StoreConfig};
    use poolguard::incidents::track::Tracker;
    use poolguard::incidents::{Accountability, Alerts, SystemClock};
    use poolguard::record::{Outcome, QueryEvent, Transport};
    use poolguard::store::hook::BatchHook;

    let cfg = StoreConfig {
        path: path.to_path_buf(),
        ..StoreConfig::default()
    };
    let store = poolguard::store::open(&cfg)?;
    let tracker: Arc<dyn BatchHook> = Arc::new(Tracker::new(Arc::new(Accountability::new(
        &Config::default(),
        Arc::new(SystemClock),
        Alerts::disabled(),
    ))));
    let (sink, writer) = poolguard::store::writer::spawn_with(
        &store,
        &cfg,
        Ledger::empty().shared(),
        Some(tracker),
    )?;
    let now = chrono::Utc::now().timestamp_millis();
    let feed: Arc<str> = Arc::from("mining");
    for i in 0..2_000u32 {
        // gen_store's client numbering: 10.0.0.1, 10.0.0.2, … (250 a /24).
        let c = i % 100;
        let ip = Ipv4Addr::from(0x0A00_0000 | ((c / 250) << 8) | (c % 250 + 1));
        sink.submit(QueryEvent {
            time_ms: now - 3_600_000 + i64::from(i),
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(writer.flush())?;
    rt.block_on(writer.shutdown())?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .ok_or("usage: console_timing <db> [--incidents | rounds]")?;
    if args.iter().any(|a| a == "--incidents") {
        return open_incidents(std::path::Path::new(path));
    }
    tokio::runtime::Runtime::new()?.block_on(time_pages(path, &args))
}

async fn time_pages(path: &str, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(20);
    let tok = api::token::generate("bench", Role::Viewer)?;
    let cfg = ApiConfig {
        tokens: vec![TokenConfig {
            name: "bench".into(),
            role: Role::Viewer,
            sha256: tok.sha256.clone(),
        }],
        ..ApiConfig::default()
    };
    let state = ApiState::new(
        Store::open(std::path::Path::new(path))?,
        Ledger::empty().shared(),
        None,
        &cfg,
        None,
    );
    let console = Console::new(&state, &ConsoleConfig::default(), &NoticeConfig::default());
    let app = console.router();

    let signin = Request::post("/signin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={}", tok.token)))?;
    let resp = app.clone().oneshot(signin).await?;
    let cookie = resp
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or("sign-in gave no cookie")?
        .to_string();

    println!("| page | status | p50 | p95 | max | HTML bytes |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for page in PAGES {
        let mut times = Vec::with_capacity(rounds);
        let mut status = StatusCode::OK;
        let mut bytes = 0;
        for _ in 0..rounds {
            let req = Request::get(page)
                .header(header::COOKIE, &cookie)
                .body(Body::empty())?;
            let t = Instant::now();
            let resp = app.clone().oneshot(req).await?;
            status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 64 << 20).await?;
            times.push(t.elapsed());
            bytes = body.len();
        }
        println!(
            "| `{page}` | {} | {:.1} ms | {:.1} ms | {:.1} ms | {bytes} |",
            status.as_u16(),
            pct(&mut times, 0.5).as_secs_f64() * 1e3,
            pct(&mut times, 0.95).as_secs_f64() * 1e3,
            pct(&mut times, 1.0).as_secs_f64() * 1e3,
        );
    }
    Ok(())
}
