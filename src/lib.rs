//! poolguard: a DNS sinkhole resolver that stops cryptocurrency mining on a campus network.
//!
//! The request path flows one way: `dns` (listen, decide, resolve, inspect, answer) consults a
//! `policy` snapshot compiled from `feeds`, and hands one event per query to `record`, which
//! the `store` writer persists with the client's identity from `clients`. The control plane
//! (`api`, feed reloads) builds new snapshots and swaps them in; it never blocks the DNS path.

pub mod api;
pub mod app;
pub mod clients;
pub mod config;
pub mod dns;
pub mod domain;
pub mod export;
pub mod feeds;
pub mod incidents;
pub mod policy;
pub mod record;
pub mod store;
pub mod versions;
