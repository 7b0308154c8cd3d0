//! poolguard-model: the vocabulary every layer shares, and nothing else.
//!
//! Names, block actions, feed kinds and formats, severities, incident statuses and their
//! rules, deadlines, parsed-feed results and time formatting. No I/O, no async runtime, no
//! storage: every other crate may depend on this one, and this one on none of them.

pub mod deadline;
pub mod domain;
pub mod feed;
pub mod incident;
pub mod net;
#[cfg(feature = "sqlite")]
mod sql;
pub mod text;
pub mod vocab;

pub use domain::{DomainName, NameError, name_within};
pub use feed::{DomainEntry, LineCounts, ParsedFeed, Rejected, Skipped};
pub use incident::{
    RESOLUTIONS, Status, TransitionError, check_transition, severity_name, severity_rank,
};
pub use text::{neutralise, rfc3339};
pub use vocab::{Action, BYPASS_CATEGORY, FeedFormat, FeedKind, Severity};
