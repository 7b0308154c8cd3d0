//! Sealing: rolling up hours that are over, and adding late rows to hours already sealed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};

use super::minutes::{self, MINUTE_MS, Minutes};
use super::postings::{POSTINGS_STEP, names_log};
use super::{Agg, DAY_HOURS, HOUR_MS, Span, log_of, merge_day};
use crate::StoreError;
use crate::blocks::DataReader;
use crate::blocks::codec::{Block, Sealed};
use crate::rows::Table;

/// An hour is sealed this long after it ends: rows of its last batches are still on their way
/// to the writer (a flush interval, a queue). Anything later is a late row ([`late`]).
const GRACE_MS: i64 = 60_000;

/// When the hour under way at `now_ms` may be sealed.
pub fn next_due(now_ms: i64) -> i64 {
    ((now_ms - GRACE_MS).div_euclid(HOUR_MS) + 1) * HOUR_MS + GRACE_MS
}

/// The first hour of `table` not rolled up yet; `None` before the first seal.
pub fn sealed_hour(conn: &Connection, table: Table) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT hour FROM rollup_sealed WHERE log = ?1")?
        .query_row([log_of(table)], |r| r.get(0))
        .optional()?)
}

/// Moves `table`'s first unsealed hour to `hour`.
fn set_sealed(conn: &Connection, table: Table, hour: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE rollup_sealed SET hour = ?2 WHERE log = ?1")?
        .execute(params![log_of(table), hour])?;
    Ok(())
}

/// The longest time span (`last_ms - first_ms`) of any block of `table`, once the rollups
/// have started (`None` before): the first seal measures every block stored, every block
/// written after is measured as it is written ([`late`]), and a merged block spans at most
/// an hour (`blocks::compact::MAX_SPAN_MS`). Bounds every walk over a time range from both
/// sides: blocks overlapping `[from, to]` start at or after `from - span` and end before
/// `to + span`, so a window deep in a long log seeks instead of walking every block on one
/// side of it.
pub fn block_span(conn: &Connection, table: Table) -> Result<Option<i64>, StoreError> {
    let span: Option<i64> = conn
        .prepare_cached("SELECT span_ms FROM rollup_sealed WHERE log = ?1")?
        .query_row([log_of(table)], |r| r.get(0))
        .optional()?;
    Ok(span.map(|s| s.max(crate::blocks::compact::MAX_SPAN_MS)))
}

