//! Rollups: per-hour and per-day aggregates of both logs, so `/stats` over a day or a month
//! reads a few thousand small rows instead of decoding every hit in the window.
//!
//! At 100 M rows (`gen_store`, 7 days) `/stats` for 24 h decoded ~700 k hits: 696 ms
//! (issue 18). A rollup row is `(log, span, bucket, kind, key) → n`: rows of the query log or
//! the hits (`log`), per hour or per day (`span`, `bucket` in hours or days since the epoch),
//! counted by action, and for hits also by blocked name, client, department and feed (`kind`).
//! Names and clients are unbounded (a flood of random subdomains or spoofed sources), so each
//! bucket keeps its [`TOP_K`] largest keys and one row for the rest (`key = ''`).
//!
//! **Sealing.** An hour is rolled up once it is over ([`seal`]): the writer reads that hour's
//! blocks back (block counts for the query log, a decode of the hit blocks) in one short
//! transaction per step between batches (16 blocks at most, within a 10 ms budget), writes its rows and advances `rollup_sealed` (the first hour
//! not rolled up) in the same transaction. The last hour of a day also writes the day's rows,
//! merged from its hours. Rows that arrive for an hour already sealed (hits replayed from the
//! spool, a writer far behind) are added to its rollup in their batch's transaction
//! ([`late`]). So at any moment every row of an hour below `rollup_sealed` is counted in the
//! rollups exactly once, and rows of later hours only in the blocks: a reader takes whole
//! sealed hours (and days) from here and the rest from the blocks ([`window`]). No state lives
//! only in memory, so a crash loses nothing and an upgraded store simply starts behind: the
//! writer seals the old hours a few at a time (a time budget per step) until it has caught up.
//!
//! **Accuracy of the top tables.** Within a bucket, counts are exact up to `top::WIDTH` hits
//! per hour (lossy counting beyond). Over a window of several buckets a key's count is the sum
//! of its kept counts: a key that fell outside some bucket's top [`TOP_K`] loses that bucket's
//! count, at most the bucket's smallest kept count. Keys large enough to rank in the API's top
//! 100 are in nearly every bucket's top 1,000, so the ranking holds; small counts deep in a
//! flat distribution may be low.
//!
//! **Window edges.** A window's partial hours (`since` and `until` mid-hour) are answered per
//! minute: the sealer also writes each minute's hit tables ([`minutes`], the 100 largest keys
//! of each kind), so only the partial minutes at the very edges are decoded from the blocks.
//!
//! **Retention.** Rollup buckets wholly older than a log's cut-off are deleted by the same
//! retention step as its blocks, a few buckets per step ([`prune`]).

mod minutes;
mod postings;
mod read;
mod seal;

use std::collections::HashMap;
use std::net::IpAddr;

use rusqlite::{Connection, OptionalExtension, params};

use crate::StoreError;
use crate::blocks::codec::{Entry, OUTCOMES, outcome_code};
use crate::rows::Table;
use crate::top::TopCounts;

pub use minutes::{MINUTE_K, MINUTE_MS, split as minute_split};
pub(crate) use minutes::{stored as minutes_stored, sums as minute_sums};
pub use postings::{ClientRanges, client_ranges, name_ranges};
pub use read::{Range, Window, by_days, split, window};
pub use seal::{STEP_BUDGET, Sealer, block_span, late, next_due, sealed_hour};

/// Keys kept per bucket and kind (names, clients, departments); the rest share one row.
pub const TOP_K: usize = 1000;

/// An hour, in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// Hours in a day bucket.
pub const DAY_HOURS: i64 = 24;

/// What a rollup row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Rows per action (`Outcome::as_str`), exact, every key kept.
    Action = 0,
    /// Hits per blocked name.
    Name = 1,
    /// Hits per client address.
    Client = 2,
    /// Hits per department (hits of clients the ledger knows).
    Department = 3,
    /// Hits per feed (the list that matched; schema 17): which lists do the blocking, the
    /// question a feed maintainer asks before retiring or trusting one.
    Feed = 4,
}

