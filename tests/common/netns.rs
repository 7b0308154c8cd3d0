//! Network namespaces for tests that run real DHCP servers and clients: a server namespace
//! and a client namespace joined by a veth pair, on a test range that is never the host's
//! (10.213.x.0/24; the host has 192.0.2.0/24 and fd00::/64). Names carry the test process's id
//! and a counter, so parallel tests never meet; both namespaces (and with them the veth pair)
//! are removed on drop. Needs root (CI and the developer machines run tests as root); without
//! it the test fails saying so, it does not skip.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::tools::require_tool;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A server and a client namespace on one veth link.
pub struct Link {
    pub server_ns: String,
    pub client_ns: String,
    /// The server side's interface (in `server_ns`).
    pub server_if: String,
    /// The client side's interface (in `client_ns`).
    pub client_if: String,
}

fn ip(args: &[&str]) {
    let bin = require_tool("ip", "iproute2");
    let out = Command::new(bin).args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Link {
    /// Creates the namespaces; the server side gets `<prefix>.1/24`, the client `<prefix>.2/24`
    /// (`prefix` like `10.213.50`).
    pub fn new(prefix: &str) -> Self {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "network namespace tests need root (ip netns add)"
        );
        assert!(prefix.starts_with("10.213."), "test ranges only");
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{n}", std::process::id());
        let link = Self {
            server_ns: format!("pgs{id}"),
            client_ns: format!("pgc{id}"),
            server_if: format!("pga{id}"),
            client_if: format!("pgb{id}"),
        };
        ip(&["netns", "add", &link.server_ns]);
        ip(&["netns", "add", &link.client_ns]);
        ip(&[
            "link",
            "add",
            &link.server_if,
            "type",
            "veth",
            "peer",
            "name",
            &link.client_if,
        ]);
        ip(&["link", "set", &link.server_if, "netns", &link.server_ns]);
        ip(&["link", "set", &link.client_if, "netns", &link.client_ns]);
        for (ns, ifname, host) in [
            (&link.server_ns, &link.server_if, 1),
            (&link.client_ns, &link.client_if, 2),
        ] {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{prefix}.{host}/24"),
                "dev",
                ifname,
            ]);
            ip(&["-n", ns, "link", "set", ifname, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        link
    }

    /// `command` run inside `ns` (`ip netns exec`).
    pub fn exec(ns: &str, program: &std::path::Path) -> Command {
        let mut c = Command::new(require_tool("ip", "iproute2"));
        c.args(["netns", "exec", ns]).arg(program);
        c.stdin(Stdio::null());
        c
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A daemon this test started, killed (by its own pid) on drop.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `f` on a thread of its own that has entered `ns`: every socket made there, and every
/// thread it starts (a tokio runtime's workers, poolguard's writer), lives in the namespace.
/// This is how a test runs a whole in-process poolguard behind a veth link, where the real
/// DHCP clients of the other namespace can reach it. A panic in `f` is the caller's panic.
pub fn run_in<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{ns}");
    let thread = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: `file` is an open network namespace; setns changes only this thread's.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    });
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// [`run_in`] with a tokio runtime of its own built there, running `make()`'s future.
pub fn block_on_in<F, Fut>(ns: &str, make: F) -> Fut::Output
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future,
    Fut::Output: Send + 'static,
{
    run_in(ns, move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(make())
    })
}

/// Adds `cidr` (e.g. `10.213.52.10/32`) to `ifname` in `ns`: the address a DHCP client was
/// granted, so a DNS query can leave from it.
pub fn add_address(ns: &str, ifname: &str, cidr: &str) {
    ip(&["-n", ns, "addr", "add", cidr, "dev", ifname]);
}
