//! An incident's evidence: who it is about ([`HitOwner`], its client key) and its hits, found
//! by walking `hit_blocks` with the owner's filter key.

use std::net::IpAddr;

use rusqlite::{Connection, params};

use super::codec::{Block, Entry};
use super::filter::{Field, may_contain, value_key};
use super::{INDEX_BITS, blob, block_data, stored_row};
use crate::rows::{StoredRow, Table};
use crate::{StoreError, ip_key};

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
