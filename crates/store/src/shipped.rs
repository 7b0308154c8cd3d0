//! Hits leaving this store for a shared one: the shipped watermark and the reader of the hit
//! blocks above it.
//!
//! With `[store] backend = "postgres"` every node still writes its hits here first (DNS never
//! waits for a network database), and a shipper (`poolguard_store_pg::ship`) copies them to
//! PostgreSQL in local block id order, remembering the last block it shipped there. Two things
//! in this store rewrite hit blocks, and both must leave the unshipped ones alone:
//!
//! * compaction merges a run of blocks into the run's first id: a run reaching above the
//!   watermark would move unshipped rows into a shipped block, and they would never leave;
//! * retention deletes old blocks: an unshipped block would be lost to the group, and deleting
//!   the last shipped block could let SQLite hand out its id again (hit block ids are
//!   `INTEGER PRIMARY KEY`, the next is `max(id) + 1`), so a new block would hide below the
//!   watermark.
//!
//! [`ShippedWatermark`] is what the writer's upkeep reads for both: compaction merges only
//! blocks at or below it, retention deletes only blocks strictly below it. Without a shipper
//! it is [`ShippedWatermark::unlimited`] and nothing changes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};

use crate::StoreError;
use crate::blocks::blob;
use crate::blocks::codec::Block;
use crate::spool::static_rcode;
use poolguard_clients::Identity;
use poolguard_record::QueryEvent;

/// The id of the last hit block the shipper has committed to the shared store, shared between
/// the shipper (which only raises it) and the writer's upkeep (which reads it).
#[derive(Debug, Clone)]
pub struct ShippedWatermark(Arc<AtomicI64>);

impl ShippedWatermark {
    /// No shipper: every block may be compacted and pruned.
    pub fn unlimited() -> Self {
        Self(Arc::new(AtomicI64::new(i64::MAX)))
    }

    /// A shipper that has not yet read its cursor: nothing counts as shipped, so upkeep keeps
    /// its hands off every hit block until it does.
    pub fn nothing_shipped() -> Self {
        Self(Arc::new(AtomicI64::new(0)))
    }

    /// The last shipped block id.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }

    /// Blocks up to `id` are committed to the shared store. Never lowers the mark: a late
    /// report from an older cursor must not unprotect anything.
    pub fn advance(&self, id: i64) {
        self.0.fetch_max(id, Ordering::AcqRel);
    }
}

/// One hit decoded from a block, as the shipper sends it.
#[derive(Debug, Clone)]
pub struct LocalHit {
    /// Its position in its block (the shared store's key is node, block, index).
    pub index: u32,
    /// The hit as the DNS path recorded it.
    pub event: QueryEvent,
    /// The ledger snapshot stored with it; None when the ledger did not know the client.
    pub identity: Option<Arc<Identity>>,
}

/// One stored hit block with its rows decoded.
#[derive(Debug, Clone)]
pub struct LocalHitBlock {
    /// The block's id in `hit_blocks`.
    pub id: i64,
    pub hits: Vec<LocalHit>,
}

/// The hit blocks with ids above `after_id`, in id order (the order they were committed),
/// decoded: whole blocks until at least `max_rows` rows are read (always one block when there
/// is one, however large). One statement, so one snapshot of the table.
pub fn hit_blocks_after(
    conn: &Connection,
    after_id: i64,
    max_rows: usize,
) -> Result<Vec<LocalHitBlock>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT id, data FROM hit_blocks WHERE id > ?1 ORDER BY id")?;
    let mut rows = stmt.query([after_id])?;
    let mut out = Vec::new();
    let mut total = 0usize;
    while let Some(r) = rows.next()? {
        if total >= max_rows {
            break;
        }
        let id: i64 = r.get(0)?;
        let block = Block::parse(blob(r, 1)?)?;
        let mut hits = Vec::with_capacity(block.rows() as usize);
        for row in block.entries() {
            let (index, e) = row?;
            let identity = e
                .snapshot
                .map(|s| s.identity(e.department))
                .filter(|i| *i != Identity::default())
                .map(Arc::new);
            hits.push(LocalHit {
                index,
                event: QueryEvent {
                    time_ms: e.time_ms,
                    client: SocketAddr::new(e.client, e.port),
                    transport: e.transport,
                    name: e.name.into(),
                    qtype: e.qtype.to_string().into(),
                    outcome: e.outcome,
                    feed: e.feed.map(Arc::from),
                    rule: e.rule.map(Arc::from),
                    rcode: static_rcode(e.rcode),
                    answer: Arc::from(e.answer),
                    latency_us: e.latency_us,
                    upstream: e.upstream.map(Arc::from),
                },
                identity,
            });
        }
        total += hits.len();
        out.push(LocalHitBlock { id, hits });
    }
    Ok(out)
}

