//! The PROXY protocol, version 2 (the binary header HAProxy and cloud load balancers put
//! before a TCP stream), from trusted load balancers only (`[dns] proxy_protocol_from`).
//!
//! A DoT or DoH service behind a TCP load balancer sees the balancer as every client; the
//! header carries the real client address, which policy, the rate limiter and the evidence
//! must use. A connection from a trusted peer must start with a valid header (or it is
//! closed: a balancer configured without it would otherwise pin every hit on itself); a
//! connection from anyone else is never read for one (a client cannot claim an address).
//! `LOCAL` headers (the balancer's own health checks) keep the peer address. Only version 2
//! is read: version 1 (text) is rarer and easier to get wrong.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The 12-byte signature every version 2 header starts with.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest address block read (the TLVs after the addresses are skipped, not kept).
const MAX_LEN: usize = 1024;
/// A trusted peer must send its header within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Which peers' connections start with a PROXY v2 header.
#[derive(Debug, Clone, Default)]
pub struct ProxyTrust {
    from: Vec<IpNet>,
}

/// Why a trusted peer's header was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY v2 signature")]
    Signature,
    #[error("PROXY version {0} (only 2 is read)")]
    Version(u8),
    #[error("PROXY command {0} is neither LOCAL nor PROXY")]
    Command(u8),
    #[error("PROXY header of {0} bytes is too long")]
    TooLong(usize),
    #[error("PROXY address block too short for its family")]
    Short,
    #[error("reading the PROXY header: {0}")]
    Io(String),
}

impl ProxyTrust {
    /// Trusts the peers inside `from` (empty: nobody, the header is never read).
    pub fn new(from: &[IpNet]) -> Self {
        Self {
            from: from.to_vec(),
        }
    }

    /// Whether `peer`'s connections must start with a header.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.from.iter().any(|n| n.contains(&peer))
    }

    /// The client of a connection accepted from `peer`: the header's source address when the
    /// peer is trusted, else `peer`. None when a trusted peer sent no valid header (the
    /// caller closes the connection).
    pub async fn client(&self, stream: &mut TcpStream, peer: SocketAddr) -> Option<SocketAddr> {
        if !self.trusts(peer.ip()) {
            return Some(peer);
        }
        match tokio::time::timeout(HEADER_TIMEOUT, read_header(stream)).await {
            Ok(Ok(source)) => Some(source.unwrap_or(peer)),
            Ok(Err(error)) => {
                metrics::counter!("poolguard_dns_proxy_refused_total").increment(1);
                tracing::debug!(%peer, %error, "PROXY header refused; connection closed");
                None
            }
            Err(_) => {
                metrics::counter!("poolguard_dns_proxy_refused_total").increment(1);
                tracing::debug!(%peer, "no PROXY header in time; connection closed");
                None
            }
        }
    }
}

/// Reads one header off `stream`: the client it names, or None for `LOCAL` and for
/// families without an address (UNSPEC, UNIX).
async fn read_header(stream: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyError> {
    let mut fixed = [0u8; 16];
    stream
        .read_exact(&mut fixed)
        .await
        .map_err(|e| ProxyError::Io(e.to_string()))?;
    // Not a header at all: refused before waiting for an address block that will not come.
    if fixed[..12] != SIGNATURE {
        return Err(ProxyError::Signature);
    }
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if len > MAX_LEN {
        return Err(ProxyError::TooLong(len));
    }
    let mut rest = vec![0u8; len];
    stream
        .read_exact(&mut rest)
        .await
        .map_err(|e| ProxyError::Io(e.to_string()))?;
    parse(&fixed, &rest)
}

/// Parses the 16 fixed bytes and the address block after them.
pub fn parse(fixed: &[u8; 16], rest: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    if fixed[..12] != SIGNATURE {
        return Err(ProxyError::Signature);
    }
    let (version, command) = (fixed[12] >> 4, fixed[12] & 0x0f);
    if version != 2 {
        return Err(ProxyError::Version(version));
    }
    match command {
        0 => return Ok(None),
        1 => {}
        c => return Err(ProxyError::Command(c)),
    }
    // High nibble: address family (1 INET, 2 INET6); low: transport (1 STREAM).
    match fixed[13] >> 4 {
        1 => {
            let a = rest.get(..12).ok_or(ProxyError::Short)?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let port = u16::from_be_bytes([a[8], a[9]]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        2 => {
            let a = rest.get(..36).ok_or(ProxyError::Short)?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let port = u16::from_be_bytes([a[32], a[33]]);
            let ip = IpAddr::V6(Ipv6Addr::from(octets)).to_canonical();
            Ok(Some(SocketAddr::new(ip, port)))
        }
        _ => Ok(None),
    }
}

/// A version 2 `PROXY` header for a TCP connection from `source` to `destination` (tests and
/// tools speak as a load balancer with it).
pub fn header(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.push(0x21);
    match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        (s, d) => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(h: &[u8]) -> ([u8; 16], &[u8]) {
        let mut fixed = [0u8; 16];
        fixed.copy_from_slice(&h[..16]);
        (fixed, &h[16..])
    }

    #[test]
    fn headers_round_trip_and_bad_ones_are_named() {
        let to: SocketAddr = "192.0.2.53:853".parse().unwrap();
        for from in ["10.12.3.45:40000", "[2001:db8::7]:40000"] {
            let from: SocketAddr = from.parse().unwrap();
            let h = header(from, to);
            let (fixed, rest) = split(&h);
            assert_eq!(parse(&fixed, rest), Ok(Some(from)));
        }
        let h = header("10.0.0.1:1".parse().unwrap(), to);
        let (mut fixed, rest) = split(&h);
        fixed[12] = 0x20;
        assert_eq!(parse(&fixed, rest), Ok(None), "LOCAL keeps the peer");
        fixed[12] = 0x11;
        assert_eq!(parse(&fixed, rest), Err(ProxyError::Version(1)));
        fixed[0] = b'G';
        assert_eq!(parse(&fixed, rest), Err(ProxyError::Signature));
        let (fixed, _) = split(&h);
        assert_eq!(parse(&fixed, &[0; 4]), Err(ProxyError::Short));
    }

    #[test]
    fn only_trusted_peers_are_read() {
        let t = ProxyTrust::new(&["10.0.0.0/24".parse().unwrap()]);
        assert!(t.trusts("10.0.0.9".parse().unwrap()));
        assert!(t.trusts("::ffff:10.0.0.9".parse().unwrap()));
        assert!(!t.trusts("10.0.1.9".parse().unwrap()));
        assert!(!ProxyTrust::default().trusts("10.0.0.9".parse().unwrap()));
    }
}
