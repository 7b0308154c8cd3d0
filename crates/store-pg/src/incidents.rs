//! Incidents on PostgreSQL (`IncidentStore`): lists, views, reports and the staff's changes.
//!
//! A staff change is one transaction on one connection: the row is read `FOR UPDATE` (two
//! nodes changing one incident take turns), checked with the rule every backend shares
//! (`poolguard_store::transition::apply`), and written with its audit row. A refused move, or
//! one that changes nothing, writes nothing. An incident's hits are the `hits` rows of its
//! client key from its first hit to its last (index `hits_key`), as on SQLite.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use poolguard_clients::Identity;
use poolguard_model::deadline;
use poolguard_model::{Severity, Status, severity_rank};
use poolguard_store::audit::{AuditEntry, note_detail};
use poolguard_store::blocks::HitOwner;
use poolguard_store::incidents::{IncidentFilter, IncidentHit, IncidentRow, Note};
use poolguard_store::narrative::Narrative;
use poolguard_store::transition::{self, IncidentChange, IncidentError, Updated};
use poolguard_store::{Actor, IncidentRecord, IncidentStore, Paged, StoreError, cursor};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::evidence::local_id;
use crate::{Params, PgError, PgStore, limit, refs};

/// The columns [`map_incident`] reads, in order.
pub(crate) const INCIDENT_COLUMNS: &str = "id, client_key, host(client), network, asset, mac, \
    kind, location, department, ledger_owner, contact, device, owner, status, resolution, \
    assignee, severity, feeds, categories, opened_ms, last_hit_ms, hit_count, name_count, \
    identify_due_ms, report_due_ms, identified_ms, reported_ms, closed_ms, enforced_ms, alerted, \
    account, hostname, identity_source";

fn split(s: String) -> Vec<String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Maps a row selected with [`INCIDENT_COLUMNS`]; a status or severity this build does not
/// know is an error naming it, never a silent default.
pub(crate) fn map_incident(r: &Row) -> Result<IncidentRow, PgError> {
    let status: String = r.try_get(13)?;
    let status = Status::parse(&status).ok_or_else(|| {
        PgError::Db(format!(
            "unknown incident status `{status}` in the store (written by a newer poolguard?)"
        ))
    })?;
    let rank: i32 = r.try_get(16)?;
    let severity = Severity::ALL
        .into_iter()
        .find(|s| severity_rank(*s) == i64::from(rank))
        .ok_or_else(|| PgError::Db(format!("unknown incident severity {rank} in the store")))?;
    let alerted: i32 = r.try_get(29)?;
    Ok(IncidentRow {
        id: r.try_get(0)?,
        client_key: r.try_get(1)?,
        client: r.try_get(2)?,
        identity: Identity {
            network: r.try_get(3)?,
            asset: r.try_get(4)?,
            mac: r.try_get(5)?,
            kind: r.try_get(6)?,
            location: r.try_get(7)?,
            department: r.try_get(8)?,
            owner: r.try_get(9)?,
            contact: r.try_get(10)?,
            account: r.try_get(30)?,
            hostname: r.try_get(31)?,
            source: r.try_get(32)?,
            exempt: None,
        },
        device: r.try_get(11)?,
        owner: r.try_get(12)?,
        status,
        resolution: r.try_get(14)?,
        assignee: r.try_get(15)?,
        severity,
        feeds: split(r.try_get(17)?),
        categories: split(r.try_get(18)?),
        opened_ms: r.try_get(19)?,
        last_hit_ms: r.try_get(20)?,
        hit_count: r.try_get(21)?,
        name_count: r.try_get(22)?,
        identify_due_ms: r.try_get(23)?,
        report_due_ms: r.try_get(24)?,
        identified_ms: r.try_get(25)?,
        reported_ms: r.try_get(26)?,
        closed_ms: r.try_get(27)?,
        enforced_ms: r.try_get(28)?,
        alerted: i64::from(alerted),
    })
}

