//! The quarantine set the DNS path consults: "terminals that keep mining lose internet access".
//!
//! The set of quarantined addresses is an immutable `HashSet` behind an `ArcSwap`: the DNS
//! path does one lock-free `load` (no allocation, no lock) and one hash lookup per query.
//! Changes (a threshold crossed in the writer, a release through the API, the start-up load
//! from SQLite) build a new set and swap it in whole; they are rare. SQLite (`quarantine`
//! table) is the source of truth, so the state survives restarts. Addresses a quarantined
//! device moves to are added as *followed* ones (`poolguard_incidents::follow`).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use ipnet::IpNet;

use poolguard_config::incidents::EnforcementConfig;

type IpSet = HashSet<IpAddr, foldhash::fast::RandomState>;
type NameSet = HashSet<Box<str>, foldhash::fast::RandomState>;

/// What the DNS path reads: single addresses in a hash set, and the few networks quarantined
/// in an emergency (looked at only when there are any).
#[derive(Debug, Default)]
struct Published {
    ips: IpSet,
    networks: Vec<IpNet>,
}

/// What the set is made of; changed under a lock (rarely), published whole to `set`.
#[derive(Debug, Default)]
struct Parts {
    /// The addresses quarantined by staff, thresholds or the store's list.
    listed: IpSet,
    /// Whole networks quarantined by staff (an emergency).
    networks: Vec<IpNet>,
    /// Addresses a quarantined device or login holds now (it renewed to a new lease or
    /// logged in elsewhere), each with the listed address whose quarantine it follows.
    followed: HashMap<IpAddr, IpAddr>,
}

