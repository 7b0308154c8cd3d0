//! Upgrading from the per-row tables (`queries` up to schema 5, `hits` up to schema 7): their
//! rows are moved into blocks during the migration.

use std::net::IpAddr;

use rusqlite::{Connection, OptionalExtension};

use super::codec::{self, BlockEncoder, Entry, OUTCOMES};
use super::{insert, outcome_named};
use crate::StoreError;
use crate::rows::Table;
use poolguard_record::{Outcome, Transport};

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
                    ..codec::Snapshot::default()
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
            transport: Transport::from_name(&transport).unwrap_or(Transport::Udp),
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
