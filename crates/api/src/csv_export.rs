//! The response of every `format=csv` export: UTF-8 with a byte order mark unless `bom=false`.
//!
//! Staff open exports in Excel, and Excel on a Chinese Windows reads a CSV file without a BOM
//! in the ANSI code page (GBK), so `物理学院` shows as mojibake; with the BOM it reads UTF-8.
//! The BOM is therefore the default, and scripts that choke on it (`cut`, older Python `csv`
//! without `utf-8-sig`) ask for `bom=false`. JSON and NDJSON never carry one (RFC 8259
//! section 8.1: a JSON text must not begin with a BOM), so `bom` is accepted but has no
//! effect on them.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// The UTF-8 encoding of U+FEFF, which Excel takes as "this file is UTF-8".
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The query parameter's name, for each endpoint's list of known keys.
pub const PARAM: &str = "bom";

/// Parses `bom=true|false` (also `1|0`, as `overdue` takes); anything else is a 400 naming
/// the parameter, so a typo is not silently taken as the default.
pub fn parse_bom(v: &str) -> Result<bool, ApiError> {
    match v.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(ApiError::bad_param(
            PARAM,
            format!(
                "`{other}` is not true or false (true, the default, starts CSV with a UTF-8 byte order mark for Excel; false omits it)"
            ),
        )),
    }
}

/// `text/csv; charset=utf-8` with `body`, starting with exactly one BOM when `bom` and with
/// none otherwise (a stored file, such as a ledger version, may already carry one).
pub fn response(mut body: Vec<u8>, bom: bool) -> Response {
    let has = body.starts_with(BOM);
    if bom && !has {
        body.splice(0..0, BOM.iter().copied());
    } else if !bom && has {
        body.drain(..BOM.len());
    }
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_values() {
        assert!(parse_bom("true").is_ok_and(|b| b));
        assert!(parse_bom("0").is_ok_and(|b| !b));
        let e = parse_bom("yes").expect_err("not a boolean");
        assert_eq!(e.parameter, Some("bom"));
        assert!(e.message.contains("`yes`"), "{}", e.message);
    }
}
