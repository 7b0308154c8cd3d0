//! The review queue: candidate pool names nobody has listed, each with its evidence, for
//! feed maintainers to accept into a feed or dismiss (docs/REVIEW.md).
//!
//! A periodic scan (`poolguard_feeds::review`) reads the queries stored since its last run
//! and hands what it found here as [`Sighting`]s; one row per name keeps the merged evidence
//! (a few clients, first/last seen, count, the latest answer, why it is a candidate). A
//! decision is remembered in the row: a dismissed or accepted name is never queued again,
//! however often it is seen after. The scan's position is kept in the same transaction as
//! its sightings, so a restart neither loses nor counts twice what a scan found.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::traits::{Actor, Cursor, Paged};
use crate::{Store, StoreError};

/// Clients kept per candidate: enough to find the machines, bounded however many asked.
pub const MAX_CLIENTS: usize = 16;

/// Why a name is a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReviewReason {
    /// Its answer held an address of the pool address set or of a listed IP feed.
    ResolvesToPool,
    /// It CNAMEs into a listed name, and is not listed itself.
    CnameToListed,
    /// The second-level label of a listed pool family under another top-level domain.
    OtherTld,
    /// A `stratum`, `pool` or coin-ticker host under a listed operator's domain.
    OperatorHost,
}

impl ReviewReason {
    /// Every reason, for the API's parameter check.
    pub const ALL: [ReviewReason; 4] = [
        Self::ResolvesToPool,
        Self::CnameToListed,
        Self::OtherTld,
        Self::OperatorHost,
    ];

    /// As stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResolvesToPool => "resolves-to-pool",
            Self::CnameToListed => "cname-to-listed",
            Self::OtherTld => "other-tld",
            Self::OperatorHost => "operator-host",
        }
    }

    /// The inverse of [`ReviewReason::as_str`].
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Where a candidate is in review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewState {
    /// Waiting for a maintainer.
    Pending,
    /// Added to a feed.
    Accepted,
    /// Judged harmless; never queued again.
    Dismissed,
}

impl ReviewState {
    /// Every state, for the API's parameter check.
    pub const ALL: [ReviewState; 3] = [Self::Pending, Self::Accepted, Self::Dismissed];

    /// As stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Dismissed => "dismissed",
        }
    }

    /// The inverse of [`ReviewState::as_str`].
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What one scan saw of one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub name: String,
    pub reason: ReviewReason,
    /// Client addresses that asked, at most [`MAX_CLIENTS`].
    pub clients: Vec<String>,
    pub first_ms: i64,
    pub last_ms: i64,
    /// How many stored queries for the name the scan saw.
    pub count: i64,
    /// The latest answer, in the query log's short form (`A 198.51.100.7`).
    pub resolved: String,
    /// Why it is a candidate, in words (`198.51.100.7 is in the pool address set, from
    /// stratum.pool.example`).
    pub evidence: String,
}

/// A candidate as the queue holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub name: String,
    pub reason: ReviewReason,
    pub state: ReviewState,
    pub clients: Vec<String>,
    pub first_ms: i64,
    pub last_ms: i64,
    pub count: i64,
    pub resolved: String,
    pub evidence: String,
    /// Who accepted or dismissed it.
    pub decided_by: Option<String>,
    pub decided_ms: Option<i64>,
    /// The feed it went into, or why it was dismissed.
    pub decision: Option<String>,
}

/// A list request; newest sighting first.
#[derive(Debug, Clone, Default)]
pub struct ReviewFilter {
    pub reason: Option<ReviewReason>,
    pub state: Option<ReviewState>,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

/// A maintainer's decision on a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewDecision {
    /// The name went into `feed`.
    Accept { feed: String },
    /// Not a pool, for `reason`.
    Dismiss { reason: String },
}

/// What a decision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// Recorded (with its audit row).
    Done(Candidate),
    /// No such candidate.
    NotFound,
    /// Someone decided first; nothing written.
    AlreadyDecided(Candidate),
}

/// The review queue as the API and the scan need it.
#[async_trait]
pub trait ReviewStore: Send + Sync {
    /// Where this node's last scan stopped (ms since the epoch); `None` before the first.
    async fn review_scanned_until(&self) -> Result<Option<i64>, StoreError>;

