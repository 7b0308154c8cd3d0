//! The shared integration-test harness: a real upstream, a real poolguard, a real DNS client.
//!
//! * [`Upstream`] is a hickory-server on 127.0.0.1:0 (UDP+TCP, its own thread and runtime)
//!   serving zone files from `tests/fixtures/`; it remembers every name it was asked, so a test
//!   can prove something was (or was never) forwarded.
//! * [`TestBed`] writes a temp dir with `config.toml`, feed files and zone files, starts
//!   poolguard in-process with `poolguard::app::start_with` on 127.0.0.1:0 and keeps it running
//!   until dropped or [`TestBed::shutdown`].
//! * [`event_tap`] gives a `Recorder` whose `QueryEvent`s the test reads back.
//! * [`query`] / [`TestBed::ask`] send one DNS message over UDP or TCP and return the full response
//!   `Message`, with a 5 s timeout: a test never hangs and never sleeps to synchronise.
//!
//! The standard feeds ([`TestBed::start`]):
//!
//! | feed      | kind  | action   | entries                                              |
//! |-----------|-------|----------|------------------------------------------------------|
//! | `mining`  | domains | sinkhole | `pool.minergate.com`, `moneroocean.stream`, `sink.test`, `blocked.campus.test` |
//! | `refusing`| domains | refuse   | `refuse.test`                                        |
//! | `nx`      | domains | nxdomain | `nx.test`                                            |
//! | `empty`   | domains | nodata   | `nodata.test`                                        |
//! | `pool-ips`| ips   | sinkhole | `203.0.113.0/24`, `2001:db8:bad::/48`                |
//! | `allow`   | allow | –        | `ok.pool.minergate.com`                              |
//!
//! Sinkhole addresses are `192.0.2.1` / `2001:db8::1`, block TTL [`BLOCK_TTL`].

#![allow(dead_code)]

pub mod child;
pub mod dhcp;
pub mod netns;
pub mod postgres;
pub mod radius;
pub mod tls;
#[path = "../support/tools.rs"]
pub mod tools;
pub mod unbound;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{LowerName, Name, RecordType};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::file::{FileConfig, FileZoneHandler};
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use poolguard::app::{Running, StartOptions};
use poolguard::config::Config;
use poolguard::record::{QueryEvent, Recorder, Sink};

/// TTL of poolguard's block answers in every test bed.
pub const BLOCK_TTL: u32 = 123;
/// Sinkhole addresses in every test bed.
pub const SINK_V4: &str = "192.0.2.1";
pub const SINK_V6: &str = "2001:db8::1";
/// Every client request gives up after this long.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Path of a file in `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

// ---------------------------------------------------------------------------------------------
// Upstream

/// An in-process authoritative server standing in for the campus's upstream resolver.
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    token: CancellationToken,
}

impl Upstream {
    /// The main upstream: `example.test` and `minergate.com`.
    pub fn example() -> Self {
        Self::serving(&[
            ("example.test", fixture("example.test.zone")),
            ("minergate.com", fixture("minergate.com.zone")),
        ])
    }

    /// The second upstream for conditional forwarding: `corp.test` only.
    pub fn corp() -> Self {
        Self::serving(&[("corp.test", fixture("corp.test.zone"))])
    }

    /// Serves each `(origin, zone file)` on 127.0.0.1:0, UDP and TCP, on its own thread.
    pub fn serving(zones: &[(&str, PathBuf)]) -> Self {
        Self::serving_zones(zones).0
    }

    /// Serves one zone file whose address records the test changes while it runs
    /// ([`ChangingZone::set`]).
    pub fn changing(origin: &str, file: PathBuf) -> (Self, ChangingZone) {
        let (upstream, mut zones) = Self::serving_zones(&[(origin, file)]);
        let zone = zones.pop().expect("the zone");
        (upstream, ChangingZone(zone))
    }

