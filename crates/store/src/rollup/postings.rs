//! Postings: which hours hold rows of a client, so a client's lookup walks only those hours'
//! blocks, and an address that never queried is answered from here alone.
//!
//! At 100 M rows `/queries?client=<absent>` read the Bloom filter of every block of the week
//! (406 ms, issue 18). `client_days` holds one row per (log, day, client key) with a 24-bit
//! mask of the hours that client has rows in; it is written when an hour is sealed (the seal
//! decodes the hour's blocks anyway, `super::seal`) and by late rows, in their transactions.
//! Day first in the key: a lookup is one seek per day of its window, and retention deletes a
//! day as one key range. About 30 bytes per client and day, whatever the rows per day.
//!
//! **Names** have postings in the same table under their own `log` values ([`names_log`]),
//! keyed by the name's filter hash ([`name_posting`]): an exact-name lookup walks only the
//! hours the name was asked in, and a name nobody asked for is answered from here. At 100 M
//! rows `/queries?name=<absent>` read the filter of every block of the week (105 ms; 1.3 s at
//! 300 M, issue 18). A hash collision only makes a lookup walk an hour it need not. Hours
//! sealed before schema 16 have none (`rollup_sealed.names_from`): they are walked whole.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};

use super::{DAY_HOURS, HOUR_MS, log_of, sealed_hour};
use crate::StoreError;
use crate::blocks::filter::name_key;
use crate::rows::Table;

/// The client keys (`crate::ip_key`) seen in one hour.
pub(crate) type Keys = HashSet<[u8; 16], foldhash::fast::FixedState>;

/// Postings rows upserted per sealing step (~1.5 µs each), and deleted per retention step:
/// an hour of a campus's 30,000 clients is written over several steps.
pub(super) const POSTINGS_STEP: usize = 4096;

/// The `log` value of `table`'s name postings (client postings use `log_of`).
pub(crate) fn names_log(table: Table) -> i64 {
    log_of(table) + 2
}

/// A name's postings key: its filter hash, widened to the client keys' 16 bytes.
pub(crate) fn name_posting(name: &str) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&name_key(name).to_le_bytes());
    key
}

/// Marks `hour` in the postings (`log`: clients' or names') of every key in `keys` (sorted: in
/// key order the upserts walk the day's b-tree range once instead of jumping around).
pub(crate) fn add(
    conn: &Connection,
    log: i64,
    hour: i64,
    keys: &[[u8; 16]],
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO client_days (log, day, key, hours) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT DO UPDATE SET hours = hours | excluded.hours",
    )?;
    let (day, bit) = (
        hour.div_euclid(DAY_HOURS),
        1i64 << hour.rem_euclid(DAY_HOURS),
    );
    for key in keys {
        stmt.execute(params![log, day, &key[..], bit])?;
    }
    Ok(())
}

/// Where to look for rows of one client: time ranges, newest first, produced on demand, each
/// with the latest `last_ms` a block overlapping it can have.
#[derive(Debug)]
pub struct ClientRanges {
    log: i64,
    key: [u8; 16],
    lower: i64,
    /// The last sealed millisecond the request covers.
    upper: i64,
    /// The next day to consult, counting down.
    day: i64,
    /// Inclusive ranges ready to hand out, newest first.
    ready: Vec<(i64, i64)>,
    /// The unsealed ranges, handed out first, newest first (from the end; the newest is
    /// unbounded above unless the unsealed hours' names narrowed them to hours).
    unsealed: Vec<(i64, i64)>,
    /// The sealed range without postings (hours sealed before names had them), handed out
    /// last.
    unposted: Option<(i64, i64)>,
    /// [`super::block_span`].
    span_ms: i64,
}

/// The ranges of `[lower, upper]` (inclusive, ms) that may hold rows of client `key` in
/// `table`: hours not sealed yet, and sealed hours the postings list for the key.
pub fn client_ranges(
    conn: &Connection,
    table: Table,
    key: [u8; 16],
    lower: i64,
    upper: i64,
) -> Result<ClientRanges, StoreError> {
    ranges(
        conn,
        table,
        log_of(table),
        key,
        (lower, upper),
        i64::MIN,
        |_| Ok(None),
    )
}

/// As [`client_ranges`], for the rows of one exact name; with `names`, only the unsealed
/// hours it holds the name in (`crate::hour_names`).
pub fn name_ranges(
    conn: &Connection,
    names: Option<&crate::hour_names::HourNames>,
    table: Table,
    name: &str,
    lower: i64,
    upper: i64,
) -> Result<ClientRanges, StoreError> {
    let from: Option<i64> = conn
        .prepare_cached("SELECT names_from FROM rollup_sealed WHERE log = ?1")?
        .query_row([log_of(table)], |r| r.get(0))
        .optional()?
        .flatten();
    let posted_from = from.map_or(i64::MAX, |h| h.saturating_mul(HOUR_MS));
    let key = name_posting(name);
    ranges(
        conn,
        table,
        names_log(table),
        key,
        (lower, upper),
        posted_from,
        |sealed| match names {
            Some(n) => n.hours_with(conn, table, name, sealed),
            None => Ok(None),
        },
    )
}

