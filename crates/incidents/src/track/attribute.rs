//! Committed hits with their incident, for a subscribed hit sink (the syslog exports; see
//! docs/EXPORT.md, "Incident id in hit messages").
//!
//! While the batch's tracking runs, each group's incident id is noted per hit; after the
//! `on_hits` call, whether its tracking succeeded or was rolled back, every hit of the call
//! waits in [`Pending`] with its incident (or none) and goes to the sink after the commit, so
//! a stored hit is handed over exactly once: a batch that does not commit hands over nothing,
//! and its hits come again when the writer stores them (the spool's replay).

use poolguard_record::QueryEvent;
use poolguard_record::lifecycle::AttributedHit;
use poolguard_store::hook::HitRow;

use super::{Pending, Tracker};

impl Tracker {
    /// Notes that incident `id` took the hits of `group` (only while a hit sink is subscribed:
    /// otherwise the tracker's cost per hit stays as it was).
    pub(super) fn owned_by(&self, id: i64, group: &[&HitRow], pending: &mut Pending) {
        if self.hit_sink.is_some() {
            pending.owners.extend(group.iter().map(|h| (h.index, id)));
        }
    }

    /// Every hit of this `on_hits` call with the incident that took it, kept for the commit.
    /// Its feed's category and action are looked up now, in the feeds the tracker knows.
    pub(super) fn attribute(&self, events: &[QueryEvent], hits: &[HitRow], pending: &mut Pending) {
        if self.hit_sink.is_none() {
            return;
        }
        let mut owners = std::mem::take(&mut pending.owners);
        owners.sort_unstable();
        let feeds = self.acc.feeds.load();
        pending.attributed.reserve(hits.len());
        for hit in hits {
            let event = &events[hit.index];
            let incident_id = owners
                .binary_search_by_key(&hit.index, |&(index, _)| index)
                .ok()
                .map(|at| owners[at].1);
            let meta = event.feed.as_deref().and_then(|name| feeds.get(name));
            pending.attributed.push(AttributedHit {
                event: event.clone(),
                category: meta.map(|m| m.category.clone()),
                action: meta.and_then(|m| m.action),
                incident_id,
            });
        }
        // Kept for its capacity: the next batch fills it again.
        owners.clear();
        pending.owners = owners;
    }
}
