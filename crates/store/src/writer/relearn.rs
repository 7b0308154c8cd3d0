//! The writer's side of late identity (`crate::relearn`): when the identity index changed,
//! the hits of the last day that nobody could name are looked up again, in one transaction
//! between batches. Under the postgres backend the local blocks are rewritten too (hits not
//! shipped yet then leave with the identity), but the incidents are the group's: the
//! shipper tells them (`poolguard_store_pg::ship`), along with the copy of the hits there.

use std::time::Duration;

use super::{Writer, now_ms};
use crate::StoreError;
use crate::incidents_tx::SqliteIncidentTx;
use crate::relearn::{self, WINDOW_MS};

/// At most one sweep this often (each decodes the last day's hit blocks).
pub(super) const RELEARN_EVERY: Duration = Duration::from_secs(5);

impl Writer {
    /// Sweeps when the index moved since the last sweep and one is due; tells the incidents
    /// only where they are tracked here (not under the postgres backend).
    pub(super) fn relearn(&mut self) {
        let Some(generation) = self.who.index().map(|i| i.generation()) else {
            return;
        };
        if !self.relearning.take(generation) {
            return;
        }
        let tell = self.tracker.is_some();
        let conn = &self.conn;
        let done = self.who.with(|who| -> Result<(u64, usize), StoreError> {
            let tx = conn.unchecked_transaction()?;
            let t = now_ms();
            let learned = relearn::sweep(&tx, who, t - WINDOW_MS)?;
            let mut incidents = 0;
            if tell {
                let itx = SqliteIncidentTx::new(&tx);
                for l in &learned {
                    incidents += usize::from(relearn::tell_incident(&itx, l, t)?.is_some());
                }
            }
            tx.commit()?;
            Ok((learned.iter().map(|l| l.hits).sum(), incidents))
        });
        match done {
            Ok((0, _)) => {}
            Ok((hits, incidents)) => {
                metrics::counter!("poolguard_identity_reattributed_hits_total").increment(hits);
                tracing::info!(hits, incidents, "hits re-attributed: identity learned late");
            }
            Err(error) => tracing::warn!(%error, "re-attributing hits failed; will retry"),
        }
    }
}
