//! The block format: many query-log rows in one compact, self-contained byte string.
//!
//! ```text
//! block  := version(u8 = 5) rows(varint) base_ms(zigzag) events_len(varint) events dict×16
//! event  := dt_ms(zigzag, from the previous row) flags(u8) client(4|16) port(u16 le)
//!           [stream(u8: 0 tcp, 1 dot, 2 doh) if flags & TCP]
//!           qtype rcode feed upstream department (varint dictionary codes, 0 = none)
//!           [network asset mac kind location owner contact account hostname source
//!            exempt (codes) if flags & SNAPSHOT]
//!           name(str) [rule(str) if flags & RULE] answer(str) latency_us(varint)
//! dict   := count(varint) str×count          (code n is entry n-1)
//! str    := len(varint) utf-8 bytes
//! flags  := outcome(low 4 bits) | TCP 0x10 | V6 0x20 | RULE 0x40 | SNAPSHOT 0x80
//! ```
//!
//! The writer writes rows as they come (version 5). A settled query-log block is rewritten
//! client by client (version 6, [`grouped`]): the same header and dictionaries, each row
//! prefixed by its index as written (so row ids never change) and without its address, and a
//! directory of the clients after the dictionaries, so a lookup of one client reads its rows
//! alone.
//!
//! Low-cardinality fields are dictionary codes, so a row costs its name, its answer summary
//! and a dozen bytes (about 45 bytes a row against ~300 for an indexed SQLite row). Codes
//! are spelled out here rather than taken from enum discriminants: they are on disk.
//!
//! Version 2 added the ledger snapshot that hits carry as evidence (the same format stores
//! the query log and the hits); version 1 blocks (five dictionaries, no snapshot) still read.
//! Version 3 added the stream byte after the port of TCP rows (DoT and DoH are connections
//! too; the flags byte has no bit left): version 1 and 2 rows with the TCP flag are plain TCP.
//! Version 4 added who held the address at the hit's time (account, host name, and the
//! identity sources that said so; the MAC was already there): versions 2 and 3 have a
//! seven-field snapshot and twelve dictionaries. Version 5 added the `[incidents.exempt]`
//! entry that exempted a hit: version 4 blocks have a ten-field snapshot.

mod grouped;

pub use grouped::regroup;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::filter::{Field, FilterBuilder, name_keys, value_key};
use crate::ip_key;
use poolguard_clients::Identity;
use poolguard_record::{Outcome, QueryEvent, Transport};

const VERSION: u8 = 5;
/// A version 5 block rewritten client by client ([`grouped`]).
const GROUPED: u8 = 6;
/// Blocks written before the exempt mark (a ten-field snapshot).
const VERSION_4: u8 = 4;
/// Blocks written before who held the address (a seven-field snapshot).
const VERSION_3: u8 = 3;
/// Blocks written before the stream byte (DoT, DoH): no byte after the port.
const VERSION_2: u8 = 2;
/// Blocks written before the snapshot fields (schema 6–7).
const VERSION_1: u8 = 1;
/// Snapshot fields in a version 2 or 3 block.
const SNAPSHOT_FIELDS_V2: usize = 7;
/// Snapshot fields in a version 4 block.
const SNAPSHOT_FIELDS_V4: usize = 10;
const TCP: u8 = 0x10;
const V6: u8 = 0x20;
const RULE: u8 = 0x40;
const SNAPSHOT: u8 = 0x80;

/// Outcomes in on-disk code order; a code is the index here. New outcomes are appended (the
/// flags byte has room for 16), so blocks written before them read unchanged.
pub const OUTCOMES: [Outcome; 11] = [
    Outcome::Allowed,
    Outcome::Allowlisted,
    Outcome::Blocked,
    Outcome::CnameBlocked,
    Outcome::IpBlocked,
    Outcome::Local,
    Outcome::Servfail,
    Outcome::Refused,
    Outcome::Formerr,
    Outcome::Quarantined,
    Outcome::Logged,
];

/// The on-disk code of an outcome.
pub fn outcome_code(o: Outcome) -> u8 {
    OUTCOMES.iter().position(|x| *x == o).unwrap_or(0) as u8
}

