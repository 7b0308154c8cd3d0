//! One poolguard per DNS address: the checks around the SO_REUSEPORT binds.
//!
//! The workers of one process share each listen address through SO_REUSEPORT. Linux lets any
//! socket of the same effective UID with SO_REUSEPORT join that group, so a second poolguard
//! on the same address used to start without a word and take a share of the queries, its hits
//! and incidents going to its own store. Two checks keep the address to one process:
//!
//! 1. **Probe before binding** ([`probe`]). A UDP socket with neither SO_REUSEADDR nor
//!    SO_REUSEPORT cannot bind where any socket of any process (or UID) is bound, wildcard
//!    addresses included; a TCP socket with SO_REUSEADDR but no SO_REUSEPORT cannot bind
//!    where a listener is, yet still binds over a previous run's TIME_WAIT connections (a
//!    restart after a clean stop works). The probes are closed before our own sockets are
//!    bound, so they never get in our workers' way.
//! 2. **Look after binding** ([`foreign_listener`]). Two instances starting at the same moment
//!    can both pass the probe before either binds; so once our sockets are bound, the kernel's
//!    socket tables (`/proc/net/{udp,udp6,tcp,tcp6}`) are read and any socket on the address
//!    that is not one of ours is a second instance: this one refuses. Of two instances racing,
//!    at least the later one to look sees the other (both may refuse; neither serves split).
//!
//! Our UDP sockets no longer set SO_REUSEADDR: on UDP it lets *any* socket with it share the
//! port, whatever its UID, which is exactly the silent split; SO_REUSEPORT alone shares the
//! port among our workers and only with the same UID.
//!
//! The process holding the address is named from the same tables: the socket's inode, then the
//! `/proc/<pid>/fd` link to it. Best effort: without the rights to read another user's `fd`
//! folder the message says "another process".

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

use poolguard_record::Transport;

/// Who holds an address, as far as this process can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Found through `/proc/<pid>/fd`: its PID and command name.
    Process { pid: u32, name: String },
    /// The socket is there but its process is not visible (another user's, another PID
    /// namespace) or `/proc` is not readable.
    Unknown,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Process { pid, name } if *pid == std::process::id() => {
                write!(f, "process {pid} ({name}, this process)")
            }
            Self::Process { pid, name } => write!(f, "process {pid} ({name})"),
            Self::Unknown => f.write_str("another process (not visible to this user)"),
        }
    }
}

/// Binds throw-away UDP and TCP sockets on `addr` without SO_REUSEPORT to learn whether
/// anything already holds it. `Ok` when both are free (the probes are closed again); the
/// first bind error otherwise, with the transport it was on. With port 0 the kernel picks a
/// UDP port free of every socket, and the returned address carries it.
pub fn probe(addr: SocketAddr) -> Result<SocketAddr, (Transport, std::io::Error)> {
    let udp = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .and_then(|s| {
            only_v6(&s, addr)?;
            s.bind(&addr.into())?;
            Ok(s)
        })
        .map_err(|e| (Transport::Udp, e))?;
    let real = udp
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(addr);
    Socket::new(Domain::for_address(real), Type::STREAM, Some(Protocol::TCP))
        .and_then(|s| {
            // Without SO_REUSEADDR the previous run's TIME_WAIT connections would block a
            // restart; with it, only a socket in LISTEN (or one without SO_REUSEADDR) conflicts.
            s.set_reuse_address(true)?;
            only_v6(&s, real)?;
            s.bind(&real.into())
        })
        .map_err(|e| (Transport::Tcp, e))?;
    Ok(real)
}

fn only_v6(socket: &Socket, addr: SocketAddr) -> std::io::Result<()> {
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    Ok(())
}

/// The inode of a socket, as `/proc/net/*` lists it; `None` when `/proc` is not mounted.
pub fn inode_of(socket: &impl AsRawFd) -> Option<u64> {
    inode_of_fd(socket.as_raw_fd())
}

fn inode_of_fd(fd: RawFd) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    parse_socket_link(link.to_str()?)
}

/// `socket:[12345]` → 12345.
fn parse_socket_link(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// A socket some process has on `addr` that is not one of `ours` (UDP sockets, TCP
/// listeners), with its holder; `None` when there is none, or `/proc/net` cannot be read (the
/// probe has then been the only check).
pub fn foreign_listener(addr: SocketAddr, ours: &HashSet<u64>) -> Option<(Transport, Holder)> {
    [Transport::Udp, Transport::Tcp].into_iter().find_map(|t| {
        // Same family only: a v6 socket on `[::]` may be v6-only (it cannot take our packets,
        // and /proc does not say), and a reuseport group is of one family.
        let inode = sockets_on(addr, t, Family::Same)
            .into_iter()
            .find(|inode| !ours.contains(inode))?;
        Some((t, holder_of(&[inode])))
    })
}

/// Who holds `addr` on `transport`, after a bind there failed with "address in use".
/// Sockets of the same family are looked at first; an IPv6 wildcard (dual-stack) second.
pub fn holder(addr: SocketAddr, transport: Transport) -> Holder {
    match holder_of(&sockets_on(addr, transport, Family::Same)) {
        Holder::Unknown => holder_of(&sockets_on(addr, transport, Family::Any)),
        found => found,
    }
}

/// Which address families [`sockets_on`] compares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Same,
    Any,
}

