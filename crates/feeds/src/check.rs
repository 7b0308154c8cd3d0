//! `poolguard check`: every problem in every configured feed, as `path:line: reason`.
//!
//! The same parsers the loader uses, so what `check` reports is exactly what a reload would
//! reject; editors and CI can jump to `path:line`.

use std::fmt;
use std::path::PathBuf;

use poolguard_config::Config;

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
    problems.extend(feeds_dir_problem(config));
    problems
}

/// With the API on, `[api] feeds_dir` must be writable: uploads, subscription copies and the
/// version history go there. Found at start (a warning: DNS runs regardless) and by `check`,
/// not at the first upload, because the usual cause is a read-only deployment (systemd's
/// `ProtectSystem=strict`, a read-only mount) that only ops can fix. Creates the folder, as
/// the first write would.
pub fn feeds_dir_problem(config: &Config) -> Option<Problem> {
    config.api.listen?;
    let dir = config.feeds_dir();
    let probe = dir.join(format!(".poolguard-write-test-{}", std::process::id()));
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&probe, b""))
        .and_then(|()| std::fs::remove_file(&probe));
    let error = written.err()?;
    Some(Problem {
        feed: "[api] feeds_dir".into(),
        path: dir,
        line: 0,
        text: String::new(),
        reason: format!(
            "is not writable ({error}): feed uploads, subscription copies and version history \
             will fail; point `[api] feeds_dir` at a writable folder"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_feeds_dir(base: &std::path::Path, dir: &str) -> Config {
        let mut config = Config {
            base_dir: base.to_path_buf(),
            ..Config::default()
        };
        config.api.listen = "127.0.0.1:0".parse().ok();
        config.api.feeds_dir = dir.into();
        config
    }

    #[test]
    fn an_unwritable_feeds_dir_is_a_problem_only_with_the_api_on() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("file"), b"x").expect("file");
        // Root may write anywhere, so "unwritable" here is a folder under a regular file.
        let bad = with_feeds_dir(tmp.path(), "file/feeds");
        let p = feeds_dir_problem(&bad).expect("a problem");
        assert_eq!(p.path, tmp.path().join("file/feeds"));
        assert!(p.reason.starts_with("is not writable ("), "{}", p.reason);
        assert!(check(&bad).contains(&p));

        let mut off = bad.clone();
        off.api.listen = None;
        assert_eq!(feeds_dir_problem(&off), None);

        let good = with_feeds_dir(tmp.path(), "state/feeds");
        assert_eq!(feeds_dir_problem(&good), None);
        assert!(
            tmp.path().join("state/feeds").is_dir(),
            "created, as a first write would"
        );
        let left: Vec<_> = std::fs::read_dir(tmp.path().join("state/feeds"))
            .expect("dir")
            .collect();
        assert!(left.is_empty(), "the probe file is removed");
    }
}
