//! Alerts: incident and quarantine events to webhooks (HMAC-signed), the DingTalk and WeCom
//! group robots people read ([`channel`]), and syslog.
//!
//! Producers (the store writer, the API, the deadline check) call [`Alerts::emit`], which
//! never blocks: a bounded channel hands the event to [`spawn`]'s task on the control runtime.
//! If the channel is full the event is counted as dropped (`poolguard_alerts_dropped_total`) —
//! alerts are notifications, the evidence itself is in the store. The task posts the JSON body
//! to every subscribed webhook with `X-Poolguard-Signature: sha256=<hex HMAC-SHA256(body)>`,
//! retrying failures (transport errors and non-2xx) with doubling back-off up to
//! `[alerts] max_attempts`; every attempt lands in the delivery log (`GET
//! /api/v1/alerts/deliveries`). With `[alerts] syslog`, each event is also sent once as an
//! RFC 5424 message over UDP. The robots get the same retries and delivery log, with a
//! Markdown message in `[reports] language` ([`message`]); `incident.opened` carries what a
//! person needs to act ([`opened`]).
//!
//! [`Alerts::with_export`] adds the `[[export.syslog]]` receivers that asked for `events` as a
//! subscriber ([`LifecycleSink`], defined in `record` so this crate does not depend on the
//! export crate): every emitted event, and the status changes only the exports take
//! ([`Alerts::export_only`]), go to it too, without waiting.

pub mod bulletin;
pub mod channel;
pub mod digest;
pub mod email;
pub mod message;
pub mod opened;

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::mpsc;

use super::config::AlertsConfig;
use super::{Accountability, db};
use channel::{Channel, Payload};
use poolguard_record::lifecycle::{LifecycleEvent, LifecycleSink};
use poolguard_store::{AlertStore, StoreError};

/// Alerts waiting for the delivery task, at most.
const QUEUE: usize = 4096;
/// Longest back-off between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// One event, as posted (the body is this value as JSON).
#[derive(Debug, Clone, Serialize)]
pub struct AlertEvent {
    /// `incident.opened`, `incident.due_soon`, `incident.overdue`, `quarantine.on`, `quarantine.off`.
    pub event: &'static str,
    /// RFC 3339.
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Event-specific fields (`deadline`, `due`, `reason`, `applied`).
    pub detail: serde_json::Value,
}

impl AlertEvent {
    /// An event about an incident and its client.
    pub fn incident(event: &'static str, id: i64, client: &str, time_ms: i64) -> Self {
        Self {
            event,
            time: poolguard_model::rfc3339(time_ms),
            incident_id: Some(id),
            client: Some(client.to_string()),
            detail: serde_json::Value::Object(Default::default()),
        }
    }

    /// The event as the exports send it: status, actor (`by`, else `system`) and reason
    /// (`reason`, else `resolution`) read from the detail.
    pub fn lifecycle(&self) -> LifecycleEvent {
        let text = |key: &str| {
            self.detail
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        LifecycleEvent {
            event: self.event,
            time: self.time.clone(),
            incident_id: self.incident_id,
            client: self.client.clone(),
            status: text("status"),
            actor: Some(text("by").unwrap_or_else(|| "system".to_string())),
            reason: text("reason").or_else(|| text("resolution")),
        }
    }
}

/// The producers' handle. Cheap to clone; `emit` never blocks.
#[derive(Clone, Default)]
pub struct Alerts {
    tx: Option<mpsc::Sender<AlertEvent>>,
    /// The exports that take incident and quarantine events.
    export: Option<Arc<dyn LifecycleSink>>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("tx", &self.tx)
            .field("export", &self.export.is_some())
            .finish()
    }
}

