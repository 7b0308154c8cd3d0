//! Time and text formatting shared by the API, reports and alerts.

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339 UTC with milliseconds, the API's only time format.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Spreadsheet formula injection guard: a cell that starts with `= + - @` (or a tab/CR that
/// some programs strip) gets a leading `'`, so Excel shows it as text instead of running it.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}
