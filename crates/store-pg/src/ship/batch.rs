//! One shipment: local hit blocks into PostgreSQL in one transaction, with the incident
//! tracker and this node's cursor.
//!
//! Order inside the transaction: lock this node's `ship_cursor` row and check it still says
//! what the shipper read (a second shipper of the same node, e.g. a restarted one while the
//! old is still finishing, waits here and then finds the cursor moved); insert the hits
//! (`unnest` arrays, one statement per [`INSERT_ROWS`], `ON CONFLICT DO NOTHING` on the
//! primary key as a second guard); upsert `hit_names`; run the hook, each step in a savepoint
//! as the SQLite writer does, so a failing hook never costs a hit; move the cursor; commit.
//! Hits and cursor commit together, so each hit is stored exactly once and the tracker counts
//! it exactly once.

use std::collections::BTreeMap;
use std::net::IpAddr;

use postgres::types::ToSql;
use postgres::{Client, Statement, Transaction};

use super::ShipError;
use super::relearn::RelearnStatements;
use crate::incident_tx::{IncidentStatements, PgIncidentTx};
use poolguard_clients::Identity;
use poolguard_record::QueryEvent;
use poolguard_store::StoreError;
use poolguard_store::blocks::HitOwner;
use poolguard_store::hook::{BatchHook, HitRow};
use poolguard_store::shipped::LocalHitBlock;

/// Rows per INSERT statement: 24 arrays of this length are one message to the server.
const INSERT_ROWS: usize = 5000;

/// The shipper's statements, prepared once per connection.
#[derive(Debug)]
pub(crate) struct ShipStatements {
    cursor_lock: Statement,
    cursor_set: Statement,
    hits: Statement,
    names: Statement,
    incidents: IncidentStatements,
    pub(super) relearn: RelearnStatements,
}

impl ShipStatements {
    pub(crate) fn prepare(client: &mut Client) -> Result<Self, postgres::Error> {
        Ok(Self {
            cursor_lock: client
                .prepare("SELECT local_block FROM ship_cursor WHERE node = $1 FOR UPDATE")?,
            cursor_set: client.prepare(
                "UPDATE ship_cursor SET local_block = $2, shipped_ms = $3 WHERE node = $1",
            )?,
            hits: client.prepare(
                "INSERT INTO hits (node, local_block, local_index, time_ms, client, client_key, \
                 port, transport, name, qtype, action, feed, rule, rcode, answer, latency_us, \
                 upstream, network, asset, mac, kind, location, department, owner, contact, \
                 account, hostname, identity_source, exempt) \
                 SELECT $1::text, * FROM unnest($2::bigint[], $3::int[], $4::bigint[], \
                 $5::inet[], $6::text[], $7::int[], $8::text[], $9::text[], $10::text[], \
                 $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::int[], \
                 $17::text[], $18::text[], $19::text[], $20::text[], $21::text[], $22::text[], \
                 $23::text[], $24::text[], $25::text[], $26::text[], $27::text[], \
                 $28::text[], $29::text[]) \
                 ON CONFLICT DO NOTHING",
            )?,
            names: client.prepare(
                "INSERT INTO hit_names (name, first_ms, last_ms) \
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) \
                 ON CONFLICT (name) DO UPDATE SET \
                 first_ms = LEAST(hit_names.first_ms, excluded.first_ms), \
                 last_ms = GREATEST(hit_names.last_ms, excluded.last_ms)",
            )?,
            incidents: IncidentStatements::prepare(client)?,
            relearn: RelearnStatements::prepare(client)?,
        })
    }
}

/// Makes sure this node has a cursor row and returns it: the last local block shipped.
pub(crate) fn read_cursor(client: &mut Client, node: &str) -> Result<i64, postgres::Error> {
    client.execute(
        "INSERT INTO ship_cursor (node, local_block, shipped_ms) VALUES ($1, 0, $2) \
         ON CONFLICT (node) DO NOTHING",
        &[&node, &crate::now_ms()],
    )?;
    Ok(client
        .query_one(
            "SELECT local_block FROM ship_cursor WHERE node = $1",
            &[&node],
        )?
        .get(0))
}

/// What one shipment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shipped {
    /// Committed: the cursor is now `through`; `inserted` rows were new to PostgreSQL.
    Committed { through: i64, inserted: u64 },
    /// The cursor was not where this shipper left it (another shipper of this node moved
    /// it): nothing was written; resume from `at`.
    CursorMoved { at: i64 },
}

