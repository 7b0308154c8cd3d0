//! Upkeep: retention pruning, `PRAGMA optimize` and block compaction, hourly; sealing hours
//! into rollups and grouping settled query-log blocks by client as they come; on the writer
//! thread because it owns the only write connection.
//!
//! Each step is one short transaction taken between write batches (or while idle), so upkeep
//! never holds rows back for long: first retention, one batch of blocks per table per step,
//! then compaction of the query log's small settled blocks, then the hits'.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::{Writer, now_ms};
use crate::blocks::{compact, group};
use crate::rows::Table;
use crate::{StoreError, retention};

/// How often the writer runs its upkeep (retention, then compaction), in short steps.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Blocks younger than this are not compacted: staff paging through the last minutes keep
/// stable row ids, and the newest blocks may still grow a neighbour.
const SETTLE_MS: i64 = 10 * 60 * 1000;

/// After a failed rollup or grouping step, the next try.
const ROLLUP_RETRY_MS: i64 = 60_000;
/// With every settled block grouped, when to look again (blocks settle continuously).
const GROUP_IDLE_MS: i64 = 10_000;

/// The hourly upkeep's place, one short transaction per step between batches.
#[derive(Debug, Clone, Copy)]
enum Upkeep {
    /// Deleting rows past retention.
    Retention,
    /// Merging small settled blocks of a log (`blocks::compact`).
    Compact(Table, compact::Cursor),
    /// Grouping the block a compaction step merged into, then compacting on from the cursor
    /// (`None`: that log's pass is over).
    Group(Table, i64, Option<compact::Cursor>),
}

/// When the next upkeep starts, and how far the one under way has got.
#[derive(Debug)]
pub(super) struct UpkeepSchedule {
    next: Instant,
    pending: Option<Upkeep>,
    /// When the next hour may be sealed (`crate::rollup`), wall-clock ms; 0 at start, so an
    /// upgraded store's rollups start at once.
    rollup_due_ms: i64,
    /// The hour being sealed, a step at a time.
    sealer: crate::rollup::Sealer,
    /// When the next grouping step is due (`blocks::group`), wall-clock ms; 0 at start.
    group_due_ms: i64,
}

impl UpkeepSchedule {
    /// The first upkeep is due as the writer starts: rows may have aged past retention while
    /// poolguard was stopped.
    pub(super) fn starting_now() -> Self {
        Self {
            next: Instant::now(),
            pending: None,
            rollup_due_ms: 0,
            sealer: crate::rollup::Sealer::default(),
            group_due_ms: 0,
        }
    }

    /// Starts the upkeep when it is due; `PRAGMA optimize` runs at once, the rest in steps.
    pub(super) fn start_if_due(&mut self, now: Instant, conn: &Connection) {
        if now >= self.next {
            self.pending = Some(Upkeep::Retention);
            self.next = now + PRUNE_EVERY;
            // Keeps the planner's statistics fresh so filters pick the right index.
            if let Err(e) = retention::optimize(conn) {
                tracing::debug!(error = %e, "PRAGMA optimize failed");
            }
        }
    }

    /// How long a writer with nothing to flush may wait for events: until the next upkeep,
    /// or not at all while one is under way.
    pub(super) fn idle_wait(&self, now: Instant) -> Duration {
        if self.pending.is_some() {
            Duration::ZERO
        } else {
            let due = self.rollup_due_ms.min(self.group_due_ms);
            let rollup = u64::try_from(due - now_ms()).unwrap_or(0);
            self.next
                .saturating_duration_since(now)
                .min(Duration::from_millis(rollup))
        }
    }
}

impl Writer {
    /// One step of the upkeep under way, if any.
    pub(super) fn upkeep(&mut self) {
        self.roll_up();
        self.group();
        self.relearn();
        if let Some(u) = self.upkeep.pending {
            self.upkeep.pending = self.upkeep_step(u);
        }
    }

    /// Seals the hours that are over into rollups when one is due (`crate::rollup`), within
    /// `rollup::STEP_BUDGET`; the next step is due at once while old hours remain, else when the
    /// current hour will be over.
    fn roll_up(&mut self) {
        let now = now_ms();
        if now < self.upkeep.rollup_due_ms {
            return;
        }
        self.upkeep.rollup_due_ms =
            match self
                .upkeep
                .sealer
                .catch_up(&self.conn, now, crate::rollup::STEP_BUDGET)
            {
                Ok(more) => {
                    self.forget_sealed_names();
                    if more {
                        now
                    } else {
                        crate::rollup::next_due(now)
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rolling up the last hour failed; will retry");
                    now + ROLLUP_RETRY_MS
                }
            };
    }

    /// Drops the sealed hours from the unsealed hours' names (`crate::hour_names`), which
    /// would otherwise keep every hour until a reader asked for a name.
    fn forget_sealed_names(&self) {
        for table in [Table::Queries, Table::Hits] {
            match crate::rollup::sealed_hour(&self.conn, table) {
                Ok(Some(hour)) => self.hour_names.sealed(table, hour),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "reading the sealed hour failed"),
            }
        }
    }

