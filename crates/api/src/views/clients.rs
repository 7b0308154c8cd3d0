//! Views of `poolguard_clients` types: identities and ledger load reports.

use serde::Serialize;
use utoipa::ToSchema;

/// A snapshot of who a client was at the moment of a query. Stored with each hit, so later
/// ledger edits never rewrite history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct Identity {
    /// The ledger network that matched (IP or CIDR).
    pub network: Option<String>,
    pub asset: Option<String>,
    pub mac: Option<String>,
    pub kind: Option<String>,
    pub location: Option<String>,
    pub department: Option<String>,
    pub owner: Option<String>,
    pub contact: Option<String>,
    /// The account logged in at the address then (RADIUS), or the ledger row's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The host name the DHCP client sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Which identity sources named the holder (`kea`, `dhcpd`, `radius`, joined by `+`);
    /// absent when the ledger alone identified the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The `[incidents.exempt]` entry that exempted this hit (a staff test machine: no
    /// incident, no quarantine); absent for every other hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exempt: Option<String>,
}

impl From<poolguard_clients::Identity> for Identity {
    fn from(i: poolguard_clients::Identity) -> Self {
        Self {
            network: i.network,
            asset: i.asset,
            mac: i.mac,
            kind: i.kind,
            location: i.location,
            department: i.department,
            owner: i.owner,
            contact: i.contact,
            account: i.account,
            hostname: i.hostname,
            source: i.source,
            exempt: i.exempt,
        }
    }
}

/// One ledger row that was skipped, so ops can fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RejectedRow {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

impl From<poolguard_clients::RejectedRow> for RejectedRow {
    fn from(r: poolguard_clients::RejectedRow) -> Self {
        Self {
            line: r.line,
            reason: r.reason,
        }
    }
}

/// What a load did: how many rows are in effect and which were rejected.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct LoadReport {
    /// Data rows read (header, comments and blank lines aside): `loaded` + rejected rows.
    pub rows: usize,
    /// Networks loaded.
    pub loaded: usize,
    /// Every rejected row with its line number and reason.
    pub rejected: Vec<RejectedRow>,
    /// The encoding the bytes were converted from (`GB18030`); absent for UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoded_from: Option<String>,
}

impl From<poolguard_clients::LoadReport> for LoadReport {
    fn from(r: poolguard_clients::LoadReport) -> Self {
        Self {
            rows: r.rows,
            loaded: r.loaded,
            rejected: super::all(r.rejected),
            decoded_from: r.decoded_from,
        }
    }
}
