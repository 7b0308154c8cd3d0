//! The query log and the hits, stored as blocks: one SQLite row per writer batch, not per row.
//!
//! Every query is recorded, at the resolver's full rate, on the same core as the DNS worker
//! (docs/BENCHMARKS.md). As one indexed SQLite row each, a query cost the writer ~3.6 µs:
//! more than answering it. Here a batch (up to `batch_size` queries, or what arrived in one
//! flush interval) becomes one row of `query_blocks`: a compact encoding ([`codec`]), its time
//! range, per-action counts and a Bloom filter ([`filter`]) over its clients and names. A
//! query then costs a few hundred nanoseconds to record, and the API finds rows by walking
//! blocks newest first, skipping those whose filter rules the request out and decoding the
//! rest.
//!
//! Hits (the evidence, kept for about a year) use the same format in `hit_blocks` (schema 8),
//! each row with its ledger snapshot: an indexed SQLite row per hit cost the writer 8–12 µs
//! with its incident link, so a flood of blocked queries took the DNS worker's core. Incidents
//! find their hits by client key and time range (see [`owner_hits`]).
//!
//! Row ids are `block id << 20 | index in block`, so `(time_ms, id)` keyset pagination works
//! exactly as for `hits`. Crash safety is unchanged: a block is written in the batch's
//! transaction, so a crash loses at most the batch in flight.

pub mod codec;
pub mod compact;
pub mod filter;
pub mod group;
mod legacy;
mod owner;
mod page;
mod retention;
mod walk;

use rusqlite::{Connection, params};

use self::codec::{Block, Entry, OUTCOMES, Sealed};
use super::StoreError;
use super::rows::{StoredRow, Table};

pub use legacy::convert_legacy;
pub use owner::{HitOwner, owner_hits};
pub use page::{counts_by_action, list};
pub use retention::prune;
pub(crate) use walk::earliest_start;
pub use walk::{client_count, scan, scan_client, seen};

/// Most rows in one block; the row index takes the low 20 bits of a row id.
pub const MAX_BLOCK_ROWS: u32 = 1 << 16;
const INDEX_BITS: u32 = 20;

impl Table {
    /// The SQLite table holding this log's blocks.
    pub fn blocks(self) -> &'static str {
        match self {
            Table::Queries => "query_blocks",
            Table::Hits => "hit_blocks",
        }
    }
}

/// Writes one sealed block of `table` inside the caller's transaction; returns its id.
pub fn insert(conn: &Connection, table: Table, b: &Sealed) -> Result<i64, StoreError> {
    conn.prepare_cached(&format!(
        "INSERT INTO {} (first_ms, last_ms, rows, counts, filter, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        table.blocks()
    ))?
    .execute(params![
        b.first_ms, b.last_ms, b.rows, b.counts, b.filter, b.data
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The highest block id of `table` (0 when it has none): what a reader has seen, a cache has
/// read up to, or compaction must leave alone.
pub fn newest_id(conn: &Connection, table: Table) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT coalesce(max(id), 0) FROM {}",
            table.blocks()
        ))?
        .query_row([], |r| r.get(0))?)
}

/// Puts `b` in place of block `id` of `table`: compaction merging a run into its first
/// block, late identity rewriting a block's snapshots (`crate::relearn`).
pub fn replace(conn: &Connection, table: Table, id: i64, b: &Sealed) -> Result<(), StoreError> {
    conn.prepare_cached(&format!(
        "UPDATE {} SET first_ms = ?2, last_ms = ?3, rows = ?4, counts = ?5, filter = ?6, \
         data = ?7 WHERE id = ?1",
        table.blocks()
    ))?
    .execute(params![
        id, b.first_ms, b.last_ms, b.rows, b.counts, b.filter, b.data
    ])?;
    Ok(())
}

fn outcome_named(action: &str) -> Option<usize> {
    OUTCOMES.iter().position(|o| o.as_str() == action)
}

fn stored_row(id: i64, e: &Entry<'_>) -> StoredRow {
    StoredRow {
        id,
        time_ms: e.time_ms,
        client: e.client.to_string(),
        port: e.port,
        transport: e.transport.as_str().to_string(),
        name: e.name.to_string(),
        qtype: e.qtype.to_string(),
        action: e.outcome.as_str().to_string(),
        feed: e.feed.map(str::to_string),
        rule: e.rule.map(str::to_string),
        rcode: e.rcode.to_string(),
        answer: e.answer.to_string(),
        latency_us: e.latency_us,
        upstream: e.upstream.map(str::to_string),
        department: e.department.map(str::to_string),
        identity: e.snapshot.map(|s| s.identity(e.department)),
    }
}

/// A blob column of `row`, borrowed.
pub(crate) fn blob<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r [u8], StoreError> {
    row.get_ref(i)?.as_blob().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, Box::new(e))
            .into()
    })
}

/// A block's data. Readers call it while their walk over the block table is still stepping on
/// the same connection, so both read one snapshot: the writer merges (`compact`) and prunes
/// blocks concurrently, and a block listed by a finished statement may be gone.
pub(crate) fn block_data(conn: &Connection, table: Table, id: i64) -> Result<Vec<u8>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT data FROM {} WHERE id = ?1",
            table.blocks()
        ))?
        .query_row([id], |r| r.get(0))?)
}