    /// Merges one scan's sightings into the queue and moves this node's scan position to
    /// `until_ms`, in one transaction. Decided names keep their decision untouched.
    async fn review_record(
        &self,
        sightings: Vec<Sighting>,
        until_ms: i64,
    ) -> Result<(), StoreError>;

    /// One page of candidates.
    async fn review_list(&self, filter: ReviewFilter) -> Result<Paged<Candidate>, StoreError>;

    /// One candidate.
    async fn review_get(&self, name: String) -> Result<Option<Candidate>, StoreError>;

    /// Records a decision on a pending candidate; nothing when it is decided already. The
    /// caller audits it (`review.accept` / `review.dismiss`) in the store every maintainer
    /// write is audited in.
    async fn review_decide(
        &self,
        name: String,
        decision: ReviewDecision,
        actor: Actor,
        now_ms: i64,
    ) -> Result<Decided, StoreError>;
}

/// Schema step: the queue and the scan position.
pub fn schema() -> String {
    "CREATE TABLE IF NOT EXISTS review_candidates (
    name        TEXT    PRIMARY KEY,
    reason      TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    clients     TEXT    NOT NULL,
    first_ms    INTEGER NOT NULL,
    last_ms     INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    resolved    TEXT    NOT NULL,
    evidence    TEXT    NOT NULL,
    decided_by  TEXT,
    decided_ms  INTEGER,
    decision    TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS review_candidates_last ON review_candidates(last_ms, name);
CREATE TABLE IF NOT EXISTS review_scan (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    until_ms    INTEGER NOT NULL);
"
    .to_string()
}

const COLUMNS: &str = "name, reason, state, clients, first_ms, last_ms, count, resolved, \
                       evidence, decided_by, decided_ms, decision";

/// The reason, state and clients as stored (text) read back, by every backend alike. A row
/// written by a later build with a reason or state this one does not know reads as the
/// broadest one rather than failing the whole list.
pub fn decode(
    reason: &str,
    state: &str,
    clients: &str,
) -> (ReviewReason, ReviewState, Vec<String>) {
    (
        ReviewReason::from_name(reason).unwrap_or(ReviewReason::ResolvesToPool),
        ReviewState::from_name(state).unwrap_or(ReviewState::Pending),
        serde_json::from_str(clients).unwrap_or_default(),
    )
}

fn candidate(r: &Row<'_>) -> rusqlite::Result<Candidate> {
    let reason: String = r.get(1)?;
    let state: String = r.get(2)?;
    let clients: String = r.get(3)?;
    let (reason, state, clients) = decode(&reason, &state, &clients);
    Ok(Candidate {
        name: r.get(0)?,
        reason,
        state,
        clients,
        first_ms: r.get(4)?,
        last_ms: r.get(5)?,
        count: r.get(6)?,
        resolved: r.get(7)?,
        evidence: r.get(8)?,
        decided_by: r.get(9)?,
        decided_ms: r.get(10)?,
        decision: r.get(11)?,
    })
}

/// One candidate by name.
pub fn get(conn: &Connection, name: &str) -> Result<Option<Candidate>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM review_candidates WHERE name = ?1"
    ))?;
    Ok(stmt.query_row([name], candidate).optional()?)
}

/// Where the last scan stopped.
pub fn scanned_until(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row("SELECT until_ms FROM review_scan WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Merges `sightings` (see [`ReviewStore::review_record`]); the caller's transaction.
pub fn record(conn: &Connection, sightings: &[Sighting], until_ms: i64) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO review_candidates ({COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, NULL, NULL)"
    ))?;
    for s in sightings {
        let before = get(conn, &s.name)?;
        let merged = match before {
            Some(c) if c.state != ReviewState::Pending => continue,
            Some(c) => c.merged(s),
            None => Candidate::new(s),
        };
        let clients = serde_json::to_string(&merged.clients).unwrap_or_else(|_| "[]".into());
        insert.execute(params![
            merged.name,
            merged.reason.as_str(),
            merged.state.as_str(),
            clients,
            merged.first_ms,
            merged.last_ms,
            merged.count,
            merged.resolved,
            merged.evidence,
        ])?;
    }
    conn.execute(
        "INSERT INTO review_scan (id, until_ms) VALUES (1, ?1) \
         ON CONFLICT(id) DO UPDATE SET until_ms = max(until_ms, excluded.until_ms)",
        [until_ms],
    )?;
    Ok(())
}