impl Alerts {
    /// Alerts that go nowhere (no webhook, no syslog configured).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// A handle and the receiver for [`spawn`].
    pub fn channel() -> (Self, mpsc::Receiver<AlertEvent>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Self {
                tx: Some(tx),
                export: None,
            },
            rx,
        )
    }

    /// These alerts, also handed to `export` (the syslog exports' events).
    pub fn with_export(mut self, export: Arc<dyn LifecycleSink>) -> Self {
        self.export = Some(export);
        self
    }

    /// Hands an event to the exports only (incident status changes: webhooks keep their
    /// documented event set).
    pub fn export_only(&self, event: &AlertEvent) {
        if let Some(export) = &self.export {
            export.event(Arc::new(event.lifecycle()));
        }
    }

    /// Hands an event to the delivery task and the exports without blocking.
    pub fn emit(&self, event: AlertEvent) {
        self.export_only(&event);
        let Some(tx) = &self.tx else { return };
        tracing::debug!(event = event.event, incident = ?event.incident_id, "alert queued");
        if tx.try_send(event).is_err() {
            metrics::counter!("poolguard_alerts_dropped_total").increment(1);
            tracing::warn!("alert queue full or closed; alert dropped");
        }
    }
}

/// The HMAC-SHA256 signature header value of `body` under `secret`: `sha256=<hex>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        // HMAC accepts keys of any length; this arm is unreachable in practice.
        Err(_) => String::new(),
    }
}

/// Starts the delivery task on the current (control) runtime. Ends when every sender is gone.
pub fn spawn(
    cfg: AlertsConfig,
    store: Arc<dyn AlertStore>,
    acc: Arc<Accountability>,
    mut rx: mpsc::Receiver<AlertEvent>,
) -> tokio::task::JoinHandle<()> {
    let client = reqwest::Client::builder()
        .timeout(cfg.timeout.0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    let channels = channel::channels(&cfg);
    let mut digests = digest::Digests::new(channels.iter().map(|c| c.digest_ms).collect());
    let cfg = Arc::new(cfg);
    tokio::spawn(async move {
        let send = |ch: &Channel, event: &'static str, incident_id: Option<i64>, payload| {
            // Each delivery retries on its own, so one dead endpoint delays nobody else.
            tokio::spawn(deliver(
                client.clone(),
                cfg.clone(),
                ch.clone(),
                Sent {
                    store: store.clone(),
                    acc: acc.clone(),
                    event,
                    incident_id,
                },
                payload,
            ));
        };
        let flush = |digests: &mut digest::Digests, all: bool| {
            for due in digests.due(acc.clock.now_ms(), all) {
                if let Some(ch) = channels.get(due.channel) {
                    let payload = ch.digest_payload(&due.events, due.more, &acc.reports);
                    send(ch, "digest", None, payload);
                }
            }
            metrics::gauge!("poolguard_alerts_held").set(digests.held() as f64);
        };
        // Digest windows end on the clock: checked once a second.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let event = tokio::select! {
                event = rx.recv() => event,
                _ = tick.tick() => {
                    flush(&mut digests, false);
                    continue;
                }
            };
            let Some(event) = event else {
                // Every sender is gone (shutdown): what digests hold goes out now.
                flush(&mut digests, true);
                return;
            };
            let body = match serde_json::to_vec(&event) {
                Ok(b) => b,
                Err(_) => continue,
            };
            if let Some(addr) = cfg.syslog {
                let d = send_syslog(addr, &event).await;
                log(store.as_ref(), &acc, d).await;
            }
            let now = acc.clock.now_ms();
            for (i, ch) in channels.iter().enumerate() {
                if ch.subscribed(event.event) && digests.offer(i, &event, now) {
                    let payload = ch.payload(&event, &body, &acc.reports);
                    send(ch, event.event, event.incident_id, payload);
                }
            }
            flush(&mut digests, false);
        }
    })
}

/// Where a delivery's attempts are logged, and what they were about.
pub(super) struct Sent {
    pub(super) store: Arc<dyn AlertStore>,
    pub(super) acc: Arc<Accountability>,
    pub(super) event: &'static str,
    pub(super) incident_id: Option<i64>,
}

