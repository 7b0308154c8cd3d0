//! Durations as operators write them in `config.toml` ("30s", "6h", "30d").

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Deserializes an optional duration string (`refresh = "6h"`) with [`parse_duration`].
pub(crate) fn de_opt_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// Deserializes a duration string (`max_age = "7d"`) with [`parse_duration`].
pub(crate) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

/// Parses "30s", "6h", "30d": the forms operators write.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration like \"30s\", \"6h\" or \"30d\": {e}"))
}
