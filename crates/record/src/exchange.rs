//! Whole exchanges (query and answer wire bytes) for exports such as dnstap (docs/EXPORT.md).
//!
//! The query log ([`QueryEvent`](super::QueryEvent)) carries a summary; dnstap carries the
//! messages themselves. Copying them costs an allocation per query, so it happens only when an
//! export is configured *and* wants the query ([`ExportSink::wants`]): with no export, the DNS
//! path checks one `Option` and does nothing else.
//!
//! The fast path has both messages in hand and hands over a finished [`Exchange`]. The general
//! path records in the handler before the answer is encoded: the handler leaves a [`pending`]
//! exchange (with the query bytes) in a per-request task-local slot that the front end opens
//! with [`scope`] only when exporting, and the front end completes it with the bytes it sends
//! ([`complete`]). Outside a scope both calls do nothing.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use super::{Outcome, Transport};
use poolguard_model::Action;

/// One answered query with both wire messages, as an export ships it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The client's address and port.
    pub client: SocketAddr,
    /// UDP or TCP, dnstap's `socket_protocol`.
    pub transport: Transport,
    /// When the query arrived (wall clock).
    pub query_time: SystemTime,
    /// When the answer was handed to the socket.
    pub response_time: SystemTime,
    /// The query and the answer (what was sent, after any truncation), verbatim.
    pub messages: Messages,
    /// What the resolver did, for the exports' `hits` selection and the dnstap policy.
    pub outcome: Outcome,
    /// The feed that decided, for blocks and allowlist matches.
    pub verdict: Option<ExchangeVerdict>,
}

/// Both wire messages of an exchange in one allocation: the DNS path makes one per exported
/// exchange instead of two, and the export task frees one. Measured on the harness's blocked
/// mix, allocations the DNS path makes and the export task frees were a visible part of the
/// dnstap cost (docs/EXPORT.md, "Cost").
#[derive(Debug, Clone, Default)]
pub struct Messages {
    /// The query, then the answer.
    bytes: Box<[u8]>,
    /// Where the answer starts.
    query_len: usize,
}

impl Messages {
    /// Copies `query` and `response`.
    pub fn new(query: &[u8], response: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(query.len() + response.len());
        bytes.extend_from_slice(query);
        bytes.extend_from_slice(response);
        Self {
            bytes: bytes.into_boxed_slice(),
            query_len: query.len(),
        }
    }

    /// The query, verbatim.
    pub fn query(&self) -> &[u8] {
        &self.bytes[..self.query_len]
    }

    /// The answer, verbatim.
    pub fn response(&self) -> &[u8] {
        &self.bytes[self.query_len..]
    }
}

/// Which feed and rule decided an exchange, and how the feed answers.
#[derive(Debug, Clone)]
pub struct ExchangeVerdict {
    /// The feed's name, for exports filtered by feed and dnstap's policy rule.
    pub feed: Arc<str>,
    /// The feed's category (`mining`, ...), for exports filtered by category.
    pub category: Arc<str>,
    /// The rule that matched (`pool.example`, `=host`, `10.0.0.0/8`).
    pub rule: Arc<str>,
    /// The feed's action (its answer to a block).
    pub action: Action,
}

/// Where exchanges go (the configured exports). Both calls run on DNS workers.
pub trait ExportSink: Send + Sync + 'static {
    /// Whether any export wants an exchange with this outcome and deciding feed (`(name,
    /// category)`): checked before anything is copied. Must be cheap and allocation-free.
    fn wants(&self, outcome: Outcome, feed: Option<(&str, &str)>) -> bool;

    /// Queues `exchange` without blocking; a full queue drops it (and counts it).
    fn submit(&self, exchange: Exchange);
}

/// An exchange whose answer is not encoded yet, and the export it goes to.
struct Pending {
    sink: Arc<dyn ExportSink>,
    exchange: Exchange,
}

tokio::task_local! {
    static PENDING: RefCell<Option<Pending>>;
}

/// Runs one general-path request with a slot for its pending exchange. The front end wraps a
/// request in it only when an export is configured.
pub async fn scope<F: Future>(request: F) -> F::Output {
    PENDING.scope(RefCell::new(None), request).await
}

/// Leaves `exchange` (only the query in its messages) for the front end of this request to complete.
/// Does nothing outside [`scope`].
pub fn pending(sink: Arc<dyn ExportSink>, exchange: Exchange) {
    let _ = PENDING.try_with(|slot| {
        *slot.borrow_mut() = Some(Pending { sink, exchange });
    });
}

/// Completes this request's pending exchange with the answer being sent, and submits it.
/// Does nothing outside [`scope`] or when the handler left nothing (the export did not want it).
pub fn complete(response: &[u8]) {
    let pending = PENDING
        .try_with(|slot| slot.borrow_mut().take())
        .ok()
        .flatten();
    if let Some(Pending { sink, mut exchange }) = pending {
        exchange.messages = Messages::new(exchange.messages.query(), response);
        exchange.response_time = SystemTime::now();
        sink.submit(exchange);
    }
}

/// The wall-clock time a query that has been in work for `elapsed` arrived.
pub fn arrived(elapsed: std::time::Duration) -> SystemTime {
    let now = SystemTime::now();
    now.checked_sub(elapsed).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Keep(Mutex<Vec<Exchange>>);

    impl ExportSink for Keep {
        fn wants(&self, _: Outcome, _: Option<(&str, &str)>) -> bool {
            true
        }
        fn submit(&self, exchange: Exchange) {
            self.0.lock().unwrap().push(exchange);
        }
    }

    fn exchange() -> Exchange {
        Exchange {
            client: SocketAddr::from(([127, 0, 0, 1], 5300)),
            transport: Transport::Udp,
            query_time: SystemTime::now(),
            response_time: SystemTime::now(),
            messages: Messages::new(&[1, 2], &[]),
            outcome: Outcome::Allowed,
            verdict: None,
        }
    }

    #[tokio::test]
    async fn the_responder_completes_what_the_handler_left_in_its_scope() {
        let keep = Arc::new(Keep::default());
        let sink: Arc<dyn ExportSink> = keep.clone();
        scope(async {
            pending(sink.clone(), exchange());
            complete(&[9, 9, 9]);
            // A second answer for the same request (none exists) finds nothing pending.
            complete(&[7]);
        })
        .await;
        // Outside a scope nothing is kept nor submitted.
        pending(sink, exchange());
        complete(&[5]);
        let kept = keep.0.lock().unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].messages.query(), &[1, 2]);
        assert_eq!(kept[0].messages.response(), &[9, 9, 9]);
    }
}
