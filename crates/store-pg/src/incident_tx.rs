//! [`IncidentTx`] on PostgreSQL: the incident tracker's statements, run on the shipper's
//! transaction, so incident bookkeeping commits or rolls back with the hits it describes
//! (the SQLite twin is `poolguard_store::incidents_tx`).
//!
//! Here several nodes write at once, so every step two of them could race on is one
//! statement the database makes atomic:
//!
//! * [`IncidentTx::open_incident`] is `INSERT … ON CONFLICT DO NOTHING` on the partial unique
//!   index `incidents_open_key` (one open incident per client key), then a read of the
//!   winner: two nodes folding hits of one client at once never open two incidents. (Under
//!   READ COMMITTED the loser's insert waits for the winner's commit, and its next statement
//!   sees the winner's row.)
//! * [`IncidentTx::fold_hits`] adds to the counters in place and merges the feed and category
//!   lists in SQL (`poolguard_merge_list`): a node's view of an incident's feeds may miss what
//!   another node added meanwhile, and overwriting would drop it.
//! * [`IncidentTx::incidents_opened_since`] and [`IncidentTx::hit_times_since`] read every
//!   node's rows: the repeat-offender thresholds count the whole group.
//!
//! Statements are prepared once per connection ([`IncidentStatements`]). A failure keeps its
//! SQLSTATE ([`PgIncidentTx::retry_whole_batch`]): a deadlock between two nodes or a lost
//! connection must fail the whole shipment (retried, nothing lost), not just the bookkeeping.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Statement, Transaction};

use crate::error::describe;
use poolguard_clients::Identity;
use poolguard_model::incident::severity_rank;
use poolguard_store::StoreError;
use poolguard_store::hook::{
    ClosedIncident, FoldGuard, HitFold, IncidentTx, NewIncident, OpenSpan, Opening,
    TrackedIncident, learned_fields,
};

/// The tracker's statements, prepared on one connection.
#[derive(Debug)]
pub struct IncidentStatements {
    open_of: Statement,
    open: Statement,
    fold_open: Statement,
    fold_any: Statement,
    names: Statement,
    name_count: Statement,
    latest_closed: Statement,
    open_span: Statement,
    learn: Statement,
    note: Statement,
    opened_since: Statement,
    enforce: Statement,
    quarantine: Statement,
    audit: Statement,
    hit_times: Statement,
}

const FOLD: &str = "UPDATE incidents SET last_hit_ms = GREATEST(last_hit_ms, $2), \
     hit_count = hit_count + $3, severity = GREATEST(severity, $4), \
     feeds = poolguard_merge_list(feeds, $5), categories = poolguard_merge_list(categories, $6) \
     WHERE id = $1";

impl IncidentStatements {
    /// Prepares them on `client` (once per connection).
    pub fn prepare(client: &mut postgres::Client) -> Result<Self, postgres::Error> {
        Ok(Self {
            open_of: client.prepare(
                "SELECT id, feeds, categories, enforced_ms IS NOT NULL FROM incidents \
                 WHERE client_key = $1 AND status <> 'closed'",
            )?,
            open: client.prepare(
                "INSERT INTO incidents (client_key, client, network, asset, mac, kind, location, \
                 department, ledger_owner, contact, device, owner, opened_ms, last_hit_ms, \
                 identify_due_ms, report_due_ms, opened_by, account, hostname, identity_source) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15, $16, \
                 $17, $18, $19) \
                 ON CONFLICT (client_key) WHERE status <> 'closed' DO NOTHING RETURNING id",
            )?,
            fold_open: client.prepare(&format!("{FOLD} AND status <> 'closed'"))?,
            fold_any: client.prepare(FOLD)?,
            names: client.prepare(
                "INSERT INTO incident_names (incident_id, name) \
                 SELECT $1, n FROM unnest($2::text[]) AS n ON CONFLICT DO NOTHING",
            )?,
            name_count: client
                .prepare("UPDATE incidents SET name_count = name_count + $2 WHERE id = $1")?,
            latest_closed: client.prepare(
                "SELECT id, feeds, categories, closed_ms FROM incidents \
                 WHERE client_key = $1 AND status = 'closed' ORDER BY opened_ms DESC LIMIT 1",
            )?,
            open_span: client.prepare(
                "SELECT id, opened_ms, last_hit_ms FROM incidents \
                 WHERE client_key = $1 AND status <> 'closed'",
            )?,
            learn: client.prepare(
                "UPDATE incidents SET client_key = COALESCE($2, client_key), \
                 mac = COALESCE(mac, $3), account = COALESCE(account, $4), \
                 hostname = COALESCE(hostname, $5), \
                 identity_source = COALESCE(identity_source, $6), asset = COALESCE(asset, $7), \
                 ledger_owner = COALESCE(ledger_owner, $8), contact = COALESCE(contact, $9), \
                 department = COALESCE(department, $10), device = COALESCE(device, $7), \
                 owner = COALESCE(owner, $8) WHERE id = $1",
            )?,
            note: client.prepare(
                "INSERT INTO incident_notes (incident_id, time_ms, author, text) \
                 VALUES ($1, $2, 'system', $3)",
            )?,
            opened_since: client.prepare(
                "SELECT count(*) FROM incidents WHERE client_key = $1 AND opened_ms >= $2",
            )?,
            enforce: client.prepare(
                "UPDATE incidents SET enforced_ms = $2 WHERE id = $1 AND enforced_ms IS NULL",
            )?,
            quarantine: client.prepare(
                "INSERT INTO quarantine (ip, since_ms, actor, reason, incident_id) \
                 VALUES ($1, $2, 'system', $3, $4) ON CONFLICT (ip) DO NOTHING",
            )?,
            audit: client.prepare(
                "INSERT INTO audit (time_ms, node, actor, role, action, target, detail) \
                 VALUES ($1, $2, 'system', 'system', 'quarantine.add', $3, $4)",
            )?,
            hit_times: client
                .prepare("SELECT time_ms FROM hits WHERE client = $1 AND time_ms >= $2")?,
        })
    }
}

