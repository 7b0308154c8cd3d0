//! Replacing the asset ledger file over the API: check, write, keep a version, roll back.
//!
//! Ops upload a new ledger CSV (or pick a kept version) instead of editing the file on the
//! host. Every write goes the same way, one at a time (one mutex): decode and parse the new
//! content first and refuse it when nothing in it is usable (the ledger in force stays), keep
//! the file in force as a version if it is not one yet, write the new content atomically, keep
//! it as a version. Swapping the parsed [`Ledger`] into the [`SharedLedger`](crate::SharedLedger)
//! is the caller's (the API's), so it can audit the write in the same step.
//!
//! The history lives in `blocklists/.poolguard/ledger-versions/` ([`poolguard_versions`]),
//! beside the feeds' histories; this module is told the directory and knows nothing of feeds.
//!
//! All methods are blocking (file I/O, parsing): call them from `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use poolguard_versions::share::{Doc, LEDGER, Share, ShareError, Sharing, Topic};
use poolguard_versions::{self as versions, NewVersion, Version, VersionError, Versions};

use super::{Ledger, LedgerError, LoadReport, decode};

/// Why a ledger upload or restore was refused or failed. Each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The content cannot be used (encoding, header, no usable row, or rejected rows without
    /// `partial`); the ledger in force stays.
    #[error("{message}")]
    Refused {
        /// What to fix.
        message: String,
        /// Every rejected row.
        report: LoadReport,
    },
    /// No kept version by that id.
    #[error("{0}")]
    NotFound(String),
    /// Reading or writing the ledger file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The version history could not be read or written.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// The group's shared database did not take the ledger; nothing changed.
    #[error(transparent)]
    Share(#[from] ShareError),
}

/// A ledger write: the table to swap in, its report, the version now in force.
#[derive(Debug)]
pub struct LedgerWrite {
    /// The parsed table; the caller swaps it in.
    pub ledger: Ledger,
    /// Rows read, loaded and rejected.
    pub report: LoadReport,
    /// The version now in force.
    pub version: Version,
    /// SHA-256 of the file before the write (absent when there was none).
    pub before_sha256: Option<String>,
}

/// The ledger's write path and its history (see the module docs).
pub struct LedgerUploads {
    history: Versions,
    /// One writer at a time, so "keep the old file as a version, then write" is never
    /// interleaved with another upload.
    writer: Mutex<()>,
    /// Where uploads and restores go before they change the file, when the node is one of
    /// a group (`poolguard_versions::share`); None alone.
    share: Sharing,
}

impl LedgerUploads {
    /// The write path keeping its history in `history_dir` (created on the first write).
    pub fn new(history_dir: PathBuf) -> Self {
        Self {
            history: Versions::new(history_dir),
            writer: Mutex::new(()),
            share: Sharing::default(),
        }
    }

    /// Hands every later upload and restore to `share` before the file changes.
    pub fn share_with(&self, share: Arc<dyn Share>) {
        self.share.set(share);
    }

    /// Applies the ledger another node of the group wrote (`doc`) to `path`, through the
    /// same checks and history as an upload, without sharing it again. `None` when the file
    /// already holds it; the caller swaps the returned ledger in. A ledger of which no row
    /// loads here is refused and the one in force stays.
    pub fn apply_shared(&self, path: &Path, doc: &Doc) -> Result<Option<LedgerWrite>, UploadError> {
        let here = std::fs::read(path).ok().map(|b| versions::sha256_hex(&b));
        if here == Some(versions::sha256_hex(&doc.content)) {
            return Ok(None);
        }
        let parsed = usable(parse(path, &doc.content)?)?;
        let _one_writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.install(path, parsed, &doc.who, &doc.action, false)
            .map(Some)
    }

    /// `PUT /api/v1/clients/ledger?dry_run=true`: parses the CSV and reports every row, nothing
    /// else (no write, no version, no lock: the ledger in force is not touched). Refused only
    /// when the file cannot be read as a ledger at all (encoding, header).
    pub fn check(&self, path: &Path, content: &[u8]) -> Result<LoadReport, UploadError> {
        parse(path, content).map(|p| p.report)
    }

