//! A feed's kept versions: list them, read one, roll back to one.
//!
//! Each feed's history is its own directory, `blocklists/.poolguard/versions/<name>/`
//! ([`crate::versions`]); a rollback is an ordinary write of the old content, so it is kept as
//! a new version and can itself be undone.

use super::{Registry, RegistryError, WriteReport, lock};
use crate::versions::{Version, Versions};
use poolguard_config::valid_feed_name;

impl Registry {
    /// The history of feed `name`.
    pub(super) fn versions(&self, name: &str) -> Versions {
        Versions::new(self.state_dir.join("versions").join(name))
    }

    /// `GET /feeds/{name}/versions`, newest first.
    pub fn versions_of(&self, name: &str) -> Result<Vec<Version>, RegistryError> {
        if !valid_feed_name(name) {
            return Err(RegistryError::BadName(name.to_string()));
        }
        Ok(self.versions(name).list()?)
    }

    /// `GET /feeds/{name}/versions/{id}`: the content.
    pub fn version_content(&self, name: &str, id: u64) -> Result<Vec<u8>, RegistryError> {
        if !valid_feed_name(name) {
            return Err(RegistryError::BadName(name.to_string()));
        }
        self.versions(name)
            .content(id)?
            .map(|(_, b)| b)
            .ok_or_else(|| RegistryError::NotFound(format!("feed `{name}` has no version {id}")))
    }

    /// `POST /feeds/{name}/versions/{id}/restore`: makes version `id` the content in force
    /// (as a new version, so the restore itself can be undone).
    pub fn restore(&self, name: &str, id: u64, who: &str) -> Result<WriteReport, RegistryError> {
        let content = self.version_content(name, id)?;
        let mut defs = lock(&self.defs);
        let feed = self.find(name)?;
        self.write(&mut defs, &feed, &content, who, "restore", true)
    }
}
