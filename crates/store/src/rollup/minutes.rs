//! Per-minute hit tables, so `/stats` takes the partial hours at a window's edges from a few
//! small rows instead of decoding them.
//!
//! Why: `since` and `until` fall anywhere in an hour. Whole hours come from the rollups, but
//! the partial hour at each edge was decoded from the hit blocks: up to an hour of hits, so the
//! cost grew with the hits per hour (`/stats` from mid-hour 1.7× slower at 100 M rows than at
//! 10 M, issue 18; ten times the hits again at a billion rows a week). Here each sealed minute
//! with hits has one row: its hits by blocked name, client, department and feed, the
//! [`MINUTE_K`] largest of each (the API's largest `top`). A window's edges read at most 2 × 59 of these rows
//! and decode at most two partial minutes.
//!
//! The rows follow the rollups' rules (`super`): written when the hour is sealed, from the same
//! decode; late hits added in their batch's transaction; deleted by retention with the hour
//! buckets. Hours sealed before this table existed (`rollup_sealed.minutes_from`, schema 15)
//! have no rows: their edges are decoded from the blocks, as before.
//!
//! Accuracy: a minute's kept counts are exact (below `top::WIDTH` hits a minute); a key outside
//! a minute's [`MINUTE_K`] loses that minute's count, as a key outside an hour's `TOP_K` does.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension, params};

use super::{HOUR_MS, Range};
use crate::StoreError;
use crate::blocks::codec::{BlockError, Reader, put_str, put_varint};
use crate::hour_tops::{Sums, Tops};

/// A minute, in milliseconds.
pub const MINUTE_MS: i64 = 60_000;

/// Keys kept per minute and kind: the largest `top` the API serves, so an edge minute with
/// fewer keys than that is exact for every request.
pub const MINUTE_K: usize = 100;

/// Minutes per hour.
const MINUTES: i64 = HOUR_MS / MINUTE_MS;

/// The format version, the first byte of each row. Version 1 (schema 15) had no feed table;
/// schema 17 deleted its rows and the hits are sealed again (`crate::schema`'s v17), so only
/// this version is ever read.
const VERSION: u8 = 2;

/// Tables per row: names, clients, departments, feeds.
const TABLES: usize = 4;

/// Hit tables by minute (minutes since the epoch), as the sealer and late rows count them.
pub(crate) type Minutes = BTreeMap<i64, Tops>;

/// One minute's kept counts: names, clients (as text, the rollups' key), departments, feeds.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tables([Vec<(String, u64)>; TABLES]);

impl Tables {
    fn of(t: &Tops) -> Self {
        Self([
            t.names.counts().map(|(k, n)| (k.clone(), n)).collect(),
            t.clients
                .counts()
                .map(|(k, n)| (k.to_string(), n))
                .collect(),
            t.departments
                .counts()
                .map(|(k, n)| (k.clone(), n))
                .collect(),
            t.feeds.counts().map(|(k, n)| (k.clone(), n)).collect(),
        ])
    }

    /// Adds `other`'s counts key by key.
    fn merge(&mut self, other: Tables) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            let mut by: HashMap<String, u64> = std::mem::take(mine).into_iter().collect();
            for (k, n) in theirs {
                *by.entry(k).or_default() += n;
            }
            *mine = by.into_iter().collect();
        }
    }

    /// Keeps the [`MINUTE_K`] largest of each kind, ties by key (stable whatever the order).
    fn truncate(&mut self) {
        for t in &mut self.0 {
            t.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            t.truncate(MINUTE_K);
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        for t in &self.0 {
            put_varint(&mut out, t.len() as u64);
            for (k, n) in t {
                put_str(&mut out, k);
                put_varint(&mut out, *n);
            }
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, BlockError> {
        let mut t = Tables::default();
        each(bytes, |kind, k, n| t.0[kind].push((k.to_string(), n)))?;
        Ok(t)
    }
}

/// Calls `f(kind, key, n)` for every count in a stored row (kind 0 names, 1 clients,
/// 2 departments, 3 feeds).
fn each<'a>(bytes: &'a [u8], mut f: impl FnMut(usize, &'a str, u64)) -> Result<(), BlockError> {
    let mut r = Reader(bytes);
    if r.byte()? != VERSION {
        return Err(BlockError::Corrupt("minute tables version"));
    }
    for kind in 0..TABLES {
        let len = r.varint()?;
        for _ in 0..len {
            let k = r.str()?;
            f(kind, k, r.varint()?);
        }
    }
    if !r.0.is_empty() {
        return Err(BlockError::Corrupt("minute tables trailing bytes"));
    }
    Ok(())
}

/// Adds `minutes` to the stored rows, inside the caller's transaction: the sealer writing an
/// hour's minutes, the writer adding late hits to minutes already sealed.
pub(crate) fn add(conn: &Connection, minutes: &Minutes) -> Result<(), StoreError> {
    for (&minute, tops) in minutes {
        let mut t = Tables::of(tops);
        let old: Option<Vec<u8>> = conn
            .prepare_cached("SELECT tops FROM hit_minutes WHERE minute = ?1")?
            .query_row([minute], |r| r.get(0))
            .optional()?;
        if let Some(old) = old {
            t.merge(Tables::decode(&old)?);
        }
        t.truncate();
        conn.prepare_cached("INSERT OR REPLACE INTO hit_minutes (minute, tops) VALUES (?1, ?2)")?
            .execute(params![minute, t.encode()])?;
    }
    Ok(())
}

/// Adds the kept counts of the minutes `[from, to)` to a request's tables.
pub(crate) fn sums(
    conn: &Connection,
    (from, to): Range,
    sums: &mut Sums,
) -> Result<(), StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT tops FROM hit_minutes WHERE minute >= ?1 AND minute < ?2")?;
    let mut rows = stmt.query(params![from, to])?;
    while let Some(row) = rows.next()? {
        let bytes = crate::blocks::blob(row, 0)?;
        each(bytes, |kind, k, n| {
            let by = match kind {
                0 => &mut sums.names,
                1 => &mut sums.clients,
                2 => &mut sums.departments,
                _ => &mut sums.feeds,
            };
            crate::top::add_count(by, k, n);
        })?;
    }
    Ok(())
}

/// Deletes the minutes of `hour` (a seal stopped midway starts over).
pub(crate) fn forget(conn: &Connection, hour: i64) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM hit_minutes WHERE minute >= ?1 AND minute < ?2")?
        .execute(params![hour * MINUTES, (hour + 1) * MINUTES])?;
    Ok(())
}

