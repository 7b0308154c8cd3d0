//! Grouped blocks (version 6): a block's rows stored client by client, with a directory.
//!
//! Why: staff open an incident with a client's history (`/queries?client=<ip>&limit=1000`).
//! A busy writer's block holds thousands of rows from thousands of clients, so a client's
//! thousand rows lie in about a thousand blocks, and even stepping over the other clients'
//! rows (`Entries::next_within`) cost ~200 µs a block: 207 ms at 100 M rows (issue 18). In a
//! grouped block the client's rows are one run found by a binary search in the directory, so
//! a block costs little more than reading it.
//!
//! ```text
//! block     := the version 5 layout, version byte 6, then directory
//! event     := index(varint, as written) + the version 5 row without its client address
//! directory := v4_runs(varint) v6_runs(varint) [addr(4) end(u32 le)]×v4 [addr(16) end(u32 le)]×v6
//! ```
//!
//! Runs are stored in directory order: IPv4 clients first, then IPv6, each part sorted by
//! address (so by `ip_key`); `end` is where the run's rows end in `events`, so a run starts
//! where the one before it ends. Each run's first row's time is relative to the block's base,
//! so a run reads without the rows before it. Rows keep the index they were written with: a
//! row id (`block << 20 | index`) means the same row before and after grouping, and keyset
//! pages taken across the rewrite neither repeat nor miss a row.
//!
//! Size: the address moves from each row to the directory (8 bytes a distinct IPv4 client) and
//! each row gains its index (a varint, 2 bytes above 127 rows); BENCHMARKS.md has the figure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Block, BlockEncoder, BlockError, Entries, Entry, Reader, Want, put_varint};
use crate::ip_key;

const V4_ENTRY: usize = 8;
const V6_ENTRY: usize = 20;

/// A block's data rewritten client by client, or `None` when it already is. Its rows, and so
/// its time range, counts and filter, are the block's own: only the data changes. (The filter
/// is kept, not rebuilt: sized by the keys added, a rebuilt one can come out half as large,
/// with ten times the false positives, for the same rows.)
pub fn regroup(data: &[u8]) -> Result<Option<Vec<u8>>, BlockError> {
    let block = Block::parse(data)?;
    if block.is_grouped() {
        return Ok(None);
    }
    let mut rows: Vec<(bool, [u8; 16], u32, Entry<'_>)> = Vec::with_capacity(block.rows as usize);
    for row in block.entries() {
        let (index, e) = row?;
        rows.push((e.client.is_ipv6(), ip_key(e.client), index, e));
    }
    // Directory order: IPv4 runs, then IPv6, each by address; a run in the order written.
    rows.sort_unstable_by_key(|&(v6, key, index, _)| (v6, key, index));
    let mut enc = BlockEncoder {
        runs: Some(Runs::default()),
        ..BlockEncoder::default()
    };
    for (_, _, index, e) in &rows {
        enc.push_row(*index, e);
    }
    Ok(enc.seal().map(|s| s.data))
}

/// The directory being written: one entry per run, closed when the next client's starts.
#[derive(Default)]
pub(super) struct Runs {
    v4: Vec<u8>,
    v6: Vec<u8>,
    client: Option<IpAddr>,
}

impl Runs {
    /// Starts `client`'s run at `offset` in the events unless it is the current one; true
    /// when a run started.
    pub(super) fn switch(&mut self, client: IpAddr, offset: usize) -> bool {
        if self.client == Some(client) {
            return false;
        }
        self.close(offset);
        self.client = Some(client);
        true
    }

    fn close(&mut self, end: usize) {
        // A block holds at most 2^16 rows of bounded size: far below 4 GiB of events.
        let end = u32::try_from(end).unwrap_or(u32::MAX).to_le_bytes();
        match self.client.take() {
            Some(IpAddr::V4(a)) => {
                self.v4.extend_from_slice(&a.octets());
                self.v4.extend_from_slice(&end);
            }
            Some(IpAddr::V6(a)) => {
                self.v6.extend_from_slice(&a.octets());
                self.v6.extend_from_slice(&end);
            }
            None => {}
        }
    }

    /// Closes the last run and appends the directory to `out`.
    pub(super) fn finish(mut self, events_len: usize, out: &mut Vec<u8>) {
        self.close(events_len);
        put_varint(out, (self.v4.len() / V4_ENTRY) as u64);
        put_varint(out, (self.v6.len() / V6_ENTRY) as u64);
        out.extend_from_slice(&self.v4);
        out.extend_from_slice(&self.v6);
    }
}

/// A grouped block's directory, borrowed from the block.
#[derive(Debug, Clone, Copy)]
pub(super) struct Directory<'a> {
    v4: &'a [u8],
    v6: &'a [u8],
}

impl<'a> Directory<'a> {
    pub(super) fn parse(r: &mut Reader<'a>) -> Result<Self, BlockError> {
        let size = |n: usize, entry: usize| {
            n.checked_mul(entry)
                .ok_or(BlockError::Corrupt("directory size"))
        };
        let (n4, n6) = (r.len()?, r.len()?);
        let v4 = r.take(size(n4, V4_ENTRY)?)?;
        let v6 = r.take(size(n6, V6_ENTRY)?)?;
        Ok(Self { v4, v6 })
    }

