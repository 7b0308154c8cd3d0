//! One batch into SQLite: the rows of a batch become blocks, and the incident hook runs in the
//! same transaction, inside savepoints so its failures never cost a hit row.
//!
//! A batch is one transaction ([`write_batch`]): at most one query-log block and one hit block
//! per 65 536 rows (`crate::blocks`), the `hit_names` upserts, the replay position when the
//! batch comes from the spool, then the [`BatchHook`]'s bookkeeping ([`guarded`]). Bulk tools
//! call [`insert_events`] to write exactly the rows the writer would.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rusqlite::{Connection, params};

use crate::StoreError;
use crate::blocks::{self, codec::BlockEncoder, codec::Entry, codec::Sealed};
use crate::hook::{BatchHook, HitRow};
use crate::hour_names::{HourNames, Written};
use crate::incidents_tx::SqliteIncidentTx;
use crate::known_names::KnownNames;
use crate::rows::Table;
use poolguard_clients::{Identity, Ledger, SharedLedger};
use poolguard_identity::{Exempt, IdentityIndex, SharedIdentities};
use poolguard_record::QueryEvent;

/// Writes one batch in one transaction; returns (query rows, hit rows) written. Hits are
/// attributed through the ledger and the identity index (when one is plugged in). `replayed`
/// (spool file id, offset) is stored in the same transaction when the batch is a replay.
pub(super) fn write_batch(
    conn: &mut Connection,
    batch: &[QueryEvent],
    (ledger, identities, exempt): (&SharedLedger, Option<&IdentityIndex>, Option<&Exempt>),
    log_queries: bool,
    tracker: Option<&dyn BatchHook>,
    (known, hour_names): (&mut KnownNames, &HourNames),
    replayed: Option<(&str, u64)>,
) -> Result<(u64, u64), StoreError> {
    let ledger = ledger.load();
    let mut written = Vec::new();
    let tx = conn.transaction()?;
    if let Some((id, end)) = replayed {
        tx.prepare_cached(
            "INSERT INTO spool_replay (id, spool_id, byte_offset) VALUES (1, ?1, ?2) \
             ON CONFLICT(id) DO UPDATE SET spool_id = excluded.spool_id, \
             byte_offset = excluded.byte_offset",
        )?
        .execute(params![id, i64::try_from(end).unwrap_or(i64::MAX)])?;
    }
    let Some(tracker) = tracker else {
        let who = Attribution {
            ledger: &ledger,
            identities,
            exempt,
        };
        let rows = insert_attributed(
            &tx,
            batch,
            &who,
            log_queries,
            None,
            Some(known),
            Some(&mut written),
        )?;
        tx.commit()?;
        hour_names.note(&written);
        return Ok(rows);
    };
    // Incident bookkeeping must never cost evidence: the whole batch's tracking runs in one
    // savepoint after the hit rows are in, and a failure there is rolled back and logged
    // while the hit rows themselves are kept. Once per batch, not per hit: grouped by client,
    // a burst of hits costs one incident lookup and update (see `Tracker::on_hits`).
    let mut hits = Vec::new();
    let who = Attribution {
        ledger: &ledger,
        identities,
        exempt,
    };
    let rows = insert_attributed(
        &tx,
        batch,
        &who,
        log_queries,
        Some(&mut hits),
        Some(known),
        Some(&mut written),
    )?;
    guarded(&tx, "incident tracking", |c| {
        tracker.on_hits(&SqliteIncidentTx::new(c), batch, &hits, replayed.is_some())
    })?;
    guarded(&tx, "repeat-offender check", |c| {
        tracker.end_batch(&SqliteIncidentTx::new(c))
    })?;
    tx.commit()?;
    hour_names.note(&written);
    // Only committed changes are announced and enforced.
    tracker.committed();
    Ok(rows)
}

/// Runs `f` inside a savepoint; on error rolls it back, logs and counts, and carries on.
fn guarded(
    conn: &Connection,
    what: &'static str,
    f: impl FnOnce(&Connection) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    // Cached statements: `execute_batch` would parse and plan the SQL again for every hit.
    conn.prepare_cached("SAVEPOINT tracking")?.execute([])?;
    match f(conn) {
        Ok(()) => {
            conn.prepare_cached("RELEASE tracking")?.execute([])?;
        }
        Err(error) => {
            conn.execute_batch("ROLLBACK TO tracking; RELEASE tracking")?;
            metrics::counter!("poolguard_incident_errors_total").increment(1);
            tracing::warn!(%error, what, "incident bookkeeping failed; the hit is kept");
        }
    }
    Ok(())
}

/// Inserts events (query rows, and hit rows with the identity from `ledger`) inside the
/// caller's transaction; returns (query rows, hit rows). Public so bulk tools (`gen_store`)
/// write exactly the rows the writer would.
pub fn insert_events(
    conn: &Connection,
    events: &[QueryEvent],
    ledger: &Ledger,
    log_queries: bool,
) -> Result<(u64, u64), StoreError> {
    insert_events_into(conn, events, ledger, log_queries, None, None)
}

