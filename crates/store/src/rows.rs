//! What the logs hold and how a list asks for it: which log ([`Table`]), a stored row, a list
//! request and its page, a count.
//!
//! Module dependencies go one way: `read` (the API's reads) uses `blocks` (the storage), and
//! both use these types; `blocks` never imports `read`.

use poolguard_clients::Identity;

/// Which log a row belongs to and a list reads: the query log or the hits.
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
/// an inclusive 16-byte key range (see [`crate::ip_key`]) and the `(time_ms, id)` key.
#[derive(Debug, Clone)]
pub struct ListFilter<C = ([u8; 16], [u8; 16]), K = (i64, i64)> {
    pub client: Option<C>,
    pub name: Option<NameFilter>,
    pub qtype: Option<String>,
    pub action: Option<String>,
    pub feed: Option<String>,
    pub department: Option<String>,
    /// Part of the department, anywhere in it, case-insensitive (`phys` finds `Physics`,
    /// `化学` finds `化学学院`).
    pub department_contains: Option<String>,
    /// Hits only here: the ledger asset tag stored with the hit, case-insensitive. (The API
    /// answers these four on the query log through who held which address when.)
    pub asset: Option<String>,
    /// Hits only here (query rows have no identity): the MAC stored with the hit, lower-case
    /// colon form (`00:1a:2b:3c:4d:5e`).
    pub mac: Option<String>,
    /// Hits only: the account stored with the hit, case-insensitive.
    pub account: Option<String>,
    /// Hits only: the ledger owner stored with the hit, case-insensitive.
    pub owner: Option<String>,
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
            department_contains: None,
            asset: None,
            mac: None,
            account: None,
            owner: None,
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
            department_contains: self.department_contains,
            asset: self.asset,
            mac: self.mac,
            account: self.account,
            owner: self.owner,
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            cursor: self.cursor.map(cursor).transpose()?,
            limit: self.limit,
        })
    }
}

pub use poolguard_model::text::{contains_text, same_text};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub value: String,
    pub count: i64,
}
