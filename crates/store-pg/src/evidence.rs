//! The hit evidence on PostgreSQL (`EvidenceStore`): filtered pages newest first, stats and a
//! client's summary, each one SQL statement on the shared `hits` table.
//!
//! Pages are keyset: a page continues strictly below the last row's
//! `(time_ms, node, local_block, local_index)` (index `hits_page`), so rows shipped meanwhile
//! never shift a page and no row is skipped or repeated. Filters map onto indexes: a client
//! network is an `inet <<=` range on `hits_client`, an exact name `hits_name`, a suffix
//! (`*.example.com`) a prefix match on `reverse(name)` (`hits_rname`), a department its rows in
//! page order (`hits_department`).
//!
//! The full query log is not in PostgreSQL: it stays on each node, and `Table::Queries` is
//! answered from the node's own SQLite store ([`PgStore::with_local`]), this node's log only.

use std::net::IpAddr;

use async_trait::async_trait;
use poolguard_clients::Identity;
use poolguard_store::read::{ClientSummary, Stats};
use poolguard_store::{
    EvidenceFilter, EvidenceStore, NameFilter, Paged, StoreError, StoredRow, Table, blocks, ip_key,
};
use tokio_postgres::Row;

use crate::cursor::{self, HitKey};
use crate::rollups::{self, Plan};
use crate::{Params, PgError, PgStore, limit, refs};
use poolguard_store::rollup::Kind;

/// The columns [`map_hit`] reads, in order.
pub(crate) const HIT_COLUMNS: &str = "node, local_block, local_index, time_ms, client, port, \
    transport, name, qtype, action, feed, rule, rcode, answer, latency_us, upstream, network, \
    asset, mac, kind, location, department, owner, contact, account, hostname, identity_source, \
    exempt";

/// The id a hit has in the node that recorded it (as that node's SQLite store numbers it):
/// unique per node, shown in the API's `id`.
pub(crate) fn local_id(block: i64, index: i32) -> i64 {
    (block << 20) | i64::from(index)
}

/// Maps a row selected with [`HIT_COLUMNS`], and its page key.
fn map_hit(r: &Row) -> Result<(StoredRow, HitKey), PgError> {
    let client: IpAddr = r.try_get(4)?;
    let port: i32 = r.try_get(5)?;
    let latency: i32 = r.try_get(14)?;
    let identity = Identity {
        network: r.try_get(16)?,
        asset: r.try_get(17)?,
        mac: r.try_get(18)?,
        kind: r.try_get(19)?,
        location: r.try_get(20)?,
        department: r.try_get(21)?,
        owner: r.try_get(22)?,
        contact: r.try_get(23)?,
        account: r.try_get(24)?,
        hostname: r.try_get(25)?,
        source: r.try_get(26)?,
        exempt: r.try_get(27)?,
    };
    let key = HitKey {
        node: r.try_get(0)?,
        local_block: r.try_get(1)?,
        local_index: r.try_get(2)?,
        time_ms: r.try_get(3)?,
    };
    let row = StoredRow {
        id: local_id(key.local_block, key.local_index),
        time_ms: key.time_ms,
        client: client.to_string(),
        port: u16::try_from(port).unwrap_or(0),
        transport: r.try_get(6)?,
        name: r.try_get(7)?,
        qtype: r.try_get(8)?,
        action: r.try_get(9)?,
        feed: r.try_get(10)?,
        rule: r.try_get(11)?,
        rcode: r.try_get(12)?,
        answer: r.try_get(13)?,
        latency_us: u32::try_from(latency).unwrap_or(0),
        upstream: r.try_get(15)?,
        department: identity.department.clone(),
        // A hit of a client the ledger did not know has no snapshot.
        identity: (identity != Identity::default()).then_some(identity),
    };
    Ok((row, key))
}

/// `LIKE` text matching `s` literally.
fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The `WHERE` clause and parameters of a hit list.
fn conditions(f: &EvidenceFilter, key: Option<&HitKey>) -> (String, Params) {
    let mut sql = String::from("TRUE");
    let mut params: Params = Vec::new();
    let mut push =
        |sql: &mut String, cond: &str, v: Box<dyn tokio_postgres::types::ToSql + Sync + Send>| {
            params.push(v);
            sql.push_str(&cond.replace("$?", &format!("${}", params.len())));
        };
    if let Some(net) = &f.client {
        push(
            &mut sql,
            " AND client <<= $?::text::inet",
            Box::new(net.to_string()),
        );
    }
    match &f.name {
        Some(NameFilter::Exact(n)) => push(&mut sql, " AND name = $?", Box::new(n.clone())),
        Some(NameFilter::Suffix(s)) => {
            push(&mut sql, " AND (name = $?", Box::new(s.clone()));
            // `name_within`: the name itself or any name ending in `.suffix`.
            let reversed: String = format!(".{s}").chars().rev().collect();
            let pattern = format!("{}%", like_literal(&reversed));
            push(&mut sql, " OR reverse(name) LIKE $?)", Box::new(pattern));
        }
        None => {}
    }
    for (column, v) in [
        ("qtype", &f.qtype),
        ("action", &f.action),
        ("feed", &f.feed),
        ("department", &f.department),
    ] {
        if let Some(v) = v {
            push(
                &mut sql,
                &format!(" AND {column} = $?"),
                Box::new(v.clone()),
            );
        }
    }
    if let Some(m) = &f.mac {
        push(&mut sql, " AND mac = $?", Box::new(m.clone()));
    }
    if let Some(d) = &f.department_contains {
        push(
            &mut sql,
            " AND strpos(lower(department), lower($?)) > 0",
            Box::new(d.clone()),
        );
    }
    for (column, v) in [
        ("account", &f.account),
        ("owner", &f.owner),
        ("asset", &f.asset),
    ] {
        if let Some(v) = v {
            push(
                &mut sql,
                &format!(" AND lower({column}) = lower($?)"),
                Box::new(v.clone()),
            );
        }
    }
    if let Some(s) = f.since_ms {
        push(&mut sql, " AND time_ms >= $?", Box::new(s));
    }
    if let Some(u) = f.until_ms {
        push(&mut sql, " AND time_ms < $?", Box::new(u));
    }
    if let Some(k) = key {
        push(
            &mut sql,
            " AND (time_ms, node, local_block, local_index) < ($?",
            Box::new(k.time_ms),
        );
        push(&mut sql, ", $?", Box::new(k.node.clone()));
        push(&mut sql, ", $?", Box::new(k.local_block));
        push(&mut sql, ", $?)", Box::new(k.local_index));
    }
    (sql, params)
}

