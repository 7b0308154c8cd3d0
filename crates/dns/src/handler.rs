//! The request path: identify → decide → resolve → inspect → answer → record.
//!
//! Our front ends (`listen.rs`) gate and parse the packet and call [`Handler::answer`]; each stage below is a
//! call into its own module and hands the next one a plain value ([`Reply`]), so the order of
//! precedence is readable top to bottom:
//!
//! 1. clients outside `[dns] allow` → REFUSED (and counted);
//! 2. anything but a single standard query → FORMERR / NOTIMP, like hickory's catalog;
//! 3. quarantined clients get the walled garden (except `[enforcement] reachable` names);
//! 4. the policy decides on the name; a block is answered at once, before local zones and
//!    conditional forwarding, so no internal zone can be used to reach a pool; ANY then gets the
//!    RFC 8482 answer (one HINFO) and is never forwarded;
//! 5. names inside `[[zones]]` are answered authoritatively and never forwarded;
//!    special-use names (`localhost`, `invalid`, `onion`, loopback reverse) are answered by
//!    `special.rs`, with an SOA when negative;
//! 6. everything else is forwarded; unless the name was allowlisted, the answer's CNAME
//!    targets and addresses are checked against the policy once more.
//!
//! The handler never panics on input and never blocks: recording hands the event to a
//! non-blocking sink.

use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::Request;
use tracing::Instrument;

use crate::event::Logged;
use crate::fast::FastPath;
use crate::fast::cache::PacketCache;
use crate::load::Load;
use crate::reply::{ExtendedError, Reply};
use crate::respond::respond;
use crate::shared::Shared;
use crate::upstream::Upstreams;
use poolguard_policy::{Policy, QueryDecision, Verdict};
use poolguard_record::Outcome;
use poolguard_record::Transport;
use poolguard_record::exchange::{self, Exchange, ExchangeVerdict, Messages};

/// TTL of a stale answer: RFC 8767 §4 recommends 30 s, so clients come back soon for a fresh one.
const STALE_TTL: u32 = 30;

/// The request path of one DNS worker, owning that worker's resolvers.
pub struct Handler {
    shared: Arc<Shared>,
    upstreams: Upstreams,
    cache: Arc<PacketCache>,
    load: Arc<Load>,
}

impl Handler {
    /// A handler for one worker, with that worker's packet cache.
    pub fn new(shared: Arc<Shared>, upstreams: Upstreams) -> Self {
        let cache = Arc::new(PacketCache::new(shared.packet_cache, shared.serve_stale));
        Self {
            shared,
            upstreams,
            cache,
            load: Arc::default(),
        }
    }

    /// The fast path over the same state, cache and load flag (`listen.rs` tries it first).
    pub fn fast_path(&self) -> FastPath {
        FastPath::new(self.shared.clone(), self.cache.clone(), self.load.clone())
    }

    /// Whether an export is configured (the front end then opens an export slot per request).
    pub fn exports(&self) -> bool {
        self.shared.recorder.is_exporting()
    }

    /// This worker's saturation flag, set by its UDP loops.
    pub fn load(&self) -> &Arc<Load> {
        &self.load
    }
}

/// The result of the stages, before sending.
struct Handled {
    reply: Reply,
    outcome: Outcome,
    verdict: Option<Verdict>,
    upstream: Option<Arc<str>>,
    /// The rule the query log records when no feed decided (`canary:<name>`).
    note: Option<&'static str>,
}

impl Handled {
    fn plain(reply: Reply, outcome: Outcome) -> Self {
        Self {
            reply,
            outcome,
            verdict: None,
            upstream: None,
            note: None,
        }
    }

    /// The answer as it is, recorded as a hit of the `log` rule `v` the name matched, unless
    /// inspection blocked it (that block is the stronger evidence).
    fn logged(self, v: Verdict) -> Self {
        match self.outcome {
            Outcome::Allowed | Outcome::Local | Outcome::Servfail => Self {
                outcome: Outcome::Logged,
                verdict: Some(v),
                ..self
            },
            _ => self,
        }
    }

    /// An answer of our own (local zone, special-use name, discovery, canary).
    fn local(reply: Reply, allowlisted: Option<Verdict>, note: Option<&'static str>) -> Self {
        Self {
            reply,
            outcome: Outcome::Local,
            verdict: allowlisted,
            upstream: None,
            note,
        }
    }
}