/// One incident by id (`FOR UPDATE` inside an update's transaction).
async fn get(
    c: &impl GenericClient,
    id: i64,
    for_update: bool,
) -> Result<Option<IncidentRow>, PgError> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1{lock}");
    c.query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(map_incident)
        .transpose()
}

/// The incident's hits, oldest first, at most `max`.
async fn hits(
    c: &impl GenericClient,
    row: &IncidentRow,
    max: usize,
) -> Result<Vec<IncidentHit>, PgError> {
    // An address's incident holds every hit of the address, as on SQLite (`HitOwner::Ip`):
    // also those a lease or login told late has since given to a device while the incident
    // kept its key (`poolguard_store::relearn`). Any other key holds the hits keyed to it.
    let ip = match HitOwner::parse(&row.client_key) {
        Some(HitOwner::Ip(ip)) => Some(ip),
        _ => None,
    };
    let (whose, owner): (&str, &(dyn ToSql + Sync)) = match &ip {
        Some(ip) => ("client", ip),
        None => ("client_key", &row.client_key),
    };
    let sql = format!(
        "SELECT local_block, local_index, time_ms, host(client), name, qtype, action, feed, \
         rule, rcode FROM hits WHERE {whose} = $1 AND time_ms >= $2 AND time_ms <= $3 \
         ORDER BY time_ms, node, local_block, local_index LIMIT $4"
    );
    let rows = c
        .query(
            &sql,
            &[owner, &row.opened_ms, &row.last_hit_ms, &limit(max)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(IncidentHit {
                id: local_id(r.try_get(0)?, r.try_get(1)?),
                time_ms: r.try_get(2)?,
                client: r.try_get(3)?,
                name: r.try_get(4)?,
                qtype: r.try_get(5)?,
                action: r.try_get(6)?,
                feed: r.try_get(7)?,
                rule: r.try_get(8)?,
                rcode: r.try_get(9)?,
            })
        })
        .collect()
}

/// Every note of an incident, oldest first.
async fn notes(c: &impl GenericClient, id: i64) -> Result<Vec<Note>, PgError> {
    let rows = c
        .query(
            "SELECT id, time_ms, author, text FROM incident_notes WHERE incident_id = $1 \
             ORDER BY time_ms, id",
            &[&id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Note {
                id: r.try_get(0)?,
                time: poolguard_model::rfc3339(r.try_get(1)?),
                author: r.try_get(2)?,
                text: r.try_get(3)?,
            })
        })
        .collect()
}

/// Writes the fields staff change back to the incident's row.
async fn update(c: &impl GenericClient, row: &IncidentRow) -> Result<(), PgError> {
    c.execute(
        "UPDATE incidents SET device = $2, owner = $3, assignee = $4, status = $5, \
         resolution = $6, identified_ms = $7, reported_ms = $8, closed_ms = $9 WHERE id = $1",
        &[
            &row.id,
            &row.device,
            &row.owner,
            &row.assignee,
            &row.status.as_str(),
            &row.resolution,
            &row.identified_ms,
            &row.reported_ms,
            &row.closed_ms,
        ],
    )
    .await?;
    Ok(())
}

impl PgStore {
    /// The incident, its first `max_hits` hits, its notes and, for a report, its trail.
    async fn record(
        &self,
        id: i64,
        max_hits: usize,
        trail: bool,
    ) -> Result<Option<IncidentRecord>, PgError> {
        let c = self.pool().get().await?;
        let Some(incident) = get(&c, id, false).await? else {
            return Ok(None);
        };
        let hits = hits(&c, &incident, max_hits).await?;
        let notes = notes(&c, id).await?;
        let actions = if trail {
            crate::audit::trail(&c, &format!("incident/{id}")).await?
        } else {
            Vec::new()
        };
        let narrative = narrative(&c, id).await?;
        Ok(Some(IncidentRecord {
            incident,
            hits,
            notes,
            actions,
            narrative,
        }))
    }

