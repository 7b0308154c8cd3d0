//! poolguard as a RADIUS accounting server (RFC 2866) for portal and 802.1X logins.
//!
//! The campus NAS (or FreeRADIUS, with a copy of its accounting) sends Accounting-Requests;
//! each from a listed NAS with a valid Request Authenticator is answered and its session
//! becomes evidence. Anything else (an unknown source, a wrong secret, bytes that are not a
//! RADIUS packet) is dropped unanswered, counted in `poolguard_radius_dropped_total`, and
//! never stored: an attacker who can reach the port must not be able to write identities.

pub mod packet;
mod server;
pub mod sessions;

pub use server::{Nas, RadiusServer, SecretError};
