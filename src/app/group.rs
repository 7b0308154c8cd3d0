//! A node's place in a group for the group-wide query log: where the others are (`nodes` in
//! PostgreSQL), the node-to-node token it presents, and where its own API answers
//! (`poolguard_api::group_log`, docs/SEVERAL-NODES.md).

use std::net::SocketAddr;
use std::sync::Arc;

use poolguard_api::group_log::{Group, Peer, Peers};
use poolguard_config::Config;
use poolguard_store::StoreError;
use poolguard_store_pg::PgStore;

/// The other nodes, from the shared store.
struct Registered(PgStore);

#[async_trait::async_trait]
impl Peers for Registered {
    async fn peers(&self) -> Result<Vec<Peer>, StoreError> {
        Ok(self
            .0
            .peers()
            .await?
            .into_iter()
            .map(|p| Peer {
                name: p.name,
                api_url: p.api_url,
            })
            .collect())
    }
}

/// The group as the API sees it: this node, its token for the others, where they are. A
/// token that cannot be read is logged; the list then shows this node's queries and says
/// the others are missing.
pub(super) fn group(config: &Config, store: &PgStore) -> Arc<Group> {
    let cfg = super::shared::store_config(config);
    let token = match poolguard_store_pg::connect::secret(
        cfg.peer_token_file.as_deref(),
        cfg.peer_token_env.as_deref(),
    ) {
        Ok(t) => t,
        Err(error) => {
            tracing::error!(%error, "the node-to-node token cannot be read; GET /api/v1/queries lists this node's queries only");
            None
        }
    };
    if token.is_none() {
        tracing::info!(
            "no [store] peer_token_file or peer_token_env: the query log lists this node's queries only"
        );
    }
    Arc::new(Group::new(
        store.node().to_string(),
        token,
        Arc::new(Registered(store.clone())),
    ))
}

/// Registers where this node's API answers, from the address it bound, unless `[store]
/// api_url` says it or the address is a wildcard (the others could not reach it there).
pub(super) async fn register_api(store: &PgStore, bound: SocketAddr) {
    if store.api_url().is_some() || bound.ip().is_unspecified() {
        if store.api_url().is_none() {
            tracing::warn!(%bound, "the API listens on a wildcard address: set [store] api_url so the other nodes can gather this node's query log");
        }
        return;
    }
    if let Err(error) = store.set_api_url(format!("http://{bound}")).await {
        tracing::warn!(%error, "cannot register this node's API address yet; registered when the database answers");
    }
}
