//! The API's view types: what the HTTP API serialises and the OpenAPI document describes.
//!
//! The domain crates (model, clients, store, feeds, incidents, versions) know nothing of the
//! HTTP schema; each type here mirrors one domain type field for field (same names, same order,
//! same schema name) and converts from it with `From`, so the JSON clients see is unchanged
//! while the schema lives only at the API edge.

pub mod clients;
pub mod feeds;
pub mod store;
pub mod summary;

pub use clients::{Identity, LoadReport, RejectedRow};
pub use feeds::{
    CheckReport, FeedView, FetchStatus, LineCounts, Rejected, Skipped, Version, WriteReport,
};
pub use store::{
    AuditEntry, Count, DeadlineState, Delivery, Note, QuarantineEntry, ShipStatus, WriterStatus,
};
pub use summary::{DepartmentFigures, Listed, NewName, Offender, OffenderDevice, Summary};

/// Converts every element, for `Vec` fields of views.
pub(crate) fn all<T, V: From<T>>(items: Vec<T>) -> Vec<V> {
    items.into_iter().map(V::from).collect()
}