/// The bucket sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    Hour = 0,
    Day = 1,
}

/// The `log` column's value for `table` in the rollup and upkeep tables.
pub(crate) fn log_of(table: Table) -> i64 {
    match table {
        Table::Queries => 0,
        Table::Hits => 1,
    }
}

/// The aggregate of one bucket as it is built: exact action counts, bounded top tables.
#[derive(Debug, Default)]
pub(crate) struct Agg {
    actions: [u64; OUTCOMES.len()],
    names: TopCounts<String>,
    clients: TopCounts<IpAddr>,
    departments: TopCounts<String>,
    feeds: TopCounts<String>,
    /// Rows counted in `names` / `clients` (every hit), in `departments` and in `feeds`.
    keyed: u64,
    with_department: u64,
    with_feed: u64,
    /// Every client key seen, for the postings (`postings`).
    keys: postings::Keys,
    /// Every name seen ([`postings::name_posting`]), for the name postings.
    names_seen: postings::Keys,
}

impl Agg {
    /// Counts one row of `table`.
    fn add(&mut self, table: Table, e: &Entry<'_>) {
        self.actions[outcome_code(e.outcome) as usize] += 1;
        self.keys.insert(crate::ip_key(e.client));
        self.names_seen.insert(postings::name_posting(e.name));
        if table == Table::Hits {
            self.names.add(e.name, |_| ());
            self.clients.add(&e.client, |_| ());
            self.keyed += 1;
            if let Some(d) = e.department {
                self.departments.add(d, |_| ());
                self.with_department += 1;
            }
            if let Some(f) = e.feed {
                self.feeds.add(f, |_| ());
                self.with_feed += 1;
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.actions.iter().all(|&n| n == 0)
    }

    /// The client keys counted, sorted (postings are written in key order).
    fn take_keys(&mut self) -> Vec<[u8; 16]> {
        sorted(std::mem::take(&mut self.keys))
    }

    /// The name keys counted, sorted.
    fn take_names(&mut self) -> Vec<[u8; 16]> {
        sorted(std::mem::take(&mut self.names_seen))
    }

    /// Adds this aggregate to the rows of `(table, span, bucket)`, top [`TOP_K`] per kind
    /// (not the postings: see [`Agg::take_keys`]).
    fn write(
        self,
        conn: &Connection,
        table: Table,
        span: Span,
        bucket: i64,
    ) -> Result<(), StoreError> {
        let actions: Vec<(String, u64)> = OUTCOMES
            .iter()
            .zip(self.actions)
            .filter(|(_, n)| *n > 0)
            .map(|(o, n)| (o.as_str().to_string(), n))
            .collect();
        let mut rows = RowWriter::new(conn, table, span, bucket)?;
        rows.put(Kind::Action, actions, 0)?;
        let names = self.names.into_counts().map(|(k, n, ())| (k, n)).collect();
        rows.put_top(Kind::Name, names, self.keyed)?;
        let clients = self
            .clients
            .into_counts()
            .map(|(k, n, ())| (k.to_string(), n))
            .collect();
        rows.put_top(Kind::Client, clients, self.keyed)?;
        let departments = self
            .departments
            .into_counts()
            .map(|(k, n, ())| (k, n))
            .collect();
        rows.put_top(Kind::Department, departments, self.with_department)?;
        let feeds = self.feeds.into_counts().map(|(k, n, ())| (k, n)).collect();
        rows.put_top(Kind::Feed, feeds, self.with_feed)?;
        Ok(())
    }
}

fn sorted(keys: postings::Keys) -> Vec<[u8; 16]> {
    let mut keys: Vec<[u8; 16]> = keys.into_iter().collect();
    keys.sort_unstable();
    keys
}

/// Upserts rollup rows of one bucket (adding to rows already there: late rows).
struct RowWriter<'c> {
    stmt: rusqlite::CachedStatement<'c>,
    log: i64,
    span: i64,
    bucket: i64,
}

impl<'c> RowWriter<'c> {
    fn new(
        conn: &'c Connection,
        table: Table,
        span: Span,
        bucket: i64,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            stmt: conn.prepare_cached(
                "INSERT INTO rollups (log, span, kind, bucket, key, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT DO UPDATE SET n = n + excluded.n",
            )?,
            log: log_of(table),
            span: span as i64,
            bucket,
        })
    }

    /// Writes every `(key, n)` and, if `rest > 0`, the rest row.
    fn put(&mut self, kind: Kind, counts: Vec<(String, u64)>, rest: u64) -> Result<(), StoreError> {
        let rows = counts.iter().map(|(k, n)| (k.as_str(), *n));
        for (key, n) in rows.chain((rest > 0).then_some(("", rest))) {
            self.stmt.execute(params![
                self.log,
                self.span,
                kind as i64,
                self.bucket,
                key,
                i64::try_from(n).unwrap_or(i64::MAX)
            ])?;
        }
        Ok(())
    }

    /// Writes the [`TOP_K`] largest of `counts` and the rest of `total` as one row.
    fn put_top(
        &mut self,
        kind: Kind,
        counts: Vec<(String, u64)>,
        total: u64,
    ) -> Result<(), StoreError> {
        let top = top_k(counts);
        let kept: u64 = top.iter().map(|(_, n)| n).sum();
        self.put(kind, top, total.saturating_sub(kept))
    }
}