/// Where a test stops a shipment, as if the process died there.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitPoint {
    /// Everything written, the transaction not committed: PostgreSQL rolls it back.
    BeforeCommit,
    /// Committed, but neither the hook nor the watermark told: the next shipper finds the
    /// cursor moved and ships nothing twice.
    AfterCommit,
}

/// Ships `blocks` (all above `after`, in id order) in one transaction.
pub(crate) fn ship(
    client: &mut Client,
    st: &ShipStatements,
    node: &str,
    after: i64,
    blocks: &[LocalHitBlock],
    hook: Option<&dyn BatchHook>,
    exit: Option<ExitPoint>,
) -> Result<Shipped, ShipError> {
    let Some(through) = blocks.last().map(|b| b.id) else {
        return Ok(Shipped::Committed {
            through: after,
            inserted: 0,
        });
    };
    let mut tx = client.transaction()?;
    let at: i64 = tx.query_one(&st.cursor_lock, &[&node])?.get(0);
    if at != after {
        return Ok(Shipped::CursorMoved { at });
    }
    let mut inserted = 0u64;
    for chunk in chunks(blocks, INSERT_ROWS) {
        inserted += insert_hits(&mut tx, &st.hits, node, &chunk)?;
    }
    upsert_names(&mut tx, &st.names, blocks)?;
    if let Some(hook) = hook {
        let (events, hits) = hook_rows(blocks);
        // Shipped hits may be older than what the tracker has seen (another node's, or ours
        // after an outage): they are handled as the SQLite writer handles spool replays.
        guarded(&mut tx, st, node, "incident tracking", |itx| {
            hook.on_hits(itx, &events, &hits, true)
        })?;
        guarded(&mut tx, st, node, "repeat-offender check", |itx| {
            hook.end_batch(itx)
        })?;
    }
    tx.execute(&st.cursor_set, &[&node, &through, &crate::now_ms()])?;
    if exit == Some(ExitPoint::BeforeCommit) {
        return Err(ShipError::Exit);
    }
    tx.commit()?;
    if exit == Some(ExitPoint::AfterCommit) {
        return Err(ShipError::Exit);
    }
    if let Some(hook) = hook {
        hook.committed();
    }
    Ok(Shipped::Committed { through, inserted })
}

/// Runs one hook step in a savepoint. A failure the statement caused is rolled back to the
/// savepoint, logged and counted, and the hits are kept (as on SQLite); a deadlock with
/// another node or a lost connection fails the shipment, which is retried whole.
pub(super) fn guarded(
    tx: &mut Transaction<'_>,
    st: &ShipStatements,
    node: &str,
    what: &'static str,
    f: impl FnOnce(&PgIncidentTx<'_, '_>) -> Result<(), StoreError>,
) -> Result<(), ShipError> {
    let mut sp = tx.savepoint("tracking")?;
    let (result, retry) = {
        let itx = PgIncidentTx::new(&mut sp, &st.incidents, node);
        let result = f(&itx);
        (result, itx.retry_whole_batch())
    };
    match result {
        Ok(()) => sp.commit()?,
        Err(e) if retry => return Err(ShipError::Tracking(e)),
        Err(error) => {
            sp.rollback()?;
            metrics::counter!("poolguard_incident_errors_total").increment(1);
            tracing::warn!(%error, what, "incident bookkeeping failed; the hit is kept");
        }
    }
    Ok(())
}

/// The blocks' hits in slices of at most `n` rows, each row with its block id.
fn chunks(
    blocks: &[LocalHitBlock],
    n: usize,
) -> Vec<Vec<(i64, &poolguard_store::shipped::LocalHit)>> {
    let mut out = vec![Vec::new()];
    for b in blocks {
        for h in &b.hits {
            if out.last().is_some_and(|c| c.len() >= n) {
                out.push(Vec::new());
            }
            if let Some(last) = out.last_mut() {
                last.push((b.id, h));
            }
        }
    }
    out.retain(|c| !c.is_empty());
    out
}