/// [`insert_events`], also listing every hit written (for the incident tracker).
///
/// The batch becomes at most two rows, a query-log block and a hit block (`crate::blocks`),
/// plus one `hit_names` upsert per distinct blocked name (the first time a name was hit,
/// for the reports' "new names"), skipped for names `known` says are stored already.
pub fn insert_events_into(
    conn: &Connection,
    events: &[QueryEvent],
    ledger: &Ledger,
    log_queries: bool,
    hits: Option<&mut Vec<HitRow>>,
    known: Option<&mut KnownNames>,
) -> Result<(u64, u64), StoreError> {
    let who = Attribution {
        ledger,
        identities: None,
        exempt: None,
    };
    insert_attributed(conn, events, &who, log_queries, hits, known, None)
}

/// What a hit's identity is looked up in: who held its address then (the identity index,
/// when sources are configured), whose that device, login or network is (the ledger), and
/// whether a staff test machine's hits are exempt (`[incidents.exempt]`).
#[derive(Clone, Copy)]
pub struct Attribution<'a> {
    pub ledger: &'a Ledger,
    pub identities: Option<&'a IdentityIndex>,
    pub exempt: Option<&'a Exempt>,
}

/// Where the writer's [`Attribution`] comes from: the ledger, and the identity index and
/// exempt list once the app plugs them in ([`super::WriterHandle::attribute_with`]), read
/// when used. Cloned for work outside the writer thread that must attribute hits exactly as
/// the writer does: the PostgreSQL shipper's late identity (`poolguard_store_pg::ship`).
#[derive(Clone)]
pub struct AttributionSource {
    pub(super) ledger: SharedLedger,
    pub(super) identities: Arc<OnceLock<SharedIdentities>>,
    pub(super) exempt: Arc<OnceLock<Arc<Exempt>>>,
}

impl std::fmt::Debug for AttributionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttributionSource")
            .field("identities", &self.identities.get().is_some())
            .finish_non_exhaustive()
    }
}

impl AttributionSource {
    /// A source with `ledger` and nothing plugged in yet.
    pub(super) fn new(ledger: SharedLedger) -> Self {
        Self {
            ledger,
            identities: Arc::new(OnceLock::new()),
            exempt: Arc::new(OnceLock::new()),
        }
    }

    /// The identity index, once plugged in: its generation tells when to look hits up again.
    pub fn index(&self) -> Option<&SharedIdentities> {
        self.identities.get()
    }

    /// What [`write_batch`] takes.
    pub(super) fn parts(&self) -> (&SharedLedger, Option<&IdentityIndex>, Option<&Exempt>) {
        (
            &self.ledger,
            self.identities.get().map(|i| &**i),
            self.exempt.get().map(|e| &**e),
        )
    }

    /// Runs `f` with the attribution the writer uses now (the ledger as it is now).
    pub fn with<R>(&self, f: impl FnOnce(&Attribution<'_>) -> R) -> R {
        let (ledger, identities, exempt) = self.parts();
        let ledger = ledger.load();
        f(&Attribution {
            ledger: &ledger,
            identities,
            exempt,
        })
    }
}

impl Attribution<'_> {
    /// Who `ip` was at `time_ms`: the holder then (with the ledger's row of its device or
    /// account) or, when no source knew, the ledger's row of the address's network. What the
    /// writer stores with a hit, and what `GET /api/v1/clients/{ip}?at=` answers.
    pub fn at(&self, ip: IpAddr, time_ms: i64) -> Option<Arc<Identity>> {
        let network = self.ledger.lookup(ip);
        let identity = self.of_hit(ip, time_ms, network.as_ref()).or(network);
        self.marked(ip, identity)
    }

    /// `identity` with the `[incidents.exempt]` entry that exempts a hit from `ip` held by
    /// its MAC or account, when one does (a copy only then: exempt hits are rare).
    fn marked(&self, ip: IpAddr, identity: Option<Arc<Identity>>) -> Option<Arc<Identity>> {
        let Some(exempt) = self.exempt.filter(|e| !e.is_empty()) else {
            return identity;
        };
        let id = identity.as_deref();
        let Some(entry) = exempt.matches(
            ip,
            id.and_then(|i| i.mac.as_deref()),
            id.and_then(|i| i.account.as_deref()),
        ) else {
            return identity;
        };
        let mut marked = id.cloned().unwrap_or_default();
        marked.exempt = Some(entry);
        Some(Arc::new(marked))
    }