/// Quarantined addresses plus what their walled garden looks like.
#[derive(Debug)]
pub struct Quarantine {
    set: ArcSwap<Published>,
    parts: Mutex<Parts>,
    /// Bumped by every change of the listed addresses (who follows them looks again).
    generation: AtomicU64,
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
            set: ArcSwap::from_pointee(Published::default()),
            parts: Mutex::new(Parts::default()),
            generation: AtomicU64::new(0),
            reachable,
            notice_ipv4: cfg.notice_ipv4,
            notice_ipv6: cfg.notice_ipv6,
        }
    }

    /// The hot-path check: one lock-free load, one lookup, no allocation (and a walk of the
    /// quarantined networks, when there are any).
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let set = self.set.load();
        if set.ips.is_empty() && set.networks.is_empty() {
            return false;
        }
        let ip = ip.to_canonical();
        set.ips.contains(&ip) || set.networks.iter().any(|n| n.contains(&ip))
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

    /// Changes the parts under the lock and publishes the union; `f` says whether the
    /// listed addresses changed.
    fn change<T>(&self, f: impl FnOnce(&mut Parts) -> (T, bool)) -> T {
        let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        let (out, listed_changed) = f(&mut parts);
        let mut ips = parts.listed.clone();
        ips.extend(parts.followed.keys().copied());
        let networks = parts.networks.clone();
        self.set.store(Arc::new(Published { ips, networks }));
        if listed_changed {
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    /// Adds an address (returns false when it was already listed).
    pub fn insert(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.change(|p| {
            let added = p.listed.insert(ip);
            (added, added)
        })
    }

    /// Removes an address (returns false when it was not listed).
    pub fn remove(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.change(|p| {
            let removed = p.listed.remove(&ip);
            if removed {
                // What followed its quarantine is released with it, at once.
                p.followed.retain(|_, from| *from != ip);
            }
            (removed, removed)
        })
    }

    /// Replaces the listed addresses (start-up load, a change made through another node).
    pub fn replace(&self, ips: impl IntoIterator<Item = IpAddr>) {
        self.replace_targets(ips.into_iter().map(IpNet::from));
    }

    /// Replaces the listed addresses and networks (the store's list: `poolguard_model::net`).
    pub fn replace_targets(&self, targets: impl IntoIterator<Item = IpNet>) {
        let mut listed = IpSet::default();
        let mut networks = Vec::new();
        for t in targets {
            match host(t) {
                Some(ip) => {
                    listed.insert(ip);
                }
                None => networks.push(t.trunc()),
            }
        }
        networks.sort();
        networks.dedup();
        self.change(|p| {
            let changed = p.listed != listed || p.networks != networks;
            p.listed = listed;
            p.networks = networks;
            p.followed.retain(|_, from| p.listed.contains(from));
            ((), changed)
        })
    }

    /// Adds an address or a network (false when it was already listed).
    pub fn insert_target(&self, target: IpNet) -> bool {
        match host(target) {
            Some(ip) => self.insert(ip),
            None => self.change(|p| {
                let net = target.trunc();
                let added = !p.networks.contains(&net);
                if added {
                    p.networks.push(net);
                    p.networks.sort();
                }
                (added, added)
            }),
        }
    }

    /// Removes an address or a network (false when it was not listed).
    pub fn remove_target(&self, target: IpNet) -> bool {
        match host(target) {
            Some(ip) => self.remove(ip),
            None => self.change(|p| {
                let net = target.trunc();
                let before = p.networks.len();
                p.networks.retain(|n| *n != net);
                let removed = p.networks.len() != before;
                (removed, removed)
            }),
        }
    }

    /// Replaces the followed addresses: each address a quarantined device or login holds
    /// now, with the listed address whose quarantine it follows (ignored when that one is
    /// no longer listed).
    pub fn set_followed(&self, followed: HashMap<IpAddr, IpAddr>) {
        self.change(|p| {
            p.followed = followed
                .into_iter()
                .map(|(ip, from)| (ip.to_canonical(), from.to_canonical()))
                .filter(|(ip, from)| p.listed.contains(from) && !p.listed.contains(ip))
                .collect();
            ((), false)
        })
    }

    /// The listed address whose quarantine `ip` follows, when it is a followed one.
    pub fn origin_of(&self, ip: IpAddr) -> Option<IpAddr> {
        let parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        parts.followed.get(&ip.to_canonical()).copied()
    }

    /// The addresses that follow the quarantine of listed address `ip`, sorted.
    pub fn followed_from(&self, ip: IpAddr) -> Vec<IpAddr> {
        let ip = ip.to_canonical();
        let parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<IpAddr> = parts
            .followed
            .iter()
            .filter(|(_, from)| **from == ip)
            .map(|(a, _)| *a)
            .collect();
        out.sort();
        out
    }

    /// How many times the listed addresses changed: unchanged means nothing to follow anew.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// How many addresses (listed and followed) and networks are quarantined.
    pub fn len(&self) -> usize {
        let set = self.set.load();
        set.ips.len() + set.networks.len()
    }

    /// Whether nobody is quarantined.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The address of a single-address target (a /32 or /128), canonical.
fn host(target: IpNet) -> Option<IpAddr> {
    (target.prefix_len() == target.max_prefix_len()).then(|| target.addr().to_canonical())
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

    #[test]
    fn followed_addresses_are_quarantined_and_released_with_their_origin() {
        let q = Quarantine::new(&EnforcementConfig::default());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(q.insert(ip("10.0.0.7")));
        let before = q.generation();
        q.set_followed(HashMap::from([
            (ip("10.0.0.9"), ip("10.0.0.7")),
            // Following an address that is not listed: ignored.
            (ip("10.0.0.10"), ip("10.0.0.8")),
        ]));
        assert_eq!(q.generation(), before, "following is not a listing change");
        assert!(q.contains(ip("10.0.0.9")));
        assert!(!q.contains(ip("10.0.0.10")));
        assert_eq!(q.origin_of(ip("10.0.0.9")), Some(ip("10.0.0.7")));
        assert_eq!(q.followed_from(ip("10.0.0.7")), [ip("10.0.0.9")]);
        assert!(q.remove(ip("10.0.0.7")));
        assert!(!q.contains(ip("10.0.0.9")), "released everywhere at once");
        assert!(q.generation() > before);
    }

    #[test]
    fn a_network_quarantines_every_address_in_it() {
        let q = Quarantine::new(&EnforcementConfig::default());
        let net: IpNet = "10.20.0.0/24".parse().unwrap();
        assert!(q.insert_target(net));
        assert!(
            !q.insert_target("10.20.0.9/24".parse().unwrap()),
            "the same network"
        );
        assert!(q.contains("10.20.0.77".parse().unwrap()));
        assert!(q.contains("::ffff:10.20.0.1".parse().unwrap()));
        assert!(!q.contains("10.20.1.1".parse().unwrap()));
        assert_eq!(q.len(), 1);
        assert!(q.remove_target(net));
        assert!(!q.contains("10.20.0.77".parse().unwrap()));
        q.replace_targets(["10.0.0.7/32".parse().unwrap(), net]);
        assert!(
            q.contains("10.0.0.7".parse().unwrap()) && q.contains("10.20.0.1".parse().unwrap())
        );
    }
}
