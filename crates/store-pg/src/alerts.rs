//! The alert delivery log and the deadline alerts on PostgreSQL (`AlertStore`).
//!
//! Every node runs the periodic deadline check against the one `incidents` table. A claim is
//! one transaction that locks the candidate rows `FOR UPDATE SKIP LOCKED`, decides with the
//! rule every backend shares (`poolguard_store::alerted::due`) and sets the rows' `alerted`
//! bits before it commits: a second node scanning at the same moment skips the rows the first
//! holds, and one scanning after sees their bits, so each alert goes to exactly one node.

use async_trait::async_trait;
use poolguard_store::alerted::{self, DeadlineAlert};
use poolguard_store::incidents::Delivery;
use poolguard_store::{AlertStore, Cursor, Paged, StoreError, cursor};

use crate::incidents::{INCIDENT_COLUMNS, map_incident};
use crate::{PgError, PgStore, limit};

/// Incidents claimed per pass at most (as on SQLite).
const CLAIM_BATCH: i64 = 1000;

impl PgStore {
    async fn claim(&self, now: i64, soon: i64) -> Result<Vec<DeadlineAlert>, PgError> {
        let mut c = self.pool().get().await?;
        let tx = c.transaction().await?;
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status <> 'closed' AND alerted <> 15 \
             AND ((identified_ms IS NULL AND identify_due_ms - $1 <= $2) \
               OR (reported_ms IS NULL AND report_due_ms - $1 <= $2)) \
             ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED"
        );
        let rows = tx.query(&sql, &[&soon, &now, &CLAIM_BATCH]).await?;
        let mut out = Vec::new();
        for r in &rows {
            let row = map_incident(r)?;
            let (alerts, bits) = alerted::due(&row, now, soon);
            out.extend(alerts);
            if bits != row.alerted {
                let bits = i32::try_from(bits).unwrap_or(15);
                tx.execute(
                    "UPDATE incidents SET alerted = $2 WHERE id = $1",
                    &[&row.id, &bits],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn log(&self, d: &Delivery, now_ms: i64) -> Result<(), PgError> {
        let c = self.pool().get().await?;
        let attempt = i32::try_from(d.attempt).unwrap_or(i32::MAX);
        let status = d.status.map(i32::from);
        c.execute(
            "INSERT INTO alert_deliveries (time_ms, node, event, target, attempt, status, ok, \
             error, incident_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &now_ms,
                &self.node(),
                &d.event,
                &d.target,
                &attempt,
                &status,
                &d.ok,
                &d.error,
                &d.incident_id,
            ],
        )
        .await?;
        Ok(())
    }

    async fn delivery_page(&self, n: usize, before: Option<i64>) -> Result<Vec<Delivery>, PgError> {
        let c = self.pool().get().await?;
        let rows = c
            .query(
                "SELECT id, time_ms, event, target, attempt, status, ok, error, incident_id \
                 FROM alert_deliveries WHERE id < $1 ORDER BY id DESC LIMIT $2",
                &[&before.unwrap_or(i64::MAX), &limit(n)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let attempt: i32 = r.try_get(4)?;
                let status: Option<i32> = r.try_get(5)?;
                Ok(Delivery {
                    id: r.try_get(0)?,
                    time: poolguard_model::rfc3339(r.try_get(1)?),
                    event: r.try_get(2)?,
                    target: r.try_get(3)?,
                    attempt: u32::try_from(attempt).unwrap_or(0),
                    status: status.and_then(|s| u16::try_from(s).ok()),
                    ok: r.try_get(6)?,
                    error: r.try_get(7)?,
                    incident_id: r.try_get(8)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl AlertStore for PgStore {
    async fn log_delivery(&self, delivery: Delivery, now_ms: i64) -> Result<(), StoreError> {
        Ok(self.log(&delivery, now_ms).await?)
    }

    async fn deliveries(
        &self,
        n: usize,
        cursor: Option<Cursor>,
    ) -> Result<Paged<Delivery>, StoreError> {
        let before = cursor.as_ref().map(cursor::id).transpose()?;
        let items = self.delivery_page(n, before).await?;
        let next = cursor::after(&items, n, |d| d.id);
        Ok(Paged { items, next })
    }

    async fn claim_deadline_alerts(
        &self,
        now_ms: i64,
        due_soon_ms: i64,
    ) -> Result<Vec<DeadlineAlert>, StoreError> {
        Ok(self.claim(now_ms, due_soon_ms).await?)
    }
}
