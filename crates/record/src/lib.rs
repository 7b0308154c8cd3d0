//! Record: one compact event per DNS query, handed off the request path.
//!
//! The DNS path calls [`Recorder::record`], which never blocks and never fails the answer. The
//! store writer (in `store`) drains the events in batches. Ordinary query events go through a
//! bounded queue and are counted as dropped when it is full; hits (blocked answers) are
//! evidence: they bypass the bound, and if SQLite fails they wait in the store's bounded
//! spool (`store::spool`); only past it are they dropped, and counted.

pub mod exchange;
pub mod lifecycle;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Transport the query came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    /// DNS over TLS (RFC 7858): the TCP framing inside a TLS session, `[dns.tls]`.
    Dot,
    /// DNS over HTTPS (RFC 8484): GET or POST on `[dns.https]`.
    Doh,
}

impl Transport {
    /// Whether the query came over a connection (TCP, DoT, DoH): its source address is the
    /// completed handshake's, and its answer is never truncated to a UDP size.
    pub fn is_stream(self) -> bool {
        self != Self::Udp
    }

    /// Lower case, as the query log, the API and metrics labels spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Dot => "dot",
            Self::Doh => "doh",
        }
    }

    /// The inverse of [`Transport::as_str`] (rows read back from a store).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Udp, Self::Tcp, Self::Dot, Self::Doh]
            .into_iter()
            .find(|t| t.as_str() == name)
    }
}

impl std::fmt::Display for Transport {
    /// Upper case, as messages name protocols ("UDP port already in use"); the query log and
    /// the API spell it in lower case through serde.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Dot => "DoT",
            Self::Doh => "DoH",
        })
    }
}

/// What poolguard did with a query. The names are the API's `action` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Forwarded (or answered from cache) normally.
    Allowed,
    /// Matched an allowlist that overrode a block, or an allowlist alone; forwarded.
    Allowlisted,
    /// The name (or a parent) is listed.
    Blocked,
    /// The name is fine but its answer CNAMEs into a listed name.
    CnameBlocked,
    /// The name is fine but its answer has an address inside a listed IP/CIDR feed.
    IpBlocked,
    /// Answered from a local `[[zones]]` file.
    Local,
    /// The upstream failed or timed out.
    Servfail,
    /// The client is outside `[dns] allow`, or the request was refused for another reason.
    Refused,
    /// Malformed or unsupported request.
    Formerr,
    /// The client is quarantined: walled-garden answer (the name itself was not listed).
    Quarantined,
    /// Listed by a feed whose action is `log` (the `bypass` category): answered as if
    /// unlisted, and kept as a hit so the client is marked (docs/FEEDS.md, "Bypass").
    Logged,
}

impl Outcome {
    /// Hits are the evidence: kept long, and dropped only past the store's spool bounds.
    pub fn is_hit(self) -> bool {
        matches!(
            self,
            Outcome::Blocked | Outcome::CnameBlocked | Outcome::IpBlocked | Outcome::Logged
        )
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Allowlisted => "allowlisted",
            Outcome::Blocked => "blocked",
            Outcome::CnameBlocked => "cname-blocked",
            Outcome::IpBlocked => "ip-blocked",
            Outcome::Local => "local",
            Outcome::Servfail => "servfail",
            Outcome::Refused => "refused",
            Outcome::Formerr => "formerr",
            Outcome::Quarantined => "quarantined",
            Outcome::Logged => "logged",
        }
    }
}

/// One query, as recorded.
///
/// Built on the DNS worker for every logged query and dropped on the store writer's thread,
/// so it avoids heap copies: the type is usually a static mnemonic, and the answer summary and
/// upstream are shared with the answer cache (`Arc`), leaving the name the only allocation.
#[derive(Debug, Clone)]
pub struct QueryEvent {
    /// Milliseconds since the Unix epoch, UTC.
    pub time_ms: i64,
    pub client: SocketAddr,
    pub transport: Transport,
    /// Lower-case, no trailing dot.
    pub name: Box<str>,
    /// Query type mnemonic (`A`, `AAAA`, `TYPE65534`).
    pub qtype: Cow<'static, str>,
    pub outcome: Outcome,
    /// Feed and rule that decided it, for hits and allowlisted queries.
    pub feed: Option<Arc<str>>,
    pub rule: Option<Arc<str>>,
    /// Response code sent (`NOERROR`, `NXDOMAIN`…).
    pub rcode: &'static str,
    /// Short summary of the answer (`A 10.0.0.1, CNAME x.`), empty when none.
    pub answer: Arc<str>,
    pub latency_us: u32,
    /// Which upstream answered, when forwarded.
    pub upstream: Option<Arc<str>>,
}

/// The DNS path's handle for recording events. Cheap to clone.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Option<Arc<dyn Sink>>,
    /// The configured exports of whole exchanges (dnstap); `None` = the DNS path copies no
    /// wire bytes at all (docs/EXPORT.md).
    export: Option<Arc<dyn exchange::ExportSink>>,
}

