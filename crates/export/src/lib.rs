//! Exports: records that leave the box for the operators' own pipelines (docs/EXPORT.md).
//!
//! dnstap over Frame Streams (`[[export.dnstap]]`), the DNS world's standard event format, to
//! any fstrm receiver (`fstrm_capture`, `dnstap`, a collector like vector or go-dnscollector);
//! and RFC 5424 syslog, one structured message per hit or per query (`[[export.syslog]]`), for SIEMs. Each receiver gets a bounded queue and a connection task; the DNS workers
//! only `try_send` into the queues ([`poolguard_record::exchange::ExportSink`]), so an export can
//! drop (and count) records but never slows or blocks an answer.
//!
//! This crate depends only on `record`, `config`, `clients` (the asset ledger, for identities)
//! and the model's `Action` value type (no store, API or incidents).

pub mod budget;
pub mod cef;
pub mod dnstap;
pub mod events;
pub mod fstrm;
pub mod identity;
pub mod protobuf;
pub mod sink;
pub mod syslog;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use config::{Messages, Select};
use dnstap::Identity;
use poolguard_clients::SharedLedger;
use poolguard_config::Config;
pub use poolguard_config::export as config;
use poolguard_record::Outcome;
use poolguard_record::exchange::{Exchange, ExportSink};
use poolguard_record::lifecycle::{
    AttributedHit, AttributedHitSink, LifecycleEvent, LifecycleSink,
};
use sink::{QueueSink, Settings, Target, Wire};

/// How long shutdown waits for each receiver to take what is queued and FINISH.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// Where the syslog exports take hits from (docs/EXPORT.md, "Incident id in hit messages").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitSource {
    /// From the DNS path, as each is answered: no incident is known then (poolguard runs
    /// without its store, or with `[incidents] enabled = false`).
    Answered,
    /// From the store writer once each batch committed, with the incident every hit was
    /// folded into ([`AttributedHitSink`]; at most a store flush interval later).
    Committed,
}

/// Every configured export, as the DNS path sees it.
pub struct Exporter {
    /// Every receiver, dnstap and syslog alike.
    sinks: Vec<QueueSink>,
    /// Per receiver in `sinks`: (incident events, quarantine events) wanted.
    events: Vec<(bool, bool)>,
    stop: CancellationToken,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Exporter {
    /// Starts a connection task per configured receiver on the current (control) runtime.
    /// `None` when nothing is configured: the DNS path then copies nothing. `ledger` is the
    /// live asset ledger the tasks look clients' identities up in (off the DNS path). `hits`:
    /// where syslog receivers take hits from; with [`HitSource::Committed`] the caller must
    /// subscribe the exporter to the store's committed hits when
    /// [`Exporter::takes_committed_hits`] says so, else those receivers get no hits.
    pub fn start(config: &Config, ledger: &SharedLedger, hits: HitSource) -> Option<Arc<Self>> {
        if config.export.dnstap.is_empty() && config.export.syslog.is_empty() {
            return None;
        }
        let stop = CancellationToken::new();
        let version = format!("poolguard {}", env!("CARGO_PKG_VERSION")).into_bytes();
        let mut sinks = Vec::new();
        let mut events = Vec::new();
        let mut tasks = Vec::new();
        let mut labels = std::collections::HashSet::new();
        for d in &config.export.dnstap {
            let target = match (&d.unix, d.tcp) {
                (Some(path), _) => Target::Unix(config.resolve(path)),
                (None, Some(addr)) => Target::Tcp(addr),
                // Refused by validation.
                (None, None) => continue,
            };
            let wire = Wire::Dnstap {
                identity: Identity::new(
                    d.identity.clone().unwrap_or_else(host_name).as_bytes(),
                    &version,
                ),
                both: d.messages == Messages::Both,
                with_identity: d.include.contains(&config::Include::Identity),
            };
            let settings = Settings {
                label: unique(&mut labels, d.label()),
                select: d.select,
                feeds: d.feeds.clone(),
                categories: d.categories.clone(),
                // dnstap describes DNS messages, not incidents: always as answered.
                committed_hits: false,
                queue_size: d.queue_size,
                reconnect_min_ms: d.reconnect_min_ms,
                reconnect_max_ms: d.reconnect_max_ms,
                write_timeout_ms: d.write_timeout_ms,
                max_per_second: None,
            };
            let (sink, task) =
                QueueSink::new(&settings, target, wire, ledger.clone(), stop.clone());
            sinks.push(sink);
            events.push((false, false));
            tasks.push(tokio::spawn(task));
        }
        for s in &config.export.syslog {
            let target = match (s.udp, s.tcp) {
                (Some(addr), _) => Target::Udp(addr),
                (None, Some(addr)) if s.tls => match tls_target(config, s, addr) {
                    Ok(target) => target,
                    Err(error) => {
                        // Checked by validation; a CA file changed since is reported here.
                        tracing::error!(sink = %s.label(), %error, "syslog export not started");
                        continue;
                    }
                },
                (None, Some(addr)) => Target::Tcp(addr),
                // Refused by validation.
                (None, None) => continue,
            };
            let facility = syslog::facility_code(&s.facility).unwrap_or(16);
            let hostname = s.hostname.clone().unwrap_or_else(host_name);
            let wire = Wire::Syslog(syslog::Header::new(facility, &hostname, s.format));
            let settings = Settings {
                label: unique(&mut labels, s.label()),
                select: s.select,
                feeds: s.feeds.clone(),
                categories: s.categories.clone(),
                committed_hits: hits == HitSource::Committed,
                queue_size: s.queue_size,
                reconnect_min_ms: s.reconnect_min_ms,
                reconnect_max_ms: s.reconnect_max_ms,
                write_timeout_ms: s.write_timeout_ms,
                max_per_second: (s.select == Select::All).then_some(s.max_per_second),
            };
            let (sink, task) =
                QueueSink::new(&settings, target, wire, ledger.clone(), stop.clone());
            sinks.push(sink);
            events.push((
                s.events.contains(&config::SyslogEvent::Incidents),
                s.events.contains(&config::SyslogEvent::Quarantine),
            ));
            tasks.push(tokio::spawn(task));
        }
        Some(Arc::new(Self {
            sinks,
            events,
            stop,
            tasks: std::sync::Mutex::new(tasks),
        }))
    }

    /// Stops every connection: queued exchanges are written, then STOP / FINISH, each receiver
    /// within [`SHUTDOWN_WAIT`]. Call after the DNS listeners stopped.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let tasks = match self.tasks.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => return,
        };
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_WAIT, task).await.is_err() {
                abort.abort();
                tracing::warn!("an export receiver did not finish in time; its queue is lost");
            }
        }
    }
}

