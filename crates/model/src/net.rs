//! Quarantine targets as staff write them and the stores keep them: one address
//! (`10.12.3.45`) or, for an emergency, a whole network (`10.20.0.0/24`).

use std::net::IpAddr;

use ipnet::IpNet;

/// Parses an address or a network (CIDR); an IPv4-mapped IPv6 address is its IPv4 address,
/// and a network's host bits are dropped (`10.20.0.7/24` is `10.20.0.0/24`). None otherwise.
pub fn parse_target(text: &str) -> Option<IpNet> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(IpNet::from(ip.to_canonical()));
    }
    let net = text.parse::<IpNet>().ok()?;
    Some(match (net, net.addr().to_canonical()) {
        // `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
        (IpNet::V6(v6), IpAddr::V4(v4)) if v6.prefix_len() >= 96 => {
            IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96)
                .ok()?
                .trunc()
        }
        _ => net.trunc(),
    })
}

/// How a target is written back: an address alone (`10.12.3.45`, as stored before networks
/// could be quarantined), a network with its prefix.
pub fn target_text(target: &IpNet) -> String {
    if target.prefix_len() == target.max_prefix_len() {
        target.addr().to_string()
    } else {
        target.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_networks_round_trip() {
        for (written, stored) in [
            ("10.12.3.45", "10.12.3.45"),
            (" 10.20.0.7/24 ", "10.20.0.0/24"),
            ("::ffff:10.0.0.9", "10.0.0.9"),
            ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
            ("2001:db8::1", "2001:db8::1"),
            ("2001:db8::/48", "2001:db8::/48"),
        ] {
            let t = parse_target(written).unwrap_or_else(|| panic!("{written}"));
            assert_eq!(target_text(&t), stored);
        }
        for bad in ["10.0.0/8", "10.0.0.1/33", "host.example", ""] {
            assert_eq!(parse_target(bad), None, "{bad}");
        }
    }
}
