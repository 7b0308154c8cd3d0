//! The identity sources configured in `[identity]`, started as tasks: each lease file is read
//! whole before [`start`] returns (so hits right after start are attributed), then followed;
//! the RADIUS listener is bound before it returns (so a bad address fails the start).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::follow::Follower;
use crate::radius::{RadiusServer, SecretError};
use crate::{SharedIdentities, now_ms};
use poolguard_config::identity::IdentityConfig;

/// How often holdings older than the retention are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Why the identity sources could not start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Radius(#[from] SecretError),
    #[error("identity: the first read of the lease files stopped: {0}")]
    Stopped(String),
}

/// The running sources; dropping it does not stop them, [`IdentitySources::shutdown`] does.
#[derive(Debug)]
pub struct IdentitySources {
    /// Where the RADIUS listener is bound, when configured.
    pub radius_addr: Option<SocketAddr>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl IdentitySources {
    /// Stops every source task and waits for them.
    pub async fn shutdown(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts every configured source feeding `index`; holdings that ended more than `retain`
/// ago are forgotten (the app passes the hit retention: identities live as long as hits).
pub async fn start(
    cfg: &IdentityConfig,
    resolve: &dyn Fn(&Path) -> PathBuf,
    index: SharedIdentities,
    retain: Duration,
) -> Result<IdentitySources, SourceError> {
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut followers: Vec<Follower> = cfg
        .kea
        .iter()
        .map(|f| Follower::kea(resolve(&f.path)))
        .chain(cfg.dhcpd.iter().map(|f| Follower::dhcpd(resolve(&f.path))))
        .collect();
    if !followers.is_empty() {
        let first = Arc::clone(&index);
        followers = tokio::task::spawn_blocking(move || {
            for f in &mut followers {
                let started = std::time::Instant::now();
                let read = f.poll(now_ms());
                let events = read.events.len();
                report(f, &read);
                first.apply_all(read.events);
                tracing::info!(
                    file = %f.path().display(),
                    source = %f.source(),
                    records = events,
                    ms = started.elapsed().as_millis() as u64,
                    "lease file loaded"
                );
            }
            followers
        })
        .await
        .map_err(|e| SourceError::Stopped(e.to_string()))?;
        tasks.push(tokio::spawn(follow(
            followers,
            Arc::clone(&index),
            cfg.follow_period(),
            stop.clone(),
        )));
    }
    let mut radius_addr = None;
    if let Some(radius) = &cfg.radius {
        let server = RadiusServer::bind(radius, resolve, Arc::clone(&index)).await?;
        radius_addr = server.local_addr().ok();
        tracing::info!(listen = ?radius_addr, nas = radius.clients.len(), "RADIUS accounting listening");
        tasks.push(tokio::spawn(server.run(stop.clone())));
    }
    tasks.push(tokio::spawn(prune(index, retain, stop.clone())));
    Ok(IdentitySources {
        radius_addr,
        stop,
        tasks,
    })
}

/// Polls every followed file each `period`, off the async threads.
async fn follow(
    mut followers: Vec<Follower>,
    index: SharedIdentities,
    period: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let index = Arc::clone(&index);
        let polled = tokio::task::spawn_blocking(move || {
            for f in &mut followers {
                let read = f.poll(now_ms());
                if read.replaced {
                    tracing::info!(file = %f.path().display(), "lease file replaced; read again");
                }
                report(f, &read);
                index.apply_all(read.events);
            }
            followers
        })
        .await;
        match polled {
            Ok(f) => followers = f,
            Err(error) => {
                tracing::error!(%error, "lease file following stopped");
                return;
            }
        }
    }
}

/// Logs each rejected record with its file and line, and counts them.
fn report(f: &Follower, read: &crate::follow::Polled) {
    if read.rejected.is_empty() {
        return;
    }
    let source = f.source().as_str();
    metrics::counter!("poolguard_identity_rejected_total", "source" => source)
        .increment(read.rejected.len() as u64);
    for (path, r) in &read.rejected {
        tracing::warn!(file = %path.display(), line = r.line, reason = %r.reason, source, "lease record skipped");
    }
}

async fn prune(index: SharedIdentities, retain: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let retain_ms = i64::try_from(retain.as_millis()).unwrap_or(i64::MAX);
        index.prune(now_ms().saturating_sub(retain_ms));
    }
}