impl Handler {
    /// Runs the stages for one parsed request, records it, and returns the answer encoded
    /// within `limit` bytes (`wire::response_limit`). `transport` is what the query log and
    /// exports record: DoT and DoH requests are parsed as TCP ones (hickory's own TLS and
    /// HTTPS protocols need its TLS stack), so the front end says which it was.
    pub async fn answer<T: Time>(
        &self,
        request: &Request,
        transport: Transport,
        limit: u16,
    ) -> Vec<u8> {
        let start = Instant::now();
        let client = request.src();
        let qname = first_name(request);
        let span = tracing::debug_span!("query", %client, qname = %qname);
        async move {
            let handled = self.stages::<T>(request, &qname).await;
            // Recorded before the answer leaves (a non-blocking channel push, well under a
            // microsecond): a client that has its answer can rely on the event being queued,
            // so a `flush` issued after it sees the row. `latency_us` is therefore the time to
            // a ready answer, without the final send.
            self.finish(request, transport, &qname, &handled, start);
            respond(request, &handled.reply, self.shared.udp_payload, limit)
        }
        .instrument(span)
        .await
    }
}

impl Handler {
    async fn stages<T: Time>(&self, request: &Request, qname: &str) -> Handled {
        let shared = &self.shared;

        // identify: no open resolver.
        if !shared.access.allows(request.src().ip()) {
            metrics::counter!("poolguard_refused_clients_total").increment(1);
            return Handled::plain(Reply::code(ResponseCode::Refused), Outcome::Refused);
        }
        if request.metadata.message_type != MessageType::Query {
            return Handled::plain(Reply::code(ResponseCode::FormErr), Outcome::Formerr);
        }
        if request.metadata.op_code != OpCode::Query {
            return Handled::plain(Reply::code(ResponseCode::NotImp), Outcome::Formerr);
        }
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return Handled::plain(Reply::code(ResponseCode::BADVERS), Outcome::Formerr);
        }
        let Ok(info) = request.request_info() else {
            // Not exactly one question.
            return Handled::plain(Reply::code(ResponseCode::FormErr), Outcome::Formerr);
        };
        let lower = info.query.name();
        let qtype = info.query.query_type();
        if info.query.query_class() != DNSClass::IN {
            // CHAOS `version.bind` and friends: nothing to forward, nothing to block.
            return Handled::plain(Reply::code(ResponseCode::Refused), Outcome::Refused);
        }
        let name = Name::from(lower.clone());
        match qtype {
            // Meta types are not questions (RFC 6891 §6.1.1, RFC 8945 §5.2): BIND also FORMERRs.
            RecordType::OPT | RecordType::TSIG | RecordType::Unknown(249) => {
                return Handled::plain(Reply::code(ResponseCode::FormErr), Outcome::Formerr);
            }
            // Obsolete mailbox meta queries (RFC 1035 §3.2.3): nothing to forward.
            RecordType::Unknown(253) | RecordType::Unknown(254) => {
                return Handled::plain(Reply::code(ResponseCode::NotImp), Outcome::Formerr);
            }
            _ => {}
        }

