//! The writer's one extension point: work a higher layer does inside each batch's transaction.
//!
//! Incident tracking must see a hit in the same transaction that stores it (a crash cannot
//! leave a hit without its incident, or an incident without its hit), yet the store must not
//! know what an incident is. The writer calls a [`BatchHook`] at fixed points of each batch;
//! the incidents crate implements it. Each call runs in a savepoint: a failing hook is rolled
//! back, logged and counted, and the batch's evidence is kept.
//!
//! The hook never sees SQL: it works through an [`IncidentTx`], the operations incident
//! tracking needs inside the batch's transaction, named by what they mean. The SQLite writer
//! hands it [`crate::incidents_tx::SqliteIncidentTx`]; a shared PostgreSQL backend can
//! implement the same trait. Every operation two nodes could race on (opening a client's
//! incident, folding hits into it while staff close it) is one call, so an implementation
//! can make it atomic.

use std::net::IpAddr;
use std::sync::Arc;

use poolguard_clients::Identity;
use poolguard_model::Severity;
use poolguard_record::QueryEvent;

use crate::StoreError;

/// A hit the writer just stored, for [`BatchHook::on_hits`].
#[derive(Debug, Clone)]
pub struct HitRow {
    /// Its event's position in the batch.
    pub index: usize,
    /// The client address (canonical).
    pub ip: IpAddr,
    /// The ledger identity snapshot stored with it.
    pub identity: Option<Arc<Identity>>,
}

/// What the writer calls, in order, for every batch that holds hits: [`on_hits`], then
/// [`end_batch`], then after the commit [`committed`]; or [`batch_failed`] when the batch did
/// not commit. Only the writer thread calls it.
///
/// [`on_hits`]: BatchHook::on_hits
/// [`end_batch`]: BatchHook::end_batch
/// [`committed`]: BatchHook::committed
/// [`batch_failed`]: BatchHook::batch_failed
pub trait BatchHook: Send + Sync + 'static {
    /// The batch's hits are stored (not yet committed); `replayed` when it comes from the
    /// spool, so some hits may be older than what the hook has seen.
    fn on_hits(
        &self,
        tx: &dyn IncidentTx,
        events: &[QueryEvent],
        hits: &[HitRow],
        replayed: bool,
    ) -> Result<(), StoreError>;

    /// Every hit of the batch went through [`BatchHook::on_hits`]; last step before commit.
    fn end_batch(&self, tx: &dyn IncidentTx) -> Result<(), StoreError>;

    /// The batch committed: what it changed may now be announced.
    fn committed(&self);

    /// The batch rolled back: whatever the hook remembers of it is void.
    fn batch_failed(&self);
}

/// An incident as the tracker needs it: what a fold of new hits builds on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedIncident {
    /// Its id (a domain id: the API and the reports name incidents by it).
    pub id: i64,
    /// The feeds its hits came from, comma-separated, in order of first hit.
    pub feeds: String,
    /// Their categories, comma-separated, in order of first hit.
    pub categories: String,
    /// The repeat-offender check already acted on it.
    pub enforced: bool,
}

/// A client key's latest closed incident, for hits that arrive after it was closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedIncident {
    pub incident: TrackedIncident,
    /// When staff closed it: hits stamped before this belong to it.
    pub closed_ms: i64,
}

/// An open incident's extent, for late identity (`crate::relearn::tell_incident`): whether
/// what was learned covers all of its hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenSpan {
    pub id: i64,
    /// Its first hit's time.
    pub opened_ms: i64,
    /// Its latest hit's time.
    pub last_hit_ms: i64,
}

/// What [`IncidentTx::learn_identity`] gives an incident of `i`, in the order its statements
/// take them after the id and the new key: MAC, account, host name, sources, asset, owner,
/// contact, department (the asset and owner also prefill the staff's device and owner).
pub fn learned_fields(i: &Identity) -> [Option<&str>; 8] {
    [
        i.mac.as_deref(),
        i.account.as_deref(),
        i.hostname.as_deref(),
        i.source.as_deref(),
        i.asset.as_deref(),
        i.owner.as_deref(),
        i.contact.as_deref(),
        i.department.as_deref(),
    ]
}

/// What a new incident starts with: its client key, first hit and deadlines.
#[derive(Debug, Clone, Copy)]
pub struct NewIncident<'a> {
    /// The client key (`asset:…` or `ip:…`) it is the incident of.
    pub key: &'a str,
    /// The address of its first hit.
    pub ip: IpAddr,
    /// The ledger identity of that address when it opened (a snapshot: later ledger edits
    /// never rewrite it).
    pub identity: &'a Identity,
    /// Its first hit's time: when it opened.
    pub first_hit_ms: i64,
    /// When the device and its responsible person must be identified.
    pub identify_due_ms: i64,
    /// When the written report is due.
    pub report_due_ms: i64,
}

/// The outcome of [`IncidentTx::open_incident`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opening {
    /// This call opened it.
    Opened(TrackedIncident),
    /// The key already had an open incident (another node, or a race): the hits go there.
    AlreadyOpen(TrackedIncident),
}

