//! The query-log event of one answered query, built the same way by both paths (`handler.rs`
//! and `fast/`): each hands over what it knows in its own types, and [`Logged::event`] stamps
//! the time and spells type, rcode and latency the way the query log stores them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::text::{rcode_text, type_mnemonic};
use poolguard_record::{Outcome, QueryEvent, Transport};

/// What a path knows about a query it answered, when the recorder admits its event.
pub(crate) struct Logged<'a> {
    pub client: SocketAddr,
    pub transport: Transport,
    /// The question's name, lower case without trailing dot.
    pub name: &'a str,
    /// The question's type; `None` when the query had no question.
    pub qtype: Option<RecordType>,
    pub outcome: Outcome,
    /// Feed and rule that decided it, for hits and allowlisted queries.
    pub feed: Option<Arc<str>>,
    pub rule: Option<Arc<str>>,
    pub rcode: ResponseCode,
    /// The answer section in short (`Reply::summary`).
    pub answer: Arc<str>,
    /// From arrival to a ready answer.
    pub latency: Duration,
    /// Which upstream answered, when forwarded or cached.
    pub upstream: Option<Arc<str>>,
}

impl Logged<'_> {
    /// The event, time-stamped now. Allocates the name only (see `QueryEvent`).
    pub(crate) fn event(self) -> QueryEvent {
        QueryEvent {
            time_ms: now_ms(),
            client: self.client,
            transport: self.transport,
            name: self.name.into(),
            qtype: self.qtype.map(type_mnemonic).unwrap_or_default(),
            outcome: self.outcome,
            feed: self.feed,
            rule: self.rule,
            rcode: rcode_text(self.rcode),
            answer: self.answer,
            latency_us: u32::try_from(self.latency.as_micros()).unwrap_or(u32::MAX),
            upstream: self.upstream,
        }
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
