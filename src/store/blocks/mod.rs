//! The full query log, stored as blocks: one SQLite row per writer batch, not per query.
//!
//! Every query is recorded, at the resolver's full rate, on the same core as the DNS worker
//! (docs/BENCHMARKS.md). As one indexed SQLite row each, a query cost the writer ~3.6 µs:
//! more than answering it. Here a batch (up to `batch_size` queries, or what arrived in one
//! flush interval) becomes one row of `query_blocks`: a compact encoding ([`codec`]), its time
//! range, per-action counts and a Bloom filter ([`filter`]) over its clients and names. A
//! query then costs a few hundred nanoseconds to record, and the API finds rows by walking
//! blocks newest first, skipping those whose filter rules the request out and decoding the
//! rest. Hits (the evidence) stay one indexed row each in `hits`.
//!
//! Row ids are `block id << 20 | index in block`, so `(time_ms, id)` keyset pagination works
//! exactly as for `hits`. Crash safety is unchanged: a block is written in the batch's
//! transaction, so a crash loses at most the batch in flight.

pub mod codec;
pub mod filter;

use std::net::IpAddr;

use rusqlite::{Connection, OptionalExtension, params};

use self::codec::{Block, BlockEncoder, Entry, OUTCOMES, Sealed, read_counts};
use self::filter::{Field, may_contain, name_key, value_key};
use super::read::{Count, ListFilter, NameFilter, Page, StoredRow};
use super::{StoreError, ip_key};
use crate::record::{Outcome, Transport};

/// Most rows in one block; the row index takes the low 20 bits of a row id.
pub const MAX_BLOCK_ROWS: u32 = 1 << 16;
const INDEX_BITS: u32 = 20;

/// Writes one sealed block inside the caller's transaction.
pub fn insert(conn: &Connection, b: &Sealed) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO query_blocks (first_ms, last_ms, rows, counts, filter, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        b.first_ms, b.last_ms, b.rows, b.counts, b.filter, b.data
    ])?;
    Ok(())
}

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

fn outcome_named(action: &str) -> Option<usize> {
    OUTCOMES.iter().position(|o| o.as_str() == action)
}

fn name_matches(filter: &NameFilter, name: &str) -> bool {
    match filter {
        NameFilter::Exact(n) => name == n,
        NameFilter::Suffix(s) => {
            name == s
                || (name.len() > s.len()
                    && name.ends_with(s.as_str())
                    && name.as_bytes()[name.len() - s.len() - 1] == b'.')
        }
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
}

fn stored_row(id: i64, e: &Entry<'_>) -> StoredRow {
    StoredRow {
        id,
        time_ms: e.time_ms,
        client: e.client.to_string(),
        port: e.port,
        transport: match e.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
        .to_string(),
        name: e.name.to_string(),
        qtype: e.qtype.to_string(),
        action: e.outcome.as_str().to_string(),
        feed: e.feed.map(str::to_string),
        rule: e.rule.map(str::to_string),
        rcode: e.rcode.to_string(),
        answer: e.answer.to_string(),
        latency_us: e.latency_us,
        upstream: e.upstream.map(str::to_string),
        department: e.department.map(str::to_string),
        identity: None,
    }
}

/// A blob column of `row`, borrowed.
fn blob<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r [u8], StoreError> {
    row.get_ref(i)?.as_blob().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, Box::new(e))
            .into()
    })
}

fn block_data(conn: &Connection, id: i64) -> Result<Vec<u8>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT data FROM query_blocks WHERE id = ?1")?
        .query_row([id], |r| r.get(0))?)
}

