//! Synthetic mining-pool names for the matcher bench and the `policy_load` example, shaped like
//! the real feeds (2–4 labels, ~20 bytes on average) and unique by construction, so a run of
//! `n` names yields exactly `n` distinct entries. Shared by `#[path]` include so the bench and
//! the example measure the same data.

#![allow(dead_code)]

use std::sync::Arc;

use poolguard::config::{FeedKind, Severity};
use poolguard::domain::DomainName;
use poolguard::feeds::{DomainEntry, ParsedFeed};
use poolguard::policy::{Action, FeedInfo};

/// The `i`-th synthetic blocked name; four shapes, always distinct for distinct `i`.
pub fn pool_name(i: usize) -> String {
    match i % 4 {
        0 => format!("pool-{i}.xmr-mine.test"),
        1 => format!("us-east.stratum-{i}.nicehash-proxy.test"),
        2 => format!("m{i}.minergate.test"),
        _ => format!("eth{i}.pool.test"),
    }
}

/// A name that is in no synthetic feed (but shares its TLD, so every suffix probe runs).
pub fn campus_name(i: usize) -> String {
    format!("host-{i}.campus-net.test")
}

/// One block feed of `n` synthetic names (parsing done up front: the bench measures compiling).
pub fn feed_of(n: usize) -> ParsedFeed {
    ParsedFeed {
        domains: (0..n)
            .map(|i| DomainEntry {
                name: DomainName::parse(&pool_name(i)).expect("synthetic names are valid"),
                exact: i % 50 == 7,
            })
            .collect(),
        ..Default::default()
    }
}

/// Feed metadata as the loader would build it from config.
pub fn info(name: &str, kind: FeedKind) -> Arc<FeedInfo> {
    Arc::new(FeedInfo {
        name: name.into(),
        kind,
        action: Action::Nxdomain,
        category: "mining".into(),
        severity: Severity::High,
    })
}
