//! poolguard as a real child process: the built binary (`CARGO_BIN_EXE_poolguard`) serving a
//! test bed's directory, so a test can kill it the way a crash or `kill -9` would.
//!
//! [`super::Builder::spawn_process`] writes the directory as for an in-process test bed and
//! starts the binary on its `config.toml`. The child's log (stderr) is read on a thread of its
//! own, kept whole for a failing test's message, and gives the addresses the node bound (the
//! `dns listening` and `API listening` lines), so the config keeps its `:0` ports and a
//! restart on the same directory needs no port of its own. A process still running when its
//! handle is dropped is killed (by its PID), so no node outlives its test.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Upstream, Written};

/// Longest a start waits for the node's listening lines (a loaded CI machine, a first
/// connection attempt to a database that is down).
const START_WAIT: Duration = Duration::from_secs(60);

/// A poolguard process this test started.
pub struct Process {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub upstream: Upstream,
    config: PathBuf,
    /// Its DNS address (UDP and TCP).
    pub dns: SocketAddr,
    /// Its API address, when the config has `[api] listen`.
    pub api: Option<SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Process {
    /// Starts the binary on `written` and waits until it serves DNS (and its API, if any).
    pub fn spawn(written: Written) -> Self {
        let Written {
            dir,
            upstream,
            config,
        } = written;
        let wants_api = std::fs::read_to_string(&config)
            .map(|text| text.lines().any(|l| l.trim() == "[api]"))
            .unwrap_or(false);
        let mut child = Command::new(env!("CARGO_BIN_EXE_poolguard"))
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the poolguard binary starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = read_lines(&mut child, log.clone());
        let mut process = Self {
            child: Some(child),
            dir,
            upstream,
            config,
            dns: ([127, 0, 0, 1], 0).into(),
            api: None,
            log,
        };
        process.dns = process.address_in(&lines, "dns listening");
        if wants_api {
            process.api = Some(process.address_in(&lines, "API listening"));
        }
        process
    }

    /// The child's PID (what the test signals).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// `kill -9`: the process ends at once, whatever it was doing (nothing is flushed).
    /// Returns once the kernel has reaped it (its sockets and store lock are released).
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
            // SAFETY: kill(2) with the PID of our own child, which is not reaped yet (we
            // hold its `Child` and have not waited), so the PID cannot name another process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = child.wait();
    }

    /// Kills the process (SIGKILL) and starts the binary again on the same directory and
    /// `config.toml`, as a supervisor restarting a crashed node would.
    pub fn kill_and_restart(mut self) -> Self {
        self.kill();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        let upstream = std::mem::replace(&mut self.upstream, Upstream::example());
        Self::spawn(Written {
            dir,
            upstream,
            config: self.config.clone(),
        })
    }

    /// `http://<api address>` (needs `[api] listen`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api.expect("[api] listen in this config"))
    }

    /// Everything the process has logged so far.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .join("\n")
    }

    /// The `127.0.0.1:port` of the first line holding `needle`.
    fn address_in(&mut self, lines: &Receiver<String>, needle: &str) -> SocketAddr {
        let deadline = Instant::now() + START_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => {
                    let status = self.child.as_mut().map(|c| c.try_wait());
                    panic!(
                        "no `{needle}` line from poolguard ({e}; exit: {status:?}):\n{}",
                        self.log()
                    )
                }
            };
            if !line.contains(needle) {
                continue;
            }
            let port = line
                .split("127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|p| p.parse::<u16>().ok())
                .unwrap_or_else(|| panic!("no 127.0.0.1 port in `{line}`"));
            return ([127, 0, 0, 1], port).into();
        }
    }
}

/// Reads the child's stderr on a thread: every line is kept in `log` and offered on the
/// returned channel. The pipe is drained until the child exits, so it never blocks on it.
fn read_lines(child: &mut Child, log: Arc<Mutex<Vec<String>>>) -> Receiver<String> {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            // The receiver is gone once the start is seen: keep draining, keep the log.
            let _ = tx.send(line.clone());
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line);
        }
    });
    rx
}
