//! Reads for the API: filtered lists with keyset pagination, stats, one client's summary.
//!
//! Lists are newest first and paginated on the key `(time_ms, id)`: the next page starts
//! strictly below the last row returned, so rows inserted meanwhile never shift a page and no
//! row is skipped or repeated (OFFSET would do both, and get slower with every page).

use rusqlite::types::Value;
use rusqlite::{Connection, Row};

use super::{StoreError, reverse_name};
use crate::clients::Identity;

/// Which table a list reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// The full query log (short retention).
    Queries,
    /// Blocked queries with their identity snapshot (long retention, evidence).
    Hits,
}

impl Table {
    fn sql_name(self) -> &'static str {
        match self {
            Table::Queries => "queries",
            Table::Hits => "hits",
        }
    }
}

/// How a `name` filter matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameFilter {
    /// Exactly this name (lower case, no trailing dot).
    Exact(String),
    /// This name and everything below it (`*.example.com`).
    Suffix(String),
}

/// A validated list request. Every field narrows; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Inclusive 16-byte key range (see [`super::ip_key`]).
    pub client: Option<([u8; 16], [u8; 16])>,
    pub name: Option<NameFilter>,
    pub qtype: Option<String>,
    pub action: Option<String>,
    pub feed: Option<String>,
    pub department: Option<String>,
    /// Inclusive lower bound, ms since the epoch.
    pub since_ms: Option<i64>,
    /// Exclusive upper bound, ms since the epoch.
    pub until_ms: Option<i64>,
    /// Start strictly below this `(time_ms, id)`.
    pub cursor: Option<(i64, i64)>,
    /// Rows per page (the caller caps it).
    pub limit: usize,
}

/// One stored query or hit.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub id: i64,
    pub time_ms: i64,
    pub client: String,
    pub port: u16,
    pub transport: String,
    pub name: String,
    pub qtype: String,
    pub action: String,
    pub feed: Option<String>,
    pub rule: Option<String>,
    pub rcode: String,
    pub answer: String,
    pub latency_us: u32,
    pub upstream: Option<String>,
    pub department: Option<String>,
    /// The identity snapshot taken when the hit was written (hits only).
    pub identity: Option<Identity>,
}

/// One page of a list and the key to continue from.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub rows: Vec<StoredRow>,
    pub next: Option<(i64, i64)>,
}

/// A value and how often it occurred, for "top" tables.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Count {
    pub value: String,
    pub count: i64,
}

/// Aggregates over a time window.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// Query log rows per action.
    pub queries_by_action: Vec<Count>,
    /// Hits per action.
    pub hits_by_action: Vec<Count>,
    pub top_blocked_names: Vec<Count>,
    pub top_clients: Vec<Count>,
    pub top_departments: Vec<Count>,
}

/// What the store knows about one client address.
#[derive(Debug, Clone)]
pub struct ClientSummary {
    pub first_seen_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
    pub hit_count: i64,
    pub recent_hits: Vec<StoredRow>,
}

const COMMON: &str = "id, time_ms, client, port, transport, name, qtype, action, feed, rule, \
                      rcode, answer, latency_us, upstream, department";
const HIT_EXTRA: &str = ", network, asset, mac, kind, location, owner, contact";

fn columns(table: Table) -> String {
    match table {
        Table::Queries => COMMON.to_string(),
        Table::Hits => format!("{COMMON}{HIT_EXTRA}"),
    }
}

fn map_row(row: &Row<'_>, table: Table) -> rusqlite::Result<StoredRow> {
    let department: Option<String> = row.get(14)?;
    let identity = match table {
        Table::Queries => None,
        Table::Hits => Some(Identity {
            network: row.get(15)?,
            asset: row.get(16)?,
            mac: row.get(17)?,
            kind: row.get(18)?,
            location: row.get(19)?,
            department: department.clone(),
            owner: row.get(20)?,
            contact: row.get(21)?,
        }),
    };
    Ok(StoredRow {
        id: row.get(0)?,
        time_ms: row.get(1)?,
        client: row.get(2)?,
        port: row.get(3)?,
        transport: row.get(4)?,
        name: row.get(5)?,
        qtype: row.get(6)?,
        action: row.get(7)?,
        feed: row.get(8)?,
        rule: row.get(9)?,
        rcode: row.get(10)?,
        answer: row.get(11)?,
        latency_us: row.get(12)?,
        upstream: row.get(13)?,
        department,
        identity,
    })
}

