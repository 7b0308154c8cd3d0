//! Following a lease file: read it whole once, then what the DHCP server appends, and start
//! over when the server replaces the file.
//!
//! Both servers replace rather than truncate: Kea's lease file cleanup renames the file to
//! `.2` and starts a new one (merging the old rows into `.1` in the background); dhcpd writes
//! `dhcpd.leases.<time>`, renames the old file to `dhcpd.leases~` and the new one into place.
//! The follower keeps the file it was reading open, so at a replacement it first reads the
//! rows appended to the old file after its last poll (through the open handle: nothing is
//! lost), then reads the new file from its first byte. The new file repeats leases already
//! seen; applying evidence is idempotent ([`crate::IdentityIndex`]), so nothing is doubled.
//! A file that shrank under the same name (copied over, truncated) is read again whole.
//!
//! Polling (one `stat` per period) rather than inotify: it sees renames and rewrites on
//! every filesystem, and a lease row a second late only delays attribution of hits within
//! that second.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::dhcpd;
use crate::interval::{Event, Source};
use crate::kea::KeaParser;
use crate::parse::{Chunk, Rejected};

/// Which format a followed file has.
#[derive(Debug)]
enum Format {
    Kea(KeaParser),
    Dhcpd,
}

/// What one poll read.
#[derive(Debug, Default)]
pub struct Polled {
    pub events: Vec<Event>,
    /// Each rejected record, with the file it is in.
    pub rejected: Vec<(PathBuf, Rejected)>,
    /// Whether the file was found replaced (and read again from its start).
    pub replaced: bool,
}

/// One followed lease file.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    format: Format,
    file: Option<File>,
    inode: u64,
    offset: u64,
    line: u64,
    /// Rows are read as they are written (after the first read): releases end now.
    live: bool,
}

/// Rows older than the main file that Kea's cleanup keeps beside it, oldest first.
const KEA_OLDER: [&str; 3] = [".1", ".completed", ".2"];

impl Follower {
    /// Follows a Kea memfile lease file.
    pub fn kea(path: PathBuf) -> Self {
        Self::new(path, Format::Kea(KeaParser::default()))
    }

    /// Follows a dhcpd.leases file.
    pub fn dhcpd(path: PathBuf) -> Self {
        Self::new(path, Format::Dhcpd)
    }

    fn new(path: PathBuf, format: Format) -> Self {
        Self {
            path,
            format,
            file: None,
            inode: 0,
            offset: 0,
            line: 1,
            live: false,
        }
    }

    /// The file followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The source its evidence names.
    pub fn source(&self) -> Source {
        match self.format {
            Format::Kea(_) => Source::Kea,
            Format::Dhcpd => Source::Dhcpd,
        }
    }

    /// The first read: Kea's older files (`.1`, `.completed`, `.2`) when present, then the
    /// file itself. Later calls read what was appended or replaced since.
    pub fn poll(&mut self, now_ms: i64) -> Polled {
        let mut read = Polled::default();
        if !self.live && matches!(self.format, Format::Kea(_)) {
            for suffix in KEA_OLDER {
                let mut older = self.path.clone().into_os_string();
                older.push(suffix);
                let older = PathBuf::from(older);
                if let Ok(bytes) = std::fs::read(&older) {
                    let chunk = self.parse(&bytes, 1, None);
                    read.add(chunk, &older);
                }
            }
        }
        let now = self.live.then_some(now_ms);
        let current = std::fs::metadata(&self.path).ok();
        let replaced = match (&self.file, &current) {
            (Some(_), Some(m)) => m.ino() != self.inode || m.len() < self.offset,
            (Some(_), None) => false,
            (None, _) => false,
        };
        if replaced {
            // The rows appended to the old file since the last poll, then the new file.
            if let Some(mut old) = self.file.take() {
                let chunk = self.read_from(&mut old, now);
                read.add(chunk, &self.path.clone());
            }
            self.offset = 0;
            self.line = 1;
            if let Format::Kea(p) = &mut self.format {
                p.reset();
            }
            read.replaced = true;
        }
        if self.file.is_none()
            && let (Some(m), Ok(f)) = (&current, File::open(&self.path))
        {
            self.inode = m.ino();
            self.file = Some(f);
        }
        if let Some(mut file) = self.file.take() {
            let chunk = self.read_from(&mut file, now);
            read.add(chunk, &self.path.clone());
            self.file = Some(file);
        }
        self.live = true;
        read
    }