    /// `PUT /api/v1/clients/ledger`: checks the CSV, writes it atomically to `path`, keeps a
    /// version. The caller swaps the returned ledger in. Refused (422, nothing changes) when
    /// any row is rejected, unless `partial` (then the good rows load and the version is kept
    /// as `partial`); refused in any case when no row loads.
    pub fn replace(
        &self,
        path: &Path,
        content: &[u8],
        who: &str,
        partial: bool,
    ) -> Result<LedgerWrite, UploadError> {
        let parsed = usable(parse(path, content)?)?;
        let r = &parsed.report;
        if !partial && !r.rejected.is_empty() {
            return Err(UploadError::Refused {
                message: format!(
                    "{} of {} rows rejected; nothing changed, the ledger in force stays. Fix \
                     the rows listed, or upload with ?partial=true to load the {} good rows",
                    r.rejected.len(),
                    r.rows,
                    r.loaded
                ),
                report: parsed.report,
            });
        }
        let action = if r.rejected.is_empty() {
            "upload"
        } else {
            "partial"
        };
        let _one_writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.install(path, parsed, who, action, true)
    }

    /// `POST /api/v1/clients/ledger/versions/{id}/restore`: makes version `id` the ledger in
    /// force (written to `path`, kept as a new version so the restore can be undone). Rows the
    /// version had rejected when it was kept are rejected again; refused when none loads.
    pub fn restore(&self, path: &Path, id: u64, who: &str) -> Result<LedgerWrite, UploadError> {
        let content = self.version_content(id)?;
        let parsed = usable(parse(path, &content)?)?;
        let _one_writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.install(path, parsed, who, "restore", true)
    }

    /// The asset ledger's kept versions, newest first.
    pub fn versions(&self) -> Result<Vec<Version>, UploadError> {
        Ok(self.history.list()?)
    }

    /// `GET /api/v1/clients/ledger/versions/{id}`: the content (UTF-8, as it was written).
    pub fn version_content(&self, id: u64) -> Result<Vec<u8>, UploadError> {
        self.history
            .content(id)?
            .map(|(_, b)| b)
            .ok_or_else(|| UploadError::NotFound(format!("the ledger has no version {id}")))
    }

    /// The one ledger write (upload, restore, another node's): shares it with the group
    /// first (if `share` and the node is in one), keeps the file in force as a version if it
    /// is not one yet, writes the new content atomically, keeps it as a version. The caller
    /// holds the write lock.
    fn install(
        &self,
        path: &Path,
        parsed: Parsed,
        who: &str,
        action: &str,
        share: bool,
    ) -> Result<LedgerWrite, UploadError> {
        if share {
            self.share.share(|| {
                vec![Doc {
                    topic: Topic::Ledger,
                    name: LEDGER.to_string(),
                    content: parsed.utf8.clone(),
                    who: who.to_string(),
                    action: action.to_string(),
                }]
            })?;
        }
        let io = |source| UploadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let before = match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(io(source)),
        };
        let before_sha256 = before.as_ref().map(|b| versions::sha256_hex(b));
        if let Some(b) = &before
            && self.history.latest()?.map(|v| v.sha256) != before_sha256
        {
            self.history.record(
                b,
                NewVersion {
                    who: "file",
                    action: "existing",
                    entries: 0,
                    rejected: 0,
                },
            )?;
        }
        versions::write_atomic(path, &parsed.utf8).map_err(io)?;
        let version = self.history.record(
            &parsed.utf8,
            NewVersion {
                who,
                action,
                entries: parsed.report.loaded,
                rejected: parsed.report.rejected.len(),
            },
        )?;
        Ok(LedgerWrite {
            ledger: parsed.ledger,
            report: parsed.report,
            version,
            before_sha256,
        })
    }
}

/// An uploaded ledger, parsed: the table, the report and the content as UTF-8 (what is
/// written and versioned, so the file on disk and every version are UTF-8 whatever was sent).
struct Parsed {
    ledger: Ledger,
    report: LoadReport,
    utf8: Vec<u8>,
}

