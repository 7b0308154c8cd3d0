//! The SQL of incidents, notes, quarantine and the alert delivery log (schema step v3).
//!
//! An incident row keeps the identity snapshot taken when it opened (later ledger edits never
//! rewrite it), the counters the writer maintains hit by hit, and the people-side fields staff
//! edit (device, owner, assignee, status). An incident's hits are every stored hit of its
//! client key from its first hit to its last (`store::blocks::owner_hits`): there is one open
//! incident per key, so that range is exactly what the tracker counted, with no link row per
//! hit (schema 8 dropped `incident_hits`). Distinct names are counted through
//! `incident_names`. Deadlines are stored as absolute times (config changes do not move
//! the deadline of an open incident).

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::blocks::{self, HitOwner};
use crate::traits::Cursor;
use crate::{StoreError, cursor};
use poolguard_clients::Identity;
use poolguard_model::deadline::{self, Judgement};
use poolguard_model::{Severity, Status};

/// Schema step v3 (see `store::schema::STEPS`). One statement per line for `CREATE INDEX`.
pub fn schema_v3() -> String {
    "CREATE TABLE incidents (
    id              INTEGER PRIMARY KEY,
    client_key      TEXT    NOT NULL,
    client          TEXT    NOT NULL,
    client_bin      BLOB    NOT NULL,
    network TEXT, asset TEXT, mac TEXT, kind TEXT, location TEXT, department TEXT, ledger_owner TEXT, contact TEXT,
    device          TEXT,
    owner           TEXT,
    status          TEXT    NOT NULL DEFAULT 'open',
    resolution      TEXT,
    assignee        TEXT,
    severity        INTEGER NOT NULL DEFAULT 2,
    feeds           TEXT    NOT NULL DEFAULT '',
    categories      TEXT    NOT NULL DEFAULT '',
    opened_ms       INTEGER NOT NULL,
    last_hit_ms     INTEGER NOT NULL,
    hit_count       INTEGER NOT NULL DEFAULT 0,
    name_count      INTEGER NOT NULL DEFAULT 0,
    identify_due_ms INTEGER NOT NULL,
    report_due_ms   INTEGER NOT NULL,
    identified_ms   INTEGER,
    reported_ms     INTEGER,
    closed_ms       INTEGER,
    enforced_ms     INTEGER,
    alerted         INTEGER NOT NULL DEFAULT 0);
CREATE TABLE incident_hits (incident_id INTEGER NOT NULL, hit_id INTEGER NOT NULL, PRIMARY KEY (incident_id, hit_id)) WITHOUT ROWID;
CREATE TABLE incident_names (incident_id INTEGER NOT NULL, name TEXT NOT NULL, PRIMARY KEY (incident_id, name)) WITHOUT ROWID;
CREATE TABLE incident_notes (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL,
    time_ms     INTEGER NOT NULL,
    author      TEXT    NOT NULL,
    text        TEXT    NOT NULL);
CREATE TABLE quarantine (
    ip          TEXT    PRIMARY KEY,
    since_ms    INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    incident_id INTEGER);
CREATE TABLE alert_deliveries (
    id          INTEGER PRIMARY KEY,
    time_ms     INTEGER NOT NULL,
    event       TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    status      INTEGER,
    ok          INTEGER NOT NULL,
    error       TEXT,
    incident_id INTEGER);
CREATE UNIQUE INDEX IF NOT EXISTS incidents_open_key ON incidents(client_key) WHERE status != 'closed';
CREATE INDEX IF NOT EXISTS incidents_key_opened ON incidents(client_key, opened_ms);
CREATE INDEX IF NOT EXISTS incidents_opened ON incidents(opened_ms);
CREATE INDEX IF NOT EXISTS incidents_status ON incidents(status, opened_ms);
CREATE INDEX IF NOT EXISTS incident_notes_incident ON incident_notes(incident_id, time_ms);
CREATE INDEX IF NOT EXISTS alert_deliveries_time ON alert_deliveries(time_ms);
"
    .to_string()
}

/// One incident as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRow {
    pub id: i64,
    /// `asset:<name>` when the ledger knew the asset, else `ip:<address>`.
    pub client_key: String,
    /// The address of the first hit.
    pub client: String,
    pub identity: Identity,
    pub device: Option<String>,
    pub owner: Option<String>,
    /// Read as the enum: a status this build does not know is a read error, not `open`.
    pub status: Status,
    pub resolution: Option<String>,
    pub assignee: Option<String>,
    /// Highest severity among the incident's feeds (stored as its rank).
    pub severity: Severity,
    pub feeds: Vec<String>,
    pub categories: Vec<String>,
    pub opened_ms: i64,
    pub last_hit_ms: i64,
    pub hit_count: i64,
    pub name_count: i64,
    pub identify_due_ms: i64,
    pub report_due_ms: i64,
    pub identified_ms: Option<i64>,
    pub reported_ms: Option<i64>,
    pub closed_ms: Option<i64>,
    pub enforced_ms: Option<i64>,
    pub alerted: i64,
}

