//! Prometheus metrics: one global recorder, rendered by `GET /metrics`.
//!
//! Every part of poolguard emits through the `metrics` facade (`counter!`, `histogram!`); this
//! module installs the Prometheus recorder once per process and hands out its render handle.
//! Installing twice would fail (and tests start many API instances), hence the `OnceLock`.
//!
//! [`METRICS`] is the one list of every metric poolguard emits, with its HELP text and the
//! label sets known at start. [`install`] describes them all and registers each known series
//! at zero, so a scrape right after start already shows every counter: a rate over a counter
//! that appears only when it first moves misses its first increments, and an alert on
//! "absent" cannot tell "nothing happened" from "not wired" (issue 13). The gauges read from
//! the store, the writer and the policy are refreshed at each scrape by [`refresh`], off the
//! DNS path: one bounded read and a few atomics per scrape.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::ApiState;
use poolguard_store::blocks::codec::OUTCOMES;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets (seconds) for upstream resolution: 1 ms … 5 s, where DNS latencies live.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0,
];

/// What a metric is, as Prometheus types it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The series of a metric that exist from the start.
#[derive(Debug, Clone, Copy)]
pub enum Series {
    /// One series without labels.
    Plain,
    /// One label with each of these values.
    Label(&'static str, &'static [&'static str]),
    /// These label sets (an empty one is the series without labels).
    Sets(&'static [&'static [(&'static str, &'static str)]]),
    /// `action` (every outcome: the block codec's list, which must hold them all to store
    /// them) × `protocol` (`udp`, `tcp`, `dot`, `doh`).
    ActionProtocol,
    /// Labelled by feed: registered at each scrape for the feeds in force ([`refresh`]).
    PerFeed,
    /// Labelled by export (`sink`): registered at zero by `export` at start for each
    /// configured `[[export.*]]` receiver (none when no export is configured).
    PerSink,
}

/// One metric poolguard emits.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The exported name (`poolguard_...`).
    pub name: &'static str,
    /// Counter, gauge or histogram: the `# TYPE` line, and how it is registered at zero.
    pub kind: Kind,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Which label sets exist from the start.
    pub series: Series,
}

const fn counter(name: &'static str, help: &'static str, series: Series) -> Metric {
    Metric {
        name,
        kind: Kind::Counter,
        help,
        series,
    }
}

const fn gauge(name: &'static str, help: &'static str, series: Series) -> Metric {
    Metric {
        name,
        kind: Kind::Gauge,
        help,
        series,
    }
}

/// Gauge: incidents not closed.
pub const INCIDENTS_OPEN: &str = "poolguard_incidents_open";
/// Gauge: incidents not closed that missed a deadline.
pub const INCIDENTS_OVERDUE: &str = "poolguard_incidents_overdue";
/// Gauge: clients in the walled garden.
pub const QUARANTINED_CLIENTS: &str = "poolguard_quarantined_clients";
/// Gauge: entries of each feed's version in force.
pub const FEED_ENTRIES: &str = "poolguard_feed_entries";
/// Gauge: age of the oldest event not yet in SQLite.
pub const OLDEST_UNFLUSHED: &str = "poolguard_store_oldest_unflushed_seconds";
/// The shipper's lag gauge, refreshed at each scrape from its state.
pub const SHIP_LAG: &str = "poolguard_pg_ship_lag_seconds";
/// Counter: subscription fetches by feed and result.
const FEED_FETCHES: &str = "poolguard_feed_fetches_total";
/// The `result` label values of [`FEED_FETCHES`] (`feeds::subscribe::fetch`).
const FETCH_RESULTS: [&str; 3] = ["updated", "not_modified", "failed"];