/// The shipper's transaction seen as an [`IncidentTx`]. The trait takes `&self` while the
/// blocking client needs `&mut`: the tracker calls it from one thread, one call at a time, so
/// a `RefCell` hands the transaction to each statement in turn.
pub struct PgIncidentTx<'a, 't> {
    tx: RefCell<&'a mut Transaction<'t>>,
    st: &'a IncidentStatements,
    node: &'a str,
    /// The SQLSTATE of the last failure, if the server sent one.
    failed: Cell<Option<Failure>>,
}

/// What kind of failure the last statement had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The statement itself was refused (a constraint, a bad value): the bookkeeping is rolled
    /// back to its savepoint and the hits are kept, as on SQLite.
    Statement,
    /// A deadlock with another node, a serialization failure, or no server at all: only the
    /// whole shipment can be retried.
    Transient,
}

impl std::fmt::Debug for PgIncidentTx<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgIncidentTx")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl<'a, 't> PgIncidentTx<'a, 't> {
    /// Wraps the shipper's transaction; `node` signs the incidents it opens and its audit rows.
    pub fn new(tx: &'a mut Transaction<'t>, st: &'a IncidentStatements, node: &'a str) -> Self {
        Self {
            tx: RefCell::new(tx),
            st,
            node,
            failed: Cell::new(None),
        }
    }

    /// Whether the last failure must fail the whole shipment instead of only rolling back
    /// the bookkeeping: a deadlock between nodes, a serialization failure, a lost connection.
    pub fn retry_whole_batch(&self) -> bool {
        self.failed.get() == Some(Failure::Transient)
    }

    /// Runs `f` on the transaction, keeping what kind of failure it had.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Transaction<'t>) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut tx = self.tx.borrow_mut();
        f(&mut tx).map_err(|e| {
            let transient = match e.code() {
                Some(code) => {
                    *code == SqlState::T_R_DEADLOCK_DETECTED
                        || *code == SqlState::T_R_SERIALIZATION_FAILURE
                        || code.code().starts_with("08")
                        || code.code().starts_with("57")
                }
                None => true,
            };
            self.failed.set(Some(if transient {
                Failure::Transient
            } else {
                Failure::Statement
            }));
            StoreError::Backend(describe(&e))
        })
    }
}

fn tracked(r: &postgres::Row) -> TrackedIncident {
    TrackedIncident {
        id: r.get(0),
        feeds: r.get(1),
        categories: r.get(2),
        enforced: r.get(3),
    }
}

impl IncidentTx for PgIncidentTx<'_, '_> {
    fn open_incident_of(&self, key: &str) -> Result<Option<TrackedIncident>, StoreError> {
        let row = self.with(|tx| tx.query_opt(&self.st.open_of, &[&key]))?;
        Ok(row.as_ref().map(tracked))
    }

    fn open_incident(&self, new: &NewIncident<'_>) -> Result<Opening, StoreError> {
        let i = new.identity;
        let ip = new.ip.to_canonical();
        let inserted = self.with(|tx| {
            tx.query_opt(
                &self.st.open,
                &[
                    &new.key,
                    &ip,
                    &i.network,
                    &i.asset,
                    &i.mac,
                    &i.kind,
                    &i.location,
                    &i.department,
                    &i.owner,
                    &i.contact,
                    // Prefilled from the ledger; staff confirm or correct them.
                    &i.asset,
                    &i.owner,
                    &new.first_hit_ms,
                    &new.identify_due_ms,
                    &new.report_due_ms,
                    &self.node,
                    &i.account,
                    &i.hostname,
                    &i.source,
                ],
            )
        })?;
        let id = inserted.map(|row| row.get(0));
        Opening::settle(new.key, id, || self.open_incident_of(new.key))
    }