/// A range filter matching at least this many rows is "dense" (see [`dense`]).
const DENSE_ROWS: i64 = 10_000;

/// Whether a range condition matches many rows. Dense ranges (a /8, `*.com`) are answered by
/// walking the time index newest-first and filtering, which finds a page almost at once; sparse
/// ones by the filter's own index plus a sort of at most `DENSE_ROWS` rows. Picking wrong costs
/// seconds either way (measured over 10 M rows: a /8 via the client index 1 s, `*.example` via
/// the name index 1.3 s; both < 1 ms via the time index), and SQLite's sampled statistics
/// cannot tell, so one bounded probe (≤ 10 000 index entries) decides.
fn dense(
    conn: &Connection,
    table: Table,
    cond: &str,
    params: &[Value],
) -> Result<bool, StoreError> {
    let sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM {} WHERE {cond} LIMIT {DENSE_ROWS})",
        table.sql_name()
    );
    let n: i64 = conn
        .prepare_cached(&sql)?
        .query_row(rusqlite::params_from_iter(params), |r| r.get(0))?;
    Ok(n >= DENSE_ROWS)
}

/// The client and name conditions that can be ranges, with their parameters.
/// A SQL condition with its bound parameters.
type Cond = (String, Vec<Value>);

fn range_conds(f: &ListFilter) -> (Option<Cond>, Option<Cond>) {
    let client = f.client.as_ref().map(|(lo, hi)| {
        if lo == hi {
            ("client_bin = ?".to_string(), vec![Value::Blob(lo.to_vec())])
        } else {
            (
                "client_bin BETWEEN ? AND ?".to_string(),
                vec![Value::Blob(lo.to_vec()), Value::Blob(hi.to_vec())],
            )
        }
    });
    let name = f.name.as_ref().map(|n| match n {
        NameFilter::Exact(n) => ("rname = ?".to_string(), vec![Value::Text(reverse_name(n))]),
        NameFilter::Suffix(n) => {
            let r = reverse_name(n);
            (
                "(rname = ? OR (rname >= ? AND rname < ?))".to_string(),
                vec![
                    Value::Text(r.clone()),
                    Value::Text(format!("{r}.")),
                    Value::Text(format!("{r}/")),
                ],
            )
        }
    });
    (client, name)
}

/// Builds the WHERE clause (without keyset) for a filter.
fn where_clause(
    conn: &Connection,
    table: Table,
    f: &ListFilter,
    params: &mut Vec<Value>,
) -> Result<String, StoreError> {
    let mut cond: Vec<String> = Vec::new();
    let (client, name) = range_conds(f);
    let ranged = [
        (client, f.client.is_some_and(|(lo, hi)| lo != hi)),
        (name, matches!(f.name, Some(NameFilter::Suffix(_)))),
    ];
    for (c, is_range) in ranged {
        let Some((sql, p)) = c else { continue };
        if is_range && dense(conn, table, &sql, &p)? {
            // Unary `+` keeps SQLite off this column's index: walk time_ms instead.
            cond.push(
                sql.replace("client_bin", "+client_bin")
                    .replace("rname", "+rname"),
            );
        } else {
            cond.push(sql);
        }
        params.extend(p);
    }
    for (col, v) in [
        ("qtype", &f.qtype),
        ("action", &f.action),
        ("feed", &f.feed),
        ("department", &f.department),
    ] {
        if let Some(v) = v {
            cond.push(format!("{col} = ?"));
            params.push(Value::Text(v.clone()));
        }
    }
    if let Some(s) = f.since_ms {
        cond.push("time_ms >= ?".into());
        params.push(Value::Integer(s));
    }
    if let Some(u) = f.until_ms {
        cond.push("time_ms < ?".into());
        params.push(Value::Integer(u));
    }
    Ok(if cond.is_empty() {
        String::from("1")
    } else {
        cond.join(" AND ")
    })
}

