//! What a lease file parser returns for one chunk of bytes: the evidence, and every line it
//! could not use (with its number and why), as feeds report theirs.

use crate::interval::Event;

/// One record that was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based line number in the file.
    pub line: u64,
    pub reason: String,
}

/// The result of parsing one chunk of a lease file.
#[derive(Debug, Default)]
pub struct Chunk {
    /// Evidence in file order.
    pub events: Vec<Event>,
    /// Records understood but not about an address holder (prefix delegations, ...).
    pub skipped: usize,
    /// Records that could not be read.
    pub rejected: Vec<Rejected>,
    /// Bytes of the chunk that were complete records; the rest is read again with the next
    /// chunk (a record the server is still writing).
    pub consumed: usize,
    /// Lines in the consumed bytes (to number the next chunk's lines).
    pub lines: u64,
}
