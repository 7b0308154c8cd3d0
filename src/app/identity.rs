//! Starting the `[identity]` sources: the index every hit is attributed through, fed by the
//! lease files (read whole here, then followed) and the RADIUS accounting listener.

use std::time::Duration;

use poolguard_config::Config;
use poolguard_identity::sources::{self, IdentitySources};
use poolguard_identity::{IdentityIndex, SharedIdentities};

use super::AppError;

/// The index and its running sources.
pub(super) struct Identities {
    pub(super) index: SharedIdentities,
    pub(super) sources: IdentitySources,
}

/// Starts every configured source; None when `[identity]` has none and the node is alone
/// (hits are then attributed by the ledger alone, as before). A node of a group keeps an
/// index even without sources of its own: the other nodes' holdings arrive in it.
pub(super) async fn start_identity(config: &Config) -> Result<Option<Identities>, AppError> {
    if !config.identity.any() && !super::shared::is_shared(config) {
        return Ok(None);
    }
    let index = IdentityIndex::shared();
    // Holdings are evidence: kept as long as the hits they attribute.
    let retain = Duration::from_secs(u64::from(config.store.hit_retention_days) * 86_400);
    let sources = sources::start(
        &config.identity,
        &|p| config.resolve(p),
        index.clone(),
        retain,
    )
    .await?;
    let stats = index.stats();
    tracing::info!(
        addresses = stats.addresses,
        holdings = stats.intervals,
        "identity sources started"
    );
    Ok(Some(Identities { index, sources }))
}
