//! The query log and the hits, stored as blocks: one SQLite row per writer batch, not per row.
//!
//! Every query is recorded, at the resolver's full rate, on the same core as the DNS worker
//! (docs/BENCHMARKS.md). As one indexed SQLite row each, a query cost the writer ~3.6 µs:
//! more than answering it. Here a batch (up to `batch_size` queries, or what arrived in one
//! flush interval) becomes one row of `query_blocks`: a compact encoding ([`codec`]), its time
//! range, per-action counts and a Bloom filter ([`filter`]) over its clients and names. A
//! query then costs a few hundred nanoseconds to record, and the API finds rows by walking
//! blocks newest first, skipping those whose filter rules the request out and decoding the
//! rest.
//!
//! Hits (the evidence, kept for about a year) use the same format in `hit_blocks` (schema 8),
//! each row with its ledger snapshot: an indexed SQLite row per hit cost the writer 8–12 µs
//! with its incident link, so a flood of blocked queries took the DNS worker's core. Incidents
//! find their hits by client key and time range (see [`owner_hits`]).
//!
//! Row ids are `block id << 20 | index in block`, so `(time_ms, id)` keyset pagination works
//! exactly as for `hits`. Crash safety is unchanged: a block is written in the batch's
//! transaction, so a crash loses at most the batch in flight.

pub mod codec;
pub mod compact;
pub mod filter;

use std::net::IpAddr;

use rusqlite::{Connection, OptionalExtension, params};

use self::codec::{Block, BlockEncoder, Entry, OUTCOMES, Sealed, read_counts};
use self::filter::{Field, may_contain, name_key, value_key};
use super::rows::{Count, ListFilter, NameFilter, Page, StoredRow, Table};
use super::{StoreError, ip_key};
use poolguard_record::{Outcome, Transport};

/// Most rows in one block; the row index takes the low 20 bits of a row id.
pub const MAX_BLOCK_ROWS: u32 = 1 << 16;
const INDEX_BITS: u32 = 20;

impl Table {
    /// The SQLite table holding this log's blocks.
    pub fn blocks(self) -> &'static str {
        match self {
            Table::Queries => "query_blocks",
            Table::Hits => "hit_blocks",
        }
    }
}

/// Writes one sealed block of `table` inside the caller's transaction; returns its id.
pub fn insert(conn: &Connection, table: Table, b: &Sealed) -> Result<i64, StoreError> {
    conn.prepare_cached(&format!(
        "INSERT INTO {} (first_ms, last_ms, rows, counts, filter, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        table.blocks()
    ))?
    .execute(params![
        b.first_ms, b.last_ms, b.rows, b.counts, b.filter, b.data
    ])?;
    Ok(conn.last_insert_rowid())
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
        identity: e.snapshot.map(|s| s.identity(e.department)),
    }
}

/// A blob column of `row`, borrowed.
fn blob<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r [u8], StoreError> {
    row.get_ref(i)?.as_blob().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, Box::new(e))
            .into()
    })
}

/// A block's data. Readers call it while their walk over the block table is still stepping on
/// the same connection, so both read one snapshot: the writer merges (`compact`) and prunes
/// blocks concurrently, and a block listed by a finished statement may be gone.
fn block_data(conn: &Connection, table: Table, id: i64) -> Result<Vec<u8>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT data FROM {} WHERE id = ?1",
            table.blocks()
        ))?
        .query_row([id], |r| r.get(0))?)
}

/// One page of `table` matching `f`, newest first (the contract of `read::list`).
///
/// Blocks are visited by descending `last_ms`; the walk stops once a full page is found and
/// the next block ends before the oldest row on it. Each block is skipped unless its action
/// counts and Bloom filter allow a match. SQLite steps between blocks, so the store's read
/// time limit interrupts a long walk within one block's decode.
pub fn list(conn: &Connection, table: Table, f: &ListFilter) -> Result<Page, StoreError> {
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
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT id, last_ms, counts, filter FROM {} \
         WHERE last_ms >= ?1 AND first_ms <= ?2 ORDER BY last_ms DESC, id DESC",
        table.blocks()
    ))?;
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
        let data = block_data(conn, table, id)?;
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
         WHERE last_ms >= ?1 AND first_ms < ?2",
        table.blocks()
    ))?;
    let mut blocks = stmt.query(params![since, until])?;
    while let Some(b) = blocks.next()? {
        let (first, last): (i64, i64) = (b.get(1)?, b.get(2)?);
        if first >= since && last < until {
            for (t, c) in totals.iter_mut().zip(read_counts(blob(b, 3)?)?) {
                *t += c;
            }
            continue;
        }
        let data = block_data(conn, table, b.get(0)?)?;
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
    while let Some(b) = blocks.next()? {
        let edge: i64 = b.get(1)?;
        if best.is_some_and(|t| if oldest { edge > t } else { edge < t }) {
            break;
        }
        if !may_contain(blob(b, 2)?, probe) {
            continue;
        }
        let data = block_data(conn, table, b.get(0)?)?;
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
        "SELECT id, filter FROM {} WHERE last_ms >= ?1 AND first_ms < ?2 ORDER BY first_ms, id",
        table.blocks()
    ))?;
    let mut blocks = stmt.query(params![since, until])?;
    while let Some(b) = blocks.next()? {
        if let Some(k) = probe
            && !may_contain(blob(b, 1)?, k)
        {
            continue;
        }
        let id: i64 = b.get(0)?;
        let data = block_data(conn, table, id)?;
        for row in Block::parse(&data)?.entries() {
            let (index, e) = row?;
            if e.time_ms >= since && e.time_ms < until {
                f((id << INDEX_BITS) | i64::from(index), &e);
            }
        }
    }
    Ok(())
}

