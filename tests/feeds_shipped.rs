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

/// `poolguard check` on the shipped config reports nothing.
#[test]
fn shipped_config_checks_clean() {
    let config = Config::load(&repo("config.toml")).expect("shipped config loads");
    let problems = feeds::check(&config);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(Path::new(&repo("blocklists/sources/README.md")).is_file());
}