impl Candidate {
    /// A new pending candidate from its first sighting.
    pub fn new(s: &Sighting) -> Self {
        Self {
            name: s.name.clone(),
            reason: s.reason,
            state: ReviewState::Pending,
            clients: s.clients.iter().take(MAX_CLIENTS).cloned().collect(),
            first_ms: s.first_ms,
            last_ms: s.last_ms,
            count: s.count,
            resolved: s.resolved.clone(),
            evidence: s.evidence.clone(),
            decided_by: None,
            decided_ms: None,
            decision: None,
        }
    }

    /// This candidate with a new scan's sighting folded in: the first reason found stays (its
    /// evidence with it), the latest answer wins, clients are added up to the bound. Every
    /// backend merges with it, so their queues read the same.
    pub fn merged(mut self, s: &Sighting) -> Self {
        for client in &s.clients {
            if self.clients.len() >= MAX_CLIENTS {
                break;
            }
            if !self.clients.contains(client) {
                self.clients.push(client.clone());
            }
        }
        self.first_ms = self.first_ms.min(s.first_ms);
        if s.last_ms >= self.last_ms {
            self.resolved = s.resolved.clone();
        }
        self.last_ms = self.last_ms.max(s.last_ms);
        self.count = self.count.saturating_add(s.count);
        self
    }
}

/// The cursor continuing after `c` in (`last_ms` descending, name) order.
pub fn cursor_of(c: &Candidate) -> Cursor {
    Cursor(format!("{}:{}", c.last_ms, c.name))
}

/// The `(last_ms, name)` a list continues after; `(i64::MAX, "")` for the first page.
pub fn cursor_key(c: Option<&Cursor>) -> Result<(i64, String), StoreError> {
    let Some(c) = c else {
        return Ok((i64::MAX, String::new()));
    };
    let (ms, name) = c.as_str().split_once(':').ok_or(StoreError::BadCursor)?;
    Ok((
        ms.parse().map_err(|_| StoreError::BadCursor)?,
        name.to_string(),
    ))
}

/// One page, most recently seen first.
pub fn list(conn: &Connection, f: &ReviewFilter) -> Result<Paged<Candidate>, StoreError> {
    let (before_ms, after_name) = cursor_key(f.cursor.as_ref())?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM review_candidates \
         WHERE (?1 IS NULL OR reason = ?1) AND (?2 IS NULL OR state = ?2) \
         AND (last_ms < ?3 OR (last_ms = ?3 AND name > ?4)) \
         ORDER BY last_ms DESC, name ASC LIMIT ?5"
    ))?;
    let limit = i64::try_from(f.limit).unwrap_or(i64::MAX);
    let items = stmt
        .query_map(
            params![
                f.reason.map(ReviewReason::as_str),
                f.state.map(ReviewState::as_str),
                before_ms,
                after_name,
                limit
            ],
            candidate,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let next = (items.len() == f.limit)
        .then(|| items.last().map(cursor_of))
        .flatten();
    Ok(Paged { items, next })
}

/// Records a decision; the caller's transaction. The audit row is the caller's (the API
/// writes it where every maintainer write is audited: the group's log under PostgreSQL).
pub fn decide(
    conn: &Connection,
    name: &str,
    decision: &ReviewDecision,
    actor: &Actor,
    now_ms: i64,
) -> Result<Decided, StoreError> {
    let Some(before) = get(conn, name)? else {
        return Ok(Decided::NotFound);
    };
    if before.state != ReviewState::Pending {
        return Ok(Decided::AlreadyDecided(before));
    }
    let (state, text) = match decision {
        ReviewDecision::Accept { feed } => (ReviewState::Accepted, feed),
        ReviewDecision::Dismiss { reason } => (ReviewState::Dismissed, reason),
    };
    conn.prepare_cached(
        "UPDATE review_candidates SET state = ?2, decided_by = ?3, decided_ms = ?4, \
         decision = ?5 WHERE name = ?1",
    )?
    .execute(params![name, state.as_str(), actor.name, now_ms, text])?;
    get(conn, name)?
        .map(Decided::Done)
        .ok_or_else(|| StoreError::Worker(format!("review candidate {name} vanished")))
}