/// Refuses (422) a ledger of which no row is usable: installing it would make every client
/// anonymous.
fn usable(parsed: Parsed) -> Result<Parsed, UploadError> {
    let r = &parsed.report;
    if r.loaded == 0 && !r.rejected.is_empty() {
        return Err(UploadError::Refused {
            message: format!(
                "no row of the ledger is usable ({} rejected); the ledger in force stays",
                r.rejected.len()
            ),
            report: parsed.report,
        });
    }
    Ok(parsed)
}

/// Decodes (UTF-8, or GB18030 when not UTF-8) and parses; refused (422) when the encoding or
/// the header is wrong. Row rejects are in the report.
fn parse(path: &Path, content: &[u8]) -> Result<Parsed, UploadError> {
    let refused = |e: LedgerError| UploadError::Refused {
        message: e.to_string(),
        report: LoadReport::default(),
    };
    let decoded = decode(content, path).map_err(refused)?;
    let (ledger, mut report) = Ledger::from_text(&decoded.text, path).map_err(refused)?;
    report.decoded_from = decoded.from.map(str::to_string);
    // Bytes sent as UTF-8 are kept byte for byte (BOM included); converted ones as UTF-8.
    let utf8 = match decoded.from {
        None => content.to_vec(),
        Some(_) => decoded.text.into_owned().into_bytes(),
    };
    Ok(Parsed {
        ledger,
        report,
        utf8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "network,mac,asset,kind,location,department,owner,contact\n";

    fn csv(rows: &[&str]) -> Vec<u8> {
        let mut s = HEADER.to_string();
        for r in rows {
            s.push_str(r);
            s.push('\n');
        }
        s.into_bytes()
    }

    /// A rejected row refuses the whole upload (the file in force stays) unless `partial`.
    #[test]
    fn rejected_rows_refuse_the_upload_unless_partial() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.csv");
        let uploads = LedgerUploads::new(dir.path().join("history"));
        let good = csv(&["10.0.0.0/8,,lab,,,,,"]);
        let first = uploads
            .replace(&path, &good, "alice", false)
            .expect("upload");
        assert_eq!(first.report.loaded, 1);
        assert_eq!(first.version.action, "upload");
        assert_eq!(first.before_sha256, None);

        let mixed = csv(&["10.1.0.0/16,,rig,,,,,", "not-an-address,,x,,,,,"]);
        match uploads.replace(&path, &mixed, "alice", false) {
            Err(UploadError::Refused { report, .. }) => assert_eq!(report.rejected.len(), 1),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(
            std::fs::read(&path).expect("read"),
            good,
            "the ledger in force stays"
        );

        let partial = uploads
            .replace(&path, &mixed, "bob", true)
            .expect("partial");
        assert_eq!(partial.version.action, "partial");
        assert_eq!(partial.report.loaded, 1);
        assert_eq!(std::fs::read(&path).expect("read"), mixed);
        assert_eq!(uploads.versions().expect("versions").len(), 2);
    }

    /// A restore writes the old content back as a new version; a version not kept is 404.
    #[test]
    fn restore_brings_a_version_back_as_a_new_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.csv");
        let uploads = LedgerUploads::new(dir.path().join("history"));
        let v1 = csv(&["10.0.0.0/8,,lab,,,,,"]);
        let v2 = csv(&["192.0.2.0/24,,dorm,,,,,"]);
        uploads.replace(&path, &v1, "alice", false).expect("v1");
        uploads.replace(&path, &v2, "alice", false).expect("v2");
        let restored = uploads.restore(&path, 1, "carol").expect("restore");
        assert_eq!(restored.version.id, 3);
        assert_eq!(restored.version.action, "restore");
        assert_eq!(std::fs::read(&path).expect("read"), v1);
        assert!(matches!(
            uploads.restore(&path, 99, "carol"),
            Err(UploadError::NotFound(_))
        ));
    }
}
