//! The information centre's periodic bulletin, computed from the evidence (SQLite side of
//! `IncidentStore::summary`): hits, incidents by department, top offenders and new names.

use std::collections::HashMap;
use std::net::IpAddr;

use rusqlite::{Connection, params};

use crate::StoreError;
use crate::blocks;
use crate::incidents::{self as db, IncidentRow};
use crate::read::Table;
use crate::top::TopCounts;
use poolguard_model::rfc3339;

/// One department's incident figures in a summary.
#[derive(Debug, Clone, Default)]
pub struct DepartmentFigures {
    /// `(unknown)` when the ledger did not know the client.
    pub department: String,
    pub opened: i64,
    pub closed: i64,
    pub overdue: i64,
}

/// One client in the top-offenders table.
#[derive(Debug, Clone)]
pub struct Offender {
    pub client: String,
    pub asset: Option<String>,
    pub department: Option<String>,
    pub hits: i64,
    /// The machines and logins its hits name (at most [`OFFENDER_DEVICES`], most hits first):
    /// on a DHCP or Wi-Fi network the address alone does not say whose the hits were.
    pub devices: Vec<OffenderDevice>,
}

/// A device or login that held an offender's address during the period, as its hits recorded
/// it (issue 15: the bulletin names the machine and the person, and where that came from).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffenderDevice {
    pub mac: Option<String>,
    pub account: Option<String>,
    pub hostname: Option<String>,
    pub owner: Option<String>,
    /// Who said so: the identity sources (`kea`, `dhcpd`, `radius`), else `ledger`.
    pub source: String,
    pub hits: i64,
}

/// Devices listed per offender at most: an address many machines shared names the busiest.
pub const OFFENDER_DEVICES: usize = 3;

impl OffenderDevice {
    /// Folds one hit's identity into `devices`: counted on the entry of its MAC and account,
    /// or a new entry while fewer than four times [`OFFENDER_DEVICES`] are kept (bounded
    /// however many MACs a flood claims). Hits naming neither (a ledger network alone) are
    /// not a device.
    pub fn count(
        devices: &mut Vec<OffenderDevice>,
        mac: Option<&str>,
        account: Option<&str>,
        hostname: Option<&str>,
        owner: Option<&str>,
        source: Option<&str>,
        hits: i64,
    ) {
        if mac.is_none() && account.is_none() {
            return;
        }
        if let Some(d) = devices
            .iter_mut()
            .find(|d| d.mac.as_deref() == mac && d.account.as_deref() == account)
        {
            d.hits += hits;
            if d.hostname.is_none() {
                d.hostname = hostname.map(str::to_string);
            }
            return;
        }
        if devices.len() >= 4 * OFFENDER_DEVICES {
            return;
        }
        devices.push(OffenderDevice {
            mac: mac.map(str::to_string),
            account: account.map(str::to_string),
            hostname: hostname.map(str::to_string),
            owner: owner.map(str::to_string),
            source: source.unwrap_or("ledger").to_string(),
            hits,
        });
    }

    /// The busiest [`OFFENDER_DEVICES`] of `devices`.
    pub fn busiest(mut devices: Vec<OffenderDevice>) -> Vec<OffenderDevice> {
        devices.sort_by(|a, b| b.hits.cmp(&a.hits).then_with(|| a.mac.cmp(&b.mac)));
        devices.truncate(OFFENDER_DEVICES);
        devices
    }
}

/// What the summary's scan keeps per address.
#[derive(Debug, Default)]
struct OffenderTally {
    asset: Option<String>,
    department: Option<String>,
    devices: Vec<OffenderDevice>,
}

/// A name seen for the first time in the period.
#[derive(Debug, Clone)]
pub struct NewName {
    pub name: String,
    /// RFC 3339.
    pub first_seen: String,
    pub hits: i64,
}

/// A pool name added to the feeds, or a pool address that joined the address set, in the
/// period: what other units copy into their own blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The name or the address.
    pub entry: String,
    /// The feed that lists the name; for an address, the listed name whose answer held it.
    pub source: String,
    /// RFC 3339: when poolguard first listed it.
    pub since: String,
}

