//! Clients: who is behind an IP address, from the campus asset ledger.
//!
//! The ledger is a CSV file that network ops already keep (`network,mac,asset,kind,location,
//! department,owner,contact`, optionally `,account`). Rows with a network say who an address
//! is; rows with only a MAC or an account say whose a device or login is, for addresses that
//! DHCP and RADIUS hand out (`poolguard_identity`). It is parsed once into an immutable [`Ledger`] (a longest-prefix
//! table) and published through [`SharedLedger`], an `ArcSwap`: the store writer reads the
//! current snapshot lock-free for every event, and a reload swaps a whole new table in.
//! Replacing the file over the API, with its version history, is [`upload`]'s job.

mod ledger;
pub mod upload;

pub use ledger::{
    Decoded, Ledger, LedgerError, LoadReport, RejectedRow, SharedLedger, decode, reload,
};
pub use upload::{LedgerUploads, LedgerWrite, UploadError};

/// A snapshot of who a client was at the moment of a query. Stored with each hit, so later
/// ledger edits never rewrite history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// The account logged in at the address (RADIUS), or the ledger row's account.
    pub account: Option<String>,
    /// The host name the DHCP client sent.
    pub hostname: Option<String>,
    /// Where MAC, account and host name came from: `ledger`, or the identity sources that
    /// knew who held the address then (`kea`, `dhcpd`, `radius`, joined by `+`).
    pub source: Option<String>,
    /// The `[incidents.exempt]` entry that exempted the hit (`10.9.0.0/24`, `mac:…`,
    /// `account:…`): a staff test machine; its hits open no incident.
    pub exempt: Option<String>,
}