impl Opening {
    /// The outcome of an insert-unless-open of `key`'s incident: `inserted` is the new
    /// incident's id, or None when the key already had one open, which `open_of` then reads
    /// (every [`IncidentTx`] implements `open_incident` this way).
    pub fn settle(
        key: &str,
        inserted: Option<i64>,
        open_of: impl FnOnce() -> Result<Option<TrackedIncident>, StoreError>,
    ) -> Result<Self, StoreError> {
        if let Some(id) = inserted {
            return Ok(Opening::Opened(TrackedIncident {
                id,
                feeds: String::new(),
                categories: String::new(),
                enforced: false,
            }));
        }
        match open_of()? {
            Some(open) => Ok(Opening::AlreadyOpen(open)),
            None => Err(StoreError::Worker(format!(
                "incident for {key} was neither opened nor found open"
            ))),
        }
    }
}

/// A client key's hits of one batch, folded into what its incident's counters get.
#[derive(Debug, Clone, Copy)]
pub struct HitFold<'a> {
    /// The latest hit time (the incident keeps the later of this and what it had).
    pub last_hit_ms: i64,
    /// How many hits to add.
    pub hits: i64,
    /// The highest severity among them (the incident keeps the higher of this and its own).
    pub severity: Severity,
    /// The incident's feed list with the hits' feeds added.
    pub feeds: &'a str,
    /// The incident's category list with the hits' categories added.
    pub categories: &'a str,
}

/// Which incidents [`IncidentTx::fold_hits`] may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoldGuard {
    /// Only an incident still open: staff may have closed it since the tracker last saw it.
    OpenOnly,
    /// A closed one too: late hits from before its closure (replayed from the spool).
    EvenClosed,
}

/// What incident tracking does inside a batch's transaction, and nothing else: the tracker
/// is written against this trait, never against SQL. Every call sees the batch's own writes
/// (its hits are stored before [`BatchHook::on_hits`] runs) and is undone with the batch.
pub trait IncidentTx {
    /// The open (not closed) incident of client `key`, if it has one.
    fn open_incident_of(&self, key: &str) -> Result<Option<TrackedIncident>, StoreError>;

    /// Opens an incident for `new.key` unless that key already has one open, in one step: at
    /// most one incident per key is ever open, even with several writers.
    fn open_incident(&self, new: &NewIncident<'_>) -> Result<Opening, StoreError>;

    /// Adds a group of hits to incident `id`; false when `guard` refused it (it was closed).
    fn fold_hits(&self, id: i64, fold: &HitFold<'_>, guard: FoldGuard) -> Result<bool, StoreError>;

    /// Records `names` (distinct) as hit by incident `id`; returns how many it did not have,
    /// which its name count grows by.
    fn record_names(&self, id: i64, names: &[&str]) -> Result<usize, StoreError>;

    /// The most recently closed incident of `key` (a key's incidents never overlap, so hits
    /// older than its closure and newer than any open one belong to it).
    fn latest_closed_incident(&self, key: &str) -> Result<Option<ClosedIncident>, StoreError>;

    /// The open incident of client `key` with its extent (late identity), if it has one.
    fn open_incident_span(&self, key: &str) -> Result<Option<OpenSpan>, StoreError>;

    /// Late identity: incident `id` takes `identity`'s fields where it had none and, with
    /// `new_key`, moves to that client key (the caller checked no open incident has it).
    fn learn_identity(
        &self,
        id: i64,
        new_key: Option<&str>,
        identity: &Identity,
    ) -> Result<(), StoreError>;

    /// Adds a note by `system` (poolguard itself) to incident `id`.
    fn add_system_note(&self, id: i64, time_ms: i64, text: &str) -> Result<(), StoreError>;

    /// How many incidents of client `key` opened at or after `since_ms`.
    fn incidents_opened_since(&self, key: &str, since_ms: i64) -> Result<i64, StoreError>;

    /// Marks incident `id` as acted on by the repeat-offender check at `time_ms`. Returns
    /// false when it already was: another node's shipper enforced it first (its quarantine,
    /// note and `quarantine.on` alert went out from there), so this one must not repeat them.
    /// The guard is in the statement (`WHERE enforced_ms IS NULL`), so of two transactions
    /// marking one incident at once the second waits for the first and finds it marked.
    fn mark_enforced(&self, id: i64, time_ms: i64) -> Result<bool, StoreError>;

    /// Quarantines `ip` for incident `id` (by `system`, for `reason`), with its audit row;
    /// an address already quarantined stays as it was.
    fn quarantine(
        &self,
        ip: IpAddr,
        since_ms: i64,
        reason: &str,
        incident: i64,
    ) -> Result<(), StoreError>;

    /// Calls `each` with the time of every stored hit of `ip` at or after `since_ms`, in
    /// storage order (not necessarily by time).
    fn hit_times_since(
        &self,
        ip: IpAddr,
        since_ms: i64,
        each: &mut dyn FnMut(i64),
    ) -> Result<(), StoreError>;
}
