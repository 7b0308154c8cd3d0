//! The feeds poolguard ships: they parse cleanly, keep the pools, and contain none of the
//! false-positive traps a campus would complain about (TRICKY 6, 7, 12).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use poolguard::config::{Config, FeedFormat, FeedKind};
use poolguard::feeds::{self, ParsedFeed};

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn load(p: &str, kind: FeedKind) -> ParsedFeed {
    let text = std::fs::read_to_string(repo(p)).expect("shipped feed is readable");
    feeds::parse(&text, FeedFormat::Auto, kind)
}

fn names(p: &ParsedFeed) -> HashSet<&str> {
    p.domains.iter().map(|d| d.name.as_str()).collect()
}

#[test]
fn mining_feed_parses_cleanly_and_keeps_the_pools() {
    let p = load("blocklists/mining.txt", FeedKind::Domains);
    assert_eq!(p.format, Some(FeedFormat::Plain));
    assert!(p.rejected.is_empty(), "{:#?}", p.rejected);
    assert_eq!(p.skipped, 0);
    assert!(p.domains.len() > 10_000, "{}", p.domains.len());
    let n = names(&p);
    assert_eq!(n.len(), p.domains.len(), "the build deduplicates");
    for pool in [
        "xmr.pool.minergate.com",
        "minergate.com",
        "nanopool.org",
        "2miners.com",
        "f2pool.com",
        "herominers.com",
        "hashvault.pro",
        "supportxmr.com",
        "moneroocean.stream",
        "c3pool.com",
        "kryptex.network",
        "unmineable.com",
        "nicehash.com",
        "viabtc.com",
        "antpool.com",
        "ethermine.org",
        "flexpool.io",
        "zergpool.com",
        "prohashing.com",
        "pool.bitcoin.com",
        "coinhive.com",
        "crypto-loot.com",
        "black-js.github.io",
        "jqcdn01.herokuapp.com",
        "cfcd.duckdns.org",
    ] {
        assert!(n.contains(pool), "{pool} missing");
    }
}

#[test]
fn mining_feed_has_no_exchanges_sites_or_parents() {
    let p = load("blocklists/mining.txt", FeedKind::Domains);
    let n = names(&p);
    for bad in [
        "binance.com",
        "api.binance.com",
        "bitcoin.com",
        "bitcoin.org",
        "bittrex.com",
        "coinbase.com",
        "blockchain.com",
        "blockchain.info",
        "kucoin.com",
        "www.kucoin.com",
        "kiwifarms.net",
        "myetherwallet.com",
        "trezor.io",
        "server.com",
        "hashbag.cc",
        "info",
        "github.io",
        "github.com",
        "herokuapp.com",
        "amazonaws.com",
        "cloudfront.net",
        "duckdns.org",
        "now.sh",
        "bitbucket.io",
        "ipfs.io",
        "pool.ntp.org",
        "pool-ipm.adhese.com",
        "msn.com",
        "r.msn.com",
        "hq.appsflyer.com",
        "twitter.com",
        "x.com",
        "bitcointalk.org",
        "edgeno.de",
    ] {
        assert!(!n.contains(bad), "{bad} must not be in the mining feed");
    }
    assert!(!n.iter().any(|d| d.starts_with("binance.")));
    assert!(
        !n.iter().any(|d| d.starts_with("xn--")),
        "IDN look-alikes are phishing"
    );
}

#[test]
fn allowlist_guards_parents_exactly_and_time_servers_wholly() {
    let allow = load("blocklists/allow.txt", FeedKind::Allow);
    assert!(allow.rejected.is_empty(), "{:#?}", allow.rejected);
    let exact = |n: &str| {
        allow
            .domains
            .iter()
            .find(|d| d.name.as_str() == n)
            .map(|d| d.exact)
    };
    assert_eq!(exact("pool.ntp.org"), Some(false));
    for parent in [
        "github.io",
        "herokuapp.com",
        "amazonaws.com",
        "duckdns.org",
        "now.sh",
        "cloudflare.com",
    ] {
        assert_eq!(
            exact(parent),
            Some(true),
            "{parent} must be allowed exactly"
        );
    }
    // No blocked name is overridden by the allowlist.
    let mining = load("blocklists/mining.txt", FeedKind::Domains);
    for d in &mining.domains {
        for a in &allow.domains {
            let hit = if a.exact {
                d.name == a.name
            } else {
                d.name.is_within(&a.name)
            };
            assert!(!hit, "{} is blocked and allowed ({})", d.name, a.name);
        }
    }
}

