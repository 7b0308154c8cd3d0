//! RFC 9462 discovery of designated resolvers: `_dns.resolver.arpa` SVCB answered with
//! poolguard's own DoT and DoH endpoints, so a client that upgrades to encrypted DNS
//! (Windows 11, Android, Apple platforms) upgrades to poolguard and keeps its policy, instead
//! of moving to a public resolver.
//!
//! One SVCB record per configured listener (none configured = NODATA, as for any name
//! without the type): priority 1 for DoT, 2 for DoH (DoT is cheaper to serve here, see
//! docs/BENCHMARKS.md), target = the listener's `name` (the name in its certificate), `port`
//! = the first listen address's, address hints = its listen addresses that are not
//! wildcards, and for DoH `dohpath` (RFC 9461 §5) = the path with `{?dns}`. A client doing
//! Verified Discovery (RFC 9462 §4.2) also checks that the certificate covers the address it
//! asked: the certificate then needs the resolver's IP addresses as SANs (docs/DNS.md).

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::svcb::{Alpn, IpHint, SVCB, SvcParamKey, SvcParamValue, Unknown};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::answer::synthetic_soa;
use crate::reply::Reply;
use poolguard_config::DnsConfig;

/// The name clients ask (RFC 9462 §4).
pub const DISCOVERY_NAME: &str = "_dns.resolver.arpa";
/// TTL of the answer: it changes only with the config (a restart).
const DISCOVERY_TTL: u32 = 3600;
/// SvcParamKey 7, `dohpath` (RFC 9461 §5); hickory has no named variant for it.
const DOHPATH_KEY: u16 = 7;

/// The SVCB data of this resolver's encrypted endpoints, built once from the config.
#[derive(Default)]
pub struct Discovery {
    records: Vec<SVCB>,
}

impl Discovery {
    /// From `[dns.tls]` and `[dns.https]` as configured; a listener whose `name` is not a
    /// valid name is left out (config validation refuses it first).
    pub fn new(dns: &DnsConfig) -> Self {
        let dot = dns
            .tls
            .as_ref()
            .map(|t| t.listen.as_slice())
            .unwrap_or_default();
        let doh = dns
            .https
            .as_ref()
            .map(|h| h.listen.as_slice())
            .unwrap_or_default();
        Self::bound(dns, dot, doh)
    }

    /// As [`Discovery::new`], with the addresses really bound (port 0 in the config is the
    /// kernel's pick, which is what a client must be told).
    pub fn bound(dns: &DnsConfig, dot: &[SocketAddr], doh: &[SocketAddr]) -> Self {
        let mut records = Vec::new();
        if let Some(t) = &dns.tls
            && let Some(svcb) = endpoint(1, &t.name, dot, b"dot", None)
        {
            records.push(svcb);
        }
        if let Some(h) = &dns.https
            && let Some(svcb) = endpoint(2, &h.name, doh, b"h2", Some(&h.path))
        {
            records.push(svcb);
        }
        Self { records }
    }

    /// The answer for `qname` when it is the discovery name, else `None`.
    pub fn answer(&self, qname: &str, name: &Name, qtype: RecordType) -> Option<Reply> {
        if qname != DISCOVERY_NAME {
            return None;
        }
        let mut reply = Reply::code(ResponseCode::NoError);
        reply.authoritative = true;
        if qtype == RecordType::SVCB && !self.records.is_empty() {
            reply.answers = self
                .records
                .iter()
                .map(|s| Record::from_rdata(name.clone(), DISCOVERY_TTL, RData::SVCB(s.clone())))
                .collect();
        } else {
            let apex = Name::from_ascii("resolver.arpa.").ok()?;
            reply.authorities.push(synthetic_soa(apex, DISCOVERY_TTL));
        }
        Some(reply)
    }
}

