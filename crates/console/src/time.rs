//! Times as staff read them: in `[console] timezone`, with countdowns to deadlines.
//!
//! The store and the API keep UTC (RFC 3339); only the page converts. A filter typed into a
//! `datetime-local` field is a wall-clock time in the same zone and goes back to the API as
//! UTC, so what a person types and what they see agree.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::i18n::Labels;

/// `2026-12-07 20:15:03` in `tz`; the input unchanged when it is not RFC 3339.
pub fn show(rfc3339: &str, tz: Tz) -> String {
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

/// [`show`] for an optional time; empty when absent.
pub fn show_opt(rfc3339: Option<&str>, tz: Tz) -> String {
    rfc3339.map(|t| show(t, tz)).unwrap_or_default()
}

/// `2026-12-07T20:15` (a `datetime-local` value) from an RFC 3339 time, in `tz`.
pub fn to_local_input(rfc3339: &str, tz: Tz) -> String {
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string(),
        Err(_) => String::new(),
    }
}

/// A `datetime-local` value (wall clock in `tz`) as RFC 3339 UTC; an RFC 3339 value passes
/// through; `None` when empty or unreadable (the API then names the parameter if it is bad).
pub fn from_local_input(v: &str, tz: Tz) -> Option<String> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(
            t.with_timezone(&Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    let naive = NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    let local = tz.from_local_datetime(&naive).earliest()?;
    Some(
        local
            .with_timezone(&Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// "due in 5 h 12 min" / "overdue by 3 h 0 min" from `now` to `due`.
pub fn countdown(due: &str, now: DateTime<Utc>, t: &Labels) -> String {
    let Ok(due) = DateTime::parse_from_rfc3339(due) else {
        return String::new();
    };
    let secs = due
        .with_timezone(&Utc)
        .signed_duration_since(now)
        .num_seconds();
    let (word, secs) = if secs >= 0 {
        (t.due_in, secs)
    } else {
        (t.overdue_by, -secs)
    };
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{word} {d} d {h} h")
    } else {
        format!("{word} {h} h {m} min")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_show_in_the_zone_and_inputs_go_back_to_utc() {
        let tz: Tz = "Asia/Shanghai".parse().expect("zone");
        assert_eq!(show("2026-12-07T12:00:00.000Z", tz), "2026-12-07 20:00:00");
        assert_eq!(
            from_local_input("2026-12-07T20:00", tz).as_deref(),
            Some("2026-12-07T12:00:00Z")
        );
        assert_eq!(
            to_local_input("2026-12-07T12:00:00Z", tz),
            "2026-12-07T20:00"
        );
        assert_eq!(from_local_input("", tz), None);
    }

    #[test]
    fn countdowns_say_which_side_of_the_deadline() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let en = &crate::i18n::EN;
        assert_eq!(
            countdown("2026-12-07T17:12:00Z", now, en),
            "due in 5 h 12 min"
        );
        assert_eq!(
            countdown("2026-12-05T12:00:00Z", now, en),
            "overdue by 2 d 0 h"
        );
    }
}