/// The [`TOP_K`] largest counts, ties by key (stable whatever the hash order).
fn top_k(mut counts: Vec<(String, u64)>) -> Vec<(String, u64)> {
    counts.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts.truncate(TOP_K);
    counts
}

/// Sums of one kind's rows over a set of buckets, by key (`''`: the rest).
fn sums(
    conn: &Connection,
    table: Table,
    span: Span,
    kind: Kind,
    (from, to): (i64, i64),
    mut f: impl FnMut(&str, u64),
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, n FROM rollups WHERE log = ?1 AND span = ?2 AND kind = ?3 \
         AND bucket >= ?4 AND bucket < ?5",
    )?;
    let mut rows = stmt.query(params![log_of(table), span as i64, kind as i64, from, to])?;
    while let Some(r) = rows.next()? {
        let key = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
        let n: i64 = r.get(1)?;
        f(key, u64::try_from(n).unwrap_or(0));
    }
    Ok(())
}

/// The kinds, in the order a day is merged (one per sealing step).
const KINDS: [Kind; 5] = [
    Kind::Action,
    Kind::Name,
    Kind::Client,
    Kind::Department,
    Kind::Feed,
];

/// Merges the hours of `day` into its day rows of `kind` (the top [`TOP_K`], the rest summed).
fn merge_day(conn: &Connection, table: Table, day: i64, kind: Kind) -> Result<(), StoreError> {
    let hours = (day * DAY_HOURS, (day + 1) * DAY_HOURS);
    let mut rows = RowWriter::new(conn, table, Span::Day, day)?;
    {
        let mut by: HashMap<String, u64> = HashMap::new();
        let mut rest = 0u64;
        sums(conn, table, Span::Hour, kind, hours, |k, n| {
            if k.is_empty() {
                rest += n;
            } else {
                crate::top::add_count(&mut by, k, n);
            }
        })?;
        let counts: Vec<(String, u64)> = by.into_iter().collect();
        if kind == Kind::Action {
            rows.put(kind, counts, 0)?;
        } else {
            let total = rest + counts.iter().map(|(_, n)| n).sum::<u64>();
            rows.put_top(kind, counts, total)?;
        }
    }
    Ok(())
}

/// Rollup buckets per span and log deleted by one retention step.
const PRUNE_BUCKETS: i64 = 4;