/// Who an incident is about: its ledger asset tag, or its address when the ledger has none
/// (the incident's `client_key`, `asset:<tag>` or `ip:<address>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitOwner<'a> {
    Asset(&'a str),
    Ip(IpAddr),
}

impl<'a> HitOwner<'a> {
    /// The owner of a hit row: its asset tag if it has one, else its address.
    pub fn of(asset: Option<&'a str>, ip: IpAddr) -> Self {
        match asset {
            Some(a) => HitOwner::Asset(a),
            None => HitOwner::Ip(ip),
        }
    }

    /// Parses an incident's `client_key`.
    pub fn parse(key: &'a str) -> Option<Self> {
        if let Some(a) = key.strip_prefix("asset:") {
            return Some(HitOwner::Asset(a));
        }
        key.strip_prefix("ip:")?.parse().ok().map(HitOwner::Ip)
    }

    /// The incident `client_key` of this owner.
    pub fn key(&self) -> String {
        match self {
            HitOwner::Asset(a) => format!("asset:{a}"),
            HitOwner::Ip(ip) => format!("ip:{ip}"),
        }
    }

    fn probe(&self) -> u64 {
        match self {
            HitOwner::Asset(a) => value_key(Field::Asset, a.as_bytes()),
            HitOwner::Ip(ip) => value_key(Field::Client, &ip_key(*ip)),
        }
    }

    fn owns(&self, e: &Entry<'_>) -> bool {
        let asset = e.snapshot.and_then(|s| s.asset);
        *self == HitOwner::of(asset, e.client)
    }
}

/// The hits of `owner` in `[from_ms, to_ms]`, oldest first, at most `limit`: an incident's
/// evidence (an incident holds every hit of its client key from its first hit to its last).
///
/// Memory stays bounded by `limit` however many hits the incident has (a machine that mined
/// for a week), and the walk stops at the first block that starts after the `limit`-th
/// oldest hit found.
pub fn owner_hits(
    conn: &Connection,
    owner: HitOwner<'_>,
    from_ms: i64,
    to_ms: i64,
    limit: usize,
) -> Result<Vec<StoredRow>, StoreError> {
    let probe = owner.probe();
    let mut found: Vec<StoredRow> = Vec::new();
    let keep = |found: &mut Vec<StoredRow>| {
        found.sort_unstable_by_key(|r| (r.time_ms, r.id));
        found.truncate(limit);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT id, first_ms, filter FROM hit_blocks \
         WHERE last_ms >= ?1 AND first_ms <= ?2 ORDER BY first_ms, id",
    )?;
    let mut blocks = stmt.query(params![from_ms, to_ms])?;
    while let Some(b) = blocks.next()? {
        let first_ms: i64 = b.get(1)?;
        if found.len() >= limit {
            keep(&mut found);
            if found.last().is_some_and(|r| first_ms > r.time_ms) {
                break;
            }
        }
        if !may_contain(blob(b, 2)?, probe) {
            continue;
        }
        let id: i64 = b.get(0)?;
        let data = block_data(conn, Table::Hits, id)?;
        for row in Block::parse(&data)?.entries() {
            let (index, e) = row?;
            if e.time_ms >= from_ms && e.time_ms <= to_ms && owner.owns(&e) {
                found.push(stored_row((id << INDEX_BITS) | i64::from(index), &e));
            }
        }
        if found.len() >= limit.saturating_mul(2).max(1024) {
            keep(&mut found);
        }
    }
    keep(&mut found);
    Ok(found)
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

/// Removes rows of `table` older than `cutoff_ms`: up to `max_blocks` whole blocks, then any
/// block straddling the cut-off is rewritten without its old rows. Returns the rows removed
/// and whether whole blocks remain to delete.
pub fn prune(
    conn: &Connection,
    table: Table,
    cutoff_ms: i64,
    max_blocks: usize,
) -> Result<(usize, bool), StoreError> {
    let t = table.blocks();
    let old: Vec<(i64, i64)> = conn
        .prepare_cached(&format!(
            "SELECT id, rows FROM {t} WHERE last_ms < ?1 ORDER BY last_ms LIMIT ?2"
        ))?
        .query_map(params![cutoff_ms, max_blocks as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut removed = 0usize;
    {
        let mut delete = conn.prepare_cached(&format!("DELETE FROM {t} WHERE id = ?1"))?;
        for (id, rows) in &old {
            delete.execute([id])?;
            removed += usize::try_from(*rows).unwrap_or(0);
        }
    }
    if old.len() == max_blocks {
        return Ok((removed, true));
    }
    let straddling: Vec<i64> = conn
        .prepare_cached(&format!(
            "SELECT id FROM {t} WHERE first_ms < ?1 AND last_ms >= ?1"
        ))?
        .query_map([cutoff_ms], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in straddling {
        let data = block_data(conn, table, id)?;
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
            conn.prepare_cached(&format!(
                "UPDATE {t} SET first_ms = ?2, last_ms = ?3, rows = ?4, counts = ?5, \
                 filter = ?6, data = ?7 WHERE id = ?1"
            ))?
            .execute(params![
                id, b.first_ms, b.last_ms, b.rows, b.counts, b.filter, b.data
            ])?;
        }
    }
    Ok((removed, false))
}

/// Every row of `table` in stored order (block by block, rows as written): tests and tools
/// check what was stored with it.
#[doc(hidden)]
pub fn all_rows(conn: &Connection, table: Table) -> Result<Vec<StoredRow>, StoreError> {
    // One statement, so one snapshot: the writer may merge or prune blocks meanwhile.
    let mut stmt = conn.prepare(&format!(
        "SELECT id, data FROM {} ORDER BY id",
        table.blocks()
    ))?;
    let mut blocks = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(b) = blocks.next()? {
        let id: i64 = b.get(0)?;
        for row in Block::parse(blob(b, 1)?)?.entries() {
            let (index, e) = row?;
            out.push(stored_row((id << INDEX_BITS) | i64::from(index), &e));
        }
    }
    Ok(out)
}

/// Total rows in `table` (tests, tools).
pub fn total_rows(conn: &Connection, table: Table) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        &format!("SELECT coalesce(sum(rows), 0) FROM {}", table.blocks()),
        [],
        |r| r.get(0),
    )?)
}

