//! An incident's evidence: who it is about ([`HitOwner`], its client key) and its hits, found
//! by walking `hit_blocks` with the owner's filter key.

use std::net::IpAddr;

use rusqlite::{Connection, params};

use super::codec::{Block, Entry};
use super::filter::{Field, may_contain, value_key};
use super::{DataReader, INDEX_BITS, blob, stored_row};
use crate::rows::{StoredRow, Table};
use crate::{StoreError, ip_key};

/// Who an incident is about (the incident's `client_key`): the best identity its first hit
/// had, so an incident follows the device, not the address (issue 15). In order: the ledger's
/// asset tag (`asset:<tag>`), else the MAC that held the address (`mac:<aa:bb:…>`), else the
/// login (`account:<name>`, lower-cased: accounts compare case-insensitively), else the address
/// (`ip:<address>`). A machine that moves to a new address keeps its incident; two machines
/// that held one address at different times get one each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitOwner<'a> {
    Asset(&'a str),
    Mac(&'a str),
    /// As stored; compared and keyed lower-cased.
    Account(&'a str),
    Ip(IpAddr),
}

impl<'a> HitOwner<'a> {
    /// The owner of a hit row from its identity snapshot (asset, MAC, account) and address.
    pub fn of(
        asset: Option<&'a str>,
        mac: Option<&'a str>,
        account: Option<&'a str>,
        ip: IpAddr,
    ) -> Self {
        let some = |v: Option<&'a str>| v.filter(|v| !v.is_empty());
        if let Some(a) = some(asset) {
            HitOwner::Asset(a)
        } else if let Some(m) = some(mac) {
            HitOwner::Mac(m)
        } else if let Some(a) = some(account) {
            HitOwner::Account(a)
        } else {
            HitOwner::Ip(ip)
        }
    }

    /// The owner of a hit with ledger/holder `identity` from `ip`.
    pub fn of_identity(identity: Option<&'a poolguard_clients::Identity>, ip: IpAddr) -> Self {
        Self::of(
            identity.and_then(|i| i.asset.as_deref()),
            identity.and_then(|i| i.mac.as_deref()),
            identity.and_then(|i| i.account.as_deref()),
            ip,
        )
    }

    /// Parses an incident's `client_key`.
    pub fn parse(key: &'a str) -> Option<Self> {
        let (kind, value) = key.split_once(':')?;
        match kind {
            "asset" => Some(HitOwner::Asset(value)),
            "mac" => Some(HitOwner::Mac(value)),
            "account" => Some(HitOwner::Account(value)),
            "ip" => value.parse().ok().map(HitOwner::Ip),
            _ => None,
        }
    }

    /// The incident `client_key` of this owner.
    pub fn key(&self) -> String {
        match self {
            HitOwner::Asset(a) => format!("asset:{a}"),
            HitOwner::Mac(m) => format!("mac:{m}"),
            HitOwner::Account(a) => format!("account:{}", a.to_lowercase()),
            HitOwner::Ip(ip) => format!("ip:{ip}"),
        }
    }

    fn probe(&self) -> u64 {
        match self {
            HitOwner::Asset(a) => value_key(Field::Asset, a.as_bytes()),
            HitOwner::Mac(m) => value_key(Field::Mac, m.as_bytes()),
            HitOwner::Account(a) => value_key(Field::Account, a.to_lowercase().as_bytes()),
            HitOwner::Ip(ip) => value_key(Field::Client, &ip_key(*ip)),
        }
    }

    fn owns(&self, e: &Entry<'_>) -> bool {
        // An address's incident holds every hit from the address in its time, including
        // hits re-attributed to a device after a late lease (`crate::relearn`).
        if let HitOwner::Ip(ip) = self {
            return e.client == *ip;
        }
        let s = e.snapshot.unwrap_or_default();
        match (self, HitOwner::of(s.asset, s.mac, s.account, e.client)) {
            (HitOwner::Account(a), HitOwner::Account(b)) => poolguard_model::text::same_text(a, b),
            (a, b) => *a == b,
        }
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
    let mut data = DataReader::new(conn, Table::Hits);
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
        for row in Block::parse(data.read(id)?)?.entries() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incident_is_keyed_by_the_best_identity_its_hit_had() {
        let ip: IpAddr = "10.12.3.45".parse().unwrap();
        let mac = Some("00:1a:2b:3c:4d:5e");
        assert_eq!(
            HitOwner::of(Some("PC-7"), mac, Some("lina"), ip).key(),
            "asset:PC-7"
        );
        assert_eq!(
            HitOwner::of(None, mac, Some("lina"), ip).key(),
            "mac:00:1a:2b:3c:4d:5e"
        );
        assert_eq!(
            HitOwner::of(None, None, Some("LiNa"), ip).key(),
            "account:lina"
        );
        assert_eq!(
            HitOwner::of(Some(""), None, None, ip).key(),
            "ip:10.12.3.45"
        );
        for key in [
            "asset:PC-7",
            "mac:00:1a:2b:3c:4d:5e",
            "account:lina",
            "ip:10.12.3.45",
        ] {
            assert_eq!(HitOwner::parse(key).map(|o| o.key()).as_deref(), Some(key));
        }
        assert_eq!(HitOwner::parse("serial:42"), None);
        assert_eq!(HitOwner::parse("ip:not-an-address"), None);
    }
}
