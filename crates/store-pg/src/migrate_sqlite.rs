//! `poolguard store migrate --from <sqlite> --to <postgres>`: a node's existing evidence moves
//! into the group's PostgreSQL.
//!
//! What is copied: the hits with their identity snapshot (through the shipper's own shipment,
//! so the node's `ship_cursor` ends where the copy ended and the node, started later with the
//! postgres backend on the same store and `[store] node`, ships only what is new), incidents,
//! their names and notes, quarantine, the audit log and the alert delivery log. The query log
//! stays in the node's SQLite store (it is per node, docs/SEVERAL-NODES.md).
//!
//! **Resumable, exactly once.** Every table is copied in batches in key order; each batch and
//! its progress row (`migrate_progress`: source node, table, last key copied, rows copied and
//! skipped) commit in one transaction, so a run stopped anywhere (a lost connection, a
//! `--limit`, a kill) resumes after the last committed batch, and running it again when done
//! copies nothing. The hits' progress is the node's `ship_cursor`.
//!
//! **Incident ids.** A target without incidents keeps the node's ids (its reports, audit
//! targets and bookmarks stay valid); the identity sequence is moved past them. A target that
//! already has incidents (another node's) gets the node's incidents shifted by an offset (the
//! target's highest id when the copy began, kept in the progress row so a resumed run uses the
//! same one): every reference moves with them (notes, names, quarantine, alert deliveries and
//! audit targets `incident/<id>`). An open incident of a client the group already has open
//! cannot join it (`incidents_open_key`): the copy stops naming it; close one and run again.
//!
//! The source must not be served meanwhile: the store lock is taken, as a node takes it.

use std::path::Path;

use poolguard_store::StoreError;
use poolguard_store::lock::StoreLock;
use poolguard_store::shipped::hit_blocks_after;
use postgres::Client;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, params};

use crate::error::describe;
use crate::ship::batch::{self, ShipStatements, Shipped};
use crate::{Connector, PgError};

/// Rows per batch (one PostgreSQL transaction each).
const BATCH: usize = 1000;
/// Hit rows per shipment (as the shipper's default).
const HIT_BATCH: usize = 20_000;

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}")]
    Pg(#[from] PgError),
    #[error("the SQLite store {path}: {cause}")]
    Source { path: String, cause: String },
    #[error("copying {table}: {cause}")]
    Copy { table: &'static str, cause: String },
    #[error(
        "{table}: the source has {source_rows} rows but PostgreSQL holds {target} of them (after a complete run)"
    )]
    Mismatch {
        table: &'static str,
        source_rows: i64,
        target: i64,
    },
}

/// How to run it.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// The node name the copied rows carry (`hits.node`, `audit.node`, `opened_by`): the
    /// `[store] node` the node will run with.
    pub node: String,
    /// Rows copied per table in this run at most; `None` = everything. A run that stops at the
    /// limit is continued by the next.
    pub limit: Option<u64>,
}

/// One table's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    /// Rows in the SQLite store.
    pub source: i64,
    /// Rows of this source in PostgreSQL (copied by this or an earlier run).
    pub copied: i64,
    /// Rows PostgreSQL already had (a quarantined address another node quarantined too).
    pub skipped: i64,
    /// Rows this run copied.
    pub this_run: i64,
}

