//! The quarantine set the DNS path consults: "terminals that keep mining lose internet access".
//!
//! The set of quarantined addresses is an immutable `HashSet` behind an `ArcSwap`: the DNS
//! path does one lock-free `load` (no allocation, no lock) and one hash lookup per query.
//! Changes (a threshold crossed in the writer, a release through the API, the start-up load
//! from SQLite) build a new set and swap it in whole; they are rare. SQLite (`quarantine`
//! table) is the source of truth, so the state survives restarts.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arc_swap::ArcSwap;

use poolguard_config::incidents::EnforcementConfig;

type IpSet = HashSet<IpAddr, foldhash::fast::RandomState>;
type NameSet = HashSet<Box<str>, foldhash::fast::RandomState>;

/// Quarantined addresses plus what their walled garden looks like.
#[derive(Debug)]
pub struct Quarantine {
    set: ArcSwap<IpSet>,
    reachable: NameSet,
    /// A answers for quarantined clients (the notice page).
    pub notice_ipv4: Ipv4Addr,
    /// AAAA answers for quarantined clients.
    pub notice_ipv6: Ipv6Addr,
}

impl Quarantine {
    /// An empty set with the walled garden from `[enforcement]`.
    pub fn new(cfg: &EnforcementConfig) -> Self {
        let reachable = cfg
            .reachable
            .iter()
            .filter_map(|r| poolguard_model::domain::DomainName::parse(r).ok())
            .map(|d| Box::<str>::from(d.as_str()))
            .collect();
        Self {
            set: ArcSwap::from_pointee(IpSet::default()),
            reachable,
            notice_ipv4: cfg.notice_ipv4,
            notice_ipv6: cfg.notice_ipv6,
        }
    }

    /// The hot-path check: one lock-free load, one lookup, no allocation.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let set = self.set.load();
        !set.is_empty() && set.contains(&ip.to_canonical())
    }

    /// Whether a quarantined client may still resolve `name` (lower-case, no trailing dot):
    /// the name or one of its parents is in `[enforcement] reachable`. No allocation: the
    /// suffixes are slices of `name`.
    pub fn is_reachable(&self, name: &str) -> bool {
        if self.reachable.is_empty() {
            return false;
        }
        let mut rest = name;
        // Bounded by the number of labels.
        loop {
            if self.reachable.contains(rest) {
                return true;
            }
            match rest.find('.') {
                Some(i) => rest = &rest[i + 1..],
                None => return false,
            }
        }
    }

    /// Adds an address (returns false when it was already there).
    pub fn insert(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.set.load().contains(&ip) {
            return false;
        }
        self.set.rcu(|s| {
            let mut s = IpSet::clone(s);
            s.insert(ip);
            s
        });
        true
    }

    /// Removes an address (returns false when it was not there).
    pub fn remove(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if !self.set.load().contains(&ip) {
            return false;
        }
        self.set.rcu(|s| {
            let mut s = IpSet::clone(s);
            s.remove(&ip);
            s
        });
        true
    }

    /// Replaces the whole set (start-up load from SQLite).
    pub fn replace(&self, ips: impl IntoIterator<Item = IpAddr>) {
        let set: IpSet = ips.into_iter().map(|ip| ip.to_canonical()).collect();
        self.set.store(Arc::new(set));
    }

    /// How many addresses are quarantined.
    pub fn len(&self) -> usize {
        self.set.load().len()
    }

    /// Whether nobody is quarantined.
    pub fn is_empty(&self) -> bool {
        self.set.load().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachable_names_include_subdomains() {
        let q = Quarantine::new(&EnforcementConfig {
            reachable: vec!["portal.campus.test".into(), "HELP.campus.test.".into()],
            ..EnforcementConfig::default()
        });
        assert!(q.is_reachable("portal.campus.test"));
        assert!(q.is_reachable("www.portal.campus.test"));
        assert!(q.is_reachable("help.campus.test"));
        assert!(!q.is_reachable("campus.test"));
        assert!(!q.is_reachable("evilportal.campus.test"));
    }

    #[test]
    fn insert_remove_and_ipv4_mapped() {
        let q = Quarantine::new(&EnforcementConfig::default());
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        assert!(!q.contains(ip));
        assert!(q.insert(ip));
        assert!(!q.insert(ip));
        assert!(q.contains("::ffff:10.0.0.7".parse().unwrap()));
        assert!(q.remove(ip));
        assert!(!q.contains(ip));
    }
}
