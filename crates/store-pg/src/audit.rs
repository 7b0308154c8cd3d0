//! The audit log on PostgreSQL (`AuditStore`): inserted, never changed, and every row names
//! the node it was written through (`audit.node`), so a group's log says where a change came
//! from as well as who made it.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use poolguard_store::audit::AuditEntry;
use poolguard_store::{AuditStore, Cursor, Paged, StoreError, cursor};
use tokio_postgres::Row;

use crate::{PgError, PgStore, limit};

/// The columns [`map_audit`] reads, in order.
const AUDIT_COLUMNS: &str =
    "id, time_ms, actor, role, action, target, before_hash, after_hash, detail";

fn map_audit(r: &Row) -> Result<AuditEntry, PgError> {
    Ok(AuditEntry {
        id: r.try_get(0)?,
        time_ms: r.try_get(1)?,
        actor: r.try_get(2)?,
        role: r.try_get(3)?,
        action: r.try_get(4)?,
        target: r.try_get(5)?,
        before_hash: r.try_get(6)?,
        after_hash: r.try_get(7)?,
        detail: r.try_get(8)?,
    })
}

/// Inserts one entry written through `node` on `c` (inside the caller's transaction when it
/// is one); returns its id.
pub(crate) async fn insert(
    c: &impl GenericClient,
    node: &str,
    e: &AuditEntry,
) -> Result<i64, PgError> {
    let row = c
        .query_one(
            "INSERT INTO audit (time_ms, node, actor, role, action, target, before_hash, \
             after_hash, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            &[
                &e.time_ms,
                &node,
                &e.actor,
                &e.role,
                &e.action,
                &e.target,
                &e.before_hash,
                &e.after_hash,
                &e.detail,
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Inserts `rows` (one change's audit rows) in the caller's transaction.
pub(crate) async fn insert_all(
    c: &impl GenericClient,
    node: &str,
    rows: &[AuditEntry],
) -> Result<(), PgError> {
    for row in rows {
        insert(c, node, row).await?;
    }
    Ok(())
}

/// Every entry about `target` (`incident/42`), oldest first.
pub(crate) async fn trail(
    c: &impl GenericClient,
    target: &str,
) -> Result<Vec<AuditEntry>, PgError> {
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE target = $1 ORDER BY time_ms, id");
    c.query(&sql, &[&target])
        .await?
        .iter()
        .map(map_audit)
        .collect()
}

#[async_trait]
impl AuditStore for PgStore {
    async fn audit(&self, entry: AuditEntry) -> Result<i64, StoreError> {
        let c = self.pool().get().await.map_err(PgError::from)?;
        Ok(insert(&c, self.node(), &entry).await?)
    }

    async fn audit_list(
        &self,
        n: usize,
        cursor: Option<Cursor>,
    ) -> Result<Paged<AuditEntry>, StoreError> {
        let before = cursor.as_ref().map(cursor::id).transpose()?;
        let c = self.pool().get().await.map_err(PgError::from)?;
        let sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2");
        let rows = c
            .query(&sql, &[&before.unwrap_or(i64::MAX), &limit(n)])
            .await
            .map_err(PgError::from)?;
        let items = rows.iter().map(map_audit).collect::<Result<Vec<_>, _>>()?;
        let next = cursor::after(&items, n, |e| e.id);
        Ok(Paged { items, next })
    }
}