    /// Groups settled query-log blocks by client (`blocks::group`) within
    /// `rollup::STEP_BUDGET`; due again at once while settled blocks remain. Not while the
    /// writer is behind (its batches fill before the flush interval ends): grouping only
    /// speeds up reads, and catches up once the load drops.
    fn group(&mut self) {
        let now = now_ms();
        if now < self.upkeep.group_due_ms || self.backlogged {
            return;
        }
        let step = (|| -> Result<group::Step, StoreError> {
            let tx = self.conn.unchecked_transaction()?;
            let step = group::step(
                &tx,
                now - group::SETTLE_MS,
                group::MIN_ROWS,
                crate::rollup::STEP_BUDGET,
            )?;
            tx.commit()?;
            Ok(step)
        })();
        self.upkeep.group_due_ms = match step {
            Ok(s) => {
                if s.grouped > 0 {
                    self.health
                        .blocks_grouped
                        .fetch_add(s.grouped as u64, Ordering::Relaxed);
                    metrics::counter!("poolguard_store_grouped_blocks_total")
                        .increment(s.grouped as u64);
                }
                if s.more { now } else { now + GROUP_IDLE_MS }
            }
            Err(e) => {
                tracing::warn!(error = %e, "grouping query-log blocks failed; will retry");
                now + ROLLUP_RETRY_MS
            }
        };
    }

    fn upkeep_step(&mut self, upkeep: Upkeep) -> Option<Upkeep> {
        match upkeep {
            Upkeep::Retention => Some(if self.prune_step() {
                Upkeep::Retention
            } else {
                Upkeep::Compact(Table::Queries, compact::Cursor::START)
            }),
            Upkeep::Compact(table, from) => match self.compact_step(table, from) {
                (next, Some(id)) => Some(Upkeep::Group(table, id, next)),
                (next, None) => Self::compact_on(table, next),
            },
            Upkeep::Group(table, id, next) => {
                self.group_merged_step(table, id);
                Self::compact_on(table, next)
            }
        }
    }

    /// The compaction step after one of `table` that ended at `next`.
    fn compact_on(table: Table, next: Option<compact::Cursor>) -> Option<Upkeep> {
        match next {
            Some(next) => Some(Upkeep::Compact(table, next)),
            None if table == Table::Queries => {
                Some(Upkeep::Compact(Table::Hits, compact::Cursor::START))
            }
            None => None,
        }
    }

    /// Groups the block a compaction step merged into (`compact::group_merged`). A failure
    /// leaves it plain: it reads as any plain block.
    fn group_merged_step(&mut self, table: Table, id: i64) {
        let step = (|| -> Result<(), StoreError> {
            let tx = self.conn.unchecked_transaction()?;
            compact::group_merged(&tx, table, id)?;
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = step {
            tracing::warn!(error = %e, ?table, id, "grouping a merged block failed; it stays as merged");
        }
    }

    /// One compaction step of `table`; returns where the next starts, if anywhere, and the
    /// block a run was merged into.
    fn compact_step(
        &mut self,
        table: Table,
        from: compact::Cursor,
    ) -> (Option<compact::Cursor>, Option<i64>) {
        let step = (|| -> Result<compact::Step, StoreError> {
            let tx = self.conn.unchecked_transaction()?;
            // Only blocks of hours already rolled up: the sealer reads an hour's blocks over
            // several steps and must not meet a merged copy of rows it counted.
            let rolled = crate::rollup::sealed_hour(&tx, table)?
                .map_or(i64::MIN, |h| h.saturating_mul(crate::rollup::HOUR_MS));
            let settled = (now_ms() - SETTLE_MS).min(rolled);
            // Hits above the shipped watermark are not in PostgreSQL yet (`crate::shipped`).
            let through = match table {
                Table::Hits => self.shipped.get(),
                Table::Queries => i64::MAX,
            };
            let step = compact::step(&tx, table, settled, through, from)?;
            tx.commit()?;
            Ok(step)
        })();
        match step {
            Ok(s) => {
                if s.removed > 0 {
                    self.health
                        .blocks_compacted
                        .fetch_add(s.removed as u64, Ordering::Relaxed);
                    metrics::counter!("poolguard_store_compacted_blocks_total")
                        .increment(s.removed as u64);
                }
                (s.next, s.merged)
            }
            Err(e) => {
                tracing::warn!(error = %e, ?table, "block compaction failed; will retry next hour");
                (None, None)
            }
        }
    }

    /// One retention batch per table; returns whether more remain.
    fn prune_step(&mut self) -> bool {
        let (q_cut, h_cut) = retention::cutoffs(&self.cfg, now_ms());
        // The last shipped block stays too, so SQLite never hands out its id again.
        let hits_below = self.shipped.get();
        match retention::step(
            &self.conn,
            q_cut,
            h_cut,
            hits_below,
            retention::DELETE_BLOCKS,
        ) {
            Ok((q, h, more)) => {
                // A step may prune `hit_names`: names remembered may be gone.
                self.known.forget();
                if q + h > 0 {
                    tracing::debug!(queries = q, hits = h, "retention batch");
                    metrics::counter!("poolguard_store_pruned_rows_total")
                        .increment((q + h) as u64);
                }
                more
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention pruning failed; will retry next hour");
                false
            }
        }
    }
}
