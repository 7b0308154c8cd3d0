//! The loader as an operator meets it: load feeds, break one, fix it, edit it under the watcher.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use poolguard::config::{Config, FeedFormat};
use poolguard::feeds::loader::Loader;
use poolguard::feeds::spawn_watcher;
use poolguard::policy::{Decision, Policy, SharedPolicy};

fn setup(dir: &Path, mining: &str) -> (Arc<Loader>, SharedPolicy) {
    std::fs::write(dir.join("mining.txt"), mining).unwrap();
    std::fs::write(dir.join("allow.txt"), "=github.io\n").unwrap();
    let toml = r#"
[[feeds]]
name = "allow"
path = "allow.txt"
kind = "allow"

[[feeds]]
name = "mining"
path = "mining.txt"
"#;
    let config = Config::from_toml(toml, &dir.join("config.toml"), dir).expect("config");
    let policy: SharedPolicy = Arc::new(ArcSwap::from_pointee(Policy::empty()));
    (
        Arc::new(Loader::new(Arc::new(config), policy.clone())),
        policy,
    )
}

/// The error a reload reported for the mining feed (second in the config), or "".
fn mining_error(r: &poolguard::feeds::loader::ReloadReport) -> &str {
    r.feeds[1].error.as_deref().unwrap_or("")
}

/// Polls (bounded) until `name` is blocked: the watcher reloads on its own thread.
fn wait_blocked(policy: &SharedPolicy, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !blocked(policy, name) {
        assert!(Instant::now() < deadline, "{name} not blocked within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn blocked(policy: &SharedPolicy, name: &str) -> bool {
    matches!(policy.load().check_name(name), Decision::Blocked(_))
}

/// Replaces a file the way editors and uploads do: write a temp file, rename it over.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn loads_reports_and_keeps_the_last_good_version() {
    let dir = tempfile::tempdir().unwrap();
    let (loader, policy) = setup(dir.path(), "pool.example\nserver.com:1234\n");
    let r = loader.reload();
    let mining = &r.feeds[1];
    assert_eq!((mining.accepted, mining.rejected.len()), (1, 1));
    assert_eq!(mining.rejected[0].line, 2);
    assert!(mining.error.is_none());
    assert!(blocked(&policy, "x.pool.example"));
    assert!(!blocked(&policy, "github.io"));

    let good = loader.feeds();
    let status = &good[1];
    assert_eq!(status.name, "mining");
    assert_eq!(status.format, Some(FeedFormat::Plain));
    assert_eq!((status.entries, status.rejected), (1, 1));
    assert!(status.loaded_at.is_some() && status.last_error.is_none());
    let sha = status.sha256.clone().expect("hash of the content in force");
    assert_eq!(sha.len(), 64);

    // An HTML error page saved over the list: nothing usable, previous version stays.
    std::fs::write(dir.path().join("mining.txt"), "<html>\n<body>oops</body>\n").unwrap();
    let r = loader.reload();
    assert!(
        mining_error(&r).contains("no usable entry"),
        "{}",
        mining_error(&r)
    );
    assert!(blocked(&policy, "pool.example"));
    let status = &loader.feeds()[1];
    assert!(status.last_error.is_some());
    assert_eq!(status.sha256.as_deref(), Some(sha.as_str()));
    assert_eq!(status.loaded_at, good[1].loaded_at);

    // The file disappears: still the previous version.
    std::fs::remove_file(dir.path().join("mining.txt")).unwrap();
    let r = loader.reload();
    assert!(
        mining_error(&r).contains("cannot read"),
        "{}",
        mining_error(&r)
    );
    assert!(blocked(&policy, "pool.example"));

    // Fixed: the new content is in force and the error is gone.
    std::fs::write(dir.path().join("mining.txt"), "other.example\n").unwrap();
    let r = loader.reload();
    assert!(r.feeds[1].error.is_none());
    assert!(blocked(&policy, "other.example") && !blocked(&policy, "pool.example"));
    assert!(loader.feeds()[1].last_error.is_none());

    // Only rules a resolver cannot honour (a cosmetic list): nothing usable, keep the previous.
    std::fs::write(
        dir.path().join("mining.txt"),
        "[Adblock Plus 2.0]\nexample.com##.ad\n",
    )
    .unwrap();
    let r = loader.reload();
    assert!(
        mining_error(&r).contains("1 skipped"),
        "{}",
        mining_error(&r)
    );
    assert!(blocked(&policy, "other.example"));

    // Emptying a feed on purpose is allowed (comments only: nothing rejected).
    std::fs::write(dir.path().join("mining.txt"), "# retired\n").unwrap();
    let r = loader.reload();
    assert!(r.feeds[1].error.is_none());
    assert!(!blocked(&policy, "other.example"));
}

#[test]
fn watcher_reloads_after_a_rename_and_stops_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let (loader, policy) = setup(dir.path(), "pool.example\n");
    loader.reload();
    let handle = spawn_watcher(loader.clone()).expect("watcher starts");
    assert_eq!(handle.dirs.len(), 1);

    replace(
        &dir.path().join("mining.txt"),
        "pool.example\nnew-pool.example\n",
    );
    wait_blocked(&policy, "new-pool.example");
    // A second save through the same path still works (the watch is on the directory).
    replace(&dir.path().join("mining.txt"), "third.example\n");
    wait_blocked(&policy, "third.example");
    // Dropping the handle joins the watcher thread, which releases its loader.
    drop(handle);
    assert_eq!(Arc::strong_count(&loader), 1);
}

