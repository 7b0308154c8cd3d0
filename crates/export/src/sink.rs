//! One export receiver (dnstap or syslog): a bounded queue filled by the DNS workers and a
//! task that keeps a connection to the receiver and writes the queue into it.
//!
//! The DNS side only ever calls [`QueueSink::offer`]: a `try_send` into a bounded channel.
//! When the receiver is slow or gone the channel fills and further exchanges are dropped and
//! counted (`poolguard_export_dropped_total{sink,reason}`); DNS never waits. The task connects,
//! handshakes (dnstap: READY/ACCEPT/START), encodes and writes in batches, and on any error drops the
//! connection and reconnects after a delay that doubles from `reconnect_min_ms` up to
//! `reconnect_max_ms`. At shutdown it writes what is queued (dnstap: then STOP, and waits for
//! FINISH). Syslog over UDP has no connection: one datagram per message, a failed send drops
//! (and counts) that message.
//!
//! A syslog export with `select = "all"` also takes ordinary (non-hit) queries, bounded at
//! admission: at most `max_per_second` of them per second ([`Budget`]) and only while at
//! least half the queue is free, so a flood of ordinary queries can never crowd out hits (which may
//! use the whole queue and have no rate budget). Drops carry a `reason` label: `queue_full`,
//! `rate_limit` (both at admission) or `receiver` (written but not taken, or left at shutdown).
//!
//! The client's identity is looked up here, by the task, in the shared ledger snapshot when a
//! batch is encoded: never on the DNS path.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::budget::Budget;
use super::config::Select;
use super::dnstap::{self, Identity};
use super::fstrm::{self, DNSTAP_CONTENT_TYPE, FstrmError};
use super::syslog;
use poolguard_clients::SharedLedger;
use poolguard_record::Outcome;
use poolguard_record::exchange::Exchange;
use poolguard_record::lifecycle::{AttributedHit, LifecycleEvent};

/// What a receiver's queue holds.
#[derive(Debug, Clone)]
pub enum Item {
    /// An answered query only this receiver takes: held by value, so the DNS path makes no
    /// allocation for it beyond its messages (and the export task frees no more).
    Exchange(Exchange),
    /// An answered query several receivers take.
    Shared(Arc<Exchange>),
    /// An incident or quarantine event (syslog receivers with `events`).
    Event(Arc<LifecycleEvent>),
    /// A hit the store committed, with its incident (syslog receivers while incident
    /// tracking is on; they then take no hits from the DNS path).
    Committed(Arc<AttributedHit>),
}

impl Item {
    /// The answered query, when this is one.
    fn exchange(&self) -> Option<&Exchange> {
        match self {
            Item::Exchange(e) => Some(e),
            Item::Shared(e) => Some(e),
            Item::Event(_) | Item::Committed(_) => None,
        }
    }
}

/// Exchanges written per batch (one `write`). 512 dnstap frames of a typical ~250 bytes are
/// ~128 KiB, within a Unix socket's default send buffer (208 KiB); the harness's full rate
/// (~150 000 exchanges a second) brings ~300 per [`LINGER`].
const BATCH: usize = 512;
/// After writing a batch, the connection waits this long before taking the next one (unless
/// a full batch is already waiting), so exchanges gather instead of each waking the task.
/// Measured (docs/EXPORT.md, "Cost"): without it, a DNS worker and the export task on one
/// core took turns item by item, a wake-up and a `write` per exchange, and dnstap of every
/// query cost a third of the core; lingering only after a batch that was not full still
/// woke the task twice per period (a full batch, then the few that came meanwhile). A
/// receiver sees exchanges at most this much later; the queue holds far more than this long
/// at any rate the DNS path reaches.
const LINGER: Duration = Duration::from_millis(2);
/// Largest encoded-batch buffer kept between batches (a full batch takes ~128 KiB).
const KEEP_BUFFER: usize = 1 << 20;
/// Bound on each handshake step and on the final STOP/FINISH.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the receiver listens.
#[derive(Debug, Clone)]
pub enum Target {
    Unix(PathBuf),
    Tcp(SocketAddr),
    /// Syslog only: datagrams, no connection.
    Udp(SocketAddr),
    /// Syslog only: TCP with TLS, the receiver verified as `name`.
    Tls(
        SocketAddr,
        rustls_pki_types::ServerName<'static>,
        Arc<tokio_rustls::rustls::ClientConfig>,
    ),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
            Target::Tcp(a) => write!(f, "tcp:{a}"),
            Target::Udp(a) => write!(f, "udp:{a}"),
            Target::Tls(a, ..) => write!(f, "tls:{a}"),
        }
    }
}

