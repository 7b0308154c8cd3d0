//! Views of feed types: parse reports, feed status, checks and kept versions.

use chrono::{DateTime, Utc};
use std::path::PathBuf;

use poolguard_feeds::loader;
use poolguard_feeds::registry;
use poolguard_model::vocab::{FeedFormat, FeedKind, Severity};
use poolguard_policy::Action;
use serde::Serialize;
use utoipa::ToSchema;

use super::all;

/// A line that was not accepted, for the maintainer to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Rejected {
    /// 1-based line number in the source.
    pub line: usize,
    /// The line as written (trimmed, cut at 200 bytes).
    pub text: String,
    /// What is wrong, in words the list's maintainer can act on.
    pub reason: String,
}

impl From<poolguard_feeds::Rejected> for Rejected {
    fn from(r: poolguard_feeds::Rejected) -> Self {
        Self {
            line: r.line,
            text: r.text,
            reason: r.reason,
        }
    }
}

/// A valid rule a resolver cannot honour, with its line, listed by `?verbose=true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Skipped {
    /// 1-based line number in the source.
    pub line: usize,
    /// Why a resolver cannot honour it (a fixed sentence per kind of rule, so a list of
    /// 100,000 cosmetic rules costs 16 bytes a line, not a string each).
    pub reason: &'static str,
}

impl From<poolguard_feeds::Skipped> for Skipped {
    fn from(s: poolguard_feeds::Skipped) -> Self {
        Self {
            line: s.line,
            reason: s.reason,
        }
    }
}

/// Where every line of a file went. Each line is counted exactly once, by [`each_line`] (the
/// one place that sees every line), so `accepted + rejected + skipped + comments == lines`
/// holds by construction whatever a format parser does: a line no parser classified is
/// rejected there, never dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct LineCounts {
    /// Lines in the file (a final newline does not start another line).
    pub lines: usize,
    /// Lines that gave at least one entry and no rejection.
    pub accepted: usize,
    /// Lines with at least one rejection (listed in `rejected`, with line and reason).
    pub rejected: usize,
    /// Valid rules a resolver cannot honour (listed in `skipped_lines`).
    pub skipped: usize,
    /// Comments, blank lines, headers (`[Adblock Plus 2.0]`) and zone boilerplate
    /// (`$TTL`, SOA, NS): not rules.
    pub comments: usize,
}

impl From<poolguard_feeds::LineCounts> for LineCounts {
    fn from(c: poolguard_feeds::LineCounts) -> Self {
        Self {
            lines: c.lines,
            accepted: c.accepted,
            rejected: c.rejected,
            skipped: c.skipped,
            comments: c.comments,
        }
    }
}

/// One kept version of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Version {
    /// Increasing per list; what `…/versions/{id}` takes.
    pub id: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// When this content was written.
    pub time: DateTime<Utc>,
    /// The API token name that wrote it, `subscription` for a fetch, `file` for content found
    /// on disk (config-managed or edited by hand) before the API first replaced it.
    pub who: String,
    /// What produced it: `upload`, `patch`, `restore`, `fetch`, `existing`, `delete`, and
    /// `partial` for a ledger upload loaded with `?partial=true` despite rejected rows.
    pub action: String,
    /// Size of the content in bytes.
    pub bytes: u64,
    /// Accepted entries (networks, for the ledger) when it was written.
    pub entries: usize,
    /// Rejected lines (rows) when it was written.
    pub rejected: usize,
}

impl From<poolguard_versions::Version> for Version {
    fn from(v: poolguard_versions::Version) -> Self {
        Self {
            id: v.id,
            sha256: v.sha256,
            time: v.time,
            who: v.who,
            action: v.action,
            bytes: v.bytes,
            entries: v.entries,
            rejected: v.rejected,
        }
    }
}

/// What a write did: the parse report and the version now in force.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WriteReport {
    /// The feed written.
    pub feed: String,
    /// Entries accepted (lines; duplicates count).
    pub accepted: usize,
    /// Every rejected line with its number and reason.
    pub rejected: Vec<Rejected>,
    /// Valid rules a resolver cannot honour.
    pub skipped: usize,
    /// Where every line went: `accepted + rejected + skipped + comments == lines`.
    pub lines: LineCounts,
    /// The skipped lines by number, with why; only with `?verbose=true` (a long adblock list
    /// has thousands of cosmetic rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_lines: Option<Vec<Skipped>>,
    /// The format used (after auto-detection).
    #[schema(value_type = Option<String>)]
    pub format: Option<FeedFormat>,
    /// The version now in force (absent when the write was refused).
    pub version: Option<Version>,
}

impl From<registry::WriteReport> for WriteReport {
    fn from(r: registry::WriteReport) -> Self {
        Self {
            feed: r.feed,
            accepted: r.accepted,
            rejected: all(r.rejected),
            skipped: r.skipped,
            lines: r.lines.into(),
            skipped_lines: r.skipped_lines.map(all),
            format: r.format,
            version: r.version.map(Version::from),
        }
    }
}

