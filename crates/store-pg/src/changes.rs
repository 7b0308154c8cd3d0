//! What another node changed: a task on a connection of its own that `LISTEN`s on
//! `poolguard_changes` and tells this node, so a quarantine, a feed or ledger upload or a
//! token revocation made through any node is in force on every node within moments (the triggers of `schema` send the notifications).
//!
//! Notifications are not stored: one sent while this node was disconnected is lost. So the
//! listener reports [`Change::Resync`] after every (re)connection and every
//! `resync_every` (30 s in production) as a fallback, and whoever follows the changes reloads
//! everything it keeps on a resync. A lost connection is retried with a backoff of 1 s,
//! doubling to 30 s.

use std::time::Duration;

use tokio::sync::broadcast;

use poolguard_versions::share::Topic;

use crate::connect::Connector;
use crate::schema::CHANGES_CHANNEL;

/// Something that may have changed in the shared database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The quarantine list (`quarantine_changed` trigger).
    Quarantine,
    /// A shared document (`shared_docs_changed` trigger): feeds, the ledger or tokens.
    Shared(Topic),
    /// Who held an address (`identity_changed` trigger): another node learned a holding.
    Identity,
    /// A notification this build does not know (a newer node's); ignored.
    Other(String),
    /// Anything may have changed (reconnected, or the periodic fallback): reload everything.
    Resync,
}

impl Change {
    fn of(payload: &str) -> Self {
        match payload {
            "quarantine" => Change::Quarantine,
            "feeds" => Change::Shared(Topic::Feeds),
            "ledger" => Change::Shared(Topic::Ledger),
            "tokens" => Change::Shared(Topic::Tokens),
            "identity" => Change::Identity,
            other => Change::Other(other.to_string()),
        }
    }

    /// Whether a holder of the `topic` documents must pull them again.
    pub fn touches(&self, topic: Topic) -> bool {
        match self {
            Change::Shared(t) => *t == topic,
            Change::Resync => true,
            _ => false,
        }
    }

    /// Whether a holder of the identity index must read the holdings changed lately.
    pub fn touches_identity(&self) -> bool {
        matches!(self, Change::Identity | Change::Resync)
    }

    /// Whether a holder of the quarantine list must reload it.
    pub fn touches_quarantine(&self) -> bool {
        matches!(self, Change::Quarantine | Change::Resync)
    }
}

/// How often the listener reports [`Change::Resync`] without a notification.
pub const RESYNC_EVERY: Duration = Duration::from_secs(30);

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The listener task and the channel it reports on.
pub struct Changes {
    tx: broadcast::Sender<Change>,
    task: tokio::task::JoinHandle<()>,
}

impl Changes {
    /// Starts listening on the current runtime.
    pub fn spawn(connector: Connector, resync_every: Duration) -> Self {
        let (tx, _) = broadcast::channel(64);
        let task = tokio::spawn(listen(connector, tx.clone(), resync_every));
        Self { tx, task }
    }

    /// A receiver of every change from now on. A receiver that falls behind gets
    /// `Lagged`, which it must treat as a resync.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    /// Stops listening.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects, listens, reports; reconnects with backoff for as long as the task lives.
async fn listen(connector: Connector, tx: broadcast::Sender<Change>, resync_every: Duration) {
    let mut backoff = Duration::from_secs(1);
    // Runs until aborted: every pass is one connection's life or one failed attempt.
    loop {
        match session(&connector, &tx, resync_every).await {
            Ok(()) => {
                tracing::warn!("lost the PostgreSQL change notifications; reconnecting");
                backoff = Duration::from_secs(1);
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "cannot listen for changes of the other nodes");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: `Ok` when it ended after listening, `Err` when it never did.
async fn session(
    connector: &Connector,
    tx: &broadcast::Sender<Change>,
    resync_every: Duration,
) -> Result<(), crate::PgError> {
    let (client, mut notes) = connector.connect_listening().await?;
    client
        .batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
        .await?;
    tracing::info!("listening for changes made through the other nodes");
    // Whatever happened while not listening was missed.
    let _ = tx.send(Change::Resync);
    let mut tick = tokio::time::interval(resync_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            note = notes.recv() => match note {
                Some(n) if n.channel() == CHANGES_CHANNEL => {
                    let _ = tx.send(Change::of(n.payload()));
                }
                Some(_) => {}
                None => return Ok(()),
            },
            _ = tick.tick() => {
                // A connection that died silently shows here, not in `notes`.
                if client.simple_query("SELECT 1").await.is_err() {
                    return Ok(());
                }
                let _ = tx.send(Change::Resync);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_what_changed() {
        assert_eq!(Change::of("quarantine"), Change::Quarantine);
        assert!(Change::of("quarantine").touches_quarantine());
        assert!(Change::Resync.touches_quarantine());
        assert!(!Change::of("feeds").touches_quarantine());
        assert!(Change::of("feeds").touches(Topic::Feeds));
        assert!(!Change::of("ledger").touches(Topic::Tokens));
        assert!(Change::Resync.touches(Topic::Tokens));
        assert!(Change::of("identity").touches_identity());
        assert!(!Change::of("identity").touches_quarantine());
    }
}
