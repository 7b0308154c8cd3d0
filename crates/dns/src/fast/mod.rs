//! The fast path: blocked names and cached answers written in place, before hickory.
//!
//! Profiled on ../shared/bench, the general path (hickory `Request` parse, handler future,
//! resolver cache lookup, `Message` encode) cost ~7.9 µs of CPU per cached query, against
//! Unbound's ~5.3 µs. But almost every query is the same easy case: one IN question for an
//! ordinary name, answered by a block or by something answered before. For those, this module
//! does the whole job on the receive buffer: parse the header and question onto the stack
//! ([`query`]), take the same pre-resolution decision as the general path (allocation-free
//! [`policy::decide`]: client, quarantine, policy, zones) and check the packet cache ([`cache`]), and write the answer into the send buffer ([`block`], or the
//! cached bytes). No task, no `Message`, no `Name`.
//!
//! Everything else returns `None` and takes the general path in `handler.rs`, which stays the
//! reference: allowlisted names, quarantined clients, local zones, cache misses, anything
//! unusual in the packet, and answers too big for the client (truncation). The precedence of
//! the stages is the same as there because it is the same function (access → quarantine →
//! policy → ANY → zones → cache), and tests compare both paths' answers byte for byte where
//! they overlap.
//!
//! [`policy::decide`]: poolguard_policy::decide

pub mod block;
pub mod cache;
pub mod opt;
pub mod query;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use metrics::Counter;

use crate::event::Logged;
use crate::load::Load;
use crate::shared::Shared;
use block::BlockWriter;
use cache::PacketCache;
use opt::ResponseOpt;
use poolguard_policy::{NameMatch, QueryDecision};
use poolguard_record::exchange::{Exchange, ExchangeVerdict, Messages};
use poolguard_record::{Outcome, Transport};

/// One worker's fast path. Owns nothing shared but the [`Shared`] state; the cache is the
/// worker's own (the general path fills it after forwarding).
pub struct FastPath {
    shared: Arc<Shared>,
    /// The encoder of `shared.blocks`' answers, this worker's copy.
    blocks: BlockWriter,
    cache: Arc<PacketCache>,
    load: Arc<Load>,
    counters: Counters,
}

/// Counter handles resolved once: `metrics::counter!` with labels hashes its key on every
/// call, which the hot path should not pay per query.
struct Counters {
    blocked: [Counter; 4],
    allowed: [Counter; 4],
}

/// The counters' order: a transport's slot is its index here.
const TRANSPORTS: [Transport; 4] = [
    Transport::Udp,
    Transport::Tcp,
    Transport::Dot,
    Transport::Doh,
];

impl Counters {
    fn new() -> Self {
        let count = |action: &'static str, protocol: &'static str| metrics::counter!("poolguard_queries_total", "action" => action, "protocol" => protocol);
        let all = |action| TRANSPORTS.map(|t| count(action, t.as_str()));
        Self {
            blocked: all("blocked"),
            allowed: all("allowed"),
        }
    }
}

impl FastPath {
    /// The fast path of one worker, sharing `cache` with that worker's general path.
    pub fn new(shared: Arc<Shared>, cache: Arc<PacketCache>, load: Arc<Load>) -> Self {
        Self {
            blocks: BlockWriter::new(&shared.blocks),
            shared,
            cache,
            load,
            counters: Counters::new(),
        }
    }

