//! The review queue on PostgreSQL (`ReviewStore`, docs/REVIEW.md): one queue for the group.
//! Each node scans its own query log and merges what it found here; its scan position is its
//! own row of `review_scan`. A sighting of a new name is an `INSERT … ON CONFLICT DO
//! NOTHING`, then the row is locked and merged (`Candidate::merged`, as on SQLite), so two
//! nodes seeing one name at once add up; a decision is one `UPDATE … WHERE state =
//! 'pending'`, so of two maintainers deciding at once through two nodes, one wins.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use poolguard_store::review::{
    Candidate, Decided, ReviewDecision, ReviewFilter, ReviewReason, ReviewState, ReviewStore,
    Sighting, cursor_key, cursor_of, decode,
};
use poolguard_store::{Actor, Paged, StoreError};
use tokio_postgres::Row;

use crate::{PgError, PgStore, limit};

const COLUMNS: &str = "name, reason, state, clients, first_ms, last_ms, count, resolved, \
                       evidence, decided_by, decided_ms, decision";

fn candidate(r: &Row) -> Result<Candidate, PgError> {
    let reason: String = r.try_get(1)?;
    let state: String = r.try_get(2)?;
    let clients: String = r.try_get(3)?;
    let (reason, state, clients) = decode(&reason, &state, &clients);
    Ok(Candidate {
        name: r.try_get(0)?,
        reason,
        state,
        clients,
        first_ms: r.try_get(4)?,
        last_ms: r.try_get(5)?,
        count: r.try_get(6)?,
        resolved: r.try_get(7)?,
        evidence: r.try_get(8)?,
        decided_by: r.try_get(9)?,
        decided_ms: r.try_get(10)?,
        decision: r.try_get(11)?,
    })
}

async fn get<C: GenericClient>(
    c: &C,
    name: &str,
    lock: bool,
) -> Result<Option<Candidate>, PgError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM review_candidates WHERE name = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    c.query_opt(&sql, &[&name])
        .await?
        .map(|r| candidate(&r))
        .transpose()
}

fn clients_json(c: &Candidate) -> String {
    serde_json::to_string(&c.clients).unwrap_or_else(|_| "[]".into())
}

impl PgStore {
    async fn record_sightings(&self, sightings: &[Sighting], until: i64) -> Result<(), PgError> {
        let mut c = self.pool().get().await?;
        let tx = c.transaction().await?;
        for s in sightings {
            let new = Candidate::new(s);
            let inserted = tx
                .execute(
                    &format!(
                        "INSERT INTO review_candidates ({COLUMNS}) VALUES ($1, $2, 'pending', $3, \
                         $4, $5, $6, $7, $8, NULL, NULL, NULL) ON CONFLICT (name) DO NOTHING"
                    ),
                    &[
                        &new.name,
                        &new.reason.as_str(),
                        &clients_json(&new),
                        &new.first_ms,
                        &new.last_ms,
                        &new.count,
                        &new.resolved,
                        &new.evidence,
                    ],
                )
                .await?;
            if inserted == 1 {
                continue;
            }
            let Some(before) = get(&tx, &s.name, true).await? else {
                continue;
            };
            if before.state != ReviewState::Pending {
                continue;
            }
            let m = before.merged(s);
            tx.execute(
                "UPDATE review_candidates SET clients = $2, first_ms = $3, last_ms = $4, \
                 count = $5, resolved = $6 WHERE name = $1",
                &[
                    &m.name,
                    &clients_json(&m),
                    &m.first_ms,
                    &m.last_ms,
                    &m.count,
                    &m.resolved,
                ],
            )
            .await?;
        }
        tx.execute(
            "INSERT INTO review_scan (node, until_ms) VALUES ($1, $2) ON CONFLICT (node) \
             DO UPDATE SET until_ms = GREATEST(review_scan.until_ms, EXCLUDED.until_ms)",
            &[&self.node(), &until],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One page after `(before_ms, after_name)` (the decoded cursor).
    async fn review_page(
        &self,
        f: &ReviewFilter,
        (before_ms, after_name): (i64, String),
    ) -> Result<Paged<Candidate>, PgError> {
        let c = self.pool().get().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM review_candidates \
                     WHERE ($1::text IS NULL OR reason = $1) AND ($2::text IS NULL OR state = $2) \
                     AND (last_ms < $3 OR (last_ms = $3 AND name > $4)) \
                     ORDER BY last_ms DESC, name ASC LIMIT $5"
                ),
                &[
                    &f.reason.map(ReviewReason::as_str),
                    &f.state.map(ReviewState::as_str),
                    &before_ms,
                    &after_name,
                    &limit(f.limit),
                ],
            )
            .await?;
        let items = rows.iter().map(candidate).collect::<Result<Vec<_>, _>>()?;
        let next = (items.len() == f.limit)
            .then(|| items.last().map(cursor_of))
            .flatten();
        Ok(Paged { items, next })
    }

    async fn decide_candidate(
        &self,
        name: &str,
        decision: &ReviewDecision,
        actor: &Actor,
        now: i64,
    ) -> Result<Decided, PgError> {
        let (state, text) = match decision {
            ReviewDecision::Accept { feed } => (ReviewState::Accepted, feed),
            ReviewDecision::Dismiss { reason } => (ReviewState::Dismissed, reason),
        };
        let c = self.pool().get().await?;
        let changed = c
            .execute(
                "UPDATE review_candidates SET state = $2, decided_by = $3, decided_ms = $4, \
                 decision = $5 WHERE name = $1 AND state = 'pending'",
                &[&name, &state.as_str(), &actor.name, &now, text],
            )
            .await?;
        Ok(match (get(&c, name, false).await?, changed) {
            (None, _) => Decided::NotFound,
            (Some(row), 1) => Decided::Done(row),
            (Some(row), _) => Decided::AlreadyDecided(row),
        })
    }
}

#[async_trait]
impl ReviewStore for PgStore {
    async fn review_scanned_until(&self) -> Result<Option<i64>, StoreError> {
        let c = self.pool().get().await.map_err(PgError::from)?;
        let row = c
            .query_opt(
                "SELECT until_ms FROM review_scan WHERE node = $1",
                &[&self.node()],
            )
            .await
            .map_err(PgError::from)?;
        Ok(row
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(PgError::from)?)
    }

    async fn review_record(
        &self,
        sightings: Vec<Sighting>,
        until_ms: i64,
    ) -> Result<(), StoreError> {
        Ok(self.record_sightings(&sightings, until_ms).await?)
    }

    async fn review_list(&self, filter: ReviewFilter) -> Result<Paged<Candidate>, StoreError> {
        // A cursor that does not decode is the API's 400, as on SQLite.
        let after = cursor_key(filter.cursor.as_ref())?;
        Ok(self.review_page(&filter, after).await?)
    }

    async fn review_get(&self, name: String) -> Result<Option<Candidate>, StoreError> {
        let c = self.pool().get().await.map_err(PgError::from)?;
        Ok(get(&c, &name, false).await?)
    }

    async fn review_decide(
        &self,
        name: String,
        decision: ReviewDecision,
        actor: Actor,
        now_ms: i64,
    ) -> Result<Decided, StoreError> {
        Ok(self
            .decide_candidate(&name, &decision, &actor, now_ms)
            .await?)
    }
}
