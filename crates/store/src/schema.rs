//! The SQLite schema and its migrations.
//!
//! `PRAGMA user_version` holds the schema version; [`migrate`] runs every step above it in one
//! transaction each, so an old database upgrades in place on start and a half-applied migration
//! never survives a crash. The early steps created per-row `queries` and `hits` tables (client
//! addresses as text and as a 16-byte IPv4-mapped blob, names also label-reversed, so CIDR and
//! suffix filters were index ranges); v6 and v8 replaced them with blocks (`store::blocks`),
//! converting the old rows, so the steps are kept for upgrades from any earlier version.

use rusqlite::Connection;

use super::StoreError;
use super::rows::Table;

/// The version this build writes: one per step in `STEPS` (add a step for every change).
pub const SCHEMA_VERSION: i64 = STEPS.len() as i64;

const COMMON_COLUMNS: &str = "
    id          INTEGER PRIMARY KEY,
    time_ms     INTEGER NOT NULL,
    client      TEXT    NOT NULL,
    client_bin  BLOB    NOT NULL,
    port        INTEGER NOT NULL,
    transport   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    rname       TEXT    NOT NULL,
    qtype       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    feed        TEXT,
    rule        TEXT,
    rcode       TEXT    NOT NULL,
    answer      TEXT    NOT NULL,
    latency_us  INTEGER NOT NULL,
    upstream    TEXT,
    department  TEXT";

fn v1() -> String {
    let mut sql = String::new();
    sql.push_str(&format!("CREATE TABLE queries ({COMMON_COLUMNS});\n"));
    sql.push_str(&format!(
        "CREATE TABLE hits ({COMMON_COLUMNS},
    network     TEXT,
    asset       TEXT,
    mac         TEXT,
    kind        TEXT,
    location    TEXT,
    owner       TEXT,
    contact     TEXT);\n"
    ));
    // Every filter index ends in time_ms so that "filter, newest first" walks the index in
    // order and stops after one page; the rowid (id) is implicitly the last key column.
    for (table, suffix, cols) in INDEXES {
        sql.push_str(&format!(
            "CREATE INDEX IF NOT EXISTS {table}_{suffix} ON {table}({cols});\n"
        ));
    }
    sql
}

/// The filter indexes: (table, suffix, columns). The short-lived `queries` table (every query,
/// days of retention) keeps only the time, client and name indexes: each index is one more
/// b-tree insert per row, and at full query logging the writer's cost is mostly index upkeep
/// (docs/BENCHMARKS.md: 6 → 3 indexes on `queries`). Its feed / department / action filters
/// still work, walking the time index newest-first (one page is found at once unless the
/// filter is very rare). `hits` keeps the same three since v7 (see [`v7`]).
const INDEXES: &[(&str, &str, &str)] = &[
    ("queries", "time", "time_ms"),
    ("queries", "client", "client_bin, time_ms"),
    ("queries", "name", "rname, time_ms"),
    ("hits", "time", "time_ms"),
    ("hits", "client", "client_bin, time_ms"),
    ("hits", "name", "rname, time_ms"),
];

/// Every migration step, in order; step `i` brings the schema to version `i + 1`.
const STEPS: &[fn() -> String] = &[
    v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15, v16, v17,
];

fn all_steps() -> String {
    STEPS.iter().map(|step| step()).collect()
}

/// The audit log: every write through the API (feeds, ledger, incidents), who and what.
fn v2() -> String {
    "CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    time_ms     INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    before_hash TEXT,
    after_hash  TEXT,
    detail      TEXT    NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS audit_time ON audit(time_ms);
"
    .to_string()
}

/// Incidents, their hits and notes, quarantine and the alert delivery log (accountability).
fn v3() -> String {
    crate::incidents::schema_v3()
}

