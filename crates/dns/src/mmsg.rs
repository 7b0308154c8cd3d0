//! `recvmmsg`/`sendmmsg`: many datagrams per system call (Linux).
//!
//! With the fast path answering most queries in user space for well under a microsecond, the
//! rest of a query's cost is two system calls (one receive, one send) and the kernel's UDP
//! work. Batching the calls amortises the syscall entry/exit and the socket lock over up to
//! [`SLOTS`] datagrams; issue 7's measurements on this VM put a recvmmsg/sendmmsg loop at
//! 180–220 k queries/s per core against 150–165 k for one `recv_from`/`send_to` pair per query.
//!
//! Besides `malloc_trim` after a feed reload (`feeds/loader.rs`) and `sched_setscheduler` for
//! the store writer (`store/writer.rs`), this is the only `unsafe` in poolguard: three FFI calls whose buffers are owned by the batch and re-pointed right before
//! every call (so moving the batch can never leave a dangling pointer). The datagram slots are
//! 4 KiB: a real DNS query is far smaller (one question and an OPT record), so a longer
//! datagram is reported as truncated and dropped.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per system call.
pub const SLOTS: usize = 32;
/// Bytes per datagram slot.
pub const SLOT_SIZE: usize = 4096;

/// One datagram per slot, with its peer address.
struct Slots {
    data: Box<[[u8; SLOT_SIZE]]>,
    addrs: Box<[libc::sockaddr_storage]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
}

// SAFETY: the raw pointers in `iovs` and `hdrs` only ever point into this value's own heap
// buffers, and are re-aimed before each system call; nothing is shared, so moving the whole
// value to another thread (a tokio task may move) is as safe as moving the buffers.
unsafe impl Send for Slots {}

impl Slots {
    fn new() -> Self {
        // SAFETY: all-zero bytes are valid values of these plain C structs (null pointers,
        // zero lengths); every pointer is set in `aim` before the kernel sees them.
        let zero_addr: libc::sockaddr_storage = unsafe { zeroed() };
        let zero_iov: libc::iovec = unsafe { zeroed() };
        let zero_hdr: libc::mmsghdr = unsafe { zeroed() };
        Self {
            data: vec![[0u8; SLOT_SIZE]; SLOTS].into_boxed_slice(),
            addrs: vec![zero_addr; SLOTS].into_boxed_slice(),
            iovs: vec![zero_iov; SLOTS].into_boxed_slice(),
            hdrs: vec![zero_hdr; SLOTS].into_boxed_slice(),
        }
    }

    /// Points header `i` at slot `i`'s buffer (`len` bytes) and address (`addr_len` bytes).
    fn aim(&mut self, i: usize, len: usize, addr_len: libc::socklen_t) {
        self.iovs[i] = libc::iovec {
            iov_base: self.data[i].as_mut_ptr().cast(),
            iov_len: len,
        };
        let hdr = &mut self.hdrs[i].msg_hdr;
        hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
        hdr.msg_namelen = addr_len;
        hdr.msg_iov = &mut self.iovs[i];
        hdr.msg_iovlen = 1;
        hdr.msg_control = std::ptr::null_mut();
        hdr.msg_controllen = 0;
        hdr.msg_flags = 0;
        self.hdrs[i].msg_len = 0;
    }
}

/// A batch of received datagrams.
pub struct RecvBatch {
    slots: Slots,
    count: usize,
}

/// One received datagram.
pub struct Datagram<'a> {
    pub bytes: &'a [u8],
    pub src: Option<SocketAddr>,
    /// Longer than a slot: the rest was discarded by the kernel.
    pub truncated: bool,
}

impl RecvBatch {
    /// Room for [`SLOTS`] datagrams (~130 KiB, allocated once per socket loop).
    pub fn new() -> Self {
        Self {
            slots: Slots::new(),
            count: 0,
        }
    }

    /// Receives up to [`SLOTS`] datagrams without blocking; `WouldBlock` when none is waiting.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for i in 0..SLOTS {
            self.slots.aim(
                i,
                SLOT_SIZE,
                size_of::<libc::sockaddr_storage>() as libc::socklen_t,
            );
        }
        // SAFETY: `hdrs` holds SLOTS headers whose iovecs and names point into buffers owned
        // by `self.slots`, which outlive the call and are not touched during it.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.slots.hdrs.as_mut_ptr(),
                SLOTS as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        self.count = n as usize;
        Ok(self.count)
    }

    /// Datagram `i` of the last [`RecvBatch::recv`].
    pub fn get(&self, i: usize) -> Option<Datagram<'_>> {
        if i >= self.count {
            return None;
        }
        let hdr = &self.slots.hdrs[i];
        let len = (hdr.msg_len as usize).min(SLOT_SIZE);
        Some(Datagram {
            bytes: &self.slots.data[i][..len],
            src: to_socket_addr(&self.slots.addrs[i], hdr.msg_hdr.msg_namelen),
            truncated: hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        })
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// Answers gathered during one receive batch, sent with as few system calls as possible.
pub struct SendBatch {
    slots: Slots,
    lens: [usize; SLOTS],
    addr_lens: [libc::socklen_t; SLOTS],
    dsts: [Option<SocketAddr>; SLOTS],
    count: usize,
}