/// One multi-row INSERT of `rows`; returns how many were new.
fn insert_hits(
    tx: &mut Transaction<'_>,
    stmt: &Statement,
    node: &str,
    rows: &[(i64, &poolguard_store::shipped::LocalHit)],
) -> Result<u64, postgres::Error> {
    let n = rows.len();
    let mut block = Vec::with_capacity(n);
    let mut index = Vec::with_capacity(n);
    let mut time = Vec::with_capacity(n);
    let mut client: Vec<IpAddr> = Vec::with_capacity(n);
    let mut key = Vec::with_capacity(n);
    let mut port = Vec::with_capacity(n);
    let mut transport = Vec::with_capacity(n);
    let mut name = Vec::with_capacity(n);
    let mut qtype = Vec::with_capacity(n);
    let mut action = Vec::with_capacity(n);
    let mut feed = Vec::with_capacity(n);
    let mut rule = Vec::with_capacity(n);
    let mut rcode = Vec::with_capacity(n);
    let mut answer = Vec::with_capacity(n);
    let mut latency = Vec::with_capacity(n);
    let mut upstream = Vec::with_capacity(n);
    let mut who = IdentityColumns::default();
    for &(id, h) in rows {
        let e = &h.event;
        let ip = e.client.ip().to_canonical();
        let identity = h.identity.as_deref();
        block.push(id);
        index.push(h.index as i32);
        time.push(e.time_ms);
        client.push(ip);
        key.push(HitOwner::of_identity(identity, ip).key());
        port.push(i32::from(e.client.port()));
        transport.push(e.transport.as_str());
        name.push(&*e.name);
        qtype.push(&*e.qtype);
        action.push(e.outcome.as_str());
        feed.push(e.feed.as_deref());
        rule.push(e.rule.as_deref());
        rcode.push(e.rcode);
        answer.push(&*e.answer);
        latency.push(i32::try_from(e.latency_us).unwrap_or(i32::MAX));
        upstream.push(e.upstream.as_deref());
        who.push(identity);
    }
    tx.execute(
        stmt,
        &who.after(&[
            &node, &block, &index, &time, &client, &key, &port, &transport, &name, &qtype, &action,
            &feed, &rule, &rcode, &answer, &latency, &upstream,
        ]),
    )
}

/// The identity columns of a multi-row statement on `hits`, one array per column, in table
/// order: network, asset, mac, kind, location, department, owner, contact, account, hostname,
/// identity_source, exempt. What a shipped hit gets, and what a hit re-attributed late gets
/// (`super::relearn`).
#[derive(Debug, Default)]
pub(super) struct IdentityColumns<'a>([Vec<Option<&'a str>>; 12]);

impl<'a> IdentityColumns<'a> {
    /// Adds one row's values (all NULL without an identity).
    pub(super) fn push(&mut self, identity: Option<&'a Identity>) {
        let values = identity.map(|i| {
            [
                i.network.as_deref(),
                i.asset.as_deref(),
                i.mac.as_deref(),
                i.kind.as_deref(),
                i.location.as_deref(),
                i.department.as_deref(),
                i.owner.as_deref(),
                i.contact.as_deref(),
                i.account.as_deref(),
                i.hostname.as_deref(),
                i.source.as_deref(),
                i.exempt.as_deref(),
            ]
        });
        for (column, value) in self.0.iter_mut().zip(values.unwrap_or_default()) {
            column.push(value);
        }
    }

    /// The arrays as statement parameters, after `first` (the statement's other ones).
    pub(super) fn after<'p>(
        &'p self,
        first: &[&'p (dyn ToSql + Sync)],
    ) -> Vec<&'p (dyn ToSql + Sync)> {
        let mut all = first.to_vec();
        all.extend(self.0.iter().map(|c| c as &(dyn ToSql + Sync)));
        all
    }
}

/// Each blocked name's first and last hit in `blocks`, upserted in name order (two nodes
/// upserting the same names lock them in the same order, so they cannot deadlock here).
fn upsert_names(
    tx: &mut Transaction<'_>,
    stmt: &Statement,
    blocks: &[LocalHitBlock],
) -> Result<(), postgres::Error> {
    let mut names: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for h in blocks.iter().flat_map(|b| &b.hits) {
        let t = h.event.time_ms;
        names
            .entry(&h.event.name)
            .and_modify(|(first, last)| {
                *first = (*first).min(t);
                *last = (*last).max(t);
            })
            .or_insert((t, t));
    }
    let (mut name, mut first, mut last) = (Vec::new(), Vec::new(), Vec::new());
    for (n, (f, l)) in names {
        name.push(n);
        first.push(f);
        last.push(l);
    }
    tx.execute(stmt, &[&name, &first, &last])?;
    Ok(())
}

/// What [`BatchHook::on_hits`] takes: the events and a hit row for each (every shipped row is
/// a hit).
fn hook_rows(blocks: &[LocalHitBlock]) -> (Vec<QueryEvent>, Vec<HitRow>) {
    let mut events = Vec::new();
    let mut hits = Vec::new();
    for h in blocks.iter().flat_map(|b| &b.hits) {
        hits.push(HitRow {
            index: events.len(),
            ip: h.event.client.ip().to_canonical(),
            identity: h.identity.clone(),
        });
        events.push(h.event.clone());
    }
    (events, hits)
}
