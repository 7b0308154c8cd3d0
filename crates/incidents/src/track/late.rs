//! Late hits: replayed from the spool after staff closed the incident they belong to.

use poolguard_store::StoreError;
use poolguard_store::hook::{FoldGuard, HitRow, IncidentTx};

use super::fold::{Batch, Folded, record_names};
use super::{Memory, Pending, Tracker};

impl Tracker {
    /// A replayed batch may hold hits of a key without an open incident that are stamped before
    /// its latest incident was closed: deferred to the spool under load, replayed after staff
    /// closed it. Those happened during the closed incident, so they are added to it (with a
    /// note for staff) and never open a new one; an incident's evidence is its key's hits from
    /// its first to its last, so they show there. Returns the hits left to open an incident
    /// with. Only replayed batches: a fresh hit is never late, whatever the clocks say.
    pub(super) fn attach_late<'h>(
        &self,
        tx: &dyn IncidentTx,
        key: &str,
        group: Vec<&'h HitRow>,
        batch: &Batch<'_>,
        memory: &mut Memory,
        pending: &mut Pending,
    ) -> Result<Vec<&'h HitRow>, StoreError> {
        let Batch { events, feeds, .. } = *batch;
        let Some(closed) = tx.latest_closed_incident(key)? else {
            return Ok(group);
        };
        let (incident, closed_ms) = (closed.incident, closed.closed_ms);
        let (late, current): (Vec<&HitRow>, Vec<&HitRow>) = group
            .into_iter()
            .partition(|h| events[h.index].time_ms < closed_ms);
        if late.is_empty() {
            return Ok(current);
        }
        Folded::of(&late, events, feeds, &incident)?.write(
            tx,
            incident.id,
            FoldGuard::EvenClosed,
        )?;
        record_names(tx, incident.id, &late, events, &mut memory.named)?;
        self.owned_by(incident.id, &late, pending);
        let note = format!(
            "{} hit(s) from before this incident was closed arrived late (deferred under load \
             and replayed) and were added to it.",
            late.len()
        );
        tx.add_system_note(incident.id, self.acc.clock.now_ms(), &note)?;
        tracing::info!(incident = incident.id, key = %key, hits = late.len(), "late hits added to a closed incident");
        Ok(current)
    }
}