impl IncidentRow {
    /// The identification deadline judged at `now` (`incidents::deadline`, the one rule).
    pub fn identify_deadline(&self, now: i64) -> Judgement {
        deadline::judge(
            self.identify_due_ms,
            self.identified_ms,
            self.closed_ms,
            now,
        )
    }

    /// The report deadline judged at `now`.
    pub fn report_deadline(&self, now: i64) -> Judgement {
        deadline::judge(self.report_due_ms, self.reported_ms, self.closed_ms, now)
    }

    /// Identification deadline missed at `now` (also after closing: a miss stays missed).
    pub fn identify_overdue(&self, now: i64) -> bool {
        self.identify_deadline(now).missed()
    }

    /// Report deadline missed at `now`.
    pub fn report_overdue(&self, now: i64) -> bool {
        self.report_deadline(now).missed()
    }

    /// Either deadline missed.
    pub fn overdue(&self, now: i64) -> bool {
        self.identify_overdue(now) || self.report_overdue(now)
    }
}

/// The column list matching [`map_incident`].
pub const INCIDENT_COLUMNS: &str = "id, client_key, client, network, asset, mac, kind, location, \
    department, ledger_owner, contact, device, owner, status, resolution, assignee, severity, \
    feeds, categories, opened_ms, last_hit_ms, hit_count, name_count, identify_due_ms, \
    report_due_ms, identified_ms, reported_ms, closed_ms, enforced_ms, alerted, account, \
    hostname, identity_source";

fn split(s: String) -> Vec<String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Maps a row selected with [`INCIDENT_COLUMNS`].
pub fn map_incident(r: &Row<'_>) -> rusqlite::Result<IncidentRow> {
    Ok(IncidentRow {
        id: r.get(0)?,
        client_key: r.get(1)?,
        client: r.get(2)?,
        identity: Identity {
            network: r.get(3)?,
            asset: r.get(4)?,
            mac: r.get(5)?,
            kind: r.get(6)?,
            location: r.get(7)?,
            department: r.get(8)?,
            owner: r.get(9)?,
            contact: r.get(10)?,
            account: r.get(30)?,
            hostname: r.get(31)?,
            source: r.get(32)?,
            exempt: None,
        },
        device: r.get(11)?,
        owner: r.get(12)?,
        status: r.get(13)?,
        resolution: r.get(14)?,
        assignee: r.get(15)?,
        severity: r.get(16)?,
        feeds: split(r.get(17)?),
        categories: split(r.get(18)?),
        opened_ms: r.get(19)?,
        last_hit_ms: r.get(20)?,
        hit_count: r.get(21)?,
        name_count: r.get(22)?,
        identify_due_ms: r.get(23)?,
        report_due_ms: r.get(24)?,
        identified_ms: r.get(25)?,
        reported_ms: r.get(26)?,
        closed_ms: r.get(27)?,
        enforced_ms: r.get(28)?,
        alerted: r.get(29)?,
    })
}

/// One incident by id.
pub fn get(conn: &Connection, id: i64) -> Result<Option<IncidentRow>, StoreError> {
    let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], map_incident)
        .optional()?)
}

/// How many incidents are not closed, and how many of those missed a deadline at `now`, for
/// the `poolguard_incidents_open` and `poolguard_incidents_overdue` gauges. Overdue is judged
/// by [`IncidentRow::overdue`], the rule of the list and the reports, not a copy of it in SQL.
/// Bounded: at most one incident per client is not closed (index `incidents_open_key`).
pub fn open_counts(conn: &Connection, now: i64) -> Result<(u64, u64), StoreError> {
    let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status != 'closed'");
    let mut stmt = conn.prepare_cached(&sql)?;
    let (mut open, mut overdue) = (0u64, 0u64);
    for row in stmt.query_map([], map_incident)? {
        open += 1;
        if row?.overdue(now) {
            overdue += 1;
        }
    }
    Ok((open, overdue))
}