/// Why a stored block could not be read. Blocks are written only by this module, so any of
/// these means a damaged file (or a newer poolguard's format).
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("log block is damaged: {0}")]
    Corrupt(&'static str),
    #[error("log block has format version {0}; this build reads versions 1 to {GROUPED}")]
    Version(u8),
}

/// One row as the block stores it, borrowed from an event or from a decoded block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry<'a> {
    pub time_ms: i64,
    pub client: IpAddr,
    pub port: u16,
    pub transport: Transport,
    pub outcome: Outcome,
    pub name: &'a str,
    pub qtype: &'a str,
    pub feed: Option<&'a str>,
    pub rule: Option<&'a str>,
    pub rcode: &'a str,
    pub answer: &'a str,
    pub latency_us: u32,
    pub upstream: Option<&'a str>,
    pub department: Option<&'a str>,
    /// The ledger identity at write time; hits carry it, query-log rows do not.
    pub snapshot: Option<Snapshot<'a>>,
}

/// A hit's ledger identity snapshot (its department is [`Entry::department`]). Kept with the
/// hit so later ledger edits never rewrite evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot<'a> {
    pub network: Option<&'a str>,
    pub asset: Option<&'a str>,
    pub mac: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub location: Option<&'a str>,
    pub owner: Option<&'a str>,
    pub contact: Option<&'a str>,
    /// The account that held the address then (RADIUS), or the ledger row's.
    pub account: Option<&'a str>,
    pub hostname: Option<&'a str>,
    /// The identity sources that knew the holder (`kea`, `dhcpd+radius`); None: ledger only.
    pub source: Option<&'a str>,
    /// The `[incidents.exempt]` entry that exempted the hit.
    pub exempt: Option<&'a str>,
}

impl<'a> Snapshot<'a> {
    /// The snapshot of a ledger identity.
    pub fn of(i: &'a Identity) -> Self {
        Self {
            network: i.network.as_deref(),
            asset: i.asset.as_deref(),
            mac: i.mac.as_deref(),
            kind: i.kind.as_deref(),
            location: i.location.as_deref(),
            owner: i.owner.as_deref(),
            contact: i.contact.as_deref(),
            account: i.account.as_deref(),
            hostname: i.hostname.as_deref(),
            source: i.source.as_deref(),
            exempt: i.exempt.as_deref(),
        }
    }

    /// The owned identity, with `department` from the row.
    pub fn identity(&self, department: Option<&str>) -> Identity {
        let own = |v: Option<&str>| v.map(str::to_string);
        Identity {
            network: own(self.network),
            asset: own(self.asset),
            mac: own(self.mac),
            kind: own(self.kind),
            location: own(self.location),
            department: own(department),
            owner: own(self.owner),
            contact: own(self.contact),
            account: own(self.account),
            hostname: own(self.hostname),
            source: own(self.source),
            exempt: own(self.exempt),
        }
    }

    /// The inverse of [`Snapshot::fields`].
    fn from_fields(f: [Option<&'a str>; SNAPSHOT_FIELDS]) -> Self {
        Self {
            network: f[0],
            asset: f[1],
            mac: f[2],
            kind: f[3],
            location: f[4],
            owner: f[5],
            contact: f[6],
            account: f[7],
            hostname: f[8],
            source: f[9],
            exempt: f[10],
        }
    }

    fn fields(&self) -> [Option<&'a str>; SNAPSHOT_FIELDS] {
        [
            self.network,
            self.asset,
            self.mac,
            self.kind,
            self.location,
            self.owner,
            self.contact,
            self.account,
            self.hostname,
            self.source,
            self.exempt,
        ]
    }
}

impl<'a> Entry<'a> {
    /// The row of `e`, with the client's department from the ledger at write time.
    pub fn of(e: &'a QueryEvent, department: Option<&'a str>) -> Self {
        Self {
            time_ms: e.time_ms,
            client: e.client.ip().to_canonical(),
            port: e.client.port(),
            transport: e.transport,
            outcome: e.outcome,
            name: &e.name,
            qtype: &e.qtype,
            feed: e.feed.as_deref(),
            rule: e.rule.as_deref(),
            rcode: e.rcode,
            answer: &e.answer,
            latency_us: e.latency_us,
            upstream: e.upstream.as_deref(),
            department,
            snapshot: None,
        }
    }

