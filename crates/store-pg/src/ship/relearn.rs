//! Late identity in the group's database (issue 15, docs/IDENTITY.md, "Late leases and
//! logins"): when the identity index learned something, this node's hits in PostgreSQL that
//! no identity source named are looked up again, and the group's open `ip:` incidents are
//! told, exactly as `poolguard_store::relearn` does for a lone node's SQLite store.
//!
//! Each node re-attributes only its own rows (`hits.node`): who held an address is shared
//! (`identity_intervals`), so every node's index learns a login told to any node, and every
//! row is then looked at by the one node that shipped it, never by two at once.
//!
//! Why on the shipper thread, between shipments, rather than a task of its own: it already
//! holds the node's blocking connection, the incident statements and their transaction
//! discipline ([`super::batch::guarded`]), and taking turns with shipments means the node's
//! rows are never changed by two of its own sessions at once. DNS never waits for it: the
//! shipper is off the DNS path, and the writer only reads the watermark it raises.
//!
//! Bounded: when the index generation moved (at most every [`EVERY`]) a pass starts at the
//! node's first local block of the last [`WINDOW_MS`] and walks its rows by primary key,
//! [`PAGE_ROWS`] per step, one step per turn of the shipper's loop. A page with hits to change
//! is one transaction: the hits (only rows still without an identity source, so a repeated
//! page changes nothing), then the incidents in a savepoint, as a shipment does. A step waits
//! at most [`LOCK_TIMEOUT`] for a lock held elsewhere and is then tried again later: the
//! shipper must get back to shipping, where a wait shows as lag in `/healthz`. The index
//! moving during a pass starts another pass after it, so the rows already passed are looked
//! at again too.
//!
//! Limits: the hourly and daily rollups keep the asset and department a hit was shipped with
//! (the SQLite store's keep the department); a hit shipped after the pass passed its block and before the writer
//! rewrote it locally waits for the next time the index moves.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, Statement, Transaction};
use rusqlite::Connection;

use super::ShipError;
use super::batch::{IdentityColumns, ShipStatements, guarded};
use poolguard_clients::Identity;
use poolguard_store::blocks::HitOwner;
use poolguard_store::relearn::{self, Due, Learned, Learning, WINDOW_MS};
use poolguard_store::shipped;
use poolguard_store::writer::AttributionSource;

/// Rows read per step: one index range on the primary key, a few hundred kilobytes.
const PAGE_ROWS: i64 = 5_000;

/// At most one pass starts this often (as the writer's local sweep).
const EVERY: Duration = Duration::from_secs(5);

/// The late-identity statements, prepared with the shipper's.
#[derive(Debug)]
pub(crate) struct RelearnStatements {
    page: Statement,
    update: Statement,
    span: Statement,
}

impl RelearnStatements {
    pub(crate) fn prepare(client: &mut Client) -> Result<Self, postgres::Error> {
        Ok(Self {
            page: client.prepare(
                "SELECT local_block, local_index, time_ms, client, \
                 identity_source IS NULL AND exempt IS NULL FROM hits \
                 WHERE node = $1 AND (local_block, local_index) > ($2, $3) \
                 ORDER BY local_block, local_index LIMIT $4",
            )?,
            update: client.prepare(
                "UPDATE hits h SET client_key = u.key, network = u.network, asset = u.asset, \
                 mac = u.mac, kind = u.kind, location = u.location, \
                 department = COALESCE(u.department, h.department), owner = u.owner, \
                 contact = u.contact, account = u.account, hostname = u.hostname, \
                 identity_source = u.source, exempt = u.exempt \
                 FROM unnest($2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
                 $13::text[], $14::text[], $15::text[], $16::text[]) \
                 AS u(local_block, local_index, key, network, asset, mac, kind, location, \
                 department, owner, contact, account, hostname, source, exempt) \
                 WHERE h.node = $1 AND h.local_block = u.local_block \
                 AND h.local_index = u.local_index \
                 AND h.identity_source IS NULL AND h.exempt IS NULL",
            )?,
            // The holder's hits of the address in the group's copy, every node's: what the
            // incident's extent is compared with.
            span: client.prepare(
                "SELECT min(time_ms), max(time_ms) FROM hits \
                 WHERE client = $1 AND client_key = $2 AND time_ms >= $3",
            )?,
        })
    }
}

/// Where a pass is: its window's start and the last row looked at (block, index).
#[derive(Debug, Clone, Copy)]
struct Pass {
    since_ms: i64,
    after: (i64, i32),
}

/// One hit to change: its key in `hits`, its address and the identity it takes.
struct Change {
    block: i64,
    index: i32,
    ip: IpAddr,
    identity: Arc<Identity>,
}

/// The shipper's late-identity state.
#[derive(Debug)]
pub(crate) struct Relearning {
    who: AttributionSource,
    due: Due,
    pass: Option<Pass>,
}

impl Relearning {
    /// Re-attributes through `who`, the node writer's attribution.
    pub(crate) fn new(who: AttributionSource) -> Self {
        Self {
            who,
            due: Due::new(EVERY),
            pass: None,
        }
    }