/// Starts the rollups of `table`: the first hour to seal is the oldest stored row's (an
/// upgraded store) or `due`, and the longest block stored is measured (one pass over the
/// block table's time columns, once). Returns the first hour.
fn start(conn: &Connection, table: Table, due: i64) -> Result<i64, StoreError> {
    let (first, span): (Option<i64>, i64) = conn.query_row(
        &format!(
            "SELECT min(first_ms), coalesce(max(last_ms - first_ms), 0) FROM {}",
            table.blocks()
        ),
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let hour = first.map_or(due, |t| t.div_euclid(HOUR_MS)).min(due);
    conn.prepare_cached(
        "INSERT INTO rollup_sealed (log, hour, span_ms, minutes_from, names_from) \
         VALUES (?1, ?2, ?3, ?2, ?2)",
    )?
    .execute(params![log_of(table), hour, span])?;
    Ok(hour)
}

/// The first hour at or after hour `from` with rows of `table`, if any.
fn next_data_hour(
    conn: &Connection,
    table: Table,
    from: i64,
    span: i64,
) -> Result<Option<i64>, StoreError> {
    let from_ms = from.saturating_mul(HOUR_MS);
    // A block that started before the hour and reaches into it.
    let straddling: Option<i64> = conn
        .prepare_cached(&format!(
            "SELECT id FROM {} WHERE first_ms >= ?1 AND first_ms < ?2 AND last_ms >= ?2 LIMIT 1",
            table.blocks()
        ))?
        .query_row(params![from_ms.saturating_sub(span), from_ms], |r| r.get(0))
        .optional()?;
    if straddling.is_some() {
        return Ok(Some(from));
    }
    let first: Option<i64> = conn
        .prepare_cached(&format!(
            "SELECT min(first_ms) FROM {} WHERE first_ms >= ?1",
            table.blocks()
        ))?
        .query_row([from_ms], |r| r.get(0))?;
    Ok(first.map(|t| t.div_euclid(HOUR_MS)))
}

/// Blocks decoded per sealing step: at most ~65 k query-log rows (measured 10–20 ms on the
/// shared development VM, docs/BENCHMARKS.md issue 18), so an hour of a billion-row week
/// (millions of rows) is sealed over many short steps between batches.
const SEAL_BLOCKS: i64 = 16;

/// How long the writer keeps sealing before it lets the next batch in ([`Sealer::catch_up`]):
/// a call lasts this plus at most one step.
pub const STEP_BUDGET: Duration = Duration::from_millis(10);

/// An hour being sealed: its blocks are read a step at a time in id order, then its rollup
/// rows are written, its postings a slice per step, its day's rows a kind per step (the
/// day's last hour), and finally `rollup_sealed` moves on. Until then readers take the hour
/// from the blocks, so rows written early are never read.
#[derive(Debug)]
struct Progress {
    hour: i64,
    /// Blocks with ids at or below this are counted (in `agg` or written).
    after_id: i64,
    agg: Agg,
    /// The hour's hits by minute (hits only, [`minutes`]), written with `agg`.
    minutes: Minutes,
    /// Client keys whose postings are still to write, sorted.
    keys: Vec<[u8; 16]>,
    /// Name keys whose postings are still to write, sorted (after the clients').
    names: Vec<[u8; 16]>,
    /// Kinds of the day's rows merged so far (the day's last hour).
    day_kinds: usize,
}

/// The writer's sealing state: the hour of each log being sealed, if any. Kept in memory
/// only: after a crash (or a failed step) the hour is sealed again from its start (the rows
/// already written are replaced, see [`Sealer::step`]).
///
/// Blocks written while an hour is being sealed have higher ids, so the id-ordered walk meets
/// them; the writer's compaction leaves the blocks of unsealed hours alone (it merges only
/// blocks ending before [`sealed_hour`]), so no row is read twice.
#[derive(Debug)]
pub struct Sealer {
    progress: [Option<Progress>; 2],
    /// Whether an earlier seal of this log may have stopped midway (a new sealer, a failed
    /// step): the next seal first deletes what it wrote.
    unsure: [bool; 2],
    /// Blocks per step ([`SEAL_BLOCKS`]; tests use fewer).
    step_blocks: i64,
}

impl Default for Sealer {
    fn default() -> Self {
        Self::with_step(SEAL_BLOCKS)
    }
}

fn slot(table: Table) -> usize {
    match table {
        Table::Queries => 0,
        Table::Hits => 1,
    }
}

/// Deletes what an unfinished seal of `hour` wrote (a crash or a failed step midway), so the
/// seal starts from nothing.
fn forget_hour(conn: &Connection, table: Table, hour: i64) -> Result<(), StoreError> {
    for kind in super::KINDS {
        conn.prepare_cached(
            "DELETE FROM rollups WHERE log = ?1 AND span = ?2 AND kind = ?3 AND bucket = ?4",
        )?
        .execute(params![log_of(table), Span::Hour as i64, kind as i64, hour])?;
        conn.prepare_cached(
            "DELETE FROM rollups WHERE log = ?1 AND span = ?2 AND kind = ?3 AND bucket = ?4",
        )?
        .execute(params![
            log_of(table),
            Span::Day as i64,
            kind as i64,
            hour.div_euclid(DAY_HOURS)
        ])?;
    }
    if table == Table::Hits {
        minutes::forget(conn, hour)?;
    }
    let bit = 1i64 << hour.rem_euclid(DAY_HOURS);
    for log in [log_of(table), names_log(table)] {
        conn.prepare_cached(
            "UPDATE client_days SET hours = hours & ~?3 \
             WHERE log = ?1 AND day = ?2 AND hours & ?3",
        )?
        .execute(params![log, hour.div_euclid(DAY_HOURS), bit])?;
    }
    Ok(())
}

impl Sealer {
    /// A sealer reading `blocks` blocks per step.
    pub fn with_step(blocks: i64) -> Self {
        Self {
            progress: [None, None],
            unsure: [true, true],
            step_blocks: blocks.max(1),
        }
    }

    /// One step of sealing `table` at `now_ms`, inside the caller's transaction (see
    /// [`Progress`] for the phases). Returns whether it did anything (more may remain).
    pub fn step(
        &mut self,
        conn: &Connection,
        table: Table,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let due = (now_ms - GRACE_MS).div_euclid(HOUR_MS);
        let mut p = match self.progress[slot(table)].take() {
            Some(p) => p,
            None => {
                let hour = match sealed_hour(conn, table)? {
                    Some(h) => h,
                    None => start(conn, table, due)?,
                };
                if hour >= due {
                    return Ok(false);
                }
                if self.unsure[slot(table)] {
                    // Rows of an earlier, unfinished seal of this hour (a crash midway).
                    forget_hour(conn, table, hour)?;
                    self.unsure[slot(table)] = false;
                }
                Progress {
                    hour,
                    after_id: i64::MIN,
                    agg: Agg::default(),
                    minutes: Minutes::new(),
                    keys: Vec::new(),
                    names: Vec::new(),
                    day_kinds: 0,
                }
            }
        };
        let (from, to) = (p.hour * HOUR_MS, (p.hour + 1) * HOUR_MS);
        let span = block_span(conn, table)?.unwrap_or(i64::MAX);
        // The hour's blocks in id order (a few thousand at most), bounded on both sides by
        // the longest block so the time index is read only around the hour.
        let mut ids: Vec<i64> = conn
            .prepare_cached(&format!(
                "SELECT id FROM {} WHERE first_ms >= ?1 AND first_ms < ?2 AND last_ms >= ?3 \
                 AND id > ?4",
                table.blocks()
            ))?
            .query_map(
                params![from.saturating_sub(span), to, from, p.after_id],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?;
        ids.sort_unstable();
        ids.truncate(usize::try_from(self.step_blocks).unwrap_or(usize::MAX));
        let mut data = DataReader::new(conn, table);
        for &id in &ids {
            for row in Block::parse(data.read(id)?)?.entries() {
                let (_, e) = row?;
                if e.time_ms >= from && e.time_ms < to {
                    p.agg.add(table, &e);
                    if table == Table::Hits {
                        let minute = e.time_ms.div_euclid(MINUTE_MS);
                        p.minutes.entry(minute).or_default().add(&e);
                    }
                }
            }
            p.after_id = id;
        }
        let day = p.hour.div_euclid(DAY_HOURS);
        let next = next_data_hour(conn, table, p.hour + 1, span)?
            .unwrap_or(due)
            .min(due);
        let last_of_day = next >= (day + 1) * DAY_HOURS;
        if ids.len() as i64 == self.step_blocks {
            // More blocks to read.
        } else if !p.agg.is_empty() {
            let mut agg = std::mem::take(&mut p.agg);
            p.keys.extend(agg.take_keys());
            p.keys.sort_unstable();
            p.keys.dedup();
            p.names = agg.take_names();
            agg.write(conn, table, Span::Hour, p.hour)?;
            minutes::add(conn, &std::mem::take(&mut p.minutes))?;
        } else if !p.keys.is_empty() {
            let slice: Vec<[u8; 16]> = p.keys.drain(..p.keys.len().min(POSTINGS_STEP)).collect();
            super::postings::add(conn, log_of(table), p.hour, &slice)?;
        } else if !p.names.is_empty() {
            let n = p.names.len().min(POSTINGS_STEP);
            let slice: Vec<[u8; 16]> = p.names.drain(..n).collect();
            super::postings::add(conn, names_log(table), p.hour, &slice)?;
        } else if last_of_day && p.day_kinds < super::KINDS.len() {
            merge_day(conn, table, day, super::KINDS[p.day_kinds])?;
            p.day_kinds += 1;
        } else {
            // Skip hours without rows, up to the hour not yet due.
            set_sealed(conn, table, next.max(p.hour + 1))?;
            return Ok(true);
        }
        self.progress[slot(table)] = Some(p);
        Ok(true)
    }

    /// Seals hours of both logs, one transaction per step, until caught up with `now_ms` or
    /// `budget` has passed (at least one step); returns whether more remains. A failed step
    /// forgets the hour under way: the next call reads it again.
    pub fn catch_up(
        &mut self,
        conn: &Connection,
        now_ms: i64,
        budget: Duration,
    ) -> Result<bool, StoreError> {
        let start = Instant::now();
        let mut behind = [true, true];
        loop {
            for table in [Table::Queries, Table::Hits] {
                let i = slot(table);
                if behind[i] {
                    let step = (|| {
                        let tx = conn.unchecked_transaction()?;
                        let did = self.step(&tx, table, now_ms)?;
                        tx.commit()?;
                        Ok::<_, StoreError>(did)
                    })();
                    behind[i] = match step {
                        Ok(did) => did,
                        Err(e) => {
                            self.progress[i] = None;
                            self.unsure[i] = true;
                            return Err(e);
                        }
                    };
                    if behind[i] && start.elapsed() >= budget {
                        return Ok(true);
                    }
                }
            }
            if !behind.iter().any(|&b| b) {
                return Ok(false);
            }
        }
    }
}

/// Accounts for a block just written by the writer, in its transaction: its span widens
/// [`block_span`] if it is the longest yet, and rows of hours already sealed (late rows:
/// replayed hits, a writer far behind) are added to their rollups and postings.
pub fn late(conn: &Connection, table: Table, block: &Sealed) -> Result<(), StoreError> {
    let state: Option<(i64, i64, Option<i64>)> = conn
        .prepare_cached("SELECT hour, span_ms, minutes_from FROM rollup_sealed WHERE log = ?1")?
        .query_row([log_of(table)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((sealed, span, minutes_from)) = state else {
        return Ok(());
    };
    if block.last_ms - block.first_ms > span {
        conn.prepare_cached("UPDATE rollup_sealed SET span_ms = ?2 WHERE log = ?1")?
            .execute(params![log_of(table), block.last_ms - block.first_ms])?;
    }
    let edge = sealed.saturating_mul(HOUR_MS);
    if block.first_ms >= edge {
        return Ok(());
    }
    let mut hours: BTreeMap<i64, Agg> = BTreeMap::new();
    let mut days: BTreeMap<i64, Agg> = BTreeMap::new();
    // Hours sealed with minute tables get the row in its minute's too.
    let minutes_from = match table {
        Table::Hits => minutes_from.map_or(i64::MAX, |h| h.saturating_mul(HOUR_MS)),
        Table::Queries => i64::MAX,
    };
    let mut by_minute = Minutes::new();
    for row in Block::parse(&block.data)?.entries() {
        let (_, e) = row?;
        if e.time_ms >= edge {
            continue;
        }
        let hour = e.time_ms.div_euclid(HOUR_MS);
        hours.entry(hour).or_default().add(table, &e);
        if e.time_ms >= minutes_from {
            let minute = e.time_ms.div_euclid(MINUTE_MS);
            by_minute.entry(minute).or_default().add(&e);
        }
        // A sealed day gets the row too: its rows were merged from its hours already.
        let day = hour.div_euclid(DAY_HOURS);
        if (day + 1) * DAY_HOURS <= sealed {
            days.entry(day).or_default().add(table, &e);
        }
    }
    for (hour, mut agg) in hours {
        super::postings::add(conn, log_of(table), hour, &agg.take_keys())?;
        super::postings::add(conn, names_log(table), hour, &agg.take_names())?;
        agg.write(conn, table, Span::Hour, hour)?;
    }
    for (day, agg) in days {
        agg.write(conn, table, Span::Day, day)?;
    }
    minutes::add(conn, &by_minute)?;
    Ok(())
}
