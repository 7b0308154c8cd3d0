//! Following what maintainers write through the other nodes of a group: feeds, the asset
//! ledger and token revocations (`[store] backend = "postgres"`, docs/SEVERAL-NODES.md).
//!
//! Every maintainer write is stored in PostgreSQL (`shared_docs`) before the node that took
//! it changes its files ([`PgShare`] plugged into the write paths). The trigger notifies
//! every node; this follower then pulls the topic's documents and applies them through the
//! same write paths a local upload uses, without sharing them again: a feed is parsed and
//! swapped into the policy whole (a document that does not parse leaves the list in force),
//! the ledger is checked, written, versioned and swapped in, revoked token hashes join the
//! node's list and the tokens in force lose them. The node's files stay its working copy, so
//! a node restarted while the database is down serves its last lists. The listener's
//! periodic resync pulls everything again, for a notification missed while disconnected.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use poolguard_api::Tokens;
use poolguard_api::revocations::Revocations;
use poolguard_clients::{LedgerUploads, SharedLedger};
use poolguard_feeds::registry::Registry;
use poolguard_store_pg::PgStore;
use poolguard_store_pg::changes::Change;
use poolguard_store_pg::shared::PgShare;
use poolguard_versions::share::{LEDGER, Share, Topic};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

/// What a node applies the group's documents to.
pub(super) struct Followers {
    pub(super) registry: Arc<Registry>,
    pub(super) ledger: SharedLedger,
    /// `[clients] ledger`, resolved; None = the ledger is not followed (none configured).
    pub(super) ledger_path: Option<PathBuf>,
    pub(super) uploads: Arc<LedgerUploads>,
    pub(super) revocations: Arc<Revocations>,
    /// The tokens the API checks; None when the API is off.
    pub(super) tokens: Option<Arc<ArcSwap<Tokens>>>,
}

impl Followers {
    /// Plugs the shared store into every write path, so a maintainer's write reaches the
    /// group before it changes anything here.
    pub(super) fn share_through(&self, store: &PgStore) {
        let share: Arc<dyn Share> = Arc::new(PgShare::new(
            store.clone(),
            tokio::runtime::Handle::current(),
        ));
        self.registry.share_with(share.clone());
        self.uploads.share_with(share.clone());
        self.revocations.share_with(share);
    }
}

/// Pulls and applies every topic now, then again whenever the listener says one changed.
pub(super) fn follow(
    mut changes: broadcast::Receiver<Change>,
    store: PgStore,
    followers: Followers,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let followers = Arc::new(followers);
        // The listener's first resync may have gone out before this subscribed.
        let mut change = Change::Resync;
        // Ends when the listener is gone (the channel closes) or at shutdown (aborted).
        loop {
            for topic in [Topic::Feeds, Topic::Ledger, Topic::Tokens] {
                if change.touches(topic)
                    && let Err(error) = apply(&store, &followers, topic).await
                {
                    tracing::warn!(topic = topic.as_str(), %error, "cannot apply changes made through the other nodes; will retry");
                }
            }
            change = match changes.recv().await {
                Ok(c) => c,
                Err(RecvError::Lagged(_)) => Change::Resync,
                Err(RecvError::Closed) => return,
            };
        }
    })
}

/// Why the group's documents could not be applied.
#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error(transparent)]
    Pg(#[from] poolguard_store_pg::PgError),
    #[error("{0}")]
    Apply(String),
}

/// Pulls `topic`'s documents and applies them on the blocking pool.
async fn apply(store: &PgStore, f: &Arc<Followers>, topic: Topic) -> Result<(), FollowError> {
    let docs = store.docs(topic).await?;
    if docs.is_empty() {
        return Ok(());
    }
    let f = f.clone();
    let applied = tokio::task::spawn_blocking(move || match topic {
        Topic::Feeds => f
            .registry
            .apply_shared(&docs)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Topic::Ledger => apply_ledger(&f, &docs),
        Topic::Tokens => apply_tokens(&f, docs.into_iter().map(|d| d.name)),
    })
    .await
    .map_err(|e| FollowError::Apply(e.to_string()))?;
    applied.map_err(FollowError::Apply)
}

/// Writes and swaps in the group's ledger when it differs from this node's file.
fn apply_ledger(f: &Followers, docs: &[poolguard_versions::share::Doc]) -> Result<(), String> {
    let (Some(path), Some(doc)) = (&f.ledger_path, docs.iter().find(|d| d.name == LEDGER)) else {
        return Ok(());
    };
    if let Some(write) = f
        .uploads
        .apply_shared(path, doc)
        .map_err(|e| e.to_string())?
    {
        tracing::info!(
            loaded = write.report.loaded,
            who = %doc.who,
            "asset ledger written through another node applied"
        );
        f.ledger.store(Arc::new(write.ledger));
        metrics::counter!("poolguard_ledger_reloads_total").increment(1);
    }
    Ok(())
}

/// Adds the group's revoked hashes to this node's list and drops those tokens.
fn apply_tokens(f: &Followers, hashes: impl Iterator<Item = String>) -> Result<(), String> {
    let all = f.revocations.add(hashes).map_err(|e| e.message)?;
    if let Some(tokens) = &f.tokens {
        let now = tokens.load();
        let kept = now.without(&all);
        if kept.len() != now.len() {
            tracing::info!(
                revoked = now.len() - kept.len(),
                "API tokens revoked through another node"
            );
            tokens.store(Arc::new(kept));
        }
    }
    Ok(())
}
