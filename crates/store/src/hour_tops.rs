//! The hour under way's hit tables, kept between `/stats` requests.
//!
//! Why: `/stats` takes whole hours from the rollups (`crate::rollup`), but the hour under way
//! is not rolled up until it is over, so every request, whatever its window, decoded that
//! hour's hit blocks: ~40 ms of a 300 M-row store's 50 ms, and in proportion to the hits an
//! hour (issue 18). This cache holds the hour's counts by name, client and department from
//! the blocks it has read, and each request reads only the blocks written since.
//!
//! What stays exact: the cache is used only for a window part that runs from the start of the
//! hour to at or after every row cached, so it counts exactly the rows a decode would. Blocks
//! are only ever added to the hour under way: compaction and retention leave unsealed hours
//! alone, and late rows come as new blocks. A rewrite of a block's identity snapshot
//! (`crate::relearn`) may change a hit's department after it was cached; the rollups keep the
//! department a hit was first written with too, so both agree. A store whose highest block id
//! went down (a restore) starts the cache over.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use rusqlite::{Connection, params};

use crate::StoreError;
use crate::blocks::codec::Block;
use crate::rollup::HOUR_MS;
use crate::top::{TopCounts, add_count};

/// Counts of hits by name, client, department and feed: an hour's in the cache, or a window
/// edge's read from the blocks.
#[derive(Debug, Default)]
pub struct Tops {
    pub names: TopCounts<String>,
    pub clients: TopCounts<IpAddr>,
    pub departments: TopCounts<String>,
    pub feeds: TopCounts<String>,
}

impl Tops {
    /// Counts one hit.
    pub fn add(&mut self, e: &crate::blocks::codec::Entry<'_>) {
        self.names.add(e.name, |_| ());
        self.clients.add(&e.client, |_| ());
        if let Some(d) = e.department {
            self.departments.add(d, |_| ());
        }
        if let Some(f) = e.feed {
            self.feeds.add(f, |_| ());
        }
    }

    /// Adds these counts to a request's tables.
    pub fn add_to(&self, sums: &mut Sums) {
        for (k, n) in self.names.counts() {
            add_count(&mut sums.names, k, n);
        }
        for (k, n) in self.clients.counts() {
            *sums.clients.entry(k.to_string()).or_default() += n;
        }
        for (k, n) in self.departments.counts() {
            add_count(&mut sums.departments, k, n);
        }
        for (k, n) in self.feeds.counts() {
            add_count(&mut sums.feeds, k, n);
        }
    }
}

/// A `/stats` request's hit tables by key, summed from every source of its window (rollups,
/// minute tables, this cache, blocks), before they are ranked.
#[derive(Debug, Default)]
pub struct Sums {
    pub names: HashMap<String, u64>,
    pub clients: HashMap<String, u64>,
    pub departments: HashMap<String, u64>,
    pub feeds: HashMap<String, u64>,
}

#[derive(Debug)]
struct Hour {
    /// Its start, ms.
    start: i64,
    /// The highest hit block id read.
    through_id: i64,
    /// The latest row time cached.
    last_ms: i64,
    tops: Tops,
}

/// The hour under way's hit tables (one hour: a new hour replaces it).
#[derive(Debug, Default)]
pub struct HourTops {
    hour: Mutex<Option<Hour>>,
}

impl HourTops {
    /// Calls `f` with the counts of the hits in `[start, until)`, where `start` is an hour's
    /// start, brought up to date from the blocks written since the last call; `false` (and
    /// `f` not called) when the cache cannot answer exactly: a row at or after `until` was
    /// already counted (a window ending in the past). `f` gets the counts in parts, to add.
    pub fn with_hour(
        &self,
        conn: &Connection,
        start: i64,
        until: i64,
        f: impl FnOnce(&[&Tops]),
    ) -> Result<bool, StoreError> {
        debug_assert_eq!(start.rem_euclid(HOUR_MS), 0);
        // A poisoned lock only means a reader panicked mid-update: start over.
        let mut guard = self.hour.lock().unwrap_or_else(|p| p.into_inner());
        let newest = crate::blocks::newest_id(conn, crate::rows::Table::Hits)?;
        let fresh = || Hour {
            start,
            through_id: 0,
            last_ms: i64::MIN,
            tops: Tops::default(),
        };
        let hour = match guard.take() {
            Some(h) if h.start == start && h.through_id <= newest => h,
            _ => fresh(),
        };
        let hour = guard.insert(hour);
        if hour.last_ms >= until {
            return Ok(false);
        }
        // The blocks written since, overlapping the hour, in id order (found through the time
        // index: a scan by id from 0 would read every block's row). Rows are cached only below
        // `until`, and the cache stops before a block holding a row at or after it.
        let earliest = crate::blocks::earliest_start(conn, crate::rows::Table::Hits, start)?;
        let mut ids: Vec<i64> = conn
            .prepare_cached(
                "SELECT id FROM hit_blocks WHERE last_ms >= ?1 AND first_ms < ?2 \
                 AND first_ms >= ?3 AND id > ?4",
            )?
            .query_map(
                params![start, start + HOUR_MS, earliest, hour.through_id],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?;
        ids.sort_unstable();
        let mut extra = Tops::default();
        let mut caching = true;
        let mut reader = crate::blocks::DataReader::new(conn, crate::rows::Table::Hits);
        for id in ids {
            let data = match reader.read(id) {
                Ok(d) => d,
                // Gone since it was listed: the hour was sealed and compacted meanwhile. The
                // caller reads the blocks instead, and the cache starts over.
                Err(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => {
                    *guard = None;
                    return Ok(false);
                }
                Err(e) => return Err(e),
            };
            let block = Block::parse(data)?;
            let rows: Vec<_> = block.entries().collect::<Result<_, _>>()?;
            let ends_before = rows.iter().all(|(_, e)| e.time_ms < until);
            caching &= ends_before;
            let into = if caching { &mut hour.tops } else { &mut extra };
            for (_, e) in &rows {
                if e.time_ms >= start && e.time_ms < until.min(start + HOUR_MS) {
                    into.add(e);
                    if caching {
                        hour.last_ms = hour.last_ms.max(e.time_ms);
                    }
                }
            }
            if caching {
                hour.through_id = id;
            }
        }
        if caching {
            f(&[&hour.tops]);
        } else {
            // Blocks with rows past `until` were counted apart (a request racing the writer).
            f(&[&hour.tops, &extra]);
        }
        Ok(true)
    }
}