/// Every metric poolguard emits. A `counter!`/`gauge!`/`histogram!` anywhere in `src/` must
/// name one of these (tests/api_metrics.rs reads the sources to check).
pub const METRICS: &[Metric] = &[
    // DNS
    counter(
        "poolguard_queries_total",
        "DNS queries answered, by action and protocol",
        Series::ActionProtocol,
    ),
    Metric {
        name: "poolguard_upstream_seconds",
        kind: Kind::Histogram,
        help: "Upstream resolution latency",
        series: Series::Plain,
    },
    counter(
        "poolguard_refused_clients_total",
        "Queries refused because the client is outside [dns] allow",
        Series::Plain,
    ),
    counter(
        "poolguard_stale_answers_total",
        "Answers served stale from the cache because the upstream failed (RFC 8767)",
        Series::Plain,
    ),
    counter(
        "poolguard_dns_dropped_total",
        "Packets dropped unanswered, by reason (short, response, oversize, port0, overload)",
        // `dns::wire::DropReason::as_str`, then the listener's own reasons.
        Series::Label(
            "reason",
            &["short", "response", "oversize", "port0", "overload"],
        ),
    ),
    counter(
        "poolguard_dns_ratelimited_total",
        "Queries caught by the response rate limit, by action (drop, slip)",
        Series::Label("action", &["drop", "slip"]),
    ),
    counter(
        "poolguard_dns_malformed_total",
        "Malformed requests answered with a header-only error (DoH: HTTP 400), by protocol",
        Series::Label("protocol", &["udp", "tcp", "dot", "doh"]),
    ),
    counter(
        "poolguard_dns_tcp_rejected_total",
        "TCP connections closed at once because the connection limit was reached",
        Series::Plain,
    ),
    counter(
        "poolguard_dns_tcp_timeouts_total",
        "TCP connections closed because the client was idle or too slow",
        Series::Plain,
    ),
    counter(
        "poolguard_dns_encrypted_rejected_total",
        "DoT/DoH connections closed at once because max_connections were open, by protocol",
        Series::Label("protocol", &["dot", "doh"]),
    ),
    counter(
        "poolguard_dns_tls_handshake_failures_total",
        "DoT/DoH TLS handshakes that failed or did not finish within handshake_timeout_ms",
        Series::Sets(&[
            &[("protocol", "dot"), ("reason", "error")],
            &[("protocol", "dot"), ("reason", "timeout")],
            &[("protocol", "doh"), ("reason", "error")],
            &[("protocol", "doh"), ("reason", "timeout")],
        ]),
    ),
    // Store
    counter(
        "poolguard_log_rows_written_total",
        "Rows committed to the store, by table",
        Series::Label("table", &["queries", "hits"]),
    ),
    counter(
        "poolguard_log_rows_dropped_total",
        "Rows dropped: query-log rows when the writer queue was full (no label) or a DNS worker was saturated (reason=dns_saturated); table=hits only past the spool and memory bounds",
        Series::Sets(&[&[], &[("reason", "dns_saturated")], &[("table", "hits")]]),
    ),
    counter(
        "poolguard_store_write_errors_total",
        "Store batches that failed and were retried",
        Series::Plain,
    ),
    counter(
        "poolguard_store_pruned_rows_total",
        "Rows deleted by retention",
        Series::Plain,
    ),
    counter(
        "poolguard_store_compacted_blocks_total",
        "Small log blocks merged away by the hourly compaction",
        Series::Plain,
    ),
    counter(
        "poolguard_store_grouped_blocks_total",
        "Settled query-log blocks rewritten client by client",
        Series::Plain,
    ),
    counter(
        "poolguard_store_hit_floods_total",
        "Batches whose hits went to the spool because more hits waited than queue_capacity",
        Series::Plain,
    ),
    counter(
        "poolguard_store_hits_deferred_total",
        "Hits deferred to the spool while a DNS worker was saturated",
        Series::Plain,
    ),
    counter(
        "poolguard_store_spooled_total",
        "Hits of failed batches moved to the spool, by where they went (file, memory)",
        Series::Label("to", &["file", "memory"]),
    ),
    counter(
        "poolguard_store_replayed_total",
        "Spooled hits replayed into SQLite",
        Series::Plain,
    ),
    counter(
        "poolguard_store_spool_corrupt_total",
        "Spool records that could not be read back and were skipped",
        Series::Plain,
    ),
    gauge(
        "poolguard_store_queue_depth",
        "Query events waiting for the store writer",
        Series::Plain,
    ),
    gauge(
        "poolguard_store_spool_bytes",
        "Bytes of hits in the spool file waiting for SQLite (disk full, read-only, flood)",
        Series::Plain,
    ),
    gauge(
        "poolguard_store_spool_held",
        "Hits held in memory because the spool file was full or unwritable",
        Series::Plain,
    ),
    gauge(
        OLDEST_UNFLUSHED,
        "Seconds since the oldest event the store writer holds (batch or spool) was recorded; 0 when everything is in SQLite",
        Series::Plain,
    ),
    // PostgreSQL backend: hits shipped from this node's local store
    counter(
        "poolguard_pg_ship_hits_total",
        "Hits this node shipped from its local store into PostgreSQL",
        Series::Plain,
    ),
    counter(
        "poolguard_pg_ship_errors_total",
        "Shipments to PostgreSQL that failed (retried from the cursor; nothing is lost)",
        Series::Plain,
    ),
    gauge(
        "poolguard_pg_ship_connected",
        "1 while the hit shipper holds a working connection to PostgreSQL",
        Series::Plain,
    ),
    gauge(
        "poolguard_pg_ship_unshipped_blocks",
        "Local hit blocks not yet in PostgreSQL",
        Series::Plain,
    ),
    gauge(
        "poolguard_pg_ship_unshipped_hits",
        "Local hits not yet in PostgreSQL",
        Series::Plain,
    ),
    gauge(
        SHIP_LAG,
        "Seconds since the oldest hit not yet in PostgreSQL was recorded; 0 when none waits",
        Series::Plain,
    ),
    // Incidents and alerts
    counter(
        "poolguard_incident_errors_total",
        "Incident bookkeeping steps that failed and were rolled back (the hits themselves are kept)",
        Series::Plain,
    ),
    gauge(INCIDENTS_OPEN, "Incidents not closed", Series::Plain),
    gauge(
        INCIDENTS_OVERDUE,
        "Incidents not closed that missed their identification or report deadline",
        Series::Plain,
    ),
    gauge(
        QUARANTINED_CLIENTS,
        "Clients in the walled garden now",
        Series::Plain,
    ),
    counter(
        "poolguard_alerts_delivered_total",
        "Alert deliveries (webhooks, robots, mail) that succeeded",
        Series::Plain,
    ),
    counter(
        "poolguard_alerts_failed_total",
        "Alert deliveries (webhooks, robots, mail) given up after every retry",
        Series::Plain,
    ),
    counter(
        "poolguard_alerts_dropped_total",
        "Alerts dropped because the delivery queue was full",
        Series::Plain,
    ),
    gauge(
        "poolguard_alerts_held",
        "Alerts held back for a channel's digest (digest_minutes), to go out as one summary",
        Series::Plain,
    ),
    // Feeds and ledger
    gauge(
        FEED_ENTRIES,
        "Entries of each feed in the policy now, by feed (0 while disabled)",
        Series::PerFeed,
    ),
    counter(
        FEED_FETCHES,
        "Subscription fetches, by feed and result (updated, not_modified, failed)",
        Series::PerFeed,
    ),
    counter(
        "poolguard_feed_writes_total",
        "Feed changes over the API, by action",
        Series::Label("action", &["upload", "patch", "delete", "restore"]),
    ),
    counter(
        "poolguard_ledger_reloads_total",
        "Asset ledger reloads and uploads over the API",
        Series::Plain,
    ),
    // Identity sources (docs/IDENTITY.md)
    counter(
        "poolguard_radius_requests_total",
        "RADIUS Accounting-Requests accepted and answered, by Acct-Status-Type",
        Series::Label(
            "status",
            &["start", "interim", "stop", "on", "off", "other"],
        ),
    ),
    counter(
        "poolguard_radius_dropped_total",
        "RADIUS packets dropped unanswered and never stored, by reason (unknown_nas, bad_authenticator, malformed, not_accounting)",
        Series::Label(
            "reason",
            &[
                "unknown_nas",
                "bad_authenticator",
                "malformed",
                "not_accounting",
            ],
        ),
    ),
    counter(
        "poolguard_identity_rejected_total",
        "Lease file records that could not be read, by source (kea, dhcpd); each is logged with its file and line",
        Series::Label("source", &["kea", "dhcpd"]),
    ),
    // Exports (docs/EXPORT.md)
    counter(
        "poolguard_export_dropped_total",
        "Records an export dropped, by reason: queue_full (receiver slow or gone), rate_limit (a syslog export's budget for ordinary queries), receiver (a write failed, or still queued at shutdown)",
        Series::PerSink,
    ),
    counter(
        "poolguard_export_sent_total",
        "Records an export wrote to its receiver",
        Series::PerSink,
    ),
    counter(
        "poolguard_export_connections_total",
        "Connections an export established (handshake completed) to its receiver",
        Series::PerSink,
    ),
    gauge(
        "poolguard_export_connected",
        "1 while an export has a live connection to its receiver",
        Series::PerSink,
    ),
];

