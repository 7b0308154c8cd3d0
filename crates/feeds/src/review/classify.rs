//! Whether one stored query makes its name a review candidate, and why; and the gathering of
//! one scan's candidates into [`Sighting`]s (one per name, its evidence merged).
//!
//! A name is a candidate when nothing lists it (the current policy neither blocks nor
//! allows it: a name listed or allowlisted since it was asked is left alone) and:
//! - its answer CNAMEd into a listed name (the query log says `cname-blocked`);
//! - its answer held an address of a listed IP feed (`ip-blocked`), or of the pool address
//!   set (answered normally: the set is published for firewalls, not used by DNS);
//! - it answered, and is a listed pool family's label under another top-level domain, or an
//!   endpoint host (`stratum`, `pool`, a coin ticker) under a listed operator's domain.

use std::collections::HashMap;
use std::net::IpAddr;

use poolguard_policy::Policy;
use poolguard_record::Outcome;
use poolguard_store::blocks::codec::Entry;
use poolguard_store::review::{MAX_CLIENTS, ReviewReason, Sighting};

use super::families::{Families, is_endpoint_label, registered};

/// What a query is compared with: one policy snapshot, its families, the pool address set.
pub struct Listed<'a> {
    pub policy: &'a Policy,
    pub families: &'a Families,
    /// Pool address → the listed name it came from.
    pub pool: &'a HashMap<IpAddr, String>,
    /// `[review] categories`: a CNAME or an address caught by a feed of another category (a
    /// malware feed, say) is not a pool lead.
    pub categories: &'a [String],
}

/// The addresses of an answer summary (`A 198.51.100.7, CNAME x.example., AAAA 2001:db8::7`).
fn addresses(answer: &str) -> impl Iterator<Item = IpAddr> + '_ {
    answer.split(", ").filter_map(|record| {
        let (rtype, data) = record.split_once(' ')?;
        matches!(rtype, "A" | "AAAA")
            .then(|| data.parse().ok())
            .flatten()
    })
}

impl Listed<'_> {
    /// Why `e` makes its name a candidate, with the evidence in words; `None` when it does not.
    pub fn classify(&self, e: &Entry<'_>) -> Option<(ReviewReason, String)> {
        let listed_by = || {
            format!(
                "{}, listed by {}",
                e.rule.unwrap_or("?"),
                e.feed.unwrap_or("?")
            )
        };
        let found = match e.outcome {
            Outcome::CnameBlocked | Outcome::IpBlocked if !self.pool_feed(e.feed) => None,
            Outcome::CnameBlocked => Some((
                ReviewReason::CnameToListed,
                format!("its answer CNAMEs into {}", listed_by()),
            )),
            Outcome::IpBlocked => Some((
                ReviewReason::ResolvesToPool,
                format!("its answer holds an address in {}", listed_by()),
            )),
            Outcome::Allowed if e.rcode == "NOERROR" && !e.answer.is_empty() => self
                .resolves_to_pool(e.answer)
                .or_else(|| self.lookalike(e.name)),
            _ => None,
        }?;
        // Listed (or allowlisted) since it was asked: nothing left to review.
        if self.policy.match_name(e.name.as_bytes()).is_some() {
            return None;
        }
        Some(found)
    }

    /// Whether `feed` (by name) is of one of the review's categories.
    fn pool_feed(&self, feed: Option<&str>) -> bool {
        let Some(feed) = feed else { return false };
        self.policy
            .feeds()
            .iter()
            .find(|f| &*f.name == feed)
            .is_some_and(|f| self.categories.iter().any(|c| **c == *f.category))
    }

    fn resolves_to_pool(&self, answer: &str) -> Option<(ReviewReason, String)> {
        addresses(answer).find_map(|ip| {
            let why = match self.pool.get(&ip) {
                Some(from) => format!("{ip} is in the pool address set, from {from}"),
                None => {
                    let v = self.policy.check_ip(ip)?;
                    if !self.pool_feed(Some(&v.feed.name)) {
                        return None;
                    }
                    format!("{ip} is in {}, listed by {}", v.rule, v.feed.name)
                }
            };
            Some((ReviewReason::ResolvesToPool, why))
        })
    }

    fn lookalike(&self, name: &str) -> Option<(ReviewReason, String)> {
        let reg = registered(name)?;
        if let Some(family) = self.families.other_tld(reg) {
            return Some((
                ReviewReason::OtherTld,
                format!(
                    "the pool family {family} is listed; {reg} is its name under another top-level domain"
                ),
            ));
        }
        let host = self.families.operator_host(reg)?;
        let below = name.strip_suffix(reg)?.trim_end_matches('.');
        let label = below.split('.').find(|l| is_endpoint_label(l))?;
        Some((
            ReviewReason::OperatorHost,
            format!(
                "`{label}` host under {reg}, an operator whose pool hosts are listed one by one \
                 ({host}) because the parent is not blocked whole"
            ),
        ))
    }
}

/// One scan's candidates, one [`Sighting`] per name, at most `max` names.
pub struct Gathered {
    max: usize,
    by_name: HashMap<String, Sighting>,
    /// Candidate names left out because `max` was reached.
    pub left_out: u64,
}

