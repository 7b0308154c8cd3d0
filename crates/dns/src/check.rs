//! What the DNS path would do with a question, for `GET /api/v1/check`: the same
//! [`policy::decide`](poolguard_policy::decide) over the same site (the server's [`Shared`]
//! state), and with `resolve=true` the same forwarding and answer inspection
//! ([`super::site::inspect`]). Nothing here answers a client or records a query.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::{Name, RecordType};

use crate::shared::Shared;
use crate::text::rcode_text;
use crate::upstream::{UpstreamError, UpstreamPlan};
use poolguard_policy::{Caught, Policy, QueryDecision, SharedPolicy, Site};

/// The DNS server's decision state and upstream plan, handed to the API at start.
#[derive(Clone)]
pub struct DnsCheck {
    shared: Arc<Shared>,
    plan: UpstreamPlan,
}

/// The outcome of forwarding a checked name.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The response code the client would get before inspection (`NOERROR`, `NXDOMAIN`, …).
    pub rcode: &'static str,
    /// Which servers answered (the query log's `upstream`).
    pub upstream: String,
    /// The answer section in short (`CNAME x.example., A 192.0.2.1`).
    pub answer: String,
    /// Whether the answer was inspected (`[blocking] inspect_answers`, and not allowlisted).
    pub inspected: bool,
    /// What inspection caught, if anything: the answer would be blocked.
    pub caught: Option<Caught>,
}

/// A [`Site`] for a check without a `client`: every client is allowed and none quarantined;
/// zones and conditional forwarding are the server's.
struct AnyClient<'a>(&'a Shared);

impl Site for AnyClient<'_> {
    fn allows(&self, _: IpAddr) -> bool {
        true
    }
    fn walled(&self, _: IpAddr, _: &str) -> bool {
        false
    }
    fn local_zone(&self, qname: &str) -> bool {
        self.0.local_zone(qname)
    }
    fn conditional(&self, qname: &str) -> Option<&str> {
        self.0.conditional(qname)
    }
}

impl DnsCheck {
    /// Built by `DnsServer::start_bound` from the workers' own state, so a check sees the
    /// same policy, zones and upstreams as DNS.
    pub(crate) fn new(shared: Arc<Shared>, plan: UpstreamPlan) -> Self {
        Self { shared, plan }
    }

    /// The policy the DNS path uses (the same `ArcSwap`).
    pub fn policy(&self) -> &SharedPolicy {
        &self.shared.policy
    }

    /// Runs `f` on the decision for `qname` (lower case, no trailing dot) of type `qtype`,
    /// asked by `client` (or by any allowed, unquarantined client when `None`), against
    /// `policy`. The decision borrows from the policy snapshot, hence the callback.
    pub fn decide<R>(
        &self,
        policy: &Policy,
        client: Option<IpAddr>,
        qname: &str,
        qtype: RecordType,
        f: impl FnOnce(QueryDecision<'_>) -> R,
    ) -> R {
        let qtype = u16::from(qtype);
        match client {
            Some(ip) => f(poolguard_policy::decide(
                &*self.shared,
                policy,
                ip,
                qname,
                qtype,
            )),
            None => {
                let site = AnyClient(&self.shared);
                // A bound on an unspecified address: `AnyClient` never looks at it.
                let ip = IpAddr::from([0, 0, 0, 0]);
                f(poolguard_policy::decide(&site, policy, ip, qname, qtype))
            }
        }
    }

    /// Forwards `qname`/`qtype` as the DNS path would (the same resolver setup and
    /// conditional routing, a resolver of its own so no worker's cache is touched) and
    /// inspects the answer unless `allowlisted`.
    pub async fn resolve(
        &self,
        qname: &str,
        qtype: RecordType,
        allowlisted: bool,
    ) -> Result<Resolution, UpstreamError> {
        let name = Name::from_ascii(format!("{qname}."))
            .map_err(|e| UpstreamError::Build(format!("`{qname}`: {e}")))?;
        let upstreams = self.plan.build()?;
        let forwarder = upstreams.for_name(qname);
        let forwarded = forwarder.forward(name, qtype).await;
        let inspected = self.shared.inspect && !allowlisted && !forwarded.failed;
        let caught = if inspected {
            super::site::inspect(&self.shared.policy.load(), &forwarded.reply)
        } else {
            None
        };
        Ok(Resolution {
            rcode: rcode_text(forwarded.reply.rcode),
            upstream: forwarder.label().to_string(),
            answer: forwarded.reply.summary(),
            inspected,
            caught,
        })
    }
}