        // decide: `policy::decide` holds the order of precedence (access, quarantine, policy,
        // ANY, local zones, transfers, forwarding) for this path, the fast path and
        // `GET /api/v1/check`. The snapshot guard is not held across an await.
        let (local, allowlisted, logged) = {
            let policy = shared.policy.load();
            let client = request.src().ip();
            match poolguard_policy::decide(&**shared, &policy, client, qname, u16::from(qtype)) {
                QueryDecision::Refused => {
                    metrics::counter!("poolguard_refused_clients_total").increment(1);
                    return Handled::plain(Reply::code(ResponseCode::Refused), Outcome::Refused);
                }
                // A repeat offender gets the walled garden, except `reachable` names. A listed
                // name is still recorded as a hit (the evidence continues).
                QueryDecision::Quarantined { listed } => {
                    let verdict = listed.map(|m| m.verdict());
                    let outcome = if verdict.is_some() {
                        Outcome::Blocked
                    } else {
                        Outcome::Quarantined
                    };
                    let reply = match &shared.quarantine {
                        Some(q) => crate::walled::answer(q, &name, qtype),
                        None => Reply::code(ResponseCode::ServFail),
                    };
                    return Handled {
                        reply,
                        outcome,
                        verdict,
                        upstream: None,
                        note: None,
                    };
                }
                QueryDecision::Blocked(m) => {
                    return self.blocked(&name, qtype, Outcome::Blocked, m.verdict(), None);
                }
                // RFC 8482: ANY is an amplification tool, not a question anyone needs answered
                // in full. One synthetic HINFO, never forwarded. Blocks above still win.
                QueryDecision::MinimalAny => {
                    return Handled::plain(Reply::rfc8482(&name), Outcome::Local);
                }
                // Zone transfers are only for our own zones; a forwarder does not proxy them.
                QueryDecision::TransferRefused => {
                    return Handled::plain(Reply::code(ResponseCode::Refused), Outcome::Refused);
                }
                QueryDecision::LocalZone {
                    allowlisted,
                    logged,
                } => (
                    true,
                    allowlisted.map(|m| m.verdict()),
                    logged.map(|m| m.verdict()),
                ),
                QueryDecision::Conditional {
                    allowlisted,
                    logged,
                    ..
                }
                | QueryDecision::Forward {
                    allowlisted,
                    logged,
                } => (
                    false,
                    allowlisted.map(|m| m.verdict()),
                    logged.map(|m| m.verdict()),
                ),
            }
        };
        let handled = self
            .answered::<T>(request, qname, &name, qtype, local, allowlisted)
            .await;
        match logged {
            Some(v) => handled.logged(v),
            None => handled,
        }
    }

    /// The stages after the policy let the name through: local zones, special-use and
    /// discovery names, canaries, forwarding and answer inspection.
    async fn answered<T: Time>(
        &self,
        request: &Request,
        qname: &str,
        name: &Name,
        qtype: RecordType,
        local: bool,
        allowlisted: Option<Verdict>,
    ) -> Handled {
        let shared = &self.shared;

        if local {
            let reply = shared.zones.answer(request, T::current_time()).await;
            return Handled::local(reply, allowlisted, None);
        }

        // special-use names (RFC 6761, RFC 7686) and RFC 9462 discovery: answered here, with
        // an SOA when negative. (Zone transfers were refused by `decide` above; RA is cleared
        // for them when the answer is encoded.)
        if let Some(reply) = crate::special::answer(qname, name, qtype)
            .or_else(|| shared.discovery.answer(qname, name, qtype))
        {
            return Handled::local(reply, allowlisted, None);
        }
        // Canary and relay names (`canary.rs`): recorded as local answers with their rule,
        // never as hits. A feed that lists one still blocks it (above).
        if let Some((reply, rule)) = shared.canaries.answer(qname, name) {
            return Handled::local(reply, allowlisted, Some(rule));
        }

        // resolve.
        let forwarder = self.upstreams.for_name(qname);
        let forwarded = forwarder.forward(name.clone(), qtype).await;
        let upstream = Some(forwarder.label().clone());
        if forwarded.failed {
            // RFC 8767: an answer we had, checked against today's policy, beats SERVFAIL.
            if let Some(stale) = self.stale(qname, qtype, forwarder.label()) {
                return match allowlisted {
                    Some(v) => Handled {
                        reply: stale,
                        outcome: Outcome::Allowlisted,
                        verdict: Some(v),
                        upstream,
                        note: None,
                    },
                    None => self.inspected(name, qtype, stale, upstream),
                };
            }
            return Handled {
                reply: forwarded.reply,
                outcome: Outcome::Servfail,
                verdict: allowlisted,
                upstream,
                note: None,
            };
        }
        if let Some(v) = allowlisted {
            return Handled {
                reply: forwarded.reply,
                outcome: Outcome::Allowlisted,
                verdict: Some(v),
                upstream,
                note: None,
            };
        }

        // inspect, against the snapshot the cached copy will be tied to.
        let policy = shared.policy.load();
        if shared.inspect
            && let Some((outcome, v)) = inspect(&policy, &forwarded.reply)
        {
            return self.blocked(name, qtype, outcome, v, upstream);
        }
        self.cache.insert(
            qname,
            qtype,
            &forwarded.reply,
            forwarder.label(),
            policy.generation(),
            Instant::now(),
        );
        Handled {
            reply: forwarded.reply,
            outcome: Outcome::Allowed,
            verdict: None,
            upstream,
            note: None,
        }
    }

    /// The block answer for a listed name, or for an upstream answer that inspection caught.
    fn blocked(
        &self,
        name: &Name,
        qtype: RecordType,
        outcome: Outcome,
        v: Verdict,
        upstream: Option<Arc<str>>,
    ) -> Handled {
        let block = self
            .shared
            .blocks
            .describe(u16::from(qtype), v.action(), &v.feed.name);
        let reply = crate::answer::reply(&block, name);
        Handled {
            reply,
            outcome,
            verdict: Some(v),
            upstream,
            note: None,
        }
    }

    /// A stale answer, inspected like a fresh one (a CNAME target or address listed since it
    /// was cached still blocks it).
    fn inspected(
        &self,
        name: &Name,
        qtype: RecordType,
        reply: Reply,
        upstream: Option<Arc<str>>,
    ) -> Handled {
        let shared = &self.shared;
        if shared.inspect
            && let Some((outcome, v)) = inspect(&shared.policy.load(), &reply)
        {
            return self.blocked(name, qtype, outcome, v, upstream);
        }
        Handled {
            reply,
            outcome: Outcome::Allowed,
            verdict: None,
            upstream,
            note: None,
        }
    }

    /// The packet cache's copy of `qname`/`qtype` within the serve-stale window, as a reply
    /// with every TTL set to 30 s and EDE 3 (RFC 8767 §4, §5), so clients retry soon.
    fn stale(&self, qname: &str, qtype: RecordType, label: &str) -> Option<Reply> {
        let bytes = self.cache.stale(qname, qtype, Instant::now())?;
        let message = Message::from_vec(&bytes).ok()?;
        let fresh = |records: Vec<hickory_proto::rr::Record>| {
            records
                .into_iter()
                .map(|mut r| {
                    r.ttl = STALE_TTL;
                    r
                })
                .collect::<Vec<_>>()
        };
        metrics::counter!("poolguard_stale_answers_total").increment(1);
        Some(Reply {
            rcode: message.metadata.response_code,
            authoritative: false,
            answers: fresh(message.answers),
            authorities: fresh(message.authorities),
            additionals: fresh(message.additionals),
            ede: Some(ExtendedError::stale(label)),
        })
    }

    /// Metrics, a debug line and the query-log event.
    fn finish(
        &self,
        request: &Request,
        transport: Transport,
        qname: &str,
        handled: &Handled,
        start: Instant,
    ) {
        metrics::counter!(
            "poolguard_queries_total",
            "action" => handled.outcome.as_str(),
            "protocol" => transport.as_str()
        )
        .increment(1);
        let latency = start.elapsed();
        tracing::debug!(
            outcome = handled.outcome.as_str(),
            rcode = %handled.reply.rcode,
            feed = handled.verdict.as_ref().map(|v| &*v.feed.name),
            latency_us = latency.as_micros() as u64,
            "answered"
        );
        let recorder = &self.shared.recorder;
        // export (docs/EXPORT.md): the query's bytes now; the front end adds the answer's.
        let feed = handled.verdict.as_ref().map(|v| &v.feed);
        if let Some(export) =
            recorder.export_for(handled.outcome, feed.map(|f| (&*f.name, &*f.category)))
        {
            exchange::pending(
                export.clone(),
                Exchange {
                    client: request.src(),
                    transport,
                    query_time: exchange::arrived(latency),
                    response_time: UNIX_EPOCH,
                    messages: Messages::new(request.as_slice(), &[]),
                    outcome: handled.outcome,
                    verdict: handled.verdict.as_ref().map(|v| ExchangeVerdict {
                        feed: v.feed.name.clone(),
                        category: v.feed.category.clone(),
                        rule: v.rule.clone(),
                        action: v.action(),
                    }),
                },
            );
        }
        if !recorder.admits(handled.outcome, self.load.saturated()) {
            return;
        }
        let logged = Logged {
            client: request.src(),
            transport,
            name: qname,
            qtype: request.queries.queries().first().map(|q| q.query_type()),
            outcome: handled.outcome,
            feed: handled.verdict.as_ref().map(|v| v.feed.name.clone()),
            rule: handled
                .verdict
                .as_ref()
                .map(|v| v.rule.clone())
                .or_else(|| handled.note.map(Arc::from)),
            rcode: handled.reply.rcode,
            answer: handled.reply.summary().into(),
            latency,
            upstream: handled.upstream.clone(),
        };
        recorder.record(logged.event());
    }
}

/// Checks an upstream answer's CNAME targets and addresses ([`crate::site::inspect`],
/// shared with `GET /api/v1/check?resolve=true`); the first listed one blocks it.
fn inspect(policy: &Policy, reply: &Reply) -> Option<(Outcome, Verdict)> {
    Some(match crate::site::inspect(policy, reply)? {
        poolguard_policy::Caught::Cname { verdict, .. } => (Outcome::CnameBlocked, verdict),
        poolguard_policy::Caught::Address { verdict, .. } => (Outcome::IpBlocked, verdict),
    })
}

/// The question's name, lower-case without trailing dot ("" for the root or no question).
fn first_name(request: &Request) -> String {
    request
        .queries
        .queries()
        .first()
        .map(|q| name_text(&Name::from(q.name().clone())))
        .unwrap_or_default()
}

fn name_text(name: &Name) -> String {
    let mut text = name.to_lowercase().to_ascii();
    if text.ends_with('.') {
        text.pop();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_without_dot() {
        let n = Name::from_ascii("XMR.Pool.Example.").unwrap();
        assert_eq!(name_text(&n), "xmr.pool.example");
        assert_eq!(name_text(&Name::root()), "");
    }
}
