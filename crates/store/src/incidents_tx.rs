//! [`IncidentTx`] on SQLite: the incident tracker's statements, run on the writer's
//! transaction.
//!
//! The writer wraps its batch transaction in a [`SqliteIncidentTx`] when it calls the
//! [`crate::hook::BatchHook`], so the tracker's writes commit or roll back with the hits they
//! describe. Every statement is `prepare_cached`: they run for every batch that holds hits,
//! and the writer's statement cache is sized for them (`writer::tune_writer`).
//!
//! Atomicity comes from SQLite itself: the writer's transaction holds the database's write
//! lock from its first hit row to the commit, and the unique index `incidents_open_key`
//! (one open incident per client key) makes [`IncidentTx::open_incident`] a single
//! insert-unless-open.

use std::net::IpAddr;

use rusqlite::{Connection, OptionalExtension, params};

use crate::StoreError;
use crate::audit::{self, AuditEntry};
use crate::blocks::{self, codec::Entry};
use crate::hook::{
    ClosedIncident, FoldGuard, HitFold, IncidentTx, NewIncident, OpenSpan, Opening,
    TrackedIncident, learned_fields,
};
use crate::rows::Table;
use crate::{incidents, ip_key};
use poolguard_clients::Identity;
use poolguard_model::incident::severity_rank;

/// The writer's transaction (or any connection inside one) seen as an [`IncidentTx`].
#[derive(Clone, Copy)]
pub struct SqliteIncidentTx<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteIncidentTx<'c> {
    /// Wraps `conn`; a `rusqlite::Transaction` derefs to one.
    pub fn new(conn: &'c Connection) -> Self {
        Self { conn }
    }
}

impl std::fmt::Debug for SqliteIncidentTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteIncidentTx").finish_non_exhaustive()
    }
}

