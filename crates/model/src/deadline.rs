//! The deadline model: whether an incident's identify (48 h) or report (72 h) deadline is met,
//! missed, pending or not needed, as a pure function of the incident's times.
//!
//! Every reader judges deadlines here: the API (`identify_state`, `report_state` and the
//! `*_overdue` flags), the `overdue` list filter (through [`missed_sql`], its SQL mirror, which
//! a test holds to the same answers), the written report and the bulletin. Before, each had its
//! own rule, and the report called a report deadline that had passed "not needed (closed)"
//! once the incident was closed: closing erased the miss from the record.
//!
//! The rule, for one deadline with due time `due`, the time the step was done (`done`:
//! identified or reported) and the closing time (`closed`), judged at `now`:
//!
//! * done by `due` (inclusive) → **met**; done after `due` → **missed** ("done late at …");
//! * not done, closed by `due` → **not needed** (e.g. a false positive closed after 10 h);
//! * not done, closed after `due` → **missed**: the deadline had passed before the closing;
//! * not done, not closed → **missed** once `now > due`, else **pending**.
//!
//! Events after `now` are not known at `now` (a step done later counts as not done yet), so the
//! bulletin can judge the state at the end of its period and get what was true then.

use crate::text::rfc3339;

/// Where one deadline stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineState {
    /// Not done, not closed, not yet due.
    Pending,
    /// Done by the due time.
    Met,
    /// Done late, closed late without it, or due and still not done.
    Missed,
    /// Closed before it was due, without the step: nothing was owed.
    NotNeeded,
}

impl DeadlineState {
    /// The report's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadlineState::Pending => "pending",
            DeadlineState::Met => "met",
            DeadlineState::Missed => "missed",
            DeadlineState::NotNeeded => "not needed",
        }
    }
}

/// One deadline judged at a time: the state and the facts it rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    /// The judgement itself (pending, met, missed, not needed).
    pub state: DeadlineState,
    /// When it was due (ms).
    pub due_ms: i64,
    /// When the step was done, if it was by the judging time.
    pub done_ms: Option<i64>,
    /// When the incident was closed, if it was by the judging time.
    pub closed_ms: Option<i64>,
}

impl Judgement {
    /// True when the deadline was missed (the API's `*_overdue` flags).
    pub fn missed(&self) -> bool {
        self.state == DeadlineState::Missed
    }

    /// The report's wording: the state and what it rests on.
    pub fn describe(&self) -> String {
        match (self.state, self.done_ms, self.closed_ms) {
            (DeadlineState::Met, Some(t), _) => format!("met — done {}", rfc3339(t)),
            (DeadlineState::Missed, Some(t), _) => format!("missed — done late at {}", rfc3339(t)),
            (DeadlineState::Missed, None, Some(c)) => {
                format!("missed — never done, closed {}", rfc3339(c))
            }
            (DeadlineState::Missed, None, None) => "missed — overdue, not done yet".to_string(),
            (DeadlineState::NotNeeded, _, Some(c)) => {
                format!("not needed — closed {}, before it was due", rfc3339(c))
            }
            (state, _, _) => state.as_str().to_string(),
        }
    }
}

/// Judges one deadline at `now_ms`: `due_ms`, when the step was done (`done_ms`) and when the
/// incident was closed (`closed_ms`). Pure: the same times always give the same answer.
pub fn judge(due_ms: i64, done_ms: Option<i64>, closed_ms: Option<i64>, now_ms: i64) -> Judgement {
    let done_ms = done_ms.filter(|&t| t <= now_ms);
    let closed_ms = closed_ms.filter(|&t| t <= now_ms);
    let state = match (done_ms, closed_ms) {
        (Some(t), _) if t <= due_ms => DeadlineState::Met,
        (Some(_), _) => DeadlineState::Missed,
        (None, Some(c)) if c <= due_ms => DeadlineState::NotNeeded,
        (None, Some(_)) => DeadlineState::Missed,
        (None, None) if now_ms > due_ms => DeadlineState::Missed,
        (None, None) => DeadlineState::Pending,
    };
    Judgement {
        state,
        due_ms,
        done_ms,
        closed_ms,
    }
}