    fn read_from(&mut self, file: &mut File, now: Option<i64>) -> Chunk {
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_end(&mut bytes).is_err()
        {
            return Chunk::default();
        }
        let chunk = self.parse(&bytes, self.line, now);
        self.offset += chunk.consumed as u64;
        self.line += chunk.lines;
        chunk
    }

    fn parse(&mut self, bytes: &[u8], line: u64, now: Option<i64>) -> Chunk {
        match &mut self.format {
            Format::Kea(p) => {
                if line == 1 {
                    p.reset();
                }
                p.parse(bytes, line, now)
            }
            Format::Dhcpd => dhcpd::parse(bytes, line),
        }
    }
}

impl Polled {
    fn add(&mut self, chunk: Chunk, path: &Path) {
        self.events.extend(chunk.events);
        self.rejected
            .extend(chunk.rejected.into_iter().map(|r| (path.to_path_buf(), r)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IdentityIndex;
    use std::io::Write;

    const HEADER: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id\n";

    fn row(addr: &str, mac: &str, expire: u64) -> String {
        format!("{addr},{mac},,600,{expire},1,0,0,,0,,0\n")
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn appends_and_a_cleanup_rotation_lose_and_double_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kea-leases4.csv");
        append(
            &path,
            &format!("{HEADER}{}", row("10.213.1.1", "aa:aa:aa:aa:aa:01", 1000)),
        );
        let index = IdentityIndex::default();
        let mut f = Follower::kea(path.clone());
        index.apply_all(f.poll(0).events);
        assert_eq!(index.stats().intervals, 1);

        // A renewal, half a row, then the rest of it.
        append(&path, &row("10.213.1.1", "aa:aa:aa:aa:aa:01", 1500));
        append(&path, "10.213.1.2,aa:aa:aa:aa:aa:02,,600,");
        let read = f.poll(0);
        assert!(read.rejected.is_empty(), "{:?}", read.rejected);
        index.apply_all(read.events);
        append(&path, "2000,1,0,0,,0,,0\n");
        index.apply_all(f.poll(0).events);
        assert_eq!(index.stats().intervals, 2);

        // A row appended just before LFC renames the file, then the new file.
        append(&path, &row("10.213.1.3", "aa:aa:aa:aa:aa:03", 2000));
        std::fs::rename(&path, dir.path().join("kea-leases4.csv.2")).unwrap();
        append(
            &path,
            &format!("{HEADER}{}", row("10.213.1.2", "aa:aa:aa:aa:aa:02", 2400)),
        );
        let read = f.poll(0);
        assert!(read.replaced);
        assert!(read.rejected.is_empty(), "{:?}", read.rejected);
        index.apply_all(read.events);
        assert_eq!(index.stats().intervals, 3);
        let h = index.history("10.213.1.2".parse().unwrap());
        assert_eq!((h[0].start_ms, h[0].end_ms), (1_400_000, 2_400_000));

        // A restart reads the rotated file and the new one: the same history.
        let again = IdentityIndex::default();
        again.apply_all(Follower::kea(path.clone()).poll(0).events);
        assert_eq!(again.stats(), index.stats());
    }

    #[test]
    fn a_dhcpd_rewrite_is_read_again_and_bad_records_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dhcpd.leases");
        let lease = |addr: &str, mac: &str| {
            format!(
                "lease {addr} {{\n  starts 1 2026/12/07 02:10:00;\n  ends 1 2026/12/07 04:10:00;\n  binding state active;\n  hardware ethernet {mac};\n}}\n"
            )
        };
        append(&path, &lease("10.213.2.1", "00:00:00:00:00:01"));
        append(&path, "lease 10.213.2.9 {\n  binding state active;\n}\n");
        let index = IdentityIndex::default();
        let mut f = Follower::dhcpd(path.clone());
        let read = f.poll(0);
        assert_eq!(read.rejected.len(), 1);
        assert_eq!(read.rejected[0].1.line, 7);
        index.apply_all(read.events);
        // dhcpd's rewrite: a new file renamed over the old one.
        let new = dir.path().join("dhcpd.leases.1765000000");
        append(
            &new,
            &format!(
                "{}{}",
                lease("10.213.2.1", "00:00:00:00:00:01"),
                lease("10.213.2.2", "00:00:00:00:00:02")
            ),
        );
        std::fs::rename(&path, dir.path().join("dhcpd.leases~")).unwrap();
        std::fs::rename(&new, &path).unwrap();
        let read = f.poll(0);
        assert!(read.replaced);
        index.apply_all(read.events);
        assert_eq!(index.stats().intervals, 2);
    }
}
