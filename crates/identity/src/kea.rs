//! ISC Kea memfile lease files (`kea-leases4.csv`, `kea-leases6.csv`) → [`Event`]s.
//!
//! Kea appends a row on every change of a lease (grant, renewal, release, reclamation), so
//! the file is a history; its lease file cleanup (LFC) periodically rewrites it with the
//! newest row of each lease. Columns are found by the header, not by position: newer Kea
//! versions added `user_context`, `pool_id`, `hwtype`, `hwaddr_source`, and may add more.
//!
//! - A lease held (`state` 0, `valid_lifetime` > 0) is held from `expire − valid_lifetime`
//!   (the client's last transmission) to `expire`; `valid_lifetime` 4294967295 never ends.
//! - A declined address (`state` 1) is held by nobody from then on.
//! - An expired-reclaimed lease (`state` 2) ended at its `expire`.
//! - A released/deleted lease (`state` 3, or the `valid_lifetime` 0 row Kea appends when it
//!   deletes one) ended when the row was written: at the moment it is read when the file is
//!   followed live, else at `expire` (Kea does not record the release time).
//! - IPv6 prefix delegations (`lease_type` 2) name a prefix, not an address: skipped.

use std::net::IpAddr;
use std::sync::Arc;

use crate::interval::{Event, Interval, OPEN, Source, mac_of_octets, normalise_mac};
use crate::parse::{Chunk, Rejected};

/// Kea's "infinite" valid lifetime.
const INFINITE: u64 = 0xffff_ffff;

/// Column positions of one lease file, from its header.
#[derive(Debug, Clone, Default)]
struct Columns {
    address: usize,
    hwaddr: Option<usize>,
    client_id: Option<usize>,
    valid_lifetime: usize,
    expire: usize,
    hostname: Option<usize>,
    state: Option<usize>,
    lease_type: Option<usize>,
}

impl Columns {
    fn from_header(fields: &csv::StringRecord) -> Result<Self, String> {
        let find = |name: &str| fields.iter().position(|f| f.trim() == name);
        let need = |name: &str| {
            find(name).ok_or_else(|| {
                format!("the header has no `{name}` column: is this a Kea memfile lease file?")
            })
        };
        Ok(Self {
            address: need("address")?,
            hwaddr: find("hwaddr"),
            client_id: find("client_id"),
            valid_lifetime: need("valid_lifetime")?,
            expire: need("expire")?,
            hostname: find("hostname"),
            state: find("state"),
            lease_type: find("lease_type"),
        })
    }
}

/// Parses a Kea lease file as it grows; keeps the header between chunks.
#[derive(Debug, Default)]
pub struct KeaParser {
    columns: Option<Columns>,
}

impl KeaParser {
    /// Forgets the header: the file was rewritten and starts over.
    pub fn reset(&mut self) {
        self.columns = None;
    }

    /// Parses the complete lines of `bytes` (a trailing partial line is left for the next
    /// chunk). `first_line` numbers the chunk's first line; `now_ms` is set when the rows are
    /// read as they are written (see the module doc on releases).
    pub fn parse(&mut self, bytes: &[u8], first_line: u64, now_ms: Option<i64>) -> Chunk {
        let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut chunk = Chunk {
            consumed: end,
            lines: bytes[..end].iter().filter(|&&b| b == b'\n').count() as u64,
            ..Chunk::default()
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(&bytes[..end]);
        let mut record = csv::StringRecord::new();
        loop {
            let line = first_line + reader.position().line().saturating_sub(1);
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    chunk.rejected.push(Rejected {
                        line,
                        reason: e.to_string(),
                    });
                    continue;
                }
            }
            if record.get(0).is_some_and(|f| f.trim() == "address") {
                match Columns::from_header(&record) {
                    Ok(c) => self.columns = Some(c),
                    Err(reason) => chunk.rejected.push(Rejected { line, reason }),
                }
                continue;
            }
            let Some(columns) = &self.columns else {
                chunk.rejected.push(Rejected {
                    line,
                    reason: "a lease row before the header line (`address,...`)".into(),
                });
                continue;
            };
            match row(columns, &record, now_ms) {
                Ok(Some(event)) => chunk.events.push(event),
                Ok(None) => chunk.skipped += 1,
                Err(reason) => chunk.rejected.push(Rejected { line, reason }),
            }
        }
        chunk
    }
}