/// The lowest id of the hit blocks holding a hit at or after `since_ms`: where the shipper's
/// late-identity pass walks the group's copy from (`poolguard_store_pg::ship`). Compaction
/// merges a run into its first id, so no hit that recent was shipped from a lower block.
pub fn first_block_since(conn: &Connection, since_ms: i64) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT min(id) FROM hit_blocks WHERE last_ms >= ?1")?
        .query_row([since_ms], |r| r.get(0))?)
}

/// What waits above the watermark: the shipper's lag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unshipped {
    pub blocks: i64,
    pub rows: i64,
    /// Time of the oldest unshipped hit (ms), None when nothing waits.
    pub oldest_ms: Option<i64>,
}

/// Counts the hit blocks above `after_id` (an indexed range on the primary key).
pub fn unshipped(conn: &Connection, after_id: i64) -> Result<Unshipped, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*), coalesce(sum(rows), 0), min(first_ms) FROM hit_blocks WHERE id > ?1",
        )?
        .query_row(params![after_id], |r| {
            Ok(Unshipped {
                blocks: r.get(0)?,
                rows: r.get(1)?,
                oldest_ms: r.get(2)?,
            })
        })?)
}

/// A shipper that has not shipped for this long while hits wait is degraded: PostgreSQL is
/// slow or locked, or the shipper cannot keep up.
pub const LAG_LIMIT_MS: i64 = 60_000;

/// The shipper's live state, for `/healthz` and `/metrics`: updated by the shipper thread,
/// read by the API. Lives here, beside [`ShippedWatermark`], so the API needs no PostgreSQL.
#[derive(Debug, Default)]
pub struct ShipHealth {
    /// The shipper thread is running.
    pub running: AtomicBool,
    /// It holds a working connection to PostgreSQL.
    pub connected: AtomicBool,
    /// Ship attempts failed in a row (0 after any commit).
    pub consecutive_failures: AtomicU64,
    /// The last failure, kept after recovery for the operator to read.
    pub last_error: Mutex<Option<String>>,
    /// Hits committed to PostgreSQL by this process.
    pub hits_shipped: AtomicU64,
    /// Transactions committed by this process.
    pub batches_shipped: AtomicU64,
    /// The last local hit block committed (the watermark, as PostgreSQL has it).
    pub shipped_block: AtomicI64,
    /// When the last commit happened (ms), 0 before the first.
    pub last_ship_ms: AtomicI64,
    /// Local hit blocks and rows above the watermark, and the oldest such hit's time (ms, 0:
    /// none), as of the shipper's last look.
    pub unshipped_blocks: AtomicI64,
    pub unshipped_rows: AtomicI64,
    pub oldest_unshipped_ms: AtomicI64,
}

/// A point-in-time copy of [`ShipHealth`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipStatus {
    pub running: bool,
    pub connected: bool,
    /// Running, connected, no failure since the last commit, and no hit waiting longer
    /// than [`LAG_LIMIT_MS`].
    pub healthy: bool,
    pub consecutive_failures: u64,
    pub last_error: Option<String>,
    pub hits_shipped: u64,
    pub batches_shipped: u64,
    pub shipped_block: i64,
    pub last_ship_ms: i64,
    pub unshipped_blocks: i64,
    pub unshipped_rows: i64,
    /// 0 when nothing waits.
    pub oldest_unshipped_ms: i64,
}

