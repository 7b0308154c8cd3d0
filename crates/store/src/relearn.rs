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
//! gains the identity where it had none. Either way a system note records what was learned
//! ([`tell_incident`], written against [`IncidentTx`] so the PostgreSQL backend's shipper
//! tells the group's incidents in the same words; it looks its hits up again with the same
//! [`Learning`]). Hourly rollups keep the department a hit was first written with.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::StoreError;
use crate::blocks::HitOwner;
use crate::blocks::codec::{Block, BlockEncoder, Entry, Snapshot};
use crate::hook::IncidentTx;
use crate::rows::Table;
use crate::writer::Attribution;
use poolguard_clients::Identity;

/// How far back a late lease or login re-attributes hits.
pub const WINDOW_MS: i64 = 24 * 3600 * 1000;

/// When a sweep is due: the identity index moved (its generation) since the last sweep, and
/// the pause after that one is over.
#[derive(Debug)]
pub struct Due {
    swept: u64,
    next: Instant,
    every: Duration,
}

impl Due {
    /// At most one sweep per `every`; the first as soon as the index has anything.
    pub fn new(every: Duration) -> Self {
        Self {
            swept: 0,
            next: Instant::now(),
            every,
        }
    }

    /// True when a sweep for index `generation` is due now; it then counts as started.
    pub fn take(&mut self, generation: u64) -> bool {
        let now = Instant::now();
        if generation == self.swept || now < self.next {
            return false;
        }
        self.swept = generation;
        self.next = now + self.every;
        true
    }
}

/// The hits of one address one newly known holder covers.
#[derive(Debug, Clone)]
pub struct Learned {
    pub ip: IpAddr,
    pub identity: Arc<Identity>,
    pub first_ms: i64,
    pub last_ms: i64,
    pub hits: u64,
}

/// What a sweep learned so far, per address and holder: both stores' sweeps look each hit up
/// through [`Learning::relearn`], so they decide alike which hits change.
#[derive(Debug, Default)]
pub struct Learning {
    learned: HashMap<(IpAddr, String), Learned>,
}

impl Learning {
    /// The identity a hit from `ip` at `time_ms` takes now, if it takes one: only a hit that
    /// no identity source named and that no exempt entry marked (`unknown`), from `since_ms`
    /// on, and only when an identity source names its holder now. Counted in what was learned.
    pub fn relearn(
        &mut self,
        who: &Attribution<'_>,
        ip: IpAddr,
        time_ms: i64,
        unknown: bool,
        since_ms: i64,
    ) -> Option<Arc<Identity>> {
        let i = (unknown && time_ms >= since_ms)
            .then(|| who.at(ip, time_ms))
            .flatten()
            .filter(|i| i.source.is_some())?;
        let key = HitOwner::of_identity(Some(&i), ip).key();
        let l = self.learned.entry((ip, key)).or_insert_with(|| Learned {
            ip,
            identity: i.clone(),
            first_ms: time_ms,
            last_ms: time_ms,
            hits: 0,
        });
        l.first_ms = l.first_ms.min(time_ms);
        l.last_ms = l.last_ms.max(time_ms);
        l.hits += 1;
        Some(i)
    }

