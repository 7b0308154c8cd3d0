//! Reading the log for the API: one page of rows matching a filter, newest first, and the
//! rows per action in a time window. Blocks are skipped by their counts and Bloom filter
//! before any is decoded.

use std::collections::HashSet;

use rusqlite::{Connection, params};

use super::codec::{self, Block, Entry, OUTCOMES, read_counts};
use super::filter::{Field, may_contain, name_key, value_key};
use super::{DataReader, INDEX_BITS, blob, outcome_named, stored_row};
use crate::rows::{Count, ListFilter, NameFilter, Page, StoredRow, Table};
use crate::{StoreError, ip_key};

/// The filter keys a block must (maybe) hold to have a row matching `f`.
fn probes(f: &ListFilter) -> Vec<u64> {
    let mut keys = Vec::new();
    if let Some((lo, hi)) = f.client
        && lo == hi
    {
        keys.push(value_key(Field::Client, &lo));
    }
    match &f.name {
        Some(NameFilter::Exact(n)) => keys.push(name_key(n)),
        // Single labels (`*.com`) are not in the filters: see `filter::name_keys`.
        Some(NameFilter::Suffix(s)) if s.contains('.') => keys.push(name_key(s)),
        _ => {}
    }
    for (field, v) in [
        (Field::QueryType, &f.qtype),
        (Field::Feed, &f.feed),
        (Field::Department, &f.department),
    ] {
        if let Some(v) = v {
            keys.push(value_key(field, v.as_bytes()));
        }
    }
    keys
}

fn name_matches(filter: &NameFilter, name: &str) -> bool {
    match filter {
        NameFilter::Exact(n) => name == n,
        NameFilter::Suffix(s) => poolguard_model::domain::name_within(name, s),
    }
}

fn row_matches(f: &ListFilter, e: &Entry<'_>, id: i64) -> bool {
    f.since_ms.is_none_or(|s| e.time_ms >= s)
        && f.until_ms.is_none_or(|u| e.time_ms < u)
        && f.cursor.is_none_or(|c| (e.time_ms, id) < c)
        && f.client.is_none_or(|(lo, hi)| {
            let k = ip_key(e.client);
            lo <= k && k <= hi
        })
        && f.name.as_ref().is_none_or(|n| name_matches(n, e.name))
        && f.qtype.as_deref().is_none_or(|t| e.qtype == t)
        && f.action.as_deref().is_none_or(|a| e.outcome.as_str() == a)
        && f.feed.as_deref().is_none_or(|x| e.feed == Some(x))
        && f.department
            .as_deref()
            .is_none_or(|d| e.department == Some(d))
        && f.department_contains.as_deref().is_none_or(|d| {
            e.department
                .is_some_and(|have| crate::rows::contains_text(have, d))
        })
        && identity_matches(f, e)
}

/// The identity filters (hits only): a row without a snapshot matches none of them.
fn identity_matches(f: &ListFilter, e: &Entry<'_>) -> bool {
    if f.mac.is_none() && f.account.is_none() && f.owner.is_none() && f.asset.is_none() {
        return true;
    }
    let Some(s) = e.snapshot else {
        return false;
    };
    let text = |want: &Option<String>, have: Option<&str>| {
        want.as_deref()
            .is_none_or(|w| have.is_some_and(|h| crate::rows::same_text(w, h)))
    };
    f.mac.as_deref().is_none_or(|m| s.mac == Some(m))
        && text(&f.account, s.account)
        && text(&f.owner, s.owner)
        && text(&f.asset, s.asset)
}

/// One page of `table` matching `f`, newest first (the contract of `read::list`).
///
/// Blocks are visited by descending `last_ms`; the walk stops once a full page is found and
/// the next block ends before the oldest row on it. Each block is skipped unless its action
/// counts and Bloom filter allow a match. SQLite steps between blocks, so the store's read
/// time limit interrupts a long walk within one block's decode.
pub fn list(
    conn: &Connection,
    names: Option<&crate::hour_names::HourNames>,
    table: Table,
    f: &ListFilter,
) -> Result<Page, StoreError> {
    let keys = probes(f);
    let action = match f.action.as_deref() {
        Some(a) => match outcome_named(a) {
            Some(i) => Some(i),
            None => return Ok(Page::default()),
        },
        None => None,
    };
    let upper = match (f.until_ms, f.cursor) {
        (Some(u), Some((t, _))) => u.saturating_sub(1).min(t),
        (Some(u), None) => u.saturating_sub(1),
        (None, Some((t, _))) => t,
        (None, None) => i64::MAX,
    };
    let lower = f.since_ms.unwrap_or(i64::MIN);
    let want = f.limit + 1;
    // The best `want` rows so far, newest first.
    let mut page: Vec<StoredRow> = Vec::new();
    let mut walk = Walk {
        table,
        f,
        keys: &keys,
        action,
        want,
        visited: HashSet::new(),
    };
    // One address, or one exact name: only the hours its postings list (`crate::rollup`).
    let ranges = match (f.client, &f.name) {
        (Some((lo, hi)), _) if lo == hi => {
            Some(crate::rollup::client_ranges(conn, table, lo, lower, upper)?)
        }
        (_, Some(NameFilter::Exact(name))) => Some(crate::rollup::name_ranges(
            conn, names, table, name, lower, upper,
        )?),
        _ => None,
    };
    match ranges {
        Some(mut ranges) => {
            while let Some((from, to, last_max)) = ranges.next(conn)? {
                if page.len() == want && page.last().is_some_and(|r| to < r.time_ms) {
                    break;
                }
                walk.range(conn, (from, to), last_max, &mut page)?;
            }
        }
        None => walk.range(conn, (lower, upper), i64::MAX, &mut page)?,
    }
    let next = if page.len() > f.limit {
        page.truncate(f.limit);
        page.last().map(|r| (r.time_ms, r.id))
    } else {
        None
    };
    Ok(Page { rows: page, next })
}

