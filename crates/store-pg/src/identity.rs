//! Who held each address when, shared by the group (`identity_intervals`, schema step 7).
//!
//! A NAS may send its accounting to one node and a DHCP server's lease file may be followed
//! by one node, yet a hit on any node must name the holder. So each node writes the holdings
//! its own sources create or change ([`IdentityShare`], the index's [`Outlet`]) and reads the
//! other nodes' ones into its index: all of them at start (which also restores this node's
//! own holdings after a restart, open RADIUS sessions included), then what changed whenever
//! `identity` is notified and at every resync.
//!
//! Writes never wait on the sources: the outlet queues (bounded by [`MAX_PENDING`]) and a task
//! writes in batches, retrying while the database is away. Each row is a holding as its node
//! last saw it; the newest write of a row wins on every node ([`IdentityIndex::apply_shared`]).
//! A commit can land after one with a higher `seq` was read, so every read goes back
//! [`REREAD`] sequence numbers: applying a holding again changes nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poolguard_identity::{Interval, Outlet, SharedIdentities, Source};
use tokio::sync::Notify;
use tokio::sync::broadcast::{Receiver, error::RecvError};

use crate::changes::Change;
use crate::{PgError, PgStore};

/// Holdings waiting to be written; beyond this (the database away for long while leases
/// churn) new ones are dropped and counted: the other nodes then miss them until this node's
/// next change of the same holding.
pub const MAX_PENDING: usize = 1_000_000;

/// How far behind the newest `seq` seen every read starts again.
pub const REREAD: i64 = 1_000;

/// Rows per statement, written and read.
const BATCH: usize = 5_000;

/// How often a failed write or first load is retried, and expired holdings are looked for.
const TICK: Duration = Duration::from_secs(5);

/// Expired rows are deleted this often.
const EXPIRE_EVERY: Duration = Duration::from_secs(3_600);

/// The index's outlet: queues this node's holdings for the task of [`share`].
#[derive(Default)]
pub struct IdentityShare {
    pending: Mutex<Vec<Interval>>,
    wake: Notify,
}

impl Outlet for IdentityShare {
    fn changed(&self, holdings: Vec<Interval>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() + holdings.len() > MAX_PENDING {
            metrics::counter!("poolguard_identity_share_dropped_total")
                .increment(holdings.len() as u64);
            tracing::warn!(
                dropped = holdings.len(),
                "identity holdings not shared: too many wait for PostgreSQL"
            );
            return;
        }
        pending.extend(holdings);
        drop(pending);
        self.wake.notify_one();
    }
}

impl IdentityShare {
    fn take(&self) -> Vec<Interval> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts back holdings a failed write did not store, before anything queued since.
    fn put_back(&self, mut unsent: Vec<Interval>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        unsent.append(&mut pending);
        *pending = unsent;
    }
}

/// Shares `index` with the group through `store` until the task is aborted: plugs the outlet
/// in (queuing every holding the index has), loads the group's holdings, then follows
/// `changes`. Holdings that ended more than `retain` ago are not loaded and are deleted.
pub fn share(
    store: PgStore,
    index: SharedIdentities,
    changes: Receiver<Change>,
    retain: Duration,
) -> tokio::task::JoinHandle<()> {
    let outlet = Arc::new(IdentityShare::default());
    if index.share_through(outlet.clone()).is_err() {
        tracing::warn!("the identity index is already shared");
    }
    tokio::spawn(run(store, index, outlet, changes, retain))
}

async fn run(
    store: PgStore,
    index: SharedIdentities,
    outlet: Arc<IdentityShare>,
    mut changes: Receiver<Change>,
    retain: Duration,
) {
    let retain_ms = i64::try_from(retain.as_millis()).unwrap_or(i64::MAX);
    // None until the first load worked: then the highest `seq` read.
    let mut seen: Option<i64> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut expired_at = tokio::time::Instant::now();
    loop {
        let mut pull = seen.is_none();
        tokio::select! {
            _ = outlet.wake.notified() => {}
            change = changes.recv() => match change {
                Ok(c) => pull |= c.touches_identity(),
                Err(RecvError::Lagged(_)) => pull = true,
                // The listener is gone: the node is stopping.
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if expired_at.elapsed() >= EXPIRE_EVERY {
                    expired_at = tokio::time::Instant::now();
                    let before = crate::now_ms().saturating_sub(retain_ms);
                    if let Err(error) = expire(&store, before).await {
                        tracing::warn!(%error, "cannot delete expired identity holdings");
                    }
                }
            }
        }
        let unsent = outlet.take();
        if !unsent.is_empty()
            && let Err((error, unsent)) = write(&store, unsent).await
        {
            tracing::warn!(%error, "cannot share identity holdings yet; will retry");
            outlet.put_back(unsent);
        }
        if pull {
            let since = crate::now_ms().saturating_sub(retain_ms);
            match read(&store, &index, seen, since).await {
                Ok(newest) => seen = Some(newest.max(seen.unwrap_or(0))),
                Err(error) => {
                    tracing::debug!(%error, "cannot read the group's identity holdings yet")
                }
            }
        }
    }
}