    fn v4_runs(&self) -> usize {
        self.v4.len() / V4_ENTRY
    }

    fn runs(&self) -> usize {
        self.v4_runs() + self.v6.len() / V6_ENTRY
    }

    /// Run `i`'s directory entry: its address and where its rows end (`i` < [`Directory::runs`]).
    fn entry(&self, i: usize) -> (&'a [u8], &'a [u8]) {
        match i.checked_sub(self.v4_runs()) {
            None => self.v4[i * V4_ENTRY..][..V4_ENTRY].split_at(4),
            Some(j) => self.v6[j * V6_ENTRY..][..V6_ENTRY].split_at(16),
        }
    }

    /// Run `i`'s client.
    fn client(&self, i: usize) -> IpAddr {
        let addr = self.entry(i).0;
        match <[u8; 16]>::try_from(addr) {
            Ok(a) => IpAddr::V6(Ipv6Addr::from(a)),
            Err(_) => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        }
    }

    /// Where run `i`'s rows end in the events.
    fn end(&self, i: usize) -> usize {
        let end = self.entry(i).1;
        u32::from_le_bytes([end[0], end[1], end[2], end[3]]) as usize
    }

    fn key(&self, i: usize) -> [u8; 16] {
        ip_key(self.client(i))
    }
}

/// Where a walk over a grouped block is: the run being read and the next directory entry.
#[derive(Debug, Default)]
pub(super) struct Run {
    /// The run being read: its directory entry and the end of its rows.
    current: Option<(usize, usize)>,
    /// The next directory entry to consider.
    next_entry: usize,
}

impl<'a> Entries<'_, 'a> {
    /// The next row of a grouped block: every row in stored order, or only those `want`
    /// asks for (clients found through the directory, names by reading rows as far as them).
    pub(super) fn next_grouped(
        &mut self,
        dir: Directory<'a>,
        want: Option<Want<'_>>,
    ) -> Option<Result<(u32, Entry<'a>), BlockError>> {
        loop {
            if let Some((i, end)) = self.run.current {
                if self.offset() < end {
                    let wanted = match want {
                        Some(w @ Want::Name(_)) => self.skip_unless(w, true),
                        _ => Ok(true),
                    };
                    let row = match wanted {
                        Ok(false) => continue,
                        Ok(true) => self.decode_grouped(dir.client(i)),
                        Err(e) => Err(e),
                    };
                    if row.is_err() {
                        // A damaged row makes every later offset meaningless.
                        self.stop(dir);
                    }
                    return Some(row);
                }
                self.run.current = None;
            }
            let at = match want {
                Some(Want::Clients(lo, hi)) => self.next_run_within(dir, lo, hi),
                _ => self.run.next_entry,
            };
            if at >= dir.runs() {
                self.stop(dir);
                return None;
            }
            if let Err(e) = self.enter(dir, at) {
                self.stop(dir);
                return Some(Err(e));
            }
        }
    }

    /// The first run at or after the next entry whose client is within `[lo, hi]`; the
    /// directory's length when there is none. IPv4 and IPv6 runs are sorted apart, so each
    /// part is searched on its own.
    fn next_run_within(&mut self, dir: Directory<'a>, lo: &[u8; 16], hi: &[u8; 16]) -> usize {
        let (v4, all) = (dir.v4_runs(), dir.runs());
        while self.run.next_entry < all {
            let from = self.run.next_entry;
            let part_end = if from < v4 { v4 } else { all };
            // Consecutive matching runs are adjacent: look at the next one before searching.
            let at = if dir.key(from) >= *lo {
                from
            } else {
                let (mut a, mut b) = (from, part_end);
                while a < b {
                    let m = a + (b - a) / 2;
                    if dir.key(m) < *lo { a = m + 1 } else { b = m }
                }
                a
            };
            if at < part_end && dir.key(at) <= *hi {
                return at;
            }
            self.run.next_entry = part_end;
        }
        all
    }

    /// Puts the reader at run `i`'s first row.
    fn enter(&mut self, dir: Directory<'a>, i: usize) -> Result<(), BlockError> {
        let end = dir.end(i);
        let start = match i.checked_sub(1) {
            Some(before) => dir.end(before),
            None => 0,
        };
        let events = self.block.events;
        if start > end || end > events.len() {
            return Err(BlockError::Corrupt("directory"));
        }
        self.r = Reader(&events[start..]);
        self.prev_ms = self.block.base_ms;
        self.run = Run {
            current: Some((i, end)),
            next_entry: i + 1,
        };
        Ok(())
    }

    fn decode_grouped(&mut self, client: IpAddr) -> Result<(u32, Entry<'a>), BlockError> {
        let index = u32::try_from(self.r.varint()?)
            .ok()
            .filter(|&i| i < self.block.rows)
            .ok_or(BlockError::Corrupt("row index"))?;
        self.next += 1;
        Ok((index, self.decode(Some(client))?))
    }

    /// Where the reader is in the block's events.
    fn offset(&self) -> usize {
        self.block.events.len() - self.r.0.len()
    }

    fn stop(&mut self, dir: Directory<'a>) {
        self.run = Run {
            current: None,
            next_entry: dir.runs(),
        };
        self.next = self.block.rows;
    }
}