/// What goes over the wire to a receiver.
#[derive(Debug, Clone)]
pub enum Wire {
    /// dnstap over Frame Streams; `both` = a CLIENT_QUERY before each CLIENT_RESPONSE;
    /// `with_identity` = the client's ledger identity in `extra`.
    Dnstap {
        identity: Identity,
        both: bool,
        with_identity: bool,
    },
    /// RFC 5424 messages (octet-counted over TCP).
    Syslog(syslog::Header),
}

/// What a receiver's queue and connection are set up with, from its config section.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The metrics' `sink` label.
    pub label: String,
    /// Every answered query, or hits only.
    pub select: Select,
    /// Only exchanges decided by these feeds (empty = no feed filter).
    pub feeds: Vec<String>,
    /// Only exchanges decided by feeds of these categories (empty = no category filter).
    pub categories: Vec<String>,
    /// Hits come from the store once committed, with their incident id, instead of from the
    /// DNS path (syslog receivers while incident tracking is on; docs/EXPORT.md).
    pub committed_hits: bool,
    /// The queue's bound: beyond it new exchanges are dropped and counted, never waited for.
    pub queue_size: usize,
    /// First reconnect delay; doubles after each failure up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay.
    pub reconnect_max_ms: u64,
    /// A write not taken within this long drops the connection, so a stuck receiver cannot
    /// hold the queue.
    pub write_timeout_ms: u64,
    /// Ordinary (non-hit) exchanges admitted per second, and only into the free half of the
    /// queue; `None` = no such bound (dnstap).
    pub max_per_second: Option<u32>,
}

/// The DNS side of one receiver: its filter and the queue's sending end.
pub struct QueueSink {
    select: Select,
    feeds: Vec<String>,
    categories: Vec<String>,
    /// See [`Settings::committed_hits`].
    committed_hits: bool,
    queue: mpsc::Sender<Item>,
    /// Bound on ordinary queries (syslog `select = "all"`), with the free slots they need.
    ordinary: Option<(Budget, usize)>,
    full: Counter,
    limited: Counter,
}

/// Counters and gauges of one sink, resolved once (labelled handles hash their key per call).
#[derive(Clone)]
struct Meters {
    /// Dropped at admission: the queue was full.
    full: Counter,
    /// Dropped at admission: the ordinary queries' budget was spent.
    limited: Counter,
    /// Dropped after admission: the receiver did not take them.
    dropped: Counter,
    sent: Counter,
    connections: Counter,
    connected: Gauge,
}

impl Meters {
    fn new(label: &str) -> Self {
        let sink = label.to_string();
        let m = Self {
            full: metrics::counter!("poolguard_export_dropped_total", "sink" => sink.clone(), "reason" => "queue_full"),
            limited: metrics::counter!("poolguard_export_dropped_total", "sink" => sink.clone(), "reason" => "rate_limit"),
            dropped: metrics::counter!("poolguard_export_dropped_total", "sink" => sink.clone(), "reason" => "receiver"),
            sent: metrics::counter!("poolguard_export_sent_total", "sink" => sink.clone()),
            connections: metrics::counter!("poolguard_export_connections_total", "sink" => sink.clone()),
            connected: metrics::gauge!("poolguard_export_connected", "sink" => sink),
        };
        // Registered at start, so a scrape shows 0 rather than nothing before the first drop.
        // Their HELP texts are in `api::metrics::METRICS` (series `PerSink`).
        m.full.increment(0);
        m.limited.increment(0);
        m.dropped.increment(0);
        m.sent.increment(0);
        m.connections.increment(0);
        m.connected.set(0.0);
        m
    }
}

