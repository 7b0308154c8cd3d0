//! Whether a DNS worker is keeping up with its UDP socket.
//!
//! The UDP loop reads up to [`crate::mmsg::SLOTS`] datagrams per `recvmmsg`. A full batch
//! means more were already waiting; [`SATURATED_AFTER`] full batches in a row mean the socket
//! queue has stayed deep (≥ 256 datagrams) for a while: the worker is overloaded, not just
//! meeting a burst. While it is, the query log yields (ordinary events are shed, see
//! [`poolguard_record::Recorder::admits`]) so logging never costs answers. A closed-loop load
//! generator with 100 outstanding queries (../shared/bench) never fills more than three
//! batches in a row, so benchmarks measure full logging; a flood beyond capacity does.
//! One relaxed atomic per receive batch; one load per query.

use std::sync::atomic::{AtomicU32, Ordering};

/// Consecutive full receive batches after which a worker counts as saturated.
pub const SATURATED_AFTER: u32 = 8;

/// One worker's saturation state, shared by its UDP loops, fast path and handler.
#[derive(Debug, Default)]
pub struct Load {
    full_in_a_row: AtomicU32,
}

impl Load {
    /// Records a receive batch of `received` datagrams out of `slots` possible.
    #[inline]
    pub fn observe(&self, received: usize, slots: usize) {
        if received >= slots {
            let n = self.full_in_a_row.load(Ordering::Relaxed);
            if n < SATURATED_AFTER {
                self.full_in_a_row.store(n + 1, Ordering::Relaxed);
            }
        } else if self.full_in_a_row.load(Ordering::Relaxed) != 0 {
            self.full_in_a_row.store(0, Ordering::Relaxed);
        }
    }

    /// Whether the socket queue has stayed deep for [`SATURATED_AFTER`] batches.
    #[inline]
    pub fn saturated(&self) -> bool {
        self.full_in_a_row.load(Ordering::Relaxed) >= SATURATED_AFTER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_sustained_deep_queue_is_saturation() {
        let load = Load::default();
        for _ in 0..SATURATED_AFTER - 1 {
            load.observe(32, 32);
        }
        assert!(!load.saturated(), "a burst is not saturation");
        load.observe(32, 32);
        assert!(load.saturated());
        load.observe(32, 32);
        assert!(load.saturated());
        load.observe(3, 32);
        assert!(!load.saturated(), "one short batch ends it");
        load.observe(32, 32);
        assert!(!load.saturated());
    }
}