impl Drop for Exporter {
    /// A poolguard dropped without shutdown (tests) must not leave tasks reconnecting.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl ExportSink for Exporter {
    fn wants(&self, outcome: Outcome, feed: Option<(&str, &str)>) -> bool {
        self.sinks.iter().any(|d| d.takes_answered(outcome, feed))
    }

    /// Offers `exchange` to every receiver that wants it. The DNS path calls this only after
    /// [`ExportSink::wants`] said yes (`Recorder::export_for`). The usual single receiver gets
    /// it by value; only several share it behind an `Arc` (one more allocation).
    fn submit(&self, exchange: Exchange) {
        let takes = |sink: &QueueSink, e: &Exchange| {
            let feed = e.verdict.as_ref().map(|v| (&*v.feed, &*v.category));
            sink.takes_answered(e.outcome, feed)
        };
        let mut taking = self.sinks.iter().filter(|s| takes(s, &exchange));
        let (Some(first), second) = (taking.next(), taking.next()) else {
            return;
        };
        let Some(second) = second else {
            first.offer(exchange);
            return;
        };
        let rest: Vec<&QueueSink> = taking.collect();
        let shared = Arc::new(exchange);
        for sink in [first, second].into_iter().chain(rest) {
            sink.offer_shared(shared.clone());
        }
    }
}

impl LifecycleSink for Exporter {
    /// Offers an incident or quarantine event to every syslog receiver that asked for its kind.
    fn event(&self, event: Arc<LifecycleEvent>) {
        let quarantine = event.is_quarantine();
        for (sink, &(incidents, quarantines)) in self.sinks.iter().zip(&self.events) {
            if (quarantine && quarantines) || (!quarantine && incidents) {
                sink.offer_event(event.clone());
            }
        }
    }
}