/// What was added to the lists in the period, at most [`SUMMARY_LISTED`] of each, newest
/// first, with the totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Added {
    pub names: Vec<Listed>,
    pub names_total: usize,
    pub addresses: Vec<Listed>,
    pub addresses_total: usize,
}

/// Names and addresses a summary lists at most (the totals count them all).
pub const SUMMARY_LISTED: usize = 200;

/// Where a summary learns what was added to the lists: the feeds and the pool address set
/// live above the store, so the binary plugs them in ([`SharedListings`]).
pub trait Listings: Send + Sync {
    /// What was added in `[since_ms, until_ms)`.
    fn added(&self, since_ms: i64, until_ms: i64) -> Added;
}

/// A [`Listings`] plugged in once the feeds and the pool set are up; empty until then.
pub type SharedListings = std::sync::Arc<std::sync::OnceLock<std::sync::Arc<dyn Listings>>>;

/// What `listings` (if plugged in) says was added in `[since_ms, until_ms)`.
pub fn added(listings: &SharedListings, since_ms: i64, until_ms: i64) -> Added {
    listings
        .get()
        .map(|l| l.added(since_ms, until_ms))
        .unwrap_or_default()
}

/// The information centre's periodic bulletin.
#[derive(Debug, Clone)]
pub struct Summary {
    /// RFC 3339, inclusive.
    pub since: String,
    /// RFC 3339, exclusive.
    pub until: String,
    pub hits: i64,
    pub incidents_opened: i64,
    pub incidents_closed: i64,
    /// Incidents opened in the period with a deadline missed at `until` (or now, if earlier),
    /// closed ones included: closing after a miss does not undo it (`incidents::deadline`).
    pub incidents_overdue: i64,
    pub by_department: Vec<DepartmentFigures>,
    pub top_offenders: Vec<Offender>,
    pub new_names: Vec<NewName>,
    /// Names added to the feeds and addresses to the pool set in the period (filled by the
    /// caller from [`Listings`]; the stores leave it empty).
    pub added: Added,
}

/// Offenders and new names listed at most (every backend's summary lists as many).
pub const SUMMARY_TOP: usize = 20;

/// The incident half of a summary: opened, closed and overdue in the period, by department.
/// Computed from the incident rows opened or closed in the period by every backend alike, so
/// their bulletins agree on what "overdue" means.
#[derive(Debug, Clone, Default)]
pub struct IncidentFigures {
    pub opened: i64,
    pub closed: i64,
    pub overdue: i64,
    pub by_department: Vec<DepartmentFigures>,
}

impl IncidentFigures {
    /// The figures of `[since, until)` over `rows`, overdue judged at `judge`.
    pub fn of(rows: &[IncidentRow], since: i64, until: i64, judge: i64) -> Self {
        let mut by: std::collections::BTreeMap<String, DepartmentFigures> = Default::default();
        let (mut opened, mut closed, mut overdue) = (0, 0, 0);
        for r in rows {
            let dept = r
                .identity
                .department
                .clone()
                .unwrap_or_else(|| "(unknown)".into());
            let e = by.entry(dept.clone()).or_insert_with(|| DepartmentFigures {
                department: dept,
                ..Default::default()
            });
            if r.opened_ms >= since && r.opened_ms < until {
                opened += 1;
                e.opened += 1;
                if r.overdue(judge) {
                    overdue += 1;
                    e.overdue += 1;
                }
            }
            if r.closed_ms.is_some_and(|c| c >= since && c < until) {
                closed += 1;
                e.closed += 1;
            }
        }
        Self {
            opened,
            closed,
            overdue,
            by_department: by.into_values().collect(),
        }
    }
}