    /// The hit row of `e`: its department and the whole identity snapshot from the ledger
    /// (an empty one when the ledger does not know the client: a hit always has a snapshot).
    pub fn hit(e: &'a QueryEvent, identity: Option<&'a Identity>) -> Self {
        Self {
            snapshot: Some(identity.map(Snapshot::of).unwrap_or_default()),
            ..Self::of(e, identity.and_then(|i| i.department.as_deref()))
        }
    }
}

/// Dictionary slots, in on-disk order.
const QTYPE: usize = 0;
const RCODE: usize = 1;
const FEED: usize = 2;
const UPSTREAM: usize = 3;
const DEPARTMENT: usize = 4;
/// The snapshot's eleven fields take slots 5..16, in [`Snapshot::fields`] order.
const SNAPSHOT_FIRST: usize = 5;
const SNAPSHOT_FIELDS: usize = 11;
const DICTS: usize = SNAPSHOT_FIRST + SNAPSHOT_FIELDS;
/// Dictionaries in a version 1 block.
const DICTS_V1: usize = 5;

/// One field's dictionary. `last` short-cuts the common run of equal values.
#[derive(Default)]
struct Dict {
    values: Vec<Box<str>>,
    index: HashMap<Box<str>, u32, foldhash::fast::FixedState>,
    last: u32,
}

impl Dict {
    /// The code of `v` (0 for none); `fresh` is called once per new value.
    #[inline]
    fn code(&mut self, v: Option<&str>, fresh: impl FnOnce(&str)) -> u32 {
        let Some(v) = v else { return 0 };
        if self.last != 0 && *self.values[self.last as usize - 1] == *v {
            return self.last;
        }
        let code = match self.index.get(v) {
            Some(&c) => c,
            None => {
                self.values.push(v.into());
                let c = self.values.len() as u32;
                self.index.insert(v.into(), c);
                fresh(v);
                c
            }
        };
        self.last = code;
        code
    }
}

/// A sealed block, ready for its table row.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub first_ms: i64,
    pub last_ms: i64,
    pub rows: u32,
    /// Rows per outcome, as varints in [`OUTCOMES`] order (stats read it without decoding).
    pub counts: Vec<u8>,
    pub filter: Vec<u8>,
    pub data: Vec<u8>,
    /// Each row's exact-name key (`filter::name_key`), repeats included: the writer hands
    /// them to `crate::hour_names` so the hour under way's names need no decode.
    pub names: Vec<u64>,
}

/// Builds one block row by row.
#[derive(Default)]
pub struct BlockEncoder {
    events: Vec<u8>,
    dicts: [Dict; DICTS_V1],
    snapshot_dicts: [Dict; SNAPSHOT_FIELDS],
    filter: FilterBuilder,
    /// [`Sealed::names`].
    names: Vec<u64>,
    rows: u32,
    base_ms: i64,
    prev_ms: i64,
    first_ms: i64,
    last_ms: i64,
    counts: [u32; OUTCOMES.len()],
    last_client: Option<IpAddr>,
    /// Writing a grouped block: its clients' runs so far.
    runs: Option<grouped::Runs>,
}

impl BlockEncoder {
    /// Rows added so far.
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Appends one row.
    pub fn push(&mut self, e: &Entry<'_>) {
        self.push_row(self.rows, e);
    }

