//! WAL checkpoints off the writer's thread.
//!
//! A checkpoint copies the write-ahead log's pages into the database file. Left to SQLite's
//! auto-checkpoint it runs inside whichever commit crosses the threshold, on the writer's
//! thread, and stalls the writer for as long as the copy and its fsync take: tens of ms for
//! 16 MiB, which made the longest writer pauses of compaction and sealing at 100 M rows
//! (docs/BENCHMARKS.md, issue 18). A [`Checkpointer`] is a thread with a connection of its own
//! that runs a `PASSIVE` checkpoint every [`EVERY`]: it never waits for the writer or for
//! readers, so the writer only appends.
//!
//! SQLite starts the WAL over only when a write transaction begins with every frame already
//! copied, which a writer that never pauses never sees: the file would grow. So when the WAL
//! is large and a passive pass left only a short tail, the thread raises a flag, and the
//! writer, between two transactions ([`Checkpointer::between_transactions`]), copies that tail
//! itself (a few hundred pages at most, no waiting: it is the only writer) and its next
//! transaction starts the WAL over. (A `RESTART` checkpoint from this thread would do it
//! without the writer, but it holds the write lock while it waits for readers, and a writer
//! transaction that had already read then fails with `SQLITE_BUSY` instead of waiting.) The
//! writer keeps an auto-checkpoint at [`BACKSTOP_PAGES`] in case all this falls behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::StoreError;

/// How often the checkpointer runs: the tail the writer may have to copy is what it wrote
/// in about this long.
pub const EVERY: Duration = Duration::from_millis(250);

/// The writer's own auto-checkpoint when a checkpointer runs (64 MiB of WAL): reached only
/// if the checkpointer cannot keep up, e.g. a reader holds an old snapshot for long.
pub const BACKSTOP_PAGES: i64 = 16_000;

/// The checkpointing thread; stopped and joined on drop.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Set by the thread: the WAL is large and nearly all copied; the writer copies the rest.
    tail: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Starts checkpointing the database `conn` is open on (a read-write connection).
    pub fn spawn(conn: Connection) -> Result<Self, StoreError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let tail = Arc::new(AtomicBool::new(false));
        let raise = Arc::clone(&tail);
        let thread = std::thread::Builder::new()
            .name("poolguard-wal-checkpoint".into())
            .spawn(move || {
                // A message or a dropped sender both mean stop.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    if checkpoint(&conn) {
                        raise.store(true, Ordering::Relaxed);
                    }
                }
            })
            .map_err(|e| StoreError::Worker(e.to_string()))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
            tail,
        })
    }

    /// For the writer, outside any transaction: when the thread found the WAL large and
    /// nearly copied, copies the rest on the writer's connection, so its next transaction
    /// starts the WAL over. Costs the writer the tail (what it wrote in about [`EVERY`]).
    pub fn between_transactions(&self, conn: &Connection) -> Result<(), StoreError> {
        if self.tail.swap(false, Ordering::Relaxed) {
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        }
        Ok(())
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Above this many pages the WAL should start over once it is copied (the writer's old
/// auto-checkpoint threshold, 16 MiB).
pub const RESET_PAGES: i64 = 4000;

/// "Nearly copied": at most this many pages were appended while the passive pass ran.
const TAIL_PAGES: i64 = 1024;

/// One passive checkpoint; true when the WAL is large and only a short tail is left for the
/// writer to copy. A failure is logged and the next round tries again.
fn checkpoint(conn: &Connection) -> bool {
    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    });
    match done {
        Ok((wal_pages, copied)) => {
            metrics::gauge!("poolguard_store_wal_pages").set(wal_pages as f64);
            metrics::counter!("poolguard_store_checkpointed_pages_total")
                .increment(u64::try_from(copied).unwrap_or(0));
            wal_pages >= RESET_PAGES && wal_pages - copied <= TAIL_PAGES
        }
        Err(error) => {
            tracing::warn!(%error, "WAL checkpoint failed; retrying");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (WAL pages, pages copied) as a passive checkpoint on `conn` sees them.
    fn wal(conn: &Connection) -> (i64, i64) {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(1)?, r.get(2)?))
        })
        .expect("checkpoint")
    }

    #[test]
    fn the_wal_is_copied_by_the_thread_and_started_over_by_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.db");
        let writer = Connection::open(&path).expect("open");
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t (x BLOB); \
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
                 INSERT INTO t SELECT randomblob(1000) FROM n;",
            )
            .expect("insert");
        let size = || std::fs::metadata(&path).expect("db file").len();
        assert!(size() < 100_000, "the rows are in the WAL only: {}", size());
        // The thread's round: everything copied, and the WAL is large: the writer's turn.
        let other = Connection::open(&path).expect("open");
        assert!(checkpoint(&other), "a large WAL, all copied");
        assert!(size() > 20_000_000, "copied into the database: {}", size());
        // The writer went on meanwhile: a tail the thread has not copied.
        writer
            .execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) \
                 INSERT INTO t SELECT randomblob(1000) FROM n;",
            )
            .expect("the tail");
        let c = Checkpointer::spawn(Connection::open(&path).expect("open")).expect("spawn");
        c.tail.store(true, Ordering::Relaxed);
        c.between_transactions(&writer).expect("the writer's turn");
        assert!(!c.tail.load(Ordering::Relaxed), "taken");
        // The writer's next transaction starts the WAL over: it holds that one write only.
        writer
            .execute("INSERT INTO t VALUES (x'00')", [])
            .expect("the writer still writes");
        let (pages, _) = wal(&other);
        assert!(pages < 10, "the WAL started over: {pages} pages");
        drop(c);
    }
}