/// The bypass feed parses cleanly, holds the resolvers the issue names, and none of them is
/// allowlisted or mining-listed (a `log` rule under a block would let that name through), and
/// the shipped config watches it with `log`, off by default.
#[test]
fn bypass_feed_parses_cleanly_and_is_shipped_off_with_log() {
    let p = load("blocklists/bypass.txt", FeedKind::Domains);
    assert!(p.rejected.is_empty(), "{:#?}", p.rejected);
    let n = names(&p);
    for resolver in [
        "dns.google",
        "cloudflare-dns.com",
        "dns.quad9.net",
        "doh.opendns.com",
        "dns.alidns.com",
        "doh.pub",
        "dns.adguard.com",
    ] {
        assert!(n.contains(resolver), "{resolver}");
    }
    let mining = load("blocklists/mining.txt", FeedKind::Domains);
    let allow = load("blocklists/allow.txt", FeedKind::Allow);
    let listed: HashSet<&str> = names(&mining).union(&names(&allow)).copied().collect();
    for name in &n {
        let mut rest = *name;
        loop {
            assert!(
                !listed.contains(rest),
                "{name} is under {rest}, listed elsewhere"
            );
            match rest.split_once('.') {
                Some((_, parent)) => rest = parent,
                None => break,
            }
        }
    }
    let config = Config::load(&repo("config.toml")).expect("shipped config loads");
    let bypass = config
        .feeds
        .iter()
        .find(|f| f.name == "bypass")
        .expect("bypass feed");
    assert_eq!(bypass.category, poolguard::model::BYPASS_CATEGORY);
    assert_eq!(bypass.action, Some(poolguard::model::Action::Log));
    assert!(!bypass.enabled);
    assert!(config.pools.enabled);
}

/// `poolguard check` on the shipped config reports nothing.
#[test]
fn shipped_config_checks_clean() {
    let config = Config::load(&repo("config.toml")).expect("shipped config loads");
    let problems = feeds::check(&config);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(Path::new(&repo("blocklists/sources/README.md")).is_file());
}

/// The Docker image's edits to the shipped config (`contrib/docker/config.sed`, run by the
/// Dockerfile) each still match a line, and give a config that serves every interface and
/// writes only into the `/var/lib/poolguard` volume. No Docker daemon needed: it runs the same
/// `sed` the image build runs.
#[test]
fn docker_config_edits_apply_to_the_shipped_config() {
    let shipped = std::fs::read_to_string(repo("config.toml")).expect("config.toml");
    let out = std::process::Command::new("sed")
        .arg("-f")
        .arg(repo("contrib/docker/config.sed"))
        .arg(repo("config.toml"))
        .output()
        .expect("sed runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let edited = String::from_utf8(out.stdout).expect("utf-8");
    let changed = shipped
        .lines()
        .zip(edited.lines())
        .filter(|(a, b)| a != b)
        .count();
    let edits = std::fs::read_to_string(repo("contrib/docker/config.sed"))
        .expect("config.sed")
        .lines()
        .filter(|l| l.starts_with("s|"))
        .count();
    assert_eq!(changed, edits, "every edit matches exactly one line");

    // The image's /etc/poolguard: the edited config beside the shipped lists.
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path();
    std::os::unix::fs::symlink(repo("blocklists"), base.join("blocklists")).expect("symlink");
    let config = Config::from_toml(&edited, &base.join("config.toml"), base).expect("parses");
    let all: Vec<std::net::SocketAddr> = vec![
        "0.0.0.0:53".parse().expect("addr"),
        "[::]:53".parse().expect("addr"),
    ];
    assert_eq!(config.dns.listen, all);
    assert_eq!(config.api.listen, "0.0.0.0:8080".parse().ok());
    assert_eq!(
        config.resolve(&config.store.path),
        Path::new("/var/lib/poolguard/poolguard.db")
    );
    assert_eq!(config.feeds_dir(), Path::new("/var/lib/poolguard/feeds"));
    // The shipped lists stay in the image, read from the config's folder.
    let mining = config
        .feeds
        .iter()
        .find(|f| f.name == "mining")
        .expect("mining feed");
    assert_eq!(
        mining.path.as_deref().map(|p| config.resolve(p)),
        Some(base.join("blocklists/mining.txt"))
    );
}