/// Kea escapes commas in text fields as `&#x2c`.
fn unescape(text: &str) -> Arc<str> {
    if text.contains("&#x2c") {
        text.replace("&#x2c", ",").into()
    } else {
        text.into()
    }
}

fn row(c: &Columns, r: &csv::StringRecord, now_ms: Option<i64>) -> Result<Option<Event>, String> {
    let field = |i: usize| r.get(i).map(str::trim).unwrap_or("");
    let opt = |i: Option<usize>| i.map(field).filter(|v| !v.is_empty());
    let address = field(c.address);
    let addr: IpAddr = address
        .parse()
        .map_err(|_| format!("`{address}` is not an IP address"))?;
    let number = |i: usize, name: &str| {
        field(i)
            .parse::<u64>()
            .map_err(|_| format!("{name} `{}` is not a number", field(i)))
    };
    let valid = number(c.valid_lifetime, "valid_lifetime")?;
    let expire = number(c.expire, "expire")?;
    let state = match opt(c.state) {
        Some(s) => s
            .parse::<u8>()
            .map_err(|_| format!("state `{s}` is not a number"))?,
        None => 0,
    };
    if opt(c.lease_type).is_some_and(|t| t == "2") {
        return Ok(None);
    }
    let secs = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(OPEN);
    let expire_ms = secs(expire);
    let mac = opt(c.hwaddr).and_then(normalise_mac).or_else(|| {
        // A DHCPv4 client id of hardware type 1 is `01:` and the MAC.
        let id = opt(c.client_id)?;
        let octets = parse_hex(id)?;
        match octets.split_first() {
            Some((1, rest)) if rest.len() == 6 => mac_of_octets(rest),
            _ => None,
        }
    });
    let ended = |at_ms: i64, mac: Option<Arc<str>>| Event::Ended {
        addr,
        at_ms,
        mac,
        source: Source::Kea,
    };
    Ok(Some(match state {
        0 if valid > 0 => {
            let (start_ms, end_ms) = if valid >= INFINITE {
                (expire_ms.saturating_sub(secs(valid)), OPEN)
            } else {
                (expire_ms.saturating_sub(secs(valid)), expire_ms)
            };
            Event::Held(Interval {
                addr,
                start_ms,
                end_ms,
                mac,
                account: None,
                hostname: opt(c.hostname).map(unescape),
                source: Source::Kea,
            })
        }
        1 => ended(expire_ms.saturating_sub(secs(valid)), None),
        2 => ended(expire_ms, mac),
        0 | 3 => ended(now_ms.unwrap_or(expire_ms), mac),
        other => return Err(format!("state `{other}` is not a Kea lease state (0-3)")),
    }))
}