/// The last fetch of a subscription, for `GET /feeds` and metrics.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct FetchStatus {
    /// When the last fetch was attempted.
    pub last_attempt: Option<DateTime<Utc>>,
    /// When a fetch last succeeded (new content or 304).
    pub last_success: Option<DateTime<Utc>>,
    /// `updated`, `not_modified` or `failed`.
    pub result: Option<String>,
    /// Why the last fetch failed (the last good copy stays in force).
    pub error: Option<String>,
    /// The server's ETag for the cached copy (sent as If-None-Match).
    pub etag: Option<String>,
    /// The server's Last-Modified for the cached copy (sent as If-Modified-Since).
    pub last_modified: Option<String>,
    /// SHA-256 of the cached copy these validators belong to.
    pub sha256: Option<String>,
}

impl From<registry::FetchStatus> for FetchStatus {
    fn from(f: registry::FetchStatus) -> Self {
        Self {
            last_attempt: f.last_attempt,
            last_success: f.last_success,
            result: f.result,
            error: f.error,
            etag: f.etag,
            last_modified: f.last_modified,
            sha256: f.sha256,
        }
    }
}

/// A feed's state as the API shows it (`GET /feeds`): what is in force and how it got there.
/// Flattened into [`FeedView`], whose schema describes it as an object.
#[derive(Debug, Clone, Serialize)]
pub struct FeedStatus {
    /// The feed's name from the config.
    pub name: String,
    /// What its entries mean (block, IPs, allow).
    pub kind: FeedKind,
    /// Format in force (after auto-detection); `None` before the first good load.
    pub format: Option<FeedFormat>,
    /// The file, resolved against the config's directory.
    pub path: Option<PathBuf>,
    /// Entries of the version in force.
    pub entries: usize,
    /// Rejected lines of the version in force.
    pub rejected: usize,
    /// Skipped rules of the version in force.
    pub skipped: usize,
    /// When the version in force was loaded.
    pub loaded_at: Option<DateTime<Utc>>,
    /// The last reload's failure, if it failed (the previous version is still in force).
    pub last_error: Option<String>,
    /// Lower-case hex SHA-256 of the file content in force.
    pub sha256: Option<String>,
    /// Subscription source, when the feed is fetched from a URL.
    pub url: Option<String>,
    /// The action its blocks get (its own or `[blocking] default_action`).
    pub action: Action,
    /// Category carried by its hits (`mining`, `cryptojacking`, …).
    pub category: String,
    /// Severity carried by its hits.
    pub severity: Severity,
    /// Disabled feeds are listed but not compiled into the policy.
    pub enabled: bool,
}

impl From<loader::FeedStatus> for FeedStatus {
    fn from(f: loader::FeedStatus) -> Self {
        Self {
            name: f.name,
            kind: f.kind,
            format: f.format,
            path: f.path,
            entries: f.entries,
            rejected: f.rejected,
            skipped: f.skipped,
            loaded_at: f.loaded_at,
            last_error: f.last_error,
            sha256: f.sha256,
            url: f.url,
            action: f.action,
            category: f.category,
            severity: f.severity,
            enabled: f.enabled,
        }
    }
}

/// One feed as `GET /api/v1/feeds` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedView {
    /// The loader's status (kind, format, entries, last load result…).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub status: FeedStatus,
    /// `config` (defined in config.toml) or `api` (created over the API).
    pub defined_in: &'static str,
    /// The newest kept version (hash, time, who).
    pub version: Option<Version>,
    /// Subscriptions only: the last fetch.
    pub fetch: Option<FetchStatus>,
}

impl From<registry::FeedView> for FeedView {
    fn from(f: registry::FeedView) -> Self {
        Self {
            status: f.status.into(),
            defined_in: f.defined_in,
            version: f.version.map(Version::from),
            fetch: f.fetch.map(FetchStatus::from),
        }
    }
}

/// What `GET /api/v1/check` answers about the feeds (the API adds who the client is and what
/// DNS would do with the name).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct CheckReport {
    /// The name as matched (lower case, punycode).
    pub name: String,
    /// From the feeds: `blocked`, `allowed` (an allow rule matched) or `pass` (not listed).
    /// `GET /api/v1/check` replaces it with what DNS would do (`api::check`): also `refused`
    /// or `quarantined`, and `blocked` by answer inspection.
    pub decision: &'static str,
    /// The feed whose rule decided.
    pub feed: Option<String>,
    /// The rule as the maintainer wrote it (`pool.example`, `=host`, `@@x`).
    pub rule: Option<String>,
    /// For a block: how it is answered.
    #[schema(value_type = Option<String>)]
    pub action: Option<Action>,
    /// For an allow: the block it overrides, if any (`feed: rule`).
    pub overrides: Option<String>,
}

impl From<registry::CheckReport> for CheckReport {
    fn from(c: registry::CheckReport) -> Self {
        Self {
            name: c.name,
            decision: c.decision,
            feed: c.feed,
            rule: c.rule,
            action: c.action,
            overrides: c.overrides,
        }
    }
}
