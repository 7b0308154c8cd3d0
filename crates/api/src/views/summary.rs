//! Views of the information centre's periodic bulletin (`IncidentStore::summary`).

use poolguard_incidents::report;
use serde::Serialize;
use utoipa::ToSchema;

use super::all;

/// One department's incident figures in a summary.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct DepartmentFigures {
    /// `(unknown)` when the ledger did not know the client.
    pub department: String,
    pub opened: i64,
    pub closed: i64,
    pub overdue: i64,
}

impl From<report::DepartmentFigures> for DepartmentFigures {
    fn from(d: report::DepartmentFigures) -> Self {
        Self {
            department: d.department,
            opened: d.opened,
            closed: d.closed,
            overdue: d.overdue,
        }
    }
}

/// One client in the top-offenders table.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Offender {
    pub client: String,
    pub asset: Option<String>,
    pub department: Option<String>,
    pub hits: i64,
    /// The machines and logins its hits name, busiest first (at most 3).
    pub devices: Vec<OffenderDevice>,
}

/// A device or login that held an offender's address in the period, as its hits recorded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OffenderDevice {
    pub mac: Option<String>,
    pub account: Option<String>,
    pub hostname: Option<String>,
    pub owner: Option<String>,
    /// The identity sources that named it (`kea`, `dhcpd`, `radius`), else `ledger`.
    pub source: String,
    pub hits: i64,
}

impl From<report::OffenderDevice> for OffenderDevice {
    fn from(d: report::OffenderDevice) -> Self {
        Self {
            mac: d.mac,
            account: d.account,
            hostname: d.hostname,
            owner: d.owner,
            source: d.source,
            hits: d.hits,
        }
    }
}

impl From<report::Offender> for Offender {
    fn from(o: report::Offender) -> Self {
        Self {
            client: o.client,
            asset: o.asset,
            department: o.department,
            hits: o.hits,
            devices: all(o.devices),
        }
    }
}

/// A name seen for the first time in the period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NewName {
    pub name: String,
    /// RFC 3339.
    pub first_seen: String,
    pub hits: i64,
}

impl From<report::NewName> for NewName {
    fn from(n: report::NewName) -> Self {
        Self {
            name: n.name,
            first_seen: n.first_seen,
            hits: n.hits,
        }
    }
}

/// The information centre's periodic bulletin.
#[derive(Debug, Clone, Serialize, ToSchema)]
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
    /// Pool names added to the feeds in the period (at most 200, newest first).
    pub added_names: Vec<Listed>,
    /// How many names were added (all of them).
    pub added_names_total: usize,
    /// Addresses that joined the pool address set in the period (at most 200).
    pub added_addresses: Vec<Listed>,
    /// How many addresses joined (all of them).
    pub added_addresses_total: usize,
}

/// A name added to the feeds, or an address to the pool set.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Listed {
    /// The name or the address.
    pub entry: String,
    /// The feed listing the name; for an address, the name whose answer held it.
    pub source: String,
    /// RFC 3339: first listed.
    pub since: String,
}

impl From<report::Listed> for Listed {
    fn from(l: report::Listed) -> Self {
        Self {
            entry: l.entry,
            source: l.source,
            since: l.since,
        }
    }
}

impl From<report::Summary> for Summary {
    fn from(s: report::Summary) -> Self {
        Self {
            since: s.since,
            until: s.until,
            hits: s.hits,
            incidents_opened: s.incidents_opened,
            incidents_closed: s.incidents_closed,
            incidents_overdue: s.incidents_overdue,
            by_department: all(s.by_department),
            top_offenders: all(s.top_offenders),
            new_names: all(s.new_names),
            added_names_total: s.added.names_total,
            added_addresses_total: s.added.addresses_total,
            added_names: all(s.added.names),
            added_addresses: all(s.added.addresses),
        }
    }
}
