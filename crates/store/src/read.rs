//! Reads for the API: filtered lists with keyset pagination, stats, one client's summary.
//!
//! Lists are newest first and paginated on the key `(time_ms, id)`: the next page starts
//! strictly below the last row returned, so rows inserted meanwhile never shift a page and no
//! row is skipped or repeated (OFFSET would do both, and get slower with every page).
//!
//! This module reads through `blocks`, never the other way: the types both speak (a list
//! request, a row, a page) live in `rows`, below both.

use std::collections::HashMap;

use rusqlite::Connection;

use super::StoreError;
use crate::hour_names::HourNames;
use crate::hour_tops::{HourTops, Sums, Tops};
use crate::rollup;
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
    /// Hits per feed (the list that matched), largest first: which lists do the blocking.
    pub top_feeds: Vec<Count>,
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
    list_with(conn, None, table, f)
}

/// [`list`], with the unsealed hours' names (`crate::hour_names`) that let an exact-name
/// lookup skip those hours: the store's readers share one.
pub fn list_with(
    conn: &Connection,
    names: Option<&HourNames>,
    table: Table,
    f: &ListFilter,
) -> Result<Page, StoreError> {
    crate::blocks::list(conn, names, table, f)
}

/// The `top` largest counts, largest first, ties by value.
fn ranked(counts: HashMap<String, u64>, top: i64) -> Vec<Count> {
    let mut v: Vec<Count> = counts
        .into_iter()
        .map(|(value, n)| Count {
            value,
            count: i64::try_from(n).unwrap_or(i64::MAX),
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    v.truncate(usize::try_from(top).unwrap_or(0));
    v
}

/// Rows per action of `table` in `[since, until)`: whole sealed hours from the rollups, the
/// edges from the blocks' counts.
fn by_action(
    conn: &Connection,
    table: Table,
    w: &rollup::Window,
) -> Result<Vec<Count>, StoreError> {
    let mut by = w.counts(conn, rollup::Kind::Action)?;
    for &(since, until) in &w.edges {
        for c in crate::blocks::counts_by_action(conn, table, since, until)? {
            *by.entry(c.value).or_default() += u64::try_from(c.count).unwrap_or(0);
        }
    }
    Ok(ranked(by, i64::MAX))
}

/// Totals and top-N tables for `[since, until)`. Whole hours already rolled up come from the
/// rollups (`crate::rollup`: a few thousand rows a day, top tables kept to the 1,000 largest
/// keys per bucket); the partial hours at the edges and the hours not rolled up yet come
/// from the blocks' counts (totals), and the top tables from the rolled-up hours' minute
/// tables (`rollup::minutes`, at most 59 rows an edge) and one decode of the hit blocks
/// left (the partial minutes, the hours not sealed: exact up to `top::WIDTH` hits, within
/// hits / `WIDTH` beyond).
pub fn stats(
    conn: &Connection,
    since_ms: i64,
    until_ms: i64,
    top: i64,
) -> Result<Stats, StoreError> {
    stats_with(conn, None, since_ms, until_ms, top)
}

/// [`stats`], with the hour under way's hit tables from `hour` when a window covers that
/// hour from its start (`crate::hour_tops`): the store's readers share one.
pub fn stats_with(
    conn: &Connection,
    hour: Option<&HourTops>,
    since_ms: i64,
    until_ms: i64,
    top: i64,
) -> Result<Stats, StoreError> {
    // One snapshot: the writer seals hours meanwhile, and each part of the window must be
    // read from the rollups or from the blocks, never both.
    let conn = &*conn.unchecked_transaction()?;
    let queries = rollup::window(conn, Table::Queries, since_ms, until_ms)?;
    let hits = rollup::window(conn, Table::Hits, since_ms, until_ms)?;
    let mut sums = Sums {
        names: hits.counts(conn, rollup::Kind::Name)?,
        clients: hits.counts(conn, rollup::Kind::Client)?,
        departments: hits.counts(conn, rollup::Kind::Department)?,
        feeds: hits.counts(conn, rollup::Kind::Feed)?,
    };
    let minutes = rollup::minutes_stored(conn)?;
    for &edge in &hits.edges {
        // The edge's whole minutes in sealed hours from the minute tables, the rest below.
        let (whole, rest) = match minutes {
            Some(stored) => rollup::minute_split(edge.0, edge.1, stored),
            None => (None, vec![edge]),
        };
        if let Some(m) = whole {
            rollup::minute_sums(conn, m, &mut sums)?;
        }
        for (since, mut until) in rest {
            // The part's last hour, when the part covers it from its start: from the cache.
            let last_hour = (until - 1).div_euclid(rollup::HOUR_MS) * rollup::HOUR_MS;
            if let Some(cache) = hour
                && since <= last_hour
                && cache.with_hour(conn, last_hour, until, |parts| {
                    for t in parts {
                        t.add_to(&mut sums);
                    }
                })?
            {
                until = last_hour;
            }
            if since >= until {
                continue;
            }
            // Bounded however many distinct names or addresses a flood wrote (`super::top`).
            let mut tops = Tops::default();
            crate::blocks::scan(conn, Table::Hits, since, until, None, |_, e| tops.add(e))?;
            tops.add_to(&mut sums);
        }
    }
    Ok(Stats {
        queries_by_action: by_action(conn, Table::Queries, &queries)?,
        hits_by_action: by_action(conn, Table::Hits, &hits)?,
        top_blocked_names: ranked(sums.names, top),
        top_clients: ranked(sums.clients, top),
        top_departments: ranked(sums.departments, top),
        top_feeds: ranked(sums.feeds, top),
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