/// The ranges of `[lower, upper]` that may hold rows of `key` in postings `log` of `table`,
/// postings kept from `posted_from` (ms) on; `unsealed_hours(first unsealed hour)` may name
/// the only unsealed hours that can hold the key.
fn ranges(
    conn: &Connection,
    table: Table,
    log: i64,
    key: [u8; 16],
    (lower, upper): (i64, i64),
    posted_from: i64,
    unsealed_hours: impl FnOnce(i64) -> Result<Option<Vec<i64>>, StoreError>,
) -> Result<ClientRanges, StoreError> {
    let sealed = sealed_hour(conn, table)?;
    let sealed_ms = match sealed {
        Some(h) => h.saturating_mul(HOUR_MS),
        // No postings yet (a store being upgraded): walk everything.
        None => i64::MIN,
    };
    let mut unsealed = Vec::new();
    if upper >= sealed_ms && upper >= lower {
        let whole = (lower.max(sealed_ms), upper);
        match sealed.map(unsealed_hours).transpose()?.flatten() {
            // Oldest first, so newest is popped first.
            Some(hours) => unsealed.extend(hours.into_iter().filter_map(|h| {
                let from = h.saturating_mul(HOUR_MS).max(whole.0);
                let to = (h.saturating_add(1).saturating_mul(HOUR_MS) - 1).min(whole.1);
                (from <= to).then_some((from, to))
            })),
            None => unsealed.push(whole),
        }
    }
    let last_sealed = upper.min(sealed_ms.saturating_sub(1));
    // Sealed hours before the postings began: walked whole, oldest, last.
    let unposted_to = last_sealed.min(posted_from.saturating_sub(1));
    let unposted = (sealed_ms != i64::MIN && unposted_to >= lower).then_some((lower, unposted_to));
    let lower = lower.max(posted_from);
    // Without a lower bound the walk down the days stops at the oldest day with postings.
    let oldest_day: Option<i64> = conn
        .prepare_cached("SELECT min(day) FROM client_days WHERE log = ?1")?
        .query_row([log], |r| r.get(0))?;
    let lower = lower.max(oldest_day.map_or(i64::MAX, |d| d * HOUR_MS * DAY_HOURS));
    Ok(ClientRanges {
        log,
        key,
        lower,
        upper: last_sealed,
        day: if sealed_ms == i64::MIN || last_sealed < lower {
            i64::MIN
        } else {
            last_sealed.div_euclid(HOUR_MS * DAY_HOURS)
        },
        ready: Vec::new(),
        unsealed,
        unposted,
        span_ms: super::block_span(conn, table)?.unwrap_or(i64::MAX),
    })
}

impl ClientRanges {
    /// The next range `(from, to, last_ms_max)`, newest first; `None` when no more may hold
    /// the client.
    pub fn next(&mut self, conn: &Connection) -> Result<Option<(i64, i64, i64)>, StoreError> {
        if let Some((from, to)) = self.unsealed.pop() {
            return Ok(Some((from, to, i64::MAX)));
        }
        while self.ready.is_empty() {
            if self.day == i64::MIN || (self.day + 1) * HOUR_MS * DAY_HOURS <= self.lower {
                return Ok(self
                    .unposted
                    .take()
                    .map(|(from, to)| (from, to, to.saturating_add(self.span_ms))));
            }
            let hours: Option<i64> = conn
                .prepare_cached(
                    "SELECT hours FROM client_days WHERE log = ?1 AND day = ?2 AND key = ?3",
                )?
                .query_row(params![self.log, self.day, &self.key[..]], |r| r.get(0))
                .optional()?;
            let day_start = self.day * DAY_HOURS;
            for h in (0..DAY_HOURS).rev() {
                if hours.is_some_and(|m| m & (1 << h) != 0) {
                    let from = ((day_start + h) * HOUR_MS).max(self.lower);
                    let to = ((day_start + h + 1) * HOUR_MS - 1).min(self.upper);
                    match self.ready.last_mut() {
                        // Adjacent hours make one range: one walk instead of two.
                        Some(r) if r.0 == to + 1 => r.0 = from,
                        _ if from <= to => self.ready.push((from, to)),
                        _ => {}
                    }
                }
            }
            self.ready.reverse();
            self.day -= 1;
        }
        Ok(self
            .ready
            .pop()
            .map(|(from, to)| (from, to, to.saturating_add(self.span_ms))))
    }
}

/// Deletes the postings of days wholly older than each cut-off, one day per log and call;
/// returns whether more remain.
pub(crate) fn prune(conn: &Connection, q_cut: i64, h_cut: i64) -> Result<bool, StoreError> {
    let mut more = false;
    for (table, cut) in [(Table::Queries, q_cut), (Table::Hits, h_cut)] {
        more |= prune_log(conn, log_of(table), cut)?;
        more |= prune_log(conn, names_log(table), cut)?;
    }
    Ok(more)
}

/// [`prune`] of one postings log: up to [`POSTINGS_STEP`] rows of its oldest day past the
/// cut-off, so a step's work is bounded like every other retention delete: a whole day at once
/// was one statement of ~50,000 name rows at a billion rows a week.
fn prune_log(conn: &Connection, log: i64, cut: i64) -> Result<bool, StoreError> {
    let below = cut.div_euclid(HOUR_MS * DAY_HOURS);
    let oldest: Option<i64> = conn
        .prepare_cached("SELECT min(day) FROM client_days WHERE log = ?1")?
        .query_row([log], |r| r.get(0))?;
    let Some(oldest) = oldest.filter(|&d| d < below) else {
        return Ok(false);
    };
    let deleted = conn
        .prepare_cached(
            "DELETE FROM client_days WHERE log = ?1 AND day = ?2 AND key IN \
             (SELECT key FROM client_days WHERE log = ?1 AND day = ?2 LIMIT ?3)",
        )?
        .execute(params![log, oldest, POSTINGS_STEP as i64])?;
    Ok(deleted == POSTINGS_STEP || oldest + 1 < below)
}
