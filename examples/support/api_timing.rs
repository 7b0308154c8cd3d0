//! The API timing both store benches share (`gen_store --measure` on SQLite, `pg_store_bench
//! measure` on PostgreSQL), included with `#[path]`: the real router on 127.0.0.1 with a viewer
//! token, and a table of p50/p95/max per request kind, so both backends are timed alike.

use std::time::{Duration, Instant};

use poolguard::api::{self, ApiState};
use poolguard::clients::Ledger;
use poolguard::config::{ApiConfig, Role, TokenConfig};
use poolguard::store::Stores;
use rand::rngs::StdRng;

/// Makes one request path of a kind from the bench's random numbers.
pub type Gen = Box<dyn Fn(&mut StdRng) -> String>;

/// The API serving a store, and a client holding a token for it.
pub struct Served {
    base: String,
    token: String,
    http: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Serves `store` behind the API's own router (token auth, JSON) on a free port.
pub async fn serve(store: impl Stores + 'static) -> Result<Served, Box<dyn std::error::Error>> {
    let tok = api::token::generate("bench", Role::Viewer)?;
    let cfg = ApiConfig {
        tokens: vec![TokenConfig {
            name: "bench".into(),
            role: Role::Viewer,
            sha256: tok.sha256.clone(),
        }],
        ..ApiConfig::default()
    };
    let state = ApiState::new(store, Ledger::empty().shared(), None, &cfg, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = api::serve(listener, state, async move {
        let _ = stopped.await;
    });
    Ok(Served {
        base,
        token: tok.token,
        http: reqwest::Client::new(),
        stop,
        server,
    })
}

/// The `p` quantile of `v` (sorted in place); zero when empty.
pub fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or_default()
}

/// Items in a response: CSV lines, JSON objects with an `id`, or 1 for `/stats`.
fn items(path: &str, body: &[u8]) -> usize {
    if path.contains("/stats") {
        1
    } else if path.contains("format=csv") {
        body.iter()
            .filter(|b| **b == b'\n')
            .count()
            .saturating_sub(1)
    } else {
        body.windows(5).filter(|w| w == b"\"id\":").count()
    }
}

/// The table's header line.
pub fn header() {
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>7}",
        "request (limit 100 unless noted)", "p50", "p95", "max", "items"
    );
}

impl Served {
    /// Times `n` requests made by `make`, one after another, and prints their row. A 503 (the
    /// store's read time limit) is counted and the run goes on; any other response that is
    /// not a success stops the bench with its body.
    pub async fn time(
        &self,
        label: &str,
        make: &Gen,
        n: usize,
        rng: &mut StdRng,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let mut times = Vec::with_capacity(n);
        let mut count = 0usize;
        let mut stopped = 0usize;
        for _ in 0..n {
            let path = make(rng);
            let t = Instant::now();
            let r = self
                .http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .send()
                .await?;
            let status = r.status();
            let body = r.bytes().await?;
            times.push(t.elapsed());
            if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                stopped += 1;
                continue;
            }
            if !status.is_success() {
                return Err(format!("{path}: {status} {}", String::from_utf8_lossy(&body)).into());
            }
            count += items(&path, &body);
        }
        let (p50, p95, max) = (
            pct(&mut times, 0.5),
            pct(&mut times, 0.95),
            pct(&mut times, 1.0),
        );
        println!(
            "{label:<40} {p50:>9.2?} {p95:>9.2?} {max:>9.2?} {:>7}{}",
            count / n.max(1),
            if stopped > 0 {
                format!("  ({stopped} stopped at the 5 s limit)")
            } else {
                String::new()
            }
        );
        Ok(())
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}
