//! Where an incident stands and how it may move: the rules every store backend and the API obey.

use crate::vocab::Severity;

/// Where an incident stands. Moves only forward: `open → investigating → identified →
/// reported → closed` (steps may be skipped; closing needs a resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
