//! The exempt list (`[incidents.exempt]`): security staff's test machines query pools with
//! `dig` on purpose. They are answered as everyone is, their hits are stored marked with the
//! entry that exempted them, and they open no incident and trigger no quarantine.
//!
//! An entry matches the hit's address (an address or a network), or the MAC or account that
//! held the address at the hit's time (a lease, a login, or the ledger's row), so a staff
//! laptop stays exempt on whatever address DHCP gives it.

use std::net::IpAddr;

use ipnet::IpNet;
use poolguard_config::incidents::ExemptConfig;

use crate::normalise_mac;

/// Why an `[incidents.exempt]` entry was refused; names the entry's key.
#[derive(Debug, thiserror::Error)]
#[error("incidents.exempt.{key}: {reason}")]
pub struct ExemptError {
    /// `addresses[2]`, `macs[0]`, …
    pub key: String,
    pub reason: String,
}

/// The parsed list; empty when `[incidents.exempt]` lists nothing.
#[derive(Debug, Clone, Default)]
pub struct Exempt {
    networks: Vec<(IpNet, String)>,
    macs: Vec<String>,
    /// Lower-cased: accounts compare case-insensitively.
    accounts: Vec<String>,
}

impl Exempt {
    /// Parses the config's lists; a bad entry is an error naming it.
    pub fn from_config(cfg: &ExemptConfig) -> Result<Self, ExemptError> {
        let bad = |key: String, reason: String| ExemptError { key, reason };
        let mut out = Exempt::default();
        for (i, a) in cfg.addresses.iter().enumerate() {
            let net = a
                .parse::<IpNet>()
                .or_else(|_| a.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    bad(
                        format!("addresses[{i}]"),
                        format!("{a:?} is not an address or a network (CIDR)"),
                    )
                })?;
            out.networks.push((net.trunc(), a.clone()));
        }
        for (i, m) in cfg.macs.iter().enumerate() {
            let mac = normalise_mac(m)
                .filter(|m| m.len() == 17)
                .ok_or_else(|| bad(format!("macs[{i}]"), format!("{m:?} is not a MAC address")))?;
            out.macs.push(mac.to_string());
        }
        for (i, a) in cfg.accounts.iter().enumerate() {
            let a = a.trim();
            if a.is_empty() {
                return Err(bad(format!("accounts[{i}]"), "an empty account".into()));
            }
            out.accounts.push(a.to_lowercase());
        }
        Ok(out)
    }

    /// Whether nothing is exempt (the writer then skips the check).
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.macs.is_empty() && self.accounts.is_empty()
    }

    /// The entry that exempts a hit from `ip` held by `mac` / `account`, as it is stored with
    /// the hit (`10.0.0.0/24`, `mac:aa:bb:…`, `account:secops`); None when none does.
    pub fn matches(&self, ip: IpAddr, mac: Option<&str>, account: Option<&str>) -> Option<String> {
        let ip = ip.to_canonical();
        if let Some((_, entry)) = self.networks.iter().find(|(n, _)| n.contains(&ip)) {
            return Some(entry.clone());
        }
        if let Some(mac) = mac.and_then(|m| self.macs.iter().find(|x| *x == m)) {
            return Some(format!("mac:{mac}"));
        }
        let account = account?;
        self.accounts
            .iter()
            .find(|a| poolguard_model::text::same_text(a, account))
            .map(|a| format!("account:{a}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(addresses: &[&str], macs: &[&str], accounts: &[&str]) -> ExemptConfig {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        ExemptConfig {
            addresses: own(addresses),
            macs: own(macs),
            accounts: own(accounts),
        }
    }

    #[test]
    fn an_address_a_network_a_mac_or_an_account_exempts() {
        let e = Exempt::from_config(&cfg(
            &["10.9.0.7", "10.20.0.0/24"],
            &["00-1A-2B-3C-4D-5E"],
            &["SecOps"],
        ))
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            e.matches(ip("10.9.0.7"), None, None).as_deref(),
            Some("10.9.0.7")
        );
        assert_eq!(
            e.matches(ip("10.20.0.99"), None, None).as_deref(),
            Some("10.20.0.0/24")
        );
        assert_eq!(
            e.matches(ip("::ffff:10.20.0.1"), None, None).as_deref(),
            Some("10.20.0.0/24")
        );
        assert_eq!(
            e.matches(ip("10.1.1.1"), Some("00:1a:2b:3c:4d:5e"), None)
                .as_deref(),
            Some("mac:00:1a:2b:3c:4d:5e")
        );
        assert_eq!(
            e.matches(ip("10.1.1.1"), None, Some("secops")).as_deref(),
            Some("account:secops")
        );
        assert_eq!(
            e.matches(ip("10.1.1.1"), Some("00:1a:2b:3c:4d:5f"), Some("lina")),
            None
        );
    }

    #[test]
    fn a_bad_entry_is_named() {
        let err = Exempt::from_config(&cfg(&["10.0.0.1", "10.0.0/8"], &[], &[])).unwrap_err();
        assert_eq!(err.key, "addresses[1]");
        let err = Exempt::from_config(&cfg(&[], &["not-a-mac"], &[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "incidents.exempt.macs[0]: \"not-a-mac\" is not a MAC address"
        );
        assert!(Exempt::from_config(&cfg(&[], &[], &[" "])).is_err());
        assert!(Exempt::from_config(&cfg(&[], &[], &[])).unwrap().is_empty());
    }
}
