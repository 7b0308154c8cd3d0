//! Content history: every list file the API replaces is kept on disk, bounded in number.
//!
//! A feed upload, an entry patch, a subscription fetch or a ledger replacement writes the new
//! content here as `<id>-<sha256>.txt` next to an `index.json` (time, who, what, counts), so a
//! maintainer can see what changed, download any version and roll back. Files, not SQLite rows:
//! a million-line list is 20 MB, and the store is for evidence, not blobs; a copy of
//! `blocklists/` is then also a copy of its history. The oldest versions beyond [`KEEP`] are
//! deleted. Every write is atomic ([`write_atomic`]): a crash leaves the old file or the new
//! one, never half of each.
//!
//! Blocking file I/O throughout: call from `spawn_blocking` or a plain thread.
//!
//! Its own crate, at the bottom of the graph beside `model`: the feed registry (`feeds`) and
//! the asset-ledger upload (`clients`) both keep histories, and `clients` sits below `feeds`,
//! so the history cannot live in either without `feeds` needing `clients` for it. `model`
//! holds no I/O by rule, and this is nothing but I/O; one small crate that knows files and
//! hashes (not feeds, not ledgers) is what both can share.

pub mod share;

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Versions kept per list; older ones are deleted on the next write.
pub const KEEP: usize = 50;

/// Why a version could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// The version directory or one of its files could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `index.json` is not what we wrote (edited by hand?).
    #[error("{}: {source}", path.display())]
    Index {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// One kept version of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// Increasing per list; what `…/versions/{id}` takes.
    pub id: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// When this content was written.
    pub time: DateTime<Utc>,
    /// The API token name that wrote it, `subscription` for a fetch, `file` for content found
    /// on disk (config-managed or edited by hand) before the API first replaced it.
    pub who: String,
    /// What produced it: `upload`, `patch`, `restore`, `fetch`, `existing`, `delete`, and
    /// `partial` for a ledger upload loaded with `?partial=true` despite rejected rows.
    pub action: String,
    /// Size of the content in bytes.
    pub bytes: u64,
    /// Accepted entries (networks, for the ledger) when it was written.
    pub entries: usize,
    /// Rejected lines (rows) when it was written.
    pub rejected: usize,
}

/// What the caller knows about a new version.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    /// See [`Version::who`].
    pub who: &'a str,
    /// See [`Version::action`].
    pub action: &'a str,
    /// See [`Version::entries`].
    pub entries: usize,
    /// See [`Version::rejected`].
    pub rejected: usize,
}

/// The history of one list, in its own directory.
#[derive(Debug, Clone)]
pub struct Versions {
    dir: PathBuf,
}

/// Lower-case hex SHA-256, the content identity used in versions, audit rows and ETags.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Versions {
    /// The history kept in `dir` (created on the first write).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    fn file_of(&self, v: &Version) -> PathBuf {
        self.dir.join(format!("{}-{}.txt", v.id, v.sha256))
    }

    /// Every kept version, newest first.
    pub fn list(&self) -> Result<Vec<Version>, VersionError> {
        let path = self.index_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(VersionError::Io { path, source }),
        };
        let mut list: Vec<Version> = serde_json::from_slice(&bytes)
            .map_err(|source| VersionError::Index { path, source })?;
        list.sort_by_key(|v| std::cmp::Reverse(v.id));
        Ok(list)
    }

    /// The newest version, if any.
    pub fn latest(&self) -> Result<Option<Version>, VersionError> {
        Ok(self.list()?.into_iter().next())
    }

    /// The content of version `id`; `None` when no such version is kept.
    pub fn content(&self, id: u64) -> Result<Option<(Version, Vec<u8>)>, VersionError> {
        let Some(v) = self.list()?.into_iter().find(|v| v.id == id) else {
            return Ok(None);
        };
        let path = self.file_of(&v);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some((v, b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(VersionError::Io { path, source }),
        }
    }

    /// Keeps `content` as the newest version (unless it already is, byte for byte) and drops
    /// versions beyond [`KEEP`]. Returns the newest version.
    pub fn record(&self, content: &[u8], meta: NewVersion<'_>) -> Result<Version, VersionError> {
        let sha256 = sha256_hex(content);
        let mut list = self.list()?;
        if let Some(latest) = list.first()
            && latest.sha256 == sha256
        {
            return Ok(latest.clone());
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| VersionError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let v = Version {
            id: list.first().map_or(1, |l| l.id + 1),
            sha256,
            time: Utc::now(),
            who: meta.who.to_string(),
            action: meta.action.to_string(),
            bytes: content.len() as u64,
            entries: meta.entries,
            rejected: meta.rejected,
        };
        let file = self.file_of(&v);
        write_atomic(&file, content).map_err(io(&file))?;
        list.insert(0, v.clone());
        let dropped = if list.len() > KEEP {
            list.split_off(KEEP)
        } else {
            Vec::new()
        };
        let index = self.index_path();
        let json = serde_json::to_vec_pretty(&list).map_err(|source| VersionError::Index {
            path: index.clone(),
            source,
        })?;
        write_atomic(&index, &json).map_err(io(&index))?;
        for old in dropped {
            // Best effort: a leftover file costs disk, not correctness (the index is the truth).
            let _ = std::fs::remove_file(self.file_of(&old));
        }
        Ok(v)
    }
}

/// Replaces `path` with `bytes` so that readers (and a crash) see the old file or the new one,
/// never a mix: a temp file in the same directory, fsync, rename over, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", rand::random::<u64>()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename itself must survive a power cut too.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_dedups_and_bounds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v = Versions::new(dir.path().join("h"));
        let meta = |a| NewVersion {
            who: "alice",
            action: a,
            entries: 1,
            rejected: 0,
        };
        let first = v.record(b"a.example\n", meta("upload")).expect("record");
        assert_eq!(first.id, 1);
        let same = v.record(b"a.example\n", meta("upload")).expect("record");
        assert_eq!(same.id, 1, "identical content is not a new version");
        for i in 0..(KEEP + 5) {
            v.record(format!("x{i}.example\n").as_bytes(), meta("patch"))
                .expect("record");
        }
        let list = v.list().expect("list");
        assert_eq!(list.len(), KEEP);
        assert_eq!(list[0].id, (KEEP + 6) as u64);
        assert!(v.content(1).expect("read").is_none(), "oldest dropped");
        let (meta, body) = v.content(list[0].id).expect("read").expect("kept");
        assert_eq!(meta.sha256, sha256_hex(&body));
    }
}
