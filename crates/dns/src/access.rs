//! Who may use the resolver: the `[dns] allow` networks.
//!
//! An open resolver on a campus edge is an amplification weapon, so anything outside the
//! configured client networks gets REFUSED. hickory-server has its own access list, but it
//! refuses before our handler runs, where we could neither count nor record the refusal; the
//! check is done here instead, as the first stage of the handler.

use std::net::IpAddr;

use ipnet::IpNet;

/// The client networks allowed to query. Checked once per query, so kept as a flat list: the
/// configured list is a handful of prefixes.
#[derive(Debug, Clone)]
pub struct ClientAccess {
    allow: Vec<IpNet>,
}

impl ClientAccess {
    /// From `[dns] allow`.
    pub fn new(allow: &[IpNet]) -> Self {
        Self {
            allow: allow.to_vec(),
        }
    }

    /// Whether `ip` may query. An IPv4-mapped IPv6 source (dual-stack socket) is checked as IPv4.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_networks_pass() {
        let a = ClientAccess::new(&["10.0.0.0/8".parse().unwrap()]);
        assert!(a.allows("10.1.2.3".parse().unwrap()));
        assert!(a.allows("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!a.allows("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn shipped_default_is_loopback_and_private_ranges_only() {
        let a = ClientAccess::new(&poolguard_config::DnsConfig::default().allow);
        for ok in [
            "127.0.0.1",
            "::1",
            "10.20.30.40",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "fd12:3456::1",
            "::ffff:10.1.2.3",
            "::ffff:127.0.0.1",
        ] {
            assert!(a.allows(ok.parse().unwrap()), "{ok}");
        }
        for no in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "192.0.2.1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
            "::ffff:172.32.0.1",
            "0.0.0.0",
            "255.255.255.255",
        ] {
            assert!(!a.allows(no.parse().unwrap()), "{no}");
        }
    }
}
