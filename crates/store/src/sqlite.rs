//! The store traits on SQLite: each method is one [`Store::read`] on the pooled read-only
//! connections or one [`Store::write`] transaction (IMMEDIATE) on the control connection,
//! running the statements of [`crate::read`], [`crate::incidents`], [`crate::audit`],
//! [`crate::summary`] and [`crate::alerted`].

use std::net::IpAddr;

use async_trait::async_trait;
use rusqlite::Connection;

use crate::alerted::{self, DeadlineAlert};
use crate::audit::{self, AuditEntry, QuarantineChange};
use crate::incidents::{self as db, Delivery, IncidentFilter, IncidentRow, Note, QuarantineEntry};
use crate::read::{self, ClientSummary, ListFilter, Stats, StoredRow, Table};
use crate::summary::{self, Summary};
use crate::traits::{
    Actor, AlertStore, AuditStore, Cursor, EvidenceFilter, EvidenceStore, IncidentRecord,
    IncidentStore, Paged, QuarantineAdd, QuarantineRelease, QuarantineStore,
};
use crate::transition::{self, IncidentChange, IncidentError, Updated};
use crate::{Store, StoreError, cursor, ip_key, net_range};

#[async_trait]
impl EvidenceStore for Store {
    async fn list_evidence(
        &self,
        table: Table,
        f: EvidenceFilter,
    ) -> Result<Paged<StoredRow>, StoreError> {
        let filter: ListFilter = f.convert(net_range, |c| cursor::key(&c))?;
        let names = self.hour_names();
        let page = self
            .read(move |c| read::list_with(c, Some(&names), table, &filter))
            .await?;
        Ok(Paged {
            items: page.rows,
            next: page.next.map(cursor::of_key),
        })
    }

    async fn stats(&self, since_ms: i64, until_ms: i64, top: usize) -> Result<Stats, StoreError> {
        let top = i64::try_from(top).unwrap_or(i64::MAX);
        let hour = self.hour_tops();
        self.read(move |c| read::stats_with(c, Some(&hour), since_ms, until_ms, top))
            .await
    }

    async fn client_summary(
        &self,
        client: IpAddr,
        recent: usize,
    ) -> Result<ClientSummary, StoreError> {
        let key = ip_key(client);
        self.read(move |c| read::client_summary(c, key, recent))
            .await
    }
}

/// The incident, its first `max_hits` hits and its notes, on one connection.
fn record(
    c: &Connection,
    id: i64,
    max_hits: usize,
    trail: bool,
) -> Result<Option<IncidentRecord>, StoreError> {
    let Some(incident) = db::get(c, id)? else {
        return Ok(None);
    };
    Ok(Some(IncidentRecord {
        incident,
        hits: db::hits(c, id, max_hits)?,
        notes: db::notes(c, id)?,
        actions: if trail {
            audit::trail(c, &format!("incident/{id}"))?
        } else {
            Vec::new()
        },
        narrative: crate::narrative::get(c, id)?,
    }))
}

#[async_trait]
impl IncidentStore for Store {
    async fn list_incidents(&self, f: IncidentFilter) -> Result<Paged<IncidentRow>, StoreError> {
        let limit = f.limit;
        let items = self.read(move |c| db::list(c, &f)).await?;
        let next = cursor::after(&items, limit, |r| r.id);
        Ok(Paged { items, next })
    }

    async fn incident_detail(
        &self,
        id: i64,
        max_hits: usize,
    ) -> Result<Option<IncidentRecord>, StoreError> {
        self.read(move |c| record(c, id, max_hits, false)).await
    }

    async fn incident_report(
        &self,
        id: i64,
        max_hits: usize,
    ) -> Result<Option<IncidentRecord>, StoreError> {
        self.read(move |c| record(c, id, max_hits, true)).await
    }

    async fn open_counts(&self, now_ms: i64) -> Result<(u64, u64), StoreError> {
        self.read(move |c| db::open_counts(c, now_ms)).await
    }

