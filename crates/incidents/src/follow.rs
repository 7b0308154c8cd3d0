//! Quarantine follows the device (issue 15): a quarantined machine that renews to a new
//! address, or a login that comes back elsewhere, is quarantined at its new address as soon
//! as the lease or the accounting is seen; releasing the quarantine lifts it everywhere.
//!
//! A quarantine entry made for an incident follows that incident's key: `mac:` (the device)
//! or `account:` (the login); an `asset:` incident follows the MAC it was seen with. An
//! entry without an incident, or of an `ip:` incident, stays on its address. The addresses
//! followed are not stored: they are worked out again from the store's list and the identity
//! index whenever either changed (checked every [`EVERY`]), so a restart or a release never
//! leaves one behind.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use poolguard_identity::SharedIdentities;
use poolguard_policy::quarantine::Quarantine;
use poolguard_store::Stores;
use poolguard_store::blocks::HitOwner;

/// How often the index and the quarantine list are looked at for a change.
pub const EVERY: Duration = Duration::from_secs(1);

/// Worked out again this often even when nothing seemed to change (a list changed through
/// another node arrives with the resync).
const AT_LEAST_EVERY: Duration = Duration::from_secs(30);

/// What a quarantine entry follows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Subject {
    Mac(String),
    Account(String),
    /// The entry stays on its address.
    Nothing,
}

/// Follows until the task is aborted.
pub fn spawn(
    quarantine: Arc<Quarantine>,
    store: Arc<dyn Stores>,
    index: SharedIdentities,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut subjects: HashMap<i64, Subject> = HashMap::new();
        let mut seen = None;
        let mut last = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = (quarantine.generation(), index.generation());
            if seen == Some(now) && last.elapsed() < AT_LEAST_EVERY {
                continue;
            }
            match follow(&quarantine, &*store, &index, &mut subjects).await {
                Ok(()) => {
                    seen = Some(now);
                    last = tokio::time::Instant::now();
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot follow quarantined devices; will retry")
                }
            }
        }
    })
}

async fn follow(
    quarantine: &Quarantine,
    store: &dyn Stores,
    index: &SharedIdentities,
    subjects: &mut HashMap<i64, Subject>,
) -> Result<(), poolguard_store::StoreError> {
    let list = store.quarantine_list().await?;
    // Which listed address each followed MAC or account belongs to.
    let mut origin: HashMap<String, IpAddr> = HashMap::new();
    for entry in &list {
        let (Some(id), Ok(ip)) = (entry.incident_id, entry.ip.parse::<IpAddr>()) else {
            continue;
        };
        let subject = match subjects.entry(id) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(new) => {
                new.insert(match store.incident_detail(id, 0).await? {
                    Some(record) => subject_of(&record.incident),
                    None => Subject::Nothing,
                })
            }
        };
        match subject {
            Subject::Mac(m) => origin.insert(format!("mac:{m}"), ip),
            Subject::Account(a) => origin.insert(format!("account:{a}"), ip),
            Subject::Nothing => None,
        };
    }
    let macs: Vec<&str> = origin
        .keys()
        .filter_map(|k| k.strip_prefix("mac:"))
        .collect();
    let accounts: Vec<&str> = origin
        .keys()
        .filter_map(|k| k.strip_prefix("account:"))
        .collect();
    let held = index.held_by(&macs, &accounts, poolguard_identity::now_ms());
    let followed: HashMap<IpAddr, IpAddr> = held
        .into_iter()
        .filter_map(|(addr, by)| origin.get(&by).map(|from| (addr, *from)))
        .collect();
    for (addr, from) in &followed {
        if quarantine.origin_of(*addr).is_none() && !quarantine.contains(*addr) {
            tracing::info!(client = %addr, follows = %from, "quarantine follows the device to a new address");
            metrics::counter!("poolguard_quarantine_followed_total").increment(1);
        }
    }
    metrics::gauge!("poolguard_quarantine_followed").set(followed.len() as f64);
    quarantine.set_followed(followed);
    Ok(())
}

/// What the quarantine of incident `row` follows.
fn subject_of(row: &poolguard_store::incidents::IncidentRow) -> Subject {
    match HitOwner::parse(&row.client_key) {
        Some(HitOwner::Mac(m)) => Subject::Mac(m.to_string()),
        Some(HitOwner::Account(a)) => Subject::Account(a.to_lowercase()),
        Some(HitOwner::Asset(_)) => match &row.identity.mac {
            Some(m) => Subject::Mac(m.clone()),
            None => Subject::Nothing,
        },
        Some(HitOwner::Ip(_)) | None => Subject::Nothing,
    }
}