/// Drops the `queries` indexes that v1 used to create and that cost the writer more than they
/// gave the API (see [`INDEXES`]). A no-op on a database created by this build.
fn v4() -> String {
    "DROP INDEX IF EXISTS queries_feed;
DROP INDEX IF EXISTS queries_dept;
DROP INDEX IF EXISTS queries_action;
"
    .to_string()
}

/// How far the hit spool file has been replayed (`store::spool`): one row, written in the
/// same transaction as the replayed hits, so a crash mid-replay neither loses nor repeats one.
fn v5() -> String {
    "CREATE TABLE spool_replay (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    spool_id    TEXT    NOT NULL,
    byte_offset INTEGER NOT NULL);
"
    .to_string()
}

/// The query log as blocks (`store::blocks`): one row per writer batch instead of one
/// indexed row per query. [`migrate`] first moves any rows of the old per-query table into
/// blocks (`blocks::convert_legacy`), then this drops it.
fn v6() -> String {
    format!("{}DROP TABLE IF EXISTS queries;\n", v6_tables())
}

/// v6's new table, created before the old rows are moved into it.
fn v6_tables() -> String {
    block_table("query_blocks")
}

/// A table of log blocks (`store::blocks`) and its time-range indexes; the query log (v6)
/// and the hits (v8) have the same shape.
fn block_table(name: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (
    id          INTEGER PRIMARY KEY,
    first_ms    INTEGER NOT NULL,
    last_ms     INTEGER NOT NULL,
    rows        INTEGER NOT NULL,
    counts      BLOB    NOT NULL,
    filter      BLOB    NOT NULL,
    data        BLOB    NOT NULL);
CREATE INDEX IF NOT EXISTS {name}_last ON {name}(last_ms);
CREATE INDEX IF NOT EXISTS {name}_first ON {name}(first_ms);
"
    )
}

/// Drops the `hits` indexes on feed, department and action. Every hit is written by the
/// writer on the DNS worker's core, and in a flood of blocked queries the hit row was the
/// largest cost left (docs/BENCHMARKS.md, session 3): three fewer b-trees per hit. Those
/// filters walk the time index newest first instead, as they do on the query log; the
/// time, client and name indexes (the 48-hour investigation's lookups) stay.
fn v7() -> String {
    "DROP INDEX IF EXISTS hits_feed;
DROP INDEX IF EXISTS hits_dept;
DROP INDEX IF EXISTS hits_action;
"
    .to_string()
}

/// Hits as blocks (`store::blocks`, the same format as the query log, each row with its
/// ledger snapshot), and `hit_names`: each blocked name's first and last hit, for the
/// reports' "new names" (which would otherwise decode every hit ever stored). An indexed row
/// per hit plus its incident link cost the writer 8–12 µs, so a flood of blocked queries took
/// the DNS worker's core (docs/BENCHMARKS.md, session 4). [`migrate`] moves the old `hits`
/// rows into blocks first; incidents find their hits by client key and time range, so
/// `incident_hits` goes too.
fn v8() -> String {
    format!(
        "{}DROP TABLE IF EXISTS incident_hits;\nDROP TABLE IF EXISTS hits;\n",
        v8_tables()
    )
}

/// v8's new tables, created before the old rows are moved into them.
fn v8_tables() -> String {
    block_table("hit_blocks")
        + "CREATE TABLE IF NOT EXISTS hit_names (
    name        TEXT    PRIMARY KEY,
    first_ms    INTEGER NOT NULL,
    last_ms     INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS hit_names_first ON hit_names(first_ms);
"
}

/// Rollups (`store::rollup`): per-hour and per-day counts of both logs for `/stats`, so a
/// month's statistics read thousands of rows instead of decoding every hit (issue 18). The
/// step only creates the tables: the writer builds the rollups of the hours already stored
/// in the background, a time budget per step (`rollup::Sealer`), so an upgrade of a
/// 100 M-row store does not hold start-up; `/stats` reads the blocks until then.
fn v9() -> String {
    crate::rollup::schema()
}

