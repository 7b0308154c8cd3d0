//! The group database's upkeep, done by whichever shipper has nothing to ship: trimming the
//! hit rollups' closed buckets to their largest keys (`poolguard_trim_rollups`), so `/stats`
//! over a day reads about a thousand rows per hour and node rather than one per client, and
//! hit retention (`poolguard_expire_hits`, `[store] hit_retention_days`). Both are bounded
//! steps (one bucket, a few thousand hits) that nodes running at once skip rather than wait.

use std::time::{Duration, Instant};

use crate::schema::ROLLUP_KEEP;

/// An hour and a day, in milliseconds.
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// How long a bucket stays open to late hits before it is trimmed: five minutes past an
/// hour's end (a shipper is normally a second behind; a late hit after trimming is still
/// counted, as its own row), two hours past a day's end. An hour not trimmed yet holds every
/// client that hit anything in it, so the sooner it is trimmed the cheaper a "last 24 h".
const HOUR_GRACE_MS: i64 = 5 * 60_000;
const DAY_GRACE_MS: i64 = 2 * HOUR_MS;

/// Hits deleted per retention step.
const EXPIRE_STEP: i32 = 5_000;

/// How long to wait after finding nothing to do before asking again.
const IDLE_RECHECK: Duration = Duration::from_secs(60);

/// The buckets closed at `now_ms`, per span (`hit_rollups.span`: 0 hours, 1 days): every
/// bucket below the bound may be trimmed with `poolguard_trim_rollups(span, bound, keep)`.
pub fn due_before(now_ms: i64) -> [(i16, i64); 2] {
    [
        (0, (now_ms - HOUR_GRACE_MS).div_euclid(HOUR_MS)),
        (1, (now_ms - DAY_GRACE_MS).div_euclid(DAY_MS)),
    ]
}

/// When to do upkeep next: at once while there is work, a minute after there was none.
#[derive(Debug)]
pub(crate) struct Upkeep {
    next: Instant,
    /// `[store] hit_retention_days` in milliseconds; 0 keeps hits forever.
    retention_ms: i64,
}

impl Upkeep {
    pub(crate) fn new(hit_retention_days: u32) -> Self {
        Self {
            next: Instant::now(),
            retention_ms: i64::from(hit_retention_days) * DAY_MS,
        }
    }

    /// Does one bounded step if one is due: a bucket to trim (hours first), else a batch of
    /// expired hits. Errors are the connection's: the caller treats them like a failed
    /// shipment.
    pub(crate) fn step(
        &mut self,
        client: &mut postgres::Client,
        now_ms: i64,
    ) -> Result<(), postgres::Error> {
        if Instant::now() < self.next {
            return Ok(());
        }
        for (span, before) in due_before(now_ms) {
            let trimmed: bool = client
                .query_one(
                    "SELECT poolguard_trim_rollups($1, $2, $3)",
                    &[&span, &before, &ROLLUP_KEEP],
                )?
                .get(0);
            if trimmed {
                return Ok(());
            }
        }
        if self.retention_ms > 0 {
            let expired: i32 = client
                .query_one(
                    "SELECT poolguard_expire_hits($1, $2)",
                    &[&(now_ms - self.retention_ms), &EXPIRE_STEP],
                )?
                .get(0);
            if expired == EXPIRE_STEP {
                return Ok(());
            }
        }
        self.next = Instant::now() + IDLE_RECHECK;
        Ok(())
    }
}
