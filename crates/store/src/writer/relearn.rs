//! The writer's side of late identity (`crate::relearn`): when the identity index changed,
//! the hits of the last day that nobody could name are looked up again, in one transaction
//! between batches.

use std::time::{Duration, Instant};

use super::{Writer, now_ms};
use crate::StoreError;
use crate::relearn::{self, WINDOW_MS};

/// At most one sweep this often (each decodes the last day's hit blocks).
pub(super) const RELEARN_EVERY: Duration = Duration::from_secs(5);

/// Which index generation was swept last, and when the next sweep may run.
#[derive(Debug)]
pub(super) struct Relearning {
    swept: u64,
    due: Instant,
}

impl Default for Relearning {
    fn default() -> Self {
        Self {
            swept: 0,
            due: Instant::now(),
        }
    }
}

impl Writer {
    /// Sweeps when the index moved since the last sweep and one is due. Only where incidents
    /// are tracked here: under the postgres backend the group's copy of the hits is the
    /// evidence (not re-attributed yet: docs/IDENTITY.md).
    pub(super) fn relearn(&mut self) {
        let Some(index) = self.identities.get().cloned() else {
            return;
        };
        let generation = index.generation();
        let now = Instant::now();
        if self.tracker.is_none()
            || generation == self.relearning.swept
            || now < self.relearning.due
        {
            return;
        }
        self.relearning = Relearning {
            swept: generation,
            due: now + RELEARN_EVERY,
        };
        let ledger = self.ledger.load();
        let who = crate::writer::Attribution {
            ledger: &ledger,
            identities: Some(&index),
            exempt: self.exempt.get().map(|e| &**e),
        };
        let done = (|| -> Result<(u64, usize), StoreError> {
            let tx = self.conn.unchecked_transaction()?;
            let t = now_ms();
            let learned = relearn::sweep(&tx, &who, t - WINDOW_MS)?;
            let mut incidents = 0;
            for l in &learned {
                incidents += usize::from(relearn::tell_incident(&tx, l, t)?.is_some());
            }
            tx.commit()?;
            Ok((learned.iter().map(|l| l.hits).sum(), incidents))
        })();
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
