//! Incidents: the campus accountability process, from the first hit to the written report.
//!
//! The campus rules: after a mining alert the device and its responsible person must be
//! identified within 48 h and a written report delivered within 72 h; terminals that keep
//! mining lose internet access. This module turns the hit evidence into that process:
//!
//! * [`track`]: the store writer calls it for every hit it inserts, in the same transaction, so
//!   an incident is opened by a client's first hit and every later hit is attached to it. Hits
//!   are not dropped short of the store's spool bounds (and reach SQLite in arrival order),
//!   so incidents are complete by construction. Repeat-offender thresholds
//!   are evaluated there too, off the DNS path.
//! * [`deadline`]: met / missed / pending / not needed, one pure rule for every reader.
//! * [`db`]: the SQL for incidents, notes, quarantine and the alert delivery log.
//! * [`quarantine`]: the lock-free set of quarantined addresses the DNS path consults.
//! * [`alerts`]: webhook (HMAC-signed) and syslog delivery, on the control runtime.
//! * [`report`]: the written report (HTML for print, Markdown) and the periodic summary.
//! * [`notice`]: the page quarantined clients see.
//!
//! Time comes from a [`Clock`], so deadlines and overdue flags are testable without sleeping.

pub mod alerts;
pub mod config;
pub mod db;
pub mod deadline;
pub mod notice;
mod open;
pub mod quarantine;
pub mod report;
pub mod track;
pub mod window;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use crate::config::{Config, Severity};

pub use alerts::{AlertEvent, Alerts};
pub use quarantine::Quarantine;

/// Where "now" comes from: the system clock in production, a manual clock in tests.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch, UTC.
    fn now_ms(&self) -> i64;
}

/// The real time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock tests set and advance by hand, so "49 hours later" needs no sleep.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock reading `ms`.
    pub fn at(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }

    /// Sets the time.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// Where an incident stands. Moves only forward: `open → investigating → identified →
/// reported → closed` (steps may be skipped; closing needs a resolution).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Investigating,
    Identified,
    Reported,
    Closed,
}

impl Status {
    /// Every status, in order.
    pub const ALL: [Status; 5] = [
        Status::Open,
        Status::Investigating,
        Status::Identified,
        Status::Reported,
        Status::Closed,
    ];

    /// The stored and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Investigating => "investigating",
            Status::Identified => "identified",
            Status::Reported => "reported",
            Status::Closed => "closed",
        }
    }

    /// Parses the API spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// How a closed incident ended.
pub const RESOLUTIONS: [&str; 4] = [
    "cleaned",
    "false-positive",
    "authorised-research",
    "device-removed",
];

/// Why a requested change is not allowed (the API answers 409 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("incident is {from}; it cannot go back to {to} (statuses only move forward)")]
    Backwards {
        from: &'static str,
        to: &'static str,
    },
    #[error("incident is closed; a closed incident is final (a new hit opens a new incident)")]
    Closed,
    #[error(
        "`{0}` needs the device and the responsible person recorded first (set `device` and `owner`)"
    )]
    NeedsIdentification(&'static str),
    #[error(
        "closing needs a `resolution`: one of cleaned, false-positive, authorised-research, device-removed"
    )]
    NeedsResolution,
    #[error("`resolution` is only set when closing (status closed)")]
    ResolutionWithoutClose,
    #[error(
        "closing as `cleaned` needs the written report delivered first: the incident is {0}; \
         move it to `reported`, then close it"
    )]
    CleanedNeedsReport(&'static str),
}

/// The state machine: may an incident in `from` (with `identified` = device and owner
/// recorded) move to `to`, closing with `resolution`?
pub fn check_transition(
    from: Status,
    to: Status,
    identified: bool,
    resolution: Option<&str>,
) -> Result<(), TransitionError> {
    if from == Status::Closed {
        return Err(TransitionError::Closed);
    }
    if to < from {
        return Err(TransitionError::Backwards {
            from: from.as_str(),
            to: to.as_str(),
        });
    }
    match to {
        Status::Identified | Status::Reported if !identified => {
            Err(TransitionError::NeedsIdentification(to.as_str()))
        }
        Status::Closed => match resolution {
            None => Err(TransitionError::NeedsResolution),
            // A cleaned machine was, by definition, found and reported: closing it as cleaned
            // needs the report delivered (issue 13), and the identification behind it.
            Some("cleaned") if from != Status::Reported => {
                Err(TransitionError::CleanedNeedsReport(from.as_str()))
            }
            Some("cleaned") if !identified => {
                Err(TransitionError::NeedsIdentification("closed (cleaned)"))
            }
            Some(_) => Ok(()),
        },
        _ if resolution.is_some() => Err(TransitionError::ResolutionWithoutClose),
        _ => Ok(()),
    }
}