impl TableCount {
    /// Every source row is in PostgreSQL (copied, or there already).
    pub fn complete(&self) -> bool {
        self.copied + self.skipped == self.source
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct MigrateReport {
    pub tables: Vec<TableCount>,
    /// Added to every incident id (0: ids kept).
    pub id_offset: i64,
}

impl MigrateReport {
    /// Every table is complete.
    pub fn complete(&self) -> bool {
        self.tables.iter().all(TableCount::complete)
    }
}

/// A table copied row by row: its SQLite select (key first, then the columns in order) and
/// its PostgreSQL insert (`$1..` the columns as text, cast there).
struct Table {
    name: &'static str,
    count: &'static str,
    /// `?1` the last key copied, `?2` how many rows (or keys, for names) at most.
    select: &'static str,
    insert: String,
}

/// A column's PostgreSQL cast from text, and whether it holds an incident id.
fn cast(i: usize, ty: &str, shift: bool, offset: i64) -> String {
    match (ty, shift) {
        ("bigint", true) => format!("(${i}::text::bigint + {offset})"),
        ("bool", _) => format!("(${i}::text::int <> 0)"),
        ("text", _) => format!("${i}::text"),
        _ => format!("${i}::text::{ty}"),
    }
}

/// `INSERT INTO table (cols, extra) VALUES (casts, extra values)`.
fn insert(
    table: &str,
    cols: &[(&str, &str, bool)],
    extra: &[(&str, String)],
    tail: &str,
    offset: i64,
) -> String {
    let names: Vec<&str> = cols
        .iter()
        .map(|c| c.0)
        .chain(extra.iter().map(|e| e.0))
        .collect();
    let values: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, &(_, ty, shift))| cast(i + 1, ty, shift, offset))
        .chain(extra.iter().map(|e| e.1.clone()))
        .collect();
    format!(
        "INSERT INTO {table} ({}) {tail} VALUES ({})",
        names.join(", "),
        values.join(", ")
    )
}

/// A SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn tables(node: &str, offset: i64) -> Vec<Table> {
    let node = literal(node);
    let t = "text";
    let b = "bigint";
    let incident_cols = [
        ("id", b, true),
        ("client_key", t, false),
        ("client", "inet", false),
        ("network", t, false),
        ("asset", t, false),
        ("mac", t, false),
        ("kind", t, false),
        ("location", t, false),
        ("department", t, false),
        ("ledger_owner", t, false),
        ("contact", t, false),
        ("device", t, false),
        ("owner", t, false),
        ("status", t, false),
        ("resolution", t, false),
        ("assignee", t, false),
        ("severity", "int", false),
        ("feeds", t, false),
        ("categories", t, false),
        ("opened_ms", b, false),
        ("last_hit_ms", b, false),
        ("hit_count", b, false),
        ("name_count", b, false),
        ("identify_due_ms", b, false),
        ("report_due_ms", b, false),
        ("identified_ms", b, false),
        ("reported_ms", b, false),
        ("closed_ms", b, false),
        ("enforced_ms", b, false),
        ("alerted", "int", false),
        ("account", t, false),
        ("hostname", t, false),
        ("identity_source", t, false),
    ];
    // An audit row about incident N names it `incident/N`: it moves with the incident.
    let audit_target = if offset == 0 {
        "$5::text".to_string()
    } else {
        format!(
            "CASE WHEN $5::text ~ '^incident/[0-9]+$' \
             THEN 'incident/' || (substr($5::text, 10)::bigint + {offset}) ELSE $5::text END"
        )
    };
    vec![
        Table {
            name: "incidents",
            count: "SELECT count(*) FROM incidents",
            select: "SELECT id, id, client_key, client, network, asset, mac, kind, location, \
                     department, ledger_owner, contact, device, owner, status, resolution, \
                     assignee, severity, feeds, categories, opened_ms, last_hit_ms, hit_count, \
                     name_count, identify_due_ms, report_due_ms, identified_ms, reported_ms, \
                     closed_ms, enforced_ms, alerted, account, hostname, identity_source \
                     FROM incidents WHERE id > ?1 ORDER BY id LIMIT ?2",
            insert: insert(
                "incidents",
                &incident_cols,
                &[("opened_by", node.clone())],
                "OVERRIDING SYSTEM VALUE",
                offset,
            ),
        },
        Table {
            name: "incident_names",
            count: "SELECT count(*) FROM incident_names",
            // Whole incidents per batch (the key is the incident id, not unique per row).
            select: "SELECT incident_id, incident_id, name FROM incident_names \
                     WHERE incident_id > ?1 AND incident_id <= coalesce((SELECT max(incident_id) \
                     FROM (SELECT DISTINCT incident_id FROM incident_names WHERE incident_id > ?1 \
                     ORDER BY incident_id LIMIT ?2)), ?1) ORDER BY incident_id",
            insert: insert(
                "incident_names",
                &[("incident_id", b, true), ("name", t, false)],
                &[],
                "",
                offset,
            ) + " ON CONFLICT DO NOTHING",
        },
        Table {
            name: "incident_notes",
            count: "SELECT count(*) FROM incident_notes",
            select: "SELECT id, incident_id, time_ms, author, text FROM incident_notes \
                     WHERE id > ?1 ORDER BY id LIMIT ?2",
            insert: insert(
                "incident_notes",
                &[
                    ("incident_id", b, true),
                    ("time_ms", b, false),
                    ("author", t, false),
                    ("text", t, false),
                ],
                &[],
                "",
                offset,
            ),
        },
        Table {
            name: "incident_narrative",
            count: "SELECT count(*) FROM incident_narrative",
            select: "SELECT incident_id, incident_id, body, updated_ms FROM incident_narrative \
                     WHERE incident_id > ?1 ORDER BY incident_id LIMIT ?2",
            insert: insert(
                "incident_narrative",
                &[
                    ("incident_id", b, true),
                    ("body", t, false),
                    ("updated_ms", b, false),
                ],
                &[],
                "",
                offset,
            ),
        },
        Table {
            name: "quarantine",
            count: "SELECT count(*) FROM quarantine",
            select: "SELECT rowid, ip, since_ms, actor, reason, incident_id FROM quarantine \
                     WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
            // An address the group already quarantined stays as it is there.
            insert: insert(
                "quarantine",
                &[
                    ("ip", "inet", false),
                    ("since_ms", b, false),
                    ("actor", t, false),
                    ("reason", t, false),
                    ("incident_id", b, true),
                ],
                &[],
                "",
                offset,
            ) + " ON CONFLICT (ip) DO NOTHING",
        },
        Table {
            name: "audit",
            count: "SELECT count(*) FROM audit",
            select: "SELECT id, time_ms, actor, role, action, target, before_hash, after_hash, \
                     detail FROM audit WHERE id > ?1 ORDER BY id LIMIT ?2",
            insert: format!(
                "INSERT INTO audit (time_ms, actor, role, action, target, before_hash, \
                 after_hash, detail, node) VALUES ($1::text::bigint, $2::text, $3::text, \
                 $4::text, {audit_target}, $6::text, $7::text, $8::text, {node})"
            ),
        },
        Table {
            name: "alert_deliveries",
            count: "SELECT count(*) FROM alert_deliveries",
            select: "SELECT id, time_ms, event, target, attempt, status, ok, error, incident_id \
                     FROM alert_deliveries WHERE id > ?1 ORDER BY id LIMIT ?2",
            insert: insert(
                "alert_deliveries",
                &[
                    ("time_ms", b, false),
                    ("event", t, false),
                    ("target", t, false),
                    ("attempt", "int", false),
                    ("status", "int", false),
                    ("ok", "bool", false),
                    ("error", t, false),
                    ("incident_id", b, true),
                ],
                &[("node", node)],
                "",
                offset,
            ),
        },
    ]
}

