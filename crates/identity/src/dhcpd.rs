//! ISC dhcpd `dhcpd.leases` → [`Event`]s.
//!
//! dhcpd appends a `lease A.B.C.D { ... }` block on every change and periodically rewrites
//! the file (`dhcpd.leases~` is the old one, renamed) with one block per lease. A block:
//!
//! ```text
//! lease 10.213.2.10 {
//!   starts 1 2026/12/07 02:10:00;        # weekday, UTC date and time
//!   ends 1 2026/12/07 04:10:00;          # or `ends never;`, or `ends epoch 1796609400;`
//!   cltt 1 2026/12/07 02:10:00;
//!   binding state active;                # free, backup, abandoned, expired, released...
//!   hardware ethernet 00:1a:2b:3c:4d:5e;
//!   uid "\001\000\032+<M^";              # octal escapes; or hex `01:00:1a:...`
//!   client-hostname "laptop";
//! }
//! ```
//!
//! An `active` binding is a holding from `starts` to `ends`; any other state ended the
//! holding at `ends` (or `cltt`, or `starts`, whichever is given). Everything else at the top
//! level (`server-duid`, `failover peer ... { }`, `host`, `authoring-byte-order`) is skipped;
//! statements inside a lease block that do not name its holder (`set ...`, `on expiry { }`)
//! too.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::NaiveDateTime;

use crate::interval::{Event, Interval, OPEN, Source, mac_of_octets, normalise_mac};
use crate::parse::{Chunk, Rejected};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Str(Vec<u8>),
    Semi,
    Open,
    Close,
}

/// Splits dhcpd.leases text into tokens with their line numbers. Stops at the end or at an
/// unterminated string (the rest is an incomplete record).
fn tokens(bytes: &[u8], first_line: u64) -> Vec<(Token, u64, usize)> {
    let mut out = Vec::new();
    let mut line = first_line;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b';' | b'{' | b'}' => {
                let t = match b {
                    b';' => Token::Semi,
                    b'{' => Token::Open,
                    _ => Token::Close,
                };
                i += 1;
                out.push((t, line, i));
            }
            b'"' => {
                let start_line = line;
                let mut s = Vec::new();
                let mut j = i + 1;
                let mut closed = false;
                while j < bytes.len() {
                    match bytes[j] {
                        b'"' => {
                            closed = true;
                            j += 1;
                            break;
                        }
                        b'\\' if j + 1 < bytes.len() => {
                            let oct = &bytes[j + 1..bytes.len().min(j + 4)];
                            if oct.len() == 3 && oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                                let v = oct.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                                s.push(v as u8);
                                j += 4;
                            } else {
                                s.push(bytes[j + 1]);
                                j += 2;
                            }
                        }
                        c => {
                            if c == b'\n' {
                                line += 1;
                            }
                            s.push(c);
                            j += 1;
                        }
                    }
                }
                if !closed {
                    break;
                }
                i = j;
                out.push((Token::Str(s), start_line, i));
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                let start = i;
                while i < bytes.len()
                    && !bytes[i].is_ascii_whitespace()
                    && !matches!(bytes[i], b';' | b'{' | b'}' | b'"' | b'#')
                {
                    i += 1;
                }
                let word = String::from_utf8_lossy(&bytes[start..i]).into_owned();
                out.push((Token::Word(word), line, i));
            }
        }
    }
    out
}

