//! The hit spool: where hits wait, on disk, while SQLite cannot take them (disk full, read-only
//! file system, a broken database).
//!
//! Hits are evidence, so a failed batch must not lose them, yet memory must stay bounded. The
//! writer thread hands the hits of a failed batch to a [`Backlog`]:
//!
//! 1. the **spool file** `<db>.spool` (next to the database, see [`spool_path`]): append-only,
//!    one JSON line per hit after a header line naming the file, fsync'd once per append
//!    batch, never larger than `[store] spool_max_bytes`;
//! 2. if the file is full or cannot be written either, **memory**, up to a fixed count;
//! 3. past both bounds hits are **dropped and counted** (the caller counts them as
//!    `poolguard_log_rows_dropped_total{table="hits"}`).
//!
//! Hits leave in arrival order: file first, then memory. The writer replays them in chunks,
//! each chunk in one transaction that also records how far the file was replayed (table
//! `spool_replay`: the file's id and byte offset), so a crash during replay neither loses nor
//! duplicates a hit. The file is removed only after the commit of its last chunk; a leftover
//! file (a crash while spooling) is replayed on the next start. A record cut short by a crash
//! mid-append (no final newline) is reported and cut off; a line that does not parse is
//! reported and skipped; every other record is replayed.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use poolguard_record::{Outcome, QueryEvent, Transport};

/// Why the spool could not be read or written; the writer falls back to memory.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("hit spool {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("hit spool {path}: a record could not be encoded: {source}")]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The spool file that belongs to the database at `db`: `<db>.spool`.
pub fn spool_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_os_string();
    s.push(".spool");
    PathBuf::from(s)
}

/// The first line of a spool file: its format and an id, so a replay offset stored in the
/// database is never applied to a different (newer) file.
#[derive(Serialize, Deserialize)]
struct Header {
    poolguard_spool: u32,
    id: String,
}

const FORMAT: u32 = 1;

/// One hit as a spool line. Short keys: a full spool is mostly these.
#[derive(Serialize, Deserialize)]
struct Record<'a> {
    t: i64,
    c: SocketAddr,
    tr: Transport,
    #[serde(borrow)]
    n: Cow<'a, str>,
    #[serde(borrow)]
    q: Cow<'a, str>,
    o: Outcome,
    #[serde(borrow, default)]
    f: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    r: Option<Cow<'a, str>>,
    #[serde(borrow)]
    rc: Cow<'a, str>,
    #[serde(borrow)]
    a: Cow<'a, str>,
    l: u32,
    #[serde(borrow, default)]
    u: Option<Cow<'a, str>>,
}

impl<'a> Record<'a> {
    fn of(e: &'a QueryEvent) -> Self {
        Record {
            t: e.time_ms,
            c: e.client,
            tr: e.transport,
            n: Cow::Borrowed(&e.name),
            q: Cow::Borrowed(&e.qtype),
            o: e.outcome,
            f: e.feed.as_deref().map(Cow::Borrowed),
            r: e.rule.as_deref().map(Cow::Borrowed),
            rc: Cow::Borrowed(e.rcode),
            a: Cow::Borrowed(&e.answer),
            l: e.latency_us,
            u: e.upstream.as_deref().map(Cow::Borrowed),
        }
    }

    fn into_event(self) -> QueryEvent {
        QueryEvent {
            time_ms: self.t,
            client: self.c,
            transport: self.tr,
            name: self.n.into(),
            qtype: Cow::Owned(self.q.into_owned()),
            outcome: self.o,
            feed: self.f.map(|s| Arc::from(&*s)),
            rule: self.r.map(|s| Arc::from(&*s)),
            rcode: static_rcode(&self.rc),
            answer: Arc::from(&*self.a),
            latency_us: self.l,
            upstream: self.u.map(|s| Arc::from(&*s)),
        }
    }
}

/// `QueryEvent::rcode` is a `&'static str` from a fixed set (see `dns::handler`).
pub(crate) fn static_rcode(s: &str) -> &'static str {
    const KNOWN: [&str; 8] = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "OTHER",
    ];
    KNOWN.into_iter().find(|k| *k == s).unwrap_or("OTHER")
}

/// What [`Spool::open`] found in a leftover file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Bytes of a record cut short by a crash mid-append, cut off the end of the file.
    pub torn_bytes: u64,
    /// The file was not a spool (bad header) and was moved aside to this path.
    pub moved_aside: Option<PathBuf>,
}

