//! The names asked in hours not sealed yet, in memory, so an exact-name lookup skips those
//! hours too when the name is not in them.
//!
//! Why: name postings (`crate::rollup`) are written when an hour is sealed, so the hours under
//! way have none and an exact-name lookup checked every one of their blocks' Bloom filters.
//! That cost grows with the rows an hour: `/queries?name=<absent>` went from 0.40 to 0.65 ms
//! between 10 M and 100 M rows (issue 18), while the sealed hours cost one postings seek a day
//! at any size.
//!
//! Per log, a set of exact-name keys (`blocks::filter::name_key`) per unsealed hour, with one
//! invariant: **every block with an id up to `through`, or in the `tail` range, that has rows
//! at or after `floor`'s hour has its names in the sets of the hours it spans.**
//! - The writer, after each commit, hands over the names of the blocks it wrote
//!   ([`HourNames::note`]). A block that follows `through` extends it; one after a gap (the
//!   blocks written before this process started, or by a tool on a connection of its own)
//!   starts or extends the `tail`, and the gap is left to the readers.
//! - A reader whose snapshot holds blocks the cache has not seen decodes them itself, in id
//!   order, within [`CATCH_UP`] ([`HourNames::hours_with`]); past that it walks the filters as
//!   before and the next request goes on from there. Once the gap is decoded, `through` takes
//!   in the tail. The gap only holds blocks of the hours unsealed when the writer started, so
//!   it closes at the latest when those hours are sealed.
//!
//! A set may hold more than its hour's names (a block's names go to every hour it spans),
//! which only costs a walk of that hour; never fewer. A reader whose snapshot is older than
//! the cache's `floor` (an hour sealed meanwhile) gets no answer and walks. Blocks are never
//! merged or deleted in unsealed hours (compaction and retention keep to sealed ones); a
//! block re-encoded in place (grouping, late identity) keeps its names. When compaction
//! deletes the newest block, SQLite gives its id to the next one: the writer's blocks with an
//! id already covered add their names. The one way to a wrong "absent": a tool writing into a
//! live store on a connection of its own just then, so its block takes a covered id; one
//! poolguard serves one store (`crate::lock`), so only tests share a store that way.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use crate::StoreError;
use crate::blocks::codec::Block;
use crate::blocks::filter::name_key;
use crate::rollup::HOUR_MS;
use crate::rows::Table;

/// Longest a reader decodes blocks the writer did not hand over, per request: past it the
/// request walks the rest of the hour's filters (the cost before this cache), and the next
/// request goes on from there. About 25,000 rows.
const CATCH_UP: Duration = Duration::from_millis(5);
/// A block spanning more hours than this (a replayed spool at a trickle, a clock jump) is
/// left for the readers to decode row by row rather than copied into every hour it spans.
const MAX_SPAN_HOURS: i64 = 4;

type Keys = HashSet<u64, foldhash::fast::FixedState>;

/// One block the writer committed: its id, time span and exact-name keys.
#[derive(Debug)]
pub struct Written {
    pub table: Table,
    pub id: i64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub names: Vec<u64>,
}

#[derive(Debug)]
struct Names {
    /// The first hour held: the first unsealed hour as of the newest snapshot seen.
    floor: i64,
    /// Every block up to this id with rows at or after `floor` is in `hours`.
    through: i64,
    /// Blocks the writer handed over past a gap (the blocks written before it started
    /// handing over, which a reader has still to decode): every block in this id range is in
    /// `hours`, and once the gap is decoded `through` jumps to its end.
    tail: Option<(i64, i64)>,
    hours: BTreeMap<i64, Keys>,
}

impl Names {
    fn new(floor: i64) -> Self {
        Self {
            floor,
            through: 0,
            tail: None,
            hours: BTreeMap::new(),
        }
    }

    /// Adds `keys` to each hour of `[first_ms, last_ms]` from `floor` on.
    fn add(&mut self, first_ms: i64, last_ms: i64, keys: impl Iterator<Item = u64> + Clone) {
        let from = first_ms.div_euclid(HOUR_MS).max(self.floor);
        for hour in from..=last_ms.div_euclid(HOUR_MS) {
            self.hours.entry(hour).or_default().extend(keys.clone());
        }
    }

    /// Forgets the hours before `hour`, now sealed (their names are in the postings).
    fn drop_before(&mut self, hour: i64) {
        if self.floor < hour {
            self.hours = self.hours.split_off(&hour);
            self.floor = hour;
        }
    }

    /// Whether block `id` is already in `hours` (so a writer's block with that id is an id
    /// used again).
    fn covers(&self, id: i64) -> bool {
        id <= self.through || self.tail.is_some_and(|(a, b)| (a..=b).contains(&id))
    }

    /// `through` takes in the tail once nothing lies between them.
    fn join(&mut self) {
        if let Some((a, b)) = self.tail
            && self.through.saturating_add(1) >= a
        {
            self.through = self.through.max(b);
            self.tail = None;
        }
    }

