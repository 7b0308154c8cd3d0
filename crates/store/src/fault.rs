//! Simulated store failures, for tests: a full disk and a read-only database.
//!
//! Both are set with SQLite pragmas on the store writer's own connection (pragmas are per
//! connection), through `WriterHandle::inject_fault` / `Running::store_fault`. Unlike `chmod`
//! they also hold when the tests run as root, and they leave the file itself untouched.

use rusqlite::Connection;

/// A failure to simulate on the writer's connection, or its cure.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFault {
    /// `PRAGMA max_page_count` = the current size: any write that needs a new page fails
    /// with SQLITE_FULL ("database or disk is full"), as on a full disk.
    DiskFull,
    /// `PRAGMA query_only = ON`: every write fails ("attempt to write a readonly database"),
    /// as on a read-only file system.
    ReadOnly,
    /// Undoes both.
    Heal,
}

/// SQLite's largest `max_page_count` (its default).
const MAX_PAGES: i64 = 4_294_967_294;

impl StoreFault {
    /// Applies the fault to `conn` (the writer's); the error is SQLite's, as text.
    pub fn apply(self, conn: &Connection) -> Result<(), String> {
        // `PRAGMA max_page_count = n` answers with the limit now in force.
        let set_max_pages = |n: i64| {
            conn.query_row(&format!("PRAGMA max_page_count = {n}"), [], |r| {
                r.get::<_, i64>(0)
            })
        };
        let applied = match self {
            StoreFault::DiskFull => conn
                .query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
                .and_then(set_max_pages)
                .map(drop),
            StoreFault::ReadOnly => conn.pragma_update(None, "query_only", true),
            StoreFault::Heal => conn
                .pragma_update(None, "query_only", false)
                .and_then(|()| set_max_pages(MAX_PAGES).map(drop)),
        };
        tracing::warn!(fault = ?self, "simulated store fault applied to the writer");
        applied.map_err(|e| e.to_string())
    }
}
