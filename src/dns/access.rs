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
}