impl ShipHealth {
    /// A snapshot, judged at `now_ms`.
    pub fn status(&self, now_ms: i64) -> ShipStatus {
        let running = self.running.load(Ordering::Relaxed);
        let connected = self.connected.load(Ordering::Relaxed);
        let failures = self.consecutive_failures.load(Ordering::Relaxed);
        let oldest = self.oldest_unshipped_ms.load(Ordering::Relaxed);
        let lagging = oldest != 0 && now_ms - oldest > LAG_LIMIT_MS;
        ShipStatus {
            running,
            connected,
            healthy: running && connected && failures == 0 && !lagging,
            consecutive_failures: failures,
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
            hits_shipped: self.hits_shipped.load(Ordering::Relaxed),
            batches_shipped: self.batches_shipped.load(Ordering::Relaxed),
            shipped_block: self.shipped_block.load(Ordering::Relaxed),
            last_ship_ms: self.last_ship_ms.load(Ordering::Relaxed),
            unshipped_blocks: self.unshipped_blocks.load(Ordering::Relaxed),
            unshipped_rows: self.unshipped_rows.load(Ordering::Relaxed),
            oldest_unshipped_ms: oldest,
        }
    }

    /// Records what waits above the watermark.
    pub fn set_unshipped(&self, u: Unshipped) {
        self.unshipped_blocks.store(u.blocks, Ordering::Relaxed);
        self.unshipped_rows.store(u.rows, Ordering::Relaxed);
        self.oldest_unshipped_ms
            .store(u.oldest_ms.unwrap_or(0), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poolguard_record::{Outcome, Transport};

    fn hit(t: i64, client: &str, name: &str) -> QueryEvent {
        QueryEvent {
            time_ms: t,
            client: client.parse().expect("addr"),
            transport: Transport::Tcp,
            name: name.into(),
            qtype: "AAAA".into(),
            outcome: Outcome::Blocked,
            feed: Some(Arc::from("mining")),
            rule: Some(Arc::from("pool")),
            rcode: "NXDOMAIN",
            answer: "".into(),
            latency_us: 7,
            upstream: None,
        }
    }

    /// A store with ten hit blocks of one hit each (and ten query-log blocks with
    /// `log_queries`).
    fn ten_blocks(log_queries: bool) -> (tempfile::TempDir, crate::Store, Connection) {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::Store::open(&dir.path().join("t.db")).expect("store");
        let conn = store.write_connection().expect("conn");
        let ledger = poolguard_clients::Ledger::empty();
        for i in 0..10 {
            let one = [hit(1_000 + i, "10.0.0.7:53", "a.pool")];
            crate::writer::insert_events(&conn, &one, &ledger, log_queries).expect("block");
        }
        (dir, store, conn)
    }

    /// A deadline no test reaches.
    fn far() -> std::time::Instant {
        std::time::Instant::now() + std::time::Duration::from_secs(3600)
    }

    #[test]
    fn retention_stops_at_its_deadline_after_one_block_of_each_log() {
        use crate::rows::Table;
        let (_dir, _store, conn) = ten_blocks(true);
        let count = |t: &str| -> i64 {
            conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .expect("count")
        };
        // A deadline already past: one block of each log, and more to do.
        let past = std::time::Instant::now();
        for table in [Table::Queries, Table::Hits] {
            let (removed, more) =
                crate::blocks::prune(&conn, table, i64::MAX, i64::MAX, 16, past).expect("prune");
            assert_eq!((removed, more), (1, true), "{table:?}");
        }
        assert_eq!((count("query_blocks"), count("hit_blocks")), (9, 9));
        // Before it: up to the count.
        let (removed, more) =
            crate::blocks::prune(&conn, Table::Hits, i64::MAX, i64::MAX, 4, far()).expect("prune");
        assert_eq!((removed, more), (4, true));
        assert_eq!(count("hit_blocks"), 5);
    }

    #[test]
    fn blocks_above_the_mark_decode_to_the_events_written() {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::Store::open(&dir.path().join("t.db")).expect("store");
        let conn = store.write_connection().expect("conn");
        let ledger = poolguard_clients::Ledger::empty();
        let first = [hit(100, "10.0.0.7:5353", "a.pool")];
        let second = [
            hit(200, "10.0.0.8:53", "b.pool"),
            hit(300, "[::1]:53", "c.pool"),
        ];
        crate::writer::insert_events(&conn, &first, &ledger, false).expect("first");
        crate::writer::insert_events(&conn, &second, &ledger, true).expect("second");

        let all = hit_blocks_after(&conn, 0, 1).expect("read");
        assert_eq!(all.len(), 1, "whole blocks until max_rows is reached");
        let all = hit_blocks_after(&conn, 0, 10).expect("read");
        assert_eq!(all.iter().map(|b| b.hits.len()).collect::<Vec<_>>(), [1, 2]);
        let got = &all[1].hits[1];
        assert_eq!(got.index, 1);
        assert_eq!(format!("{:?}", got.event), format!("{:?}", second[1]));
        assert_eq!(got.identity, None);
        let after_first = hit_blocks_after(&conn, all[0].id, 10).expect("read");
        assert_eq!(after_first.len(), 1);
        assert_eq!(after_first[0].id, all[1].id);

        let lag = unshipped(&conn, all[0].id).expect("lag");
        assert_eq!(
            lag,
            Unshipped {
                blocks: 1,
                rows: 2,
                oldest_ms: Some(200)
            }
        );
        assert_eq!(unshipped(&conn, all[1].id).expect("lag").oldest_ms, None);
    }

    #[test]
    fn upkeep_leaves_blocks_above_the_mark_alone() {
        use crate::blocks::compact;
        use crate::rows::Table;
        let (_dir, _store, conn) = ten_blocks(false);
        let ids = |conn: &Connection| -> Vec<i64> {
            let mut stmt = conn
                .prepare("SELECT id FROM hit_blocks ORDER BY id")
                .expect("sql");
            stmt.query_map([], |r| r.get(0))
                .expect("ids")
                .collect::<Result<_, _>>()
                .expect("ids")
        };
        let mut at = Some(compact::Cursor::START);
        while let Some(from) = at {
            at = compact::step(&conn, Table::Hits, i64::MAX, 4, from)
                .expect("step")
                .next;
        }
        assert_eq!(
            ids(&conn),
            [1, 5, 6, 7, 8, 9, 10],
            "blocks 1..=4 merged, none above"
        );

        let (removed, _) =
            crate::blocks::prune(&conn, Table::Hits, i64::MAX, 7, 100, far()).expect("prune");
        assert_eq!(removed, 4 + 2, "blocks below 7 only");
        assert_eq!(ids(&conn), [7, 8, 9, 10]);
    }

    #[test]
    fn a_lagging_or_failing_shipper_is_unhealthy() {
        let h = ShipHealth::default();
        assert!(!h.status(0).healthy, "not running");
        h.running.store(true, Ordering::Relaxed);
        h.connected.store(true, Ordering::Relaxed);
        assert!(h.status(0).healthy);
        h.set_unshipped(Unshipped {
            blocks: 1,
            rows: 1,
            oldest_ms: Some(1_000),
        });
        assert!(h.status(1_000 + LAG_LIMIT_MS).healthy);
        assert!(!h.status(1_001 + LAG_LIMIT_MS).healthy, "lagging");
        h.set_unshipped(Unshipped::default());
        h.consecutive_failures.store(1, Ordering::Relaxed);
        assert!(!h.status(0).healthy, "failing");
    }

    #[test]
    fn the_watermark_only_rises() {
        let w = ShippedWatermark::nothing_shipped();
        w.advance(7);
        w.advance(3);
        assert_eq!(w.get(), 7);
        assert_eq!(ShippedWatermark::unlimited().get(), i64::MAX);
    }
}