impl QueueSink {
    /// The sink for `config`, and the task that serves its receiver until `stop` (spawn it on
    /// the control runtime).
    pub fn new(
        config: &Settings,
        target: Target,
        wire: Wire,
        ledger: SharedLedger,
        stop: CancellationToken,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let meters = Meters::new(&config.label);
        let (tx, rx) = mpsc::channel(config.queue_size.max(1));
        let sink = Self {
            select: config.select,
            feeds: config.feeds.clone(),
            categories: config.categories.clone(),
            committed_hits: config.committed_hits,
            queue: tx,
            ordinary: config
                .max_per_second
                .map(|limit| (Budget::new(limit), config.queue_size.max(1).div_ceil(2))),
            full: meters.full.clone(),
            limited: meters.limited.clone(),
        };
        let task = Connection {
            target,
            wire,
            reconnect: (
                Duration::from_millis(config.reconnect_min_ms.max(1)),
                Duration::from_millis(config.reconnect_max_ms.max(1)),
            ),
            write_timeout: Duration::from_millis(config.write_timeout_ms.max(1)),
            ledger,
            meters,
            stop,
        }
        .run(rx);
        (sink, task)
    }

    /// Whether this receiver takes an exchange from the DNS path: what [`QueueSink::wants`]
    /// says, except hits while they come from the store instead.
    pub fn takes_answered(&self, outcome: Outcome, feed: Option<(&str, &str)>) -> bool {
        !(self.committed_hits && outcome.is_hit()) && self.wants(outcome, feed)
    }

    /// Whether this receiver takes hits from the store rather than the DNS path.
    pub fn takes_committed_hits(&self) -> bool {
        self.committed_hits
    }

    /// Whether this receiver takes a hit the store committed, decided by `feed`.
    pub fn takes_committed(&self, outcome: Outcome, feed: Option<(&str, &str)>) -> bool {
        self.committed_hits && self.wants(outcome, feed)
    }

    /// Whether this receiver's filters (`select`, `feeds`, `categories`) keep a record with
    /// `outcome` decided by `feed`, whichever path it comes from.
    pub fn wants(&self, outcome: Outcome, feed: Option<(&str, &str)>) -> bool {
        if self.select == Select::Hits && !outcome.is_hit() {
            return false;
        }
        if !self.feeds.is_empty()
            && !feed.is_some_and(|(name, _)| self.feeds.iter().any(|f| f == name))
        {
            return false;
        }
        if !self.categories.is_empty()
            && !feed.is_some_and(|(_, category)| self.categories.iter().any(|c| c == category))
        {
            return false;
        }
        true
    }

    /// Queues `exchange`, which no other receiver takes, without waiting; a full queue (or a
    /// stopped task) drops it, counted. An ordinary query also needs its rate budget and half
    /// the queue free.
    pub fn offer(&self, exchange: Exchange) {
        self.admit(exchange.outcome, Item::Exchange(exchange));
    }

    /// [`QueueSink::offer`] for an exchange other receivers take too.
    pub fn offer_shared(&self, exchange: Arc<Exchange>) {
        self.admit(exchange.outcome, Item::Shared(exchange));
    }

    fn admit(&self, outcome: Outcome, item: Item) {
        if let Some((budget, free)) = &self.ordinary
            && !outcome.is_hit()
        {
            if self.queue.capacity() < *free {
                self.full.increment(1);
                return;
            }
            if !budget.admit() {
                self.limited.increment(1);
                return;
            }
        }
        if self.queue.try_send(item).is_err() {
            self.full.increment(1);
        }
    }

