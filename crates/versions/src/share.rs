//! Sharing what the API writes with the other nodes of a group (`[store] backend = "postgres"`).
//!
//! A feed upload, a ledger upload or a token revocation made through one node must be in force
//! on every node. The write paths (`poolguard_feeds::registry`, `poolguard_clients::upload`,
//! the API's token revocation) hand each checked write to a [`Share`] **before** they change
//! anything on disk: when the shared database refuses it, the write is refused and the node's
//! files stay as they were, so a node never serves a list the group does not have. The other
//! nodes pull the shared [`Doc`]s when notified and apply them through the same write paths,
//! without sharing them again.
//!
//! Defined here, at the bottom of the crate graph, because `clients` (the ledger) sits below
//! `feeds` and both keep their histories with this crate; the implementation (PostgreSQL) is
//! wired in by the binary, so neither crate depends on the database crate.

/// What a shared document is about; also the notification payload that announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Feed definitions (`feeds.toml`, as JSON) and the content of feeds written over the API.
    Feeds,
    /// The asset ledger's content.
    Ledger,
    /// Revoked API tokens (one document per revoked token hash).
    Tokens,
}

impl Topic {
    /// The name stored and notified (`pg_notify('poolguard_changes', …)`).
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Feeds => "feeds",
            Topic::Ledger => "ledger",
            Topic::Tokens => "tokens",
        }
    }
}

/// One shared document: the newest content of `name` under `topic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// What it is about.
    pub topic: Topic,
    /// Which document: a feed name, [`DEFS`], [`LEDGER`] or a revoked token's SHA-256.
    pub name: String,
    /// The content as the write path checked it.
    pub content: Vec<u8>,
    /// The API token name that wrote it.
    pub who: String,
    /// What produced it (`upload`, `patch`, `restore`, `delete`, `revoke`, …).
    pub action: String,
}

/// The feed definitions' document name under [`Topic::Feeds`].
pub const DEFS: &str = ".definitions";

/// The asset ledger's document name under [`Topic::Ledger`].
pub const LEDGER: &str = "ledger";

/// Why a write could not be shared; the write is then refused (nothing changed).
#[derive(Debug, thiserror::Error)]
#[error("the shared database did not take the change, nothing was changed: {0}")]
pub struct ShareError(pub String);

/// Where checked writes go before they change the node's files. Blocking: called from the
/// write paths, which run on the blocking pool.
pub trait Share: Send + Sync {
    /// Stores `docs` together (one transaction): all or none.
    fn share(&self, docs: Vec<Doc>) -> Result<(), ShareError>;
}

/// A write path's link to its group: none until [`Sharing::set`] (a lone node), then every
/// [`Sharing::share`] goes to the group. Set once at start, read on every write.
#[derive(Default)]
pub struct Sharing(std::sync::Mutex<Option<std::sync::Arc<dyn Share>>>);

impl Sharing {
    /// Shares every later write through `share`.
    pub fn set(&self, share: std::sync::Arc<dyn Share>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(share);
    }

    /// Hands `docs` to the group; `Ok` at once on a lone node.
    pub fn share(&self, docs: impl FnOnce() -> Vec<Doc>) -> Result<(), ShareError> {
        let group = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match group {
            Some(group) => group.share(docs()),
            None => Ok(()),
        }
    }
}
