//! The open incidents the tracker has written, so a client's next batch skips the lookup.
//!
//! Why it is safe to remember them: the tracker is the only writer of an incident's hit
//! columns (`last_hit_ms`, `hit_count`, `severity`, `feeds`, `categories`, `name_count`,
//! `enforced_ms`), so what it wrote last is what the row holds. The one change made elsewhere
//! is staff closing the incident through the API; the tracker folds hits into a remembered
//! incident with `FoldGuard::OpenOnly`, so one that was closed takes nothing and is
//! looked up again (see `Tracker::track`). After any failed batch or savepoint the whole map
//! is forgotten, since a rollback may have undone what it remembers.

use std::collections::HashMap;

use foldhash::fast::FixedState;

use poolguard_store::hook::TrackedIncident;

/// Incidents remembered before the map is cleared (each costs its key and lists, ~100 B).
const MAX_OPEN: usize = 1 << 14;

/// An open incident as the tracker last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIncident {
    /// Its id, lists and enforcement, as last written.
    pub tracked: TrackedIncident,
    /// A hit time at which its key's incidents within the repeat-offender window were found
    /// below the threshold. While an incident is open no other incident of its key can open,
    /// so that count can only fall as the window slides: it stays below for every later hit.
    pub incidents_below_at: Option<i64>,
}

impl From<TrackedIncident> for OpenIncident {
    fn from(tracked: TrackedIncident) -> Self {
        Self {
            tracked,
            incidents_below_at: None,
        }
    }
}

/// Open incidents by client key, bounded.
#[derive(Debug, Default)]
pub struct OpenIncidents {
    by_key: HashMap<String, OpenIncident, FixedState>,
}

impl OpenIncidents {
    /// Takes the remembered incident of `key` out (the caller puts it back once written).
    pub fn take(&mut self, key: &str) -> Option<OpenIncident> {
        self.by_key.remove(key)
    }

    /// Remembers `incident` as the open incident of `key`.
    pub fn put(&mut self, key: &str, incident: OpenIncident) {
        if self.by_key.len() >= MAX_OPEN && !self.by_key.contains_key(key) {
            // Forgetting costs one lookup per client on its next batch, nothing more.
            self.by_key.clear();
        }
        self.by_key.insert(key.to_string(), incident);
    }

    /// The remembered incident of `key`, to record what the repeat-offender check found.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut OpenIncident> {
        self.by_key.get_mut(key)
    }

    /// Forgets everything (after a rollback).
    pub fn clear(&mut self) {
        self.by_key.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(id: i64) -> OpenIncident {
        OpenIncident::from(TrackedIncident {
            id,
            feeds: "mining".into(),
            categories: "mining".into(),
            enforced: false,
        })
    }

    #[test]
    fn take_returns_what_was_put_once() {
        let mut open = OpenIncidents::default();
        open.put("ip:10.0.0.1", incident(7));
        assert_eq!(open.take("ip:10.0.0.1"), Some(incident(7)));
        assert_eq!(open.take("ip:10.0.0.1"), None);
    }

    #[test]
    fn the_map_is_bounded() {
        let mut open = OpenIncidents::default();
        for i in 0..(MAX_OPEN as i64 + 10) {
            open.put(&format!("ip:{i}"), incident(i));
        }
        assert!(open.by_key.len() <= MAX_OPEN);
        // The newest is always kept; a key already present is replaced, never a reason to clear.
        let last = format!("ip:{}", MAX_OPEN as i64 + 9);
        assert!(open.get_mut(&last).is_some());
        let before = open.by_key.len();
        open.put(&last, incident(1));
        assert_eq!(open.by_key.len(), before);
    }
}
