//! Flushing: what one flush writes, in which order, and what a failed write leaves behind.
//!
//! A flush writes a time-boxed slice of the backlog first (the oldest hits; `super::backlog`),
//! then the held batch in one transaction (`super::batch`). When SQLite refuses, the batch's
//! hits move to the backlog and its ordinary rows wait for the retry within the usual budget
//! (`super::pressure`); nothing here blocks the DNS path.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::batch::write_batch;
use super::{Writer, now_ms};
use crate::StoreError;

impl Writer {
    /// Writes the held batch in one transaction and records the outcome; false when SQLite
    /// refused it (the rows stay held).
    pub(super) fn write_held_batch(&mut self) -> bool {
        match write_batch(
            &mut self.conn,
            &self.batch,
            self.who.parts(),
            self.cfg.log_queries,
            self.tracker.as_deref(),
            (&mut self.known, &self.hour_names),
            None,
        ) {
            Ok(written) => {
                self.batch.clear();
                self.record_success(written);
                true
            }
            Err(e) => {
                self.record_failure(&e, self.batch.len());
                false
            }
        }
    }

    /// Flushes, retrying a few times on transient errors (busy, full disk being cleaned).
    /// A replay that keeps committing is not a failed attempt: it runs to the end.
    pub(super) fn flush_until_done(&mut self) {
        let mut attempt = 0u32;
        while attempt < 5 {
            let before = self.commits;
            let spooled = self.health.hits_spooled.load(Ordering::Relaxed);
            self.flush();
            // Hits deferred to the spool are progress too: the next round indexes them.
            let deferred = self.health.hits_spooled.load(Ordering::Relaxed) > spooled;
            // An explicit flush wants every hit indexed before it returns: what the first
            // round deferred is replayed by the next, saturated or not; and the hold ends
            // here, so hits after it are indexed unless a worker reports saturation again.
            self.saturated_until = None;
            self.force_index = true;
            if self.batch.is_empty() && self.backlog.is_empty() {
                self.force_index = false;
                return;
            }
            if self.commits > before || deferred {
                continue;
            }
            attempt += 1;
            std::thread::sleep(Duration::from_millis(50 * u64::from(attempt)));
        }
        self.force_index = false;
        tracing::error!(
            rows = self.batch.len(),
            spool_bytes = self.backlog.spool().pending_bytes(),
            held = self.backlog.held(),
            "store writer could not write; rows kept for the next try"
        );
    }

    /// Writes what is due: first a slice of the backlog (oldest hits), then the batch. Returns
    /// false when SQLite refused a write this time.
    pub(super) fn flush(&mut self) -> bool {
        self.yield_to_dns();
        if self.defers_hits() {
            // The worker needs the core: this batch's hits go to the spool (durable at once)
            // and are indexed by a later flush, once the worker has room.
            let before = self.health.hits_spooled.load(Ordering::Relaxed);
            self.spool_hits();
            let deferred = self.health.hits_spooled.load(Ordering::Relaxed) - before;
            metrics::counter!("poolguard_store_hits_deferred_total").increment(deferred);
        } else if !self.backlog.is_empty() {
            // New hits queue behind those already waiting, so SQLite gets them in order.
            self.spool_hits();
            if !self.replay() {
                self.shed_ordinary_rows();
                return false;
            }
        }
        if self.batch.is_empty() || self.write_held_batch() {
            return true;
        }
        self.spool_hits();
        self.shed_ordinary_rows();
        false
    }

    /// Counts a committed transaction (a batch or a replayed chunk) and its rows.
    pub(super) fn record_success(&mut self, (queries, hits): (u64, u64)) {
        self.commits += 1;
        self.health
            .queries_written
            .fetch_add(queries, Ordering::Relaxed);
        self.health.hits_written.fetch_add(hits, Ordering::Relaxed);
        self.health.consecutive_failures.store(0, Ordering::Relaxed);
        self.health.last_write_ms.store(now_ms(), Ordering::Relaxed);
        self.publish_oldest();
        metrics::counter!("poolguard_log_rows_written_total", "table" => "queries")
            .increment(queries);
        metrics::counter!("poolguard_log_rows_written_total", "table" => "hits").increment(hits);
        metrics::gauge!("poolguard_store_queue_depth")
            .set(self.health.queued.load(Ordering::Relaxed) as f64);
    }

    /// Counts a refused write; what the rolled-back transaction taught the writer is forgotten.
    pub(super) fn record_failure(&mut self, e: &StoreError, rows: usize) {
        // A rolled-back batch may have removed rows these remember; the store re-teaches them.
        self.known.forget();
        if let Some(t) = &self.tracker {
            t.batch_failed();
        }
        let failures = self
            .health
            .consecutive_failures
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        tracing::warn!(error = %e, rows, failures, "store batch failed; will retry");
        if let Ok(mut last) = self.health.last_error.lock() {
            *last = Some(e.to_string());
        }
        metrics::counter!("poolguard_store_write_errors_total").increment(1);
    }
}