/// The append-only spool file. All methods run on the store writer thread.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    max_bytes: u64,
    id: String,
    /// Bytes in the file, header included; always ends after a whole line.
    len: u64,
    /// Offset of the first record not yet committed to the database.
    replayed: u64,
    /// Offset of the first record (just after the header line).
    first_record: u64,
}

fn fresh_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Spool {
    /// Opens the spool at `path`, picking up a leftover file (its torn tail is cut off and
    /// reported). Nothing is created until the first append.
    pub fn open(path: &Path, max_bytes: u64) -> Result<(Self, OpenReport), SpoolError> {
        let io = |source| SpoolError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut spool = Spool {
            path: path.to_path_buf(),
            max_bytes,
            id: fresh_id(),
            len: 0,
            replayed: 0,
            first_record: 0,
        };
        let mut report = OpenReport::default();
        let mut file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((spool, report)),
            Err(e) => return Err(io(e)),
        };
        let size = file.metadata().map_err(io)?.len();
        let good = end_of_last_line(&mut file, size).map_err(io)?;
        let mut header_line = String::new();
        BufReader::new(&mut file)
            .take(64 * 1024)
            .read_line(&mut header_line)
            .map_err(io)?;
        let header = serde_json::from_str::<Header>(header_line.trim_end())
            .ok()
            .filter(|h| h.poolguard_spool == FORMAT && header_line.ends_with('\n'));
        let Some(header) = header else {
            drop(file);
            if good == 0 {
                // Only a torn header: the crash came before any record was written.
                std::fs::remove_file(path).map_err(io)?;
                report.torn_bytes = size;
                return Ok((spool, report));
            }
            let aside =
                path.with_extension(format!("spool.bad-{}", chrono::Utc::now().timestamp()));
            std::fs::rename(path, &aside).map_err(io)?;
            tracing::error!(path = %path.display(), moved = %aside.display(), "hit spool has no valid header; moved aside");
            report.moved_aside = Some(aside);
            return Ok((spool, report));
        };
        if good < size {
            file.set_len(good).map_err(io)?;
            file.sync_data().map_err(io)?;
            report.torn_bytes = size - good;
            tracing::warn!(path = %path.display(), bytes = size - good, "hit spool ended in a torn record (crash mid-append); it was cut off");
        }
        spool.id = header.id;
        spool.first_record = header_line.len() as u64;
        spool.len = good;
        spool.replayed = spool.first_record;
        Ok((spool, report))
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of records not yet replayed (0 when there is nothing to replay).
    pub fn pending_bytes(&self) -> u64 {
        self.len
            .saturating_sub(self.replayed.max(self.first_record))
    }

    /// Whether every spooled record has been committed.
    pub fn is_empty(&self) -> bool {
        self.pending_bytes() == 0
    }

    /// Bytes the file takes on disk.
    pub fn file_bytes(&self) -> u64 {
        self.len
    }

    /// Continues a replay that an earlier run committed up to `offset` of the file `id`.
    pub fn resume(&mut self, id: &str, offset: u64) {
        if id == self.id && offset >= self.first_record && offset <= self.len {
            self.replayed = offset;
        }
    }

    /// Appends as many of `events` as fit under the byte bound, in order, then fsyncs. Returns
    /// how many were written; the rest did not fit. On an I/O error nothing is kept.
    pub fn append(&mut self, events: &[QueryEvent]) -> Result<usize, SpoolError> {
        if self.max_bytes == 0 || events.is_empty() {
            return Ok(0);
        }
        let mut buf = Vec::new();
        if self.len == 0 {
            self.id = fresh_id();
            let header = Header {
                poolguard_spool: FORMAT,
                id: self.id.clone(),
            };
            serde_json::to_writer(&mut buf, &header).map_err(|source| self.encode(source))?;
            buf.push(b'\n');
            self.first_record = buf.len() as u64;
        }
        let mut written = 0;
        for e in events {
            let before = buf.len();
            serde_json::to_writer(&mut buf, &Record::of(e))
                .map_err(|source| self.encode(source))?;
            buf.push(b'\n');
            if self.len + buf.len() as u64 > self.max_bytes {
                buf.truncate(before);
                break;
            }
            written += 1;
        }
        if written == 0 {
            return Ok(0);
        }
        let created = self.len == 0;
        if let Err(source) = self.write_synced(&buf, created) {
            return Err(SpoolError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.len += buf.len() as u64;
        if created {
            self.replayed = self.first_record;
        }
        Ok(written)
    }

    fn encode(&self, source: serde_json::Error) -> SpoolError {
        SpoolError::Encode {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends `buf` and fsyncs; on failure cuts the file back so no partial record stays.
    fn write_synced(&self, buf: &[u8], created: bool) -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let result = file.write_all(buf).and_then(|()| file.sync_data());
        if result.is_err() {
            // Best effort: if this fails too, the next open cuts the torn tail off.
            let _ = file.set_len(self.len);
            return result;
        }
        if created {
            // A new file's directory entry must survive a crash too.
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }

    /// Reads up to `max` records from the replay position. Lines that do not parse are
    /// skipped and counted in the chunk.
    pub fn read_chunk(&self, max: usize) -> Result<FileChunk, SpoolError> {
        let io = |source| SpoolError::Io {
            path: self.path.clone(),
            source,
        };
        let start = self.replayed.max(self.first_record);
        let mut chunk = FileChunk {
            events: Vec::new(),
            end: start,
            corrupt: 0,
        };
        if start >= self.len {
            return Ok(chunk);
        }
        let mut file = File::open(&self.path).map_err(io)?;
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut reader = BufReader::new(file.take(self.len - start));
        let mut line = Vec::new();
        while chunk.events.len() < max.max(1) {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(io)?;
            if n == 0 {
                break;
            }
            chunk.end += n as u64;
            let parsed = std::str::from_utf8(&line)
                .ok()
                .and_then(|s| serde_json::from_str::<Record<'_>>(s.trim_end()).ok());
            match parsed {
                Some(r) => chunk.events.push(r.into_event()),
                None => chunk.corrupt += 1,
            }
        }
        Ok(chunk)
    }

    /// The database committed everything up to `end`; once that is the whole file, the file
    /// is removed (the next append starts a new one with a new id).
    pub fn committed(&mut self, end: u64) -> Result<(), SpoolError> {
        self.replayed = end;
        if self.replayed < self.len {
            return Ok(());
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SpoolError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        }
        self.len = 0;
        self.replayed = 0;
        self.first_record = 0;
        Ok(())
    }

    /// The file's id, stored with the replay offset.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The offset just past the last `\n` in the first `size` bytes (0 if none).
fn end_of_last_line(file: &mut File, size: u64) -> std::io::Result<u64> {
    const STEP: u64 = 64 * 1024;
    let mut end = size;
    let mut buf = vec![0u8; STEP as usize];
    while end > 0 {
        let start = end.saturating_sub(STEP);
        let part = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(part)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            file.seek(SeekFrom::Start(0))?;
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(0)
}

/// Records read from the spool file for one replay transaction.
#[derive(Debug)]
pub struct FileChunk {
    /// The records that parsed, in file order.
    pub events: Vec<QueryEvent>,
    /// File offset just past the last line read: the replay position once committed.
    pub end: u64,
    /// Lines that did not parse (skipped).
    pub corrupt: u64,
}

/// Where a [`Chunk`] came from, so [`Backlog::committed`] can advance the right queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkSource {
    /// The file, up to this offset of the file with this id (stored in the same transaction).
    File { id: String, end: u64 },
    /// The first `n` hits held in memory.
    Memory(usize),
}

/// Hits to replay in one transaction, oldest first.
#[derive(Debug)]
pub struct Chunk {
    /// The hits, oldest first.
    pub events: Vec<QueryEvent>,
    /// What to advance once they are committed.
    pub source: ChunkSource,
    /// Spool lines that did not parse and were skipped.
    pub corrupt: u64,
}

/// How [`Backlog::push`] placed a set of hits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// Appended (and fsync'd) to the spool file.
    pub to_file: u64,
    /// Held in memory: the file was full or could not be written.
    pub to_memory: u64,
    /// Past the spool and memory bounds: lost, to be counted by the caller.
    pub dropped: u64,
}

/// Hits waiting for the database, in arrival order: the spool file, then memory.
#[derive(Debug)]
pub struct Backlog {
    spool: Spool,
    held: VecDeque<QueryEvent>,
    held_max: usize,
    /// The last spool write error, for `/healthz` (cleared by a successful append).
    pub last_error: Option<String>,
}

impl Backlog {
    /// A backlog over `spool`, holding at most `held_max` hits in memory beyond it.
    pub fn new(spool: Spool, held_max: usize) -> Self {
        Self {
            spool,
            held: VecDeque::new(),
            held_max,
            last_error: None,
        }
    }

    /// The spool file.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Mutable spool (to resume a replay at start).
    pub fn spool_mut(&mut self) -> &mut Spool {
        &mut self.spool
    }

    /// Hits held in memory.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Nothing waits for the database.
    pub fn is_empty(&self) -> bool {
        self.spool.is_empty() && self.held.is_empty()
    }

    /// Takes `hits` behind everything already waiting: into the file while it has room and
    /// nothing waits in memory (order), then memory up to its bound; the rest is dropped.
    pub fn push(&mut self, hits: Vec<QueryEvent>) -> Placed {
        let mut placed = Placed::default();
        let mut skip = 0;
        if self.held.is_empty() {
            match self.spool.append(&hits) {
                Ok(n) => {
                    skip = n;
                    self.last_error = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "hit spool not writable; holding hits in memory");
                    self.last_error = Some(e.to_string());
                }
            }
        }
        placed.to_file = skip as u64;
        for e in hits.into_iter().skip(skip) {
            if self.held.len() < self.held_max {
                self.held.push_back(e);
                placed.to_memory += 1;
            } else {
                placed.dropped += 1;
            }
        }
        placed
    }

    /// The oldest waiting hits, at most `max`; `None` when nothing waits.
    pub fn next_chunk(&self, max: usize) -> Result<Option<Chunk>, SpoolError> {
        if !self.spool.is_empty() {
            let c = self.spool.read_chunk(max)?;
            return Ok(Some(Chunk {
                events: c.events,
                source: ChunkSource::File {
                    id: self.spool.id().to_string(),
                    end: c.end,
                },
                corrupt: c.corrupt,
            }));
        }
        if self.held.is_empty() {
            return Ok(None);
        }
        let n = self.held.len().min(max.max(1));
        Ok(Some(Chunk {
            events: self.held.iter().take(n).cloned().collect(),
            source: ChunkSource::Memory(n),
            corrupt: 0,
        }))
    }

    /// The chunk's transaction committed: forget its hits (the file goes once fully replayed).
    pub fn committed(&mut self, source: &ChunkSource) -> Result<(), SpoolError> {
        match source {
            ChunkSource::File { end, .. } => self.spool.committed(*end),
            ChunkSource::Memory(n) => {
                self.held.drain(..(*n).min(self.held.len()));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(i: i64) -> QueryEvent {
        QueryEvent {
            time_ms: 1_000 + i,
            client: "10.20.3.7:5353".parse().expect("addr"),
            transport: Transport::Udp,
            name: format!("w{i}.pool.minexmr.com").into(),
            qtype: "A".into(),
            outcome: Outcome::Blocked,
            feed: Some(Arc::from("mining")),
            rule: Some(Arc::from("minexmr.com")),
            rcode: "NOERROR",
            answer: "A 192.0.2.1".into(),
            latency_us: 12,
            upstream: None,
        }
    }

    fn times(events: &[QueryEvent]) -> Vec<i64> {
        events.iter().map(|e| e.time_ms).collect()
    }

    #[test]
    fn records_round_trip_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = spool_path(&dir.path().join("pg.db"));
        let (mut spool, _) = Spool::open(&path, 1 << 20).expect("open");
        let mut quirky = hit(0);
        quirky.name = "x\"y\\z.example".into();
        quirky.upstream = Some("127.0.0.1:53".into());
        quirky.rcode = "NXDOMAIN";
        let events = vec![quirky, hit(1), hit(2)];
        assert_eq!(spool.append(&events).expect("append"), 3);
        let chunk = spool.read_chunk(10).expect("read");
        assert_eq!(chunk.corrupt, 0);
        assert_eq!(chunk.events.len(), 3);
        assert_eq!(&*chunk.events[0].name, "x\"y\\z.example");
        assert_eq!(chunk.events[0].rcode, "NXDOMAIN");
        assert_eq!(chunk.events[0].upstream.as_deref(), Some("127.0.0.1:53"));
        assert_eq!(chunk.events[1].feed.as_deref(), Some("mining"));
        assert_eq!(times(&chunk.events), vec![1_000, 1_001, 1_002]);
        spool.committed(chunk.end).expect("commit");
        assert!(spool.is_empty());
        assert!(!path.exists(), "a fully replayed spool is removed");
    }

    #[test]
    fn past_the_byte_bound_hits_are_dropped_not_written() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = spool_path(&dir.path().join("pg.db"));
        let max = 1_000;
        let (spool, _) = Spool::open(&path, max).expect("open");
        let mut backlog = Backlog::new(spool, 3);
        let placed = backlog.push((0..20).map(hit).collect());
        assert!(placed.to_file > 0, "{placed:?}");
        assert_eq!(placed.to_memory, 3);
        assert_eq!(placed.to_file + placed.to_memory + placed.dropped, 20);
        assert!(placed.dropped > 0);
        let size = std::fs::metadata(&path).expect("spool exists").len();
        assert!(size <= max, "spool file {size} bytes > bound {max}");
        // More hits while full: memory is full too, so all of them are dropped (no panic).
        let more = backlog.push((20..25).map(hit).collect());
        assert_eq!(
            more,
            Placed {
                to_file: 0,
                to_memory: 0,
                dropped: 5
            }
        );
        assert_eq!(std::fs::metadata(&path).expect("spool").len(), size);
        // Replay gives exactly the kept hits, oldest first: file, then memory.
        let mut replayed = Vec::new();
        while let Some(chunk) = backlog.next_chunk(4).expect("chunk") {
            replayed.extend(times(&chunk.events));
            backlog.committed(&chunk.source).expect("commit");
        }
        let kept = (placed.to_file + placed.to_memory) as i64;
        assert_eq!(replayed, (0..kept).map(|i| 1_000 + i).collect::<Vec<_>>());
        assert!(backlog.is_empty());
        assert!(!path.exists());
    }

    #[test]
    fn zero_bound_disables_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = spool_path(&dir.path().join("pg.db"));
        let (spool, _) = Spool::open(&path, 0).expect("open");
        let mut backlog = Backlog::new(spool, 2);
        let placed = backlog.push((0..3).map(hit).collect());
        assert_eq!(
            placed,
            Placed {
                to_file: 0,
                to_memory: 2,
                dropped: 1
            }
        );
        assert!(!path.exists());
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_the_good_ones_replay() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = spool_path(&dir.path().join("pg.db"));
        let (mut spool, _) = Spool::open(&path, 1 << 20).expect("open");
        spool.append(&[hit(0), hit(1)]).expect("append");
        drop(spool);
        // A crash mid-append: half a record, no newline. And a garbled line in the middle
        // (a disk error) that is skipped, not fatal.
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str("{\"t\": 1002, \"not json at all\n");
        text.push_str(&serde_json::to_string(&Record::of(&hit(3))).expect("json"));
        text.push('\n');
        text.push_str("{\"t\":1004,\"c\":\"10.20.3.7:53");
        std::fs::write(&path, &text).expect("write");
        let (spool, report) = Spool::open(&path, 1 << 20).expect("reopen");
        assert_eq!(
            report.torn_bytes,
            "{\"t\":1004,\"c\":\"10.20.3.7:53".len() as u64
        );
        let chunk = spool.read_chunk(100).expect("read");
        assert_eq!(times(&chunk.events), vec![1_000, 1_001, 1_003]);
        assert_eq!(chunk.corrupt, 1);
        // Appends after the repair start on a line of their own.
        let mut spool = spool;
        spool.append(&[hit(5)]).expect("append");
        let chunk = spool.read_chunk(100).expect("read");
        assert_eq!(times(&chunk.events), vec![1_000, 1_001, 1_003, 1_005]);
    }

    #[test]
    fn a_replay_resumes_only_in_the_same_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = spool_path(&dir.path().join("pg.db"));
        let (mut spool, _) = Spool::open(&path, 1 << 20).expect("open");
        spool.append(&[hit(0), hit(1), hit(2)]).expect("append");
        let first = spool.read_chunk(1).expect("read");
        let id = spool.id().to_string();
        drop(spool);
        let (mut again, _) = Spool::open(&path, 1 << 20).expect("reopen");
        again.resume("some-other-file", first.end);
        assert_eq!(again.read_chunk(10).expect("read").events.len(), 3);
        again.resume(&id, first.end);
        assert_eq!(
            times(&again.read_chunk(10).expect("read").events),
            vec![1_001, 1_002]
        );
    }

    #[test]
    fn a_file_without_a_header_is_moved_aside() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = spool_path(&dir.path().join("pg.db"));
        std::fs::write(&path, "garbage\nmore\n").expect("write");
        let (spool, report) = Spool::open(&path, 1 << 20).expect("open");
        assert!(spool.is_empty());
        let aside = report.moved_aside.expect("moved aside");
        assert!(aside.exists() && !path.exists());
    }
}