/// Severity as a stored integer (higher = worse).
pub fn severity_rank(s: Severity) -> i64 {
    match s {
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    }
}

/// The API spelling of a stored severity rank.
pub fn severity_name(rank: i64) -> &'static str {
    match rank {
        i64::MIN..=1 => "low",
        2 => "medium",
        3 => "high",
        _ => "critical",
    }
}

/// What the incident tracker needs to know about a feed: its category, severity and source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FeedMeta {
    pub name: String,
    pub category: String,
    pub severity: String,
    /// Local file, as configured.
    #[schema(value_type = Option<String>)]
    pub path: Option<PathBuf>,
    /// Subscription URL.
    pub url: Option<String>,
}

/// Feed name → meta; swapped whole when feeds change (the feed API may add feeds at runtime).
pub type FeedMetas = Arc<ArcSwap<HashMap<String, FeedMeta>>>;

/// Builds the feed map from `[[feeds]]`.
pub fn feed_metas(config: &Config) -> HashMap<String, FeedMeta> {
    feed_metas_of(&config.feeds)
}

/// Builds the feed map from a feed list (`config.toml` plus feeds created over the API).
pub fn feed_metas_of(feeds: &[crate::config::FeedConfig]) -> HashMap<String, FeedMeta> {
    feeds
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                FeedMeta {
                    name: f.name.clone(),
                    category: f.category.clone(),
                    severity: severity_name(severity_rank(f.severity)).to_string(),
                    path: f.path.clone(),
                    url: f.url.clone(),
                },
            )
        })
        .collect()
}

/// Everything the accountability API and the tracker share. Cheap to clone through `Arc`.
pub struct Accountability {
    pub clock: SharedClock,
    pub incidents: config::IncidentsConfig,
    pub enforcement: config::EnforcementConfig,
    pub feeds: FeedMetas,
    pub quarantine: Arc<Quarantine>,
    pub alerts: Alerts,
}

impl Accountability {
    /// From config, with `clock`; alerts go to `alerts`.
    pub fn new(config: &Config, clock: SharedClock, alerts: Alerts) -> Self {
        Self {
            clock,
            incidents: config.incidents.clone(),
            enforcement: config.enforcement.clone(),
            feeds: Arc::new(ArcSwap::from_pointee(feed_metas(config))),
            quarantine: Arc::new(Quarantine::new(&config.enforcement)),
            alerts,
        }
    }

    /// Defaults, system clock, no alerts: for tools and tests that build an API by hand.
    pub fn disabled() -> Self {
        Self::new(
            &Config::default(),
            Arc::new(SystemClock),
            Alerts::disabled(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_move_forward_only() {
        use Status::*;
        assert!(check_transition(Open, Investigating, false, None).is_ok());
        assert_eq!(
            check_transition(Open, Identified, false, None),
            Err(TransitionError::NeedsIdentification("identified"))
        );
        assert!(check_transition(Open, Identified, true, None).is_ok());
        assert!(matches!(
            check_transition(Reported, Open, true, None),
            Err(TransitionError::Backwards { .. })
        ));
        assert_eq!(
            check_transition(Reported, Closed, true, None),
            Err(TransitionError::NeedsResolution)
        );
        assert!(check_transition(Open, Closed, false, Some("false-positive")).is_ok());
        // `cleaned` only after `reported`, and not with the identification withdrawn.
        assert_eq!(
            check_transition(Identified, Closed, true, Some("cleaned")),
            Err(TransitionError::CleanedNeedsReport("identified"))
        );
        assert_eq!(
            check_transition(Open, Closed, true, Some("cleaned")),
            Err(TransitionError::CleanedNeedsReport("open"))
        );
        assert!(check_transition(Reported, Closed, true, Some("cleaned")).is_ok());
        assert_eq!(
            check_transition(Reported, Closed, false, Some("cleaned")),
            Err(TransitionError::NeedsIdentification("closed (cleaned)"))
        );
        assert_eq!(
            check_transition(Closed, Closed, true, Some("cleaned")),
            Err(TransitionError::Closed)
        );
        assert_eq!(
            check_transition(Open, Investigating, true, Some("cleaned")),
            Err(TransitionError::ResolutionWithoutClose)
        );
    }
}
