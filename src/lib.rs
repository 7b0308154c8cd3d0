//! poolguard: a DNS sinkhole resolver that stops cryptocurrency mining on a campus network.
//!
//! The program is a workspace whose crate graph is its architecture (docs/ARCHITECTURE.md):
//! `model` and `versions` at the bottom; `config`, `record`, `clients`; `policy`, `identity`; `store`; `feeds`,
//! `incidents`, `dns`, `export`; `api` on top; and this crate, which wires them together
//! (`app`) and holds the binary. Each crate is re-exported here under its short name, so
//! `poolguard::dns::serve` reads the same as it did before the split.

pub mod app;

pub use poolguard_api as api;
pub use poolguard_clients as clients;
pub use poolguard_config as config;
pub use poolguard_console as console;
pub use poolguard_dns as dns;
pub use poolguard_export as export;
pub use poolguard_feeds as feeds;
pub use poolguard_identity as identity;
pub use poolguard_incidents as incidents;
pub use poolguard_model as model;
pub use poolguard_model::domain;
pub use poolguard_policy as policy;
pub use poolguard_record as record;
pub use poolguard_store as store;
pub use poolguard_store_pg as store_pg;
pub use poolguard_versions as versions;
