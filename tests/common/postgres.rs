//! A real PostgreSQL from the distribution, started by the test that needs it.
//!
//! `initdb` and `postgres` refuse to run as root, so when the tests run as root (CI
//! containers) the server runs as the `postgres` user that Debian's package creates, through
//! `runuser`; as any other user it runs as that user. Each server has its own temp dir, data
//! directory, Unix socket directory and TCP port on 127.0.0.1, with password authentication
//! over TCP (so the tests exercise `password_file` / `password_env`). It is stopped
//! (`pg_ctl stop -m immediate`) and removed when the handle is dropped.
//!
//! A missing PostgreSQL fails the test naming the package; a server that does not start fails
//! with its log.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::unbound::free_port;

/// The database role the tests connect as, and its password.
pub const USER: &str = "poolguard";
pub const PASSWORD: &str = "pg-test-secret";

/// A running PostgreSQL server this test started.
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    running: bool,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        }
    }
}

/// The directory of the newest installed PostgreSQL's programs, or a panic naming the package.
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(dir) = found.pop() {
        return dir;
    }
    super::tools::require_tool("initdb", "postgresql")
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Whether this process runs as root (then the server runs as `postgres`).
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Postgres {
    /// initdb + start; returns once the server accepts connections.
    pub fn start() -> Self {
        let mut pg = Self::init();
        pg.start_again();
        pg
    }

    /// [`Postgres::start`] with TLS on (`ssl = on`): the tests' CA (`super::tls::test_ca`)
    /// signs a server certificate for `IP:127.0.0.1`; returns the server and the CA's PEM file (for `[store] ca_file`).
    pub fn start_tls() -> (Self, PathBuf) {
        let mut pg = Self::init();
        let dir = pg.path("tls");
        std::fs::create_dir(&dir).expect("tls dir");
        super::tls::test_ca(&dir, "pg", true);
        let data = pg.data_dir();
        for name in ["server.pem", "server.key"] {
            std::fs::copy(dir.join(name), data.join(name)).expect("copy into the data dir");
        }
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
        conf.push_str("\nssl = on\nssl_cert_file = 'server.pem'\nssl_key_file = 'server.key'\n");
        std::fs::write(data.join("postgresql.conf"), conf).expect("conf");
        if is_root() {
            for name in ["server.pem", "server.key"] {
                let status = Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(data.join(name))
                    .status()
                    .expect("chown runs");
                assert!(status.success(), "chown {name}");
            }
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("key mode");
        pg.start_again();
        (pg, dir.join("pg-ca.pem"))
    }

    /// initdb, not started.
    fn init() -> Self {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        let pg = Self {
            bin,
            dir,
            port: free_port(),
            running: false,
        };
        std::fs::create_dir(pg.socket_dir()).expect("socket dir");
        std::fs::write(pg.path("pwfile"), format!("{PASSWORD}\n")).expect("pwfile");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(pg.dir.path())
                .status()
                .expect("chown runs");
            assert!(
                status.success(),
                "cannot give the test's PostgreSQL dir to the `postgres` user (is the package `postgresql` installed?)"
            );
        }
        let data = pg.data_dir();
        let pwfile = pg.path("pwfile");
        let out = pg
            .run(
                "initdb",
                &[
                    "-D",
                    &data.display().to_string(),
                    "-U",
                    USER,
                    "--pwfile",
                    &pwfile.display().to_string(),
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
            )
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        pg
    }

    /// Starts the server (again, after [`Postgres::stop_immediate`]) on the same port.
    pub fn start_again(&mut self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.socket_dir().display()
        );
        let log = self.path("server.log").display().to_string();
        let out = self
            .pg_ctl(&["start", "-w", "-t", "60", "-l", &log, "-o", &opts])
            .expect("pg_ctl runs");
        let server_log = std::fs::read_to_string(self.path("server.log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "PostgreSQL did not start: {}{}\nserver log:\n{server_log}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = true;
    }

    /// Stops the server the way a crash or a pulled plug would (no checkpoint).
    pub fn stop_immediate(&mut self) {
        let out = self
            .pg_ctl(&["stop", "-m", "immediate", "-w"])
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = false;
    }

    /// Creates database `name` (owned by [`USER`]) and returns its URL (no password in it:
    /// give it through `password_file` or `password_env`).
    pub fn create_database(&self, name: &str) -> String {
        let out = self
            .run(
                "createdb",
                &[
                    "-h",
                    &self.socket_dir().display().to_string(),
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    USER,
                    name,
                ],
            )
            .output()
            .expect("createdb runs");
        assert!(
            out.status.success(),
            "createdb {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(name)
    }

    /// The store of database `db` as node `node` (opening migrates it).
    pub async fn store(&self, db: &str, node: &str) -> poolguard::store_pg::PgStore {
        let cfg = poolguard::config::StoreConfig {
            backend: poolguard::config::Backend::Postgres,
            url: Some(self.url(db)),
            password_file: Some(self.password_file()),
            node: Some(node.to_string()),
            ..poolguard::config::StoreConfig::default()
        };
        poolguard::store_pg::PgStore::open(&cfg)
            .await
            .expect("store opens")
    }

    /// `postgres://poolguard@127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL through `psql` on the Unix socket (for a test's setup or its checks); returns
    /// stdout (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .psql_command(db, &["-At", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A `psql` session of the test's own on database `db`, kept open: statements written to
    /// it run in order in one session, so a transaction it begins (and the locks it takes)
    /// stays open until the test ends it. Its output is discarded; check effects with
    /// [`Postgres::psql`].
    pub fn session(&self, db: &str) -> Session {
        let child = self
            .psql_command(db, &["-q"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("psql runs");
        Session { child }
    }

    /// `psql` on the Unix socket as [`USER`] on `db`, stopping at the first error, with `more`.
    fn psql_command(&self, db: &str, more: &[&str]) -> Command {
        let socket = self.socket_dir().display().to_string();
        let port = self.port.to_string();
        let mut args = vec![
            "-h",
            socket.as_str(),
            "-p",
            port.as_str(),
            "-U",
            USER,
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
        ];
        args.extend_from_slice(more);
        self.run("psql", &args)
    }

    /// Writes the password to a file a test can name as `[store] password_file`.
    pub fn password_file(&self) -> PathBuf {
        let path = self.path("password");
        std::fs::write(&path, format!("{PASSWORD}\n")).expect("password file");
        path
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("server.log")).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.path("sock")
    }

    fn pg_ctl(&self, args: &[&str]) -> std::io::Result<std::process::Output> {
        let data = self.data_dir().display().to_string();
        let mut all = vec!["-D", data.as_str()];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all).output()
    }

    /// A command from the server's bin dir (`psql`, `createdb` may live on PATH only), run as
    /// `postgres` when we are root.
    fn run(&self, program: &str, args: &[&str]) -> Command {
        let local = self.bin.join(program);
        let path = if local.is_file() {
            local
        } else {
            super::tools::require_tool(program, "postgresql-client")
        };
        if is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path).args(args);
            cmd
        } else {
            let mut cmd = Command::new(path);
            cmd.args(args);
            cmd
        }
    }
}

/// An open `psql` session ([`Postgres::session`]); ended (its transaction rolled back) when
/// dropped.
pub struct Session {
    child: std::process::Child,
}

impl Session {
    /// Sends `sql` (one or more statements, each ending in `;`) to the session; returns at
    /// once (psql runs it as it reads it).
    pub fn send(&mut self, sql: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("psql stdin is piped");
        stdin
            .write_all(format!("{sql}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .expect("psql takes the statement");
    }

    /// Ends the session after what was sent ran (psql exits at the end of its input).
    pub fn finish(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().expect("psql exits");
        assert!(status.success(), "psql session: {status}");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
