//! Store: the query log and the hit evidence, in embedded SQLite.
//!
//! One writer thread ([`writer`]) owns the only write connection and writes in batched
//! transactions; the API reads through a small pool of read-only connections ([`Store::read`]),
//! run on tokio's blocking pool with a per-request time limit, so a slow report can never stall
//! the writer or the DNS path. WAL mode lets readers and the writer work at the same time, and
//! `synchronous=NORMAL` means a power cut loses at most the last transactions, never the file.
//!
//! What the rest of poolguard needs from a store is the trait family in [`traits`] (handlers
//! hold an `Arc<dyn Stores>`); [`Store`] implements it on SQLite (`sqlite.rs`), and a
//! PostgreSQL backend for several resolver nodes can implement the same traits.

pub mod alerted;
pub mod audit;
pub mod blocks;
pub mod bulletin;
pub mod cursor;
#[doc(hidden)]
pub mod fault;
pub mod hook;
pub mod hour_names;
pub mod hour_tops;
pub mod incidents;
pub mod incidents_tx;
pub mod known_names;
pub mod lock;
pub mod narrative;
pub mod read;
pub mod relearn;
pub mod retention;
pub mod review;
pub mod rollup;
pub mod rows;
pub mod schema;
pub mod shipped;
pub mod spool;
mod sqlite;
pub mod summary;
pub mod top;
pub mod traits;
pub mod transition;
pub mod writer;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use poolguard_config::StoreConfig;

pub use alerted::DeadlineAlert;
pub use read::{ClientSummary, Stats};
pub use retention::PruneReport;
pub use rows::{Count, ListFilter, NameFilter, Page, StoredRow, Table};
pub use shipped::{ShipHealth, ShipStatus, ShippedWatermark};
pub use summary::Summary;
pub use traits::{
    Actor, AlertStore, AuditStore, Cursor, EvidenceFilter, EvidenceStore, IncidentRecord,
    IncidentStore, Paged, QuarantineAdd, QuarantineRelease, QuarantineStore, Reachable, Stores,
};
pub use transition::{IncidentChange, IncidentError, Updated};
pub use writer::{WriterHandle, WriterHealth};

/// Why the store failed; messages say what to check.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create store directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the store was written by a newer poolguard (schema {found}, this build knows {supported}); upgrade poolguard or point [store] path elsewhere"
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error("the store query took longer than {0:?} and was stopped; narrow the filter")]
    Timeout(Duration),
    #[error("store worker failed: {0}")]
    Worker(String),
    #[error("not a cursor from a previous page")]
    BadCursor,
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
    #[error(transparent)]
    Block(#[from] blocks::codec::BlockError),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    /// A [`hook::BatchHook`] failed for a reason of its own, not the database's (a feed
    /// with a severity it does not know).
    #[error(transparent)]
    Hook(Box<dyn std::error::Error + Send + Sync>),
    /// A backend other than SQLite failed (PostgreSQL: `poolguard-store-pg`); the message
    /// names the operation and the database's own error.
    #[error("store database: {0}")]
    Backend(String),
}

/// How many read-only connections the API may use at once; more just queue.
const READERS: usize = 4;
/// Longest a single API read may run before it is interrupted.
const READ_TIME_LIMIT: Duration = Duration::from_secs(5);

/// A handle on the store: cheap to clone, shared by the API and the retention task.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    /// The control plane's write connection (audit, feeds, incidents): rare, small writes
    /// that take turns with the query-log writer through SQLite's own lock (busy_timeout).
    control: Mutex<Option<Connection>>,
    permits: Arc<tokio::sync::Semaphore>,
    time_limit_ms: std::sync::atomic::AtomicU64,
    /// The hour under way's hit tables, shared by the readers' `/stats` (`hour_tops`).
    hour_tops: Arc<hour_tops::HourTops>,
    /// The unsealed hours' names, kept by the writer for the readers' name lookups
    /// (`hour_names`).
    hour_names: Arc<hour_names::HourNames>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// Opens (creating and migrating if needed) the store at `cfg.path`.
///
/// `cfg.path` must already be resolved against the config directory (`Config::resolve`).
pub fn open(cfg: &StoreConfig) -> Result<Store, StoreError> {
    Store::open(&cfg.path)
}

