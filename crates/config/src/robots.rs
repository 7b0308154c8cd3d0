//! `[[alerts.dingtalk]]` and `[[alerts.wecom]]`: the group robots the people on duty read.
//!
//! Webhooks reach machines (a SIEM); the campus staff read DingTalk or WeCom (企业微信)
//! groups. Each robot is a channel with the webhooks' event filter and retries; its messages
//! are Markdown in `[reports] language`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::incidents::EVENTS;

/// One `[[alerts.dingtalk]]`: a DingTalk custom group robot.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DingTalkConfig {
    /// The robot's webhook (`https://oapi.dingtalk.com/robot/send?access_token=…`). The
    /// token in it is a secret: the delivery log names the robot by `name`, never by URL.
    pub webhook_url: String,
    /// What the delivery log calls it (default `dingtalk[N]`).
    #[serde(default)]
    pub name: Option<String>,
    /// A file whose first line is the signing secret (`SEC…`) of the robot's signed mode.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// An environment variable holding the signing secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// At most one message per this many minutes: events in between are held back and sent
    /// as one summary when the window ends. 0 = every event at once.
    #[serde(default)]
    pub digest_minutes: u32,
    /// Subscribed events; empty = all.
    #[serde(default)]
    pub events: Vec<String>,
}

/// One `[[alerts.wecom]]`: a WeCom (企业微信) group robot.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WeComConfig {
    /// The robot's webhook (`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`); the
    /// key in it is a secret, so the delivery log names the robot by `name`.
    pub webhook_url: String,
    /// What the delivery log calls it (default `wecom[N]`).
    #[serde(default)]
    pub name: Option<String>,
    /// At most one message per this many minutes: events in between are held back and sent
    /// as one summary when the window ends. 0 = every event at once.
    #[serde(default)]
    pub digest_minutes: u32,
    /// Subscribed events; empty = all.
    #[serde(default)]
    pub events: Vec<String>,
}

/// Checks one robot's URL, events and secret source; `Err((key, reason))`.
pub(crate) fn validate_robot(
    section: &str,
    n: usize,
    url: &str,
    events: &[String],
    secret_sources: usize,
) -> Result<(), (String, String)> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err((
            format!("alerts.{section}[{n}].webhook_url"),
            "must start with http:// or https://".into(),
        ));
    }
    if let Some(e) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err((
            format!("alerts.{section}[{n}].events"),
            format!("`{e}` is not one of {}", EVENTS.join(", ")),
        ));
    }
    if secret_sources > 1 {
        return Err((
            format!("alerts.{section}[{n}].secret_file / secret_env"),
            "set one of them, not both".into(),
        ));
    }
    Ok(())
}
