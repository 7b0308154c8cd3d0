//! Binding the DNS sockets before anything else starts: every worker's SO_REUSEPORT UDP
//! socket and TCP listener per address, one process per address ([`exclusive`] probes before
//! and checks after), a free port shared by both transports for port 0 (tests), and the DoT
//! and DoH listeners.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use crate::DnsError;
use crate::exclusive;
use poolguard_record::Transport;

/// Requested SO_RCVBUF for each UDP socket (see `bind_udp`).
const UDP_RECV_BUFFER: usize = 4 << 20;
/// Pending TCP connections per listener.
const TCP_BACKLOG: i32 = 1024;
/// Attempts to find a port free for both UDP and TCP when binding port 0.
const PORT_ATTEMPTS: usize = 16;

/// The sockets one worker serves: a UDP socket and a TCP listener per listen address, and a
/// TCP listener per DoT and DoH address.
#[derive(Default)]
pub(crate) struct WorkerSockets {
    pub(crate) udp: Vec<UdpSocket>,
    pub(crate) tcp: Vec<TcpListener>,
    pub(crate) dot: Vec<TcpListener>,
    pub(crate) doh: Vec<TcpListener>,
}

/// Binds `workers` UDP sockets and TCP listeners on every address, all with SO_REUSEPORT,
/// after checking that no other process holds it and before checking that none joined
/// ([`exclusive`]). Returns the real addresses and the sockets grouped per worker.
pub(crate) fn bind_all(
    listen: &[SocketAddr],
    workers: usize,
) -> Result<(Vec<SocketAddr>, Vec<WorkerSockets>), DnsError> {
    // Every fixed address is probed before any is bound, so two of our own addresses that
    // overlap (0.0.0.0 and 127.0.0.1 on one port) do not refuse each other.
    for &addr in listen.iter().filter(|a| a.port() != 0) {
        exclusive::probe(addr).map_err(|(t, e)| refused(addr, t, e))?;
    }
    let mut per_worker: Vec<WorkerSockets> =
        (0..workers).map(|_| WorkerSockets::default()).collect();
    let mut addrs = Vec::with_capacity(listen.len());
    let mut ours = HashSet::new();
    for &addr in listen {
        let (real, group) = if addr.port() == 0 {
            bind_free_port(addr, workers)?
        } else {
            let group = bind_group(addr, workers).map_err(|(t, e)| refused(addr, t, e))?;
            (addr, group)
        };
        addrs.push(real);
        ours.extend(group.inodes());
        for (w, (u, t)) in group.udp.into_iter().zip(group.tcp).enumerate() {
            per_worker[w].udp.push(u);
            per_worker[w].tcp.push(t);
        }
    }
    // Another instance that passed its probe while we passed ours is in our group now.
    for (&asked, &real) in listen.iter().zip(&addrs) {
        if asked.port() != 0
            && let Some((transport, holder)) = exclusive::foreign_listener(real, &ours)
        {
            return Err(DnsError::InUse {
                addr: real,
                transport,
                holder,
            });
        }
    }
    Ok((addrs, per_worker))
}

/// A bind that failed: "in use" names the holder, anything else is the plain cause.
fn refused(addr: SocketAddr, transport: Transport, error: std::io::Error) -> DnsError {
    if error.kind() == std::io::ErrorKind::AddrInUse {
        DnsError::InUse {
            addr,
            transport,
            holder: exclusive::holder(addr, transport),
        }
    } else {
        DnsError::Bind { addr, cause: error }
    }
}

impl WorkerSockets {
    /// The sockets' inodes, to tell ours from another process's in `/proc/net`.
    fn inodes(&self) -> impl Iterator<Item = u64> + '_ {
        let udp = self.udp.iter().filter_map(exclusive::inode_of);
        udp.chain(self.tcp.iter().filter_map(exclusive::inode_of))
    }
}

/// Binds one UDP socket and one TCP listener on `addr` for every worker (all in one
/// `WorkerSockets`, split per worker by the caller).
fn bind_group(
    addr: SocketAddr,
    workers: usize,
) -> Result<WorkerSockets, (Transport, std::io::Error)> {
    let mut group = WorkerSockets {
        udp: Vec::with_capacity(workers),
        tcp: Vec::with_capacity(workers),
        ..WorkerSockets::default()
    };
    for _ in 0..workers {
        group
            .udp
            .push(bind_udp(addr).map_err(|e| (Transport::Udp, e))?);
        group
            .tcp
            .push(bind_tcp(addr).map_err(|e| (Transport::Tcp, e))?);
    }
    Ok(group)
}

/// Port 0 (tests): the probe's UDP port, free of every socket, if TCP is free there too and
/// nobody joins; otherwise a new port is tried (bounded).
fn bind_free_port(
    addr: SocketAddr,
    workers: usize,
) -> Result<(SocketAddr, WorkerSockets), DnsError> {
    let mut last_error = None;
    for _ in 0..PORT_ATTEMPTS {
        let real = match exclusive::probe(addr) {
            Ok(real) => real,
            Err((_, e)) if e.kind() == std::io::ErrorKind::AddrInUse => {
                last_error = Some(e);
                continue;
            }
            Err((_, cause)) => return Err(DnsError::Bind { addr, cause }),
        };
        let group = match bind_group(real, workers) {
            Ok(group) => group,
            Err((_, e)) if e.kind() == std::io::ErrorKind::AddrInUse => {
                last_error = Some(e);
                continue;
            }
            Err((_, cause)) => return Err(DnsError::Bind { addr: real, cause }),
        };
        let ours: HashSet<u64> = group.inodes().collect();
        if exclusive::foreign_listener(real, &ours).is_none() {
            return Ok((real, group));
        }
    }
    Err(DnsError::Bind {
        addr,
        cause: last_error.unwrap_or_else(|| std::io::Error::other("no free port")),
    })
}

/// Binds one TCP listener per worker on every address of an encrypted listener (`None` =
/// off) into `slot` of each worker's sockets; port 0 (tests) takes the first bind's port for
/// every worker. Returns the real addresses.
pub(crate) fn bind_encrypted(
    section: &'static str,
    listen: Option<&[SocketAddr]>,
    sockets: &mut [WorkerSockets],
    slot: fn(&mut WorkerSockets) -> &mut Vec<TcpListener>,
) -> Result<Vec<SocketAddr>, DnsError> {
    let mut addrs = Vec::new();
    for &addr in listen.unwrap_or_default() {
        let mut real = addr;
        for worker in sockets.iter_mut() {
            let cause = |cause| DnsError::BindEncrypted {
                section,
                addr,
                cause,
            };
            let listener = bind_tcp(real).map_err(cause)?;
            real = listener.local_addr().map_err(cause)?;
            slot(worker).push(listener);
        }
        addrs.push(real);
    }
    Ok(addrs)
}

fn new_socket(addr: SocketAddr, ty: Type, proto: Protocol) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    // TCP: a restart binds over the previous run's TIME_WAIT connections. Not on UDP: there
    // it lets any socket with it share the port whatever its UID (see `exclusive`).
    if ty == Type::STREAM {
        socket.set_reuse_address(true)?;
    }
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = new_socket(addr, Type::DGRAM, Protocol::UDP)?;
    // A deep receive queue absorbs bursts instead of dropping them in the kernel; the kernel
    // caps it at net.core.rmem_max, so this is a request, and failure is not an error.
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = new_socket(addr, Type::STREAM, Protocol::TCP)?;
    socket.bind(&addr.into())?;
    socket.listen(TCP_BACKLOG)?;
    Ok(socket.into())
}