    /// The identity of a hit from `ip` at `time_ms`, given the ledger's row of its network.
    /// With a holder known, the ledger's row of that MAC or account says whose it is (else
    /// the network's row stays), and the holder's MAC, account and host name are recorded
    /// with the sources that said so.
    fn of_hit(
        &self,
        ip: IpAddr,
        time_ms: i64,
        network: Option<&Arc<Identity>>,
    ) -> Option<Arc<Identity>> {
        let holder = self.identities?.lookup(ip, time_ms)?;
        let device = self
            .ledger
            .lookup_device(holder.mac.as_deref(), holder.account.as_deref());
        let mut identity = device
            .as_deref()
            .or(network.map(|n| &**n))
            .cloned()
            .unwrap_or_default();
        if device.is_some() {
            // The network the address is in, not the device row's (it has none).
            identity.network = network.and_then(|n| n.network.clone());
        }
        let own = |v: &Option<Arc<str>>| v.as_deref().map(str::to_string);
        identity.mac = own(&holder.mac).or(identity.mac);
        identity.account = own(&holder.account).or(identity.account);
        identity.hostname = own(&holder.hostname);
        identity.source = Some(holder.source_label());
        Some(Arc::new(identity))
    }
}

/// [`insert_events_into`] with hits attributed through `who` (the writer's path).
pub fn insert_attributed(
    conn: &Connection,
    events: &[QueryEvent],
    who: &Attribution<'_>,
    log_queries: bool,
    mut hits: Option<&mut Vec<HitRow>>,
    mut known: Option<&mut KnownNames>,
    mut written: Option<&mut Vec<Written>>,
) -> Result<(u64, u64), StoreError> {
    let ledger = who.ledger;
    let (mut nq, mut nh) = (0u64, 0u64);
    let mut queries = BlockEncoder::default();
    let mut hit_block = BlockEncoder::default();
    // Each distinct blocked name of the batch: (first, last) time.
    let mut names: HashMap<&str, (i64, i64), foldhash::fast::FixedState> = HashMap::default();
    // Clients repeat in runs: one ledger lookup per run, not per row.
    let mut last: Option<(IpAddr, Option<Arc<Identity>>)> = None;
    for (index, e) in events.iter().enumerate() {
        let ip = e.client.ip().to_canonical();
        let identity = match &last {
            Some((seen, identity)) if *seen == ip => identity.clone(),
            _ => {
                let identity = ledger.lookup(ip);
                last = Some((ip, identity.clone()));
                identity
            }
        };
        let id = identity.as_deref();
        if log_queries {
            queries.push(&Entry::of(e, id.and_then(|i| i.department.as_deref())));
            nq += 1;
            if queries.rows() >= blocks::MAX_BLOCK_ROWS
                && let Some(sealed) = std::mem::take(&mut queries).seal()
            {
                insert_block(conn, Table::Queries, sealed, written.as_deref_mut())?;
            }
        }
        if !e.outcome.is_hit() {
            continue;
        }
        // Hits only (a few per second at most): who held the address at the hit's time.
        let held = who.of_hit(ip, e.time_ms, identity.as_ref());
        let identity = who.marked(ip, held.or(identity));
        let id = identity.as_deref();
        hit_block.push(&Entry::hit(e, id));
        nh += 1;
        if hit_block.rows() >= blocks::MAX_BLOCK_ROWS
            && let Some(sealed) = std::mem::take(&mut hit_block).seal()
        {
            insert_block(conn, Table::Hits, sealed, written.as_deref_mut())?;
        }
        names
            .entry(&e.name)
            .and_modify(|(first, last)| {
                *first = (*first).min(e.time_ms);
                *last = (*last).max(e.time_ms);
            })
            .or_insert((e.time_ms, e.time_ms));
        if let Some(hits) = hits.as_deref_mut() {
            hits.push(HitRow {
                index,
                ip,
                identity: identity.clone(),
            });
        }
    }
    if let Some(sealed) = queries.seal() {
        insert_block(conn, Table::Queries, sealed, written.as_deref_mut())?;
    }
    if let Some(sealed) = hit_block.seal() {
        insert_block(conn, Table::Hits, sealed, written)?;
    }
    let mut upsert = conn.prepare_cached(
        "INSERT INTO hit_names (name, first_ms, last_ms) VALUES (?1, ?2, ?3) \
         ON CONFLICT(name) DO UPDATE SET first_ms = min(first_ms, excluded.first_ms), \
         last_ms = max(last_ms, excluded.last_ms)",
    )?;
    for (name, (first, last)) in names {
        if known
            .as_deref_mut()
            .is_none_or(|k| k.should_write(name, first, last))
        {
            upsert.execute(params![name, first, last])?;
        }
    }
    Ok((nq, nh))
}

/// Writes a block of new rows, and adds any of them that belong to hours already rolled up
/// to their rollups (`crate::rollup::late`), in the same transaction; lists it in `written`
/// for the unsealed hours' names (`crate::hour_names`, handed over after the commit).
fn insert_block(
    conn: &Connection,
    table: Table,
    mut block: Sealed,
    written: Option<&mut Vec<Written>>,
) -> Result<(), StoreError> {
    let id = blocks::insert(conn, table, &block)?;
    crate::rollup::late(conn, table, &block)?;
    if let Some(written) = written {
        written.push(Written {
            table,
            id,
            first_ms: block.first_ms,
            last_ms: block.last_ms,
            names: std::mem::take(&mut block.names),
        });
    }
    Ok(())
}
