//! The periodic bulletin on PostgreSQL (`IncidentStore::summary`): the group's hits and
//! incidents of a period, as SQL aggregates over the shared tables. The incident figures
//! (opened, closed, overdue by department) come from the rule the SQLite bulletin uses
//! (`poolguard_store::summary::IncidentFigures`), so both backends agree on "overdue".

use poolguard_store::summary::{IncidentFigures, Offender, SUMMARY_TOP, Summary};

use crate::incidents::INCIDENT_COLUMNS;
use crate::{Params, PgError, PgStore};

/// Computes the summary of `[since, until)`; overdue is judged at `min(until, now)`.
pub(crate) async fn summary(
    store: &PgStore,
    since: i64,
    until: i64,
    now: i64,
) -> Result<Summary, PgError> {
    let top = SUMMARY_TOP as i64;
    let c = store.pool().get().await?;
    // Names first hit in the period (`hit_names` keeps each blocked name's first hit).
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
    let name_hits: std::collections::HashMap<String, i64> = c
        .query(
            "SELECT name, count(*) FROM hits WHERE time_ms >= $1 AND time_ms < $2 \
             AND name = ANY($3) GROUP BY name",
            &[&since, &until, &names],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, PgError>>()?;
    let hits: i64 = c
        .query_one(
            "SELECT count(*) FROM hits WHERE time_ms >= $1 AND time_ms < $2",
            &[&since, &until],
        )
        .await?
        .try_get(0)?;
    // The greatest asset and department per address, as the SQLite bulletin keeps.
    let top_offenders = c
        .query(
            "SELECT host(client), max(asset), max(department), count(*) FROM hits \
             WHERE time_ms >= $1 AND time_ms < $2 GROUP BY client ORDER BY 4 DESC, 1 LIMIT $3",
            &[&since, &until, &top],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Offender {
                client: r.try_get(0)?,
                asset: r.try_get(1)?,
                department: r.try_get(2)?,
                hits: r.try_get(3)?,
            })
        })
        .collect::<Result<Vec<_>, PgError>>()?;
    drop(c);
    let sql = format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents \
         WHERE (opened_ms >= $1 AND opened_ms < $2) OR (closed_ms >= $1 AND closed_ms < $2)"
    );
    let params: Params = vec![Box::new(since), Box::new(until)];
    let rows = store.incidents_where(&sql, &params).await?;
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