impl PgStore {
    /// One page of hits matching `f`, newest first.
    async fn hit_page(&self, f: &EvidenceFilter) -> Result<Paged<StoredRow>, StoreError> {
        let key = f.cursor.as_ref().map(cursor::key).transpose()?;
        let (cond, mut params) = conditions(f, key.as_ref());
        params.push(Box::new(limit(f.limit)));
        let sql = format!(
            "SELECT {HIT_COLUMNS} FROM hits WHERE {cond} \
             ORDER BY time_ms DESC, node DESC, local_block DESC, local_index DESC LIMIT ${}",
            params.len()
        );
        let client = self.pool().get().await.map_err(PgError::from)?;
        let rows = client
            .query(&sql, &refs(&params))
            .await
            .map_err(PgError::from)?;
        let mut items = Vec::with_capacity(rows.len());
        let mut last = None;
        for r in &rows {
            let (row, key) = map_hit(r)?;
            items.push(row);
            last = Some(key);
        }
        let next = (items.len() == f.limit && f.limit > 0)
            .then(|| last.as_ref().map(cursor::of_key))
            .flatten();
        Ok(Paged { items, next })
    }
}

#[async_trait]
impl EvidenceStore for PgStore {
    async fn list_evidence(
        &self,
        table: Table,
        f: EvidenceFilter,
    ) -> Result<Paged<StoredRow>, StoreError> {
        match (table, &self.local) {
            (Table::Hits, _) => self.hit_page(&f).await,
            (Table::Queries, Some(local)) => local.list_evidence(Table::Queries, f).await,
            (Table::Queries, None) => Ok(Paged {
                items: Vec::new(),
                next: None,
            }),
        }
    }

    async fn stats(&self, since_ms: i64, until_ms: i64, top: usize) -> Result<Stats, StoreError> {
        let top = Some(limit(top));
        let queries_by_action = match &self.local {
            Some(local) => {
                local
                    .read(move |c| blocks::counts_by_action(c, Table::Queries, since_ms, until_ms))
                    .await?
            }
            None => Vec::new(),
        };
        // The hits from the rollups (`crate::rollups`): whole hours and days, plus the
        // partial hours at the window's edges.
        let plan = Plan::of(since_ms, until_ms);
        // Five reads on five pooled connections at once: the server runs them in parallel.
        let kind = |kind: Kind, top: Option<i64>| async move {
            let c = self.pool().get().await?;
            rollups::counts(&c, &plan, kind, top, None).await
        };
        let (hits_by_action, top_blocked_names, top_clients, top_departments, top_feeds) = tokio::try_join!(
            kind(Kind::Action, None),
            kind(Kind::Name, top),
            kind(Kind::Client, top),
            kind(Kind::Department, top),
            kind(Kind::Feed, top),
        )?;
        Ok(Stats {
            queries_by_action,
            hits_by_action,
            top_blocked_names,
            top_clients,
            top_departments,
            top_feeds,
        })
    }

    async fn client_summary(
        &self,
        client: IpAddr,
        recent: usize,
    ) -> Result<ClientSummary, StoreError> {
        let (hf, hl, hit_count) = {
            let c = self.pool().get().await.map_err(PgError::from)?;
            let r = c
                .query_one(
                    "SELECT min(time_ms), max(time_ms), count(*) FROM hits WHERE client = $1",
                    &[&client],
                )
                .await
                .map_err(PgError::from)?;
            let first: Option<i64> = r.try_get(0).map_err(PgError::from)?;
            let last: Option<i64> = r.try_get(1).map_err(PgError::from)?;
            let n: i64 = r.try_get(2).map_err(PgError::from)?;
            (first, last, n)
        };
        let (qf, ql) = match &self.local {
            Some(local) => {
                let key = ip_key(client);
                local
                    .read(move |c| blocks::seen(c, Table::Queries, key))
                    .await?
            }
            None => (None, None),
        };
        let filter = EvidenceFilter {
            client: Some(ipnet::IpNet::from(client)),
            limit: recent,
            ..EvidenceFilter::default()
        };
        Ok(ClientSummary {
            first_seen_ms: [qf, hf].into_iter().flatten().min(),
            last_seen_ms: [ql, hl].into_iter().flatten().max(),
            hit_count,
            recent_hits: self.hit_page(&filter).await?.items,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_literally() {
        assert_eq!(like_literal("a_b%c\\d"), "a\\_b\\%c\\\\d");
        assert_eq!(local_id(1, 3), (1 << 20) | 3);
    }
}