/// Reads blocks' data, one after another, into one buffer it keeps.
///
/// Why: a query-log block's data is ~200 KB of overflow pages. Read as a column, SQLite
/// assembles it in a buffer of its own and rusqlite copies that into a new `Vec`: two
/// allocations of that size per block, which glibc serves from freshly mapped pages and
/// returns to the kernel when they are freed. At 100 M rows a client lookup page-faulted ~970
/// times and took 2–3× as long as at 10 M rows with the same blocks read (issue 18). SQLite's
/// incremental blob I/O copies the pages straight into this reader's buffer instead.
///
/// The handle reads in the connection's current read transaction (a walk's statement still
/// stepping), as [`block_data`] does; while the reader lives, it keeps one open.
pub(crate) struct DataReader<'c> {
    conn: &'c Connection,
    table: Table,
    blob: Option<rusqlite::blob::Blob<'c>>,
    buf: Vec<u8>,
}

impl<'c> DataReader<'c> {
    pub(crate) fn new(conn: &'c Connection, table: Table) -> Self {
        Self {
            conn,
            table,
            blob: None,
            buf: Vec::new(),
        }
    }

    /// Block `id`'s data; `QueryReturnedNoRows` when the block is gone (merged or pruned by
    /// the writer since it was listed), as [`block_data`].
    pub(crate) fn read(&mut self, id: i64) -> Result<&[u8], StoreError> {
        let opened = match self.blob.take() {
            Some(mut b) => b.reopen(id).map(|()| b),
            None => self
                .conn
                .blob_open(rusqlite::MAIN_DB, self.table.blocks(), "data", id, true),
        };
        // A failed reopen leaves the handle aborted: the next read opens a new one.
        let blob = match opened {
            Ok(b) => self.blob.insert(b),
            Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.starts_with("no such rowid") => {
                return Err(rusqlite::Error::QueryReturnedNoRows.into());
            }
            Err(e) => return Err(e.into()),
        };
        self.buf.resize(blob.len(), 0);
        blob.read_at_exact(&mut self.buf, 0)?;
        Ok(&self.buf)
    }
}

/// Every row of `table` in id order (block by block, rows as written): tests and tools
/// check what was stored with it.
#[doc(hidden)]
pub fn all_rows(conn: &Connection, table: Table) -> Result<Vec<StoredRow>, StoreError> {
    // One statement, so one snapshot: the writer may merge or prune blocks meanwhile.
    let mut stmt = conn.prepare(&format!(
        "SELECT id, data FROM {} ORDER BY id",
        table.blocks()
    ))?;
    let mut blocks = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(b) = blocks.next()? {
        let id: i64 = b.get(0)?;
        for (index, e) in Block::parse(blob(b, 1)?)?.rows_as_written()? {
            out.push(stored_row((id << INDEX_BITS) | i64::from(index), &e));
        }
    }
    Ok(out)
}

/// Total rows in `table` (tests, tools).
pub fn total_rows(conn: &Connection, table: Table) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        &format!("SELECT coalesce(sum(rows), 0) FROM {}", table.blocks()),
        [],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three blocks of `rows` rows each, ids 1 to 3.
    fn store() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("dir");
        let conn = crate::Store::open(&dir.path().join("t.db"))
            .expect("store")
            .write_connection()
            .expect("conn");
        for (b, rows) in [(0i64, 3i64), (1, 500), (2, 7)] {
            let mut enc = codec::BlockEncoder::default();
            for i in 0..rows {
                let client = std::net::IpAddr::from([10, 0, 0, (i % 200) as u8]);
                enc.push(&Entry {
                    time_ms: b * 1_000_000 + i,
                    client,
                    port: 53,
                    transport: poolguard_record::Transport::Udp,
                    outcome: poolguard_record::Outcome::Allowed,
                    name: "www.example.com",
                    qtype: "A",
                    feed: None,
                    rule: None,
                    rcode: "NOERROR",
                    answer: "",
                    latency_us: 1,
                    upstream: None,
                    department: None,
                    snapshot: None,
                });
            }
            let sealed = enc.seal().expect("rows");
            insert(&conn, Table::Queries, &sealed).expect("insert");
        }
        (dir, conn)
    }

    #[test]
    fn the_reader_reads_each_block_as_a_column_read_would_and_survives_a_missing_one() {
        let (_dir, conn) = store();
        let mut reader = DataReader::new(&conn, Table::Queries);
        // Larger, smaller, then larger again: the buffer is resized to each block.
        for id in [2, 1, 3, 2] {
            let want = block_data(&conn, Table::Queries, id).expect("column");
            assert_eq!(
                reader.read(id).expect("read"),
                want.as_slice(),
                "block {id}"
            );
        }
        conn.execute("DELETE FROM query_blocks WHERE id = 2", [])
            .expect("delete");
        assert!(matches!(
            reader.read(2),
            Err(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
        ));
        // The aborted handle is replaced by a new one.
        let want = block_data(&conn, Table::Queries, 3).expect("column");
        assert_eq!(reader.read(3).expect("read"), want.as_slice());
        assert!(matches!(
            DataReader::new(&conn, Table::Queries).read(99),
            Err(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
        ));
    }
}