    /// Answers `packet` into `out` when it is a case the fast path covers, and returns the
    /// answer's length; `None` = take the general path (nothing was sent or recorded).
    pub fn answer(
        &self,
        packet: &[u8],
        src: SocketAddr,
        transport: Transport,
        out: &mut [u8],
    ) -> Option<usize> {
        let start = Instant::now();
        let q = query::parse(packet)?;
        let shared = &self.shared;
        let policy = shared.policy.load();
        // The same decision as the general path and `GET /api/v1/check` (`policy::decide`),
        // borrowed from the snapshot: no allocation. Only blocks and plain forwards are ours.
        let blocked =
            match poolguard_policy::decide(&**shared, &policy, src.ip(), q.name(), q.qtype) {
                QueryDecision::Blocked(found) => Some(found),
                QueryDecision::Forward {
                    allowlisted: None,
                    logged: None,
                }
                | QueryDecision::Conditional {
                    allowlisted: None,
                    logged: None,
                    ..
                } => None,
                // Refusals, the walled garden, allowlisted and `log`-listed names (recorded as
                // such), RFC 8482 ANY, local zones and transfers: the general path answers.
                _ => return None,
            };
        let limit = match transport {
            Transport::Udp => q.udp_limit(shared.udp_payload),
            Transport::Tcp | Transport::Dot | Transport::Doh => usize::from(u16::MAX),
        };
        let opt = q.edns.map(|e| ResponseOpt {
            payload: shared.udp_payload.max(512),
            dnssec_ok: e.dnssec_ok,
        });
        let slot = TRANSPORTS.iter().position(|t| *t == transport).unwrap_or(0);

        if let Some(found) = blocked {
            let feed = &found.feed;
            let block = shared.blocks.describe(q.qtype, feed.action, &feed.name);
            let written = self.blocks.write(
                q.id(),
                q.recursion_desired,
                q.question(),
                &block,
                opt,
                limit,
                out,
            )?;
            self.counters.blocked[slot].increment(1);
            self.record(Answered {
                query: &q,
                wire: (packet, &out[..written.len]),
                client: src,
                transport,
                start,
                outcome: Outcome::Blocked,
                verdict: Some((feed.name.clone(), found)),
                rcode: written.rcode,
                summary: &written.summary,
                upstream: None,
            });
            return Some(written.len);
        }

        let request = cache::Request {
            name: q.name_bytes(),
            qtype: q.qtype,
            question: q.question(),
            id: q.id(),
            recursion_desired: q.recursion_desired,
            opt,
            limit,
            policy: policy.generation(),
        };
        let hit = self.cache.answer(&request, start, out)?;
        self.counters.allowed[slot].increment(1);
        self.record(Answered {
            query: &q,
            wire: (packet, &out[..hit.len]),
            client: src,
            transport,
            start,
            outcome: Outcome::Allowed,
            verdict: None,
            rcode: hit.rcode,
            summary: &hit.summary,
            upstream: Some(&hit.upstream),
        });
        Some(hit.len)
    }

    /// Hands the query-log event over, unless nobody keeps it or the worker sheds it.
    fn record(&self, a: Answered<'_, '_>) {
        // export (docs/EXPORT.md): a block's rule text, made once for the export and the log.
        let mut rule = None;
        self.export(&a, &mut rule);
        let recorder = &self.shared.recorder;
        if !recorder.admits(a.outcome, self.load.saturated()) {
            return;
        }
        let (feed, rule) = match a.verdict {
            Some((feed, found)) => (Some(feed), Some(rule.unwrap_or_else(|| found.rule()))),
            None => (None, None),
        };
        let logged = Logged {
            client: a.client,
            transport: a.transport,
            name: a.query.name(),
            qtype: Some(RecordType::from(a.query.qtype)),
            outcome: a.outcome,
            feed,
            rule,
            rcode: a.rcode,
            answer: Arc::clone(a.summary),
            latency: a.start.elapsed(),
            upstream: a.upstream.cloned(),
        };
        recorder.record(logged.event());
    }
}

impl FastPath {
    /// export (docs/EXPORT.md): the exchange goes to the export when one is configured and
    /// wants it; only then are the wire bytes copied (into one allocation), the clock read
    /// (once: the arrival is the answer time minus the time spent) and a block's `rule` made
    /// (left in `rule` for the query log).
    fn export(&self, a: &Answered<'_, '_>, rule: &mut Option<Arc<str>>) {
        let feed = a.verdict.as_ref().map(|(_, found)| found.feed);
        let Some(export) = self
            .shared
            .recorder
            .export_for(a.outcome, feed.map(|f| (&*f.name, &*f.category)))
        else {
            return;
        };
        let response_time = std::time::SystemTime::now();
        export.submit(Exchange {
            client: a.client,
            transport: a.transport,
            query_time: response_time
                .checked_sub(a.start.elapsed())
                .unwrap_or(response_time),
            response_time,
            messages: Messages::new(a.wire.0, a.wire.1),
            outcome: a.outcome,
            verdict: a.verdict.as_ref().map(|(_, found)| ExchangeVerdict {
                feed: found.feed.name.clone(),
                category: found.feed.category.clone(),
                rule: rule.get_or_insert_with(|| found.rule()).clone(),
                action: found.feed.action,
            }),
        });
    }
}

/// What the fast path answered, for the query log and exports.
struct Answered<'q, 'p> {
    query: &'q query::Query<'q>,
    /// The query and the answer as sent, for exports.
    wire: (&'q [u8], &'q [u8]),
    client: SocketAddr,
    transport: Transport,
    start: Instant,
    outcome: Outcome,
    /// The feed's name and the match, for a block.
    verdict: Option<(Arc<str>, NameMatch<'p>)>,
    rcode: ResponseCode,
    summary: &'q Arc<str>,
    upstream: Option<&'q Arc<str>>,
}