    /// One block the writer committed.
    fn note(&mut self, w: &Written) {
        let span = w.last_ms.div_euclid(HOUR_MS) - w.first_ms.div_euclid(HOUR_MS);
        let short = span < MAX_SPAN_HOURS;
        let names = w.names.iter().copied();
        if self.covers(w.id) {
            // An id used again (the newest block deleted and its id reissued): its names
            // must go in. One spanning too many hours to copy: start over instead.
            if short {
                self.add(w.first_ms, w.last_ms, names);
            } else {
                *self = Self::new(self.floor);
            }
            return;
        }
        if !short {
            // Left for the readers, who decode it row by row.
            return;
        }
        self.add(w.first_ms, w.last_ms, names);
        match self.tail {
            _ if w.id == self.through + 1 => self.through = w.id,
            Some((a, b)) if w.id == b + 1 => self.tail = Some((a, w.id)),
            // A gap (blocks this cache has not seen): a new tail; an older one's blocks stay
            // in `hours` but are decoded again.
            _ => self.tail = Some((w.id, w.id)),
        }
        self.join();
    }
}

/// The unsealed hours' name keys of both logs, shared by the writer and the readers.
#[derive(Debug, Default)]
pub struct HourNames {
    logs: [Mutex<Option<Names>>; 2],
}

fn slot(table: Table) -> usize {
    match table {
        Table::Queries => 0,
        Table::Hits => 1,
    }
}

impl HourNames {
    /// The writer's blocks, after their transaction committed. Never waits for a reader
    /// catching up: a block it cannot hand over now is decoded by a reader later.
    pub fn note(&self, written: &[Written]) {
        for w in written {
            let Ok(mut guard) = self.logs[slot(w.table)].try_lock() else {
                continue;
            };
            // The first hour is not known here: the first reader drops the sealed ones.
            guard.get_or_insert_with(|| Names::new(i64::MIN)).note(w);
        }
    }

