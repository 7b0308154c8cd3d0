//! The writer's one extension point: work a higher layer does inside each batch's transaction.
//!
//! Incident tracking must see a hit in the same transaction that stores it (a crash cannot
//! leave a hit without its incident, or an incident without its hit), yet the store must not
//! know what an incident is. The writer calls a [`BatchHook`] at fixed points of each batch;
//! the incidents crate implements it. Each call runs in a savepoint: a failing hook is rolled
//! back, logged and counted, and the batch's evidence is kept.

use std::net::IpAddr;
use std::sync::Arc;

use poolguard_clients::Identity;
use poolguard_record::QueryEvent;
use rusqlite::Connection;

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
        conn: &Connection,
        events: &[QueryEvent],
        hits: &[HitRow],
        replayed: bool,
    ) -> Result<(), StoreError>;

    /// Every hit of the batch went through [`BatchHook::on_hits`]; last step before commit.
    fn end_batch(&self, conn: &Connection) -> Result<(), StoreError>;

    /// The batch committed: what it changed may now be announced.
    fn committed(&self);

    /// The batch rolled back: whatever the hook remembers of it is void.
    fn batch_failed(&self);
}
