//! Reading the hit rollups (schema step 4, `hit_rollups`): `/stats` and the bulletin take a
//! window's whole days and hours from the rollups and only its partial hours from `hits`.
//!
//! At 10 M hits `/stats` over 24 h grouped 1.4 M rows four times (1.7–1.9 s) and the weekly
//! bulletin 4–5 s. The rollups are exact at every commit (a trigger writes them in the
//! transaction that inserts the hits), so unlike the SQLite store there is no sealed hour:
//! every whole hour of a window is read from them, and at most two partial hours from `hits`
//! (one index range each on `hits_time`). The window split is the SQLite store's
//! ([`poolguard_store::rollup::split`], [`poolguard_store::rollup::by_days`]).

use crate::{Params, PgError, refs};
use poolguard_store::Count;
use poolguard_store::rollup::{Kind, by_days, split};
use poolguard_store::summary::{Offender, OffenderDevice};

/// A window `[since, until)` as the ranges every rollup read takes: whole days (day rows),
/// the hours around them (hour rows) and the millisecond edges (`hits`). Absent parts are
/// empty ranges, so every read has the same parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    days: (i64, i64),
    hours: [(i64, i64); 2],
    edges: [(i64, i64); 2],
}

impl Plan {
    /// Splits `[since, until)`.
    pub(crate) fn of(since: i64, until: i64) -> Self {
        let (whole, edges) = split(since, until, i64::MAX);
        let (days, hours) = match whole {
            Some((from, to)) => by_days(from, to),
            None => (None, [(0, 0), (0, 0)]),
        };
        let mut plan = Self {
            days: days.unwrap_or((0, 0)),
            hours,
            edges: [(0, 0), (0, 0)],
        };
        for (slot, edge) in plan.edges.iter_mut().zip(edges) {
            *slot = edge;
        }
        plan
    }

    /// `$1` (the kind) to `$11`, in the order [`union`] numbers them, then `$12` (the row
    /// limit).
    fn params(&self, kind: Kind, top: Option<i64>) -> Params {
        let mut p: Params = vec![Box::new(kind as i16)];
        let ranges = [
            self.days,
            self.hours[0],
            self.hours[1],
            self.edges[0],
            self.edges[1],
        ];
        for (a, b) in ranges {
            p.push(Box::new(a));
            p.push(Box::new(b));
        }
        p.push(Box::new(top));
        p
    }
}

/// The column of `hits` a kind counts.
fn column(kind: Kind) -> &'static str {
    match kind {
        Kind::Action => "action",
        Kind::Name => "name",
        Kind::Client => "host(client)",
        Kind::Department => "department",
        Kind::Feed => "feed",
    }
}

/// The rows of one kind in a window as `(key, n[, asset, department])`: day rows, hour rows
/// (without the trimmed rest, key `''`), and the edges grouped from `hits`. `identity` adds the client rows' asset and department.
fn union(kind: Kind, identity: bool) -> String {
    let col = column(kind);
    let (rolled, grouped) = if identity {
        (
            "key, n, asset, department",
            format!("{col}, count(*), max(asset), max(department)"),
        )
    } else {
        ("key, n", format!("{col}, count(*)"))
    };
    let rows = |span: u8, from: u8| {
        format!(
            "SELECT {rolled} FROM hit_rollups WHERE span = {span} AND kind = $1 \
             AND bucket >= ${from} AND bucket < ${} AND key <> ''",
            from + 1
        )
    };
    let edge = |from: u8| {
        format!(
            "SELECT {grouped} FROM hits WHERE time_ms >= ${from} AND time_ms < ${} \
             AND {col} IS NOT NULL GROUP BY 1",
            from + 1
        )
    };
    [rows(1, 2), rows(0, 4), rows(0, 6), edge(8), edge(10)].join(" UNION ALL ")
}

/// The counts of `kind` in the window by key, largest first (ties by key), at most `top`
/// (all when `None`); only the keys in `only` when given.
pub(crate) async fn counts(
    client: &tokio_postgres::Client,
    plan: &Plan,
    kind: Kind,
    top: Option<i64>,
    only: Option<&[&str]>,
) -> Result<Vec<Count>, PgError> {
    let filter = if only.is_some() {
        "WHERE key = ANY($13)"
    } else {
        ""
    };
    let sql = format!(
        "SELECT key, sum(n)::bigint FROM ({}) t (key, n) {filter} \
         GROUP BY key ORDER BY 2 DESC, 1 LIMIT $12",
        union(kind, false)
    );
    let mut params = plan.params(kind, top);
    if let Some(only) = only {
        params.push(Box::new(
            only.iter().map(|s| s.to_string()).collect::<Vec<String>>(),
        ));
    }
    client
        .query(&sql, &refs(&params))
        .await?
        .iter()
        .map(|r| {
            Ok(Count {
                value: r.try_get(0)?,
                count: r.try_get(1)?,
            })
        })
        .collect()
}