/// Filters of the incident list.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub status: Option<Status>,
    /// `Some(true)`: only overdue; `Some(false)`: only on time (judged at `now`).
    pub overdue: Option<bool>,
    pub department: Option<String>,
    pub assignee: Option<String>,
    /// Who the incident is about (issue 15): the MAC, account or ledger asset it opened
    /// with, its owner (the ledger's or the one staff recorded), all case-insensitive, and
    /// part of its department.
    pub who: IncidentWho,
    /// Opened at or after (ms).
    pub since: Option<i64>,
    /// `next` of the previous page.
    pub cursor: Option<Cursor>,
    pub limit: usize,
    pub now: i64,
}

/// The identity filters of an incident list; empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct IncidentWho {
    pub mac: Option<String>,
    pub account: Option<String>,
    pub asset: Option<String>,
    pub owner: Option<String>,
    pub department_contains: Option<String>,
}

impl IncidentWho {
    /// `(SQL condition with `$?` for the value, value)` pairs, the same for both stores:
    /// `lower()` on both sides, `instr`/`strpos` spelled by the caller's `contains`.
    pub fn conditions(&self, contains: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (column, v) in [
            ("mac", &self.mac),
            ("account", &self.account),
            ("asset", &self.asset),
        ] {
            if let Some(v) = v {
                out.push((format!("lower({column}) = lower($?)"), v.clone()));
            }
        }
        if let Some(o) = &self.owner {
            out.push((
                "(lower(owner) = lower($?) OR lower(ledger_owner) = lower($?))".into(),
                o.clone(),
            ));
        }
        if let Some(d) = &self.department_contains {
            out.push((
                format!("{contains}(lower(department), lower($?)) > 0"),
                d.clone(),
            ));
        }
        out
    }
}

/// Newest first, one page (the cursor is the last id of the previous page).
pub fn list(conn: &Connection, f: &IncidentFilter) -> Result<Vec<IncidentRow>, StoreError> {
    let before_id = f.cursor.as_ref().map(cursor::id).transpose()?;
    let mut sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id < ?1");
    let mut args: Vec<rusqlite::types::Value> = vec![before_id.unwrap_or(i64::MAX).into()];
    let mut push = |sql: &mut String, cond: &str, v: rusqlite::types::Value| {
        args.push(v);
        sql.push_str(&format!(" AND {cond} ?{}", args.len()));
    };
    if let Some(s) = &f.status {
        push(&mut sql, "status =", s.as_str().to_string().into());
    }
    if let Some(d) = &f.department {
        push(&mut sql, "department =", d.clone().into());
    }
    if let Some(a) = &f.assignee {
        push(&mut sql, "assignee =", a.clone().into());
    }
    if let Some(s) = f.since {
        push(&mut sql, "opened_ms >=", s.into());
    }
    for (cond, v) in f.who.conditions("instr") {
        args.push(v.into());
        // Every `$?` of a condition is the same value: SQLite's `?N` may repeat.
        sql.push_str(&format!(
            " AND {}",
            cond.replace("$?", &format!("?{}", args.len()))
        ));
    }
    // The same rule as IncidentRow::overdue, in SQL (held to it by a test in `deadline`).
    let overdue = format!(
        "({} OR {})",
        deadline::missed_sql("identify_due_ms", "identified_ms", "closed_ms", f.now),
        deadline::missed_sql("report_due_ms", "reported_ms", "closed_ms", f.now)
    );
    match f.overdue {
        Some(true) => sql.push_str(&format!(" AND {overdue}")),
        Some(false) => sql.push_str(&format!(" AND NOT {overdue}")),
        None => {}
    }
    args.push((f.limit as i64).into());
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), map_incident)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Writes the fields staff change (`crate::transition::apply`) back to the incident's row.
pub fn update(conn: &Connection, row: &IncidentRow) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE incidents SET device = ?2, owner = ?3, assignee = ?4, status = ?5, \
         resolution = ?6, identified_ms = ?7, reported_ms = ?8, closed_ms = ?9 WHERE id = ?1",
    )?
    .execute(params![
        row.id,
        row.device,
        row.owner,
        row.assignee,
        row.status,
        row.resolution,
        row.identified_ms,
        row.reported_ms,
        row.closed_ms
    ])?;
    Ok(())
}

/// One hit of an incident, for the detail view and the report timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentHit {
    pub id: i64,
    pub time_ms: i64,
    pub client: String,
    pub name: String,
    pub qtype: String,
    pub action: String,
    pub feed: Option<String>,
    pub rule: Option<String>,
    pub rcode: String,
}