/// Writes `holdings` (the last of each row wins), in batches; on failure returns what is
/// left to write.
async fn write(store: &PgStore, holdings: Vec<Interval>) -> Result<(), (PgError, Vec<Interval>)> {
    let mut last: HashMap<(Source, IpAddr, i64), usize> = HashMap::new();
    for (i, h) in holdings.iter().enumerate() {
        last.insert((h.source, h.addr, h.start_ms), i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    let rows: Vec<&Interval> = keep.iter().map(|&i| &holdings[i]).collect();
    for (n, chunk) in rows.chunks(BATCH).enumerate() {
        if let Err(error) = upsert(store, chunk).await {
            let left = rows[n * BATCH..].iter().map(|&h| h.clone()).collect();
            return Err((error, left));
        }
        metrics::counter!("poolguard_identity_shared_total", "direction" => "written")
            .increment(chunk.len() as u64);
    }
    Ok(())
}

async fn upsert(store: &PgStore, rows: &[&Interval]) -> Result<(), PgError> {
    let source: Vec<&str> = rows.iter().map(|h| h.source.as_str()).collect();
    let address: Vec<String> = rows
        .iter()
        .map(|h| h.addr.to_canonical().to_string())
        .collect();
    let start: Vec<i64> = rows.iter().map(|h| h.start_ms).collect();
    let end: Vec<i64> = rows.iter().map(|h| h.end_ms).collect();
    let mac: Vec<Option<&str>> = rows.iter().map(|h| h.mac.as_deref()).collect();
    let account: Vec<Option<&str>> = rows.iter().map(|h| h.account.as_deref()).collect();
    let hostname: Vec<Option<&str>> = rows.iter().map(|h| h.hostname.as_deref()).collect();
    let c = store.pool().get().await?;
    c.execute(
        "INSERT INTO identity_intervals \
             (source, address, start_ms, end_ms, mac, account, hostname, node) \
         SELECT u.*, $8 FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], \
             $5::text[], $6::text[], $7::text[]) AS u \
         ON CONFLICT (source, address, start_ms) DO UPDATE SET \
             end_ms = EXCLUDED.end_ms, mac = EXCLUDED.mac, account = EXCLUDED.account, \
             hostname = EXCLUDED.hostname, node = EXCLUDED.node, seq = nextval('identity_seq') \
         WHERE (identity_intervals.end_ms, identity_intervals.mac, identity_intervals.account, \
                identity_intervals.hostname) \
           IS DISTINCT FROM (EXCLUDED.end_ms, EXCLUDED.mac, EXCLUDED.account, EXCLUDED.hostname)",
        &[
            &source,
            &address,
            &start,
            &end,
            &mac,
            &account,
            &hostname,
            &store.node(),
        ],
    )
    .await?;
    Ok(())
}

/// Applies the group's holdings ending at or after `since`: every node's at the first load
/// (`seen` None), then the other nodes' written after `seen` (less [`REREAD`]). Returns the
/// highest `seq` read.
async fn read(
    store: &PgStore,
    index: &SharedIdentities,
    seen: Option<i64>,
    since: i64,
) -> Result<i64, PgError> {
    let c = store.pool().get().await?;
    let mut after = seen.map_or(0, |s| s.saturating_sub(REREAD));
    // At the first load this node's own rows count too (they are what it knew before).
    let other = if seen.is_some() { store.node() } else { "" };
    let limit = BATCH as i64;
    let mut newest = after;
    let mut read = 0u64;
    loop {
        let rows = c
            .query(
                "SELECT source, address, start_ms, end_ms, mac, account, hostname, seq \
                 FROM identity_intervals \
                 WHERE seq > $1 AND end_ms >= $2 AND node <> $3 ORDER BY seq LIMIT $4",
                &[&after, &since, &other, &limit],
            )
            .await?;
        let full = rows.len() == BATCH;
        let mut batch = Vec::with_capacity(rows.len());
        for r in &rows {
            after = r.try_get(7)?;
            match holding(r) {
                Ok(h) => batch.push(h),
                Err(why) => tracing::warn!(%why, "identity holding skipped"),
            }
        }
        read += batch.len() as u64;
        index.apply_shared(batch);
        newest = newest.max(after);
        if !full {
            break;
        }
    }
    if read > 0 {
        metrics::counter!("poolguard_identity_shared_total", "direction" => "read").increment(read);
        tracing::debug!(
            holdings = read,
            first = seen.is_none(),
            "identity holdings read from the group"
        );
    }
    Ok(newest)
}

fn holding(r: &tokio_postgres::Row) -> Result<Interval, String> {
    let source: &str = r.try_get(0).map_err(|e| e.to_string())?;
    let address: &str = r.try_get(1).map_err(|e| e.to_string())?;
    let text = |i: usize| -> Result<Option<Arc<str>>, String> {
        let v: Option<&str> = r.try_get(i).map_err(|e| e.to_string())?;
        Ok(v.map(Arc::from))
    };
    Ok(Interval {
        source: source.parse()?,
        addr: address
            .parse()
            .map_err(|_| format!("bad address {address:?}"))?,
        start_ms: r.try_get(2).map_err(|e| e.to_string())?,
        end_ms: r.try_get(3).map_err(|e| e.to_string())?,
        mac: text(4)?,
        account: text(5)?,
        hostname: text(6)?,
    })
}

/// Deletes holdings that ended before `before` (the hits they attribute are gone too).
async fn expire(store: &PgStore, before: i64) -> Result<u64, PgError> {
    let c = store.pool().get().await?;
    let mut deleted = 0;
    loop {
        let n = c
            .execute(
                "DELETE FROM identity_intervals WHERE ctid IN \
                 (SELECT ctid FROM identity_intervals WHERE end_ms < $1 LIMIT 5000)",
                &[&before],
            )
            .await?;
        deleted += n;
        if n < 5_000 {
            return Ok(deleted);
        }
    }
}