    fn serving_zones(zones: &[(&str, PathBuf)]) -> (Self, Vec<Arc<FileZoneHandler>>) {
        let mut handlers = Vec::new();
        let mut catalog = Catalog::new();
        for (origin, file) in zones {
            let origin = Name::from_ascii(format!("{origin}.")).expect("origin");
            let handler = FileZoneHandler::try_from_config(
                origin.clone(),
                ZoneType::Primary,
                AxfrPolicy::Deny,
                None,
                &FileConfig {
                    zone_path: file.clone(),
                },
            )
            .expect("test zone loads");
            let handler = Arc::new(handler);
            handlers.push(handler.clone());
            let handler: Arc<dyn ZoneHandler> = handler;
            catalog.upsert(LowerName::new(&origin), vec![handler]);
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let token = CancellationToken::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let handler = Recording {
            catalog,
            seen: seen.clone(),
        };
        let stop = token.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                // The kernel's free UDP port may be taken for TCP: try a few (bounded).
                let mut bound = None;
                for _ in 0..16 {
                    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
                        .await
                        .expect("udp");
                    let addr = udp.local_addr().expect("addr");
                    if let Ok(tcp) = tokio::net::TcpListener::bind(addr).await {
                        bound = Some((udp, tcp, addr));
                        break;
                    }
                }
                let (udp, tcp, addr) = bound.expect("a port free for both UDP and TCP");
                let mut server = Server::new(handler);
                server.register_socket(udp);
                server.register_listener(tcp, Duration::from_secs(5), 32);
                tx.send(addr).expect("report addr");
                stop.cancelled().await;
                let _ = server.shutdown_gracefully().await;
            });
        });
        let addr = rx.recv_timeout(CLIENT_TIMEOUT).expect("upstream started");
        (Self { addr, seen, token }, handlers)
    }

    /// How many queries for `name` (lower-case, no trailing dot) reached this upstream.
    pub fn queries_for(&self, name: &str) -> usize {
        self.seen
            .lock()
            .map(|s| s.iter().filter(|n| n.as_str() == name).count())
            .unwrap_or(0)
    }

    /// Every name asked so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// A zone of an [`Upstream::changing`] whose A records the test rewrites.
pub struct ChangingZone(Arc<FileZoneHandler>);

impl ChangingZone {
    /// Makes `name` (absolute, no trailing dot) answer exactly `addresses` (IPv4) with TTL 1,
    /// or NODATA when empty.
    pub async fn set(&self, name: &str, addresses: &[&str]) {
        use hickory_proto::rr::rdata::A;
        use hickory_proto::rr::{RData, Record, RecordSet, RrKey};
        let owner = Name::from_ascii(format!("{name}.")).expect("name");
        let key = RrKey::new(LowerName::new(&owner), RecordType::A);
        let mut records = self.0.records_mut().await;
        if addresses.is_empty() {
            records.remove(&key);
            return;
        }
        let mut set = RecordSet::new(owner.clone(), RecordType::A, 0);
        for a in addresses {
            let ip: std::net::Ipv4Addr = a.parse().expect("IPv4 address");
            set.insert(Record::from_rdata(owner.clone(), 1, RData::A(A(ip))), 0);
        }
        records.insert(key, Arc::new(set));
    }
}

