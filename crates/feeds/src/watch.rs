//! Reloading feeds when their files change, without polling.
//!
//! The watcher observes the *directories* of the feed files, not the files: editors and our own
//! uploads replace a file by writing a temp file and renaming it over the old one, and a watch on
//! the old inode would go silent after the first such save. Events are debounced: an editor
//! save or a `git pull` is a burst of events, and one reload after the burst settles
//! ([`DEBOUNCE`]) is what we want. The reload runs on the watcher's own plain thread, never on
//! a DNS runtime. Dropping the [`WatchHandle`] stops the watcher and joins the thread.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::loader::{Loader, feed_file};

/// Quiet time after the last event before reloading. Long enough to coalesce an editor's
/// write-rename-chmod burst, short enough that an upload is in force well under a second.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// A continuous stream of events (a slow copy of a huge file) still reloads this often.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The OS file-notification API refused (inotify limits, unsupported platform).
    #[error("cannot start the file watcher: {0}")]
    Start(#[source] notify::Error),
    /// A feed directory could not be watched (missing, permissions).
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    /// The reload thread could not be spawned.
    #[error("cannot start the watcher thread: {0}")]
    Thread(#[source] std::io::Error),
}

enum Msg {
    Event(notify::Result<notify::Event>),
    Stop,
}

/// Keeps the watcher alive; dropping it stops watching and joins the reload thread.
pub struct WatchHandle {
    watcher: Option<RecommendedWatcher>,
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    /// Directories being watched (canonical), for logs and tests.
    pub dirs: Vec<PathBuf>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        drop(self.watcher.take());
        // The thread may already have exited; nothing to do then.
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts watching the directories of all enabled feed files; a change to a feed file triggers
/// one debounced [`Loader::reload`] on a dedicated thread.
pub fn spawn_watcher(loader: Arc<Loader>) -> Result<WatchHandle, WatchError> {
    let (_, mut dirs) = watched(&loader);
    // API-created feeds land in `[api] feeds_dir`: watch it even before the first one exists.
    let api_dir = loader.config().feeds_dir();
    if let Ok(d) = api_dir.canonicalize()
        && !dirs.contains(&d)
    {
        dirs.push(d);
    }

    let (tx, rx) = mpsc::channel::<Msg>();
    let event_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |res| {
        // The receiver is gone only while shutting down.
        let _ = event_tx.send(Msg::Event(res));
    })
    .map_err(WatchError::Start)?;
    for d in &dirs {
        watcher
            .watch(d, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch {
                path: d.clone(),
                source,
            })?;
    }
    tracing::info!(dirs = ?dirs, "watching feed directories");

    let thread = std::thread::Builder::new()
        .name("feed-watcher".into())
        .spawn(move || run(&loader, &rx))
        .map_err(WatchError::Thread)?;
    Ok(WatchHandle {
        watcher: Some(watcher),
        tx,
        thread: Some(thread),
        dirs,
    })
}

/// The watcher thread: wait for a relevant event, let the burst settle, reload, repeat.
fn run(loader: &Loader, rx: &mpsc::Receiver<Msg>) {
    loop {
        let msg = rx.recv();
        // The feed list changes when the API creates or deletes feeds: look it up per event.
        let (files, _) = watched(loader);
        match msg {
            Ok(Msg::Event(ev)) if relevant(&ev, &files) => {}
            Ok(Msg::Event(_)) => continue,
            Ok(Msg::Stop) | Err(_) => return,
        }
        let first = Instant::now();
        loop {
            let left = MAX_DELAY.saturating_sub(first.elapsed());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(DEBOUNCE.min(left)) {
                Ok(Msg::Event(_)) => continue,
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        let report = loader.reload();
        tracing::info!(
            feeds = report.feeds.len(),
            failed = report.feeds.iter().filter(|f| f.error.is_some()).count(),
            elapsed_ms = report.elapsed.as_millis() as u64,
            "feeds reloaded after a file change"
        );
    }
}

/// The enabled feeds' files (canonical directory + file name) and their directories.
fn watched(loader: &Loader) -> (HashSet<PathBuf>, Vec<PathBuf>) {
    let config = loader.config();
    let mut files: HashSet<PathBuf> = HashSet::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for f in loader.feed_configs().iter().filter(|f| f.enabled) {
        let Some(path) = feed_file(config, f) else {
            continue;
        };
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            continue;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        files.insert(dir.join(name));
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    (files, dirs)
}

/// An event touching a feed file (by its final name, so a rename onto it counts). Errors from
/// the OS watcher (e.g. a queue overflow) may have hidden a change, so they reload too.
fn relevant(ev: &notify::Result<notify::Event>, files: &HashSet<PathBuf>) -> bool {
    match ev {
        Err(e) => {
            tracing::warn!(error = %e, "file watcher error; reloading to be safe");
            true
        }
        Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => false,
        Ok(ev) => ev.paths.is_empty() || ev.paths.iter().any(|p| files.contains(p)),
    }
}