    /// Appends one row; a grouped block stores its `index` as written.
    fn push_row(&mut self, index: u32, e: &Entry<'_>) {
        if self.rows == 0 {
            self.base_ms = e.time_ms;
            self.prev_ms = e.time_ms;
            self.first_ms = e.time_ms;
            self.last_ms = e.time_ms;
        }
        self.rows += 1;
        self.first_ms = self.first_ms.min(e.time_ms);
        self.last_ms = self.last_ms.max(e.time_ms);
        let code = outcome_code(e.outcome);
        self.counts[code as usize] += 1;

        if let Some(runs) = &mut self.runs {
            // Each client's run starts from the block's base time, so it reads on its own.
            if runs.switch(e.client, self.events.len()) {
                self.prev_ms = self.base_ms;
            }
            put_varint(&mut self.events, u64::from(index));
        }
        let grouped = self.runs.is_some();
        let out = &mut self.events;
        put_zigzag(out, e.time_ms.wrapping_sub(self.prev_ms));
        self.prev_ms = e.time_ms;
        let mut flags = code;
        if e.transport.is_stream() {
            flags |= TCP;
        }
        if e.client.is_ipv6() {
            flags |= V6;
        }
        if e.rule.is_some() {
            flags |= RULE;
        }
        if e.snapshot.is_some() {
            flags |= SNAPSHOT;
        }
        out.push(flags);
        match e.client {
            // A grouped block names the client once, in its directory.
            _ if grouped => {}
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
        out.extend_from_slice(&e.port.to_le_bytes());
        match e.transport {
            Transport::Udp => {}
            Transport::Tcp => out.push(0),
            Transport::Dot => out.push(1),
            Transport::Doh => out.push(2),
        }

        let filter = &mut self.filter;
        let [qtype, rcode, feed, upstream, department] = &mut self.dicts;
        let codes = [
            qtype.code(Some(e.qtype), |v| {
                filter.add(value_key(Field::QueryType, v.as_bytes()))
            }),
            rcode.code(Some(e.rcode), |_| {}),
            feed.code(e.feed, |v| filter.add(value_key(Field::Feed, v.as_bytes()))),
            upstream.code(e.upstream, |_| {}),
            department.code(e.department, |v| {
                filter.add(value_key(Field::Department, v.as_bytes()))
            }),
        ];
        for c in codes {
            put_varint(out, u64::from(c));
        }
        if let Some(s) = &e.snapshot {
            for (slot, (dict, v)) in self.snapshot_dicts.iter_mut().zip(s.fields()).enumerate() {
                let c = dict.code(v, |v| match slot {
                    1 => filter.add(value_key(Field::Asset, v.as_bytes())),
                    2 => filter.add(value_key(Field::Mac, v.as_bytes())),
                    7 => filter.add(value_key(Field::Account, v.to_lowercase().as_bytes())),
                    _ => {}
                });
                put_varint(out, u64::from(c));
            }
        }
        put_str(out, e.name);
        if let Some(rule) = e.rule {
            put_str(out, rule);
        }
        put_str(out, e.answer);
        put_varint(out, u64::from(e.latency_us));

        if self.last_client != Some(e.client) {
            self.last_client = Some(e.client);
            filter.add(value_key(Field::Client, &ip_key(e.client)));
        }
        // The last key is the whole name's.
        let mut exact = 0;
        name_keys(e.name, |k| {
            filter.add(k);
            exact = k;
        });
        self.names.push(exact);
    }

    /// The finished block, or `None` when no row was added.
    pub fn seal(self) -> Option<Sealed> {
        if self.rows == 0 {
            return None;
        }
        let mut data = Vec::with_capacity(self.events.len() + 64);
        data.push(if self.runs.is_some() {
            GROUPED
        } else {
            VERSION
        });
        put_varint(&mut data, u64::from(self.rows));
        put_zigzag(&mut data, self.base_ms);
        put_varint(&mut data, self.events.len() as u64);
        data.extend_from_slice(&self.events);
        for dict in self.dicts.iter().chain(&self.snapshot_dicts) {
            put_varint(&mut data, dict.values.len() as u64);
            for v in &dict.values {
                put_str(&mut data, v);
            }
        }
        if let Some(runs) = self.runs {
            runs.finish(self.events.len(), &mut data);
        }
        let mut counts = Vec::with_capacity(OUTCOMES.len());
        for c in self.counts {
            put_varint(&mut counts, u64::from(c));
        }
        Some(Sealed {
            first_ms: self.first_ms,
            last_ms: self.last_ms,
            rows: self.rows,
            counts,
            filter: self.filter.finish(),
            data,
            names: self.names,
        })
    }
}

/// Rows per outcome from a block's `counts` column, in [`OUTCOMES`] order.
pub fn read_counts(bytes: &[u8]) -> Result<[u64; OUTCOMES.len()], BlockError> {
    let mut r = Reader(bytes);
    let mut out = [0u64; OUTCOMES.len()];
    for slot in &mut out {
        *slot = r.varint()?;
    }
    Ok(out)
}

/// A parsed block: its dictionaries, and its rows to iterate.
pub struct Block<'a> {
    /// Snapshot fields each row with a snapshot has (by format version).
    snapshot_fields: usize,
    rows: u32,
    base_ms: i64,
    events: &'a [u8],
    dicts: [Vec<&'a str>; DICTS],
    /// Version 3 on: TCP-flagged rows carry the stream byte (TCP, DoT, DoH).
    stream_byte: bool,
    /// A grouped block's clients (version 6).
    directory: Option<grouped::Directory<'a>>,
}

impl<'a> Block<'a> {
    /// Reads a block's header and dictionaries; rows are decoded as they are iterated.
    pub fn parse(data: &'a [u8]) -> Result<Self, BlockError> {
        let mut r = Reader(data);
        let version = r.byte()?;
        let (n_dicts, snapshot_fields) = match version {
            VERSION | GROUPED => (DICTS, SNAPSHOT_FIELDS),
            VERSION_4 => (SNAPSHOT_FIRST + SNAPSHOT_FIELDS_V4, SNAPSHOT_FIELDS_V4),
            VERSION_3 | VERSION_2 => (SNAPSHOT_FIRST + SNAPSHOT_FIELDS_V2, SNAPSHOT_FIELDS_V2),
            VERSION_1 => (DICTS_V1, 0),
            v => return Err(BlockError::Version(v)),
        };
        let rows = u32::try_from(r.varint()?).map_err(|_| BlockError::Corrupt("row count"))?;
        let base_ms = r.zigzag()?;
        let len = r.len()?;
        let events = r.take(len)?;
        let mut dicts: [Vec<&'a str>; DICTS] = Default::default();
        for dict in dicts.iter_mut().take(n_dicts) {
            let n = r.len()?;
            // Each entry takes at least one byte: a count larger than the rest is damage.
            if n > r.0.len() {
                return Err(BlockError::Corrupt("dictionary size"));
            }
            dict.reserve(n);
            for _ in 0..n {
                dict.push(r.str()?);
            }
        }
        let directory = if version == GROUPED {
            Some(grouped::Directory::parse(&mut r)?)
        } else {
            None
        };
        Ok(Self {
            snapshot_fields,
            stream_byte: version >= VERSION_3,
            rows,
            base_ms,
            events,
            dicts,
            directory,
        })
    }

    /// Whether the rows are stored client by client (version 6): in [`Block::entries`]
    /// order, row indices do not ascend.
    pub fn is_grouped(&self) -> bool {
        self.directory.is_some()
    }

    /// Every row in the order it was written (index order), for re-encoding a block without
    /// changing the order of its rows' ids.
    pub fn rows_as_written(&self) -> Result<Vec<(u32, Entry<'a>)>, BlockError> {
        let mut rows: Vec<(u32, Entry<'a>)> = self.entries().collect::<Result<_, _>>()?;
        if self.is_grouped() {
            rows.sort_unstable_by_key(|&(index, _)| index);
        }
        Ok(rows)
    }

    /// Number of rows.
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// The rows in stored order, each with its index in the block: the order they were
    /// written, but client by client in a grouped block.
    pub fn entries(&self) -> Entries<'_, 'a> {
        Entries {
            block: self,
            r: Reader(self.events),
            prev_ms: self.base_ms,
            next: 0,
            run: grouped::Run::default(),
        }
    }

    fn lookup(&self, dict: usize, code: u64) -> Result<Option<&'a str>, BlockError> {
        if code == 0 {
            return Ok(None);
        }
        self.dicts[dict]
            .get(code as usize - 1)
            .copied()
            .map(Some)
            .ok_or(BlockError::Corrupt("dictionary code"))
    }
}

/// What a skipping walk ([`Entries::next_within`], [`Entries::next_named`]) looks for.
#[derive(Debug, Clone, Copy)]
enum Want<'w> {
    /// Rows whose client key is within `[lo, hi]`.
    Clients(&'w [u8; 16], &'w [u8; 16]),
    /// Rows with exactly this name.
    Name(&'w [u8]),
}

/// Iterator over a block's rows; stops at the first damaged row.
pub struct Entries<'b, 'a> {
    block: &'b Block<'a>,
    r: Reader<'a>,
    prev_ms: i64,
    /// Rows read so far (in a block as written, the next row's index).
    next: u32,
    /// In a grouped block, where the walk over the directory is.
    run: grouped::Run,
}

impl<'a> Iterator for Entries<'_, 'a> {
    type Item = Result<(u32, Entry<'a>), BlockError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.block.rows {
            return None;
        }
        if let Some(dir) = self.block.directory {
            return self.next_grouped(dir, None);
        }
        let index = self.next;
        self.next += 1;
        let entry = self.decode(None);
        if entry.is_err() {
            // A damaged row makes every later offset meaningless.
            self.next = self.block.rows;
        }
        Some(entry.map(|e| (index, e)))
    }
}

