//! The words every layer shares: how a block is answered, what a feed holds and how bad a hit is.

use serde::{Deserialize, Serialize};

/// How a blocked query is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// REFUSED: the client is told we will not answer.
    Refuse,
    /// NXDOMAIN: the name does not exist.
    Nxdomain,
    /// NOERROR with no records.
    Nodata,
    /// A → sinkhole_ipv4, AAAA → sinkhole_ipv6, any other type NODATA.
    Sinkhole,
    /// Not a block: the name is answered as if unlisted and the query is recorded as a hit
    /// (outcome `logged`), so a category can be watched without breaking it (the `bypass`
    /// feed of public DoH/DoT resolvers, docs/FEEDS.md "Bypass").
    Log,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 5] = [
        Action::Refuse,
        Action::Nxdomain,
        Action::Nodata,
        Action::Sinkhole,
        Action::Log,
    ];

    /// Whether a name this action applies to is answered by poolguard instead of resolved
    /// (every action but [`Action::Log`]).
    pub fn blocks(self) -> bool {
        self != Action::Log
    }
}

/// The category of feeds listing public encrypted-DNS resolvers (DoH/DoT endpoints). An
/// incident that took a hit of this category is marked `bypass_capable`: the client can
/// resolve around poolguard (docs/FEEDS.md, "Bypass").
pub const BYPASS_CATEGORY: &str = "bypass";

/// What a feed's entries mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FeedKind {
    /// Names to block (with all their subdomains).
    #[default]
    Domains,
    /// Addresses and CIDR prefixes: answers resolving into them are blocked.
    Ips,
    /// Names that must never be blocked; wins over every blocklist.
    Allow,
}

/// The on-disk syntax of a feed. `Auto` sniffs the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FeedFormat {
    #[default]
    Auto,
    Plain,
    Hosts,
    Adblock,
    Dnsmasq,
    Rpz,
    Wildcard,
    Ip,
    /// Browser URL-match patterns (`*://*.coinhive.com/*`), as NoCoin and MinerBlock ship them.
    Url,
    /// Suricata/Emerging Threats rules: names from `dns.query`, `tls.sni`, `http.host` contents.
    Suricata,
}

/// How bad a hit on this feed is; incidents take the highest of their feeds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Every severity, least first.
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The config and API spelling (`medium`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}