/// The incident's hits, oldest first, at most `limit` (none for an unknown incident).
pub fn hits(conn: &Connection, id: i64, limit: usize) -> Result<Vec<IncidentHit>, StoreError> {
    let Some(row) = get(conn, id)? else {
        return Ok(Vec::new());
    };
    let Some(owner) = HitOwner::parse(&row.client_key) else {
        return Ok(Vec::new());
    };
    let rows = blocks::owner_hits(conn, owner, row.opened_ms, row.last_hit_ms, limit)?;
    Ok(rows
        .into_iter()
        .map(|r| IncidentHit {
            id: r.id,
            time_ms: r.time_ms,
            client: r.client,
            name: r.name,
            qtype: r.qtype,
            action: r.action,
            feed: r.feed,
            rule: r.rule,
            rcode: r.rcode,
        })
        .collect())
}

/// A note on an incident (append-only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub id: i64,
    /// RFC 3339.
    pub time: String,
    /// Token name of the author, or `system`.
    pub author: String,
    pub text: String,
}

/// Appends a note; returns its id.
pub fn add_note(
    conn: &Connection,
    incident: i64,
    time_ms: i64,
    author: &str,
    text: &str,
) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO incident_notes (incident_id, time_ms, author, text) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![incident, time_ms, author, text])?;
    Ok(conn.last_insert_rowid())
}

/// Every note of an incident, oldest first.
pub fn notes(conn: &Connection, incident: i64) -> Result<Vec<Note>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, time_ms, author, text FROM incident_notes WHERE incident_id = ?1 ORDER BY time_ms, id",
    )?;
    let rows = stmt.query_map([incident], |r| {
        Ok(Note {
            id: r.get(0)?,
            time: poolguard_model::rfc3339(r.get(1)?),
            author: r.get(2)?,
            text: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One quarantined address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineEntry {
    pub ip: String,
    /// RFC 3339.
    pub since: String,
    /// `system` (threshold) or the token name.
    pub actor: String,
    pub reason: String,
    pub incident_id: Option<i64>,
}

/// Every quarantined address, oldest first.
pub fn quarantine_list(conn: &Connection) -> Result<Vec<QuarantineEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT ip, since_ms, actor, reason, incident_id FROM quarantine ORDER BY since_ms, ip",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(QuarantineEntry {
            ip: r.get(0)?,
            since: poolguard_model::rfc3339(r.get(1)?),
            actor: r.get(2)?,
            reason: r.get(3)?,
            incident_id: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Adds an address; false when it was already quarantined.
pub fn quarantine_add(
    conn: &Connection,
    ip: &str,
    since_ms: i64,
    actor: &str,
    reason: &str,
    incident: Option<i64>,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO quarantine (ip, since_ms, actor, reason, incident_id) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![ip, since_ms, actor, reason, incident])?;
    Ok(n > 0)
}

/// Releases an address; the removed entry, if it was quarantined.
pub fn quarantine_remove(
    conn: &Connection,
    ip: &str,
) -> Result<Option<QuarantineEntry>, StoreError> {
    let entry = quarantine_list(conn)?.into_iter().find(|e| e.ip == ip);
    conn.prepare_cached("DELETE FROM quarantine WHERE ip = ?1")?
        .execute([ip])?;
    Ok(entry)
}

/// One attempt to deliver an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    /// RFC 3339.
    pub time: String,
    pub event: String,
    /// Webhook URL, `syslog://host:port`, or a people channel by name (`dingtalk:<name>`,
    /// `wecom:<name>`, `email:<name>`: their URLs and logins are secrets).
    pub target: String,
    /// 1 for the first try.
    pub attempt: u32,
    /// HTTP status, when one came back.
    pub status: Option<u16>,
    pub ok: bool,
    pub error: Option<String>,
    pub incident_id: Option<i64>,
}

/// Logs one delivery attempt.
pub fn log_delivery(conn: &Connection, d: &Delivery, time_ms: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO alert_deliveries (time_ms, event, target, attempt, status, ok, error, incident_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        time_ms,
        d.event,
        d.target,
        d.attempt,
        d.status,
        d.ok,
        d.error,
        d.incident_id
    ])?;
    Ok(())
}

/// Newest first, one page.
pub fn deliveries(
    conn: &Connection,
    limit: usize,
    before_id: Option<i64>,
) -> Result<Vec<Delivery>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, time_ms, event, target, attempt, status, ok, error, incident_id \
         FROM alert_deliveries WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![before_id.unwrap_or(i64::MAX), limit as i64], |r| {
        Ok(Delivery {
            id: r.get(0)?,
            time: poolguard_model::rfc3339(r.get(1)?),
            event: r.get(2)?,
            target: r.get(3)?,
            attempt: r.get(4)?,
            status: r.get(5)?,
            ok: r.get(6)?,
            error: r.get(7)?,
            incident_id: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