#[async_trait]
impl ReviewStore for Store {
    async fn review_scanned_until(&self) -> Result<Option<i64>, StoreError> {
        self.read(scanned_until).await
    }

    async fn review_record(
        &self,
        sightings: Vec<Sighting>,
        until_ms: i64,
    ) -> Result<(), StoreError> {
        self.write(move |c| record(c, &sightings, until_ms)).await
    }

    async fn review_list(&self, filter: ReviewFilter) -> Result<Paged<Candidate>, StoreError> {
        self.read(move |c| list(c, &filter)).await
    }

    async fn review_get(&self, name: String) -> Result<Option<Candidate>, StoreError> {
        self.read(move |c| get(c, &name)).await
    }

    async fn review_decide(
        &self,
        name: String,
        decision: ReviewDecision,
        actor: Actor,
        now_ms: i64,
    ) -> Result<Decided, StoreError> {
        self.write(move |c| decide(c, &name, &decision, &actor, now_ms))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let mut c = Connection::open_in_memory().expect("db");
        crate::schema::migrate(&mut c).expect("schema");
        c
    }

    fn seen(name: &str, client: &str, at: i64) -> Sighting {
        Sighting {
            name: name.into(),
            reason: ReviewReason::OtherTld,
            clients: vec![client.into()],
            first_ms: at,
            last_ms: at,
            count: 1,
            resolved: format!("A 198.51.100.{at}"),
            evidence: "nanopool.org is listed".into(),
        }
    }

    fn actor() -> Actor {
        Actor {
            name: "maint".into(),
            role: "feeds".into(),
        }
    }

    #[test]
    fn sightings_merge_and_a_dismissed_name_is_not_queued_again() {
        let c = conn();
        record(&c, &[seen("nanopool.net", "10.0.0.1", 5)], 10).expect("record");
        record(&c, &[seen("nanopool.net", "10.0.0.2", 7)], 20).expect("record");
        let got = get(&c, "nanopool.net").expect("get").expect("queued");
        assert_eq!(got.clients, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!((got.first_ms, got.last_ms, got.count), (5, 7, 2));
        assert_eq!(got.resolved, "A 198.51.100.7");
        assert_eq!(scanned_until(&c).expect("pos"), Some(20));

        let dismiss = ReviewDecision::Dismiss {
            reason: "a news site".into(),
        };
        let done = decide(&c, "nanopool.net", &dismiss, &actor(), 30).expect("decide");
        assert!(matches!(done, Decided::Done(ref d) if d.state == ReviewState::Dismissed));
        assert!(matches!(
            decide(&c, "nanopool.net", &dismiss, &actor(), 31).expect("again"),
            Decided::AlreadyDecided(_)
        ));
        record(&c, &[seen("nanopool.net", "10.0.0.3", 40)], 50).expect("record");
        let after = get(&c, "nanopool.net").expect("get").expect("row");
        assert_eq!(after.state, ReviewState::Dismissed);
        assert_eq!(after.count, 2, "a dismissed name gathers nothing more");
    }

    #[test]
    fn pages_follow_the_cursor_and_filters_apply() {
        let c = conn();
        let many: Vec<Sighting> = (0..5)
            .map(|i| seen(&format!("n{i}.example"), "10.0.0.1", i))
            .collect();
        record(&c, &many, 10).expect("record");
        let mut f = ReviewFilter {
            limit: 2,
            state: Some(ReviewState::Pending),
            ..ReviewFilter::default()
        };
        let mut names = Vec::new();
        loop {
            let page = list(&c, &f).expect("page");
            names.extend(page.items.into_iter().map(|c| c.name));
            match page.next {
                Some(next) => f.cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(
            names,
            [
                "n4.example",
                "n3.example",
                "n2.example",
                "n1.example",
                "n0.example"
            ]
        );
        f.cursor = None;
        f.reason = Some(ReviewReason::CnameToListed);
        assert!(list(&c, &f).expect("page").items.is_empty());
        f.cursor = Some(Cursor("garbage".into()));
        assert!(matches!(list(&c, &f), Err(StoreError::BadCursor)));
    }
}