/// Copies the SQLite store at `sqlite` into the database of `connector` (whose schema must
/// be current: `PgStore::prepare`). Blocking: call it off any async runtime.
pub fn migrate(
    sqlite: &Path,
    connector: &Connector,
    options: &MigrateOptions,
) -> Result<MigrateReport, MigrateError> {
    let source_err = |e: &dyn std::fmt::Display| MigrateError::Source {
        path: sqlite.display().to_string(),
        cause: e.to_string(),
    };
    if !sqlite.is_file() {
        return Err(source_err(&"no such file"));
    }
    // A node serving from it would go on writing; stop it first (the lock says so).
    let _lock = StoreLock::acquire(sqlite).map_err(|e| source_err(&e))?;
    let local = Connection::open_with_flags(sqlite, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| source_err(&e))?;
    let mut pg = connector.connect_blocking()?;
    pg.batch_execute(
        "CREATE TABLE IF NOT EXISTS migrate_progress (
             source    TEXT   NOT NULL,
             tbl       TEXT   NOT NULL,
             last_key  BIGINT NOT NULL DEFAULT 0,
             copied    BIGINT NOT NULL DEFAULT 0,
             skipped   BIGINT NOT NULL DEFAULT 0,
             id_offset BIGINT NOT NULL DEFAULT 0,
             PRIMARY KEY (source, tbl))",
    )
    .map_err(|e| PgError::Db(describe(&e)))?;
    let node = options.node.as_str();
    let id_offset = incident_offset(&mut pg, node).map_err(|e| PgError::Db(describe(&e)))?;
    let mut counts = Vec::new();
    for table in tables(node, id_offset) {
        // A store last written by a build before the table existed has none of its rows.
        if !has_table(&local, table.name).map_err(|e| source_err(&e))? {
            continue;
        }
        counts.push(copy_table(&local, &mut pg, node, &table, options.limit)?);
    }
    counts.push(copy_hits(&local, &mut pg, node, options.limit)?);
    let report = MigrateReport {
        tables: counts,
        id_offset,
    };
    if options.limit.is_none() {
        // Checked after a complete run: every source row is in PostgreSQL once.
        for t in &report.tables {
            if !t.complete() {
                return Err(MigrateError::Mismatch {
                    table: t.table,
                    source_rows: t.source,
                    target: t.copied + t.skipped,
                });
            }
        }
    }
    Ok(report)
}