/// Delivers one payload to one channel with the configured retries, logging each attempt.
pub(super) async fn deliver(
    client: reqwest::Client,
    cfg: Arc<AlertsConfig>,
    ch: Channel,
    sent: Sent,
    payload: Payload,
) {
    let event = sent.event;
    let mut backoff = cfg.retry_backoff.0;
    for attempt in 1..=cfg.max_attempts {
        let now = sent.acc.clock.now_ms();
        let tried = ch.attempt(&client, event, &payload, now).await;
        let (status, error, retry) = (tried.status, tried.error, tried.retry);
        let ok = error.is_none();
        tracing::info!(event, target = %ch.target, attempt, ok, status = ?status, "alert delivery");
        log(
            sent.store.as_ref(),
            &sent.acc,
            db::Delivery {
                id: 0,
                time: String::new(),
                event: event.to_string(),
                target: ch.target.clone(),
                attempt,
                status,
                ok,
                error,
                incident_id: sent.incident_id,
            },
        )
        .await;
        if ok {
            metrics::counter!("poolguard_alerts_delivered_total").increment(1);
            return;
        }
        if !retry {
            // Logged once: the next attempt would fail the same way.
            break;
        }
        if attempt < cfg.max_attempts {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
    metrics::counter!("poolguard_alerts_failed_total").increment(1);
    tracing::warn!(event, target = %ch.target, "alert delivery gave up");
}

async fn log(store: &dyn AlertStore, acc: &Accountability, d: db::Delivery) {
    if let Err(e) = store.log_delivery(d, acc.clock.now_ms()).await {
        tracing::warn!(error = %e, "could not log an alert delivery");
    }
}

/// RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`, facility local0 (16) and
/// severity warning (4), so PRI = 132; the MSG is the alert's JSON.
async fn send_syslog(addr: std::net::SocketAddr, event: &AlertEvent) -> db::Delivery {
    let pri = 16 * 8 + 4;
    let msg = format!(
        "<{pri}>1 {} poolguard poolguard - {} - {}",
        event.time,
        event.event,
        serde_json::to_string(event).unwrap_or_default()
    );
    // A loopback collector is reached from loopback only; otherwise any local address.
    let local: std::net::SocketAddr = match (addr.is_ipv4(), addr.ip().is_loopback()) {
        (true, true) => (std::net::Ipv4Addr::LOCALHOST, 0).into(),
        (true, false) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        (false, true) => (std::net::Ipv6Addr::LOCALHOST, 0).into(),
        (false, false) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let result = async {
        let sock = tokio::net::UdpSocket::bind(local).await?;
        sock.send_to(msg.as_bytes(), addr).await
    }
    .await;
    db::Delivery {
        id: 0,
        time: String::new(),
        event: event.event.to_string(),
        target: format!("syslog://{addr}"),
        attempt: 1,
        status: None,
        ok: result.is_ok(),
        error: result.err().map(|e| e.to_string()),
        incident_id: event.incident_id,
    }
}

/// One pass of the deadline check: emits `incident.due_soon` / `incident.overdue` once per
/// incident and deadline, judged at the clock's now (the store marks what it hands out, so a
/// second pass, or a second node, does not raise them again). Returns how many it raised.
pub async fn check_deadlines(
    store: &dyn AlertStore,
    acc: &Arc<Accountability>,
) -> Result<usize, StoreError> {
    let now = acc.clock.now_ms();
    let soon = acc.incidents.due_soon_before.ms();
    let due = store.claim_deadline_alerts(now, soon).await?;
    let n = due.len();
    for d in due {
        let mut ev = AlertEvent::incident(d.event, d.incident_id, &d.client, now);
        ev.detail = serde_json::json!({
            "deadline": d.deadline,
            "due": poolguard_model::rfc3339(d.due_ms),
            "department": d.department,
            "assignee": d.assignee,
        });
        acc.alerts.emit(ev);
    }
    Ok(n)
}

/// Runs [`check_deadlines`] every `[alerts] check_every` until `stop` is cancelled.
pub fn spawn_deadline_checks(
    store: Arc<dyn AlertStore>,
    acc: Arc<Accountability>,
    every: Duration,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(e) = check_deadlines(store.as_ref(), &acc).await {
                        tracing::warn!(error = %e, "deadline check failed; will retry");
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