    /// One bounded step: a page of the pass in progress, or the start of one when the index
    /// moved. Errors are the connection's or the local store's: the caller treats them like
    /// a failed shipment (the pass resumes from its last committed page).
    pub(crate) fn step(
        &mut self,
        client: &mut Client,
        st: &ShipStatements,
        local: &Connection,
        node: &str,
    ) -> Result<(), ShipError> {
        if self.pass.is_none() {
            let Some(generation) = self.who.index().map(|i| i.generation()) else {
                return Ok(());
            };
            if !self.due.take(generation) {
                return Ok(());
            }
            let since_ms = crate::now_ms() - WINDOW_MS;
            self.pass = shipped::first_block_since(local, since_ms)?.map(|first| Pass {
                since_ms,
                after: (first, -1),
            });
        }
        let Some(pass) = self.pass else {
            return Ok(());
        };
        let rows = {
            let mut tx = client.transaction()?;
            let rows = yielding(&mut tx).and_then(|()| {
                tx.query(
                    &st.relearn.page,
                    &[&node, &pass.after.0, &pass.after.1, &PAGE_ROWS],
                )
            });
            match rows {
                Err(e) if locked(&e) => return Ok(()),
                rows => rows?,
            }
        };
        // Where the next page starts; taken only once this one is done (a failed commit
        // repeats the page).
        let next = match rows.last() {
            Some(r) if rows.len() as i64 == PAGE_ROWS => Some(Pass {
                after: (r.get(0), r.get(1)),
                ..pass
            }),
            _ => None,
        };
        let mut learning = Learning::default();
        let changes: Vec<Change> = self.who.with(|who| {
            rows.iter()
                .filter_map(|r| {
                    let ip: IpAddr = r.get(3);
                    let identity = learning.relearn(who, ip, r.get(2), r.get(4), pass.since_ms)?;
                    Some(Change {
                        block: r.get(0),
                        index: r.get(1),
                        ip,
                        identity,
                    })
                })
                .collect()
        });
        if changes.is_empty() {
            self.pass = next;
            return Ok(());
        }
        let learned = learning.finish();
        let Some(incidents) = commit(client, st, node, &changes, learned, pass.since_ms)? else {
            // Someone holds `hits` or `incidents`: the page is tried again at the next step.
            return Ok(());
        };
        self.pass = next;
        metrics::counter!("poolguard_pg_reattributed_hits_total").increment(changes.len() as u64);
        tracing::info!(
            node,
            hits = changes.len(),
            incidents,
            "hits in PostgreSQL re-attributed: identity learned late"
        );
        Ok(())
    }
}

/// Writes one page's changes and tells the incidents, in one transaction; returns how many
/// incidents were told, or None when a lock held elsewhere made it give up (nothing written).
fn commit(
    client: &mut Client,
    st: &ShipStatements,
    node: &str,
    changes: &[Change],
    mut learned: Vec<Learned>,
    since_ms: i64,
) -> Result<Option<usize>, ShipError> {
    let mut tx = client.transaction()?;
    match rewrite(&mut tx, st, node, changes, &mut learned, since_ms) {
        Err(e) if locked(&e) => return Ok(None),
        done => done?,
    }
    let mut told = 0;
    let now = crate::now_ms();
    guarded(&mut tx, st, node, "late identity", |itx| {
        for l in &learned {
            told += usize::from(relearn::tell_incident(itx, l, now)?.is_some());
        }
        Ok(())
    })?;
    tx.commit()?;
    Ok(Some(told))
}

/// The page's rows take their identities; what was learned is widened to the holder's hits
/// of each address in the group's copy.
fn rewrite(
    tx: &mut Transaction<'_>,
    st: &ShipStatements,
    node: &str,
    changes: &[Change],
    learned: &mut [Learned],
    since_ms: i64,
) -> Result<(), postgres::Error> {
    yielding(tx)?;
    let block: Vec<i64> = changes.iter().map(|c| c.block).collect();
    let index: Vec<i32> = changes.iter().map(|c| c.index).collect();
    let key: Vec<String> = changes
        .iter()
        .map(|c| HitOwner::of_identity(Some(&c.identity), c.ip).key())
        .collect();
    let mut who = IdentityColumns::default();
    for c in changes {
        who.push(Some(&c.identity));
    }
    tx.execute(
        &st.relearn.update,
        &who.after(&[&node, &block, &index, &key]),
    )?;
    // What a page learned may be part of what the group's copy now knows of the holder
    // (an earlier page, another node's hits): the incident's extent is compared with all.
    for l in learned {
        let key = HitOwner::of_identity(Some(&l.identity), l.ip).key();
        let row = tx.query_one(&st.relearn.span, &[&l.ip, &key, &since_ms])?;
        let (first, last): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
        l.first_ms = first.map_or(l.first_ms, |f| f.min(l.first_ms));
        l.last_ms = last.map_or(l.last_ms, |t| t.max(l.last_ms));
    }
    Ok(())
}

/// Late identity gives way: a statement waiting longer than this for a lock (a DBA's, a
/// migration's) gives up, and the shipper goes back to shipping (and shows its lag there).
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '200ms'";

fn yielding(tx: &mut Transaction<'_>) -> Result<(), postgres::Error> {
    tx.batch_execute(LOCK_TIMEOUT)
}

/// Whether `e` is [`LOCK_TIMEOUT`] running out.
fn locked(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
}
