//! The feeds a group of nodes shares (`[store] backend = "postgres"`): what a maintainer
//! writes through one node is handed to the group before it changes this node's files, and
//! what another node wrote is applied here through the same write path.
//!
//! Shared are the definitions (`feeds.toml`, as JSON: feeds created over the API and
//! overrides of `config.toml` feeds) and the content of every feed written over the API
//! (upload, entry patch, restore). Subscriptions are not: every node fetches its own. The
//! node's files stay its working copy, so a node restarted while the database is down serves
//! its last lists; applying content another node wrote goes through
//! `Registry::write` (parse, refuse unusable content, version, swap the policy in
//! whole), so a broken document never replaces the last good list.

use std::sync::Arc;

use super::definitions::Defs;
use super::{Registry, RegistryError, lock};
use crate::loader::feed_file;
use crate::versions::sha256_hex;
use crate::versions::share::{DEFS, Doc, Share, Topic};

impl Registry {
    /// Hands every later maintainer write to `share` before it changes anything here.
    pub fn share_with(&self, share: Arc<dyn Share>) {
        self.share.set(share);
    }

    /// Shares the definitions `defs` (a delete, an enable or disable).
    pub(super) fn share_defs(
        &self,
        defs: &Defs,
        who: &str,
        action: &str,
    ) -> Result<(), RegistryError> {
        let doc = defs_doc(defs, who, action)?;
        Ok(self.share.share(|| vec![doc])?)
    }

    /// Shares feed `name`'s new content with the definitions (a new feed exists for the
    /// others only with both).
    pub(super) fn share_content(
        &self,
        defs: &Defs,
        name: &str,
        content: &[u8],
        who: &str,
        action: &str,
    ) -> Result<(), RegistryError> {
        let defs = defs_doc(defs, who, action)?;
        let feed = Doc {
            topic: Topic::Feeds,
            name: name.to_string(),
            content: content.to_vec(),
            who: who.to_string(),
            action: action.to_string(),
        };
        Ok(self.share.share(|| vec![defs, feed])?)
    }

    /// Applies the group's feed documents (another node's writes): the definitions, then every
    /// feed whose content differs from this node's file, each through the one write path
    /// without sharing it again. A document that does not parse is logged and skipped; the
    /// list in force stays. Returns how many feeds were rewritten.
    pub fn apply_shared(&self, docs: &[Doc]) -> Result<usize, RegistryError> {
        let mut defs = lock(&self.defs);
        let mut changed = false;
        if let Some(doc) = docs.iter().find(|d| d.name == DEFS) {
            let mut shared: Defs =
                serde_json::from_slice(&doc.content).map_err(|e| RegistryError::Io {
                    path: self.state_dir.join("feeds.toml"),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
                })?;
            shared.localise(&self.config);
            if defs_text(&shared) != defs_text(&defs) {
                self.save_defs(&shared)?;
                *defs = shared;
                self.set_feeds(&defs);
                changed = true;
            }
        }
        let mut written = 0;
        for doc in docs.iter().filter(|d| d.name != DEFS) {
            let found = self
                .loader
                .feed_configs()
                .iter()
                .find(|f| f.name == doc.name && f.url.is_none())
                .cloned();
            let Some(feed) = found else { continue };
            let Some(path) = feed_file(&self.config, &feed) else {
                continue;
            };
            let here = std::fs::read(&path).ok().map(|b| sha256_hex(&b));
            if here.as_deref() == Some(sha256_hex(&doc.content).as_str()) {
                continue;
            }
            match self.write(&mut defs, &feed, &doc.content, &doc.who, &doc.action, false) {
                Ok(_) => written += 1,
                Err(error) => {
                    tracing::warn!(feed = %doc.name, %error, "a feed written through another node was not applied; the list in force stays")
                }
            }
        }
        if changed && written == 0 {
            self.loader.reload();
        }
        if changed || written > 0 {
            tracing::info!(
                feeds = written,
                definitions = changed,
                "applied feed changes made through another node"
            );
        }
        Ok(written)
    }
}

/// The definitions as a shared document.
fn defs_doc(defs: &Defs, who: &str, action: &str) -> Result<Doc, RegistryError> {
    let content = serde_json::to_vec(defs).map_err(|e| RegistryError::Io {
        path: DEFS.into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(Doc {
        topic: Topic::Feeds,
        name: DEFS.to_string(),
        content,
        who: who.to_string(),
        action: action.to_string(),
    })
}

/// A comparable spelling of the definitions.
fn defs_text(defs: &Defs) -> String {
    serde_json::to_string(defs).unwrap_or_default()
}