/// One page of `table` matching `f`, newest first.
pub fn list(conn: &Connection, table: Table, f: &ListFilter) -> Result<Page, StoreError> {
    if table == Table::Queries {
        return super::blocks::list(conn, f);
    }
    let mut params = Vec::new();
    let mut wh = where_clause(conn, table, f, &mut params)?;
    if let Some((t, id)) = f.cursor {
        // A row value, so SQLite seeks the index to the cursor instead of scanning from the top.
        wh.push_str(" AND (time_ms, id) < (?, ?)");
        params.push(Value::Integer(t));
        params.push(Value::Integer(id));
    }
    let sql = format!(
        "SELECT {} FROM {} WHERE {wh} ORDER BY time_ms DESC, id DESC LIMIT ?",
        columns(table),
        table.sql_name()
    );
    params.push(Value::Integer(f.limit as i64 + 1));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows: Vec<StoredRow> = stmt
        .query_map(rusqlite::params_from_iter(params), |r| map_row(r, table))?
        .collect::<Result<_, _>>()?;
    let next = if rows.len() > f.limit {
        rows.truncate(f.limit);
        rows.last().map(|r| (r.time_ms, r.id))
    } else {
        None
    };
    Ok(Page { rows, next })
}

fn counts(
    conn: &Connection,
    sql: &str,
    since: i64,
    until: i64,
    top: i64,
) -> Result<Vec<Count>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map(rusqlite::params![since, until, top], |r| {
            Ok(Count {
                value: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                count: r.get(1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Totals and top-N tables for `[since, until)`.
pub fn stats(
    conn: &Connection,
    since_ms: i64,
    until_ms: i64,
    top: i64,
) -> Result<Stats, StoreError> {
    let by = |table: &str, col: &str, extra: &str| {
        format!(
            "SELECT {col}, count(*) AS n FROM {table} WHERE time_ms >= ?1 AND time_ms < ?2 {extra} \
             GROUP BY {col} ORDER BY n DESC, {col} LIMIT ?3"
        )
    };
    Ok(Stats {
        queries_by_action: super::blocks::counts_by_action(conn, since_ms, until_ms)?,
        hits_by_action: counts(conn, &by("hits", "action", ""), since_ms, until_ms, 100)?,
        top_blocked_names: counts(conn, &by("hits", "name", ""), since_ms, until_ms, top)?,
        top_clients: counts(conn, &by("hits", "client", ""), since_ms, until_ms, top)?,
        top_departments: counts(
            conn,
            &by("hits", "department", "AND department IS NOT NULL"),
            since_ms,
            until_ms,
            top,
        )?,
    })
}

/// First/last seen, hit count and the most recent hits of one address.
pub fn client_summary(
    conn: &Connection,
    key: [u8; 16],
    recent: usize,
) -> Result<ClientSummary, StoreError> {
    let (mut first, mut last) = super::blocks::seen(conn, key)?;
    let key = key.to_vec();
    {
        let (f, l): (Option<i64>, Option<i64>) = conn.query_row(
            "SELECT (SELECT min(time_ms) FROM hits WHERE client_bin = ?1), \
                    (SELECT max(time_ms) FROM hits WHERE client_bin = ?1)",
            [&key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        first = match (first, f) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last = match (last, l) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    let hit_count: i64 = conn.query_row(
        "SELECT count(*) FROM hits WHERE client_bin = ?1",
        [&key],
        |r| r.get(0),
    )?;
    let filter = ListFilter {
        client: key.as_slice().try_into().ok().map(|k: [u8; 16]| (k, k)),
        limit: recent,
        ..ListFilter::default()
    };
    let recent_hits = list(conn, Table::Hits, &filter)?.rows;
    Ok(ClientSummary {
        first_seen_ms: first,
        last_seen_ms: last,
        hit_count,
        recent_hits,
    })
}
