//! Reading rollups: which part of a time window they answer, and their counts.

use std::collections::HashMap;

use rusqlite::Connection;

use super::{DAY_HOURS, HOUR_MS, Kind, Span, sealed_hour, sums};
use crate::StoreError;
use crate::rows::Table;

/// A time window `[since, until)` of one log split into whole sealed hours, answered by the
/// rollups, and the rest (the partial hours at either edge and the hours not sealed yet),
/// answered by the blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    table: Table,
    /// Hours `[from, to)` in the rollups.
    rolled: Option<(i64, i64)>,
    /// Millisecond ranges `[from, to)` to read from the blocks.
    pub edges: Vec<(i64, i64)>,
}

/// How `[since, until)` of `table` splits between rollups and blocks now.
pub fn window(
    conn: &Connection,
    table: Table,
    since: i64,
    until: i64,
) -> Result<Window, StoreError> {
    let (whole, edges) = match sealed_hour(conn, table)? {
        Some(sealed) => split(since, until, sealed),
        None => (None, vec![(since, until)]),
    };
    Ok(Window {
        table,
        rolled: whole,
        edges,
    })
}

impl Window {
    /// The rolled-up counts of `kind` in the window's whole hours, by key (the rest rows
    /// left out): whole days from the day rows, the hours around them from the hour rows.
    pub fn counts(
        &self,
        conn: &Connection,
        kind: Kind,
    ) -> Result<HashMap<String, u64>, StoreError> {
        let mut by: HashMap<String, u64> = HashMap::new();
        let Some((from, to)) = self.rolled else {
            return Ok(by);
        };
        let mut add = |k: &str, n: u64| {
            if !k.is_empty() {
                crate::top::add_count(&mut by, k, n);
            }
        };
        let (days, hours) = by_days(from, to);
        if let Some(days) = days {
            sums(conn, self.table, Span::Day, kind, days, &mut add)?;
        }
        for h in hours.into_iter().filter(|(a, b)| a < b) {
            sums(conn, self.table, Span::Hour, kind, h, &mut add)?;
        }
        Ok(by)
    }
}

/// A half-open range `[from, to)` of hours, days or milliseconds.
pub type Range = (i64, i64);

/// Splits `[since, until)` (milliseconds) into the whole hours `[from, to)` below `hour_limit`
/// (the first hour not rolled up) and the millisecond edges left over, both backends' rule for
/// which part of a window rollups answer.
pub fn split(since: i64, until: i64, hour_limit: i64) -> (Option<Range>, Vec<Range>) {
    whole_units(
        since,
        until,
        HOUR_MS,
        (i64::MIN, hour_limit.saturating_mul(HOUR_MS)),
    )
}

/// Splits `[since, until)` (milliseconds) into the whole units of `unit_ms` (`[from, to)`, in
/// units) that lie inside `within` (milliseconds), and the millisecond ranges left over.
pub fn whole_units(
    since: i64,
    until: i64,
    unit_ms: i64,
    within: Range,
) -> (Option<Range>, Vec<Range>) {
    let (lo, hi) = (since.max(within.0), until.min(within.1));
    let from = lo.div_euclid(unit_ms) + i64::from(lo.rem_euclid(unit_ms) != 0);
    let to = hi.div_euclid(unit_ms);
    if from >= to {
        return (None, vec![(since, until)]);
    }
    let rest = [(since, from * unit_ms), (to * unit_ms, until)]
        .into_iter()
        .filter(|(a, b)| a < b)
        .collect();
    (Some((from, to)), rest)
}

/// Splits the hours `[from, to)` into the whole days inside them (day rows) and the hours
/// around those days (hour rows; an empty range where there are none), so a month reads 30
/// day rows per key instead of 720 hour rows.
pub fn by_days(from: i64, to: i64) -> (Option<Range>, [Range; 2]) {
    let days = (
        from.div_euclid(DAY_HOURS) + i64::from(from.rem_euclid(DAY_HOURS) != 0),
        to.div_euclid(DAY_HOURS),
    );
    if days.0 < days.1 {
        (
            Some(days),
            [(from, days.0 * DAY_HOURS), (days.1 * DAY_HOURS, to)],
        )
    } else {
        (None, [(from, to), (to, to)])
    }
}
