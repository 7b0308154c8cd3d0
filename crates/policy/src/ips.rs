//! The address table: longest-prefix match over IPv4 and IPv6 feeds.
//!
//! `prefix-trie`'s `PrefixMap` (a tree bitmap) does the matching; IP feeds are small (thousands
//! of prefixes, not millions) and looked up only for addresses in upstream answers, so a
//! hand-written sorted-range table would buy nothing measurable. Every value carries its rule
//! text pre-rendered (`10.0.0.0/8`), so a verdict only clones two `Arc`s.
//!
//! IPv4-mapped IPv6 (`::ffff:10.1.2.3`) is the same host as `10.1.2.3`: mapped addresses are
//! checked against the IPv4 table, and mapped prefixes in feeds (`::ffff:10.0.0.0/104`) are
//! stored there too. A v4 match of length L stands for a v6 match of length 96 + L, longer than
//! any v6 prefix that covers the mapped range, so "v4 first, then v6" is still longest-match.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

/// One listed prefix: the feed that listed it first, and the rule as the feed wrote it.
#[derive(Debug, Clone)]
pub(super) struct IpRule {
    pub feed: u16,
    pub rule: Arc<str>,
    pub net: IpNet,
}

/// The compiled table; immutable once built.
#[derive(Default, Clone)]
pub(super) struct IpTable {
    v4: PrefixMap<Ipv4Net, IpRule>,
    v6: PrefixMap<Ipv6Net, IpRule>,
}

/// `::ffff:a.b.c.d/96+L` as `a.b.c.d/L`; `None` for anything else.
fn mapped_net(net: &Ipv6Net) -> Option<Ipv4Net> {
    let len = net.prefix_len().checked_sub(96)?;
    let v4 = net.network().to_ipv4_mapped()?;
    Ipv4Net::new(v4, len).ok()
}

impl IpTable {
    /// Adds a prefix unless an earlier feed already listed it (first feed wins).
    pub fn add(&mut self, net: IpNet, feed: u16) {
        let rule = IpRule {
            feed,
            rule: net.to_string().into(),
            net,
        };
        match net {
            IpNet::V4(n) => insert_first(&mut self.v4, n.trunc(), rule),
            IpNet::V6(n) => match mapped_net(&n) {
                Some(v4) => insert_first(&mut self.v4, v4.trunc(), rule),
                None => insert_first(&mut self.v6, n.trunc(), rule),
            },
        }
    }

    /// Distinct prefixes.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// The most specific prefix containing `ip`.
    #[inline]
    pub fn find(&self, ip: IpAddr) -> Option<&IpRule> {
        match ip {
            IpAddr::V4(a) => self.find_v4(a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.find_v4(v4).or_else(|| self.find_v6(a)),
                None => self.find_v6(a),
            },
        }
    }

    fn find_v4(&self, a: Ipv4Addr) -> Option<&IpRule> {
        self.v4.get_lpm(&Ipv4Net::from(a)).map(|(_, r)| r)
    }

    fn find_v6(&self, a: Ipv6Addr) -> Option<&IpRule> {
        self.v6.get_lpm(&Ipv6Net::from(a)).map(|(_, r)| r)
    }

    /// Every listed prefix, IPv4 first, each in address order.
    pub fn iter(&self) -> impl Iterator<Item = &IpRule> + '_ {
        self.v4
            .iter()
            .map(|(_, r)| r)
            .chain(self.v6.iter().map(|(_, r)| r))
    }
}

fn insert_first<P: prefix_trie::Prefix>(map: &mut PrefixMap<P, IpRule>, p: P, rule: IpRule) {
    if map.get(&p).is_none() {
        map.insert(p, rule);
    }
}