/// Deletes rollup buckets wholly older than each log's cut-off, a few buckets per call (the
/// retention step's bounded work); returns whether more remain.
pub fn prune(conn: &Connection, q_cut: i64, h_cut: i64) -> Result<bool, StoreError> {
    let mut more = postings::prune(conn, q_cut, h_cut)?;
    more |= minutes::prune(conn, h_cut, PRUNE_BUCKETS)?;
    for (table, cut) in [(Table::Queries, q_cut), (Table::Hits, h_cut)] {
        for (span, size) in [(Span::Hour, HOUR_MS), (Span::Day, HOUR_MS * DAY_HOURS)] {
            // Buckets ending at or before the cut-off.
            let below = cut.div_euclid(size);
            let oldest: Option<i64> = conn
                .prepare_cached(
                    "SELECT min(bucket) FROM rollups WHERE log = ?1 AND span = ?2 AND kind = 0",
                )?
                .query_row(params![log_of(table), span as i64], |r| r.get(0))
                .optional()?
                .flatten();
            let Some(oldest) = oldest.filter(|&b| b < below) else {
                continue;
            };
            let upto = below.min(oldest + PRUNE_BUCKETS);
            more |= upto < below;
            let mut delete = conn.prepare_cached(
                "DELETE FROM rollups WHERE log = ?1 AND span = ?2 AND kind = ?3 AND bucket < ?4",
            )?;
            for kind in KINDS {
                delete.execute(params![log_of(table), span as i64, kind as i64, upto])?;
            }
        }
    }
    Ok(more)
}

/// Feed rollups (schema 17, [`Kind::Feed`]). Hours sealed before have no feed rows and their
/// minute tables no feed table, so the hits are rolled up again from the blocks: their rollup
/// rows, minute tables and postings are deleted and `rollup_sealed` forgets the hits, and the
/// writer seals them from the oldest stored hit as it did the first time (a few blocks per
/// step, in the background). Until it has caught up, `/stats` and hit lookups read those hours
/// from the blocks, as for a store never rolled up: slower, never wrong. One rule for every
/// hour, instead of a `feeds_from` hour before which a 30-day window would decode its hits
/// (seconds at a billion rows) until retention removed them. The query log is untouched.
pub(crate) fn feeds_schema() -> String {
    "DELETE FROM rollups WHERE log = 1;
DELETE FROM hit_minutes;
DELETE FROM client_days WHERE log IN (1, 3);
DELETE FROM rollup_sealed WHERE log = 1;
"
    .to_string()
}

/// Where name postings begin (schema 16, [`postings`]): hours sealed before have none.
pub(crate) fn names_schema() -> String {
    "ALTER TABLE rollup_sealed ADD COLUMN names_from INTEGER;
UPDATE rollup_sealed SET names_from = hour;
"
    .to_string()
}

/// The per-minute hit tables (schema 15, [`minutes`]).
pub(crate) fn minutes_schema() -> String {
    minutes::schema()
}

/// The rollup and postings tables (schema v9); `rollup_sealed` starts empty: the writer begins sealing at
/// the oldest stored hour, so an upgraded store's rollups are built in the background.
pub(crate) fn schema() -> String {
    "CREATE TABLE IF NOT EXISTS rollups (
    log         INTEGER NOT NULL,
    span        INTEGER NOT NULL,
    kind        INTEGER NOT NULL,
    bucket      INTEGER NOT NULL,
    key         TEXT    NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (log, span, kind, bucket, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS client_days (
    log         INTEGER NOT NULL,
    day         INTEGER NOT NULL,
    key         BLOB    NOT NULL,
    hours       INTEGER NOT NULL,
    PRIMARY KEY (log, day, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_sealed (
    log         INTEGER PRIMARY KEY,
    hour        INTEGER NOT NULL,
    span_ms     INTEGER NOT NULL DEFAULT 0);
"
    .to_string()
}

#[cfg(test)]
mod tests;
