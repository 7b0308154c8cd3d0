//! Walking blocks by time window and by client: every row in a window (`scan`), a client's
//! rows and their count, and the first and last time a client was seen.

use rusqlite::{Connection, params};

use super::codec::{Block, Entry};
use super::filter::{Field, may_contain, value_key};
use super::{DataReader, INDEX_BITS, blob};
use crate::rows::Table;
use crate::{StoreError, ip_key};

/// The first and last time `key` (an [`ip_key`]) appears in `table`.
pub fn seen(
    conn: &Connection,
    table: Table,
    key: [u8; 16],
) -> Result<(Option<i64>, Option<i64>), StoreError> {
    let probe = value_key(Field::Client, &key);
    let first = extreme(conn, table, key, probe, true)?;
    let last = extreme(conn, table, key, probe, false)?;
    Ok((first, last))
}

/// The earliest (`oldest`) or latest time of `key`, walking blocks from that end and stopping
/// once no further block can beat the best time found.
fn extreme(
    conn: &Connection,
    table: Table,
    key: [u8; 16],
    probe: u64,
    oldest: bool,
) -> Result<Option<i64>, StoreError> {
    let sql = if oldest {
        format!(
            "SELECT id, first_ms, filter FROM {} ORDER BY first_ms, id",
            table.blocks()
        )
    } else {
        format!(
            "SELECT id, last_ms, filter FROM {} ORDER BY last_ms DESC, id DESC",
            table.blocks()
        )
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut blocks = stmt.query([])?;
    let mut best: Option<i64> = None;
    let mut data = DataReader::new(conn, table);
    while let Some(b) = blocks.next()? {
        let edge: i64 = b.get(1)?;
        if best.is_some_and(|t| if oldest { edge > t } else { edge < t }) {
            break;
        }
        if !may_contain(blob(b, 2)?, probe) {
            continue;
        }
        for row in Block::parse(data.read(b.get(0)?)?)?.entries() {
            let (_, e) = row?;
            if ip_key(e.client) == key {
                let t = e.time_ms;
                best = Some(match best {
                    Some(b) if oldest => b.min(t),
                    Some(b) => b.max(t),
                    None => t,
                });
            }
        }
    }
    Ok(best)
}

/// Calls `f` with the row id and contents of every row of `table` in `[since, until)`,
/// block by block (oldest block first). With a `probe`, blocks whose filter rules it out are
/// skipped unread, so `f` sees a superset of the rows holding that key and checks them itself.
pub fn scan(
    conn: &Connection,
    table: Table,
    since: i64,
    until: i64,
    probe: Option<u64>,
    mut f: impl FnMut(i64, &Entry<'_>),
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT id, filter FROM {} WHERE last_ms >= ?1 AND first_ms < ?2 AND first_ms >= ?3 \
         ORDER BY first_ms, id",
        table.blocks()
    ))?;
    let mut blocks = stmt.query(params![since, until, earliest_start(conn, table, since)?])?;
    let mut data = DataReader::new(conn, table);
    while let Some(b) = blocks.next()? {
        if let Some(k) = probe
            && !may_contain(blob(b, 1)?, k)
        {
            continue;
        }
        let id: i64 = b.get(0)?;
        for row in Block::parse(data.read(id)?)?.entries() {
            let (index, e) = row?;
            if e.time_ms >= since && e.time_ms < until {
                f((id << INDEX_BITS) | i64::from(index), &e);
            }
        }
    }
    Ok(())
}

/// Calls `f` with every row of `table` from `key` (an [`ip_key`]) at or after `since_ms`.
pub fn scan_client(
    conn: &Connection,
    table: Table,
    key: [u8; 16],
    since_ms: i64,
    mut f: impl FnMut(&Entry<'_>),
) -> Result<(), StoreError> {
    scan(
        conn,
        table,
        since_ms,
        i64::MAX,
        Some(value_key(Field::Client, &key)),
        |_, e| {
            if ip_key(e.client) == key {
                f(e);
            }
        },
    )
}

/// How many rows of `table` from `key` (an [`ip_key`]) are at or after `since_ms`.
pub fn client_count(
    conn: &Connection,
    table: Table,
    key: [u8; 16],
    since_ms: i64,
) -> Result<i64, StoreError> {
    let mut n = 0i64;
    scan_client(conn, table, key, since_ms, |_| n += 1)?;
    Ok(n)
}

/// The earliest `first_ms` a block holding rows at or after `since` can have: `since` less
/// the longest block (`crate::rollup::block_span`), so a window deep in a long log reads the
/// time index around it rather than every older block.
pub(crate) fn earliest_start(
    conn: &Connection,
    table: Table,
    since: i64,
) -> Result<i64, StoreError> {
    Ok(crate::rollup::block_span(conn, table)?.map_or(i64::MIN, |span| since.saturating_sub(span)))
}