/// Parses complete top-level records of `bytes` (a record still being written is left for
/// the next chunk).
pub fn parse(bytes: &[u8], first_line: u64) -> Chunk {
    let toks = tokens(bytes, first_line);
    let mut chunk = Chunk::default();
    let mut i = 0;
    while i < toks.len() {
        // One top-level statement: words up to `;`, or up to a `{ ... }` block.
        let start = i;
        let mut depth = 0usize;
        let mut end = None;
        let mut j = i;
        while j < toks.len() {
            match toks[j].0 {
                Token::Semi if depth == 0 => {
                    end = Some(j);
                    break;
                }
                Token::Open => depth += 1,
                Token::Close => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = Some(j);
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        let Some(end) = end else {
            break;
        };
        let record = &toks[start..=end];
        chunk.consumed = record[record.len() - 1].2;
        if matches!(&record[0].0, Token::Word(w) if w == "lease") {
            match lease(record) {
                Ok(Some(e)) => chunk.events.push(e),
                Ok(None) => chunk.skipped += 1,
                Err(reason) => chunk.rejected.push(Rejected {
                    line: record[0].1,
                    reason,
                }),
            }
        }
        i = end + 1;
    }
    chunk.lines = bytes[..chunk.consumed]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64;
    chunk
}

#[derive(Default)]
struct Lease {
    starts: Option<i64>,
    ends: Option<i64>,
    cltt: Option<i64>,
    state: Option<String>,
    mac: Option<Arc<str>>,
    uid_mac: Option<Arc<str>>,
    hostname: Option<Arc<str>>,
}

fn lease(record: &[(Token, u64, usize)]) -> Result<Option<Event>, String> {
    let addr_text = match record.get(1) {
        Some((Token::Word(w), ..)) => w.as_str(),
        _ => return Err("`lease` without an address".into()),
    };
    let addr: IpAddr = addr_text
        .parse()
        .map_err(|_| format!("`lease {addr_text}`: not an IP address"))?;
    if !matches!(record.get(2), Some((Token::Open, ..))) {
        return Err(format!("`lease {addr_text}` is not followed by `{{`"));
    }
    let mut lease = Lease::default();
    // Statements of the block body (depth 1), nested blocks skipped.
    let body = &record[3..record.len() - 1];
    let mut k = 0;
    while k < body.len() {
        let mut depth = 0usize;
        let mut stop = k;
        while stop < body.len() {
            match body[stop].0 {
                Token::Semi if depth == 0 => break,
                Token::Open => depth += 1,
                Token::Close => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            stop += 1;
        }
        let stmt: Vec<&Token> = body[k..stop.min(body.len())].iter().map(|t| &t.0).collect();
        statement(&stmt, &mut lease).map_err(|e| format!("lease {addr}: {e}"))?;
        k = stop + 1;
    }
    let mac = lease.mac.or(lease.uid_mac);
    let Some(state) = lease.state else {
        return Err(format!("lease {addr}: no `binding state`"));
    };
    if state == "active" {
        let start_ms = lease
            .starts
            .or(lease.cltt)
            .ok_or_else(|| format!("lease {addr}: an active lease without `starts`"))?;
        return Ok(Some(Event::Held(Interval {
            addr,
            start_ms,
            end_ms: lease.ends.unwrap_or(OPEN),
            mac,
            account: None,
            hostname: lease.hostname,
            source: Source::Dhcpd,
        })));
    }
    let Some(at_ms) = lease
        .ends
        .filter(|e| *e != OPEN)
        .or(lease.cltt)
        .or(lease.starts)
    else {
        return Ok(None);
    };
    Ok(Some(Event::Ended {
        addr,
        at_ms,
        mac,
        source: Source::Dhcpd,
    }))
}

fn word<'a>(t: Option<&&'a Token>) -> Option<&'a str> {
    match t {
        Some(Token::Word(w)) => Some(w.as_str()),
        _ => None,
    }
}

fn statement(stmt: &[&Token], lease: &mut Lease) -> Result<(), String> {
    let Some(first) = word(stmt.first()) else {
        return Ok(());
    };
    match first {
        "starts" => lease.starts = Some(time(&stmt[1..])?),
        "ends" => lease.ends = Some(time(&stmt[1..])?),
        "cltt" => lease.cltt = Some(time(&stmt[1..])?),
        "binding" if word(stmt.get(1)) == Some("state") => {
            lease.state = word(stmt.get(2)).map(str::to_string);
        }
        "hardware" => {
            let text = word(stmt.get(2)).unwrap_or("");
            lease.mac = Some(
                normalise_mac(text)
                    .ok_or_else(|| format!("hardware address `{text}` is not hex octets"))?,
            );
        }
        "uid" => {
            let octets = match stmt.get(1) {
                Some(Token::Str(s)) => Some(s.clone()),
                Some(Token::Word(w)) => w
                    .split(':')
                    .map(|p| u8::from_str_radix(p, 16).ok())
                    .collect::<Option<Vec<u8>>>(),
                _ => None,
            };
            // A client identifier of hardware type 1 (Ethernet) is the MAC.
            if let Some(o) = octets
                && o.len() == 7
                && o[0] == 1
            {
                lease.uid_mac = mac_of_octets(&o[1..]);
            }
        }
        "client-hostname" => {
            if let Some(Token::Str(s)) = stmt.get(1) {
                lease.hostname = Some(String::from_utf8_lossy(s).into());
            }
        }
        _ => {}
    }
    Ok(())
}

/// `4 2026/12/07 02:10:00` (weekday, UTC), `epoch 1796609400`, or `never`.
fn time(words: &[&Token]) -> Result<i64, String> {
    match words {
        [Token::Word(w)] if w == "never" => Ok(OPEN),
        [Token::Word(e), Token::Word(secs)] if e == "epoch" => secs
            .parse::<i64>()
            .map(|s| s.saturating_mul(1000))
            .map_err(|_| format!("`epoch {secs}` is not a number of seconds")),
        [Token::Word(_weekday), Token::Word(date), Token::Word(clock)] => {
            let text = format!("{date} {clock}");
            NaiveDateTime::parse_from_str(&text, "%Y/%m/%d %H:%M:%S")
                .map(|t| t.and_utc().timestamp_millis())
                .map_err(|_| format!("`{text}` is not a date like 2026/12/07 02:10:00"))
        }
        _ => Err("a time must be `W YYYY/MM/DD HH:MM:SS`, `epoch N` or `never`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# The format of this file is documented in the dhcpd.leases(5) manual page.
# This lease file was written by isc-dhcp-4.4.3
authoring-byte-order little-endian;
server-duid "\000\001\000\001+\244\022\345RT\000\022\0044";

failover peer "campus" state {
  my state normal at 1 2026/12/07 01:00:00;
  partner state normal at 1 2026/12/07 01:00:00;
}

lease 10.213.2.10 {
  starts 1 2026/12/07 02:10:00;
  ends 1 2026/12/07 04:10:00;
  cltt 1 2026/12/07 02:10:00;
  binding state active;
  next binding state free;
  rewind binding state free;
  hardware ethernet 00:1A:2B:3C:4D:5E;
  uid "\001\000\032+<M^";
  set vendor-class-identifier = "MSFT 5.0";
  client-hostname "dorm-pc";
}
lease 10.213.2.11 {
  starts epoch 1796609400; # Mon Dec 07 02:10:00 2026
  ends never;
  binding state active;
  uid 01:00:1a:2b:3c:4d:5f;
  on expiry { set x = "y"; }
}
lease 10.213.2.10 {
  starts 1 2026/12/07 02:10:00;
  ends 1 2026/12/07 03:00:00;
  tstp 1 2026/12/07 03:00:00;
  binding state free;
  hardware ethernet 00:1a:2b:3c:4d:5e;
}
lease 10.213.2.12 {
  starts 1 2026/13/07 02:10:00;
  binding state active;
}
lease 10.213.2.13 {
  starts 1 2026/12/07 02:10:00;
  binding state act"#;

    #[test]
    fn a_real_looking_file_parses_record_by_record() {
        let chunk = parse(FILE.as_bytes(), 1);
        assert_eq!(chunk.events.len(), 3, "{:?}", chunk.rejected);
        let Event::Held(first) = &chunk.events[0] else {
            panic!("{:?}", chunk.events[0])
        };
        assert_eq!(first.addr.to_string(), "10.213.2.10");
        assert_eq!(first.mac.as_deref(), Some("00:1a:2b:3c:4d:5e"));
        assert_eq!(first.hostname.as_deref(), Some("dorm-pc"));
        assert_eq!(first.end_ms - first.start_ms, 2 * 3600 * 1000);
        let Event::Held(second) = &chunk.events[1] else {
            panic!("{:?}", chunk.events[1])
        };
        assert_eq!(second.start_ms, 1_796_609_400_000);
        assert_eq!(second.end_ms, OPEN);
        assert_eq!(second.mac.as_deref(), Some("00:1a:2b:3c:4d:5f"));
        assert!(matches!(
            &chunk.events[2],
            Event::Ended { mac: Some(_), .. }
        ));
        assert_eq!(chunk.rejected.len(), 1);
        assert_eq!(chunk.rejected[0].line, 37);
        assert!(
            chunk.rejected[0].reason.contains("2026/13/07"),
            "{:?}",
            chunk.rejected
        );
        // The unfinished last record waits for the rest of it.
        assert_eq!(
            &FILE[chunk.consumed..].trim_start()[..17],
            "lease 10.213.2.13"
        );
    }

    #[test]
    fn octal_uids_decode_to_the_mac() {
        let toks = tokens(br#"uid "\001\000\032+<M^";"#, 1);
        assert_eq!(
            toks[1].0,
            Token::Str(vec![1, 0, 0x1a, b'+', b'<', b'M', b'^'])
        );
    }
}
