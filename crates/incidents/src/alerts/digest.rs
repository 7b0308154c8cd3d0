//! Digest mode (`digest_minutes` on a people channel): at most one message per channel per
//! window. The first event after a quiet window goes out at once; the events that follow
//! within the window are held and sent as one summary when it ends, so a burst of incidents
//! (a lab of 40 machines infected at once) is one message, not forty.
//!
//! Time is the [`crate::Clock`]'s, so tests move it by hand; the delivery task checks the
//! windows on every event and once a second.

use super::AlertEvent;

/// Events held per channel, at most; beyond this the summary counts them only.
const MAX_HELD: usize = 500;

/// One channel's window.
#[derive(Debug, Default)]
struct Window {
    /// When its last message went out.
    last_sent_ms: Option<i64>,
    held: Vec<AlertEvent>,
    /// Held beyond [`MAX_HELD`].
    overflow: usize,
}

/// A summary due: the channel (by index) and the events it summarises.
#[derive(Debug)]
pub struct Due {
    pub channel: usize,
    pub events: Vec<AlertEvent>,
    /// Events held beyond those listed.
    pub more: usize,
}

/// Every channel's window, by channel index; `window_ms[i] == 0` = no digest for channel i.
#[derive(Debug)]
pub struct Digests {
    window_ms: Vec<i64>,
    windows: Vec<Window>,
}

impl Digests {
    /// For channels whose windows are `window_ms` (0 = off).
    pub fn new(window_ms: Vec<i64>) -> Self {
        let windows = window_ms.iter().map(|_| Window::default()).collect();
        Self { window_ms, windows }
    }

    /// Whether channel `i` sends `event` now (true), or holds it for the summary (false).
    pub fn offer(&mut self, i: usize, event: &AlertEvent, now_ms: i64) -> bool {
        let (Some(&window), Some(w)) = (self.window_ms.get(i), self.windows.get_mut(i)) else {
            return true;
        };
        if window <= 0 {
            return true;
        }
        let quiet = w
            .last_sent_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= window);
        if quiet && w.held.is_empty() {
            w.last_sent_ms = Some(now_ms);
            return true;
        }
        if w.held.len() < MAX_HELD {
            w.held.push(event.clone());
        } else {
            w.overflow += 1;
        }
        false
    }

    /// Events held now, over every channel (the `poolguard_alerts_held` gauge).
    pub fn held(&self) -> usize {
        self.windows.iter().map(|w| w.held.len() + w.overflow).sum()
    }

    /// The summaries whose window ended by `now_ms` (`all`: every held event, at shutdown).
    pub fn due(&mut self, now_ms: i64, all: bool) -> Vec<Due> {
        let mut out = Vec::new();
        for (i, w) in self.windows.iter_mut().enumerate() {
            let window = self.window_ms.get(i).copied().unwrap_or(0);
            let ended = w
                .last_sent_ms
                .is_none_or(|t| now_ms.saturating_sub(t) >= window);
            if w.held.is_empty() || !(ended || all) {
                continue;
            }
            w.last_sent_ms = Some(now_ms);
            out.push(Due {
                channel: i,
                events: std::mem::take(&mut w.held),
                more: std::mem::take(&mut w.overflow),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn ev(id: i64) -> AlertEvent {
        AlertEvent::incident("incident.opened", id, "10.0.0.1", 0)
    }

    #[test]
    fn first_goes_at_once_the_rest_in_one_summary_per_window() {
        let mut d = Digests::new(vec![10 * MIN, 0]);
        assert!(d.offer(0, &ev(1), 0));
        assert!(!d.offer(0, &ev(2), MIN));
        assert!(!d.offer(0, &ev(3), 2 * MIN));
        assert!(d.offer(1, &ev(2), MIN), "no digest on channel 1");
        assert!(d.due(9 * MIN, false).is_empty(), "window not over");
        let due = d.due(10 * MIN, false);
        assert_eq!(due.len(), 1);
        let ids: Vec<_> = due[0].events.iter().map(|e| e.incident_id).collect();
        assert_eq!(ids, [Some(2), Some(3)]);
        // The summary started a new window: the next event waits for it.
        assert!(!d.offer(0, &ev(4), 11 * MIN));
        assert!(d.due(19 * MIN, false).is_empty());
        assert_eq!(
            d.due(19 * MIN, true).len(),
            1,
            "shutdown sends what is held"
        );
        // After a quiet window, at once again.
        assert!(d.offer(0, &ev(5), 40 * MIN));
    }
}
