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
//! * [`alerts`]: webhook (HMAC-signed), DingTalk / WeCom robot and syslog delivery, on the
//!   control runtime.
//! * [`report`]: the written report (HTML for print, Markdown) and the periodic summary.
//! * [`notice`]: the page quarantined clients see.
//!
//! Time comes from a [`Clock`], so deadlines and overdue flags are testable without sleeping.

pub mod alerts;
pub mod follow;
pub mod notice;
mod open;
pub mod report;
pub mod track;
pub mod window;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arc_swap::ArcSwap;

use poolguard_config::Config;

pub use alerts::{AlertEvent, Alerts};
pub use poolguard_config::incidents as config;
pub use poolguard_model::deadline;
pub use poolguard_model::incident::*;
pub use poolguard_policy::{Quarantine, quarantine};
pub use poolguard_store::incidents as db;

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

/// What the incident tracker needs to know about a feed: its category, severity and source,
/// and its action (which the syslog exports' hit messages name, see [`track`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedMeta {
    pub name: String,
    pub category: String,
    pub severity: String,
    /// Its answer to a block (`[blocking] default_action` unless the feed sets its own);
    /// `None` when not known (a feed the report names but the config no longer has).
    pub action: Option<poolguard_model::Action>,
    /// Local file, as configured.
    pub path: Option<PathBuf>,
    /// Subscription URL.
    pub url: Option<String>,
}

/// Feed name → meta; swapped whole when feeds change (the feed API may add feeds at runtime).
pub type FeedMetas = Arc<ArcSwap<HashMap<String, FeedMeta>>>;

/// Builds the feed map from `[[feeds]]`.
pub fn feed_metas(config: &Config) -> HashMap<String, FeedMeta> {
    feed_metas_of(&config.feeds, config.blocking.default_action)
}

/// Builds the feed map from a feed list (`config.toml` plus feeds created over the API);
/// feeds without an `action` get `default_action` (`[blocking] default_action`).
pub fn feed_metas_of(
    feeds: &[poolguard_config::FeedConfig],
    default_action: poolguard_model::Action,
) -> HashMap<String, FeedMeta> {
    feeds
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                FeedMeta {
                    name: f.name.clone(),
                    category: f.category.clone(),
                    severity: severity_name(severity_rank(f.severity)).to_string(),
                    action: Some(f.action.unwrap_or(default_action)),
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
    /// How written reports read (`[reports]`); alerts to people use its language and zone.
    pub reports: report::ReportSettings,
    /// `[alerts] console_url`: alerts link incidents there.
    pub console_url: Option<String>,
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
            reports: report::ReportSettings::from_config(config),
            console_url: config.alerts.console_url.clone(),
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