/// The upstream's handler: remembers the name, then answers from the catalog.
struct Recording {
    catalog: Catalog,
    seen: Arc<Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl RequestHandler for Recording {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        if let Some(q) = request.queries.queries().first() {
            let name = q.name().to_string().to_lowercase();
            if let Ok(mut seen) = self.seen.lock() {
                seen.push(name.trim_end_matches('.').to_string());
            }
        }
        self.catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

/// A UDP socket that is bound but never answers: an upstream that has gone silent.
pub struct SilentUpstream {
    pub addr: SocketAddr,
    _udp: std::net::UdpSocket,
}

impl SilentUpstream {
    pub fn new() -> Self {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind silent");
        Self {
            addr: udp.local_addr().expect("addr"),
            _udp: udp,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// poolguard under test

/// One feed file of a test bed.
#[derive(Clone)]
pub struct FeedSpec {
    pub name: String,
    pub kind: &'static str,
    pub action: Option<&'static str>,
    pub lines: Vec<String>,
    /// `category` (absent = the default, `mining`).
    pub category: Option<&'static str>,
}

impl FeedSpec {
    pub fn new(
        name: &str,
        kind: &'static str,
        action: Option<&'static str>,
        lines: &[&str],
    ) -> Self {
        Self {
            name: name.to_string(),
            kind,
            action,
            lines: lines.iter().map(|s| s.to_string()).collect(),
            category: None,
        }
    }

    /// The same feed with `category` set.
    pub fn category(mut self, category: &'static str) -> Self {
        self.category = Some(category);
        self
    }
}

/// The standard feeds (see the module docs).
pub fn standard_feeds() -> Vec<FeedSpec> {
    vec![
        FeedSpec::new(
            "mining",
            "domains",
            Some("sinkhole"),
            &[
                "pool.minergate.com",
                "moneroocean.stream",
                "sink.test",
                "blocked.campus.test",
            ],
        ),
        FeedSpec::new("refusing", "domains", Some("refuse"), &["refuse.test"]),
        FeedSpec::new("nx", "domains", Some("nxdomain"), &["nx.test"]),
        FeedSpec::new("empty", "domains", Some("nodata"), &["nodata.test"]),
        FeedSpec::new(
            "pool-ips",
            "ips",
            Some("sinkhole"),
            &["203.0.113.0/24", "2001:db8:bad::/48"],
        ),
        FeedSpec::new("allow", "allow", None, &["ok.pool.minergate.com"]),
    ]
}

/// How to set up a test bed; start with [`TestBed::builder`].
pub struct Builder {
    feeds: Vec<FeedSpec>,
    upstream: Option<Upstream>,
    servers: Option<Vec<SocketAddr>>,
    conditional: Vec<(String, SocketAddr)>,
    zones: Vec<(String, PathBuf)>,
    allow: Option<Vec<String>>,
    timeout_ms: u64,
    inspect: bool,
    workers: usize,
    recorder: Recorder,
    extra_toml: String,
    files: Vec<(String, String)>,
    clock: Option<poolguard::incidents::SharedClock>,
    /// Extra `[dns]` keys, as `key = value` TOML lines.
    dns_extra: Vec<String>,
    /// `[dns] listen` (default `127.0.0.1:0`).
    listen: Option<SocketAddr>,
}

impl Builder {
    /// Appends raw TOML sections (`[api]`, `[store]`, `[clients]`…) to the generated config.
    pub fn toml(mut self, sections: &str) -> Self {
        self.extra_toml.push_str(sections);
        self.extra_toml.push('\n');
        self
    }

    /// Writes a file into the test bed's directory before start (e.g. a ledger CSV).
    pub fn file(mut self, relative: &str, content: &str) -> Self {
        self.files.push((relative.to_string(), content.to_string()));
        self
    }

    /// Replaces the standard feeds.
    pub fn feeds(mut self, feeds: Vec<FeedSpec>) -> Self {
        self.feeds = feeds;
        self
    }

    /// Forward to these servers instead of the test upstream.
    pub fn upstream_servers(mut self, servers: Vec<SocketAddr>) -> Self {
        self.servers = Some(servers);
        self
    }

    /// Adds an `[[upstream.conditional]]`.
    pub fn conditional(mut self, domain: &str, server: SocketAddr) -> Self {
        self.conditional.push((domain.to_string(), server));
        self
    }

    /// Adds a `[[zones]]` served from a fixture file.
    pub fn local_zone(mut self, name: &str, file: &str) -> Self {
        self.zones.push((name.to_string(), fixture(file)));
        self
    }

    /// Sets `[dns] allow` (default: loopback only).
    pub fn allow_clients(mut self, nets: &[&str]) -> Self {
        self.allow = Some(nets.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Sets `[upstream] timeout_ms` (default 1500).
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = ms;
        self
    }

    /// Sets `[blocking] inspect_answers` (default on).
    pub fn inspect(mut self, on: bool) -> Self {
        self.inspect = on;
        self
    }

    /// Sets `[dns] workers` (default 2, to exercise SO_REUSEPORT).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Plugs an injectable clock in for incident deadlines (default: the system clock).
    pub fn clock(mut self, clock: poolguard::incidents::SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Adds `key = value` (TOML) to `[dns]`, e.g. `dns_option("rate_limit_qps", "5")`.
    /// `tcp_idle_timeout_ms` given here replaces the bed's 5000.
    pub fn dns_option(mut self, key: &str, value: &str) -> Self {
        self.dns_extra.push(format!("{key} = {value}"));
        self
    }

    /// Listens on this DNS address instead of `127.0.0.1:0`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Uses this upstream instead of [`Upstream::example`].
    pub fn upstream(mut self, upstream: Upstream) -> Self {
        self.upstream = Some(upstream);
        self
    }

    /// Plugs a recorder in (default: disabled).
    pub fn recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = recorder;
        self
    }

    /// Writes the temp dir and starts poolguard.
    pub async fn start(self) -> TestBed {
        self.try_start().await.expect("poolguard starts")
    }

    /// Writes the temp dir and starts poolguard, returning the start error if it fails.
    pub async fn try_start(self) -> Result<TestBed, poolguard::app::AppError> {
        let (written, recorder, clock) = self.write();
        let config = Config::load(&written.config).expect("test config is valid");
        let running = poolguard::app::start_with(config, StartOptions { recorder, clock }).await?;
        let dns = running.dns_addrs()[0];
        Ok(TestBed {
            running: Some(running),
            dir: written.dir,
            upstream: written.upstream,
            dns,
        })
    }

    /// Writes the temp dir and starts the built `poolguard` binary on it as a child process
    /// (a node a test can SIGKILL); the recorder and clock options do not apply there.
    pub fn spawn_process(self) -> child::Process {
        let (written, _, _) = self.write();
        child::Process::spawn(written)
    }

    /// Writes the temp dir: `config.toml`, the feed files and the extra files.
    fn write(self) -> (Written, Recorder, Option<poolguard::incidents::SharedClock>) {
        let upstream = match self.upstream {
            Some(u) => u,
            None => Upstream::example(),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("blocklists")).expect("mkdir");
        let mut toml = String::new();
        let allow = self
            .allow
            .unwrap_or_else(|| vec!["127.0.0.0/8".to_string(), "::1/128".to_string()]);
        let idle_default = if self
            .dns_extra
            .iter()
            .any(|l| l.starts_with("tcp_idle_timeout_ms"))
        {
            String::new()
        } else {
            "tcp_idle_timeout_ms = 5000\n".to_string()
        };
        toml.push_str(&format!(
            "[dns]\nlisten = [\"{}\"]\nallow = {allow:?}\nworkers = {}\n{idle_default}{}\n\n",
            self.listen.unwrap_or_else(|| ([127, 0, 0, 1], 0).into()),
            self.workers,
            self.dns_extra.join("\n")
        ));
        let servers: Vec<String> = self
            .servers
            .unwrap_or_else(|| vec![upstream.addr])
            .iter()
            .map(|s| s.to_string())
            .collect();
        toml.push_str(&format!(
            "[upstream]\nservers = {servers:?}\ntimeout_ms = {}\ncache_size = 1024\n\n",
            self.timeout_ms
        ));
        for (domain, server) in &self.conditional {
            toml.push_str(&format!(
                "[[upstream.conditional]]\ndomain = \"{domain}\"\nservers = [\"{server}\"]\n\n"
            ));
        }
        toml.push_str(&format!(
            "[blocking]\ndefault_action = \"sinkhole\"\nsinkhole_ipv4 = \"{SINK_V4}\"\nsinkhole_ipv6 = \"{SINK_V6}\"\nttl = {BLOCK_TTL}\nwatch = false\ninspect_answers = {}\n\n",
            self.inspect
        ));
        for f in &self.feeds {
            let path = format!("blocklists/{}.txt", f.name);
            std::fs::write(dir.path().join(&path), f.lines.join("\n") + "\n").expect("feed");
            toml.push_str(&format!(
                "[[feeds]]\nname = \"{}\"\npath = \"{path}\"\nkind = \"{}\"\n",
                f.name, f.kind
            ));
            if let Some(a) = f.action {
                toml.push_str(&format!("action = \"{a}\"\n"));
            }
            if let Some(c) = f.category {
                toml.push_str(&format!("category = \"{c}\"\n"));
            }
            toml.push('\n');
        }
        for (name, file) in &self.zones {
            toml.push_str(&format!(
                "[[zones]]\nname = \"{name}\"\nfile = \"{}\"\n\n",
                file.display()
            ));
        }
        toml.push_str(&self.extra_toml);
        for (rel, content) in &self.files {
            let path = dir.path().join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(path, content).expect("test file");
        }
        let config = dir.path().join("config.toml");
        std::fs::write(&config, &toml).expect("config");
        (
            Written {
                dir,
                upstream,
                config,
            },
            self.recorder,
            self.clock,
        )
    }
}

/// A test bed's directory as [`Builder`] wrote it, before anything runs on it.
pub struct Written {
    pub dir: tempfile::TempDir,
    pub upstream: Upstream,
    /// `<dir>/config.toml`.
    pub config: PathBuf,
}

/// A running poolguard with its upstream and its temp dir.
pub struct TestBed {
    running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub upstream: Upstream,
    /// poolguard's DNS address (UDP and TCP).
    pub dns: SocketAddr,
}

impl TestBed {
    /// Standard feeds, the example upstream, the `campus.test` local zone.
    pub async fn start() -> Self {
        Self::builder()
            .local_zone("campus.test", "campus.test.zone")
            .start()
            .await
    }

    /// A builder with the standard feeds and the example upstream.
    pub fn builder() -> Builder {
        Builder {
            feeds: standard_feeds(),
            upstream: None,
            servers: None,
            conditional: Vec::new(),
            zones: Vec::new(),
            allow: None,
            timeout_ms: 1500,
            inspect: true,
            workers: 2,
            recorder: Recorder::disabled(),
            extra_toml: String::new(),
            files: Vec::new(),
            clock: None,
            dns_extra: Vec::new(),
            listen: None,
        }
    }

    /// The API's base URL, e.g. `http://127.0.0.1:41234` (needs `[api] listen`).
    pub fn api_url(&self) -> String {
        let addr = self
            .running()
            .api_addr()
            .expect("API enabled in this test bed");
        format!("http://{addr}")
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    /// Path of a feed file, to edit it before a reload.
    pub fn feed_path(&self, feed: &str) -> PathBuf {
        self.dir.path().join(format!("blocklists/{feed}.txt"))
    }

    /// Asks poolguard over `proto` with EDNS.
    pub async fn ask(&self, proto: Proto, name: &str, rtype: RecordType) -> Message {
        query(self.dns, proto, &request(name, rtype, true)).await
    }

    /// Stops poolguard and starts a new one on the same directory and `config.toml` (new
    /// ports), as an operator's restart would: whatever it serves then came from disk.
    pub async fn restart(self) -> TestBed {
        self.restart_after(|_| {}).await
    }

    /// [`TestBed::restart`], calling `between(dir)` while poolguard is stopped: to leave files
    /// behind as a crash would (a torn spool record, say).
    pub async fn restart_after(mut self, between: impl FnOnce(&Path)) -> TestBed {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        between(self.dir.path());
        let config = Config::load(&self.dir.path().join("config.toml")).expect("config reloads");
        let running = poolguard::app::start_with(config, StartOptions::default())
            .await
            .expect("poolguard restarts");
        let dns = running.dns_addrs()[0];
        TestBed {
            running: Some(running),
            dir: self.dir,
            upstream: self.upstream,
            dns,
        }
    }

    /// Stops poolguard cleanly.
    /// Stops poolguard cleanly; returns the temp dir so a test can read what was left behind.
    pub async fn shutdown(mut self) -> tempfile::TempDir {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        self.dir
    }
}

// ---------------------------------------------------------------------------------------------
// Client

/// Transport for a test query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

static NEXT_ID: AtomicU16 = AtomicU16::new(0x1234);

/// A standard query with RD set, a fresh ID, and EDNS (payload 1232) when `edns`.
pub fn request(name: &str, rtype: RecordType, edns: bool) -> Message {
    let mut m = Message::new(
        NEXT_ID.fetch_add(1, Ordering::Relaxed),
        MessageType::Query,
        OpCode::Query,
    );
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m
}

/// A standard query with RD set and EDNS advertising `payload` (or no EDNS).
pub fn with_payload(name: &str, rtype: RecordType, payload: Option<u16>) -> Message {
    let mut m = request(name, rtype, false);
    if let Some(p) = payload {
        let mut e = Edns::new();
        e.set_max_payload(p);
        m.set_edns(e);
    }
    m
}

/// Sends `message` to `server` and returns the response (panics after [`CLIENT_TIMEOUT`]).
pub async fn query(server: SocketAddr, proto: Proto, message: &Message) -> Message {
    let bytes = message.to_vec().expect("encode");
    let raw = query_raw(server, proto, &bytes).await;
    Message::from_vec(&raw).expect("decode response")
}

/// Sends raw bytes and returns the raw response whose ID matches (panics on timeout).
pub async fn query_raw(server: SocketAddr, proto: Proto, bytes: &[u8]) -> Vec<u8> {
    query_raw_from(LOCALHOST, server, proto, bytes).await
}

const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Sends `message` from the loopback address `src` (e.g. 127.0.0.7, to play another client).
pub async fn query_from(
    src: std::net::IpAddr,
    server: SocketAddr,
    proto: Proto,
    message: &Message,
) -> Message {
    let bytes = message.to_vec().expect("encode");
    let raw = query_raw_from(src, server, proto, &bytes).await;
    Message::from_vec(&raw).expect("decode response")
}

/// [`query_raw`] from a chosen loopback source address.
pub async fn query_raw_from(
    src: std::net::IpAddr,
    server: SocketAddr,
    proto: Proto,
    bytes: &[u8],
) -> Vec<u8> {
    try_query_raw_from(src, server, proto, bytes, CLIENT_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// [`query_raw_from`] that returns why there is no answer instead of panicking, with its own
/// timeout: for a test that collects every failure before it fails (`dns_differential`).
pub async fn try_query_raw_from(
    src: std::net::IpAddr,
    server: SocketAddr,
    proto: Proto,
    bytes: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let work = async {
        match proto {
            Proto::Udp => {
                let sock = tokio::net::UdpSocket::bind(SocketAddr::new(src, 0))
                    .await
                    .map_err(|e| format!("bind: {e}"))?;
                sock.send_to(bytes, server)
                    .await
                    .map_err(|e| format!("send: {e}"))?;
                let mut buf = vec![0u8; 65535];
                // Bounded: stray datagrams are skipped, at most a few.
                for _ in 0..8 {
                    let (n, from) = sock
                        .recv_from(&mut buf)
                        .await
                        .map_err(|e| format!("recv: {e}"))?;
                    if from == server && n >= 2 && bytes.len() >= 2 && buf[..2] == bytes[..2] {
                        return Ok(buf[..n].to_vec());
                    }
                }
                Err(format!("no matching response from {server}"))
            }
            Proto::Tcp => {
                let socket = if src.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()
                } else {
                    tokio::net::TcpSocket::new_v6()
                }
                .map_err(|e| format!("socket: {e}"))?;
                socket
                    .bind(SocketAddr::new(src, 0))
                    .map_err(|e| format!("bind: {e}"))?;
                let mut s = socket
                    .connect(server)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                let len = u16::try_from(bytes.len()).map_err(|_| "query too long".to_string())?;
                s.write_all(&len.to_be_bytes())
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                s.write_all(bytes)
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                let mut len = [0u8; 2];
                s.read_exact(&mut len)
                    .await
                    .map_err(|e| format!("read len: {e}"))?;
                let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
                s.read_exact(&mut buf)
                    .await
                    .map_err(|e| format!("read body: {e}"))?;
                Ok(buf)
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer from {server} over {proto:?} within {timeout:?}"
            ))
        })
}

/// The Extended DNS Error (INFO-CODE, EXTRA-TEXT) of a response, if any.
pub fn ede(m: &Message) -> Option<(u16, String)> {
    let edns = m.edns.as_ref()?;
    match edns.options().get(EdnsCode::Unknown(15))? {
        EdnsOption::Unknown(15, data) if data.len() >= 2 => Some((
            u16::from_be_bytes([data[0], data[1]]),
            String::from_utf8_lossy(&data[2..]).into_owned(),
        )),
        _ => None,
    }
}

/// The A/AAAA addresses in the answer section, as text.
pub fn addresses(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| r.data.ip_addr())
        .map(|ip| ip.to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// External receivers (exports)

/// How long [`wait_for`] waits: long enough for an external receiver (rsyslogd,
/// fstrm_capture) to start on a loaded machine.
pub const WAIT: Duration = Duration::from_secs(20);
/// How often [`wait_for`] looks again.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `condition` every [`POLL`], panicking after [`WAIT`] naming `what` (never a bare sleep).
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// Polls the async `check` every [`POLL`] for at most 30 s (a node catching up with a
/// database on a loaded machine), panicking with `what` and the state `check` last reported.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let last = match check().await {
            Ok(()) => return,
            Err(state) => state,
        };
        assert!(std::time::Instant::now() < deadline, "{what}: still {last}");
        tokio::time::sleep(POLL).await;
    }
}

/// `name A` asked from `client` (a loopback address) of `bed`: the addresses answered.
pub async fn answer_from(bed: &TestBed, client: &str, name: &str) -> Vec<String> {
    let ip: std::net::IpAddr = client.parse().expect("client address");
    let answer = query_from(ip, bed.dns, Proto::Udp, &request(name, RecordType::A, true)).await;
    addresses(&answer)
}

/// A TCP port on 127.0.0.1 that was free a moment ago, for a receiver process we start.
pub fn free_tcp_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    l.local_addr().expect("addr").port()
}

/// A UDP port on 127.0.0.1 that was free a moment ago, for a receiver process we start.
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("free port");
    s.local_addr().expect("addr").port()
}

/// The value of the first series of `name` in Prometheus text whose labels contain `label`
/// (e.g. `sink="tap"`), 0 when there is none.
pub fn labelled_metric(text: &str, name: &str, label: &str) -> f64 {
    let open = format!("{name}{{");
    text.lines()
        .find(|l| l.starts_with(&open) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The sum of every series of `name` whose labels contain `label` (a counter split by another
/// label, e.g. `poolguard_export_dropped_total{sink,reason}`), 0 when there is none.
pub fn summed_metric(text: &str, name: &str, label: &str) -> f64 {
    let open = format!("{name}{{");
    text.lines()
        .filter(|l| l.starts_with(&open) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// ---------------------------------------------------------------------------------------------
// API

/// Hex SHA-256 of `s`: `[[api.tokens]] sha256` holds only a token's digest, and stored
/// versions are named by the digest of their bytes.
pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// One `[[api.tokens]]` entry giving the secret `token` the `role`, as a config holds it.
pub fn api_token_toml(name: &str, role: &str, token: &str) -> String {
    format!(
        "[[api.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
        sha256_hex(token)
    )
}

impl TestBed {
    /// One API request with `token` as bearer: (status, JSON body, or the text as a JSON
    /// string when the body is not JSON, so an assertion message still shows it).
    pub async fn api_request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Vec<u8>>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut req = self.api_builder(method, path, token);
        if let Some(b) = body {
            req = req.body(b);
        }
        api_answer(req).await
    }

    /// `POST path` with `token` and a JSON `body` (sent as `application/json`): (status code,
    /// body as in [`TestBed::api_request`]).
    pub async fn api_post_json(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.api_json(reqwest::Method::POST, path, token, body)
            .await
    }

    /// `method path` with `token` and a JSON `body` (sent as `application/json`): (status
    /// code, body as in [`TestBed::api_request`]).
    pub async fn api_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let req = self.api_builder(method, path, token).json(body);
        let (status, value) = api_answer(req).await;
        (status.as_u16(), value)
    }

    fn api_builder(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, format!("{}{path}", self.api_url()))
            .bearer_auth(token)
    }

    /// A blocked `sink.test. A` query from each of `clients` (127.0.0.x), then a flush: each
    /// client has a hit stored and, with incidents on, an incident opened.
    pub async fn hits_from(&self, clients: &[&str]) {
        for client in clients {
            let from: std::net::IpAddr = client.parse().expect("client address");
            query_from(
                from,
                self.dns,
                Proto::Udp,
                &request("sink.test.", hickory_proto::rr::RecordType::A, true),
            )
            .await;
        }
        self.running().flush().await.expect("flush");
    }

    /// The `/metrics` text (no token needed; asserts it answers 200).
    pub async fn metrics_text(&self) -> String {
        let resp = reqwest::get(format!("{}/metrics", self.api_url()))
            .await
            .expect("metrics answers");
        assert_eq!(resp.status(), 200, "/metrics");
        resp.text().await.expect("text")
    }

    /// `/healthz` as (status code, JSON body).
    pub async fn healthz(&self) -> (u16, serde_json::Value) {
        healthz_at(&self.api_url()).await
    }

    /// `GET path` with `token`: (status code, body as in [`TestBed::api_request`]).
    pub async fn api_get(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let (status, v) = self
            .api_request(reqwest::Method::GET, path, token, None)
            .await;
        (status.as_u16(), v)
    }

    /// `PUT path` with `token` and `body`: (status code, body as in [`TestBed::api_request`]).
    pub async fn api_put(&self, path: &str, token: &str, body: &str) -> (u16, serde_json::Value) {
        let (status, v) = self
            .api_request(
                reqwest::Method::PUT,
                path,
                token,
                Some(body.as_bytes().to_vec()),
            )
            .await;
        (status.as_u16(), v)
    }
}

// ---------------------------------------------------------------------------------------------
// Query events

/// A recorder whose events the test reads back, in the order they were recorded.
pub fn event_tap() -> (Recorder, EventTap) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (Recorder::new(Arc::new(ChannelSink(tx))), EventTap(rx))
}

struct ChannelSink(tokio::sync::mpsc::UnboundedSender<QueryEvent>);

impl Sink for ChannelSink {
    fn submit(&self, event: QueryEvent) -> bool {
        self.0.send(event).is_ok()
    }
}

/// The read side of [`event_tap`]. Events are recorded just after the answer is sent, so
/// wait for a query's event before sending the next query when order matters.
pub struct EventTap(tokio::sync::mpsc::UnboundedReceiver<QueryEvent>);

impl EventTap {
    /// The next event (panics after [`CLIENT_TIMEOUT`]).
    pub async fn next(&mut self) -> QueryEvent {
        tokio::time::timeout(CLIENT_TIMEOUT, self.0.recv())
            .await
            .expect("a query event within the timeout")
            .expect("recorder alive")
    }
}

/// Sends `req` and reads the answer: (status, JSON body, or the text as a JSON string when the
/// body is not JSON, so an assertion message still shows it).
async fn api_answer(req: reqwest::RequestBuilder) -> (reqwest::StatusCode, serde_json::Value) {
    let resp = req.send().await.expect("API answers");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, value)
}

/// `GET <api_url>/healthz` as (status code, JSON body): a test bed's or a child process's.
pub async fn healthz_at(api_url: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::get(format!("{api_url}/healthz"))
        .await
        .expect("healthz answers");
    let code = resp.status().as_u16();
    (code, resp.json().await.expect("JSON"))
}

/// Serves `app` on 127.0.0.1 (a port of its own) on the test's runtime; returns its address.
/// For receivers a test counts calls at (webhooks).
pub async fn serve_local(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}