/// One endpoint's SVCB record (keys in ascending order, as RFC 9460 §2.2 requires).
fn endpoint(
    priority: u16,
    target: &str,
    listen: &[SocketAddr],
    alpn: &[u8],
    dohpath: Option<&str>,
) -> Option<SVCB> {
    let target = Name::from_ascii(format!("{}.", target.trim_end_matches('.'))).ok()?;
    let port = listen.first()?.port();
    let mut params = vec![
        (
            SvcParamKey::Alpn,
            SvcParamValue::Alpn(Alpn(vec![String::from_utf8_lossy(alpn).into_owned()])),
        ),
        (SvcParamKey::Port, SvcParamValue::Port(port)),
    ];
    let specified = || {
        listen
            .iter()
            .map(SocketAddr::ip)
            .filter(|ip| !ip.is_unspecified())
    };
    let v4: Vec<A> = specified()
        .filter_map(|ip| match ip {
            IpAddr::V4(a) => Some(A(a)),
            IpAddr::V6(_) => None,
        })
        .collect();
    let v6: Vec<AAAA> = specified()
        .filter_map(|ip| match ip {
            IpAddr::V6(a) => Some(AAAA(a)),
            IpAddr::V4(_) => None,
        })
        .collect();
    if !v4.is_empty() {
        params.push((SvcParamKey::Ipv4Hint, SvcParamValue::Ipv4Hint(IpHint(v4))));
    }
    if !v6.is_empty() {
        params.push((SvcParamKey::Ipv6Hint, SvcParamValue::Ipv6Hint(IpHint(v6))));
    }
    if let Some(path) = dohpath {
        let template = format!("{path}{{?dns}}");
        params.push((
            SvcParamKey::Unknown(DOHPATH_KEY),
            SvcParamValue::Unknown(Unknown(template.into_bytes())),
        ));
    }
    Some(SVCB::new(priority, target, params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use poolguard_config::{DohConfig, DotConfig};

    fn ask(d: &Discovery, qtype: RecordType) -> Reply {
        let name = Name::from_ascii("_dns.resolver.arpa.").unwrap();
        d.answer(DISCOVERY_NAME, &name, qtype).expect("answered")
    }

    #[test]
    fn configured_listeners_are_announced() {
        let dns = DnsConfig {
            tls: Some(DotConfig {
                name: "dns.campus.example".into(),
                listen: vec![
                    "10.1.0.53:853".parse().unwrap(),
                    "[::]:853".parse().unwrap(),
                ],
                ..DotConfig::default()
            }),
            https: Some(DohConfig {
                name: "dns.campus.example".into(),
                listen: vec!["10.1.0.53:8443".parse().unwrap()],
                ..DohConfig::default()
            }),
            ..DnsConfig::default()
        };
        let r = ask(&Discovery::new(&dns), RecordType::SVCB);
        let svcb: Vec<&SVCB> = r
            .answers
            .iter()
            .filter_map(|a| match &a.data {
                RData::SVCB(s) => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(svcb.len(), 2);
        assert_eq!(svcb[0].svc_priority, 1);
        assert_eq!(svcb[0].target_name.to_ascii(), "dns.campus.example.");
        let params = |s: &SVCB| {
            s.svc_params
                .iter()
                .map(|(k, v)| (u16::from(*k), v.clone()))
                .collect::<Vec<_>>()
        };
        let dot = params(svcb[0]);
        assert_eq!(dot[0].1, SvcParamValue::Alpn(Alpn(vec!["dot".into()])));
        assert_eq!(dot[1].1, SvcParamValue::Port(853));
        // The wildcard `[::]` is no hint; keys stay in ascending order.
        assert_eq!(dot.len(), 3, "{dot:?}");
        let doh = params(svcb[1]);
        assert_eq!(doh[1].1, SvcParamValue::Port(8443));
        let keys: Vec<u16> = doh.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [1, 3, 4, 7]);
        assert_eq!(
            doh[3].1,
            SvcParamValue::Unknown(Unknown(b"/dns-query{?dns}".to_vec()))
        );
        // The record encodes (hickory writes the unknown key's bytes as they are).
        let mut buf = Vec::new();
        let mut encoder = hickory_proto::serialize::binary::BinEncoder::new(&mut buf);
        hickory_proto::serialize::binary::BinEncodable::emit(&r.answers[1], &mut encoder)
            .expect("encodes");
    }

    #[test]
    fn nothing_configured_is_nodata() {
        let d = Discovery::new(&DnsConfig::default());
        let r = ask(&d, RecordType::SVCB);
        assert!(r.answers.is_empty());
        assert_eq!(r.rcode, ResponseCode::NoError);
        assert_eq!(r.authorities.len(), 1);
        let name = Name::from_ascii("x.resolver.arpa.").unwrap();
        assert!(
            d.answer("x.resolver.arpa", &name, RecordType::SVCB)
                .is_none()
        );
    }
}