impl IncidentTx for SqliteIncidentTx<'_> {
    fn open_incident_of(&self, key: &str) -> Result<Option<TrackedIncident>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, feeds, categories, enforced_ms IS NOT NULL FROM incidents \
                 WHERE client_key = ?1 AND status != 'closed'",
            )?
            .query_row([key], |r| {
                Ok(TrackedIncident {
                    id: r.get(0)?,
                    feeds: r.get(1)?,
                    categories: r.get(2)?,
                    enforced: r.get(3)?,
                })
            })
            .optional()?)
    }

    fn open_incident(&self, new: &NewIncident<'_>) -> Result<Opening, StoreError> {
        let i = new.identity;
        let t = new.first_hit_ms;
        // DO NOTHING: the key's open incident (unique index `incidents_open_key`) wins.
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO incidents (client_key, client, client_bin, network, asset, mac, kind, \
                 location, department, ledger_owner, contact, device, owner, opened_ms, last_hit_ms, \
                 identify_due_ms, report_due_ms, account, hostname, identity_source) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, ?15, ?16, \
                 ?17, ?18, ?19) \
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                new.key,
                new.ip.to_string(),
                &ip_key(new.ip)[..],
                i.network,
                i.asset,
                i.mac,
                i.kind,
                i.location,
                i.department,
                i.owner,
                i.contact,
                // Prefilled from the ledger; staff confirm or correct them.
                i.asset,
                i.owner,
                t,
                new.identify_due_ms,
                new.report_due_ms,
                i.account,
                i.hostname,
                i.source,
            ])?;
        let id = (inserted == 1).then(|| self.conn.last_insert_rowid());
        Opening::settle(new.key, id, || self.open_incident_of(new.key))
    }

    fn fold_hits(&self, id: i64, fold: &HitFold<'_>, guard: FoldGuard) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .prepare_cached(match guard {
                FoldGuard::OpenOnly => {
                    "UPDATE incidents SET last_hit_ms = max(last_hit_ms, ?2), hit_count = hit_count + ?3, \
                     severity = max(severity, ?4), feeds = ?5, categories = ?6 \
                     WHERE id = ?1 AND status != 'closed'"
                }
                FoldGuard::EvenClosed => {
                    "UPDATE incidents SET last_hit_ms = max(last_hit_ms, ?2), hit_count = hit_count + ?3, \
                     severity = max(severity, ?4), feeds = ?5, categories = ?6 WHERE id = ?1"
                }
            })?
            .execute(params![
                id,
                fold.last_hit_ms,
                fold.hits,
                severity_rank(fold.severity),
                fold.feeds,
                fold.categories
            ])?;
        Ok(changed == 1)
    }

    fn record_names(&self, id: i64, names: &[&str]) -> Result<usize, StoreError> {
        let mut insert = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO incident_names (incident_id, name) VALUES (?1, ?2)",
        )?;
        let mut new_names = 0usize;
        for name in names {
            new_names += insert.execute(params![id, name])?;
        }
        if new_names > 0 {
            self.conn
                .prepare_cached("UPDATE incidents SET name_count = name_count + ?2 WHERE id = ?1")?
                .execute(params![id, new_names as i64])?;
        }
        Ok(new_names)
    }

    fn latest_closed_incident(&self, key: &str) -> Result<Option<ClosedIncident>, StoreError> {
        // Incidents of a key never overlap, so the latest opened is the latest closed.
        let found = self
            .conn
            .prepare_cached(
                "SELECT id, feeds, categories, closed_ms FROM incidents \
                 WHERE client_key = ?1 AND status = 'closed' ORDER BY opened_ms DESC LIMIT 1",
            )?
            .query_row([key], |r| {
                let incident = TrackedIncident {
                    id: r.get(0)?,
                    feeds: r.get(1)?,
                    categories: r.get(2)?,
                    enforced: false,
                };
                Ok((incident, r.get::<_, Option<i64>>(3)?))
            })
            .optional()?;
        // A closed incident without a closing time cannot tell which hits were before it.
        Ok(found.and_then(|(incident, closed_ms)| {
            closed_ms.map(|closed_ms| ClosedIncident {
                incident,
                closed_ms,
            })
        }))
    }

    fn open_incident_span(&self, key: &str) -> Result<Option<OpenSpan>, StoreError> {
        let span: Option<(i64, i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT id, opened_ms, last_hit_ms FROM incidents \
                 WHERE client_key = ?1 AND status != 'closed'",
            )?
            .query_row([key], |r| r.try_into())
            .optional()?;
        Ok(span.map(|(id, opened_ms, last_hit_ms)| OpenSpan {
            id,
            opened_ms,
            last_hit_ms,
        }))
    }

    fn learn_identity(
        &self,
        id: i64,
        new_key: Option<&str>,
        i: &Identity,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE incidents SET client_key = coalesce(?2, client_key), \
                   mac = coalesce(mac, ?3), account = coalesce(account, ?4), \
                   hostname = coalesce(hostname, ?5), identity_source = coalesce(identity_source, ?6), \
                   asset = coalesce(asset, ?7), ledger_owner = coalesce(ledger_owner, ?8), \
                   contact = coalesce(contact, ?9), department = coalesce(department, ?10), \
                   device = coalesce(device, ?7), owner = coalesce(owner, ?8) \
                 WHERE id = ?1",
            )?
            .execute(&*learned_params(&id, &new_key, &learned_fields(i)))?;
        Ok(())
    }

    fn add_system_note(&self, id: i64, time_ms: i64, text: &str) -> Result<(), StoreError> {
        incidents::add_note(self.conn, id, time_ms, "system", text)?;
        Ok(())
    }

    fn incidents_opened_since(&self, key: &str, since_ms: i64) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM incidents WHERE client_key = ?1 AND opened_ms >= ?2",
            )?
            .query_row(params![key, since_ms], |r| r.get(0))?)
    }

    fn mark_enforced(&self, id: i64, time_ms: i64) -> Result<bool, StoreError> {
        let marked = self
            .conn
            .prepare_cached(
                "UPDATE incidents SET enforced_ms = ?2 WHERE id = ?1 AND enforced_ms IS NULL",
            )?
            .execute(params![id, time_ms])?;
        Ok(marked == 1)
    }

    fn quarantine(
        &self,
        ip: IpAddr,
        since_ms: i64,
        reason: &str,
        incident: i64,
    ) -> Result<(), StoreError> {
        let ip_text = ip.to_string();
        incidents::quarantine_add(
            self.conn,
            &ip_text,
            since_ms,
            "system",
            reason,
            Some(incident),
        )?;
        let mut entry = AuditEntry::now(
            "system",
            "system",
            "quarantine.add",
            &format!("quarantine/{ip_text}"),
        );
        entry.detail = format!("incident {incident}: {reason}");
        audit::insert(self.conn, &entry)?;
        Ok(())
    }

    fn hit_times_since(
        &self,
        ip: IpAddr,
        since_ms: i64,
        each: &mut dyn FnMut(i64),
    ) -> Result<(), StoreError> {
        blocks::scan_client(
            self.conn,
            Table::Hits,
            ip_key(ip),
            since_ms,
            |e: &Entry<'_>| each(e.time_ms),
        )
    }
}