    async fn summary(
        &self,
        since_ms: i64,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<Summary, StoreError> {
        self.read(move |c| summary::summary(c, since_ms, until_ms, now_ms))
            .await
    }

    async fn update_incident(
        &self,
        id: i64,
        change: IncidentChange,
    ) -> Result<Updated, IncidentError> {
        // The closure's error type is the store's; a refusal travels as a value so the
        // transaction still ends (rolled back: nothing was written).
        self.write(move |c| {
            let Some(mut row) = db::get(c, id)? else {
                return Ok(Err(IncidentError::NotFound(id)));
            };
            let detail = match transition::apply(&mut row, &change) {
                Ok(Some(detail)) => detail,
                Ok(None) => return Ok(Ok(Updated::Unchanged(Box::new(row)))),
                Err(refused) => return Ok(Err(IncidentError::Refused(refused))),
            };
            db::update(c, &row)?;
            let entry = AuditEntry::by(
                &change.actor,
                "incident.update",
                format!("incident/{id}"),
                change.now_ms,
                detail,
            );
            audit::insert(c, &entry)?;
            Ok(Ok(Updated::Changed(Box::new(row))))
        })
        .await?
    }

    async fn add_note(
        &self,
        id: i64,
        author: Actor,
        text: String,
        now_ms: i64,
    ) -> Result<Option<Note>, StoreError> {
        self.write(move |c| {
            if db::get(c, id)?.is_none() {
                return Ok(None);
            }
            let note_id = db::add_note(c, id, now_ms, &author.name, &text)?;
            let detail = audit::note_detail(note_id, &text);
            let entry = AuditEntry::by(
                &author,
                "incident.note",
                format!("incident/{id}"),
                now_ms,
                detail,
            );
            audit::insert(c, &entry)?;
            Ok(Some(Note {
                id: note_id,
                time: poolguard_model::rfc3339(now_ms),
                author: author.name,
                text,
            }))
        })
        .await
    }

    async fn set_narrative(
        &self,
        id: i64,
        narrative: crate::narrative::Narrative,
        actor: Actor,
        now_ms: i64,
    ) -> Result<Option<crate::narrative::Narrative>, StoreError> {
        self.write(move |c| {
            if db::get(c, id)?.is_none() {
                return Ok(None);
            }
            let before = crate::narrative::get(c, id)?;
            if before == narrative {
                return Ok(Some(narrative));
            }
            crate::narrative::put(c, id, &narrative, now_ms)?;
            let entry = AuditEntry::by(
                &actor,
                "incident.narrative",
                format!("incident/{id}"),
                now_ms,
                narrative.changed_fields(&before),
            );
            audit::insert(c, &entry)?;
            Ok(Some(narrative))
        })
        .await
    }
}

/// Writes the audit rows of a quarantine change in the caller's transaction.
fn audit_quarantine(
    c: &Connection,
    change: QuarantineChange,
    ip: &str,
    actor: &Actor,
    now: i64,
    reason: &str,
) -> Result<(), StoreError> {
    for row in change.rows(ip, actor, now, reason) {
        audit::insert(c, &row)?;
    }
    Ok(())
}

#[async_trait]
impl QuarantineStore for Store {
    async fn quarantine_list(&self) -> Result<Vec<QuarantineEntry>, StoreError> {
        self.read(db::quarantine_list).await
    }

    async fn quarantine_add(
        &self,
        q: QuarantineAdd,
    ) -> Result<(bool, QuarantineEntry), StoreError> {
        self.write(move |c| {
            let ip = poolguard_model::net::target_text(&q.ip);
            let added =
                db::quarantine_add(c, &ip, q.now_ms, &q.actor.name, &q.reason, q.incident_id)?;
            if added {
                let change = QuarantineChange::added(q.incident_id);
                audit_quarantine(c, change, &ip, &q.actor, q.now_ms, &q.reason)?;
            }
            let entry = db::quarantine_list(c)?
                .into_iter()
                .find(|e| e.ip == ip)
                .ok_or_else(|| StoreError::Worker(format!("quarantine entry of {ip} vanished")))?;
            Ok((added, entry))
        })
        .await
    }

