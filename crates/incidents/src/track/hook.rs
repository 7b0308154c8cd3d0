//! The tracker as the store writer's [`BatchHook`]: hits during the transaction, thresholds
//! at its end, publishing (alerts, quarantine, attributed hits) after the commit, forgetting
//! after a failure.

use std::sync::PoisonError;

use poolguard_record::QueryEvent;
use poolguard_store::StoreError;
use poolguard_store::hook::{BatchHook, HitRow, IncidentTx};

use super::Tracker;

impl BatchHook for Tracker {
    fn on_hits(
        &self,
        tx: &dyn IncidentTx,
        events: &[QueryEvent],
        hits: &[HitRow],
        replayed: bool,
    ) -> Result<(), StoreError> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let tracked = self.track_hits(tx, events, hits, replayed, &mut pending);
        // Tracked or rolled back, these hits are stored: each goes to the hit sink once.
        self.attribute(events, hits, &mut pending);
        tracked
    }

    fn end_batch(&self, tx: &dyn IncidentTx) -> Result<(), StoreError> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        self.check_batch(tx, &mut pending)
    }

    fn committed(&self) {
        let pending =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        self.publish(pending);
        if self.shared {
            self.memory().windows.forget();
        }
    }

    fn batch_failed(&self) {
        self.forget_batch();
    }
}
