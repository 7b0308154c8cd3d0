//! `[reports]`: how the written incident report reads for the people it is handed to.
//!
//! The report is a document a security officer signs and files, so it is printed in the
//! campus's language and time zone with the institution's name (and logo) as its header.
//! The zone is an IANA name checked here against the compiled-in tz database, so a typo is an
//! error at start rather than a report silently in UTC.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Largest logo embedded in a report: the logo is inlined as a data: URI in every report, so
/// a photo-sized file would make each report megabytes; a letterhead logo is a few KiB.
pub const MAX_LOGO_BYTES: u64 = 256 * 1024;

/// The report's language.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum Language {
    /// English.
    #[default]
    #[serde(rename = "en")]
    En,
    /// Simplified Chinese, as filed with the campus information office.
    #[serde(rename = "zh-CN")]
    ZhCn,
}

impl Language {
    /// Every accepted tag, for error messages.
    pub const TAGS: &'static str = "en, zh-CN";

    /// Parses a language tag as written in config and `?lang=` (`en`, `zh-CN`).
    pub fn parse(tag: &str) -> Option<Self> {
        match tag {
            "en" => Some(Self::En),
            "zh-CN" => Some(Self::ZhCn),
            _ => None,
        }
    }

    /// The tag, as HTML `lang` and config spell it.
    pub fn tag(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::ZhCn => "zh-CN",
        }
    }
}

/// `[reports]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    /// Default language of reports; `?lang=` overrides it per request.
    pub language: Language,
    /// IANA zone the report's times are printed in (e.g. `Asia/Shanghai`).
    pub timezone: String,
    /// Institution printed as the report's header (e.g. the university's name).
    pub institution: String,
    /// The unit issuing the report (e.g. the network and information centre).
    pub unit: String,
    /// A PNG or SVG printed beside the header; relative to the config's directory.
    pub logo_file: Option<PathBuf>,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        Self {
            language: Language::En,
            timezone: "UTC".into(),
            institution: String::new(),
            unit: String::new(),
            logo_file: None,
        }
    }
}

/// The logo's media type, from its extension; `None` when it is neither PNG nor SVG.
pub fn logo_media_type(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "png" => Some("image/png"),
        "svg" => Some("image/svg+xml"),
        _ => None,
    }
}

impl ReportsConfig {
    /// The configured zone; `validate` has checked it, so UTC only for a hand-built config.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::Tz::UTC)
    }

    /// Checks the zone and the logo (`resolved` is the logo's path against the config's
    /// directory); `Err((key, reason))`.
    pub(crate) fn validate(&self, resolved: Option<&Path>) -> Result<(), (String, String)> {
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err((
                "reports.timezone".into(),
                format!(
                    "`{}` is not an IANA time zone name; write e.g. \"Asia/Shanghai\" or \"UTC\"",
                    self.timezone
                ),
            ));
        }
        for (key, v) in [("institution", &self.institution), ("unit", &self.unit)] {
            if v.chars().count() > 200 {
                return Err((format!("reports.{key}"), "at most 200 characters".into()));
            }
        }
        let Some(path) = resolved else {
            return Ok(());
        };
        let key = "reports.logo_file".to_string();
        if logo_media_type(path).is_none() {
            return Err((
                key,
                format!("{}: must be a .png or .svg file", path.display()),
            ));
        }
        let meta = std::fs::metadata(path)
            .map_err(|e| (key.clone(), format!("cannot read {}: {e}", path.display())))?;
        if meta.len() > MAX_LOGO_BYTES {
            return Err((
                key,
                format!(
                    "{} is {} bytes; a logo is embedded in every report, so at most {} KiB",
                    path.display(),
                    meta.len(),
                    MAX_LOGO_BYTES / 1024
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_the_key() {
        let text = "[reports]\ntimezone = \"Mars/Olympus\"\n";
        let e = crate::Config::from_toml(text, Path::new("c.toml"), Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("reports.timezone") && e.contains("Mars/Olympus"),
            "{e}"
        );
        let text = "[reports]\nlanguage = \"fr\"\n";
        let e = crate::Config::from_toml(text, Path::new("c.toml"), Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.contains("reports.language"), "{e}");
    }

    #[test]
    fn zone_and_logo_are_checked() {
        let mut r = ReportsConfig {
            timezone: "Asia/Shanghai".into(),
            ..Default::default()
        };
        assert!(r.validate(None).is_ok());
        assert_eq!(r.tz(), chrono_tz::Asia::Shanghai);
        r.timezone = "Asia/Shangai".into();
        let (key, reason) = r.validate(None).unwrap_err();
        assert_eq!(key, "reports.timezone");
        assert!(reason.contains("`Asia/Shangai` is not an IANA"), "{reason}");
        r.timezone = "UTC".into();
        let (_, reason) = r.validate(Some(Path::new("/x/logo.jpg"))).unwrap_err();
        assert!(reason.contains("must be a .png or .svg"), "{reason}");
        let (_, reason) = r
            .validate(Some(Path::new("/nonexistent/logo.png")))
            .unwrap_err();
        assert!(
            reason.contains("cannot read /nonexistent/logo.png"),
            "{reason}"
        );
        let big = std::env::temp_dir().join(format!("poolguard-logo-{}.png", std::process::id()));
        std::fs::write(&big, vec![0u8; MAX_LOGO_BYTES as usize + 1]).expect("write");
        let (_, reason) = r.validate(Some(&big)).unwrap_err();
        let _ = std::fs::remove_file(&big);
        assert!(reason.contains("at most 256 KiB"), "{reason}");
        assert_eq!(Language::parse("zh-CN"), Some(Language::ZhCn));
        assert_eq!(Language::parse("zh"), None);
    }
}
