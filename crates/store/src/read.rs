//! Reads for the API: filtered lists with keyset pagination, stats, one client's summary.
//!
//! Lists are newest first and paginated on the key `(time_ms, id)`: the next page starts
//! strictly below the last row returned, so rows inserted meanwhile never shift a page and no
//! row is skipped or repeated (OFFSET would do both, and get slower with every page).
//!
//! This module reads through `blocks`, never the other way: the types both speak (a list
//! request, a row, a page) live in `rows`, below both.

use rusqlite::Connection;

use super::StoreError;
use super::top::TopCounts;
pub use crate::rows::{Count, ListFilter, NameFilter, Page, StoredRow, Table};

/// Aggregates over a time window.
#[derive(Debug, Clone)]
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

/// One page of `table` matching `f`, newest first. Both logs are stored as blocks
/// (`crate::blocks`); the contract (filters, keyset) is the one the API documents.
pub fn list(conn: &Connection, table: Table, f: &ListFilter) -> Result<Page, StoreError> {
    crate::blocks::list(conn, table, f)
}

/// The `top` largest counts, largest first, ties by value.
fn top_of<K: std::hash::Hash + Eq + ToString>(t: TopCounts<K>, top: i64) -> Vec<Count> {
    let mut v: Vec<Count> = t
        .into_counts()
        .map(|(k, n, ())| Count {
            value: k.to_string(),
            count: i64::try_from(n).unwrap_or(i64::MAX),
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    v.truncate(usize::try_from(top).unwrap_or(0));
    v
}

/// Totals and top-N tables for `[since, until)`. Hit tables decode the window's hit blocks
/// once (tens of nanoseconds a row), exact up to `top::WIDTH` hits in the window and within
/// hits / `WIDTH` beyond; the query log's totals come from its block counts.
pub fn stats(
    conn: &Connection,
    since_ms: i64,
    until_ms: i64,
    top: i64,
) -> Result<Stats, StoreError> {
    // Bounded however many distinct names or addresses a flood wrote (`super::top`).
    let mut names: TopCounts<String> = TopCounts::default();
    let mut clients: TopCounts<std::net::IpAddr> = TopCounts::default();
    let mut departments: TopCounts<String> = TopCounts::default();
    crate::blocks::scan(conn, Table::Hits, since_ms, until_ms, None, |_, e| {
        names.add(e.name, |_| ());
        clients.add(&e.client, |_| ());
        if let Some(d) = e.department {
            departments.add(d, |_| ());
        }
    })?;
    Ok(Stats {
        queries_by_action: crate::blocks::counts_by_action(
            conn,
            Table::Queries,
            since_ms,
            until_ms,
        )?,
        hits_by_action: crate::blocks::counts_by_action(conn, Table::Hits, since_ms, until_ms)?,
        top_blocked_names: top_of(names, top),
        top_clients: top_of(clients, top),
        top_departments: top_of(departments, top),
    })
}

/// First/last seen, hit count and the most recent hits of one address.
pub fn client_summary(
    conn: &Connection,
    key: [u8; 16],
    recent: usize,
) -> Result<ClientSummary, StoreError> {
    let (qf, ql) = crate::blocks::seen(conn, Table::Queries, key)?;
    let (hf, hl) = crate::blocks::seen(conn, Table::Hits, key)?;
    let first = [qf, hf].into_iter().flatten().min();
    let last = [ql, hl].into_iter().flatten().max();
    let hit_count = crate::blocks::client_count(conn, Table::Hits, key, i64::MIN)?;
    let filter = ListFilter {
        client: Some((key, key)),
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
