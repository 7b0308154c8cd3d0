//! What poolguard needs from its store, said as traits a second backend can implement.
//!
//! The HTTP handlers and the alert tasks hold an `Arc<dyn Stores>` and never see a
//! connection: each method is one request in the program's words (a page of hits, one
//! incident with its notes, "move this incident to `reported`"). The SQLite [`Store`] is the
//! first implementation (`crate::sqlite`); a PostgreSQL backend for several resolver nodes is
//! the next. Two rules keep that possible:
//!
//! * No SQLite concept in a signature: pages continue from an opaque [`Cursor`] the backend
//!   encodes (SQLite: the row key the HTTP API has always sent), clients are addresses and
//!   networks, not index keys.
//! * Every operation two nodes could race on is one call, one transaction: an incident update
//!   checks the move against the state machine, writes the row and its audit row together
//!   ([`IncidentStore::update_incident`]); a quarantine change and its audit rows likewise; the
//!   deadline scan marks what it alerts in the same transaction that found it.
//!
//! [`Store`]: crate::Store

use std::net::IpAddr;

use async_trait::async_trait;
use ipnet::IpNet;

use crate::StoreError;
use crate::alerted::DeadlineAlert;
use crate::audit::AuditEntry;
use crate::incidents::{Delivery, IncidentFilter, IncidentHit, IncidentRow, Note, QuarantineEntry};
use crate::read::{ClientSummary, ListFilter, Stats, StoredRow, Table};
use crate::summary::Summary;
use crate::transition::{IncidentChange, IncidentError, Updated};

/// Where the next page of a list starts. Opaque to callers: the backend that returned it
/// decodes it, and the HTTP API passes it through as `cursor` / `next_cursor` unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor(pub String);

impl Cursor {
    /// The wire text, as the API sends it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One page of a list, newest first, and where the next (older) page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// None on the last page.
    pub next: Option<Cursor>,
}

/// Who is writing: the token's configured name and role (audit rows name them, never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: String,
}

/// A list request on the query log or the hits: the client as an address (a host network)
/// or a network, the page starting at the `next` of the previous page.
pub type EvidenceFilter = ListFilter<IpNet, Cursor>;

/// An incident with what its views show: hits (oldest first), notes and, for the written
/// report, the audit trail of actions on it.
#[derive(Debug, Clone)]
pub struct IncidentRecord {
    pub incident: IncidentRow,
    pub hits: Vec<IncidentHit>,
    pub notes: Vec<Note>,
    /// Audit rows targeting the incident, oldest first (empty from
    /// [`IncidentStore::incident_detail`]).
    pub actions: Vec<AuditEntry>,
    /// The investigator's account (empty when none is recorded).
    pub narrative: crate::narrative::Narrative,
}

/// Put an address, or a whole network, in quarantine.
#[derive(Debug, Clone)]
pub struct QuarantineAdd {
    /// An address (a /32 or /128) or a network (`poolguard_model::net`).
    pub ip: ipnet::IpNet,
    pub reason: String,
    /// The incident it belongs to; its trail gets an audit row too.
    pub incident_id: Option<i64>,
    pub actor: Actor,
    pub now_ms: i64,
}

/// Let an address or a network out of quarantine.
#[derive(Debug, Clone)]
pub struct QuarantineRelease {
    pub ip: ipnet::IpNet,
    pub reason: String,
    pub actor: Actor,
    pub now_ms: i64,
}

/// The query log and the hit evidence, read-only.
#[async_trait]
pub trait EvidenceStore: Send + Sync {
    /// One page of `table` matching `filter`, newest first (keyset: rows written meanwhile
    /// never shift a page).
    async fn list_evidence(
        &self,
        table: Table,
        filter: EvidenceFilter,
    ) -> Result<Paged<StoredRow>, StoreError>;

    /// Totals by action and the `top` largest names, clients and departments of `[since, until)`.
    async fn stats(&self, since_ms: i64, until_ms: i64, top: usize) -> Result<Stats, StoreError>;

    /// First/last seen, hit count and the `recent` newest hits of one address.
    async fn client_summary(
        &self,
        client: IpAddr,
        recent: usize,
    ) -> Result<ClientSummary, StoreError>;
}

/// Incidents: lists, views, reports and the staff's changes.
#[async_trait]
pub trait IncidentStore: Send + Sync {
    /// One page of incidents, newest first.
    async fn list_incidents(
        &self,
        filter: IncidentFilter,
    ) -> Result<Paged<IncidentRow>, StoreError>;