    async fn quarantine_release(
        &self,
        q: QuarantineRelease,
    ) -> Result<Option<QuarantineEntry>, StoreError> {
        self.write(move |c| {
            let ip = poolguard_model::net::target_text(&q.ip);
            let Some(entry) = db::quarantine_remove(c, &ip)? else {
                return Ok(None);
            };
            let change = QuarantineChange::released(entry.incident_id);
            audit_quarantine(c, change, &ip, &q.actor, q.now_ms, &q.reason)?;
            Ok(Some(entry))
        })
        .await
    }
}

#[async_trait]
impl AuditStore for Store {
    async fn audit(&self, entry: AuditEntry) -> Result<i64, StoreError> {
        self.write(move |c| audit::insert(c, &entry)).await
    }

    async fn audit_list(
        &self,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> Result<Paged<AuditEntry>, StoreError> {
        let before = cursor.as_ref().map(cursor::id).transpose()?;
        let items = self.read(move |c| audit::list(c, limit, before)).await?;
        let next = cursor::after(&items, limit, |e| e.id);
        Ok(Paged { items, next })
    }
}

#[async_trait]
impl AlertStore for Store {
    async fn log_delivery(&self, d: Delivery, now_ms: i64) -> Result<(), StoreError> {
        self.write(move |c| db::log_delivery(c, &d, now_ms)).await
    }