impl<'a> Entries<'_, 'a> {
    /// The next row whose client key ([`ip_key`]) is within `[lo, hi]`. The rows before it are
    /// skipped without decoding their strings and codes: a one-address lookup reads blocks in
    /// which that address is a few rows among thousands (issue 18, a client's history).
    pub fn next_within(
        &mut self,
        lo: &[u8; 16],
        hi: &[u8; 16],
    ) -> Option<Result<(u32, Entry<'a>), BlockError>> {
        self.next_wanted(Want::Clients(lo, hi))
    }

    /// The next row named exactly `name`: the rows before it are read only as far as their
    /// name (a name lookup decodes every block its filter lets through).
    pub fn next_named(&mut self, name: &str) -> Option<Result<(u32, Entry<'a>), BlockError>> {
        self.next_wanted(Want::Name(name.as_bytes()))
    }

    fn next_wanted(&mut self, want: Want<'_>) -> Option<Result<(u32, Entry<'a>), BlockError>> {
        if let Some(dir) = self.block.directory {
            return self.next_grouped(dir, Some(want));
        }
        while self.next < self.block.rows {
            match self.skip_unless(want, false) {
                Ok(true) => return self.next(),
                Ok(false) => {}
                Err(e) => {
                    self.next = self.block.rows;
                    return Some(Err(e));
                }
            }
        }
        None
    }

    /// Looks at the next row as far as `want` needs: a wanted row is left to be decoded
    /// (true); any other is stepped over, keeping the running time (false). A `grouped` block's
    /// rows have an index and no address (the run names the client).
    fn skip_unless(&mut self, want: Want<'_>, grouped: bool) -> Result<bool, BlockError> {
        let mut r = Reader(self.r.0);
        if grouped {
            r.varint()?;
        }
        let time_ms = self.prev_ms.wrapping_add(r.zigzag()?);
        let flags = r.byte()?;
        if !grouped {
            let key = ip_key(r.address(flags)?);
            if let Want::Clients(lo, hi) = want
                && lo <= &key
                && &key <= hi
            {
                return Ok(true);
            }
        }
        let b = self.block;
        r.take(2)?;
        if flags & TCP != 0 && b.stream_byte {
            r.byte()?;
        }
        // qtype, rcode, feed, upstream, department; then the snapshot's codes.
        for _ in 0..5 {
            r.varint()?;
        }
        if flags & SNAPSHOT != 0 {
            for _ in 0..b.snapshot_fields {
                r.varint()?;
            }
        }
        let len = r.len()?;
        let name = r.take(len)?;
        if let Want::Name(n) = want
            && name == n
        {
            return Ok(true);
        }
        if flags & RULE != 0 {
            r.skip_str()?;
        }
        r.skip_str()?;
        r.varint()?;
        self.r = r;
        self.prev_ms = time_ms;
        self.next += 1;
        Ok(false)
    }

    /// Decodes the row at the reader; a grouped block's rows leave their `client` to the run.
    fn decode(&mut self, client: Option<IpAddr>) -> Result<Entry<'a>, BlockError> {
        let r = &mut self.r;
        let time_ms = self.prev_ms.wrapping_add(r.zigzag()?);
        self.prev_ms = time_ms;
        let flags = r.byte()?;
        let outcome = *OUTCOMES
            .get(usize::from(flags & 0x0f))
            .ok_or(BlockError::Corrupt("outcome"))?;
        let client = match client {
            Some(c) => c,
            None => r.address(flags)?,
        };
        let p = r.take(2)?;
        let port = u16::from_le_bytes([p[0], p[1]]);
        let b = self.block;
        let transport = match (flags & TCP != 0, b.stream_byte) {
            (false, _) => Transport::Udp,
            (true, false) => Transport::Tcp,
            (true, true) => match r.byte()? {
                0 => Transport::Tcp,
                1 => Transport::Dot,
                2 => Transport::Doh,
                _ => return Err(BlockError::Corrupt("transport")),
            },
        };
        let qtype = b.lookup(QTYPE, r.varint()?)?.unwrap_or("");
        let rcode = b.lookup(RCODE, r.varint()?)?.unwrap_or("");
        let feed = b.lookup(FEED, r.varint()?)?;
        let upstream = b.lookup(UPSTREAM, r.varint()?)?;
        let department = b.lookup(DEPARTMENT, r.varint()?)?;
        let snapshot = if flags & SNAPSHOT != 0 {
            let mut f = [None; SNAPSHOT_FIELDS];
            for (i, slot) in f.iter_mut().take(b.snapshot_fields).enumerate() {
                *slot = b.lookup(SNAPSHOT_FIRST + i, r.varint()?)?;
            }
            Some(Snapshot::from_fields(f))
        } else {
            None
        };
        let name = r.str()?;
        let rule = if flags & RULE != 0 {
            Some(r.str()?)
        } else {
            None
        };
        let answer = r.str()?;
        let latency_us = u32::try_from(r.varint()?).map_err(|_| BlockError::Corrupt("latency"))?;
        Ok(Entry {
            time_ms,
            client,
            port,
            transport,
            outcome,
            name,
            qtype,
            feed,
            rule,
            rcode,
            answer,
            latency_us,
            upstream,
            department,
            snapshot,
        })
    }
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A bounds-checked cursor over untrusted bytes.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn byte(&mut self) -> Result<u8, BlockError> {
        let (&b, rest) = self
            .0
            .split_first()
            .ok_or(BlockError::Corrupt("truncated"))?;
        self.0 = rest;
        Ok(b)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, BlockError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(BlockError::Corrupt("varint too long"))
    }

    fn zigzag(&mut self) -> Result<i64, BlockError> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn len(&mut self) -> Result<usize, BlockError> {
        usize::try_from(self.varint()?).map_err(|_| BlockError::Corrupt("length"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BlockError> {
        if n > self.0.len() {
            return Err(BlockError::Corrupt("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, BlockError> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).map_err(|_| BlockError::Corrupt("text"))
    }

    /// A row's client address: 16 bytes when its flags say V6, else 4.
    fn address(&mut self, flags: u8) -> Result<IpAddr, BlockError> {
        let bad = |_| BlockError::Corrupt("address");
        Ok(if flags & V6 != 0 {
            let b: [u8; 16] = self.take(16)?.try_into().map_err(bad)?;
            IpAddr::V6(Ipv6Addr::from(b))
        } else {
            let b: [u8; 4] = self.take(4)?.try_into().map_err(bad)?;
            IpAddr::V4(Ipv4Addr::from(b))
        })
    }

    /// Steps over a string without checking it (a skipped row's).
    fn skip_str(&mut self) -> Result<(), BlockError> {
        let n = self.len()?;
        self.take(n).map(|_| ())
    }
}

#[cfg(test)]
mod tests;