/// [`IncidentTx::learn_identity`]'s parameters: the id, the new key, then `fields`.
fn learned_params<'p>(
    id: &'p i64,
    new_key: &'p Option<&str>,
    fields: &'p [Option<&str>; 8],
) -> Vec<&'p dyn rusqlite::ToSql> {
    let mut all: Vec<&dyn rusqlite::ToSql> = vec![id, new_key];
    all.extend(fields.iter().map(|f| f as &dyn rusqlite::ToSql));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use poolguard_clients::Identity;
    use poolguard_model::Severity;

    fn store() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::Store::open(&dir.path().join("t.db")).expect("store");
        let conn = store.write_connection().expect("conn");
        (dir, conn)
    }

    fn new_incident<'a>(key: &'a str, identity: &'a Identity, t: i64) -> NewIncident<'a> {
        NewIncident {
            key,
            ip: "10.0.0.7".parse().expect("ip"),
            identity,
            first_hit_ms: t,
            identify_due_ms: t + 10,
            report_due_ms: t + 20,
        }
    }

    fn opened(o: Opening) -> TrackedIncident {
        match o {
            Opening::Opened(i) => i,
            Opening::AlreadyOpen(i) => panic!("expected a new incident, {i:?} was open"),
        }
    }

    /// Opens the first incident of `ip:10.0.0.7`, at 100, without ledger identity.
    fn first_incident(tx: &SqliteIncidentTx<'_>) -> i64 {
        let nobody = Identity::default();
        let new = new_incident("ip:10.0.0.7", &nobody, 100);
        opened(tx.open_incident(&new).expect("open")).id
    }

    fn close(conn: &Connection, id: i64, at: i64) {
        conn.execute(
            "UPDATE incidents SET status = 'closed', closed_ms = ?2 WHERE id = ?1",
            params![id, at],
        )
        .expect("closed");
    }

    #[test]
    fn a_key_has_at_most_one_open_incident() {
        let (_dir, conn) = store();
        let tx = SqliteIncidentTx::new(&conn);
        let who = Identity {
            asset: Some("PC-7".into()),
            owner: Some("alice".into()),
            ..Identity::default()
        };
        assert_eq!(tx.open_incident_of("ip:10.0.0.7").expect("find"), None);
        let first = opened(
            tx.open_incident(&new_incident("ip:10.0.0.7", &who, 100))
                .expect("open"),
        );
        assert_eq!(
            tx.open_incident(&new_incident("ip:10.0.0.7", &who, 200))
                .expect("again"),
            Opening::AlreadyOpen(first.clone()),
            "the second open finds the first"
        );
        assert_eq!(
            tx.open_incident_of("ip:10.0.0.7").expect("find"),
            Some(first.clone())
        );
        let prefilled: (String, String, i64, i64) = conn
            .query_row(
                "SELECT device, owner, opened_ms, report_due_ms FROM incidents WHERE id = ?1",
                [first.id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("row");
        assert_eq!(prefilled, ("PC-7".into(), "alice".into(), 100, 120));

        close(&conn, first.id, 300);
        let second = opened(
            tx.open_incident(&new_incident("ip:10.0.0.7", &who, 400))
                .expect("open"),
        );
        assert_ne!(
            second.id, first.id,
            "a closed incident does not block a new one"
        );
        assert_eq!(
            tx.incidents_opened_since("ip:10.0.0.7", 0).expect("count"),
            2
        );
        assert_eq!(
            tx.incidents_opened_since("ip:10.0.0.7", 101)
                .expect("count"),
            1
        );
    }

    #[test]
    fn folds_respect_the_guard_and_keep_the_maxima() {
        let (_dir, conn) = store();
        let tx = SqliteIncidentTx::new(&conn);
        let id = first_incident(&tx);
        let fold = HitFold {
            last_hit_ms: 150,
            hits: 3,
            severity: Severity::High,
            feeds: "mining",
            categories: "mining",
        };
        assert!(tx.fold_hits(id, &fold, FoldGuard::OpenOnly).expect("fold"));
        let older = HitFold {
            last_hit_ms: 120,
            severity: Severity::Low,
            hits: 1,
            ..fold
        };
        close(&conn, id, 200);
        assert!(
            !tx.fold_hits(id, &older, FoldGuard::OpenOnly)
                .expect("refused")
        );
        assert!(
            tx.fold_hits(id, &older, FoldGuard::EvenClosed)
                .expect("late")
        );
        let row: (i64, i64, i64, String) = conn
            .query_row(
                "SELECT last_hit_ms, hit_count, severity, feeds FROM incidents WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("row");
        assert_eq!(
            row,
            (150, 4, severity_rank(Severity::High), "mining".into())
        );

        let closed = tx.latest_closed_incident("ip:10.0.0.7").expect("closed");
        assert_eq!(
            closed.map(|c| (c.incident.id, c.closed_ms)),
            Some((id, 200))
        );
        assert_eq!(
            tx.latest_closed_incident("ip:10.0.0.8").expect("none"),
            None
        );
    }

    #[test]
    fn names_notes_enforcement_and_quarantine_are_recorded() {
        let (_dir, conn) = store();
        let tx = SqliteIncidentTx::new(&conn);
        let id = first_incident(&tx);
        assert_eq!(
            tx.record_names(id, &["a.pool", "b.pool"]).expect("names"),
            2
        );
        assert_eq!(
            tx.record_names(id, &["b.pool", "c.pool"]).expect("names"),
            1
        );
        let one = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
        assert_eq!(one("SELECT name_count FROM incidents"), 3);

        tx.add_system_note(id, 110, "late hits").expect("note");
        assert_eq!(
            one("SELECT count(*) FROM incident_notes WHERE author = 'system'"),
            1
        );

        assert!(tx.mark_enforced(id, 120).expect("enforced"));
        assert!(
            !tx.mark_enforced(id, 130).expect("enforced again"),
            "marked once"
        );
        assert!(
            tx.open_incident_of("ip:10.0.0.7")
                .expect("find")
                .expect("open")
                .enforced
        );

        let ip: IpAddr = "10.0.0.7".parse().expect("ip");
        tx.quarantine(ip, 120, "3 incidents", id)
            .expect("quarantined");
        tx.quarantine(ip, 130, "again", id)
            .expect("still quarantined");
        assert_eq!(
            one("SELECT count(*) FROM quarantine WHERE since_ms = 120"),
            1
        );
        assert!(one("SELECT count(*) FROM audit WHERE action = 'quarantine.add'") >= 1);
    }

    #[test]
    fn hit_times_are_the_addresses_stored_hits_since() {
        use poolguard_record::{Outcome, QueryEvent, Transport};
        use std::sync::Arc;
        let (_dir, conn) = store();
        let hit = |t: i64, client: &str| QueryEvent {
            time_ms: t,
            client: client.parse().expect("addr"),
            transport: Transport::Udp,
            name: "a.pool".into(),
            qtype: "A".into(),
            outcome: Outcome::Blocked,
            feed: Some(Arc::from("mining")),
            rule: Some(Arc::from("pool")),
            rcode: "NOERROR",
            answer: "A 0.0.0.0".into(),
            latency_us: 1,
            upstream: None,
        };
        let events = [
            hit(100, "10.0.0.7:53"),
            hit(200, "10.0.0.8:53"),
            hit(300, "10.0.0.7:53"),
        ];
        let ledger = poolguard_clients::Ledger::empty();
        crate::writer::insert_events(&conn, &events, &ledger, false).expect("stored");
        let mut times = Vec::new();
        SqliteIncidentTx::new(&conn)
            .hit_times_since("10.0.0.7".parse().expect("ip"), 150, &mut |t| times.push(t))
            .expect("scan");
        assert_eq!(times, vec![300]);
    }
}
