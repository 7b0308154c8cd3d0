//! WAL checkpoints off the writer's thread.
//!
//! A checkpoint copies the write-ahead log's pages into the database file. Left to SQLite's
//! auto-checkpoint it runs inside whichever commit crosses the threshold, on the writer's
//! thread, and stalls the writer for as long as the copy and its fsync take: tens of ms for
//! 16 MiB, which made the longest writer pauses of compaction and sealing at 100 M rows
//! (docs/BENCHMARKS.md, issue 18). A [`Checkpointer`] is a thread with a connection of its own
//! that runs a `PASSIVE` checkpoint every [`EVERY`]: it never waits for the writer or for
//! readers, so the writer only appends. The writer keeps an auto-checkpoint at
//! [`BACKSTOP_PAGES`] in case this thread falls behind (the WAL then stops growing there).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::StoreError;

/// How often the checkpointer runs: at a campus's write rate, a few MiB of WAL each time.
pub const EVERY: Duration = Duration::from_secs(1);

/// The writer's own auto-checkpoint when a checkpointer runs (64 MiB of WAL): reached only
/// if the checkpointer cannot keep up, e.g. a reader holds an old snapshot for long.
pub const BACKSTOP_PAGES: i64 = 16_000;

/// The checkpointing thread; stopped and joined on drop.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database `conn` is open on (a read-write connection).
    pub fn spawn(conn: Connection) -> Result<Self, StoreError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("poolguard-wal-checkpoint".into())
            .spawn(move || {
                // A message or a dropped sender both mean stop.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    checkpoint(&conn);
                }
            })
            .map_err(|e| StoreError::Worker(e.to_string()))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
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

/// One passive checkpoint; a failure is logged and the next one tries again.
fn checkpoint(conn: &Connection) {
    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    });
    match done {
        Ok((wal_pages, copied)) => {
            metrics::gauge!("poolguard_store_wal_pages").set(wal_pages as f64);
            metrics::counter!("poolguard_store_checkpointed_pages_total")
                .increment(u64::try_from(copied).unwrap_or(0));
        }
        Err(error) => tracing::warn!(%error, "WAL checkpoint failed; retrying in a second"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wal_is_copied_into_the_database_by_another_connection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.db");
        let writer = Connection::open(&path).expect("open");
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t (x BLOB); \
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
                 INSERT INTO t SELECT randomblob(1000) FROM n;",
            )
            .expect("insert");
        let size = || std::fs::metadata(&path).expect("db file").len();
        assert!(size() < 100_000, "the rows are in the WAL only: {}", size());
        let stopped = Checkpointer::spawn(Connection::open(&path).expect("open"));
        // The thread's first checkpoint comes after `EVERY`; this test calls it directly.
        drop(stopped);
        checkpoint(&Connection::open(&path).expect("open"));
        assert!(size() > 2_000_000, "copied into the database: {}", size());
        // The writer went on appending meanwhile, untouched.
        writer
            .execute("INSERT INTO t VALUES (x'00')", [])
            .expect("the writer still writes");
    }
}
