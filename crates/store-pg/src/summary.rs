//! The periodic bulletin on PostgreSQL (`IncidentStore::summary`): the group's hits and
//! incidents of a period, as SQL aggregates over the shared tables. The incident figures
//! (opened, closed, overdue by department) come from the rule the SQLite bulletin uses
//! (`poolguard_store::summary::IncidentFigures`), so both backends agree on "overdue".

use poolguard_store::summary::{IncidentFigures, SUMMARY_TOP, Summary};

use poolguard_store::rollup::Kind;

use crate::incidents::INCIDENT_COLUMNS;
use crate::rollups::{self, Plan};
use crate::{Params, PgError, PgStore};

/// Computes the summary of `[since, until)`; overdue is judged at `min(until, now)`.
pub(crate) async fn summary(
    store: &PgStore,
    since: i64,
    until: i64,
    now: i64,
) -> Result<Summary, PgError> {
    let top = SUMMARY_TOP as i64;
    let plan = Plan::of(since, until);
    // The names first hit in the period (`hit_names` keeps each blocked name's first hit)
    // and their hits in it.
    let new_names = async {
        let c = store.pool().get().await?;
        let firsts: Vec<(String, i64)> = c
            .query(
                "SELECT name, first_ms FROM hit_names WHERE first_ms >= $1 AND first_ms < $2 \
                 ORDER BY first_ms, name LIMIT $3",
                &[&since, &until, &(top * 5)],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, PgError>>()?;
        let names: Vec<&str> = firsts.iter().map(|(n, _)| n.as_str()).collect();
        let name_hits: std::collections::HashMap<String, i64> =
            rollups::counts(&c, &plan, Kind::Name, None, Some(&names))
                .await?
                .into_iter()
                .map(|n| (n.value, n.count))
                .collect();
        Ok::<_, PgError>((firsts, name_hits))
    };
    // Hits, and the offender table, from the rollups (`crate::rollups`).
    let hits = async {
        let c = store.pool().get().await?;
        let by_action = rollups::counts(&c, &plan, Kind::Action, None, None).await?;
        Ok::<i64, PgError>(by_action.iter().map(|n| n.count).sum())
    };
    let offenders = async {
        let c = store.pool().get().await?;
        let mut offenders = rollups::offenders(&c, &plan, top).await?;
        rollups::offender_devices(&c, &mut offenders, (since, until)).await?;
        Ok::<_, PgError>(offenders)
    };
    let sql = format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents \
         WHERE (opened_ms >= $1 AND opened_ms < $2) OR (closed_ms >= $1 AND closed_ms < $2)"
    );
    let params: Params = vec![Box::new(since), Box::new(until)];
    // Each read on its own pooled connection, all at once.
    let ((firsts, name_hits), hits, top_offenders, rows) = tokio::try_join!(
        new_names,
        hits,
        offenders,
        store.incidents_where(&sql, &params)
    )?;
    let figures = IncidentFigures::of(&rows, since, until, until.min(now));
    Ok(Summary::assemble(
        (since, until),
        hits,
        figures,
        top_offenders,
        &firsts,
        |name| name_hits.get(name).copied().unwrap_or(0),
    ))
}
