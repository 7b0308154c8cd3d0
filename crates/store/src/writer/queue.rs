//! Admission: the [`Sink`] the DNS path feeds. `submit` never blocks and never allocates.
//!
//! * ordinary query events take a slot in a bounded budget (`queue_capacity`); when it is
//!   exhausted the event is dropped and counted (`poolguard_log_rows_dropped_total`).
//! * hits (`Outcome::is_hit`) bypass the budget: they are evidence. They share the same
//!   unbounded lock-free channel (std `mpsc`, a crossbeam-style list channel whose `send`
//!   never blocks), so hits stay in order with the rest and cost nothing extra. Their memory
//!   is bounded by `queue_capacity` hits plus one replay slice's arrivals (see
//!   `Writer::divert_when_flooded`).
//! * a saturated DNS worker may not send ordinary events at all (`Sink::shed`, counted), and
//!   flags the saturation so the writer yields the core (`super::pressure`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;

use super::{Msg, WriterHealth};
use poolguard_config::StoreConfig;
use poolguard_record::{QueryEvent, Sink};

/// The [`Sink`] the DNS path's `Recorder` feeds. Never blocks.
pub struct QueueSink {
    tx: Sender<Msg>,
    capacity: usize,
    log_queries: bool,
    shed_when_saturated: bool,
    defer_hits_when_saturated: bool,
    health: Arc<WriterHealth>,
}

impl QueueSink {
    /// The sink feeding the writer behind `tx`, with `cfg`'s budget and shedding choices.
    pub(super) fn new(tx: Sender<Msg>, cfg: &StoreConfig, health: Arc<WriterHealth>) -> Self {
        Self {
            tx,
            capacity: cfg.queue_capacity,
            log_queries: cfg.log_queries,
            shed_when_saturated: cfg.shed_when_saturated,
            defer_hits_when_saturated: cfg.defer_hits_when_saturated,
            health,
        }
    }

    fn count_drop(&self) {
        self.health.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("poolguard_log_rows_dropped_total").increment(1);
    }
}

impl Sink for QueueSink {
    fn accepts(&self, outcome: poolguard_record::Outcome) -> bool {
        self.log_queries || outcome.is_hit()
    }

    fn may_shed(&self) -> bool {
        self.shed_when_saturated
    }

    fn saturated(&self) {
        // Read first: while the flag is already set this is a shared cache line, not a write.
        if self.defer_hits_when_saturated && !self.health.dns_saturated.load(Ordering::Relaxed) {
            self.health.dns_saturated.store(true, Ordering::Relaxed);
        }
    }

    fn shed(&self) {
        self.health.shed.fetch_add(1, Ordering::Relaxed);
        self.health.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("poolguard_log_rows_dropped_total", "reason" => "dns_saturated")
            .increment(1);
    }

    fn submit(&self, event: QueryEvent) -> bool {
        if event.outcome.is_hit() {
            self.health.hits_queued.fetch_add(1, Ordering::Relaxed);
            if self.tx.send(Msg::Event(event)).is_err() {
                // Only after shutdown: there is no writer left to take it.
                self.health.hits_queued.fetch_sub(1, Ordering::Relaxed);
                self.count_drop();
                return false;
            }
            return true;
        }
        if !self.log_queries {
            // Not wanted by configuration; not a drop.
            return true;
        }
        if self.health.queued.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.health.queued.fetch_sub(1, Ordering::Relaxed);
            self.count_drop();
            return false;
        }
        if self.tx.send(Msg::Event(event)).is_err() {
            self.health.queued.fetch_sub(1, Ordering::Relaxed);
            self.count_drop();
            return false;
        }
        true
    }
}
