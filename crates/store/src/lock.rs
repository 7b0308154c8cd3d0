//! One serving poolguard per SQLite store.
//!
//! SQLite itself lets two processes write one file, and so would poolguard: each would keep
//! its own writer, its own spool beside the database and its own in-memory incident state, so
//! a client's hits would be split between two trackers and a spool could be replayed twice.
//! The DNS address check (`dns::exclusive`) stops a second instance on the same address; this
//! lock stops one on another address that points `[store] path` at the same file.
//!
//! The lock is an advisory `flock` on `<store>.lock`, held for the life of the serving
//! process and released by the kernel when it exits, however it exits (no stale lock after a
//! crash, unlike a PID file). The holder's PID is written into the file so the refusal can name
//! it. Tools that only read the store (`gen_store --measure`, the API test harness) do not take
//! it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Why the store could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process serves from this store.
    #[error(
        "the store {store} is in use by {holder}: one poolguard serves from one store; \
         stop the other one, or set another [store] path"
    )]
    Held { store: PathBuf, holder: String },
    /// The lock file could not be opened or locked.
    #[error("cannot lock the store {store} ({lock}): {cause}")]
    Io {
        store: PathBuf,
        lock: PathBuf,
        cause: std::io::Error,
    },
}

/// Held while poolguard serves from a store; dropping it releases the store.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// The lock file of the store at `store`.
pub fn lock_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

impl StoreLock {
    /// Claims `store` for this process, or says which process has it.
    pub fn acquire(store: &Path) -> Result<Self, LockError> {
        let lock = lock_path(store);
        let io = |cause| LockError::Io {
            store: store.to_path_buf(),
            lock: lock.clone(),
            cause,
        };
        if let Some(dir) = store.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                // Best effort: the holder may be between truncating and writing its PID.
                let _ = file.read_to_string(&mut pid);
                let holder = match pid.trim().parse::<u32>() {
                    Ok(pid) => format!("process {pid}"),
                    Err(_) => "another process".to_string(),
                };
                return Err(LockError::Held {
                    store: store.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(cause)) => return Err(io(cause)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_names_the_holder_and_a_release_frees_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("poolguard.db");
        let first = StoreLock::acquire(&store).expect("first claim");
        let err = StoreLock::acquire(&store).expect_err("second claim refused");
        let text = err.to_string();
        assert!(text.contains(&store.display().to_string()), "{text}");
        assert!(
            text.contains(&format!("process {}", std::process::id())),
            "{text}"
        );
        drop(first);
        StoreLock::acquire(&store).expect("claimed again after release");
    }
}