/// `01:aa:bb` (Kea's spelling of binary columns) as octets.
fn parse_hex(text: &str) -> Option<Vec<u8>> {
    text.split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id\n";

    fn held(e: &Event) -> &Interval {
        match e {
            Event::Held(i) => i,
            other => panic!("not a holding: {other:?}"),
        }
    }

    #[test]
    fn lease4_rows_become_holdings_and_ends() {
        let text = format!(
            "{V4}10.213.1.10,00:1A:2B:3C:4D:5E,01:00:1a:2b:3c:4d:5e,3600,1765101600,1,0,0,laptop&#x2c x,0,,0\n\
             10.213.1.11,,01:00:1a:2b:3c:4d:5f,3600,1765101600,1,0,0,,0,,0\n\
             10.213.1.10,00:1a:2b:3c:4d:5e,,3600,1765101600,1,0,0,,2,,0\n\
             10.213.1.12,,,3600,1765101600,1,0,0,,1,,0\n\
             10.213.1.13,00:1a:2b:3c:4d:60,,0,1765100000,1,0,0,,0,,0\n"
        );
        let chunk = KeaParser::default().parse(text.as_bytes(), 1, None);
        assert!(chunk.rejected.is_empty(), "{:?}", chunk.rejected);
        assert_eq!(chunk.events.len(), 5);
        let first = held(&chunk.events[0]);
        assert_eq!(first.start_ms, (1_765_101_600 - 3600) * 1000);
        assert_eq!(first.end_ms, 1_765_101_600_000);
        assert_eq!(first.mac.as_deref(), Some("00:1a:2b:3c:4d:5e"));
        assert_eq!(first.hostname.as_deref(), Some("laptop, x"));
        assert_eq!(
            held(&chunk.events[1]).mac.as_deref(),
            Some("00:1a:2b:3c:4d:5f")
        );
        assert!(matches!(
            chunk.events[2],
            Event::Ended {
                at_ms: 1_765_101_600_000,
                ..
            }
        ));
        assert!(matches!(chunk.events[3], Event::Ended { mac: None, .. }));
        assert!(matches!(
            chunk.events[4],
            Event::Ended {
                at_ms: 1_765_100_000_000,
                ..
            }
        ));
    }

    #[test]
    fn new_columns_and_order_are_tolerated_bad_rows_are_reported() {
        let text = "hostname,expire,address,valid_lifetime,hwaddr,future_column\n\
                    pc,1765101600,10.213.1.10,60,aa:bb:cc:dd:ee:ff,x\n\
                    pc,soon,10.213.1.11,60,aa:bb:cc:dd:ee:ff,x\n\
                    pc,1765101600,not-an-ip,60,aa:bb:cc:dd:ee:ff,x\n";
        // The header must start with `address` to be recognised as one...
        let chunk = KeaParser::default().parse(text.as_bytes(), 1, None);
        assert_eq!(chunk.rejected.len(), 4);
        // ...which Kea's always does; the other columns may be anywhere.
        let text = "address,expire,hostname,valid_lifetime,hwaddr,future_column\n\
                    10.213.1.10,1765101600,pc,60,aa:bb:cc:dd:ee:ff,x\n\
                    10.213.1.11,soon,pc,60,aa:bb:cc:dd:ee:ff,x\n\
                    not-an-ip,1765101600,pc,60,aa:bb:cc:dd:ee:ff,x\n";
        let chunk = KeaParser::default().parse(text.as_bytes(), 1, None);
        assert_eq!(chunk.events.len(), 1);
        let lines: Vec<u64> = chunk.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4]);
        assert!(chunk.rejected[0].reason.contains("expire `soon`"));
    }

    #[test]
    fn a_partial_last_line_waits_for_the_next_chunk() {
        let text =
            format!("{V4}10.213.1.10,aa:bb:cc:dd:ee:ff,,60,1765101600,1,0,0,,0,,0\n10.213.1");
        let mut parser = KeaParser::default();
        let chunk = parser.parse(text.as_bytes(), 1, None);
        assert_eq!(chunk.consumed, text.rfind('\n').unwrap() + 1);
        assert_eq!(chunk.events.len(), 1);
        let rest = ".11,aa:bb:cc:dd:ee:f0,,60,1765101600,1,0,0,,0,,0\n";
        let chunk = parser.parse(format!("10.213.1{rest}").as_bytes(), 3, None);
        assert_eq!(chunk.events.len(), 1, "{:?}", chunk.rejected);
    }

    #[test]
    fn lease6_rows_use_their_own_columns() {
        let text = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source,pool_id\n\
                    2001:db8:1::10,00:01:00:01:aa,3600,1765101600,1,1800,0,1,128,0,0,,aa:bb:cc:dd:ee:ff,0,,1,2,0\n\
                    2001:db8:2::,00:01:00:01:aa,3600,1765101600,1,1800,2,1,56,0,0,,,0,,1,2,0\n";
        let chunk = KeaParser::default().parse(text.as_bytes(), 1, None);
        assert!(chunk.rejected.is_empty(), "{:?}", chunk.rejected);
        assert_eq!(chunk.events.len(), 1);
        assert_eq!(chunk.skipped, 1);
        assert_eq!(
            held(&chunk.events[0]).mac.as_deref(),
            Some("aa:bb:cc:dd:ee:ff")
        );
    }
}