/// Whether the SQLite store has `name` (tables added by later schema steps may be absent).
fn has_table(local: &Connection, name: &str) -> rusqlite::Result<bool> {
    local
        .prepare_cached("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .query_row([name], |r| r.get::<_, i64>(0))
        .map(|n| n > 0)
}

/// The incident id offset of this source: decided once, at its first run (0 when the target
/// has no incidents yet), and kept in the progress row.
fn incident_offset(pg: &mut Client, node: &str) -> Result<i64, postgres::Error> {
    let mut tx = pg.transaction()?;
    // One decision even if two runs of one source start at once.
    tx.execute(
        "LOCK TABLE migrate_progress IN SHARE ROW EXCLUSIVE MODE",
        &[],
    )?;
    let kept = tx.query_opt(
        "SELECT id_offset FROM migrate_progress WHERE source = $1 AND tbl = 'incidents'",
        &[&node],
    )?;
    let offset = match kept {
        Some(row) => row.get(0),
        None => {
            let offset: i64 = tx
                .query_one("SELECT coalesce(max(id), 0) FROM incidents", &[])?
                .get(0);
            tx.execute(
                "INSERT INTO migrate_progress (source, tbl, id_offset) VALUES ($1, 'incidents', $2)",
                &[&node, &offset],
            )?;
            offset
        }
    };
    tx.commit()?;
    Ok(offset)
}

/// SQLite values as the text PostgreSQL casts (`None` = NULL).
fn as_text(v: Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Integer(i) => Some(i.to_string()),
        Value::Real(f) => Some(f.to_string()),
        Value::Text(s) => Some(s),
        Value::Blob(b) => Some(hex::encode(b)),
    }
}

/// Reads up to `n` rows (or keys) after `after`: (key, columns as text).
type Batch = Vec<(i64, Vec<Option<String>>)>;

fn read_batch(local: &Connection, table: &Table, after: i64, n: usize) -> rusqlite::Result<Batch> {
    let mut stmt = local.prepare_cached(table.select)?;
    let width = stmt.column_count();
    let rows = stmt.query_map(params![after, n as i64], |r| {
        let key: i64 = r.get(0)?;
        let mut cols = Vec::with_capacity(width - 1);
        for i in 1..width {
            cols.push(as_text(r.get::<_, Value>(i)?));
        }
        Ok((key, cols))
    })?;
    rows.collect()
}