/// `poolguard check`: every problem as `path:line: `text` reason`, whole-file problems too.
#[test]
fn check_lists_every_problem_with_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (loader, _) = setup(
        dir.path(),
        "pool.example\nserver.com:1234\nxmr.-eu1.nanopool.org\n",
    );
    let problems = poolguard::feeds::check(loader.config());
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let path = dir.path().join("mining.txt");
    assert_eq!(shown.len(), 2, "{shown:#?}");
    assert!(shown[0].starts_with(&format!(
        "{}:2: `server.com:1234` has a port",
        path.display()
    )));
    assert_eq!(
        shown[1],
        format!(
            "{}:3: `xmr.-eu1.nanopool.org` label `-eu1` starts with '-'",
            path.display()
        )
    );

    std::fs::write(&path, "<html>\n").unwrap();
    let problems = poolguard::feeds::check(loader.config());
    assert_eq!(problems[0].line, 0);
    assert!(problems[0].to_string().contains("no usable entry"));
}

/// The loader keeps each feed as its compiled rules, not its parse: recompiling after another
/// feed changed (or failed) must bring back every kind of rule of the untouched feeds, and a
/// disabled feed comes back from its file.
#[test]
fn editing_one_feed_keeps_the_others_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (loader, policy) = setup(dir.path(), "pool.example\n");
    std::fs::write(
        dir.path().join("adblock.txt"),
        "||miner.example^\n||coin.example^\n@@||ok.coin.example^\n||10.9.8.7^\n||miner.example^\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("exact.txt"), "=host.example\n").unwrap();
    let mut feeds = loader.feed_configs().as_ref().clone();
    let mut extra = |name: &str, format: FeedFormat| {
        let mut f = feeds[1].clone();
        f.name = name.into();
        f.path = Some(format!("{name}.txt").into());
        f.format = format;
        feeds.push(f);
    };
    extra("adblock", FeedFormat::Adblock);
    extra("exact", FeedFormat::Plain);
    loader.set_feeds(feeds.clone());
    let check = |policy: &SharedPolicy| {
        let p = policy.load();
        assert!(blocked(policy, "a.miner.example") && blocked(policy, "x.coin.example"));
        assert!(matches!(
            p.check_name("a.ok.coin.example"),
            Decision::Allowed(_)
        ));
        assert!(blocked(policy, "host.example") && !blocked(policy, "a.host.example"));
        assert!(p.check_ip("10.9.8.7".parse().unwrap()).is_some());
        assert!(!blocked(policy, "github.io"));
    };
    loader.reload();
    check(&policy);
    let adblock = &loader.feeds()[2];
    assert_eq!(
        (adblock.entries, adblock.rejected),
        (5, 0),
        "duplicates counted as lines"
    );

    // Feed B changes twice (the untouched feeds are rebuilt from rules of rules), then breaks.
    for text in ["pool.example\nnew.example\n", "third.example\n", "<html>\n"] {
        std::fs::write(dir.path().join("mining.txt"), text).unwrap();
        loader.reload();
        check(&policy);
    }
    assert!(blocked(&policy, "third.example") && !blocked(&policy, "new.example"));

    // What publishing reads: each feed's rules, once.
    let compiled = loader.compiled();
    let ad = compiled
        .feeds
        .iter()
        .find(|f| &*f.info.name == "adblock")
        .unwrap();
    let names: Vec<&str> = ad.rules.domains().map(|r| r.name).collect();
    assert_eq!(names, ["miner.example", "coin.example"]);
    let exceptions: Vec<&str> = ad.rules.exceptions().map(|r| r.name).collect();
    assert_eq!(exceptions, ["ok.coin.example"]);

    // Disabled: out of the policy; enabled again: read from its (unchanged) file.
    feeds[2].enabled = false;
    loader.set_feeds(feeds.clone());
    loader.reload();
    assert!(!blocked(&policy, "a.miner.example") && blocked(&policy, "host.example"));
    feeds[2].enabled = true;
    loader.set_feeds(feeds);
    let r = loader.reload();
    assert!(r.feeds[2].error.is_none());
    check(&policy);
}