/// One page of the query log matching `f`, newest first (the same contract as `read::list`).
///
/// Blocks are visited by descending `last_ms`; the walk stops once a full page is found and
/// the next block ends before the oldest row on it. Each block is skipped unless its action
/// counts and Bloom filter allow a match. SQLite steps between blocks, so the store's read
/// time limit interrupts a long walk within one block's decode.
pub fn list(conn: &Connection, f: &ListFilter) -> Result<Page, StoreError> {
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
    let mut stmt = conn.prepare_cached(
        "SELECT id, last_ms, counts, filter FROM query_blocks \
         WHERE last_ms >= ?1 AND first_ms <= ?2 ORDER BY last_ms DESC, id DESC",
    )?;
    let mut blocks = stmt.query(params![lower, upper])?;
    // The best `want` rows so far, newest first.
    let mut page: Vec<StoredRow> = Vec::new();
    while let Some(b) = blocks.next()? {
        let last_ms: i64 = b.get(1)?;
        if page.len() == want && page.last().is_some_and(|r| last_ms < r.time_ms) {
            break;
        }
        if let Some(i) = action
            && read_counts(blob(b, 2)?)?[i] == 0
        {
            continue;
        }
        if !keys.is_empty() {
            let filter = blob(b, 3)?;
            if !keys.iter().all(|&k| may_contain(filter, k)) {
                continue;
            }
        }
        let id: i64 = b.get(0)?;
        let data = block_data(conn, id)?;
        let block = Block::parse(&data)?;
        let mut found: Vec<(i64, i64, Entry<'_>)> = Vec::new();
        for row in block.entries() {
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
    let next = if page.len() > f.limit {
        page.truncate(f.limit);
        page.last().map(|r| (r.time_ms, r.id))
    } else {
        None
    };
    Ok(Page { rows: page, next })
}

/// Query-log rows per action in `[since, until)`. Blocks wholly inside the window add their
/// stored counts; only the (at most few) blocks straddling an edge are decoded.
pub fn counts_by_action(
    conn: &Connection,
    since: i64,
    until: i64,
) -> Result<Vec<Count>, StoreError> {
    let mut totals = [0u64; OUTCOMES.len()];
    let mut stmt = conn.prepare_cached(
        "SELECT id, first_ms, last_ms, counts FROM query_blocks \
         WHERE last_ms >= ?1 AND first_ms < ?2",
    )?;
    let mut blocks = stmt.query(params![since, until])?;
    while let Some(b) = blocks.next()? {
        let (first, last): (i64, i64) = (b.get(1)?, b.get(2)?);
        if first >= since && last < until {
            for (t, c) in totals.iter_mut().zip(read_counts(blob(b, 3)?)?) {
                *t += c;
            }
            continue;
        }
        let data = block_data(conn, b.get(0)?)?;
        for row in Block::parse(&data)?.entries() {
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

/// The first and last time `key` (an [`ip_key`]) appears in the query log.
pub fn seen(conn: &Connection, key: [u8; 16]) -> Result<(Option<i64>, Option<i64>), StoreError> {
    let probe = value_key(Field::Client, &key);
    let first = extreme(conn, key, probe, true)?;
    let last = extreme(conn, key, probe, false)?;
    Ok((first, last))
}

/// The earliest (`oldest`) or latest time of `key`, walking blocks from that end and stopping
/// once no further block can beat the best time found.
fn extreme(
    conn: &Connection,
    key: [u8; 16],
    probe: u64,
    oldest: bool,
) -> Result<Option<i64>, StoreError> {
    let sql = if oldest {
        "SELECT id, first_ms, filter FROM query_blocks ORDER BY first_ms, id"
    } else {
        "SELECT id, last_ms, filter FROM query_blocks ORDER BY last_ms DESC, id DESC"
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let mut blocks = stmt.query([])?;
    let mut best: Option<i64> = None;
    while let Some(b) = blocks.next()? {
        let edge: i64 = b.get(1)?;
        if best.is_some_and(|t| if oldest { edge > t } else { edge < t }) {
            break;
        }
        if !may_contain(blob(b, 2)?, probe) {
            continue;
        }
        let data = block_data(conn, b.get(0)?)?;
        for row in Block::parse(&data)?.entries() {
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

/// Removes query-log rows older than `cutoff_ms`: up to `max_blocks` whole blocks, then any
/// block straddling the cut-off is rewritten without its old rows. Returns the rows removed
/// and whether whole blocks remain to delete.
pub fn prune(
    conn: &Connection,
    cutoff_ms: i64,
    max_blocks: usize,
) -> Result<(usize, bool), StoreError> {
    let old: Vec<(i64, i64)> = conn
        .prepare_cached(
            "SELECT id, rows FROM query_blocks WHERE last_ms < ?1 ORDER BY last_ms LIMIT ?2",
        )?
        .query_map(params![cutoff_ms, max_blocks as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut removed = 0usize;
    {
        let mut delete = conn.prepare_cached("DELETE FROM query_blocks WHERE id = ?1")?;
        for (id, rows) in &old {
            delete.execute([id])?;
            removed += usize::try_from(*rows).unwrap_or(0);
        }
    }
    if old.len() == max_blocks {
        return Ok((removed, true));
    }
    let straddling: Vec<i64> = conn
        .prepare_cached("SELECT id FROM query_blocks WHERE first_ms < ?1 AND last_ms >= ?1")?
        .query_map([cutoff_ms], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in straddling {
        let data = block_data(conn, id)?;
        let block = Block::parse(&data)?;
        let mut kept = BlockEncoder::default();
        for row in block.entries() {
            let (_, e) = row?;
            if e.time_ms >= cutoff_ms {
                kept.push(&e);
            }
        }
        removed += (block.rows() - kept.rows()) as usize;
        // Never empty: the block's last row is at or after the cut-off.
        if let Some(b) = kept.seal() {
            conn.prepare_cached(
                "UPDATE query_blocks SET first_ms = ?2, last_ms = ?3, rows = ?4, counts = ?5, \
                 filter = ?6, data = ?7 WHERE id = ?1",
            )?
            .execute(params![
                id, b.first_ms, b.last_ms, b.rows, b.counts, b.filter, b.data
            ])?;
        }
    }
    Ok((removed, false))
}

/// Total rows in the query log (tests, tools).
pub fn total_rows(conn: &Connection) -> Result<i64, StoreError> {
    Ok(
        conn.query_row("SELECT coalesce(sum(rows), 0) FROM query_blocks", [], |r| {
            r.get(0)
        })?,
    )
}

/// A `queries` row of schema ≤ 5, owned.
struct LegacyRow {
    time_ms: i64,
    client: IpAddr,
    port: u16,
    transport: Transport,
    outcome: Outcome,
    strings: [Option<String>; 8],
    latency_us: u32,
}

/// Moves the rows of the per-query table of schema ≤ 5 into blocks (schema 6), in order,
/// inside the migration's transaction. Nothing in the old log is lost on upgrade.
pub fn convert_legacy(conn: &Connection) -> Result<u64, StoreError> {
    let exists: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'queries'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Ok(0);
    }
    let mut stmt = conn.prepare(
        "SELECT time_ms, client, port, transport, action, latency_us, name, qtype, feed, rule, \
         rcode, answer, upstream, department FROM queries ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    let mut chunk: Vec<LegacyRow> = Vec::new();
    let mut moved = 0u64;
    let flush = |chunk: &mut Vec<LegacyRow>| -> Result<(), StoreError> {
        let mut enc = BlockEncoder::default();
        for r in chunk.iter() {
            let s = |i: usize| r.strings[i].as_deref();
            enc.push(&Entry {
                time_ms: r.time_ms,
                client: r.client,
                port: r.port,
                transport: r.transport,
                outcome: r.outcome,
                name: s(0).unwrap_or(""),
                qtype: s(1).unwrap_or(""),
                feed: s(2),
                rule: s(3),
                rcode: s(4).unwrap_or(""),
                answer: s(5).unwrap_or(""),
                latency_us: r.latency_us,
                upstream: s(6),
                department: s(7),
            });
        }
        if let Some(b) = enc.seal() {
            insert(conn, &b)?;
        }
        chunk.clear();
        Ok(())
    };
    while let Some(r) = rows.next()? {
        let client: String = r.get(1)?;
        let transport: String = r.get(3)?;
        let action: String = r.get(4)?;
        let mut strings: [Option<String>; 8] = Default::default();
        for (i, slot) in strings.iter_mut().enumerate() {
            *slot = r.get(6 + i)?;
        }
        chunk.push(LegacyRow {
            time_ms: r.get(0)?,
            client: client
                .parse()
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            port: r.get(2)?,
            transport: if transport == "tcp" {
                Transport::Tcp
            } else {
                Transport::Udp
            },
            outcome: outcome_named(&action)
                .map(|i| OUTCOMES[i])
                .unwrap_or(Outcome::Allowed),
            strings,
            latency_us: r.get(5)?,
        });
        moved += 1;
        if chunk.len() >= 4096 {
            flush(&mut chunk)?;
        }
    }
    flush(&mut chunk)?;
    if moved > 0 {
        tracing::info!(rows = moved, "query log moved to the block format");
    }
    Ok(moved)
}