/// Where events go. Implemented by the store's writer queue.
pub trait Sink: Send + Sync + 'static {
    /// Must not block. Returns false when the event was dropped.
    fn submit(&self, event: QueryEvent) -> bool;

    /// Whether an event with this outcome would be kept, so the DNS path can skip building
    /// (and allocating) events nobody stores, e.g. ordinary queries with `log_queries = false`.
    fn accepts(&self, outcome: Outcome) -> bool {
        let _ = outcome;
        true
    }

    /// Whether ordinary events may be shed while a DNS worker is saturated
    /// (`[store] shed_when_saturated`); sinks that must see every event keep the default.
    fn may_shed(&self) -> bool {
        false
    }

    /// Counts an ordinary event the DNS path did not build because its worker was saturated
    /// (see [`Recorder::admits`]); it is reported like any dropped row.
    fn shed(&self) {}

    /// A DNS worker answered while saturated: the sink may defer expensive work (indexing
    /// hits) until the worker has room. Called often; must be a cheap, uncontended check.
    fn saturated(&self) {}
}

impl Recorder {
    /// A recorder that discards everything (no store configured, benchmarks).
    pub fn disabled() -> Self {
        Self {
            inner: None,
            export: None,
        }
    }

    /// A recorder feeding `sink`.
    pub fn new(sink: Arc<dyn Sink>) -> Self {
        Self {
            inner: Some(sink),
            export: None,
        }
    }

    /// This recorder, also handing whole exchanges to `export` (dnstap and the like).
    pub fn with_export(mut self, export: Arc<dyn exchange::ExportSink>) -> Self {
        self.export = Some(export);
        self
    }

    /// The export, when one is configured and wants an exchange with this `outcome` decided
    /// by `feed` (`(name, category)`). One `Option` check when no export is configured.
    #[inline]
    pub fn export_for(
        &self,
        outcome: Outcome,
        feed: Option<(&str, &str)>,
    ) -> Option<&Arc<dyn exchange::ExportSink>> {
        self.export
            .as_ref()
            .filter(|export| export.wants(outcome, feed))
    }

    /// Whether any export is configured (the front end then gives each general-path request
    /// an [`exchange::scope`]).
    #[inline]
    pub fn is_exporting(&self) -> bool {
        self.export.is_some()
    }

    /// Whether anything listens; the DNS path skips building events when not.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Whether to build and record an event for `outcome`, given whether the DNS worker that
    /// answered is `saturated` (behind on its socket).
    ///
    /// Logging must never slow an answer. When a worker cannot keep up with its socket, every
    /// microsecond the store writer spends on an ordinary row is one the worker needs: then
    /// ordinary events are shed here (counted as dropped rows, like a full queue) before any
    /// work is spent on them. Hits are evidence and are always recorded. Below saturation —
    /// the normal case — nothing is shed.
    #[inline]
    pub fn admits(&self, outcome: Outcome, saturated: bool) -> bool {
        let Some(sink) = &self.inner else {
            return false;
        };
        if !sink.accepts(outcome) {
            return false;
        }
        if saturated {
            sink.saturated();
        }
        if saturated && !outcome.is_hit() && sink.may_shed() {
            sink.shed();
            return false;
        }
        true
    }

    /// Hands an event off without blocking.
    pub fn record(&self, event: QueryEvent) {
        if let Some(sink) = &self.inner {
            sink.submit(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Keeps hits and, when `queries`, ordinary events; counts sheds and saturation signals.
    struct Counting {
        queries: bool,
        shed: AtomicUsize,
        saturated: AtomicUsize,
    }

    impl Sink for Counting {
        fn submit(&self, _: QueryEvent) -> bool {
            true
        }
        fn accepts(&self, outcome: Outcome) -> bool {
            self.queries || outcome.is_hit()
        }
        fn may_shed(&self) -> bool {
            true
        }
        fn shed(&self) {
            self.shed.fetch_add(1, Ordering::Relaxed);
        }
        fn saturated(&self) {
            self.saturated.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_saturated_worker_sheds_ordinary_events_never_hits() {
        let sink = Arc::new(Counting {
            queries: true,
            shed: AtomicUsize::new(0),
            saturated: AtomicUsize::new(0),
        });
        let recorder = Recorder::new(sink.clone());
        assert!(recorder.admits(Outcome::Allowed, false));
        assert!(recorder.admits(Outcome::Blocked, false));
        assert!(!recorder.admits(Outcome::Allowed, true));
        assert!(!recorder.admits(Outcome::Servfail, true));
        for hit in [Outcome::Blocked, Outcome::CnameBlocked, Outcome::IpBlocked] {
            assert!(recorder.admits(hit, true), "{hit:?} is evidence");
        }
        assert_eq!(sink.shed.load(Ordering::Relaxed), 2);
        // Every admitted decision while saturated tells the sink (it defers indexing hits).
        assert_eq!(sink.saturated.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn events_nobody_keeps_are_not_built_nor_counted_as_shed() {
        let sink = Arc::new(Counting {
            queries: false,
            shed: AtomicUsize::new(0),
            saturated: AtomicUsize::new(0),
        });
        let recorder = Recorder::new(sink.clone());
        assert!(!recorder.admits(Outcome::Allowed, true));
        assert!(!recorder.admits(Outcome::Allowed, false));
        assert_eq!(
            sink.shed.load(Ordering::Relaxed),
            0,
            "log_queries = false is not a drop"
        );
        assert!(!Recorder::disabled().admits(Outcome::Blocked, false));
    }
}