/// The inodes of the sockets that conflict with `addr`: UDP sockets and TCP listeners on its
/// port whose address is the same or a wildcard covering it (or covered by it).
fn sockets_on(addr: SocketAddr, transport: Transport, family: Family) -> Vec<u64> {
    let files: &[&str] = match transport {
        Transport::Udp => &["/proc/net/udp", "/proc/net/udp6"],
        Transport::Tcp | Transport::Dot | Transport::Doh => &["/proc/net/tcp", "/proc/net/tcp6"],
    };
    let mut inodes = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for entry in text.lines().skip(1).filter_map(parse_entry) {
            // TCP: only listeners; accepted and TIME_WAIT connections share the port too.
            let listening = transport == Transport::Udp || entry.state == TCP_LISTEN;
            if listening
                && entry.inode != 0
                && entry.local.port() == addr.port()
                && (family == Family::Any || entry.local.is_ipv4() == addr.is_ipv4())
                && overlaps(entry.local.ip(), addr.ip())
            {
                inodes.push(entry.inode);
            }
        }
    }
    inodes
}

/// `st` of a listening TCP socket in `/proc/net/tcp`.
const TCP_LISTEN: u8 = 0x0A;

/// One line of `/proc/net/{udp,tcp}{,6}`.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    local: SocketAddr,
    state: u8,
    inode: u64,
}

/// Parses `  0: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000  0 0 12345 …`.
/// Addresses are the kernel's in-memory (network order) words printed as host integers.
fn parse_entry(line: &str) -> Option<Entry> {
    let fields: Vec<&str> = line.split_whitespace().take(10).collect();
    let (&local, &state, &inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
    let (ip, port) = local.split_once(':')?;
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(ip)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(ip.get(i * 8..i * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(Entry {
        local: SocketAddr::new(ip, u16::from_str_radix(port, 16).ok()?),
        state: u8::from_str_radix(state, 16).ok()?,
        inode: inode.parse().ok()?,
    })
}

/// Eight hex digits → the four bytes as they were in memory.
fn word(hex: &str) -> Option<[u8; 4]> {
    Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
}

/// Whether sockets on `a` and `b` (same port) conflict: the same address, a wildcard of the
/// same family, or an IPv6 wildcard (dual-stack unless it is v6-only, which we cannot see).
fn overlaps(a: IpAddr, b: IpAddr) -> bool {
    let v4 = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    let (a, b) = (v4(a), v4(b));
    a == b
        || (a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified()))
        || a == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        || b == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
}

/// The process holding one of `inodes`: this process first (the cheap, common case in tests
/// and for an address listed twice), then every PID in `/proc`.
fn holder_of(inodes: &[u64]) -> Holder {
    if inodes.is_empty() {
        return Holder::Unknown;
    }
    let wanted: HashSet<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let own = std::process::id();
    let others = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own);
    // Bounded: one pass over the processes there are, one over each one's descriptors.
    for pid in std::iter::once(own).chain(others) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .ok()
                .and_then(|l| l.to_str().map(|l| wanted.contains(l)))
                .unwrap_or(false)
        });
        if holds {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim().to_string())
                .unwrap_or_else(|_| "?".into());
            return Holder::Process { pid, name };
        }
    }
    Holder::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_lines_parse() {
        let v4 = "   0: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 12345 2 0000000000000000 0";
        let e = parse_entry(v4).expect("parses");
        if cfg!(target_endian = "little") {
            assert_eq!(e.local, "127.0.0.1:53".parse().expect("addr"));
        }
        assert_eq!((e.state, e.inode), (7, 12345));
        let v6 = "   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0";
        let e = parse_entry(v6).expect("parses");
        if cfg!(target_endian = "little") {
            assert_eq!(e.local, "[::1]:8080".parse().expect("addr"));
        }
        assert_eq!((e.state, e.inode), (TCP_LISTEN, 777));
        assert_eq!(parse_entry("  sl  local_address rem_address   st"), None);
        assert_eq!(parse_socket_link("socket:[42]"), Some(42));
        assert_eq!(parse_socket_link("pipe:[42]"), None);
    }

    #[test]
    fn wildcards_and_mapped_addresses_overlap() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(overlaps(ip("127.0.0.1"), ip("127.0.0.1")));
        assert!(overlaps(ip("0.0.0.0"), ip("127.0.0.1")));
        assert!(overlaps(ip("::"), ip("127.0.0.1")));
        assert!(overlaps(ip("::ffff:127.0.0.1"), ip("127.0.0.1")));
        assert!(!overlaps(ip("127.0.0.2"), ip("127.0.0.1")));
        assert!(!overlaps(ip("::1"), ip("0.0.0.0")));
    }

    /// The look after binding: reuseport sockets of this process on one address are found,
    /// minus the ones named as ours, and this process is named as their holder.
    #[test]
    fn a_socket_that_is_not_ours_is_found_with_its_process() {
        let reuseport = |addr: SocketAddr| {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
            s.set_reuse_port(true).expect("reuseport");
            s.bind(&addr.into()).expect("bind");
            s
        };
        // A port no socket holds (a reuseport bind on port 0 may join someone else's group).
        // The probe's random UDP port may have its TCP twin taken by a test running beside
        // this one: another port is tried then, as `bind_free_port` does (bounded).
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let addr = (0..50)
            .find_map(|_| probe(any).ok())
            .expect("a port free for both UDP and TCP");
        let first = reuseport(addr);
        let second = reuseport(addr);
        let ours: HashSet<u64> = [inode_of(&first).expect("inode")].into();
        let (transport, holder) = foreign_listener(addr, &ours).expect("the second is found");
        assert_eq!(transport, Transport::Udp);
        assert!(
            matches!(holder, Holder::Process { pid, .. } if pid == std::process::id()),
            "{holder:?}"
        );
        let both: HashSet<u64> = [inode_of(&first), inode_of(&second)]
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(foreign_listener(addr, &both), None);
        // And the probe refuses an address a reuseport group holds.
        let (t, e) = probe(addr).expect_err("held");
        assert_eq!(
            (t, e.kind()),
            (Transport::Udp, std::io::ErrorKind::AddrInUse)
        );
    }
}