impl Gathered {
    /// Empty, keeping at most `max` names.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            by_name: HashMap::new(),
            left_out: 0,
        }
    }

    /// Folds in one query, if it makes its name a candidate.
    pub fn observe(&mut self, listed: &Listed<'_>, e: &Entry<'_>) {
        let full = self.by_name.len() >= self.max;
        if full && !self.by_name.contains_key(e.name) {
            // Decided before classifying: a flood of new names costs a lookup each, no more.
            if listed.classify(e).is_some() {
                self.left_out += 1;
            }
            return;
        }
        let Some((reason, evidence)) = listed.classify(e) else {
            return;
        };
        let client = e.client.to_string();
        let s = self
            .by_name
            .entry(e.name.to_string())
            .or_insert_with(|| Sighting {
                name: e.name.to_string(),
                reason,
                clients: Vec::new(),
                first_ms: e.time_ms,
                last_ms: e.time_ms,
                count: 0,
                resolved: String::new(),
                evidence,
            });
        if s.clients.len() < MAX_CLIENTS && !s.clients.contains(&client) {
            s.clients.push(client);
        }
        s.first_ms = s.first_ms.min(e.time_ms);
        if e.time_ms >= s.last_ms || s.resolved.is_empty() {
            s.resolved = e.answer.to_string();
        }
        s.last_ms = s.last_ms.max(e.time_ms);
        s.count += 1;
    }

    /// The sightings, in name order.
    pub fn into_sightings(self) -> Vec<Sighting> {
        let mut v: Vec<Sighting> = self.by_name.into_values().collect();
        v.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use poolguard_config::{Action, FeedFormat, FeedKind, Severity};
    use poolguard_policy::FeedInfo;
    use poolguard_record::Transport;

    fn policy() -> Policy {
        let info = |name: &str, kind| {
            Arc::new(FeedInfo {
                name: name.into(),
                kind,
                action: Action::Nxdomain,
                category: "mining".into(),
                severity: Severity::High,
            })
        };
        let mining = crate::parse(
            "xmr.operator.example\nnanopool.org\n",
            FeedFormat::Plain,
            FeedKind::Domains,
        );
        let allow = crate::parse(
            "stratum.operator.example\n",
            FeedFormat::Plain,
            FeedKind::Allow,
        );
        Policy::build([
            (info("mining", FeedKind::Domains), &mining),
            (info("campus", FeedKind::Allow), &allow),
        ])
    }

    fn entry<'a>(name: &'a str, outcome: Outcome, rcode: &'a str, answer: &'a str) -> Entry<'a> {
        Entry {
            time_ms: 1_000,
            client: [10, 0, 0, 7].into(),
            port: 5353,
            transport: Transport::Udp,
            outcome,
            name,
            qtype: "A",
            feed: Some("mining"),
            rule: Some("xmr.operator.example"),
            rcode,
            answer,
            latency_us: 1,
            upstream: None,
            department: None,
            snapshot: None,
        }
    }

    #[test]
    fn each_reason_is_found_and_listed_or_allowed_names_are_not() {
        let policy = policy();
        let families = Families::of(&policy, &["mining".to_string()]);
        let pool = HashMap::from([(
            "198.51.100.7".parse().expect("ip"),
            "xmr.operator.example".to_string(),
        )]);
        let categories = ["mining".to_string()];
        let listed = Listed {
            policy: &policy,
            families: &families,
            pool: &pool,
            categories: &categories,
        };
        let reason = |name, outcome, rcode, answer| {
            listed
                .classify(&entry(name, outcome, rcode, answer))
                .map(|(r, _)| r)
        };
        let ok = Outcome::Allowed;
        assert_eq!(
            reason("hidden.example", ok, "NOERROR", "A 198.51.100.7"),
            Some(ReviewReason::ResolvesToPool)
        );
        assert_eq!(
            reason("alias.example", Outcome::CnameBlocked, "NOERROR", ""),
            Some(ReviewReason::CnameToListed)
        );
        let malware = Entry {
            feed: Some("malware"),
            ..entry("alias.example", Outcome::CnameBlocked, "NOERROR", "")
        };
        assert_eq!(listed.classify(&malware), None, "not a pool feed");
        assert_eq!(
            reason("nanopool.net", ok, "NOERROR", "A 198.51.100.30"),
            Some(ReviewReason::OtherTld)
        );
        assert_eq!(
            reason("eth-eu1.operator.example", ok, "NOERROR", "A 198.51.100.31"),
            Some(ReviewReason::OperatorHost)
        );
        // The operator's own site, an unanswered lookalike, a listed and an allowed name.
        assert_eq!(
            reason("www.operator.example", ok, "NOERROR", "A 198.51.100.32"),
            None
        );
        assert_eq!(reason("nanopool.net", ok, "NXDOMAIN", ""), None);
        assert_eq!(
            reason("xmr.operator.example", Outcome::Blocked, "NXDOMAIN", ""),
            None
        );
        assert_eq!(
            reason("stratum.operator.example", ok, "NOERROR", "A 198.51.100.33"),
            None
        );
    }

    #[test]
    fn a_scan_keeps_at_most_its_bound_of_names_and_merges_repeats() {
        let policy = policy();
        let families = Families::of(&policy, &["mining".to_string()]);
        let pool = HashMap::new();
        let categories = ["mining".to_string()];
        let listed = Listed {
            policy: &policy,
            families: &families,
            pool: &pool,
            categories: &categories,
        };
        let mut g = Gathered::new(1);
        for name in ["nanopool.net", "nanopool.net", "nanopool.io"] {
            let e = entry(name, Outcome::Allowed, "NOERROR", "A 198.51.100.30");
            g.observe(&listed, &e);
        }
        assert_eq!(g.left_out, 1);
        let got = g.into_sightings();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].count, got[0].clients.len()), (2, 1));
    }

    #[test]
    fn answer_summaries_give_their_addresses() {
        let got: Vec<IpAddr> =
            addresses("CNAME x.example., A 198.51.100.7, AAAA 2001:db8::7, …").collect();
        assert_eq!(
            got,
            [
                "198.51.100.7".parse::<IpAddr>().expect("ip"),
                "2001:db8::7".parse().expect("ip")
            ]
        );
    }
}
