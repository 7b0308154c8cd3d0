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
    let whole = match sealed_hour(conn, table)? {
        Some(sealed) => {
            let from = since.div_euclid(HOUR_MS) + i64::from(since.rem_euclid(HOUR_MS) != 0);
            let to = until.div_euclid(HOUR_MS).min(sealed);
            (from < to).then_some((from, to))
        }
        None => None,
    };
    let edges = match whole {
        None => vec![(since, until)],
        Some((from, to)) => [(since, from * HOUR_MS), (to * HOUR_MS, until)]
            .into_iter()
            .filter(|(a, b)| a < b)
            .collect(),
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
            if k.is_empty() {
            } else if let Some(v) = by.get_mut(k) {
                *v += n;
            } else {
                by.insert(k.to_string(), n);
            }
        };
        let days = (
            from.div_euclid(DAY_HOURS) + i64::from(from.rem_euclid(DAY_HOURS) != 0),
            to.div_euclid(DAY_HOURS),
        );
        if days.0 < days.1 {
            sums(conn, self.table, Span::Day, kind, days, &mut add)?;
            for hours in [(from, days.0 * DAY_HOURS), (days.1 * DAY_HOURS, to)] {
                if hours.0 < hours.1 {
                    sums(conn, self.table, Span::Hour, kind, hours, &mut add)?;
                }
            }
        } else {
            sums(conn, self.table, Span::Hour, kind, (from, to), &mut add)?;
        }
        Ok(by)
    }
}