/// The clients with the most hits in the window, with the greatest asset and department
/// recorded for each (the bulletin's offender table).
pub(crate) async fn offenders(
    client: &tokio_postgres::Client,
    plan: &Plan,
    top: i64,
) -> Result<Vec<Offender>, PgError> {
    let sql = format!(
        "SELECT key, max(asset), max(department), sum(n)::bigint \
         FROM ({}) t (key, n, asset, department) \
         GROUP BY key ORDER BY 4 DESC, 1 LIMIT $12",
        union(Kind::Client, true)
    );
    let params = plan.params(Kind::Client, Some(top));
    client
        .query(&sql, &refs(&params))
        .await?
        .iter()
        .map(|r| {
            Ok(Offender {
                client: r.try_get(0)?,
                asset: r.try_get(1)?,
                department: r.try_get(2)?,
                hits: r.try_get(3)?,
                devices: Vec::new(),
            })
        })
        .collect()
}

/// Fills each offender's devices from its hits of `[since, until)` (the rollups count
/// addresses only): one grouped read over `hits_client` for the few addresses listed.
pub(crate) async fn offender_devices(
    client: &tokio_postgres::Client,
    offenders: &mut [Offender],
    (since, until): (i64, i64),
) -> Result<(), PgError> {
    if offenders.is_empty() {
        return Ok(());
    }
    let addresses: Vec<String> = offenders.iter().map(|o| o.client.clone()).collect();
    let rows = client
        .query(
            "SELECT host(client), mac, account, max(hostname), max(owner), \
             max(identity_source), count(*)::bigint FROM hits \
             WHERE client = ANY($1::text[]::inet[]) AND time_ms >= $2 AND time_ms < $3 \
             AND (mac IS NOT NULL OR account IS NOT NULL) \
             GROUP BY 1, 2, 3",
            &[&addresses, &since, &until],
        )
        .await?;
    for r in rows {
        let address: String = r.try_get(0)?;
        let Some(o) = offenders.iter_mut().find(|o| o.client == address) else {
            continue;
        };
        let (mac, account): (Option<String>, Option<String>) = (r.try_get(1)?, r.try_get(2)?);
        let (hostname, owner): (Option<String>, Option<String>) = (r.try_get(3)?, r.try_get(4)?);
        let source: Option<String> = r.try_get(5)?;
        OffenderDevice::count(
            &mut o.devices,
            mac.as_deref(),
            account.as_deref(),
            hostname.as_deref(),
            owner.as_deref(),
            source.as_deref(),
            r.try_get(6)?,
        );
    }
    for o in offenders.iter_mut() {
        o.devices = OffenderDevice::busiest(std::mem::take(&mut o.devices));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn a_window_splits_into_days_hours_and_edges() {
        // 23:30 of day 0 to 02:15 of day 3: two whole days, the hours around them, two edges.
        let since = 23 * H + H / 2;
        let until = 3 * 24 * H + 2 * H + H / 4;
        let plan = Plan::of(since, until);
        assert_eq!(plan.days, (1, 3));
        assert_eq!(plan.hours, [(24, 24), (72, 74)]);
        assert_eq!(plan.edges, [(since, 24 * H), (74 * H, until)]);
    }

    #[test]
    fn a_window_inside_one_hour_is_read_from_the_hits_alone() {
        let plan = Plan::of(5 * H + 10, 5 * H + 20);
        assert_eq!(plan.days, (0, 0));
        assert_eq!(plan.hours, [(0, 0), (0, 0)]);
        assert_eq!(plan.edges, [(5 * H + 10, 5 * H + 20), (0, 0)]);
    }

    #[test]
    fn whole_hours_within_a_day_are_read_from_hour_rows() {
        let plan = Plan::of(2 * H, 7 * H);
        assert_eq!(plan.days, (0, 0));
        assert_eq!(plan.hours, [(2, 7), (7, 7)]);
        assert_eq!(plan.edges, [(0, 0), (0, 0)]);
    }
}
