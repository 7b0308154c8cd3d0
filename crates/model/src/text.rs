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

/// Text equal but for case (Latin and other cased scripts): how accounts, owners and asset
/// tags are searched and compared, by the stores, the identity index and the ledger alike.
pub fn same_text(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
        || (!(a.is_ascii() && b.is_ascii()) && a.to_lowercase() == b.to_lowercase())
}

/// Whether `have` contains `part`, case-insensitively (Latin and other cased scripts).
pub fn contains_text(have: &str, part: &str) -> bool {
    if have.is_ascii() && part.is_ascii() {
        let (h, p) = (have.as_bytes(), part.as_bytes());
        return p.is_empty() || h.windows(p.len()).any(|w| w.eq_ignore_ascii_case(p));
    }
    have.to_lowercase().contains(&part.to_lowercase())
}
