//! The listed pool families, as the lookalike checks need them: each listed name's registered
//! domain and second-level label, and the operators whose hosts are listed one by one because
//! their parent domain is not blocked whole.
//!
//! "Registered domain" here is a heuristic, not the Public Suffix List: the last two labels,
//! or three when the second-to-last is a generic second level under a country code
//! (`pool.com.cn`, `miner.co.uk`). It only decides which names are compared, never what is
//! blocked, and a wrong guess costs a maintainer one dismissal.

use std::collections::{HashMap, HashSet};

use poolguard_policy::Policy;

/// Generic second levels under country codes (`com.cn`, `co.uk`, `ac.jp`…).
const GENERIC_SECOND_LEVELS: &[&str] = &[
    "ac", "co", "com", "edu", "gov", "gob", "go", "ne", "net", "or", "org",
];

/// Labels that name a pool endpoint: a host carrying one (alone or with a region or number:
/// `xmr-eu1`, `stratum2`) under a listed operator is a candidate. Coin tickers of the coins
/// campus miners mine, and the words pools use for their endpoints.
const ENDPOINT_WORDS: &[&str] = &[
    "stratum", "pool", "pools", "mine", "mining", "miner", "proxy", "solo", "xmr", "eth", "etc",
    "rvn", "btc", "bch", "ltc", "zec", "erg", "kas", "xhv", "zeph", "dero", "beam", "grin", "cfx",
    "flux", "nexa", "alph", "dnx", "qrl", "ton", "xna", "clore", "neox", "ctxc", "firo", "ae",
    "ckb", "iron", "kls", "pyi", "rxd", "zil", "xel", "sero", "xmv", "wow", "aeon",
];

/// The registered domain of `name` (see the module comment); `None` for a single label.
pub fn registered(name: &str) -> Option<&str> {
    let labels: Vec<&str> = name.rsplitn(4, '.').collect();
    if labels.len() < 2 {
        return None;
    }
    let keep = if labels.len() >= 3
        && labels[0].len() == 2
        && GENERIC_SECOND_LEVELS.contains(&labels[1])
    {
        3
    } else {
        2
    };
    let tail: usize = labels[..keep].iter().map(|l| l.len() + 1).sum::<usize>() - 1;
    Some(&name[name.len() - tail..])
}

/// The label a pool family is known by: the registered domain's first label
/// (`nanopool` of `nanopool.org`).
pub fn family_label(registered: &str) -> &str {
    registered.split('.').next().unwrap_or(registered)
}

/// Whether a label names a pool endpoint (`stratum`, `xmr-eu1`, `eth2`, `pool-us`).
pub fn is_endpoint_label(label: &str) -> bool {
    label
        .split(['-', '_'])
        .map(|part| part.trim_end_matches(|c: char| c.is_ascii_digit()))
        .any(|word| ENDPOINT_WORDS.contains(&word))
}

/// Families shorter than this are not compared across top-level domains: two- and
/// three-letter labels (`hf.com`, `f2p.io`) collide with unrelated sites too often.
const MIN_FAMILY_LABEL: usize = 4;

/// What the lookalike checks compare a name with, built from one policy snapshot.
#[derive(Debug, Default)]
pub struct Families {
    /// Family label → one listed registered domain of the family (`nanopool` → `nanopool.org`).
    by_label: HashMap<String, String>,
    /// Every registered domain that has a listed name (or is listed).
    listed: HashSet<String>,
    /// Registered domains with listed hosts below them but not listed themselves: operators
    /// whose parent cannot be blocked whole → one of their listed hosts, for the evidence.
    operators: HashMap<String, String>,
}

impl Families {
    /// The families of the listed names of feeds in `categories`.
    pub fn of(policy: &Policy, categories: &[String]) -> Self {
        let mut f = Self::default();
        for listed in policy.listed_names() {
            if !categories.iter().any(|c| **c == *listed.feed.category) {
                continue;
            }
            let Some(reg) = registered(listed.name) else {
                continue;
            };
            f.listed.insert(reg.to_string());
            let label = family_label(reg);
            if label.len() >= MIN_FAMILY_LABEL {
                f.by_label
                    .entry(label.to_string())
                    .or_insert_with(|| reg.to_string());
            }
            if listed.name != reg && !blocked_whole(policy, reg) {
                f.operators
                    .entry(reg.to_string())
                    .or_insert_with(|| listed.name.to_string());
            }
        }
        f
    }

    /// A listed registered domain of the same family under another top-level domain.
    pub fn other_tld(&self, reg: &str) -> Option<&str> {
        if self.listed.contains(reg) {
            return None;
        }
        self.by_label.get(family_label(reg)).map(String::as_str)
    }

    /// One listed host of the operator whose registered domain is `reg`, when `reg` is such
    /// an operator.
    pub fn operator_host(&self, reg: &str) -> Option<&str> {
        self.operators.get(reg).map(String::as_str)
    }
}

/// Whether the policy blocks `name` and everything below it (a subtree rule, not
/// allowlisted): then no host under it can be a candidate.
fn blocked_whole(policy: &Policy, name: &str) -> bool {
    policy
        .match_name(name.as_bytes())
        .is_some_and(|m| !m.allowed && !m.exact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_domains_keep_generic_second_levels_under_country_codes() {
        assert_eq!(registered("xmr-eu1.nanopool.org"), Some("nanopool.org"));
        assert_eq!(registered("nanopool.org"), Some("nanopool.org"));
        assert_eq!(registered("a.pool.com.cn"), Some("pool.com.cn"));
        assert_eq!(registered("miner.co.uk"), Some("miner.co.uk"));
        assert_eq!(registered("x.y.io"), Some("y.io"));
        assert_eq!(registered("org"), None);
    }

    #[test]
    fn endpoint_labels_carry_a_pool_word_or_a_coin_ticker() {
        for yes in [
            "stratum",
            "xmr-eu1",
            "eth2",
            "pool-us",
            "rvn",
            "stratum_ssl",
        ] {
            assert!(is_endpoint_label(yes), "{yes}");
        }
        for no in ["www", "explorer", "wallet", "api", "ethics", "poolside"] {
            assert!(!is_endpoint_label(no), "{no}");
        }
    }
}