    /// Replaces the account and writes its audit row in one transaction (as on SQLite).
    async fn put_narrative(
        &self,
        id: i64,
        n: Narrative,
        actor: Actor,
        now_ms: i64,
    ) -> Result<Option<Narrative>, PgError> {
        let mut c = self.pool().get().await?;
        let tx = c.transaction().await?;
        if get(&tx, id, true).await?.is_none() {
            return Ok(None);
        }
        let before = narrative(&tx, id).await?;
        if before == n {
            return Ok(Some(n));
        }
        tx.execute(
            "INSERT INTO incident_narrative (incident_id, body, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (incident_id) DO UPDATE SET body = excluded.body, updated_ms = excluded.updated_ms",
            &[&id, &n.to_json(), &now_ms],
        )
        .await?;
        let entry = AuditEntry::by(
            &actor,
            "incident.narrative",
            format!("incident/{id}"),
            now_ms,
            n.changed_fields(&before),
        );
        crate::audit::insert(&tx, self.node(), &entry).await?;
        tx.commit().await?;
        Ok(Some(n))
    }

    /// The incidents `sql` (selecting [`INCIDENT_COLUMNS`]) finds with `params`.
    pub(crate) async fn incidents_where(
        &self,
        sql: &str,
        params: &Params,
    ) -> Result<Vec<IncidentRow>, PgError> {
        let c = self.pool().get().await?;
        let rows = c.query(sql, &refs(params)).await?;
        rows.iter().map(map_incident).collect()
    }

    /// A staff change in one transaction (see the module comment).
    async fn change(&self, id: i64, change: IncidentChange) -> Result<Updated, IncidentError> {
        let fail = |e: PgError| IncidentError::Store(e.into());
        let mut c = self.pool().get().await.map_err(|e| fail(e.into()))?;
        let tx = c.transaction().await.map_err(|e| fail(e.into()))?;
        let Some(mut row) = get(&tx, id, true).await.map_err(fail)? else {
            return Err(IncidentError::NotFound(id));
        };
        // Returning before commit drops the transaction: rolled back, nothing written.
        let detail = match transition::apply(&mut row, &change) {
            Ok(Some(detail)) => detail,
            Ok(None) => return Ok(Updated::Unchanged(Box::new(row))),
            Err(refused) => return Err(IncidentError::Refused(refused)),
        };
        update(&tx, &row).await.map_err(fail)?;
        let entry = AuditEntry::by(
            &change.actor,
            "incident.update",
            format!("incident/{id}"),
            change.now_ms,
            detail,
        );
        crate::audit::insert(&tx, self.node(), &entry)
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(|e| fail(e.into()))?;
        Ok(Updated::Changed(Box::new(row)))
    }

    /// A note and its audit row in one transaction.
    async fn note(
        &self,
        id: i64,
        author: Actor,
        text: String,
        now_ms: i64,
    ) -> Result<Option<Note>, PgError> {
        let mut c = self.pool().get().await?;
        let tx = c.transaction().await?;
        if get(&tx, id, true).await?.is_none() {
            return Ok(None);
        }
        let note_id: i64 = tx
            .query_one(
                "INSERT INTO incident_notes (incident_id, time_ms, author, text) \
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&id, &now_ms, &author.name, &text],
            )
            .await?
            .try_get(0)?;
        let entry = AuditEntry::by(
            &author,
            "incident.note",
            format!("incident/{id}"),
            now_ms,
            note_detail(note_id, &text),
        );
        crate::audit::insert(&tx, self.node(), &entry).await?;
        tx.commit().await?;
        Ok(Some(Note {
            id: note_id,
            time: poolguard_model::rfc3339(now_ms),
            author: author.name,
            text,
        }))
    }
}

/// The account of incident `id` (empty when none is recorded).
async fn narrative(c: &impl GenericClient, id: i64) -> Result<Narrative, PgError> {
    let row = c
        .query_opt(
            "SELECT body FROM incident_narrative WHERE incident_id = $1",
            &[&id],
        )
        .await?;
    Ok(match row {
        Some(r) => Narrative::from_json(&r.try_get::<_, String>(0)?),
        None => Narrative::default(),
    })
}