/// The label sets of `series` known at start (an empty set is the unlabelled series).
fn label_sets(series: Series) -> Vec<Vec<(&'static str, &'static str)>> {
    match series {
        Series::Plain => vec![Vec::new()],
        Series::Label(key, values) => values.iter().map(|v| vec![(key, *v)]).collect(),
        Series::Sets(sets) => sets.iter().map(|s| s.to_vec()).collect(),
        Series::ActionProtocol => OUTCOMES
            .iter()
            .flat_map(|o| {
                ["udp", "tcp", "dot", "doh"].map(|p| vec![("action", o.as_str()), ("protocol", p)])
            })
            .collect(),
        Series::PerFeed | Series::PerSink => Vec::new(),
    }
}

/// Installs the global Prometheus recorder on first call and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = match builder.set_buckets_for_metric(
                Matcher::Suffix("_seconds".to_string()),
                &LATENCY_BUCKETS,
            ) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics buckets rejected; using summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %e, "another metrics recorder is installed; /metrics will be empty");
            }
            describe();
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The exporter keeps every histogram sample until it is folded into the buckets, which
/// happens at render or upkeep. Without upkeep, an unscraped poolguard kept growing (55 → 144
/// MiB RSS over 10 minutes at 5,000 qps in scripts/soak.sh; with upkeep it levels off at ~80
/// MiB), so a thread folds them regularly whether or not anyone scrapes.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("poolguard-metrics".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started; scrape /metrics to bound memory");
    }
}