/// Deletes minutes of the hours wholly older than `cut_ms`, at most `hours` hours of them
/// (retention's bounded step); returns whether more remain.
pub(crate) fn prune(conn: &Connection, cut_ms: i64, hours: i64) -> Result<bool, StoreError> {
    let below = cut_ms.div_euclid(HOUR_MS) * MINUTES;
    let oldest: Option<i64> = conn
        .prepare_cached("SELECT min(minute) FROM hit_minutes")?
        .query_row([], |r| r.get(0))?;
    let Some(oldest) = oldest.filter(|&m| m < below) else {
        return Ok(false);
    };
    let upto = below.min(oldest + hours * MINUTES);
    conn.prepare_cached("DELETE FROM hit_minutes WHERE minute < ?1")?
        .execute([upto])?;
    Ok(upto < below)
}

/// The milliseconds `[from, to)` whose minutes are all stored: the sealed hours from the first
/// sealed with minute tables on; `None` before.
pub(crate) fn stored(conn: &Connection) -> Result<Option<Range>, StoreError> {
    let row: Option<(Option<i64>, i64)> = conn
        .prepare_cached("SELECT minutes_from, hour FROM rollup_sealed WHERE log = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(from, to)| {
        from.map(|f| (f.saturating_mul(HOUR_MS), to.saturating_mul(HOUR_MS)))
    }))
}

/// Splits the millisecond range `[since, until)` into its whole minutes inside `stored`
/// (milliseconds, see [`stored`]) and the millisecond ranges left over, to read from the
/// blocks.
pub fn split(since: i64, until: i64, stored: Range) -> (Option<Range>, Vec<Range>) {
    super::read::whole_units(since, until, MINUTE_MS, stored)
}

/// The table (schema 15). `minutes_from` is the first hour sealed with minute tables: the
/// hour under way when a store is upgraded (hours before it are decoded as before), the first
/// hour sealed for a new store ([`super::seal`]'s start).
pub(crate) fn schema() -> String {
    "CREATE TABLE IF NOT EXISTS hit_minutes (
    minute      INTEGER PRIMARY KEY,
    tops        BLOB    NOT NULL);
ALTER TABLE rollup_sealed ADD COLUMN minutes_from INTEGER;
UPDATE rollup_sealed SET minutes_from = hour WHERE log = 1;
"
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(n: usize) -> Tables {
        let t: Vec<(String, u64)> = (0..n).map(|i| (format!("k{i}"), i as u64 + 1)).collect();
        Tables([t.clone(), t.clone(), t.clone(), t])
    }

    #[test]
    fn a_minute_round_trips_and_keeps_its_largest_keys() {
        let mut t = tables(250);
        t.truncate();
        assert_eq!(t.0[0].len(), MINUTE_K);
        assert_eq!(t.0[0][0], ("k249".to_string(), 250));
        assert_eq!(t.0[1][MINUTE_K - 1], ("k150".to_string(), 151));
        assert_eq!(Tables::decode(&t.encode()).expect("decodes"), t);
    }

    #[test]
    fn merging_adds_key_by_key() {
        let mut a = tables(3);
        a.merge(tables(2));
        a.truncate();
        assert_eq!(
            a.0[2],
            [("k1", 4), ("k2", 3), ("k0", 2)].map(|(k, n)| (k.to_string(), n))
        );
    }

    #[test]
    fn every_truncation_and_wrong_version_is_an_error() {
        let bytes = tables(5).encode();
        for cut in 0..bytes.len() {
            assert!(Tables::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Tables::decode(&longer).is_err());
        let mut other = bytes;
        other[0] = 1;
        assert!(Tables::decode(&other).is_err());
    }

    #[test]
    fn split_takes_the_whole_stored_minutes() {
        let m = MINUTE_MS;
        let stored = (60 * m, 180 * m);
        // Mid-minute to mid-minute inside the stored hours.
        assert_eq!(
            split(70 * m + 5, 100 * m + 7, stored),
            (
                Some((71, 100)),
                vec![(70 * m + 5, 71 * m), (100 * m, 100 * m + 7)]
            )
        );
        // Running past the stored hours: the rest from the blocks.
        assert_eq!(
            split(170 * m, 200 * m, stored),
            (Some((170, 180)), vec![(180 * m, 200 * m)])
        );
        // Before them: nothing from the minutes.
        assert_eq!(split(0, 30 * m, stored), (None, vec![(0, 30 * m)]));
        // Within one minute.
        assert_eq!(
            split(70 * m + 1, 70 * m + 9, stored),
            (None, vec![(70 * m + 1, 70 * m + 9)])
        );
    }
}
