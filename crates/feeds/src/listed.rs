//! When each pool name was first listed, for the bulletin to other units ("names added to the
//! feeds this week"): every name of the block feeds of the compiled policy, with the feed
//! that listed it and the time poolguard first saw it listed, kept in a small state file
//! (`<state dir>/listed-since.tsv`) so a restart forgets nothing.
//!
//! The first run has no history: the names it finds get time 0 ("listed before poolguard
//! kept track"), so the first bulletin does not announce the whole feed as new. A name
//! removed and listed again keeps its first time. About 60 bytes a name in memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use poolguard_model::FeedKind;

use crate::loader::Compiled;

/// The names' first-listed times.
#[derive(Debug)]
pub struct ListedSince {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The compile last looked at (`None`: none yet).
    generation: Option<u64>,
    /// Whether a history existed (else the first look is the baseline).
    had_history: bool,
    /// name → (feed, first listed ms).
    first: HashMap<Box<str>, (Arc<str>, i64)>,
}

impl ListedSince {
    /// The history kept in `path` (an unreadable or missing file starts a new one).
    pub fn open(path: &Path) -> Self {
        let mut state = State::default();
        if let Ok(text) = std::fs::read_to_string(path) {
            state.had_history = true;
            let mut feeds: HashMap<&str, Arc<str>> = HashMap::new();
            for line in text.lines() {
                let mut f = line.split('\t');
                let (Some(name), Some(feed), Some(ms)) = (f.next(), f.next(), f.next()) else {
                    continue;
                };
                let Ok(ms) = ms.parse::<i64>() else { continue };
                let feed = feeds.entry(feed).or_insert_with(|| Arc::from(feed)).clone();
                state.first.insert(name.into(), (feed, ms));
            }
        }
        Self {
            path: path.to_path_buf(),
            state: Mutex::new(state),
        }
    }

    /// Notes the names of `compiled` not seen before as listed at `now_ms` (at 0 on the first
    /// look of a new history); writes the file when anything was added. Cheap when the
    /// compile was looked at already.
    pub fn observe(&self, compiled: &Compiled, now_ms: i64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.generation == Some(compiled.generation) {
            return;
        }
        let stamp = if state.generation.is_none() && !state.had_history {
            0
        } else {
            now_ms
        };
        state.generation = Some(compiled.generation);
        let mut added = 0usize;
        for f in &compiled.feeds {
            if f.info.kind != FeedKind::Domains || !f.info.action.blocks() {
                continue;
            }
            for d in f.rules.domains() {
                if !state.first.contains_key(d.name) {
                    state
                        .first
                        .insert(d.name.into(), (f.info.name.clone(), stamp));
                    added += 1;
                }
            }
        }
        if added == 0 && state.had_history {
            return;
        }
        state.had_history = true;
        let mut text = String::with_capacity(state.first.len() * 40);
        for (name, (feed, ms)) in &state.first {
            text.push_str(&format!("{name}\t{feed}\t{ms}\n"));
        }
        if let Err(error) = poolguard_versions::write_atomic(&self.path, text.as_bytes()) {
            tracing::warn!(%error, path = %self.path.display(), "first-listed times not saved; kept in memory");
        }
        if stamp > 0 && added > 0 {
            tracing::info!(added, "pool names added to the feeds");
        }
    }

    /// The names first listed in `[since_ms, until_ms)`, newest first: at most `limit`, and
    /// how many there are.
    pub fn added(
        &self,
        since_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> (Vec<(String, String, i64)>, usize) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut found: Vec<(String, String, i64)> = state
            .first
            .iter()
            .filter(|(_, (_, ms))| *ms >= since_ms && *ms < until_ms)
            .map(|(n, (f, ms))| (n.to_string(), f.to_string(), *ms))
            .collect();
        let total = found.len();
        found.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        found.truncate(limit);
        (found, total)
    }
}
