//! The DNS server's shared state as the policy's [`Site`]: the `[dns] allow` list, the
//! quarantine, the `[[zones]]` and the `[[upstream.conditional]]` domains, so
//! [`policy::decide`](poolguard_policy::decide) sees the same site the DNS path serves and
//! `GET /api/v1/check` can ask the same questions.

use std::net::IpAddr;

use hickory_proto::rr::RData;

use crate::reply::Reply;
use crate::shared::Shared;
use poolguard_model::domain::{DomainName, name_within};
use poolguard_policy::{Caught, Policy, Seen, Site};

impl Site for Shared {
    #[inline]
    fn allows(&self, client: IpAddr) -> bool {
        self.access.allows(client)
    }

    #[inline]
    fn walled(&self, client: IpAddr, qname: &str) -> bool {
        self.quarantine
            .as_ref()
            .is_some_and(|q| q.contains(client) && !q.is_reachable(qname))
    }

    #[inline]
    fn local_zone(&self, qname: &str) -> bool {
        self.zones.covers(qname)
    }

    #[inline]
    fn conditional(&self, qname: &str) -> Option<&str> {
        // Empty in most configs: one length check on the fast path.
        self.conditional
            .iter()
            .map(DomainName::as_str)
            .find(|d| name_within(qname, d))
    }
}

/// Answer inspection of an upstream reply: its CNAME targets and addresses, in answer order,
/// through [`poolguard_policy::inspect`]. Used by the DNS path and by `GET /api/v1/check`.
pub fn inspect(policy: &Policy, reply: &Reply) -> Option<Caught> {
    for record in &reply.answers {
        let caught = match &record.data {
            RData::CNAME(target) => {
                let text = target.0.to_lowercase().to_ascii();
                poolguard_policy::inspect(policy, [Seen::Cname(&text)])
            }
            RData::A(a) => poolguard_policy::inspect(policy, [Seen::Address(a.0.into())]),
            RData::AAAA(a) => poolguard_policy::inspect(policy, [Seen::Address(a.0.into())]),
            _ => None,
        };
        if caught.is_some() {
            return caught;
        }
    }
    None
}
