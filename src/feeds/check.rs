//! `poolguard check`: every problem in every configured feed, as `path:line: reason`.
//!
//! The same parsers the loader uses, so what `check` reports is exactly what a reload would
//! reject; editors and CI can jump to `path:line`.

use std::fmt;
use std::path::PathBuf;

use crate::config::Config;

/// One problem in one feed file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The feed's name from the config.
    pub feed: String,
    /// The feed file, resolved against the config's directory.
    pub path: PathBuf,
    /// 1-based; 0 when the problem is the whole file (unreadable, nothing usable).
    pub line: usize,
    /// The offending line, empty for whole-file problems.
    pub text: String,
    /// What is wrong, in words a list maintainer can act on.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.reason)
        } else {
            write!(
                f,
                "{}:{}: `{}` {}",
                self.path.display(),
                self.line,
                self.text,
                self.reason
            )
        }
    }
}

/// Parses every enabled feed with a local file and lists all its problems, in file order.
pub fn check(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    for feed in config.feeds.iter().filter(|f| f.enabled) {
        let Some(path) = &feed.path else { continue };
        let path = config.resolve(path);
        let whole = |reason: String| Problem {
            feed: feed.name.clone(),
            path: path.clone(),
            line: 0,
            text: String::new(),
            reason,
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                problems.push(whole(format!("cannot read: {e}")));
                continue;
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let parsed = super::parse(&text, feed.format, feed.kind);
        if parsed.accepted() == 0 && (parsed.rejected.len() + parsed.skipped) > 0 {
            problems.push(whole(format!(
                "no usable entry: {} lines rejected, {} skipped (wrong `format` or `kind`?)",
                parsed.rejected.len(),
                parsed.skipped
            )));
        }
        problems.extend(parsed.rejected.into_iter().map(|r| Problem {
            feed: feed.name.clone(),
            path: path.clone(),
            line: r.line,
            text: r.text,
            reason: r.reason,
        }));
    }
    problems
}
