//! The set itself: every address a listed name resolved to, with the name, its category and
//! when it was first and last seen; kept in a small JSON file next to the store so a restart
//! keeps the first-seen times and the addresses of names not yet resolved again.
//!
//! Why a file and not a SQLite table: the set is small (a few thousand addresses), written
//! whole a few times a minute at most, and read by nothing but this module; a table would put
//! its writes in the store writer's transactions, which are sized for the query log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// One address of the set, as the API publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolAddress {
    /// The address an answer held.
    pub address: IpAddr,
    /// The listed name whose answer held it (the latest, when several did).
    pub name: String,
    /// The category of the feed that lists the name (`mining`, `bypass`).
    pub category: String,
    /// When an answer first held it, ms since the Unix epoch.
    pub first_seen_ms: i64,
    /// When an answer last held it, ms since the Unix epoch.
    pub last_seen_ms: i64,
}

/// What the state file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    addresses: Vec<PoolAddress>,
}

/// Why the state file could not be read or written (logged; the set goes on in memory).
#[derive(Debug, thiserror::Error)]
pub enum PoolStateError {
    #[error("pool address set {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("pool address set {path} is not valid JSON ({source}); starting empty")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The shared set: written by the refresh task, read by the API. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct PoolSet {
    inner: Arc<Mutex<HashMap<IpAddr, PoolAddress>>>,
}

impl PoolSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, PoolAddress>> {
        // A panic while holding the lock leaves a map that is still whole: go on with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The addresses of one category, in address order (what `publish/ips?category=` lists).
    pub fn category(&self, category: &str) -> Vec<PoolAddress> {
        let mut v: Vec<PoolAddress> = self
            .lock()
            .values()
            .filter(|a| a.category == category)
            .cloned()
            .collect();
        v.sort_unstable_by_key(|a| a.address);
        v
    }

    /// Address → the listed name it came from, for the addresses of `categories`: what the
    /// review queue's scan compares answers with (`poolguard_feeds::review`).
    pub fn names_by_address(&self, categories: &[String]) -> HashMap<IpAddr, String> {
        self.lock()
            .values()
            .filter(|a| categories.contains(&a.category))
            .map(|a| (a.address, a.name.clone()))
            .collect()
    }

    /// How many addresses the set holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Records that `name` (of `category`) resolved to `addresses` at `now_ms`; returns how
    /// many addresses were new.
    pub fn seen(&self, name: &str, category: &str, addresses: &[IpAddr], now_ms: i64) -> usize {
        let mut map = self.lock();
        let mut new = 0;
        for &address in addresses {
            let entry = map.entry(address).or_insert_with(|| {
                new += 1;
                PoolAddress {
                    address,
                    name: String::new(),
                    category: String::new(),
                    first_seen_ms: now_ms,
                    last_seen_ms: now_ms,
                }
            });
            entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
            if entry.name != name {
                entry.name = name.to_string();
            }
            if entry.category != category {
                entry.category = category.to_string();
            }
        }
        new
    }

    /// Drops addresses last seen before `cutoff_ms` and returns how many went.
    pub fn expire(&self, cutoff_ms: i64) -> usize {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, a| a.last_seen_ms >= cutoff_ms);
        before - map.len()
    }

    /// Reads the state file; a missing file is an empty set.
    pub fn load(path: &Path) -> Result<Self, PoolStateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new()),
            Err(source) => {
                return Err(PoolStateError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let saved: Saved = serde_json::from_str(&text).map_err(|source| PoolStateError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let set = Self::new();
        set.lock()
            .extend(saved.addresses.into_iter().map(|a| (a.address, a)));
        Ok(set)
    }

    /// Writes the state file whole (a temporary file renamed over it, so a crash leaves the
    /// old or the new set, never half of one).
    pub fn save(&self, path: &Path) -> Result<(), PoolStateError> {
        let mut addresses: Vec<PoolAddress> = self.lock().values().cloned().collect();
        addresses.sort_unstable_by_key(|a| a.address);
        let text =
            serde_json::to_string(&Saved { addresses }).map_err(|source| PoolStateError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        let io = |source| PoolStateError::Io {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// Whether an answer's address may go into the set: never inside `exclude` (CDN and shared
/// hosting), never an address no firewall should block (unspecified, loopback, multicast,
/// link-local: parked names often resolve to `0.0.0.0` or `127.0.0.1`).
pub fn listable(address: IpAddr, exclude: &[IpNet]) -> bool {
    let special = match address {
        IpAddr::V4(a) => {
            a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_link_local()
                || a.is_broadcast()
        }
        IpAddr::V6(a) => {
            a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_unicast_link_local()
                || a.to_ipv4_mapped().is_some()
        }
    };
    !special && !exclude.iter().any(|n| n.contains(&address))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn an_address_keeps_its_first_seen_and_ages_out_after_its_last() {
        let set = PoolSet::new();
        assert_eq!(
            set.seen("pool.example", "mining", &[ip("198.51.100.7")], 1_000),
            1
        );
        assert_eq!(
            set.seen("pool.example", "mining", &[ip("198.51.100.7")], 5_000),
            0
        );
        let got = set.category("mining");
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].first_seen_ms, got[0].last_seen_ms), (1_000, 5_000));
        assert!(set.category("bypass").is_empty());
        assert_eq!(set.expire(4_000), 0);
        assert_eq!(set.expire(6_000), 1);
        assert!(set.is_empty());
    }

    #[test]
    fn excluded_networks_and_special_addresses_are_not_listable() {
        let exclude: Vec<IpNet> = vec!["104.16.0.0/13".parse().expect("net")];
        assert!(listable(ip("198.51.100.7"), &exclude));
        assert!(listable(ip("2001:db8::7"), &exclude));
        for a in [
            "104.17.1.1",
            "0.0.0.0",
            "127.0.0.1",
            "::1",
            "224.0.0.1",
            "fe80::1",
        ] {
            assert!(!listable(ip(a), &exclude), "{a}");
        }
    }

    #[test]
    fn the_state_file_round_trips() {
        let dir = std::env::temp_dir().join(format!("poolguard-pools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("pools.json");
        let set = PoolSet::new();
        set.seen("dns.example", "bypass", &[ip("203.0.113.53")], 42);
        set.save(&path).expect("save");
        let back = PoolSet::load(&path).expect("load");
        assert_eq!(back.category("bypass"), set.category("bypass"));
        assert!(
            PoolSet::load(&dir.join("absent.json"))
                .expect("empty")
                .is_empty()
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