    /// The writer sealed `table`'s hours before `first_unsealed`: their sets go, so the cache
    /// holds only the hours under way even when no reader asks. A reader whose snapshot
    /// predates the seal then walks (the cache's floor is past its first unsealed hour).
    pub fn sealed(&self, table: Table, first_unsealed: i64) {
        let mut guard = self.logs[slot(table)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = guard.as_mut() {
            n.drop_before(first_unsealed);
        }
    }

    /// The unsealed hours (from `sealed`, the reader's first unsealed hour) whose blocks may
    /// hold rows named `name`, oldest first; `None` when the cache cannot answer for this
    /// snapshot and the caller walks every unsealed block.
    pub fn hours_with(
        &self,
        conn: &Connection,
        table: Table,
        name: &str,
        sealed: i64,
    ) -> Result<Option<Vec<i64>>, StoreError> {
        let newest = crate::blocks::newest_id(conn, table)?;
        // A poisoned lock only means a reader panicked mid-update: start over.
        let mut guard = self.logs[slot(table)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let names = match guard.take() {
            // An hour was sealed since: its names are in the postings now.
            Some(mut n) if n.floor <= sealed => {
                n.drop_before(sealed);
                n
            }
            // This snapshot predates a seal the cache has seen: keep the cache, walk.
            Some(n) => {
                *guard = Some(n);
                return Ok(None);
            }
            None => Names::new(sealed),
        };
        let names = guard.insert(names);
        if names.through < newest {
            match catch_up(conn, table, names, newest)? {
                Caught::Up => {}
                Caught::Partly => return Ok(None),
                Caught::Gone => {
                    *guard = None;
                    return Ok(None);
                }
            }
        }
        let key = name_key(name);
        Ok(Some(
            names
                .hours
                .iter()
                .filter(|(_, keys)| keys.contains(&key))
                .map(|(h, _)| *h)
                .collect(),
        ))
    }
}

/// How far a reader's [`catch_up`] got.
enum Caught {
    /// To the newest block: the cache answers.
    Up,
    /// Out of time: the request walks, the next one goes on.
    Partly,
    /// A block listed was gone when read: an hour was sealed and compacted meanwhile, so its
    /// rows may now sit in a block at or below `through`. The cache starts over.
    Gone,
}

/// Decodes the blocks after `names.through` (up to `newest`) with rows from `names.floor` on,
/// in id order, within [`CATCH_UP`].
fn catch_up(
    conn: &Connection,
    table: Table,
    names: &mut Names,
    newest: i64,
) -> Result<Caught, StoreError> {
    let started = Instant::now();
    let floor_ms = names.floor.saturating_mul(HOUR_MS);
    // The blocks ending at or after the floor, from the `last_ms` index alone (it holds the
    // ids); `+id` keeps SQLite from walking the table by id instead.
    let mut ids: Vec<i64> = conn
        .prepare_cached(&format!(
            "SELECT id FROM {} WHERE last_ms >= ?1 AND +id > ?2 AND +id <= ?3",
            table.blocks()
        ))?
        .query_map(params![floor_ms, names.through, newest], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    ids.sort_unstable();
    let mut reader = crate::blocks::DataReader::new(conn, table);
    let mut decoded = 0usize;
    for id in ids {
        if names.covers(id) {
            // Handed over by the writer already.
            continue;
        }
        // At least one block a request, so the cache gets there however slow the reads.
        if decoded > 0 && started.elapsed() >= CATCH_UP {
            return Ok(Caught::Partly);
        }
        decoded += 1;
        let data = match reader.read(id) {
            Ok(d) => d,
            Err(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => {
                return Ok(Caught::Gone);
            }
            Err(e) => return Err(e),
        };
        let block = Block::parse(data)?;
        for row in block.entries() {
            let (_, e) = row?;
            names.add(e.time_ms, e.time_ms, std::iter::once(name_key(e.name)));
        }
        // Every id below is decoded, in the tail, or holds no row from `floor` on.
        names.through = id;
        names.join();
    }
    names.through = names.through.max(newest);
    names.join();
    Ok(Caught::Up)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 10 * HOUR_MS;

    fn written(id: i64, first_ms: i64, last_ms: i64, names: &[&str]) -> Written {
        Written {
            table: Table::Queries,
            id,
            first_ms,
            last_ms,
            names: names.iter().map(|n| name_key(n)).collect(),
        }
    }

    fn held(n: &Names, hour: i64, name: &str) -> bool {
        n.hours
            .get(&hour)
            .is_some_and(|k| k.contains(&name_key(name)))
    }

    fn cache(through: i64) -> Names {
        Names {
            through,
            ..Names::new(10)
        }
    }

    #[test]
    fn blocks_after_a_gap_wait_as_a_tail_until_the_gap_is_filled() {
        let mut n = cache(5);
        // Id 6 is not seen yet: 7 and 8 are held as a tail, `through` stays.
        n.note(&written(7, HOUR, HOUR + 1, &["seven.example"]));
        n.note(&written(8, HOUR, HOUR + 1, &["eight.example"]));
        assert_eq!((n.through, n.tail), (5, Some((7, 8))));
        assert!(held(&n, 10, "seven.example") && held(&n, 10, "eight.example"));
        assert!(n.covers(8) && !n.covers(6));
        n.note(&written(6, HOUR, HOUR + 1, &["six.example"]));
        assert_eq!((n.through, n.tail), (8, None));
        // A second gap starts a new tail.
        n.note(&written(10, HOUR, HOUR + 1, &["ten.example"]));
        assert_eq!((n.through, n.tail), (8, Some((10, 10))));
    }

    #[test]
    fn a_block_across_an_hour_goes_in_both() {
        let mut n = cache(5);
        n.note(&written(
            6,
            HOUR + HOUR_MS - 1,
            HOUR + HOUR_MS,
            &["edge.example"],
        ));
        assert!(held(&n, 10, "edge.example") && held(&n, 11, "edge.example"));
        assert!(!held(&n, 12, "edge.example"));
    }

    #[test]
    fn a_long_block_is_left_to_the_readers() {
        let mut n = cache(5);
        n.note(&written(
            6,
            HOUR,
            HOUR + MAX_SPAN_HOURS * HOUR_MS,
            &["long.example"],
        ));
        assert_eq!((n.through, n.tail), (5, None));
        assert!(n.hours.is_empty());
    }

    #[test]
    fn an_id_used_again_adds_its_names_or_starts_over() {
        let mut n = cache(5);
        n.note(&written(3, HOUR, HOUR + 1, &["again.example"]));
        assert!(held(&n, 10, "again.example"));
        assert_eq!(n.through, 5);
        n.note(&written(4, HOUR, HOUR + 9 * HOUR_MS, &["long.example"]));
        assert_eq!((n.through, n.hours.len()), (0, 0), "started over");
    }

    #[test]
    fn rows_before_the_floor_are_not_kept() {
        let mut n = cache(0);
        n.add(9 * HOUR_MS, 10 * HOUR_MS, std::iter::once(1));
        assert_eq!(n.hours.keys().copied().collect::<Vec<_>>(), vec![10]);
    }

    #[test]
    fn sealed_hours_are_dropped_when_the_writer_seals_them() {
        let h = HourNames::default();
        h.note(&[
            written(1, HOUR, HOUR + 1, &["ten.example"]),
            written(2, HOUR + HOUR_MS, HOUR + HOUR_MS, &["eleven.example"]),
        ]);
        h.sealed(Table::Queries, 11);
        let guard = h.logs[0].lock().expect("lock");
        let n = guard.as_ref().expect("started");
        assert_eq!(n.floor, 11);
        assert_eq!(n.hours.keys().copied().collect::<Vec<_>>(), vec![11]);
        assert!(held(n, 11, "eleven.example"));
    }

    #[test]
    fn the_writer_starts_the_cache_with_its_first_block() {
        let h = HourNames::default();
        h.note(&[written(4, HOUR, HOUR + 1, &["first.example"])]);
        let guard = h.logs[0].lock().expect("lock");
        let n = guard.as_ref().expect("started");
        assert_eq!((n.floor, n.through, n.tail), (i64::MIN, 0, Some((4, 4))));
    }
}
