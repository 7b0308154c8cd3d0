//! Repeat offenders: at the end of each batch, every touched incident's client is checked
//! against the `[enforcement]` thresholds and marked, quarantined and announced when over.

use poolguard_store::StoreError;
use poolguard_store::hook::IncidentTx;

use super::{AlertEvent, Memory, Pending, Touched, Tracker};
use crate::config::EnforcementMode;

impl Tracker {
    /// End of batch: repeat-offender thresholds for every touched incident.
    pub fn check_batch(
        &self,
        tx: &dyn IncidentTx,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        if self.acc.enforcement.mode == EnforcementMode::Off {
            return Ok(());
        }
        let mut memory = self.memory();
        let mark = pending.mark();
        let result = self.check_offenders(tx, pending, &mut memory);
        if result.is_err() {
            // Rolled back by the caller: the windows and flags may describe undone rows, and
            // no quarantine or alert of this step may be published.
            memory.forget();
            pending.rollback(mark);
        }
        result
    }

    fn check_offenders(
        &self,
        tx: &dyn IncidentTx,
        pending: &mut Pending,
        memory: &mut Memory,
    ) -> Result<(), StoreError> {
        let enf = &self.acc.enforcement;
        let window_ms = enf.hits_window.ms();
        if enf.hits_threshold > 0 {
            for &(ip, t) in &pending.hit_times {
                memory.windows.add(ip, t, window_ms);
            }
        }
        for touched in &pending.touched {
            let &Touched {
                id,
                ip,
                time_ms: t,
                enforced,
                incidents_below_at,
                ..
            } = touched;
            if enforced || self.acc.quarantine.contains(ip) {
                continue;
            }
            let count_incidents = enf.incidents_threshold > 0
                && !matches!(incidents_below_at, Some(below) if t >= below);
            let incidents: i64 = if count_incidents {
                tx.incidents_opened_since(&touched.key, t - enf.incidents_window.ms())?
            } else {
                0
            };
            let hits = if enf.hits_threshold > 0 {
                memory.windows.count(tx, ip, t, window_ms)?
            } else {
                0
            };
            let reason = if count_incidents && incidents >= i64::from(enf.incidents_threshold) {
                format!(
                    "{incidents} incidents within {} (threshold {})",
                    humantime::format_duration(enf.incidents_window.0),
                    enf.incidents_threshold
                )
            } else if enf.hits_threshold > 0 && hits >= u64::from(enf.hits_threshold) {
                format!(
                    "{hits} hits within {} (threshold {})",
                    humantime::format_duration(enf.hits_window.0),
                    enf.hits_threshold
                )
            } else {
                if count_incidents && let Some(open) = memory.open.get_mut(&touched.key) {
                    open.incidents_below_at = Some(t);
                }
                continue;
            };
            let applied = enf.mode == EnforcementMode::Quarantine;
            let marked = tx.mark_enforced(id, t)?;
            if let Some(open) = memory.open.get_mut(&touched.key) {
                open.tracked.enforced = true;
            }
            if !marked {
                // Another node's shipper enforced it first: its quarantine, note and alert
                // are the group's; one `quarantine.on` per incident, not one per node.
                continue;
            }
            let ip_text = ip.to_string();
            let note = if applied {
                tx.quarantine(ip, t, &reason, id)?;
                pending.quarantined.push(ip);
                format!("Repeat offender: {reason}. {ip_text} quarantined (walled garden).")
            } else {
                format!("Repeat offender: {reason}. Notify mode: {ip_text} not quarantined.")
            };
            tx.add_system_note(id, t, &note)?;
            let mut ev = AlertEvent::incident("quarantine.on", id, &ip_text, t);
            ev.detail = serde_json::json!({ "reason": reason, "applied": applied });
            pending.alerts.push(ev);
            tracing::info!(incident = id, client = %ip, applied, %reason, "repeat offender");
        }
        Ok(())
    }
}