impl Store {
    /// Opens the database at `path`, creating the directory, the file and the schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut conn = open_write_connection(path)?;
        schema::migrate(&mut conn)?;
        drop(conn);
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                readers: Mutex::new(Vec::new()),
                control: Mutex::new(None),
                permits: Arc::new(tokio::sync::Semaphore::new(READERS)),
                time_limit_ms: std::sync::atomic::AtomicU64::new(READ_TIME_LIMIT.as_millis() as u64),
                hour_tops: Arc::default(),
                hour_names: Arc::default(),
            }),
        })
    }

    /// Changes how long one API read may run before it is interrupted (default 5 s).
    pub fn set_read_time_limit(&self, limit: Duration) {
        self.inner.time_limit_ms.store(
            limit.as_millis().min(u128::from(u64::MAX)) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A new read-only connection, for a thread of its own that only reads (the hit shipper
    /// of the PostgreSQL backend, `shipped`).
    pub fn read_connection(&self) -> Result<Connection, StoreError> {
        open_read_connection(&self.inner.path)
    }

    /// A new read-write connection with the store's pragmas; for the writer, retention and tools.
    pub fn write_connection(&self) -> Result<Connection, StoreError> {
        open_write_connection(&self.inner.path)
    }

    /// Runs `f` on a pooled read-only connection on the blocking pool, interrupting it past the
    /// time limit. Every read of the store's traits goes through here; public only for the
    /// The hour under way's hit tables the readers share (`hour_tops`).
    pub(crate) fn hour_tops(&self) -> Arc<hour_tops::HourTops> {
        Arc::clone(&self.inner.hour_tops)
    }

    /// The unsealed hours' names the writer and the readers share (`hour_names`).
    pub(crate) fn hour_names(&self) -> Arc<hour_names::HourNames> {
        Arc::clone(&self.inner.hour_names)
    }

    /// store's own integration tests (callers use the traits).
    #[doc(hidden)]
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // The permit travels into the blocking task, so a client that disconnects mid-query
        // does not free its slot before SQLite is done; the guard interrupts the statement if
        // the request future is dropped.
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?;
        let pooled = self.inner.readers.lock().ok().and_then(|mut v| v.pop());
        let conn = match pooled {
            Some(c) => c,
            None => open_read_connection(&self.inner.path)?,
        };
        let mut guard = InterruptOnDrop(Some(conn.get_interrupt_handle()));
        let inner = Arc::clone(&self.inner);
        let task = tokio::task::spawn_blocking(move || {
            let result = f(&conn);
            if let Ok(mut v) = inner.readers.lock() {
                v.push(conn);
            }
            drop(permit);
            result
        });
        tokio::pin!(task);
        let limit = Duration::from_millis(
            self.inner
                .time_limit_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        let (result, timed_out) = match tokio::time::timeout(limit, &mut task).await {
            Ok(joined) => (
                joined.map_err(|e| StoreError::Worker(e.to_string()))?,
                false,
            ),
            Err(_) => {
                if let Some(h) = &guard.0 {
                    h.interrupt();
                }
                let r = task.await.map_err(|e| StoreError::Worker(e.to_string()))?;
                (r, true)
            }
        };
        guard.0 = None;
        match result {
            Err(StoreError::Sqlite(e)) if timed_out || is_interrupt(&e) => {
                Err(StoreError::Timeout(limit))
            }
            other => other,
        }
    }

    /// Runs `f` in one transaction on the control-plane write connection, on the blocking pool.
    /// For control-plane writes (audit, incidents, quarantine, alerts) of the store's traits;
    /// the query log has its own writer thread.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut slot = inner
                .control
                .lock()
                .map_err(|_| StoreError::Worker("control connection poisoned".into()))?;
            if slot.is_none() {
                *slot = Some(open_write_connection(&inner.path)?);
            }
            let conn = slot
                .as_mut()
                .ok_or_else(|| StoreError::Worker("no control connection".into()))?;
            // IMMEDIATE: take the write lock up front, so a read-then-write (incident PATCH)
            // waits for the query-log writer instead of failing with SQLITE_BUSY_SNAPSHOT.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    /// Deletes rows older than the retention periods, in small batches; `now_ms` is injectable
    /// so tests (and operators replaying) control the clock.
    pub fn prune(&self, cfg: &StoreConfig, now_ms: i64) -> Result<PruneReport, StoreError> {
        let conn = self.write_connection()?;
        retention::prune(&conn, cfg, now_ms, retention::DELETE_BLOCKS)
    }
}

/// Interrupts the running statement when the request that started it goes away.
struct InterruptOnDrop(Option<rusqlite::InterruptHandle>);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.interrupt();
        }
    }
}

fn is_interrupt(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::OperationInterrupted)
}

fn open_write_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(conn)
}

fn open_read_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(Duration::from_secs(2))?;
    conn.pragma_update(None, "mmap_size", READ_MMAP_BYTES)?;
    Ok(conn)
}

/// How much of the store a read connection maps instead of reading page by page. A lookup
/// reads a few hundred blocks of ~200 KiB, each spread over 4 KiB pages; with `pread` per
/// page, the kernel's copy and page-cache lookups were ~70 % of a client's history at 100 M
/// rows (issue 18). SQLite caps it at its compile-time `SQLITE_MAX_MMAP_SIZE`, which
/// `.cargo/config.toml` raises from 2 GiB. Only readers map: the writer's pages go through
/// the WAL anyway.
const READ_MMAP_BYTES: i64 = 1 << 40;

/// The 16-byte sort key of an address: IPv4 as IPv4-mapped IPv6, so one column holds both
/// families and a CIDR is a contiguous byte range.
pub fn ip_key(ip: IpAddr) -> [u8; 16] {
    match ip.to_canonical() {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The first and last keys of a network, for a range scan.
pub fn net_range(net: ipnet::IpNet) -> ([u8; 16], [u8; 16]) {
    (ip_key(net.network()), ip_key(net.broadcast()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_cidrs_as_ranges() {
        let (lo, hi) = net_range("10.20.0.0/16".parse().unwrap());
        let inside = ip_key("10.20.3.7".parse().unwrap());
        let outside = ip_key("10.21.0.0".parse().unwrap());
        assert!(lo <= inside && inside <= hi);
        assert!(outside > hi);
        assert_eq!(ip_key("::ffff:10.20.3.7".parse().unwrap()), inside);
    }
}