/// The list's SQL and parameters, newest first, one page below the cursor's id.
fn list_sql(f: &IncidentFilter) -> Result<(String, Params), StoreError> {
    let before = f.cursor.as_ref().map(cursor::id).transpose()?;
    let mut sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id < $1");
    let mut params: Params = vec![Box::new(before.unwrap_or(i64::MAX))];
    let mut push =
        |sql: &mut String, cond: &str, v: Box<dyn tokio_postgres::types::ToSql + Sync + Send>| {
            params.push(v);
            sql.push_str(&format!(" AND {cond} ${}", params.len()));
        };
    if let Some(s) = &f.status {
        push(&mut sql, "status =", Box::new(s.as_str()));
    }
    if let Some(d) = &f.department {
        push(&mut sql, "department =", Box::new(d.clone()));
    }
    if let Some(a) = &f.assignee {
        push(&mut sql, "assignee =", Box::new(a.clone()));
    }
    if let Some(s) = f.since {
        push(&mut sql, "opened_ms >=", Box::new(s));
    }
    for (cond, v) in f.who.conditions("strpos") {
        params.push(Box::new(v));
        sql.push_str(&format!(
            " AND {}",
            cond.replace("$?", &format!("${}", params.len()))
        ));
    }
    // The rule of IncidentRow::overdue in SQL, as the SQLite list uses it.
    let overdue = format!(
        "({} OR {})",
        deadline::missed_sql("identify_due_ms", "identified_ms", "closed_ms", f.now),
        deadline::missed_sql("report_due_ms", "reported_ms", "closed_ms", f.now)
    );
    match f.overdue {
        Some(true) => sql.push_str(&format!(" AND {overdue}")),
        Some(false) => sql.push_str(&format!(" AND NOT {overdue}")),
        None => {}
    }
    params.push(Box::new(limit(f.limit)));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", params.len()));
    Ok((sql, params))
}

#[async_trait]
impl IncidentStore for PgStore {
    async fn list_incidents(&self, f: IncidentFilter) -> Result<Paged<IncidentRow>, StoreError> {
        let (sql, params) = list_sql(&f)?;
        let items = self.incidents_where(&sql, &params).await?;
        let next = cursor::after(&items, f.limit, |r| r.id);
        Ok(Paged { items, next })
    }

    async fn incident_detail(
        &self,
        id: i64,
        max_hits: usize,
    ) -> Result<Option<IncidentRecord>, StoreError> {
        Ok(self.record(id, max_hits, false).await?)
    }

    async fn incident_report(
        &self,
        id: i64,
        max_hits: usize,
    ) -> Result<Option<IncidentRecord>, StoreError> {
        Ok(self.record(id, max_hits, true).await?)
    }

    async fn open_counts(&self, now_ms: i64) -> Result<(u64, u64), StoreError> {
        // Bounded: at most one incident per client is not closed (`incidents_open_key`).
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status <> 'closed'");
        let open = self.incidents_where(&sql, &Vec::new()).await?;
        let overdue = open.iter().filter(|r| r.overdue(now_ms)).count();
        Ok((open.len() as u64, overdue as u64))
    }

    async fn summary(
        &self,
        since_ms: i64,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<poolguard_store::Summary, StoreError> {
        Ok(crate::summary::summary(self, since_ms, until_ms, now_ms).await?)
    }

    async fn update_incident(
        &self,
        id: i64,
        change: IncidentChange,
    ) -> Result<Updated, IncidentError> {
        self.change(id, change).await
    }

    async fn add_note(
        &self,
        id: i64,
        author: Actor,
        text: String,
        now_ms: i64,
    ) -> Result<Option<Note>, StoreError> {
        Ok(self.note(id, author, text, now_ms).await?)
    }

    async fn set_narrative(
        &self,
        id: i64,
        narrative: Narrative,
        actor: Actor,
        now_ms: i64,
    ) -> Result<Option<Narrative>, StoreError> {
        Ok(self.put_narrative(id, narrative, actor, now_ms).await?)
    }
}
