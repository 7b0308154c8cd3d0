//! Which periodic bulletins went out (`[alerts.bulletin]`): one row per period, claimed
//! before the bulletin is sent, so a restart (or a second node: the PostgreSQL backend claims
//! in the group's database) never sends a period's bulletin twice. At most once: a crash between the claim and the send loses that one, and
//! the delivery log shows it never went.

use async_trait::async_trait;
use rusqlite::{Connection, params};

use crate::{Store, StoreError};

/// The bulletin's bookkeeping.
#[async_trait]
pub trait BulletinStore: Send + Sync {
    /// Claims the bulletin of `[since_ms, until_ms)` at `now_ms`: true when this caller is
    /// the first and should send it, false when it was claimed before.
    async fn claim_bulletin(
        &self,
        since_ms: i64,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
}

/// Schema step: the claimed periods.
pub fn schema() -> String {
    "CREATE TABLE IF NOT EXISTS bulletins_sent (
    since_ms    INTEGER PRIMARY KEY,
    until_ms    INTEGER NOT NULL,
    claimed_ms  INTEGER NOT NULL);
"
    .to_string()
}

/// See [`BulletinStore::claim_bulletin`]; the caller's transaction.
pub fn claim(
    conn: &Connection,
    since_ms: i64,
    until_ms: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO bulletins_sent (since_ms, until_ms, claimed_ms) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![since_ms, until_ms, now_ms])?;
    Ok(n == 1)
}

#[async_trait]
impl BulletinStore for Store {
    async fn claim_bulletin(
        &self,
        since_ms: i64,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.write(move |c| claim(c, since_ms, until_ms, now_ms))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_claimed_once() {
        let mut c = Connection::open_in_memory().expect("db");
        crate::schema::migrate(&mut c).expect("schema");
        assert!(claim(&c, 0, 7, 10).expect("claim"));
        assert!(!claim(&c, 0, 7, 11).expect("again"));
        assert!(claim(&c, 7, 14, 20).expect("next period"));
    }
}
