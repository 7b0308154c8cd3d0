//! Identity: who held an address when.
//!
//! Campus addresses change hands (DHCP pools, portal and 802.1X logins), so a hit at
//! 10.12.3.45 at 02:14 must name the device and account that held 10.12.3.45 *at 02:14*.
//! This crate turns the evidence of the DHCP servers and the NAS into [`Interval`]s held in
//! an [`IdentityIndex`], which the store writer asks for each hit ("who held this address at
//! the hit's time") before the asset ledger says whose that MAC or account is.
//!
//! - [`kea`]: ISC Kea memfile lease files (`lease4`/`lease6` CSV);
//! - [`dhcpd`]: ISC dhcpd `dhcpd.leases`;
//! - [`follow`]: following a lease file through appends and rewrites;
//! - [`radius`]: an RFC 2866 accounting server;
//! - [`sources`]: the tasks the app starts from `[identity]`.
//!
//! docs/IDENTITY.md has the model, its decisions and an example timeline.

pub mod dhcpd;
pub mod exempt;
pub mod follow;
mod index;
mod interval;
pub mod kea;
pub mod parse;
pub mod radius;
pub mod sources;

pub use exempt::{Exempt, ExemptError};
pub use index::{IdentityIndex, IndexStats, Outlet, SharedIdentities};
pub use interval::{Event, Holder, Interval, OPEN, Source, Sources, mac_of_octets, normalise_mac};

/// Now, in the milliseconds since the epoch that hits and intervals carry.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
