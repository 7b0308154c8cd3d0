//! The quarantine list on PostgreSQL (`QuarantineStore`), shared by every node.
//!
//! A change and its audit rows are one transaction; the `quarantine_changed` trigger then
//! notifies `poolguard_changes` with `quarantine`, and every node's listener
//! ([`crate::changes`]) reloads its DNS path's set from here, so a change made through any
//! node (or by hand in psql) is in force everywhere.

use async_trait::async_trait;
use poolguard_store::audit::QuarantineChange;
use poolguard_store::incidents::QuarantineEntry;
use poolguard_store::{QuarantineAdd, QuarantineRelease, QuarantineStore, StoreError};
use tokio_postgres::Row;

use crate::{PgError, PgStore};

/// The columns [`map_entry`] reads, in order.
/// `abbrev`: an address alone, a network with its prefix (`poolguard_model::net::target_text`).
const ENTRY_COLUMNS: &str = "abbrev(ip), since_ms, actor, reason, incident_id";

fn map_entry(r: &Row) -> Result<QuarantineEntry, PgError> {
    Ok(QuarantineEntry {
        ip: r.try_get(0)?,
        since: poolguard_model::rfc3339(r.try_get(1)?),
        actor: r.try_get(2)?,
        reason: r.try_get(3)?,
        incident_id: r.try_get(4)?,
    })
}

impl PgStore {
    async fn add(&self, q: QuarantineAdd) -> Result<(bool, QuarantineEntry), PgError> {
        let ip = poolguard_model::net::target_text(&q.ip);
        let mut c = self.pool().get().await?;
        let tx = c.transaction().await?;
        let added = tx
            .execute(
                "INSERT INTO quarantine (ip, since_ms, actor, reason, incident_id) \
                 VALUES ($1::text::inet, $2, $3, $4, $5) ON CONFLICT (ip) DO NOTHING",
                &[&ip, &q.now_ms, &q.actor.name, &q.reason, &q.incident_id],
            )
            .await?
            > 0;
        if added {
            let rows =
                QuarantineChange::added(q.incident_id).rows(&ip, &q.actor, q.now_ms, &q.reason);
            crate::audit::insert_all(&tx, self.node(), &rows).await?;
        }
        let sql = format!("SELECT {ENTRY_COLUMNS} FROM quarantine WHERE ip = $1::text::inet");
        let entry = map_entry(&tx.query_one(&sql, &[&ip]).await?)?;
        tx.commit().await?;
        Ok((added, entry))
    }

    async fn release(&self, q: QuarantineRelease) -> Result<Option<QuarantineEntry>, PgError> {
        let ip = poolguard_model::net::target_text(&q.ip);
        let mut c = self.pool().get().await?;
        let tx = c.transaction().await?;
        let sql =
            format!("DELETE FROM quarantine WHERE ip = $1::text::inet RETURNING {ENTRY_COLUMNS}");
        let Some(row) = tx.query_opt(&sql, &[&ip]).await? else {
            return Ok(None);
        };
        let entry = map_entry(&row)?;
        let rows =
            QuarantineChange::released(entry.incident_id).rows(&ip, &q.actor, q.now_ms, &q.reason);
        crate::audit::insert_all(&tx, self.node(), &rows).await?;
        tx.commit().await?;
        Ok(Some(entry))
    }
}

#[async_trait]
impl QuarantineStore for PgStore {
    async fn quarantine_list(&self) -> Result<Vec<QuarantineEntry>, StoreError> {
        let c = self.pool().get().await.map_err(PgError::from)?;
        let sql = format!("SELECT {ENTRY_COLUMNS} FROM quarantine ORDER BY since_ms, ip");
        let rows = c.query(&sql, &[]).await.map_err(PgError::from)?;
        Ok(rows.iter().map(map_entry).collect::<Result<_, _>>()?)
    }

    async fn quarantine_add(
        &self,
        add: QuarantineAdd,
    ) -> Result<(bool, QuarantineEntry), StoreError> {
        Ok(self.add(add).await?)
    }

    async fn quarantine_release(
        &self,
        release: QuarantineRelease,
    ) -> Result<Option<QuarantineEntry>, StoreError> {
        Ok(self.release(release).await?)
    }
}
