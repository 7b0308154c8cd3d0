//! The vocabulary as SQLite columns (feature `sqlite`): rows carry [`Status`], [`Severity`]
//! and [`Action`] instead of strings and integers, and a value this build does not know is a
//! read error naming it, never a silent default.
//!
//! Spellings are the stored ones: a status and an action as their lower-case names (the API
//! spelling), a severity as its rank (`severity_rank`: 1 low … 4 critical, so SQL `max()`
//! keeps the worst).

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::incident::{Status, severity_rank};
use crate::vocab::{Action, Severity};

/// A stored text this build has no variant for.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} `{value}` in the store (written by a newer poolguard?)")]
struct Unknown {
    what: &'static str,
    value: String,
}

fn unknown(what: &'static str, value: &str) -> FromSqlError {
    FromSqlError::Other(Box::new(Unknown {
        what,
        value: value.to_string(),
    }))
}

impl ToSql for Status {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Status {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        Status::parse(s).ok_or_else(|| unknown("incident status", s))
    }
}

impl ToSql for Severity {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(severity_rank(*self)))
    }
}

impl FromSql for Severity {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value.as_i64()? {
            1 => Ok(Severity::Low),
            2 => Ok(Severity::Medium),
            3 => Ok(Severity::High),
            4 => Ok(Severity::Critical),
            n => Err(FromSqlError::OutOfRange(n)),
        }
    }
}

/// The stored (and config) spelling of an action.
fn action_name(a: Action) -> &'static str {
    match a {
        Action::Refuse => "refuse",
        Action::Nxdomain => "nxdomain",
        Action::Nodata => "nodata",
        Action::Sinkhole => "sinkhole",
        Action::Log => "log",
    }
}

impl ToSql for Action {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(action_name(*self)))
    }
}

impl FromSql for Action {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        Action::ALL
            .into_iter()
            .find(|a| action_name(*a) == s)
            .ok_or_else(|| unknown("action", s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn back<T: ToSql + FromSql>(conn: &Connection, v: T) -> T {
        conn.query_row("SELECT ?1", [v], |r| r.get(0))
            .expect("round trip")
    }

    #[test]
    fn every_variant_round_trips_in_its_stored_spelling() {
        let conn = Connection::open_in_memory().expect("db");
        for s in Status::ALL {
            assert_eq!(back(&conn, s), s);
        }
        for s in Severity::ALL {
            assert_eq!(back(&conn, s), s);
        }
        for a in Action::ALL {
            assert_eq!(back(&conn, a), a);
        }
        let stored: String = conn
            .query_row("SELECT ?1", [Status::Investigating], |r| r.get(0))
            .expect("text");
        assert_eq!(stored, "investigating");
        let rank: i64 = conn
            .query_row("SELECT ?1", [Severity::High], |r| r.get(0))
            .expect("rank");
        assert_eq!(rank, 3);
    }

    #[test]
    fn unknown_stored_values_are_errors_not_defaults() {
        let conn = Connection::open_in_memory().expect("db");
        let status = conn.query_row("SELECT 'escalated'", [], |r| r.get::<_, Status>(0));
        let err = status.expect_err("unknown status").to_string();
        assert!(err.contains("escalated"), "{err}");
        let severity = conn.query_row("SELECT 7", [], |r| r.get::<_, Severity>(0));
        assert!(severity.is_err());
        let action = conn.query_row("SELECT 'drop'", [], |r| r.get::<_, Action>(0));
        assert!(action.is_err());
        let wrong_type = conn.query_row("SELECT 1", [], |r| r.get::<_, Status>(0));
        assert!(wrong_type.is_err());
    }
}