    /// What was learned, oldest first.
    pub fn finish(self) -> Vec<Learned> {
        let mut out: Vec<Learned> = self.learned.into_values().collect();
        out.sort_by_key(|l| (l.first_ms, l.ip));
        out
    }
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
    let mut learning = Learning::default();
    for (id, data) in blocks {
        let block = Block::parse(&data)?;
        let mut rows: Vec<(Entry<'_>, Option<Arc<Identity>>)> = Vec::new();
        let mut changed = false;
        // In the order written, so each row keeps its index (its id) when re-encoded.
        for (_, e) in block.rows_as_written()? {
            let unknown = e
                .snapshot
                .is_none_or(|s| s.source.is_none() && s.exempt.is_none());
            let new = learning.relearn(who, e.client, e.time_ms, unknown, since_ms);
            changed |= new.is_some();
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
        let Some(mut s) = enc.seal() else { continue };
        // A block compaction merged stays grouped by client.
        if block.is_grouped()
            && let Some(grouped) = crate::blocks::codec::regroup(&s.data)?
        {
            s.data = grouped;
        }
        crate::blocks::replace(conn, Table::Hits, id, &s)?;
    }
    Ok(learning.finish())
}

/// Tells the open incident of `l.ip`'s address what was learned (see the module doc), in
/// `tx`'s store; returns its id when there was one.
pub fn tell_incident(
    tx: &dyn IncidentTx,
    l: &Learned,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let Some(open) = tx.open_incident_span(&HitOwner::Ip(l.ip).key())? else {
        return Ok(None);
    };
    let key = HitOwner::of_identity(Some(&l.identity), l.ip).key();
    let covered = l.first_ms <= open.opened_ms && open.last_hit_ms <= l.last_ms;
    let moved = covered && tx.open_incident_of(&key)?.is_none();
    let new_key = moved.then_some(key.as_str());
    tx.learn_identity(open.id, new_key, &l.identity)?;
    tx.add_system_note(open.id, now_ms, &note(l, new_key))?;
    Ok(Some(open.id))
}

/// The system note: what was learned, how many hits changed, and the incident's new key.
fn note(l: &Learned, moved_to: Option<&str>) -> String {
    let i = &l.identity;
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
    format!(
        "Identity learned late ({}): {who} held {} from {} to {}; {} earlier hit(s) re-attributed{}.",
        i.source.as_deref().unwrap_or("identity"),
        l.ip,
        poolguard_model::rfc3339(l.first_ms),
        poolguard_model::rfc3339(l.last_ms),
        l.hits,
        moved_to
            .map(|k| format!("; the incident now follows {k}"))
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hook::{NewIncident, Opening};
    use crate::incidents_tx::SqliteIncidentTx;

    const IP: &str = "10.0.0.5";

    fn store() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::Store::open(&dir.path().join("t.db")).expect("store");
        let conn = store.write_connection().expect("conn");
        (dir, conn)
    }

    /// Opens `key`'s incident with hits from `first` to `last`; returns its id.
    fn incident(tx: &SqliteIncidentTx<'_>, key: &str, first: i64, last: i64) -> i64 {
        let nobody = Identity::default();
        let new = NewIncident {
            key,
            ip: IP.parse().expect("ip"),
            identity: &nobody,
            first_hit_ms: first,
            identify_due_ms: first + 10,
            report_due_ms: first + 20,
        };
        let Ok(Opening::Opened(i)) = tx.open_incident(&new) else {
            panic!("{key} opened");
        };
        tx.fold_hits(
            i.id,
            &crate::hook::HitFold {
                last_hit_ms: last,
                hits: 1,
                severity: poolguard_model::Severity::High,
                feeds: "mining",
                categories: "mining",
            },
            crate::hook::FoldGuard::OpenOnly,
        )
        .expect("fold");
        i.id
    }

    fn learned(first_ms: i64, last_ms: i64) -> Learned {
        Learned {
            ip: IP.parse().expect("ip"),
            identity: Arc::new(Identity {
                mac: Some("00:1a:2b:3c:4d:5f".into()),
                account: Some("lina".into()),
                source: Some("radius".into()),
                ..Identity::default()
            }),
            first_ms,
            last_ms,
            hits: 2,
        }
    }

    fn key_and_account(conn: &Connection, id: i64) -> (String, Option<String>) {
        conn.query_row(
            "SELECT client_key, account FROM incidents WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("incident")
    }

    fn notes(conn: &Connection, id: i64) -> Vec<String> {
        crate::incidents::notes(conn, id)
            .expect("notes")
            .into_iter()
            .map(|n| n.text)
            .collect()
    }

    #[test]
    fn a_covered_incident_moves_to_the_device_and_says_so() {
        let (_dir, conn) = store();
        let tx = SqliteIncidentTx::new(&conn);
        let id = incident(&tx, "ip:10.0.0.5", 1_000, 2_000);
        assert_eq!(
            tell_incident(&tx, &learned(1_000, 2_000), 3_000).expect("told"),
            Some(id)
        );
        assert_eq!(
            key_and_account(&conn, id),
            ("mac:00:1a:2b:3c:4d:5f".into(), Some("lina".into()))
        );
        let notes = notes(&conn, id);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("Identity learned late (radius): MAC 00:1a:2b:3c:4d:5f, account lina held 10.0.0.5 from ")
                && notes[0].ends_with("; 2 earlier hit(s) re-attributed; the incident now follows mac:00:1a:2b:3c:4d:5f."),
            "{notes:?}"
        );
    }

    #[test]
    fn a_partly_covered_incident_keeps_its_key_and_gains_the_identity() {
        let (_dir, conn) = store();
        let tx = SqliteIncidentTx::new(&conn);
        let id = incident(&tx, "ip:10.0.0.5", 1_000, 5_000);
        tell_incident(&tx, &learned(1_000, 2_000), 6_000).expect("told");
        assert_eq!(
            key_and_account(&conn, id),
            ("ip:10.0.0.5".into(), Some("lina".into()))
        );
        assert!(
            notes(&conn, id)[0].ends_with("; 2 earlier hit(s) re-attributed."),
            "no move named"
        );
    }

    #[test]
    fn a_device_with_an_open_incident_of_its_own_leaves_the_address_its_key() {
        let (_dir, conn) = store();
        let tx = SqliteIncidentTx::new(&conn);
        let id = incident(&tx, "ip:10.0.0.5", 1_000, 2_000);
        incident(&tx, "mac:00:1a:2b:3c:4d:5f", 1_500, 1_500);
        tell_incident(&tx, &learned(1_000, 2_000), 3_000).expect("told");
        assert_eq!(key_and_account(&conn, id).0, "ip:10.0.0.5");
    }

    #[test]
    fn no_open_incident_of_the_address_is_told_nothing() {
        let (_dir, conn) = store();
        let tx = SqliteIncidentTx::new(&conn);
        assert_eq!(
            tell_incident(&tx, &learned(1_000, 2_000), 3_000).expect("none"),
            None
        );
    }

    #[test]
    fn a_sweep_is_due_once_per_generation_and_pause() {
        let mut due = Due::new(Duration::ZERO);
        assert!(!due.take(0), "an empty index has nothing to teach");
        assert!(due.take(1));
        assert!(!due.take(1), "the same generation again");
        assert!(due.take(2));
        let mut paced = Due::new(Duration::from_secs(3600));
        assert!(paced.take(1));
        assert!(!paced.take(2), "not before the pause is over");
    }
}
