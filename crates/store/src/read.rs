//! Reads for the API: filtered lists with keyset pagination, stats, one client's summary.
//!
//! Lists are newest first and paginated on the key `(time_ms, id)`: the next page starts
//! strictly below the last row returned, so rows inserted meanwhile never shift a page and no
//! row is skipped or repeated (OFFSET would do both, and get slower with every page).

use rusqlite::Connection;

use super::StoreError;
use super::top::TopCounts;
use poolguard_clients::Identity;

/// Which table a list reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// The full query log (short retention).
    Queries,
    /// Blocked queries with their identity snapshot (long retention, evidence).
    Hits,
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
///
/// `C` is how the client is given and `K` where the page starts. Callers of the traits use
/// [`crate::EvidenceFilter`] (a network and an opaque cursor); SQLite lists with the defaults:
/// an inclusive 16-byte key range (see [`super::ip_key`]) and the `(time_ms, id)` key.
#[derive(Debug, Clone)]
pub struct ListFilter<C = ([u8; 16], [u8; 16]), K = (i64, i64)> {
    pub client: Option<C>,
    pub name: Option<NameFilter>,
    pub qtype: Option<String>,
    pub action: Option<String>,
    pub feed: Option<String>,
    pub department: Option<String>,
    /// Inclusive lower bound, ms since the epoch.
    pub since_ms: Option<i64>,
    /// Exclusive upper bound, ms since the epoch.
    pub until_ms: Option<i64>,
    /// Start strictly below this.
    pub cursor: Option<K>,
    /// Rows per page (the caller caps it).
    pub limit: usize,
}

impl<C, K> Default for ListFilter<C, K> {
    fn default() -> Self {
        Self {
            client: None,
            name: None,
            qtype: None,
            action: None,
            feed: None,
            department: None,
            since_ms: None,
            until_ms: None,
            cursor: None,
            limit: 0,
        }
    }
}

impl<C, K> ListFilter<C, K> {
    /// The same request with its client and cursor in another backend's terms.
    pub fn convert<C2, K2, E>(
        self,
        client: impl FnOnce(C) -> C2,
        cursor: impl FnOnce(K) -> Result<K2, E>,
    ) -> Result<ListFilter<C2, K2>, E> {
        Ok(ListFilter {
            client: self.client.map(client),
            name: self.name,
            qtype: self.qtype,
            action: self.action,
            feed: self.feed,
            department: self.department,
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            cursor: self.cursor.map(cursor).transpose()?,
            limit: self.limit,
        })
    }
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

/// One page of `table` matching `f`, newest first. Both logs are stored as blocks
/// (`super::blocks`); the contract (filters, keyset) is the one the API documents.
pub fn list(conn: &Connection, table: Table, f: &ListFilter) -> Result<Page, StoreError> {
    super::blocks::list(conn, table, f)
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
    super::blocks::scan(conn, Table::Hits, since_ms, until_ms, None, |_, e| {
        names.add(e.name, |_| ());
        clients.add(&e.client, |_| ());
        if let Some(d) = e.department {
            departments.add(d, |_| ());
        }
    })?;
    Ok(Stats {
        queries_by_action: super::blocks::counts_by_action(
            conn,
            Table::Queries,
            since_ms,
            until_ms,
        )?,
        hits_by_action: super::blocks::counts_by_action(conn, Table::Hits, since_ms, until_ms)?,
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
    let (qf, ql) = super::blocks::seen(conn, Table::Queries, key)?;
    let (hf, hl) = super::blocks::seen(conn, Table::Hits, key)?;
    let first = [qf, hf].into_iter().flatten().min();
    let last = [ql, hl].into_iter().flatten().max();
    let hit_count = super::blocks::client_count(conn, Table::Hits, key, i64::MIN)?;
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