/// Computes the summary of `[since, until)`; overdue is judged at `min(until, now)`.
pub fn summary(conn: &Connection, since: i64, until: i64, now: i64) -> Result<Summary, StoreError> {
    let judge = until.min(now);
    // Names first hit in the period: `hit_names` keeps each blocked name's first hit.
    let firsts: Vec<(String, i64)> = conn
        .prepare(
            "SELECT name, first_ms FROM hit_names WHERE first_ms >= ?1 AND first_ms < ?2 \
             ORDER BY first_ms, name LIMIT ?3",
        )?
        .query_map(params![since, until, SUMMARY_TOP as i64 * 5], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    // One pass over the period's hits: per address (count, asset, department), bounded however
    // many addresses a flood used (`store::top`), and the hits of those new names.
    let mut hits = 0i64;
    let mut by_client: TopCounts<IpAddr, OffenderTally> = TopCounts::default();
    let mut by_name: HashMap<&str, i64> = firsts.iter().map(|(n, _)| (n.as_str(), 0)).collect();
    blocks::scan(conn, Table::Hits, since, until, None, |_, e| {
        hits += 1;
        by_client.add(&e.client, |tally| {
            // The greatest value, as SQL's max() gave before schema 8: stable in any order.
            let a = e.snapshot.and_then(|s| s.asset);
            if a.is_some_and(|a| tally.asset.as_deref().is_none_or(|b| a > b)) {
                tally.asset = a.map(str::to_string);
            }
            if e.department
                .is_some_and(|d| tally.department.as_deref().is_none_or(|b| d > b))
            {
                tally.department = e.department.map(str::to_string);
            }
            if let Some(s) = e.snapshot {
                OffenderDevice::count(
                    &mut tally.devices,
                    s.mac,
                    s.account,
                    s.hostname,
                    s.owner,
                    s.source,
                    1,
                );
            }
        });
        if let Some(n) = by_name.get_mut(e.name) {
            *n += 1;
        }
    })?;
    let sql = format!(
        "SELECT {} FROM incidents WHERE (opened_ms >= ?1 AND opened_ms < ?2) OR (closed_ms >= ?1 AND closed_ms < ?2)",
        db::INCIDENT_COLUMNS
    );
    let rows: Vec<IncidentRow> = conn
        .prepare(&sql)?
        .query_map(params![since, until], db::map_incident)?
        .collect::<Result<_, _>>()?;
    let figures = IncidentFigures::of(&rows, since, until, judge);
    let mut top_offenders: Vec<Offender> = by_client
        .into_counts()
        .map(|(ip, n, tally)| Offender {
            client: ip.to_string(),
            asset: tally.asset,
            department: tally.department,
            hits: i64::try_from(n).unwrap_or(i64::MAX),
            devices: OffenderDevice::busiest(tally.devices),
        })
        .collect();
    top_offenders.sort_by(|a, b| b.hits.cmp(&a.hits).then_with(|| a.client.cmp(&b.client)));
    top_offenders.truncate(SUMMARY_TOP);
    Ok(Summary::assemble(
        (since, until),
        hits,
        figures,
        top_offenders,
        &firsts,
        |name| by_name.get(name).copied().unwrap_or(0),
    ))
}

impl Summary {
    /// The bulletin of `[since, until)` from its parts (every backend's summary ends here):
    /// the names first hit in the period (`firsts`, name and first time) with their hits.
    pub fn assemble(
        (since, until): (i64, i64),
        hits: i64,
        figures: IncidentFigures,
        top_offenders: Vec<Offender>,
        firsts: &[(String, i64)],
        hits_of: impl Fn(&str) -> i64,
    ) -> Self {
        let new_names = firsts
            .iter()
            .map(|(name, first)| NewName {
                name: name.clone(),
                first_seen: rfc3339(*first),
                hits: hits_of(name),
            })
            .collect();
        Summary {
            since: rfc3339(since),
            until: rfc3339(until),
            hits,
            incidents_opened: figures.opened,
            incidents_closed: figures.closed,
            incidents_overdue: figures.overdue,
            by_department: figures.by_department,
            top_offenders,
            new_names,
            added: Added::default(),
        }
    }
}
