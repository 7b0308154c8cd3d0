//! The scheduled bulletin's claims on PostgreSQL (`BulletinStore`): the first node to insert
//! a period's row sends its bulletin; every other node finds the row and does not, so a group
//! sends each period's bulletin once (docs/SEVERAL-NODES.md, "Once per group").

use async_trait::async_trait;
use poolguard_store::StoreError;
use poolguard_store::bulletin::BulletinStore;

use crate::{PgError, PgStore};

impl PgStore {
    async fn claim_period(&self, since: i64, until: i64, now: i64) -> Result<bool, PgError> {
        let c = self.pool().get().await?;
        let n = c
            .execute(
                "INSERT INTO bulletins_sent (since_ms, until_ms, node, claimed_ms) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (since_ms) DO NOTHING",
                &[&since, &until, &self.node(), &now],
            )
            .await?;
        Ok(n == 1)
    }
}

#[async_trait]
impl BulletinStore for PgStore {
    async fn claim_bulletin(
        &self,
        since_ms: i64,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.claim_period(since_ms, until_ms, now_ms).await?)
    }
}
