//! A real Unbound from the distribution, started by the test that needs it.
//!
//! Two tests use one: `dns_differential` (poolguard must answer as Unbound does) and
//! `api_publish` (the RPZ poolguard publishes must load into Unbound and block there). Both
//! need the same three things, which this helper does once:
//!
//! * a port free for UDP **and** TCP (Unbound binds both; a UDP-only probe lets it collide
//!   with a TCP listener of a test running beside it, and it then exits before its log opens);
//! * the reason when Unbound does not come up: its stderr and log, and its exit status when
//!   it exited, in the panic message;
//! * a bounded start: a collision found only at bind time is retried on another port (a few
//!   times), readiness is polled with real queries (a bounded count with a timeout each).
//!
//! The process is killed by its PID when the handle is dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use super::{Proto, request, try_query_raw_from};

/// A running Unbound (foreground, in its own temp dir).
pub struct Unbound {
    child: Child,
    /// Where it listens (UDP and TCP on 127.0.0.1).
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (bounded tries), for a process we start.
pub fn free_port() -> u16 {
    for _ in 0..16 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// How many ports a start tries when Unbound exits before it answers (a port taken between
/// the probe and its bind).
const START_ATTEMPTS: usize = 3;
/// Readiness: this many queries, each waiting [`READY_TIMEOUT`] (so at most 30 s).
const READY_POLLS: usize = 60;
const READY_TIMEOUT: Duration = Duration::from_millis(500);

impl Unbound {
    /// Starts `unbound -d` forwarding everything to `upstream`, with `server` lines (each
    /// indented by two spaces, ending in a newline) added to its `server:` clause and `tail`
    /// (whole clauses such as `rpz:`) appended; `files` are written into its directory first
    /// (the directory's path replaces `{dir}` in `server` and `tail`). Returns once it answers
    /// `probe` (any answer counts), or panics with its stderr, its log and its exit status.
    pub async fn start(
        upstream: SocketAddr,
        server: &str,
        tail: &str,
        files: &[(&str, &str)],
        probe: &str,
    ) -> Self {
        let bin = super::tools::require_tool("unbound", "unbound");
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("tempdir");
            for (name, text) in files {
                std::fs::write(dir.path().join(name), text).expect("write unbound file");
            }
            let port = free_port();
            let d = dir.path().display().to_string();
            let conf = format!(
                "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  \
                 do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  \
                 pidfile: \"\"\n  use-syslog: no\n  logfile: \"{d}/unbound.log\"\n  \
                 verbosity: 1\n  num-threads: 1\n  so-reuseport: no\n  \
                 do-not-query-localhost: no\n  access-control: 127.0.0.0/8 allow\n\
                 {server}\
                 remote-control:\n  control-enable: no\n\
                 forward-zone:\n  name: \".\"\n  forward-addr: {ip}@{up}\n\
                 {tail}",
                server = server.replace("{dir}", &d),
                tail = tail.replace("{dir}", &d),
                ip = upstream.ip(),
                up = upstream.port()
            );
            let conf_path = dir.path().join("unbound.conf");
            std::fs::write(&conf_path, conf).expect("write unbound.conf");
            let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
            let child = Command::new(&bin)
                .arg("-d")
                .arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("unbound starts");
            let mut unbound = Self {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                dir,
            };
            match unbound.wait_ready(probe).await {
                Ok(()) => return unbound,
                // Exited before answering: most likely its port was taken; try another.
                Err(Some(status)) => failures.push(format!(
                    "port {port}: exited ({status}): {}",
                    unbound.diagnostics()
                )),
                Err(None) => panic!(
                    "unbound on port {port} never answered within {READY_POLLS} queries: {}",
                    unbound.diagnostics()
                ),
            }
        }
        panic!(
            "unbound did not start in {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// Its log file so far (for assertion messages).
    pub fn log(&self) -> String {
        self.read("unbound.log")
    }

    /// Its stderr and log, for a failure message.
    fn diagnostics(&self) -> String {
        format!(
            "stderr: {:?}; log: {:?}",
            self.read("stderr"),
            self.read("unbound.log")
        )
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Polls with real queries for `probe` until an answer comes. `Err(Some(status))` when the
    /// process exited first, `Err(None)` when it kept running without answering.
    async fn wait_ready(&mut self, probe: &str) -> Result<(), Option<std::process::ExitStatus>> {
        let bytes = request(probe, RecordType::SOA, false)
            .to_vec()
            .expect("encode probe");
        let localhost = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        for _ in 0..READY_POLLS {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Some(status));
            }
            let answer =
                try_query_raw_from(localhost, self.addr, Proto::Udp, &bytes, READY_TIMEOUT).await;
            if answer.is_ok_and(|raw| Message::from_vec(&raw).is_ok()) {
                return Ok(());
            }
        }
        match self.child.try_wait() {
            Ok(Some(status)) => Err(Some(status)),
            _ => Err(None),
        }
    }
}