/// Rows of `table` per action in `[since, until)`. Blocks wholly inside the window add their
/// stored counts; only the (at most few) blocks straddling an edge are decoded.
pub fn counts_by_action(
    conn: &Connection,
    table: Table,
    since: i64,
    until: i64,
) -> Result<Vec<Count>, StoreError> {
    let mut totals = [0u64; OUTCOMES.len()];
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT id, first_ms, last_ms, counts FROM {} \
         WHERE last_ms >= ?1 AND first_ms < ?2 AND first_ms >= ?3",
        table.blocks()
    ))?;
    let earliest = super::walk::earliest_start(conn, table, since)?;
    let mut blocks = stmt.query(params![since, until, earliest])?;
    let mut data = DataReader::new(conn, table);
    while let Some(b) = blocks.next()? {
        let (first, last): (i64, i64) = (b.get(1)?, b.get(2)?);
        if first >= since && last < until {
            for (t, c) in totals.iter_mut().zip(read_counts(blob(b, 3)?)?) {
                *t += c;
            }
            continue;
        }
        for row in Block::parse(data.read(b.get(0)?)?)?.entries() {
            let (_, e) = row?;
            if e.time_ms >= since && e.time_ms < until {
                totals[codec::outcome_code(e.outcome) as usize] += 1;
            }
        }
    }
    let mut out: Vec<Count> = OUTCOMES
        .iter()
        .zip(totals)
        .filter(|(_, n)| *n > 0)
        .map(|(o, n)| Count {
            value: o.as_str().to_string(),
            count: i64::try_from(n).unwrap_or(i64::MAX),
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    Ok(out)
}

/// One list request's walk over the blocks of one or more time ranges (newest first).
struct Walk<'f> {
    table: Table,
    f: &'f ListFilter,
    keys: &'f [u64],
    action: Option<usize>,
    want: usize,
    /// Blocks already read: a block straddling two ranges is read once.
    visited: HashSet<i64>,
}

impl Walk<'_> {
    /// Adds the rows of blocks overlapping `[lower, upper]` (ms, inclusive) to `page`; none
    /// of those blocks ends after `last_max` (bounds the walk down the `last_ms` index).
    fn range(
        &mut self,
        conn: &Connection,
        (lower, upper): (i64, i64),
        last_max: i64,
        page: &mut Vec<StoredRow>,
    ) -> Result<(), StoreError> {
        let (f, want) = (self.f, self.want);
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, last_ms, counts, filter FROM {} \
             WHERE last_ms >= ?1 AND first_ms <= ?2 AND last_ms <= ?3 \
             ORDER BY last_ms DESC, id DESC",
            self.table.blocks()
        ))?;
        let mut blocks = stmt.query(params![lower, upper, last_max])?;
        let mut data = DataReader::new(conn, self.table);
        while let Some(b) = blocks.next()? {
            let last_ms: i64 = b.get(1)?;
            if page.len() == want && page.last().is_some_and(|r| last_ms < r.time_ms) {
                break;
            }
            if let Some(i) = self.action
                && read_counts(blob(b, 2)?)?[i] == 0
            {
                continue;
            }
            if !self.keys.is_empty() {
                let filter = blob(b, 3)?;
                if !self.keys.iter().all(|&k| may_contain(filter, k)) {
                    continue;
                }
            }
            let id: i64 = b.get(0)?;
            if !self.visited.insert(id) {
                continue;
            }
            let block = Block::parse(data.read(id)?)?;
            let mut found: Vec<(i64, i64, Entry<'_>)> = Vec::new();
            let mut rows = block.entries();
            // A client or exact-name filter steps over other rows without decoding them.
            let mut next_row = || match (&f.client, &f.name) {
                (Some((lo, hi)), _) => rows.next_within(lo, hi),
                (None, Some(NameFilter::Exact(name))) => rows.next_named(name),
                (None, _) => rows.next(),
            };
            while let Some(row) = next_row() {
                let (index, e) = row?;
                let row_id = (id << INDEX_BITS) | i64::from(index);
                if row_matches(f, &e, row_id) {
                    found.push((e.time_ms, row_id, e));
                }
            }
            found.sort_unstable_by_key(|&(t, id, _)| std::cmp::Reverse((t, id)));
            // Only this block's best `want` can make the page; the merge below keeps the best.
            let floor = (page.len() == want)
                .then(|| page.last().map(|r| (r.time_ms, r.id)))
                .flatten();
            for (time_ms, row_id, e) in found.into_iter().take(want) {
                if floor.is_some_and(|f| (time_ms, row_id) < f) {
                    break;
                }
                page.push(stored_row(row_id, &e));
            }
            page.sort_unstable_by_key(|r| std::cmp::Reverse((r.time_ms, r.id)));
            page.truncate(want);
        }
        Ok(())
    }
}
