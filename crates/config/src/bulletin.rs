//! `[alerts.bulletin]`: the periodic bulletin (the figures of `GET /api/v1/reports/summary`)
//! sent to other units over the alert channels people read, once a period.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::incidents::{AlertsConfig, Span};

/// The `[alerts.bulletin]` section. Off by default: who the other units are is the campus's
/// to say.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulletinConfig {
    /// Send it at all.
    pub enabled: bool,
    /// The period one bulletin covers: `"7d"` (weekly, the default) or `"1d"`. Periods start
    /// on Monday 00:00 (for whole weeks; otherwise 1970-01-05 00:00 plus whole periods) in
    /// `[reports] timezone`; the bulletin of a period goes out once it has ended.
    pub every: Span,
    /// The channels it goes to, as the delivery log names them: `email:<name>`,
    /// `dingtalk:<name>`, `wecom:<name>`.
    pub channels: Vec<String>,
    /// Mail recipients of the bulletin (the other units); empty = each mail channel's `to`.
    pub to: Vec<String>,
}

impl Default for BulletinConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            every: Span(Duration::from_secs(7 * 86_400)),
            channels: Vec::new(),
            to: Vec::new(),
        }
    }
}

/// The delivery-log names of the channels a bulletin can go to (mail and robots; webhooks
/// take events, not documents).
pub fn people_channels(alerts: &AlertsConfig) -> Vec<String> {
    let named = |kind: &str, n: usize, name: &Option<String>| {
        format!(
            "{kind}:{}",
            name.clone().unwrap_or_else(|| format!("{kind}[{n}]"))
        )
    };
    let mut out = Vec::new();
    for (n, d) in alerts.dingtalk.iter().enumerate() {
        out.push(named("dingtalk", n, &d.name));
    }
    for (n, w) in alerts.wecom.iter().enumerate() {
        out.push(named("wecom", n, &w.name));
    }
    for (n, e) in alerts.email.iter().enumerate() {
        out.push(named("email", n, &e.name));
    }
    out
}

/// Checks `[alerts.bulletin]`; `Err((key, reason))`.
pub(crate) fn validate_bulletin(alerts: &AlertsConfig) -> Result<(), (String, String)> {
    let b = &alerts.bulletin;
    if !b.enabled {
        return Ok(());
    }
    if b.every.0 < Duration::from_secs(3600) {
        return Err((
            "alerts.bulletin.every".into(),
            "at least \"1h\" (a bulletin is a summary, not an alert)".into(),
        ));
    }
    let known = people_channels(alerts);
    if b.channels.is_empty() {
        return Err((
            "alerts.bulletin.channels".into(),
            format!("name at least one of: {}", known.join(", ")),
        ));
    }
    if let Some(bad) = b.channels.iter().find(|c| !known.contains(c)) {
        return Err((
            "alerts.bulletin.channels".into(),
            format!(
                "`{bad}` is not a mail or robot channel (known: {})",
                known.join(", ")
            ),
        ));
    }
    if let Some(bad) = b.to.iter().find(|a| !a.contains('@')) {
        return Err((
            "alerts.bulletin.to".into(),
            format!("`{bad}` is not a mail address"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;

    fn parse(bulletin: &str) -> Result<Config, crate::ConfigError> {
        let text = format!(
            "[[alerts.email]]\nname = \"duty\"\nserver = \"127.0.0.1:25\"\ntls = \"none\"\n\
             from = \"pg@campus.edu\"\nto = [\"soc@campus.edu\"]\n[alerts.bulletin]\n{bulletin}"
        );
        Config::from_toml(&text, Path::new("t.toml"), Path::new("."))
    }

    #[test]
    fn channels_must_name_a_mail_or_robot_channel() {
        let ok = parse("enabled = true\nchannels = [\"email:duty\"]\n").expect("valid");
        assert_eq!(ok.alerts.bulletin.every.0.as_secs(), 7 * 86_400);
        for bad in [
            "enabled = true\n",
            "enabled = true\nchannels = [\"email:nobody\"]\n",
            "enabled = true\nchannels = [\"email:duty\"]\nto = [\"not-an-address\"]\n",
            "enabled = true\nchannels = [\"email:duty\"]\nevery = \"10m\"\n",
        ] {
            let e = parse(bad).expect_err(bad).to_string();
            assert!(e.contains("alerts.bulletin"), "{bad}: {e}");
        }
        parse("channels = [\"email:nobody\"]\n").expect("off: not checked");
    }
}