    /// One incident with at most `max_hits` hits and its notes; None when it does not exist.
    async fn incident_detail(
        &self,
        id: i64,
        max_hits: usize,
    ) -> Result<Option<IncidentRecord>, StoreError>;

    /// The same plus the audit trail, for the written report.
    async fn incident_report(
        &self,
        id: i64,
        max_hits: usize,
    ) -> Result<Option<IncidentRecord>, StoreError>;

    /// How many incidents are not closed, and how many of those missed a deadline at `now_ms`.
    async fn open_counts(&self, now_ms: i64) -> Result<(u64, u64), StoreError>;

    /// The periodic bulletin of `[since, until)`; overdue judged at `min(until, now)`.
    async fn summary(
        &self,
        since_ms: i64,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<Summary, StoreError>;

    /// Applies a staff change in one transaction: reads the row, checks the move with
    /// `poolguard_model::check_transition` (`crate::transition::apply`), writes the row and
    /// its audit row. A refused move or a change that changes nothing writes nothing.
    async fn update_incident(
        &self,
        id: i64,
        change: IncidentChange,
    ) -> Result<Updated, IncidentError>;

    /// Appends a note and its audit row in one transaction; None when the incident does not
    /// exist.
    async fn add_note(
        &self,
        id: i64,
        author: Actor,
        text: String,
        now_ms: i64,
    ) -> Result<Option<Note>, StoreError>;

    /// Replaces the investigator's account and writes its audit row (`incident.narrative`,
    /// naming the changed fields) in one transaction. `None` when the incident does not
    /// exist; an account equal to the stored one writes nothing.
    async fn set_narrative(
        &self,
        id: i64,
        narrative: crate::narrative::Narrative,
        actor: Actor,
        now_ms: i64,
    ) -> Result<Option<crate::narrative::Narrative>, StoreError>;
}

/// The persistent quarantine list (the DNS path reads a lock-free copy).
#[async_trait]
pub trait QuarantineStore: Send + Sync {
    /// Every quarantined address, oldest first.
    async fn quarantine_list(&self) -> Result<Vec<QuarantineEntry>, StoreError>;

    /// Quarantines an address with its audit rows, in one transaction. Returns whether it was
    /// added (false: it already was, nothing written) and the entry as stored.
    async fn quarantine_add(
        &self,
        add: QuarantineAdd,
    ) -> Result<(bool, QuarantineEntry), StoreError>;

    /// Releases an address with its audit rows, in one transaction; the removed entry, or None
    /// when it was not quarantined.
    async fn quarantine_release(
        &self,
        release: QuarantineRelease,
    ) -> Result<Option<QuarantineEntry>, StoreError>;
}

/// The audit log: inserted, never changed.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Records one audited write; returns its id.
    async fn audit(&self, entry: AuditEntry) -> Result<i64, StoreError>;

    /// Newest first, `limit` entries.
    async fn audit_list(
        &self,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> Result<Paged<AuditEntry>, StoreError>;
}

/// The alert delivery log and the deadline alerts' bookkeeping.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Logs one delivery attempt at `now_ms`.
    async fn log_delivery(&self, delivery: Delivery, now_ms: i64) -> Result<(), StoreError>;

    /// Delivery attempts, newest first, `limit` at most.
    async fn deliveries(
        &self,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> Result<Paged<Delivery>, StoreError>;

    /// Finds the deadline alerts due at `now_ms` (`due_soon_ms` before a deadline, or past
    /// it) that were not raised yet and marks them raised, in one transaction: of two nodes
    /// scanning at once, each alert goes to exactly one.
    async fn claim_deadline_alerts(
        &self,
        now_ms: i64,
        due_soon_ms: i64,
    ) -> Result<Vec<DeadlineAlert>, StoreError>;
}

/// Whether a store's database answers. An embedded store always does; a network database
/// (PostgreSQL) can be unreachable while the node still answers DNS, and `/healthz` says so.
#[async_trait]
pub trait Reachable: Send + Sync {
    /// One round trip to the database; the error says why it failed.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Everything the API needs, as one trait object: `Arc<dyn Stores>`.
pub trait Stores:
    EvidenceStore + IncidentStore + QuarantineStore + AuditStore + AlertStore
{
}

impl<T> Stores for T where
    T: EvidenceStore + IncidentStore + QuarantineStore + AuditStore + AlertStore
{
}
