//! The documents a group shares: feed definitions and content, the asset ledger, revoked
//! token hashes (`poolguard_versions::share`). A node stores a checked write here before it
//! changes its own files; the `shared_docs_changed` trigger notifies every node, which pulls
//! the topic's documents and applies those that differ from its files.

use poolguard_versions::sha256_hex;
use poolguard_versions::share::{Doc, Share, ShareError, Topic};

use crate::{PgError, PgStore};

/// How long a maintainer's write waits for the shared database before it is refused.
const SHARE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl PgStore {
    /// Stores `docs` as the newest of each and keeps them as versions, in one transaction.
    pub async fn put_docs(&self, docs: &[Doc]) -> Result<(), PgError> {
        let mut c = self.pool().get().await?;
        let tx = c.transaction().await?;
        let now = crate::now_ms();
        for d in docs {
            let sha = sha256_hex(&d.content);
            let topic = d.topic.as_str();
            tx.execute(
                "INSERT INTO shared_docs (topic, name, sha256, content, who, action, node, updated_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (topic, name) DO UPDATE SET sha256 = $3, content = $4, who = $5, \
                 action = $6, node = $7, updated_ms = $8",
                &[&topic, &d.name, &sha, &d.content, &d.who, &d.action, &self.node(), &now],
            )
            .await?;
            tx.execute(
                "INSERT INTO shared_versions (topic, name, sha256, content, who, action, node, time_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&topic, &d.name, &sha, &d.content, &d.who, &d.action, &self.node(), &now],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest of every document under `topic`.
    pub async fn docs(&self, topic: Topic) -> Result<Vec<Doc>, PgError> {
        let c = self.pool().get().await?;
        let rows = c
            .query(
                "SELECT name, content, who, action FROM shared_docs WHERE topic = $1 ORDER BY name",
                &[&topic.as_str()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Doc {
                    topic,
                    name: r.try_get(0)?,
                    content: r.try_get(1)?,
                    who: r.try_get(2)?,
                    action: r.try_get(3)?,
                })
            })
            .collect()
    }
}

/// [`Share`] for the blocking write paths: runs [`PgStore::put_docs`] on `runtime` and waits
/// (at most [`SHARE_TIMEOUT`]). Call it from a blocking thread, never from an async task.
pub struct PgShare {
    store: PgStore,
    runtime: tokio::runtime::Handle,
}

impl PgShare {
    /// Shares through `store` on `runtime` (the runtime its connections live on).
    pub fn new(store: PgStore, runtime: tokio::runtime::Handle) -> Self {
        Self { store, runtime }
    }
}

impl Share for PgShare {
    fn share(&self, docs: Vec<Doc>) -> Result<(), ShareError> {
        let store = self.store.clone();
        let put = async move { tokio::time::timeout(SHARE_TIMEOUT, store.put_docs(&docs)).await };
        match self.runtime.block_on(put) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ShareError(e.to_string())),
            Err(_) => Err(ShareError(format!(
                "no answer within {} s",
                SHARE_TIMEOUT.as_secs()
            ))),
        }
    }
}