    /// Queues an incident or quarantine event without waiting (no rate budget, like hits).
    pub fn offer_event(&self, event: Arc<LifecycleEvent>) {
        self.offer_unbudgeted(Item::Event(event));
    }

    /// Queues a committed hit without waiting (no rate budget); a full queue drops it, counted.
    pub fn offer_committed(&self, hit: Arc<AttributedHit>) {
        self.offer_unbudgeted(Item::Committed(hit));
    }

    fn offer_unbudgeted(&self, item: Item) {
        if self.queue.try_send(item).is_err() {
            self.full.increment(1);
        }
    }
}

/// How a connection ended.
enum Ended {
    /// Stopped (shutdown or every sender gone): do not reconnect.
    Stopped,
    /// The receiver went away or failed: reconnect.
    Lost(FstrmError),
}

/// The receiver side of the queue: connects, writes, reconnects.
struct Connection {
    target: Target,
    wire: Wire,
    reconnect: (Duration, Duration),
    write_timeout: Duration,
    ledger: SharedLedger,
    meters: Meters,
    stop: CancellationToken,
}

impl Connection {
    async fn run(self, mut rx: mpsc::Receiver<Item>) {
        let (min, max) = self.reconnect;
        let mut delay = min;
        // Logged once per outage, not once per attempt.
        let mut reported = false;
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            // Not raced against `stop`: the connection handles it itself (writes what is
            // queued, then STOP / FINISH); every wait inside is bounded.
            let ended = self.connect_and_serve(&mut rx).await;
            self.meters.connected.set(0.0);
            match ended {
                Ok(Ended::Stopped) => break,
                Ok(Ended::Lost(error)) => {
                    tracing::warn!(target = %self.target, %error, "dnstap receiver lost; reconnecting");
                    delay = min;
                    reported = true;
                }
                Err(error) => {
                    if !reported {
                        tracing::warn!(target = %self.target, %error, "dnstap receiver unreachable; exchanges queue (then drop) until it is back");
                        reported = true;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.stop.cancelled() => break,
            }
            delay = (delay * 2).min(max);
        }
        // Whatever is still queued is dropped with the task: count it.
        rx.close();
        let mut left = 0;
        while rx.try_recv().is_ok() {
            left += 1;
        }
        self.meters.dropped.increment(left);
    }

    /// One connection: `Err` when it could not be set up, else how it ended.
    async fn connect_and_serve(&self, rx: &mut mpsc::Receiver<Item>) -> Result<Ended, FstrmError> {
        let connect = async {
            match &self.target {
                Target::Unix(path) => {
                    let s = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(Stream::Unix(s))
                }
                Target::Tcp(addr) => {
                    let s = tokio::net::TcpStream::connect(addr).await?;
                    s.set_nodelay(true)?;
                    Ok(Stream::Tcp(s))
                }
                Target::Tls(addr, name, client) => {
                    let s = tokio::net::TcpStream::connect(addr).await?;
                    s.set_nodelay(true)?;
                    let tls = tokio_rustls::TlsConnector::from(client.clone())
                        .connect(name.clone(), s)
                        .await?;
                    Ok(Stream::Tls(Box::new(tls)))
                }
                Target::Udp(addr) => {
                    let local: SocketAddr = if addr.is_ipv4() {
                        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                    } else {
                        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                    };
                    let s = tokio::net::UdpSocket::bind(local).await?;
                    s.connect(addr).await?;
                    Ok(Stream::Udp(s))
                }
            }
        };
        let stream = tokio::select! {
            connected = tokio::time::timeout(HANDSHAKE_TIMEOUT, connect) => connected
                .map_err(|_| FstrmError::Timeout(HANDSHAKE_TIMEOUT))??,
            _ = self.stop.cancelled() => return Ok(Ended::Stopped),
        };
        match stream {
            Stream::Unix(s) => self.serve(s, rx).await,
            Stream::Tcp(s) => self.serve(s, rx).await,
            Stream::Udp(s) => Ok(self.serve_udp(s, rx).await),
            Stream::Tls(s) => self.serve(*s, rx).await,
        }
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        rx: &mut mpsc::Receiver<Item>,
    ) -> Result<Ended, FstrmError> {
        // Unbuffered: a batch is encoded into one buffer and written with one `write_all`
        // (a BufWriter would only copy it once more); the handshake's control frames are
        // each one write too.
        let (mut reader, mut writer) = tokio::io::split(stream);
        let dnstap = matches!(self.wire, Wire::Dnstap { .. });
        if dnstap {
            fstrm::handshake(
                &mut reader,
                &mut writer,
                DNSTAP_CONTENT_TYPE,
                HANDSHAKE_TIMEOUT,
            )
            .await?;
        }
        self.meters.connections.increment(1);
        self.meters.connected.set(1.0);
        tracing::info!(target = %self.target, "export receiver connected");
        let mut probe = [0u8; 64];
        let mut batch = Vec::with_capacity(BATCH);
        // The encoded batch, kept between batches so it is not grown again each time.
        let mut bytes = Vec::new();
        // Set after a batch is written: no receiving (and so no wake-up per exchange) until
        // then.
        let mut linger: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => {
                    // Write what is queued now (bounded by the queue), then STOP / FINISH.
                    while let Ok(e) = rx.try_recv() {
                        batch.push(e);
                        if batch.len() == BATCH
                            && let Err(error) = self.write(&mut writer, &mut batch, &mut bytes).await
                        {
                            return Ok(Ended::Lost(error));
                        }
                    }
                    if let Err(error) = self.write(&mut writer, &mut batch, &mut bytes).await {
                        return Ok(Ended::Lost(error));
                    }
                    if dnstap && let Err(error) = fstrm::finish(&mut reader, &mut writer, HANDSHAKE_TIMEOUT).await {
                        tracing::debug!(target = %self.target, %error, "dnstap receiver did not FINISH");
                    }
                    let _ = writer.shutdown().await;
                    return Ok(Ended::Stopped);
                }
                // The receiver sends nothing after ACCEPT until FINISH: EOF or data here
                // means it went away (noticed even while no query is flowing).
                read = reader.read(&mut probe) => {
                    return Ok(Ended::Lost(match read {
                        Ok(0) => FstrmError::Io(std::io::ErrorKind::UnexpectedEof.into()),
                        Ok(_) => FstrmError::Malformed("unexpected frame from the receiver"),
                        Err(e) => FstrmError::Io(e),
                    }));
                }
                () = async {
                    if let Some(until) = linger {
                        tokio::time::sleep_until(until).await;
                    }
                }, if linger.is_some() => linger = None,
                // Up to a batch at once: the queue's permits go back in one step, not one
                // per item.
                taken = rx.recv_many(&mut batch, BATCH), if linger.is_none() => {
                    if taken == 0 {
                        if dnstap {
                            let _ = fstrm::finish(&mut reader, &mut writer, HANDSHAKE_TIMEOUT).await;
                        }
                        let _ = writer.shutdown().await;
                        return Ok(Ended::Stopped);
                    }
                    if let Err(error) = self.write(&mut writer, &mut batch, &mut bytes).await {
                        return Ok(Ended::Lost(error));
                    }
                    if rx.len() < BATCH {
                        linger = Some(tokio::time::Instant::now() + LINGER);
                    }
                }
            }
        }
    }

    /// Encodes `batch` into `bytes` and writes it, then flushes, within the write timeout. On
    /// failure the batch counts as dropped: what the receiver got of it is unknown.
    async fn write<W: AsyncWrite + Unpin>(
        &self,
        writer: &mut W,
        batch: &mut Vec<Item>,
        bytes: &mut Vec<u8>,
    ) -> Result<(), FstrmError> {
        if batch.is_empty() {
            return Ok(());
        }
        bytes.clear();
        self.encode(batch, bytes);
        let n = batch.len() as u64;
        batch.clear();
        let write = async {
            writer.write_all(bytes).await?;
            writer.flush().await
        };
        let written = tokio::time::timeout(self.write_timeout, write).await;
        // A batch of large TCP answers can grow the buffer far beyond the usual few tens of
        // KiB: that much is not kept between batches.
        if bytes.capacity() > KEEP_BUFFER {
            *bytes = Vec::new();
        }
        match written {
            Ok(Ok(())) => {
                self.meters.sent.increment(n);
                Ok(())
            }
            Ok(Err(e)) => {
                self.meters.dropped.increment(n);
                Err(FstrmError::Io(e))
            }
            Err(_) => {
                self.meters.dropped.increment(n);
                Err(FstrmError::Timeout(self.write_timeout))
            }
        }
    }
}