impl SendBatch {
    /// Room for [`SLOTS`] answers.
    pub fn new() -> Self {
        Self {
            slots: Slots::new(),
            lens: [0; SLOTS],
            addr_lens: [0; SLOTS],
            dsts: [None; SLOTS],
            count: 0,
        }
    }

    /// The next free answer buffer, or `None` when the batch is full (send it first).
    pub fn next_buffer(&mut self) -> Option<&mut [u8]> {
        let i = self.count;
        (i < SLOTS).then(|| &mut self.slots.data[i][..])
    }

    /// Queues the `len` bytes just written into [`SendBatch::next_buffer`] for `dst`.
    pub fn push(&mut self, len: usize, dst: SocketAddr) {
        let i = self.count;
        if i >= SLOTS {
            return;
        }
        self.addr_lens[i] = from_socket_addr(dst, &mut self.slots.addrs[i]);
        self.lens[i] = len.min(SLOT_SIZE);
        self.dsts[i] = Some(dst);
        self.count += 1;
    }

    /// Queued answers.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Answer `i` as (bytes, destination), for a fallback send.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let dst = (*self.dsts.get(i)?)?;
        (i < self.count).then(|| (&self.slots.data[i][..self.lens[i]], dst))
    }

    /// Sends queued answers from `from` on; returns how many the kernel took
    /// (`WouldBlock` when the socket buffer is full).
    pub fn send(&mut self, fd: RawFd, from: usize) -> io::Result<usize> {
        if from >= self.count {
            return Ok(0);
        }
        for i in from..self.count {
            self.slots.aim(i, self.lens[i], self.addr_lens[i]);
        }
        // SAFETY: headers `from..count` point into buffers owned by `self.slots` (see `aim`).
        let n = unsafe {
            libc::sendmmsg(
                fd,
                self.slots.hdrs[from..].as_mut_ptr(),
                (self.count - from) as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Forgets every queued answer.
    pub fn clear(&mut self) {
        self.count = 0;
    }
}

impl Default for SendBatch {
    fn default() -> Self {
        Self::new()
    }
}

fn to_socket_addr(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and it is big enough.
            let a: &libc::sockaddr_in = unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(s as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                u32::from_be(a.sin6_flowinfo),
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn from_socket_addr(addr: SocketAddr, s: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let out: &mut libc::sockaddr_in =
                unsafe { &mut *(s as *mut _ as *mut libc::sockaddr_in) };
            out.sin_family = libc::AF_INET as libc::sa_family_t;
            out.sin_port = a.port().to_be();
            out.sin_addr = libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let out: &mut libc::sockaddr_in6 =
                unsafe { &mut *(s as *mut _ as *mut libc::sockaddr_in6) };
            out.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            out.sin6_port = a.port().to_be();
            out.sin6_flowinfo = a.flowinfo().to_be();
            out.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            out.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn addresses_round_trip() {
        for addr in ["127.0.0.1:53", "[::1]:5353", "[fe80::1%2]:9"] {
            let addr: SocketAddr = addr.parse().unwrap();
            // SAFETY: zeroed sockaddr_storage is valid.
            let mut s: libc::sockaddr_storage = unsafe { zeroed() };
            let len = from_socket_addr(addr, &mut s);
            assert_eq!(to_socket_addr(&s, len), Some(addr));
        }
    }

    #[test]
    fn batches_of_datagrams_go_through_one_call_each_way() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        for i in 0..5u8 {
            client.send_to(&[i; 3], to).unwrap();
        }
        client.send_to(&[9u8; SLOT_SIZE + 10], to).unwrap();
        // Loopback delivers synchronously: all six are queued once send_to returns.
        let mut rx = RecvBatch::new();
        assert_eq!(rx.recv(server.as_raw_fd()).unwrap(), 6);
        let from = client.local_addr().unwrap();
        let mut tx = SendBatch::new();
        for i in 0..6 {
            let d = rx.get(i).unwrap();
            assert_eq!(d.src, Some(from));
            if i == 5 {
                assert!(d.truncated, "longer than a slot");
                continue;
            }
            assert!(!d.truncated);
            assert_eq!(d.bytes, &[i as u8; 3]);
            let n = d.bytes.len();
            let bytes = d.bytes.to_vec();
            tx.next_buffer().unwrap()[..n].copy_from_slice(&bytes);
            tx.push(n, from);
        }
        assert_eq!(tx.send(server.as_raw_fd(), 0).unwrap(), 5);
        let mut buf = [0u8; 16];
        for i in 0..5u8 {
            let (n, _) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i; 3]);
        }
        let err = rx.recv(server.as_raw_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }
}
