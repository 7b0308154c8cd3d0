//! What the policy in force says about one name: `GET /api/v1/check`'s feed verdict.
//!
//! The name is matched against the compiled policy snapshot the DNS path uses, so the answer
//! is the one DNS gives; for an allow, the block it overrides is named too. Who the client is
//! (the asset ledger) and what the DNS server would do on top (quarantine, `[dns] allow`,
//! answer inspection) the API adds, since neither is a feed's business.

use super::{Registry, RegistryError};
use crate::publish;
use poolguard_model::domain::DomainName;
use poolguard_policy::{Action, Decision};

/// What `GET /api/v1/check` answers about the feeds (the API adds who the client is and what
/// DNS would do with the name).
#[derive(Debug, Clone, Default)]
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
    pub action: Option<Action>,
    /// For an allow: the block it overrides, if any (`feed: rule`).
    pub overrides: Option<String>,
}

impl Registry {
    /// `GET /api/v1/check`: what the policy in force would do with `name`.
    pub fn check(&self, name: &str) -> Result<CheckReport, RegistryError> {
        let name = DomainName::parse(name.trim()).map_err(|e| {
            RegistryError::BadRequest(format!("`{name}` is not a domain name: {e}"))
        })?;
        let decision = self.loader.policy().load().check_name(name.as_str());
        let mut report = CheckReport {
            name: name.as_str().to_string(),
            decision: "pass",
            feed: None,
            rule: None,
            action: None,
            overrides: None,
        };
        match decision {
            Decision::Pass => {}
            Decision::Blocked(v) => {
                report.decision = "blocked";
                report.feed = Some(v.feed.name.to_string());
                report.rule = Some(v.rule.to_string());
                report.action = Some(v.action());
            }
            Decision::Allowed(v) => {
                report.decision = "allowed";
                report.feed = Some(v.feed.name.to_string());
                report.rule = Some(v.rule.to_string());
                report.overrides = publish::blocking_rule(&self.loader.compiled(), &name);
            }
        }
        Ok(report)
    }
}
