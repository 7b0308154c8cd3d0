//! No line of a feed is lost in silence (issue 13, point 11): every line of every shipped file
//! is accepted, rejected with its number and reason, skipped with its number and reason, or a
//! comment/blank line, and the four add up to the file's lines. Random files are covered by the
//! property in `feeds_props.rs`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use poolguard::config::{FeedFormat, FeedKind};
use poolguard::feeds::{self, ParsedFeed};

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Every file under `dir`, recursively, in a stable order.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("fixture directory is readable")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The accounting every parse must satisfy, whatever the text.
fn assert_every_line_counted(what: &str, text: &str, p: &ParsedFeed) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let c = p.lines;
    assert_eq!(c.lines, text.lines().count(), "{what}: lines");
    assert_eq!(
        c.accepted + c.rejected + c.skipped + c.comments,
        c.lines,
        "{what}: {c:?}"
    );
    let rejected: BTreeSet<usize> = p.rejected.iter().map(|r| r.line).collect();
    let skipped: BTreeSet<usize> = p.skipped_lines.iter().map(|s| s.line).collect();
    assert_eq!(
        rejected.len(),
        c.rejected,
        "{what}: one count per rejected line"
    );
    assert_eq!(
        skipped.len(),
        c.skipped,
        "{what}: one entry per skipped line"
    );
    assert_eq!(p.skipped, c.skipped, "{what}");
    assert!(rejected.is_disjoint(&skipped), "{what}");
    if p.accepted() == 0 {
        assert_eq!(c.accepted, 0, "{what}");
    }
}

#[test]
fn every_line_of_every_shipped_file_is_accounted_for() {
    let mut all = Vec::new();
    files(&repo("tests/fixtures/feeds"), &mut all);
    files(&repo("blocklists"), &mut all);
    let mut checked = 0;
    for path in all {
        let Ok(bytes) = std::fs::read(&path) else {
            panic!("{} is unreadable", path.display());
        };
        let text = String::from_utf8_lossy(&bytes);
        for kind in [FeedKind::Domains, FeedKind::Ips, FeedKind::Allow] {
            let p = feeds::parse(&text, FeedFormat::Auto, kind);
            let what = format!("{} ({kind:?})", path.display());
            assert_every_line_counted(&what, &text, &p);
            // The format parsers classify every line of real files themselves; the catch-all
            // in `each_line` is a safety net, not how lines are meant to be handled.
            let caught: Vec<_> = p
                .rejected
                .iter()
                .filter(|r| r.reason.starts_with("not a rule poolguard can read"))
                .collect();
            assert!(caught.is_empty(), "{what}: {caught:#?}");
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} files found");
}

#[test]
fn hosts_lines_and_prefixes_in_an_adblock_list_are_read_not_dropped() {
    // Detected as adblock (the header), with a hosts line and an address prefix rule, as
    // AdGuard-syntax lists mix them.
    let text = "[Adblock Plus 2.0]\n! Title: mixed\n||pool.example^\n0.0.0.0 hosts.example\n||203.0.113.0/24^\n||198.51.100.7/16^\n##.banner\n";
    let p = feeds::parse(text, FeedFormat::Auto, FeedKind::Domains);
    assert_eq!(p.format, Some(FeedFormat::Adblock));
    let names: Vec<_> = p.domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["pool.example", "hosts.example"]);
    assert_eq!(p.ips, ["203.0.113.0/24".parse().unwrap()]);
    // `/16` with host bits set: rejected with its line and reason, never truncated.
    assert_eq!(p.rejected.len(), 1, "{:?}", p.rejected);
    assert_eq!(p.rejected[0].line, 6);
    assert!(
        p.rejected[0].reason.contains("host bits"),
        "{:?}",
        p.rejected
    );
    assert_eq!(p.skipped_lines.len(), 1);
    assert_eq!(p.skipped_lines[0].line, 7);
    assert_eq!(
        (
            p.lines.accepted,
            p.lines.rejected,
            p.lines.skipped,
            p.lines.comments
        ),
        (3, 1, 1, 2)
    );
    assert_every_line_counted("mixed adblock", text, &p);

    // In an allow feed the prefix has nowhere to go: rejected, naming the feed kind to use.
    let p = feeds::parse(text, FeedFormat::Auto, FeedKind::Allow);
    let r = p.rejected.iter().find(|r| r.line == 5).expect("line 5");
    assert!(r.reason.contains("\"ips\""), "{}", r.reason);
}

#[test]
fn adblock_rules_inside_plain_and_hosts_lists_are_read() {
    let text = "0.0.0.0 a.example\nb.example\n||c.example^\n@@||d.example^\n";
    for format in [FeedFormat::Hosts, FeedFormat::Plain, FeedFormat::Adblock] {
        assert_mixed_lines_read(text, format);
    }
    // A plain or hosts list's trailing `#` comment is cut before the adblock rule is read.
    let text = "0.0.0.0 a.example\nb.example\n||c.example^ # pool\n@@||d.example^\n";
    for format in [FeedFormat::Hosts, FeedFormat::Plain] {
        assert_mixed_lines_read(text, format);
    }
}

/// `text` (a hosts line, a bare name, `||c.example^`, `@@||d.example^`) reads fully in `format`.
fn assert_mixed_lines_read(text: &str, format: FeedFormat) {
    let p = feeds::parse(text, format, FeedKind::Domains);
    let names: Vec<_> = p.domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["a.example", "b.example", "c.example"], "{format:?}");
    assert_eq!(p.exceptions[0].name.as_str(), "d.example");
    assert!(p.rejected.is_empty(), "{format:?}: {:?}", p.rejected);
    assert_every_line_counted("hosts with adblock", text, &p);
}

#[test]
fn boilerplate_and_odd_lines_are_named_not_dropped() {
    // Each of these once vanished without a count or a line number.
    let cases: [(&str, FeedFormat); 5] = [
        ("127.0.0.1 localhost\n", FeedFormat::Hosts),
        ("fe80::1%lo0 localhost\n", FeedFormat::Hosts),
        ("||x.example^ # trailing\n", FeedFormat::Adblock),
        ("$ORIGIN rpz.campus.\n  CNAME .\n", FeedFormat::Rpz),
        ("0.0.0.0 localhost\n", FeedFormat::Adblock),
    ];
    for (text, format) in cases {
        let p = feeds::parse(text, format, FeedKind::Domains);
        let c = p.lines;
        assert!(
            c.rejected + c.skipped >= 1,
            "{text:?} in {format:?}: {c:?} {:?}",
            p.rejected
        );
        for r in &p.rejected {
            assert!(!r.reason.is_empty());
        }
        assert_every_line_counted(text, text, &p);
    }
}