/// Copies one table in batches; each batch commits with its progress row.
fn copy_table(
    local: &Connection,
    pg: &mut Client,
    node: &str,
    table: &Table,
    limit: Option<u64>,
) -> Result<TableCount, MigrateError> {
    let fail = |cause: String| MigrateError::Copy {
        table: table.name,
        cause,
    };
    let pg_fail = |e: postgres::Error| fail(describe(&e));
    let source: i64 = local
        .query_row(table.count, [], |r| r.get(0))
        .map_err(|e| fail(e.to_string()))?;
    pg.execute(
        "INSERT INTO migrate_progress (source, tbl) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&node, &table.name],
    )
    .map_err(pg_fail)?;
    let insert = pg.prepare(&table.insert).map_err(pg_fail)?;
    let mut this_run = 0i64;
    loop {
        let room = limit.map_or(BATCH, |l| {
            BATCH.min(l.saturating_sub(this_run as u64) as usize)
        });
        if room == 0 {
            break;
        }
        let mut tx = pg.transaction().map_err(pg_fail)?;
        // Locked: a second run of this source waits here, then reads where this one ended.
        let row = tx
            .query_one(
                "SELECT last_key FROM migrate_progress WHERE source = $1 AND tbl = $2 FOR UPDATE",
                &[&node, &table.name],
            )
            .map_err(pg_fail)?;
        let after: i64 = row.get(0);
        let batch = read_batch(local, table, after, room).map_err(|e| fail(e.to_string()))?;
        let Some(last) = batch.last().map(|(k, _)| *k) else {
            break;
        };
        let mut inserted = 0i64;
        for (key, cols) in &batch {
            let params: Vec<&(dyn postgres::types::ToSql + Sync)> = cols
                .iter()
                .map(|c| c as &(dyn postgres::types::ToSql + Sync))
                .collect();
            let n = tx
                .execute(&insert, &params)
                .map_err(|e| fail(format!("{} row {key}: {}", table.name, describe(&e))))?;
            inserted += n as i64;
        }
        let skipped = batch.len() as i64 - inserted;
        tx.execute(
            "UPDATE migrate_progress SET last_key = $3, copied = copied + $4, \
             skipped = skipped + $5 WHERE source = $1 AND tbl = $2",
            &[&node, &table.name, &last, &inserted, &skipped],
        )
        .map_err(pg_fail)?;
        if table.name == "incidents" {
            // New incidents of the group (any node) get ids above the copied ones.
            tx.execute(
                "SELECT setval(pg_get_serial_sequence('incidents', 'id'), \
                 (SELECT max(id) FROM incidents))",
                &[],
            )
            .map_err(pg_fail)?;
        }
        tx.commit().map_err(pg_fail)?;
        this_run += batch.len() as i64;
    }
    let row = pg
        .query_one(
            "SELECT copied, skipped FROM migrate_progress WHERE source = $1 AND tbl = $2",
            &[&node, &table.name],
        )
        .map_err(pg_fail)?;
    Ok(TableCount {
        table: table.name,
        source,
        copied: row.get(0),
        skipped: row.get(1),
        this_run,
    })
}

/// Copies the hits as the shipper ships them: the node's `ship_cursor` is the progress.
fn copy_hits(
    local: &Connection,
    pg: &mut Client,
    node: &str,
    limit: Option<u64>,
) -> Result<TableCount, MigrateError> {
    let fail = |cause: String| MigrateError::Copy {
        table: "hits",
        cause,
    };
    let pg_fail = |e: postgres::Error| fail(describe(&e));
    let source: i64 = local
        .query_row("SELECT coalesce(sum(rows), 0) FROM hit_blocks", [], |r| {
            r.get(0)
        })
        .map_err(|e| fail(e.to_string()))?;
    let st = ShipStatements::prepare(pg).map_err(pg_fail)?;
    let mut after = batch::read_cursor(pg, node).map_err(pg_fail)?;
    let mut this_run = 0i64;
    loop {
        let room = limit.map_or(HIT_BATCH, |l| {
            HIT_BATCH.min(l.saturating_sub(this_run as u64) as usize)
        });
        if room == 0 {
            break;
        }
        let blocks =
            hit_blocks_after(local, after, room).map_err(|e: StoreError| fail(e.to_string()))?;
        if blocks.is_empty() {
            break;
        }
        let rows: usize = blocks.iter().map(|b| b.hits.len()).sum();
        match batch::ship(pg, &st, node, after, &blocks, None, None)
            .map_err(|e| fail(e.to_string()))?
        {
            Shipped::Committed { through, .. } => after = through,
            // Another run (or the node's shipper) moved it: go on from there.
            Shipped::CursorMoved { at } => {
                after = at;
                continue;
            }
        }
        this_run += rows as i64;
    }
    let copied: i64 = pg
        .query_one("SELECT count(*) FROM hits WHERE node = $1", &[&node])
        .map_err(pg_fail)?
        .get(0);
    Ok(TableCount {
        table: "hits",
        source,
        copied,
        skipped: 0,
        this_run,
    })
}
