//! Clients: who is behind an IP address, from the campus asset ledger.

use serde::Serialize;

/// A snapshot of who a client was at the moment of a query. Stored with each hit, so later
/// ledger edits never rewrite history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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
}