    async fn deliveries(
        &self,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> Result<Paged<Delivery>, StoreError> {
        let before = cursor.as_ref().map(cursor::id).transpose()?;
        let items = self.read(move |c| db::deliveries(c, limit, before)).await?;
        let next = cursor::after(&items, limit, |d| d.id);
        Ok(Paged { items, next })
    }

    async fn claim_deadline_alerts(
        &self,
        now_ms: i64,
        due_soon_ms: i64,
    ) -> Result<Vec<DeadlineAlert>, StoreError> {
        self.write(move |tx| alerted::claim(tx, now_ms, due_soon_ms))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poolguard_model::{Status, TransitionError};

    /// An open incident for 10.0.0.1, identify due at 2000, report due at 3000.
    fn incident(store: &Store) -> i64 {
        let c = store.write_connection().expect("conn");
        c.execute(
            "INSERT INTO incidents (client_key, client, client_bin, opened_ms, last_hit_ms, \
             identify_due_ms, report_due_ms) VALUES ('ip:10.0.0.1', '10.0.0.1', x'00', 1000, 1000, 2000, 3000)",
            [],
        )
        .expect("insert");
        c.last_insert_rowid()
    }

    fn audit_rows(store: &Store) -> i64 {
        let c = store.write_connection().expect("conn");
        c.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .expect("count")
    }

    fn change(status: Status, resolution: Option<&str>) -> IncidentChange {
        IncidentChange {
            status: Some(status),
            assignee: None,
            device: None,
            owner: None,
            resolution: resolution.map(str::to_string),
            actor: Actor {
                name: "alice".into(),
                role: "investigator".into(),
            },
            now_ms: 1500,
        }
    }

    #[tokio::test]
    async fn a_refused_transition_writes_neither_row_nor_audit() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("s.db")).expect("open");
        let id = incident(&store);
        let refused = store
            .update_incident(id, change(Status::Identified, None))
            .await;
        assert!(
            matches!(
                refused,
                Err(IncidentError::Refused(
                    TransitionError::NeedsIdentification(_)
                ))
            ),
            "{refused:?}"
        );
        assert_eq!(audit_rows(&store), 0);
        let detail = store.incident_detail(id, 10).await.expect("read");
        assert_eq!(detail.expect("exists").incident.status, Status::Open);

        let moved = store
            .update_incident(id, change(Status::Investigating, None))
            .await
            .expect("allowed");
        assert!(matches!(moved, Updated::Changed(ref r) if r.status == Status::Investigating));
        assert_eq!(audit_rows(&store), 1);
        let trail = store.incident_report(id, 10).await.expect("read");
        let actions = trail.expect("exists").actions;
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].detail, "status open→investigating");
        assert!(matches!(
            store
                .update_incident(99, change(Status::Investigating, None))
                .await,
            Err(IncidentError::NotFound(99))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_two_racing_closes_only_one_wins() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("s.db");
        // Two handles, two control connections: as two API nodes on one database.
        let (a, b) = (
            Store::open(&path).expect("a"),
            Store::open(&path).expect("b"),
        );
        let id = incident(&a);
        let (ra, rb) = tokio::join!(
            a.update_incident(id, change(Status::Closed, Some("false-positive"))),
            b.update_incident(id, change(Status::Closed, Some("device-removed"))),
        );
        let results = [ra, rb];
        let won: Vec<&IncidentRow> = results
            .iter()
            .filter_map(|r| match r {
                Ok(Updated::Changed(row)) => Some(row.as_ref()),
                _ => None,
            })
            .collect();
        assert_eq!(won.len(), 1, "{results:?}");
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(IncidentError::Refused(TransitionError::Closed)))),
            "{results:?}"
        );
        assert_eq!(audit_rows(&a), 1);
        let stored = a.incident_detail(id, 10).await.expect("read").expect("row");
        assert_eq!(stored.incident.resolution, won[0].resolution);
    }

    #[tokio::test]
    async fn deadline_alerts_are_claimed_once() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("s.db")).expect("open");
        let id = incident(&store);
        let first = store.claim_deadline_alerts(2500, 600).await.expect("claim");
        let events: Vec<(&str, &str)> = first.iter().map(|a| (a.event, a.deadline)).collect();
        assert_eq!(
            events,
            [
                ("incident.overdue", "identify"),
                ("incident.due_soon", "report")
            ]
        );
        assert!(first.iter().all(|a| a.incident_id == id));
        let again = store.claim_deadline_alerts(2500, 600).await.expect("claim");
        assert!(again.is_empty(), "{again:?}");
    }

    #[tokio::test]
    async fn a_quarantine_change_carries_its_audit_rows() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("s.db")).expect("open");
        let actor = Actor {
            name: "alice".into(),
            role: "investigator".into(),
        };
        let add = QuarantineAdd {
            ip: poolguard_model::net::parse_target("10.0.0.9").expect("ip"),
            reason: "miner".into(),
            incident_id: Some(7),
            actor: actor.clone(),
            now_ms: 1000,
        };
        let (added, entry) = store.quarantine_add(add.clone()).await.expect("add");
        assert!(added);
        assert_eq!(entry.ip, "10.0.0.9");
        assert_eq!(
            audit_rows(&store),
            2,
            "the address's row and the incident's"
        );
        let (again, _) = store.quarantine_add(add).await.expect("add");
        assert!(!again);
        assert_eq!(audit_rows(&store), 2, "nothing changed, nothing audited");
        let release = QuarantineRelease {
            ip: poolguard_model::net::parse_target("10.0.0.9").expect("ip"),
            reason: "cleaned".into(),
            actor,
            now_ms: 2000,
        };
        let gone = store
            .quarantine_release(release.clone())
            .await
            .expect("release");
        assert_eq!(gone.map(|e| e.incident_id), Some(Some(7)));
        assert_eq!(audit_rows(&store), 4);
        assert!(
            store
                .quarantine_release(release)
                .await
                .expect("release")
                .is_none()
        );
        assert!(store.quarantine_list().await.expect("list").is_empty());
    }
}