    fn fold_hits(&self, id: i64, fold: &HitFold<'_>, guard: FoldGuard) -> Result<bool, StoreError> {
        let stmt = match guard {
            FoldGuard::OpenOnly => &self.st.fold_open,
            FoldGuard::EvenClosed => &self.st.fold_any,
        };
        let changed = self.with(|tx| {
            tx.execute(
                stmt,
                &[
                    &id,
                    &fold.last_hit_ms,
                    &fold.hits,
                    &(severity_rank(fold.severity) as i32),
                    &fold.feeds,
                    &fold.categories,
                ],
            )
        })?;
        Ok(changed == 1)
    }

    fn record_names(&self, id: i64, names: &[&str]) -> Result<usize, StoreError> {
        let added = self.with(|tx| tx.execute(&self.st.names, &[&id, &names]))?;
        if added > 0 {
            let added = added as i64;
            self.with(|tx| tx.execute(&self.st.name_count, &[&id, &added]))?;
        }
        Ok(added as usize)
    }

    fn latest_closed_incident(&self, key: &str) -> Result<Option<ClosedIncident>, StoreError> {
        // Incidents of a key never overlap, so the latest opened is the latest closed.
        let row = self.with(|tx| tx.query_opt(&self.st.latest_closed, &[&key]))?;
        // A closed incident without a closing time cannot tell which hits were before it.
        Ok(row.and_then(|r| {
            r.get::<_, Option<i64>>(3).map(|closed_ms| ClosedIncident {
                incident: TrackedIncident {
                    id: r.get(0),
                    feeds: r.get(1),
                    categories: r.get(2),
                    enforced: false,
                },
                closed_ms,
            })
        }))
    }

    fn open_incident_span(&self, key: &str) -> Result<Option<OpenSpan>, StoreError> {
        let row = self.with(|tx| tx.query_opt(&self.st.open_span, &[&key]))?;
        Ok(row.map(|r| OpenSpan {
            id: r.get(0),
            opened_ms: r.get(1),
            last_hit_ms: r.get(2),
        }))
    }

    fn learn_identity(
        &self,
        id: i64,
        new_key: Option<&str>,
        i: &Identity,
    ) -> Result<(), StoreError> {
        let fields = learned_fields(i);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id, &new_key];
        params.extend(fields.iter().map(|f| f as &(dyn ToSql + Sync)));
        self.with(|tx| tx.execute(&self.st.learn, &params))?;
        Ok(())
    }

    fn add_system_note(&self, id: i64, time_ms: i64, text: &str) -> Result<(), StoreError> {
        self.with(|tx| tx.execute(&self.st.note, &[&id, &time_ms, &text]))?;
        Ok(())
    }

    fn incidents_opened_since(&self, key: &str, since_ms: i64) -> Result<i64, StoreError> {
        let row = self.with(|tx| tx.query_one(&self.st.opened_since, &[&key, &since_ms]))?;
        Ok(row.get(0))
    }

    fn mark_enforced(&self, id: i64, time_ms: i64) -> Result<bool, StoreError> {
        // READ COMMITTED: a node marking it at the same time holds the row; this UPDATE waits
        // for its commit and then re-checks `enforced_ms IS NULL` on the row it committed.
        let marked = self.with(|tx| tx.execute(&self.st.enforce, &[&id, &time_ms]))?;
        Ok(marked == 1)
    }

    fn quarantine(
        &self,
        ip: IpAddr,
        since_ms: i64,
        reason: &str,
        incident: i64,
    ) -> Result<(), StoreError> {
        let ip = ip.to_canonical();
        let added =
            self.with(|tx| tx.execute(&self.st.quarantine, &[&ip, &since_ms, &reason, &incident]))?;
        // Another node may have quarantined it first: one audit row for the one change.
        if added == 1 {
            let target = format!("quarantine/{ip}");
            let detail = format!("incident {incident}: {reason}");
            let now = crate::now_ms();
            self.with(|tx| tx.execute(&self.st.audit, &[&now, &self.node, &target, &detail]))?;
        }
        Ok(())
    }

    fn hit_times_since(
        &self,
        ip: IpAddr,
        since_ms: i64,
        each: &mut dyn FnMut(i64),
    ) -> Result<(), StoreError> {
        let ip = ip.to_canonical();
        let rows = self.with(|tx| tx.query(&self.st.hit_times, &[&ip, &since_ms]))?;
        for r in rows {
            each(r.get(0));
        }
        Ok(())
    }
}
