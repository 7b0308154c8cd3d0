//! Late identity (issue 15): a lease or a login that reaches poolguard after the hits it
//! covers (a lease file copied from the DHCP server every few minutes, accounting that the
//! NAS sent late) re-attributes those hits and the open incident they opened, and says so in
//! the incident's timeline.
//!
//! The writer runs [`sweep`] when the identity index changed (at most every
//! `writer::RELEARN_EVERY`): hit blocks of the last [`WINDOW_MS`] whose hits no identity source
//! knew are decoded, each such hit is looked up again, and a block with a hit the index now
//! knows is rewritten in place (same rows, same order, so hit ids stay). Hits an identity
//! source already named are never changed: the first word on a hit is evidence.
//! An open `ip:` incident whose hits are all covered moves to the device's key (`mac:`,
//! `account:`, `asset:`) and takes its identity; one only partly covered keeps its key and
//! gains the identity where it had none. Either way a system note records what was learned.
//! Hourly rollups keep the department a hit was first written with.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use crate::blocks::HitOwner;
use crate::blocks::codec::{Block, BlockEncoder, Entry, Snapshot};
use crate::rows::Table;
use crate::writer::Attribution;
use crate::{StoreError, incidents};
use poolguard_clients::Identity;

/// How far back a late lease or login re-attributes hits.
pub const WINDOW_MS: i64 = 24 * 3600 * 1000;

/// The hits of one address one newly known holder covers.
#[derive(Debug, Clone)]
pub struct Learned {
    pub ip: IpAddr,
    pub identity: Arc<Identity>,
    pub first_ms: i64,
    pub last_ms: i64,
    pub hits: u64,
}

/// Re-attributes the hits since `since_ms` that no identity source knew and that `who` now
/// can, block by block in the caller's transaction; returns what was learned, per address
/// and holder.
pub fn sweep(
    conn: &Connection,
    who: &Attribution<'_>,
    since_ms: i64,
) -> Result<Vec<Learned>, StoreError> {
    let t = Table::Hits.blocks();
    let blocks: Vec<(i64, Vec<u8>)> = conn
        .prepare_cached(&format!(
            "SELECT id, data FROM {t} WHERE last_ms >= ?1 ORDER BY id"
        ))?
        .query_map([since_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut learned: HashMap<(IpAddr, String), Learned> = HashMap::new();
    for (id, data) in blocks {
        let block = Block::parse(&data)?;
        let mut rows: Vec<(Entry<'_>, Option<Arc<Identity>>)> = Vec::new();
        let mut changed = false;
        for row in block.entries() {
            let (_, e) = row?;
            let unknown = e
                .snapshot
                .is_none_or(|s| s.source.is_none() && s.exempt.is_none());
            let new = (unknown && e.time_ms >= since_ms)
                .then(|| who.at(e.client, e.time_ms))
                .flatten()
                .filter(|i| i.source.is_some());
            if let Some(i) = &new {
                changed = true;
                let key = HitOwner::of_identity(Some(i), e.client).key();
                let l = learned.entry((e.client, key)).or_insert_with(|| Learned {
                    ip: e.client,
                    identity: i.clone(),
                    first_ms: e.time_ms,
                    last_ms: e.time_ms,
                    hits: 0,
                });
                l.first_ms = l.first_ms.min(e.time_ms);
                l.last_ms = l.last_ms.max(e.time_ms);
                l.hits += 1;
            }
            rows.push((e, new));
        }
        if !changed {
            continue;
        }
        let mut enc = BlockEncoder::default();
        for (e, new) in &rows {
            match new {
                Some(i) => enc.push(&Entry {
                    snapshot: Some(Snapshot::of(i)),
                    department: i.department.as_deref().or(e.department),
                    ..*e
                }),
                None => enc.push(e),
            }
        }
        let Some(s) = enc.seal() else { continue };
        crate::blocks::replace(conn, Table::Hits, id, &s)?;
    }
    let mut out: Vec<Learned> = learned.into_values().collect();
    out.sort_by_key(|l| (l.first_ms, l.ip));
    Ok(out)
}

/// Tells the open incident of `l.ip`'s address what was learned (see the module doc);
/// returns its id when there was one.
pub fn tell_incident(
    conn: &Connection,
    l: &Learned,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let ip_key = HitOwner::Ip(l.ip).key();
    let open: Option<(i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT id, opened_ms, last_hit_ms FROM incidents \
             WHERE client_key = ?1 AND status != 'closed'",
        )?
        .query_row([&ip_key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((id, opened, last)) = open else {
        return Ok(None);
    };
    let i = &l.identity;
    let key = HitOwner::of_identity(Some(i), l.ip).key();
    let covered = l.first_ms <= opened && last <= l.last_ms;
    let key_free = conn
        .prepare_cached("SELECT 1 FROM incidents WHERE client_key = ?1 AND status != 'closed'")?
        .query_row([&key], |_| Ok(()))
        .optional()?
        .is_none();
    let moved = covered && key_free;
    conn.prepare_cached(
        "UPDATE incidents SET \
           client_key = CASE WHEN ?2 THEN ?3 ELSE client_key END, \
           mac = coalesce(mac, ?4), account = coalesce(account, ?5), \
           hostname = coalesce(hostname, ?6), identity_source = coalesce(identity_source, ?7), \
           asset = coalesce(asset, ?8), ledger_owner = coalesce(ledger_owner, ?9), \
           contact = coalesce(contact, ?10), department = coalesce(department, ?11), \
           device = coalesce(device, ?8), owner = coalesce(owner, ?9) \
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        moved,
        key,
        i.mac,
        i.account,
        i.hostname,
        i.source,
        i.asset,
        i.owner,
        i.contact,
        i.department,
    ])?;
    let who = [
        i.mac.as_deref().map(|m| format!("MAC {m}")),
        i.account.as_deref().map(|a| format!("account {a}")),
        i.hostname.as_deref().map(|h| format!("host {h}")),
        i.owner.as_deref().map(|o| format!("owner {o}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    let text = format!(
        "Identity learned late ({}): {who} held {} from {} to {}; {} earlier hit(s) re-attributed{}.",
        i.source.as_deref().unwrap_or("identity"),
        l.ip,
        poolguard_model::rfc3339(l.first_ms),
        poolguard_model::rfc3339(l.last_ms),
        l.hits,
        if moved {
            format!("; the incident now follows {key}")
        } else {
            String::new()
        },
    );
    incidents::add_note(conn, id, now_ms, "system", &text)?;
    Ok(Some(id))
}