/// Describes every metric of [`METRICS`] and registers each series known at start: counters
/// and gauges at zero (`increment(0)` adds nothing to a series that already moved), the
/// histogram with no samples. Called once, by [`install`].
pub fn describe() {
    for m in METRICS {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
        }
        for labels in label_sets(m.series) {
            match m.kind {
                Kind::Counter => metrics::counter!(m.name, &labels).increment(0),
                Kind::Gauge => metrics::gauge!(m.name, &labels).increment(0.0),
                Kind::Histogram => drop(metrics::histogram!(m.name, &labels)),
            }
        }
    }
}

/// Feeds given an entries gauge by an earlier scrape: a feed gone since is set to 0 rather
/// than left at its last count.
static FEEDS_SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Brings the gauges read from state up to date, just before a scrape renders them: the
/// writer's backlog and oldest unflushed event (atomics), the quarantine set (its size), each
/// feed's entries (the loader's status, on the blocking pool: it takes the loader's lock), and
/// the open and overdue incidents (one read of the incidents not closed). Nothing here runs
/// on, or waits for, the DNS path; a failed read leaves the incident gauges as they were.
pub async fn refresh(state: &ApiState) {
    if let Some(w) = &state.writer {
        let s = w.status();
        metrics::gauge!("poolguard_store_queue_depth").set(s.queued as f64);
        metrics::gauge!("poolguard_store_spool_bytes").set(s.spool_bytes as f64);
        metrics::gauge!("poolguard_store_spool_held").set(s.spool_held as f64);
        let age_ms = if s.oldest_unflushed_ms == 0 {
            0
        } else {
            (chrono::Utc::now().timestamp_millis() - s.oldest_unflushed_ms).max(0)
        };
        metrics::gauge!(OLDEST_UNFLUSHED).set(age_ms as f64 / 1000.0);
    }
    if let Some(shipping) = &state.shipping {
        let now = chrono::Utc::now().timestamp_millis();
        let s = shipping.status(now);
        metrics::gauge!(SHIP_LAG).set(crate::views::store::ship_lag_seconds(
            s.oldest_unshipped_ms,
            now,
        ));
    }
    let quarantined = state.accountability.quarantine.len();
    metrics::gauge!(QUARANTINED_CLIENTS).set(quarantined as f64);
    if let Some(registry) = state.feeds.clone() {
        let feeds = tokio::task::spawn_blocking(move || registry.loader().feeds()).await;
        match feeds {
            Ok(feeds) => set_feed_gauges(&feeds),
            Err(e) => tracing::debug!(error = %e, "feed gauges not refreshed"),
        }
    }
    let now = state.accountability.clock.now_ms();
    match state.store.open_counts(now).await {
        Ok((open, overdue)) => {
            metrics::gauge!(INCIDENTS_OPEN).set(open as f64);
            metrics::gauge!(INCIDENTS_OVERDUE).set(overdue as f64);
        }
        Err(e) => tracing::debug!(error = %e, "incident gauges not refreshed"),
    }
}

fn set_feed_gauges(feeds: &[poolguard_feeds::loader::FeedStatus]) {
    let mut seen = FEEDS_SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let seen = seen.get_or_insert_with(HashSet::new);
    let now: HashSet<String> = feeds.iter().map(|f| f.name.clone()).collect();
    for gone in seen.difference(&now) {
        metrics::gauge!(FEED_ENTRIES, "feed" => gone.clone()).set(0.0);
    }
    for f in feeds {
        let entries = if f.enabled { f.entries } else { 0 };
        metrics::gauge!(FEED_ENTRIES, "feed" => f.name.clone()).set(entries as f64);
        if f.url.is_some() {
            for result in FETCH_RESULTS {
                metrics::counter!(FEED_FETCHES, "feed" => f.name.clone(), "result" => result)
                    .increment(0);
            }
        }
    }
    seen.extend(now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_listed_once_with_help() {
        let mut names = HashSet::new();
        for m in METRICS {
            assert!(names.insert(m.name), "{} listed twice", m.name);
            assert!(m.name.starts_with("poolguard_"), "{}", m.name);
            assert!(!m.help.is_empty(), "{} has no help", m.name);
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}: counters and only counters end in _total",
                m.name
            );
        }
    }

    #[test]
    fn queries_total_covers_every_outcome_and_protocol() {
        let sets = label_sets(Series::ActionProtocol);
        assert_eq!(sets.len(), OUTCOMES.len() * 4);
        assert!(sets.contains(&vec![("action", "cname-blocked"), ("protocol", "tcp")]));
        assert!(sets.contains(&vec![("action", "blocked"), ("protocol", "doh")]));
    }
}