impl AttributedHitSink for Exporter {
    /// Offers each committed hit to every syslog receiver that takes hits from the store and
    /// wants it (`feeds`, `categories`). Runs on the store writer's thread: `try_send` only.
    fn committed(&self, hits: Vec<AttributedHit>) {
        for hit in hits {
            let hit = Arc::new(hit);
            let feed = hit
                .event
                .feed
                .as_deref()
                .map(|name| (name, hit.category.as_deref().unwrap_or("")));
            for sink in self
                .sinks
                .iter()
                .filter(|s| s.takes_committed(hit.event.outcome, feed))
            {
                sink.offer_committed(hit.clone());
            }
        }
    }
}

impl Exporter {
    /// Whether any receiver takes incident or quarantine events (else there is no point in
    /// subscribing it to the alerts).
    pub fn wants_events(&self) -> bool {
        self.events.iter().any(|&(i, q)| i || q)
    }

    /// Whether any receiver takes hits from the store ([`HitSource::Committed`] and a syslog
    /// receiver): then the store's incident tracker must hand its committed hits to this
    /// exporter, else there is no point in it copying them.
    pub fn takes_committed_hits(&self) -> bool {
        self.sinks.iter().any(QueueSink::takes_committed_hits)
    }
}

/// `label`, or `label#2`, `label#3`... when two exports share a target, so each keeps its own
/// metrics.
fn unique(seen: &mut std::collections::HashSet<String>, label: String) -> String {
    let mut candidate = label.clone();
    let mut n = 1;
    while !seen.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{label}#{n}");
    }
    candidate
}

/// A TLS target for `[[export.syslog]]` with `tls = true`.
fn tls_target(
    config: &Config,
    s: &config::SyslogConfig,
    addr: std::net::SocketAddr,
) -> Result<Target, String> {
    let ca = s.ca_file.as_ref().ok_or("`ca_file` is missing")?;
    let client = tls::client_config(tls::roots(&config.resolve(ca))?)?;
    let name = match &s.server_name {
        Some(name) => rustls_pki_types::ServerName::try_from(name.clone())
            .map_err(|e| format!("server_name: {e}"))?,
        None => rustls_pki_types::ServerName::IpAddress(addr.ip().into()),
    };
    Ok(Target::Tls(addr, name, client))
}

/// The host name, for the dnstap `identity` when `identity` is not set.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates (we cut at the first NUL either way).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "poolguard".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if !name.is_empty() => name.to_string(),
        _ => "poolguard".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poolguard_clients::Ledger;
    use poolguard_record::Transport;
    use poolguard_record::exchange::{ExchangeVerdict, Messages};
    use std::path::Path;

    fn exchange(outcome: Outcome) -> Exchange {
        let now = std::time::SystemTime::now();
        Exchange {
            client: std::net::SocketAddr::from(([127, 0, 0, 9], 5300)),
            transport: Transport::Udp,
            query_time: now,
            response_time: now,
            messages: Messages::new(&[0; 12], &[0, 0, 0x81, 0x80]),
            outcome,
            verdict: outcome.is_hit().then(|| ExchangeVerdict {
                feed: Arc::from("mining"),
                category: Arc::from("mining"),
                rule: Arc::from("pool.example"),
                action: poolguard_model::Action::Nxdomain,
            }),
        }
    }

    #[tokio::test]
    async fn an_exchange_goes_to_every_receiver_that_wants_it_and_no_other() {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let text = format!(
            "[[export.syslog]]\nudp = \"{addr}\"\nselect = \"all\"\nhostname = \"a\"\n\
             [[export.syslog]]\nudp = \"{addr}\"\nhostname = \"b\"\n"
        );
        let config = Config::from_toml(&text, Path::new("t.toml"), Path::new(".")).unwrap();
        let ledger = Ledger::empty().shared();
        let exporter = Exporter::start(&config, &ledger, HitSource::Answered).unwrap();
        // A hit both take (shared), an ordinary query only `a` takes (by value).
        exporter.submit(exchange(Outcome::Blocked));
        exporter.submit(exchange(Outcome::Allowed));
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..3 {
            let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf))
                .await
                .expect("a datagram within 10 s")
                .unwrap();
            let line = String::from_utf8_lossy(&buf[..n]).into_owned();
            let words: Vec<&str> = line.split(' ').collect();
            got.push((words[2].to_string(), words[5].to_string()));
        }
        got.sort();
        let want = [("a", "hit"), ("a", "query"), ("b", "hit")];
        assert_eq!(got, want.map(|(h, m)| (h.to_string(), m.to_string())));
        exporter.shutdown().await;
    }
}