/// A `queries` (schema ≤ 5) or `hits` (schema ≤ 7) row, owned.
struct LegacyRow {
    time_ms: i64,
    client: IpAddr,
    port: u16,
    transport: Transport,
    outcome: Outcome,
    strings: [Option<String>; 8],
    latency_us: u32,
    /// network, asset, mac, kind, location, owner, contact (hits only).
    snapshot: Option<[Option<String>; 7]>,
}

impl LegacyRow {
    fn entry(&self) -> Entry<'_> {
        let s = |i: usize| self.strings[i].as_deref();
        Entry {
            time_ms: self.time_ms,
            client: self.client,
            port: self.port,
            transport: self.transport,
            outcome: self.outcome,
            name: s(0).unwrap_or(""),
            qtype: s(1).unwrap_or(""),
            feed: s(2),
            rule: s(3),
            rcode: s(4).unwrap_or(""),
            answer: s(5).unwrap_or(""),
            latency_us: self.latency_us,
            upstream: s(6),
            department: s(7),
            snapshot: self.snapshot.as_ref().map(|f| {
                let g = |i: usize| f[i].as_deref();
                codec::Snapshot {
                    network: g(0),
                    asset: g(1),
                    mac: g(2),
                    kind: g(3),
                    location: g(4),
                    owner: g(5),
                    contact: g(6),
                }
            }),
        }
    }
}

/// Moves the rows of an old per-row table into blocks, in order, inside the migration's
/// transaction: `queries` (schema ≤ 5) into the query log, `hits` (schema ≤ 7) into hit blocks,
/// filling `hit_names` from them. Nothing stored is lost on upgrade.
pub fn convert_legacy(conn: &Connection, table: Table) -> Result<u64, StoreError> {
    let (old, extra) = match table {
        Table::Queries => ("queries", ""),
        Table::Hits => (
            "hits",
            ", network, asset, mac, kind, location, owner, contact",
        ),
    };
    let exists: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [old],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Ok(0);
    }
    if table == Table::Hits {
        conn.execute_batch(
            "INSERT OR IGNORE INTO hit_names (name, first_ms, last_ms) \
             SELECT name, min(time_ms), max(time_ms) FROM hits GROUP BY name",
        )?;
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT time_ms, client, port, transport, action, latency_us, name, qtype, feed, rule, \
         rcode, answer, upstream, department{extra} FROM {old} ORDER BY id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut chunk: Vec<LegacyRow> = Vec::new();
    let mut moved = 0u64;
    let flush = |chunk: &mut Vec<LegacyRow>| -> Result<(), StoreError> {
        let mut enc = BlockEncoder::default();
        for r in chunk.iter() {
            enc.push(&r.entry());
        }
        if let Some(b) = enc.seal() {
            insert(conn, table, &b)?;
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
        let snapshot = if table == Table::Hits {
            let mut f: [Option<String>; 7] = Default::default();
            for (i, slot) in f.iter_mut().enumerate() {
                *slot = r.get(14 + i)?;
            }
            Some(f)
        } else {
            None
        };
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
            snapshot,
        });
        moved += 1;
        if chunk.len() >= 4096 {
            flush(&mut chunk)?;
        }
    }
    flush(&mut chunk)?;
    if moved > 0 {
        tracing::info!(
            rows = moved,
            table = old,
            "old per-row table moved to blocks"
        );
    }
    Ok(moved)
}
