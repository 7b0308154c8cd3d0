//! The published lists' cache: `GET /api/v1/publish/{format}`.
//!
//! Rendering a merged list of a million names takes a while and every mirror polls it, so each
//! format is rendered once per compiled policy ([`crate::publish::render`]) and the shared
//! buffer served until the policy's generation changes.

use std::sync::Arc;

use super::{Registry, lock};
use crate::publish::{self, PublishFormat, Published};

impl Registry {
    /// `GET /api/v1/publish/{format}`: rendered once per compiled policy, then cached.
    pub fn publish(&self, format: PublishFormat) -> Arc<Published> {
        let compiled = self.loader.compiled();
        if let Some(p) = lock(&self.published).get(&format)
            && p.generation == compiled.generation
        {
            return p.clone();
        }
        let p = Arc::new(publish::render(&compiled, format));
        lock(&self.published).insert(format, p.clone());
        p
    }
}
