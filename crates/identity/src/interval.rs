//! An [`Interval`]: one source's evidence that a device or account held an address from a
//! start to an end, and the [`Source`] that said so.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// Where a holding came from; shown with every attributed hit so staff can weigh it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// An ISC Kea memfile lease file.
    Kea,
    /// An ISC dhcpd `dhcpd.leases` file.
    Dhcpd,
    /// RADIUS accounting (portal or 802.1X login).
    Radius,
    /// The static asset ledger.
    Ledger,
}

impl Source {
    /// The name stored with hits and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Kea => "kea",
            Source::Dhcpd => "dhcpd",
            Source::Radius => "radius",
            Source::Ledger => "ledger",
        }
    }
}

impl std::str::FromStr for Source {
    type Err = String;

    /// The name [`Source::as_str`] gives, as stored by the shared store.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "kea" => Ok(Source::Kea),
            "dhcpd" => Ok(Source::Dhcpd),
            "radius" => Ok(Source::Radius),
            "ledger" => Ok(Source::Ledger),
            other => Err(format!("unknown identity source {other:?}")),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Times are milliseconds since the Unix epoch, as hits carry them. An open interval (a
/// lease that never ends, a login without its Stop yet) ends at `OPEN`.
pub const OPEN: i64 = i64::MAX;

/// One holding of an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    /// The address held (canonical: IPv4-mapped IPv6 is IPv4).
    pub addr: IpAddr,
    /// First millisecond held (inclusive).
    pub start_ms: i64,
    /// First millisecond no longer held (exclusive); [`OPEN`] while it lasts.
    pub end_ms: i64,
    /// Lower-case `aa:bb:cc:dd:ee:ff` ([`normalise_mac`]).
    pub mac: Option<Arc<str>>,
    /// The login that held it (RADIUS User-Name).
    pub account: Option<Arc<str>>,
    /// The name the DHCP client sent (client-hostname, Kea's hostname column).
    pub hostname: Option<Arc<str>>,
    /// Who said so.
    pub source: Source,
}

/// What a source says about an address at one moment: either a holder from then on, or the
/// end of whoever held it (a release, an expiry, an accounting Stop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `Interval` began (or was renewed).
    Held(Interval),
    /// The address stopped being held at `at_ms` by this source (by `mac` when given).
    Ended {
        addr: IpAddr,
        at_ms: i64,
        mac: Option<Arc<str>>,
        source: Source,
    },
}

/// Who held an address at a moment, combined over the sources that knew.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    /// The device: DHCP's MAC when a lease knew it, else the NAS's Calling-Station-Id.
    pub mac: Option<Arc<str>>,
    /// The login (RADIUS User-Name).
    pub account: Option<Arc<str>>,
    /// The name the DHCP client sent.
    pub hostname: Option<Arc<str>>,
    /// The sources that contributed.
    pub sources: Sources,
}

impl Holder {
    /// The sources as stored with a hit: `kea`, `dhcpd+radius`.
    pub fn source_label(&self) -> String {
        let names: Vec<&str> = self.sources.iter().map(Source::as_str).collect();
        names.join("+")
    }
}

/// A set of [`Source`]s in one byte: a lookup per hit allocates nothing for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sources(u8);

impl Sources {
    const ALL: [Source; 4] = [Source::Kea, Source::Dhcpd, Source::Radius, Source::Ledger];

    /// Adds `s`.
    pub fn insert(&mut self, s: Source) {
        self.0 |= 1 << (s as u8);
    }

    /// Whether no source is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The sources in [`Source`] order.
    pub fn iter(self) -> impl Iterator<Item = Source> {
        Self::ALL
            .into_iter()
            .filter(move |s| self.0 & (1 << (*s as u8)) != 0)
    }
}

/// A hardware address in one spelling: lower-case hex pairs joined by `:`. Accepts the forms
/// DHCP servers and NAS write (`00:1A:2b:…`, `00-1a-…`, `001a.2b3c.4d5e`, `001a2b3c4d5e`);
/// `None` for anything else (an empty Kea hwaddr, a Calling-Station-Id that is a phone
/// number), so a bad value never becomes a wrong MAC.
pub fn normalise_mac(text: &str) -> Option<Arc<str>> {
    // The common case (Kea, dhcpd): already `aa:bb:cc:dd:ee:ff`; no intermediate copies.
    let b = text.as_bytes();
    if b.len() == 17
        && b.iter().enumerate().all(|(i, c)| {
            if i % 3 == 2 {
                *c == b':'
            } else {
                c.is_ascii_digit() || (b'a'..=b'f').contains(c)
            }
        })
    {
        return Some(Arc::from(text));
    }
    let digits: Vec<u8> = text
        .trim()
        .bytes()
        .filter(|b| !matches!(b, b':' | b'-' | b'.'))
        .collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) || digits.len() > 40 {
        return None;
    }
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = String::with_capacity(digits.len() / 2 * 3);
    for (i, pair) in digits.chunks(2).enumerate() {
        if i > 0 {
            out.push(':');
        }
        for &b in pair {
            out.push(b.to_ascii_lowercase() as char);
        }
    }
    Some(out.into())
}

/// A MAC from raw octets (a DHCP uid of type 1, a RADIUS attribute).
pub fn mac_of_octets(octets: &[u8]) -> Option<Arc<str>> {
    if octets.is_empty() {
        return None;
    }
    let parts: Vec<String> = octets.iter().map(|b| format!("{b:02x}")).collect();
    Some(parts.join(":").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_take_one_spelling() {
        for text in [
            "00:1A:2b:3c:4D:5e",
            "00-1a-2b-3c-4d-5e",
            "001a.2b3c.4d5e",
            "001A2B3C4D5E",
        ] {
            assert_eq!(normalise_mac(text).as_deref(), Some("00:1a:2b:3c:4d:5e"));
        }
        for bad in ["", "0", "zz:00:11:22:33:44", "+8613800000000"] {
            assert_eq!(normalise_mac(bad), None, "{bad}");
        }
        assert_eq!(mac_of_octets(&[0, 0x1a, 0xff]).as_deref(), Some("00:1a:ff"));
    }
}