/// The SQL condition "this deadline is missed at `now_ms`", over the named columns: the mirror
/// of [`judge`] for the `overdue` list filter, which must page in SQL.
pub fn missed_sql(due: &str, done: &str, closed: &str, now_ms: i64) -> String {
    format!(
        "(CASE WHEN {done} IS NOT NULL AND {done} <= {now_ms} THEN {done} > {due} \
         WHEN {closed} IS NOT NULL AND {closed} <= {now_ms} THEN {closed} > {due} \
         ELSE {now_ms} > {due} END)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeadlineState::*;

    const H: i64 = 3_600_000;
    const DUE: i64 = 72 * H;

    #[test]
    fn met_missed_pending_not_needed() {
        // Open, not done.
        assert_eq!(judge(DUE, None, None, 10 * H).state, Pending);
        assert_eq!(
            judge(DUE, None, None, DUE).state,
            Pending,
            "due time itself"
        );
        assert_eq!(judge(DUE, None, None, DUE + 1).state, Missed);
        // Done in time, done late.
        assert_eq!(judge(DUE, Some(70 * H), None, 100 * H).state, Met);
        assert_eq!(judge(DUE, Some(DUE), None, 100 * H).state, Met);
        assert_eq!(judge(DUE, Some(75 * H), None, 100 * H).state, Missed);
        assert_eq!(
            judge(DUE, Some(75 * H), Some(76 * H), 100 * H).state,
            Missed
        );
        assert_eq!(judge(DUE, Some(70 * H), Some(76 * H), 100 * H).state, Met);
        // A false positive closed after 10 h: not needed, however long after we look.
        assert_eq!(judge(DUE, None, Some(10 * H), 10 * H).state, NotNeeded);
        assert_eq!(judge(DUE, None, Some(10 * H), 1000 * H).state, NotNeeded);
        assert_eq!(judge(DUE, None, Some(DUE), 1000 * H).state, NotNeeded);
        // Closed after the deadline passed: the miss stays on the record.
        assert_eq!(judge(DUE, None, Some(73 * H), 73 * H).state, Missed);
        assert_eq!(judge(DUE, None, Some(73 * H), 1000 * H).state, Missed);
    }

    #[test]
    fn later_events_are_not_known_yet() {
        // Judged at 50 h, a report done at 75 h is not done yet: pending, not missed.
        let j = judge(DUE, Some(75 * H), Some(76 * H), 50 * H);
        assert_eq!((j.state, j.done_ms, j.closed_ms), (Pending, None, None));
        // Judged at 74 h: overdue, and the closing at 76 h has not happened.
        assert_eq!(judge(DUE, None, Some(76 * H), 74 * H).state, Missed);
        assert_eq!(judge(DUE, None, Some(10 * H), 5 * H).state, Pending);
    }

    #[test]
    fn wording_keeps_the_facts() {
        let late = judge(DUE, Some(75 * H), None, 80 * H).describe();
        assert!(
            late.starts_with("missed — done late at 1970-01-04T03:00:00"),
            "{late}"
        );
        let closed = judge(DUE, None, Some(73 * H), 80 * H).describe();
        assert!(
            closed.starts_with("missed — never done, closed"),
            "{closed}"
        );
        let early = judge(DUE, None, Some(10 * H), 80 * H).describe();
        assert!(early.starts_with("not needed — closed"), "{early}");
        assert_eq!(
            judge(DUE, None, None, 80 * H).describe(),
            "missed — overdue, not done yet"
        );
        assert_eq!(judge(DUE, None, None, 8 * H).describe(), "pending");
        assert!(
            judge(DUE, Some(H), None, 8 * H)
                .describe()
                .starts_with("met — done")
        );
    }

    /// The SQL mirror answers as [`judge`] does, over every ordering of the times around the
    /// due time and the judging time.
    #[test]
    fn sql_mirror_agrees_with_judge() {
        let conn = rusqlite::Connection::open_in_memory().expect("sqlite");
        conn.execute_batch("CREATE TABLE t (due INTEGER, done INTEGER, closed INTEGER)")
            .expect("table");
        let times = [
            None,
            Some(0),
            Some(10 * H),
            Some(DUE),
            Some(DUE + 1),
            Some(100 * H),
        ];
        for now in [0, 10 * H, DUE, DUE + 1, 50 * H, 100 * H, 200 * H] {
            for done in times {
                for closed in times {
                    let expect = judge(DUE, done, closed, now).missed();
                    let sql = format!("SELECT {} FROM t", missed_sql("due", "done", "closed", now));
                    conn.execute("DELETE FROM t", []).expect("clear");
                    conn.execute(
                        "INSERT INTO t VALUES (?1, ?2, ?3)",
                        rusqlite::params![DUE, done, closed],
                    )
                    .expect("row");
                    let got: bool = conn.query_row(&sql, [], |r| r.get(0)).expect("query");
                    assert_eq!(got, expect, "done {done:?} closed {closed:?} now {now}");
                }
            }
        }
    }
}