impl Connection {
    /// The stream bytes of `batch`: Frame Streams data frames, or octet-counted syslog.
    fn encode(&self, batch: &[Item], bytes: &mut Vec<u8>) {
        match &self.wire {
            Wire::Dnstap {
                identity,
                both,
                with_identity,
            } => {
                // One snapshot per batch, and only when identities are sent at all.
                let ledger = with_identity.then(|| self.ledger.load());
                for item in batch {
                    // Events and committed hits are offered to syslog receivers only.
                    let Some(exchange) = item.exchange() else {
                        continue;
                    };
                    let extra = ledger
                        .as_ref()
                        .and_then(|l| l.lookup(exchange.client.ip()))
                        .map(|id| crate::identity::extra_json(&id));
                    dnstap::encode(exchange, identity, *both, extra.as_deref(), bytes);
                }
            }
            Wire::Syslog(header) => {
                let ledger = self.ledger.load();
                for item in batch {
                    syslog::octet_counted(&syslog_message(item, header, &ledger), bytes);
                }
            }
        }
    }

    /// Syslog over UDP: one datagram per message until stopped (then what is queued is sent).
    async fn serve_udp(
        &self,
        socket: tokio::net::UdpSocket,
        rx: &mut mpsc::Receiver<Item>,
    ) -> Ended {
        let Wire::Syslog(header) = &self.wire else {
            return Ended::Stopped;
        };
        self.meters.connections.increment(1);
        self.meters.connected.set(1.0);
        let send = |item: Item| {
            let message = syslog_message(&item, header, &self.ledger.load());
            let socket = &socket;
            async move {
                // A UDP send waits only for socket buffer room; bounded all the same.
                match tokio::time::timeout(self.write_timeout, socket.send(message.as_bytes()))
                    .await
                {
                    Ok(Ok(_)) => self.meters.sent.increment(1),
                    _ => self.meters.dropped.increment(1),
                }
            }
        };
        loop {
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => {
                    while let Ok(e) = rx.try_recv() {
                        send(e).await;
                    }
                    return Ended::Stopped;
                }
                next = rx.recv() => match next {
                    Some(e) => send(e).await,
                    None => return Ended::Stopped,
                },
            }
        }
    }
}

/// The syslog message for a queued item, with its client's identity from `ledger`.
fn syslog_message(
    item: &Item,
    header: &syslog::Header,
    ledger: &poolguard_clients::Ledger,
) -> String {
    match item {
        Item::Exchange(e) => {
            let id = ledger.lookup(e.client.ip());
            syslog::format(e, header, id.as_deref())
        }
        Item::Shared(e) => {
            let id = ledger.lookup(e.client.ip());
            syslog::format(e, header, id.as_deref())
        }
        Item::Event(e) => {
            let id = e
                .client
                .as_deref()
                .and_then(|c| c.parse().ok())
                .and_then(|ip| ledger.lookup(ip));
            crate::events::format(e, header, id.as_deref())
        }
        Item::Committed(h) => {
            let id = ledger.lookup(h.event.client.ip());
            syslog::format_committed(h, header, id.as_deref())
        }
    }
}

enum Stream {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
    Udp(tokio::net::UdpSocket),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}
