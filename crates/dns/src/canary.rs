//! Canary and relay names answered NXDOMAIN so clients keep the campus resolver (and its
//! policy), as the anchors of these names ask resolvers to do:
//!
//! * `use-application-dns.net`: Firefox does not turn on its own DoH where this is NXDOMAIN
//!   (Mozilla's "canary domain");
//! * `mask.icloud.com`, `mask-h2.icloud.com`: Apple devices tell the user iCloud Private Relay
//!   is off on this network, instead of sending their DNS through the relay.
//!
//! Only these exact names (no subdomains: the anchors name no others). Each is switched by
//! `[dns.canary]` (default on). The query log records them as `local` with the rule
//! `canary:<name>`, never as a hit: asking is what every healthy browser does.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Name;

use crate::answer::synthetic_soa;
use crate::reply::Reply;
use poolguard_config::CanaryConfig;

/// Negative TTL of the answer (and its SOA): Firefox asks again on each network change, so
/// an hour costs nothing and turning a switch off takes effect within it.
const CANARY_TTL: u32 = 3600;
/// Firefox's DoH canary.
const FIREFOX: &str = "use-application-dns.net";
/// iCloud Private Relay's names.
const PRIVATE_RELAY: [&str; 2] = ["mask.icloud.com", "mask-h2.icloud.com"];

/// The names switched on, from `[dns.canary]`.
pub struct Canaries {
    names: Vec<&'static str>,
}

impl Canaries {
    /// From `[dns.canary]`.
    pub fn new(config: &CanaryConfig) -> Self {
        let mut names = Vec::new();
        if config.use_application_dns {
            names.push(FIREFOX);
        }
        if config.icloud_private_relay {
            names.extend(PRIVATE_RELAY);
        }
        Self { names }
    }

    /// NXDOMAIN with the name's own SOA when `qname` (lower case, no trailing dot) is a canary
    /// switched on; with the rule text the query log records.
    pub fn answer(&self, qname: &str, name: &Name) -> Option<(Reply, &'static str)> {
        let canary = *self.names.iter().find(|n| **n == qname)?;
        let mut reply = Reply::code(ResponseCode::NXDomain);
        reply.authoritative = true;
        reply
            .authorities
            .push(synthetic_soa(name.clone(), CANARY_TTL));
        let rule = match canary {
            FIREFOX => "canary:use-application-dns.net",
            "mask.icloud.com" => "canary:mask.icloud.com",
            _ => "canary:mask-h2.icloud.com",
        };
        Some((reply, rule))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(format!("{text}.")).unwrap()
    }

    #[test]
    fn each_switch_covers_its_names_only() {
        let on = Canaries::new(&CanaryConfig::default());
        for n in [FIREFOX, "mask.icloud.com", "mask-h2.icloud.com"] {
            let (reply, rule) = on.answer(n, &name(n)).expect(n);
            assert_eq!(reply.rcode, ResponseCode::NXDomain);
            assert!(rule.ends_with(n));
        }
        assert!(
            on.answer("www.icloud.com", &name("www.icloud.com"))
                .is_none()
        );
        assert!(
            on.answer(
                "x.use-application-dns.net",
                &name("x.use-application-dns.net")
            )
            .is_none()
        );
        let off = Canaries::new(&CanaryConfig {
            use_application_dns: false,
            icloud_private_relay: true,
        });
        assert!(off.answer(FIREFOX, &name(FIREFOX)).is_none());
        assert!(
            off.answer("mask.icloud.com", &name("mask.icloud.com"))
                .is_some()
        );
    }
}