/// The investigator's account of each incident, for the written report (`crate::narrative`).
fn v10() -> String {
    crate::narrative::schema()
}

/// Who held the address when the incident opened, besides the ledger's row (issue 15): the
/// account, the host name and the identity sources that named them, for the API, the report
/// and the bulletin. NULL for incidents opened before, and when the ledger alone knew.
fn v11() -> String {
    "ALTER TABLE incidents ADD COLUMN account TEXT;
ALTER TABLE incidents ADD COLUMN hostname TEXT;
ALTER TABLE incidents ADD COLUMN identity_source TEXT;
"
    .to_string()
}

/// The review queue of candidate pool names nobody has listed, and the position of the scan
/// that fills it (`crate::review`, docs/REVIEW.md).
fn v12() -> String {
    crate::review::schema()
}

/// The periods whose bulletin went out (`crate::bulletin`), so each goes once.
fn v13() -> String {
    crate::bulletin::schema()
}

/// Where the grouping of settled query-log blocks by client has got to (`blocks::group`).
/// Blocks stored before are grouped by the writer in the background, a few per step.
fn v14() -> String {
    crate::blocks::group::schema()
}

/// Per-minute hit tables, so `/stats` reads the partial hours at a window's edges from them
/// (`rollup::minutes`). Hours sealed before keep being read from the blocks.
fn v15() -> String {
    crate::rollup::minutes_schema()
}

/// Name postings (`rollup::postings`): the hours each name was asked in, so an exact-name
/// lookup walks only those, and a name nobody asked for reads no block. Hours sealed before
/// have none and are walked whole (`rollup_sealed.names_from`).
fn v16() -> String {
    crate::rollup::names_schema()
}

/// Hits by feed in the rollups and minute tables (`rollup::Kind::Feed`): the hits are rolled
/// up again in the background (`rollup::feeds_schema` says why).
fn v17() -> String {
    crate::rollup::feeds_schema()
}

/// The version whose step first converts the old per-query table (see [`v6`]).
const BLOCKS_VERSION: i64 = 6;
/// The version whose step converts the old per-hit table (see [`v8`]).
const HIT_BLOCKS_VERSION: i64 = 8;

/// Brings the database to [`SCHEMA_VERSION`]; refuses a database from a newer build.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Brings the database to `target` (tests build old databases with it to check upgrades).
#[doc(hidden)]
pub fn migrate_to(conn: &mut Connection, target: i64) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, step) in STEPS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current || version > target {
            continue;
        }
        let tx = conn.transaction()?;
        if version == BLOCKS_VERSION {
            tx.execute_batch(&v6_tables())?;
            super::blocks::convert_legacy(&tx, Table::Queries)?;
        }
        if version == HIT_BLOCKS_VERSION {
            tx.execute_batch(&v8_tables())?;
            super::blocks::convert_legacy(&tx, Table::Hits)?;
        }
        tx.execute_batch(&step())?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "store schema migrated");
    }
    Ok(())
}

/// Index definitions only (for bulk loaders that create indexes after inserting).
pub fn create_tables_without_indexes(conn: &Connection) -> Result<(), StoreError> {
    let sql: String = all_steps()
        .lines()
        .filter(|l| !l.starts_with("CREATE INDEX"))
        .collect::<Vec<_>>()
        .join("\n");
    conn.execute_batch(&sql)?;
    Ok(())
}

/// The `CREATE INDEX` statements of the current schema, and marks it current.
pub fn create_indexes(conn: &Connection) -> Result<(), StoreError> {
    let sql: String = all_steps()
        .lines()
        // v1's per-row tables are gone (queries since v6, hits since v8), with their indexes.
        .filter(|l| {
            l.starts_with("CREATE INDEX") && !l.contains(" ON queries(") && !l.contains(" ON hits(")
        })
        .collect::<Vec<_>>()
        .join("\n");
    conn.execute_batch(&sql)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(())
}
