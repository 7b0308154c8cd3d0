//! One alert destination: how the delivery log names it, what it posts, and how its answer
//! is judged.
//!
//! Webhooks get the event JSON, HMAC-signed. The group robots get a Markdown message in
//! their own schema: DingTalk `{"msgtype":"markdown","markdown":{"title","text"}}` (text
//! within [`DINGTALK_MAX`] bytes), optionally signed (`timestamp` in ms and `sign` =
//! URL-encoded base64 HMAC-SHA256 of `"{timestamp}\n{secret}"` under the secret, appended to
//! the URL); WeCom `{"msgtype":"markdown","markdown":{"content"}}` (content within
//! [`WECOM_MAX`] bytes of UTF-8). Both answer HTTP 200 with `{"errcode":0}` when they took
//! the message and a non-zero `errcode` when not, so the body is read, not only the status.
//! Their URLs carry the robot's token: the log names a robot `dingtalk:<name>`, never by URL.
//! Mail goes through [`super::email`], logged as `email:<name>` with the SMTP reply code.

use std::sync::Arc;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::email::{Mailer, SharedMailer};
use super::message::{Message, fit, render, render_digest};
use super::{AlertEvent, signature};
use crate::config::{AlertsConfig, WebhookConfig};
use crate::report::ReportSettings;
use poolguard_config::reports::Language;
use poolguard_config::robots::{DingTalkConfig, WeComConfig};

/// DingTalk's Markdown `text`, at most (bytes; DingTalk documents 20,000 characters).
pub const DINGTALK_MAX: usize = 20_000;
/// WeCom's Markdown `content`, at most (bytes of UTF-8, as WeCom documents).
pub const WECOM_MAX: usize = 4096;

/// What kind of destination, with what it needs to post.
#[derive(Debug, Clone)]
enum Kind {
    Webhook {
        secret: Option<String>,
    },
    /// `secret`: the signing secret, or why it could not be read.
    DingTalk {
        secret: Result<Option<String>, String>,
    },
    WeCom,
    Email(SharedMailer),
}

/// A configured destination.
#[derive(Clone)]
pub struct Channel {
    kind: Kind,
    url: String,
    /// How the delivery log names it.
    pub target: String,
    events: Vec<String>,
    /// Digest window (`digest_minutes`) in ms; 0 = every event at once.
    pub digest_ms: i64,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets and robot URLs (which hold tokens) stay out of logs.
        f.debug_struct("Channel")
            .field("target", &self.target)
            .finish()
    }
}

/// What one delivery sends, made once per event and channel.
#[derive(Debug, Clone)]
pub enum Payload {
    /// An HTTP body (webhooks, robots).
    Http(Vec<u8>),
    /// A mail.
    Mail(Box<lettre::Message>),
    /// Nothing can be sent, and why (a mail without recipients, an unusable mailer).
    Unsendable(String),
}

/// What one delivery attempt gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    /// The HTTP status or SMTP reply code, when one came back.
    pub status: Option<u16>,
    /// Why it failed; `None` = delivered.
    pub error: Option<String>,
    /// Whether another attempt could succeed. Not for a mail without recipients, an
    /// unusable mailer or an unreadable secret (nothing changes until the config does), nor
    /// for an SMTP server's permanent (5xx) refusal, nor for an HTTP receiver's refusal of
    /// the request itself (4xx but 408, 425 and 429): those are logged once, not retried.
    pub retry: bool,
}

/// Whether an HTTP failure status may pass on a retry: server errors (5xx) and the client
/// errors that mean "later" (408 Request Timeout, 425 Too Early, 429 Too Many Requests). A
/// 401, 403, 404 or 410 is the same on every attempt (a revoked robot token, a wrong URL).
pub fn http_retryable(status: u16) -> bool {
    !(400..500).contains(&status) || matches!(status, 408 | 425 | 429)
}

impl Tried {
    /// A failure no retry can fix.
    fn permanent(error: String) -> Self {
        Self {
            status: None,
            error: Some(error),
            retry: false,
        }
    }

    /// An HTTP answer (or its absence): every failure may pass on a retry.
    fn http(status: Option<u16>, error: Option<String>) -> Self {
        Self {
            status,
            error,
            retry: true,
        }
    }
}

/// A secret (a robot's signing secret, an SMTP password): the first line of `file`, or the
/// variable `env`; `Err` names the source, never the value.
pub(super) fn read_secret(
    file: Option<&std::path::Path>,
    env: Option<&str>,
) -> Result<Option<String>, String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("secret_file {}: {e}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim().to_string();
        if line.is_empty() {
            return Err(format!("secret_file {} is empty", path.display()));
        }
        return Ok(Some(line));
    }
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
            _ => Err(format!("secret_env {var} is not set")),
        };
    }
    Ok(None)
}

/// Every destination of `[alerts]`, webhooks first. Robot secrets are read here, once.
pub fn channels(cfg: &AlertsConfig) -> Vec<Channel> {
    let mut out: Vec<Channel> = cfg.webhooks.iter().map(webhook).collect();
    for (n, d) in cfg.dingtalk.iter().enumerate() {
        out.push(dingtalk(n, d));
    }
    for (n, w) in cfg.wecom.iter().enumerate() {
        out.push(wecom(n, w));
    }
    for (n, e) in cfg.email.iter().enumerate() {
        let mailer = Mailer::new(e, cfg.timeout.0);
        if let Err(why) = &mailer {
            tracing::error!(channel = n, error = %why, "[[alerts.email]] unusable; its deliveries fail");
        }
        out.push(Channel {
            digest_ms: minutes(e.digest_minutes),
            kind: Kind::Email(Arc::new(mailer)),
            url: String::new(),
            target: format!(
                "email:{}",
                e.name.clone().unwrap_or_else(|| format!("email[{n}]"))
            ),
            events: e.events.clone(),
        });
    }
    out
}

fn minutes(m: u32) -> i64 {
    i64::from(m) * 60_000
}

fn webhook(w: &WebhookConfig) -> Channel {
    Channel {
        digest_ms: 0,
        kind: Kind::Webhook {
            secret: w.secret.clone(),
        },
        url: w.url.clone(),
        target: w.url.clone(),
        events: w.events.clone(),
    }
}

fn dingtalk(n: usize, d: &DingTalkConfig) -> Channel {
    let secret = read_secret(d.secret_file.as_deref(), d.secret_env.as_deref());
    if let Err(e) = &secret {
        tracing::error!(robot = n, error = %e, "[[alerts.dingtalk]] secret unreadable; its deliveries fail");
    }
    Channel {
        digest_ms: minutes(d.digest_minutes),
        kind: Kind::DingTalk { secret },
        url: d.webhook_url.clone(),
        target: format!(
            "dingtalk:{}",
            d.name.clone().unwrap_or_else(|| format!("dingtalk[{n}]"))
        ),
        events: d.events.clone(),
    }
}

fn wecom(n: usize, w: &WeComConfig) -> Channel {
    Channel {
        digest_ms: minutes(w.digest_minutes),
        kind: Kind::WeCom,
        url: w.webhook_url.clone(),
        target: format!(
            "wecom:{}",
            w.name.clone().unwrap_or_else(|| format!("wecom[{n}]"))
        ),
        events: w.events.clone(),
    }
}

/// DingTalk's `sign` for `timestamp_ms`: base64(HMAC-SHA256(secret, "{ts}\n{secret}")),
/// URL-encoded.
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    b64.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

impl Channel {
    /// Whether it takes `event`.
    pub fn subscribed(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event)
    }

    /// The body it posts for `event` (`json`: the event as JSON, for webhooks).
    pub fn payload(&self, event: &AlertEvent, json: &[u8], settings: &ReportSettings) -> Payload {
        if let Kind::Webhook { .. } = self.kind {
            return Payload::Http(json.to_vec());
        }
        let m = render(event, settings.language, settings.tz);
        self.people(m, std::slice::from_ref(event), settings)
    }

    /// The one message summarising `events` held back by digest mode (`more` beyond them).
    pub fn digest_payload(
        &self,
        events: &[AlertEvent],
        more: usize,
        settings: &ReportSettings,
    ) -> Payload {
        let m = render_digest(events, more, settings.language, settings.tz);
        self.people(m, events, settings)
    }

    /// `m` in this channel's format; a mail goes to everyone any of `events` is for.
    fn people(&self, m: Message, events: &[AlertEvent], settings: &ReportSettings) -> Payload {
        let to = match &self.kind {
            Kind::Email(mailer) => match mailer.as_ref() {
                Ok(mailer) => {
                    let mut to: Vec<String> = Vec::new();
                    for e in events {
                        for addr in mailer.recipients(e) {
                            if !to.iter().any(|a| a.eq_ignore_ascii_case(&addr)) {
                                to.push(addr);
                            }
                        }
                    }
                    to
                }
                Err(why) => return Payload::Unsendable(why.clone()),
            },
            _ => Vec::new(),
        };
        if let Kind::Webhook { .. } = self.kind {
            return Payload::Http(
                serde_json::to_vec(&serde_json::json!(events)).unwrap_or_default(),
            );
        }
        self.formatted(&m, &to, settings.language)
    }

    /// The periodic bulletin `m` in this channel's format; a mail goes to `to`, or to the
    /// channel's own `to` when that is empty.
    pub fn bulletin_payload(&self, m: &Message, to: &[String], lang: Language) -> Payload {
        let to = match (&self.kind, to.is_empty()) {
            (Kind::Email(mailer), true) => match mailer.as_ref() {
                Ok(mailer) => mailer.duty_desk().to_vec(),
                Err(why) => return Payload::Unsendable(why.clone()),
            },
            _ => to.to_vec(),
        };
        self.formatted(m, &to, lang)
    }

    /// `m` as a robot's Markdown message or as a mail to `to` (webhooks get the text as JSON).
    fn formatted(&self, m: &Message, to: &[String], lang: Language) -> Payload {
        let body = match &self.kind {
            Kind::Webhook { .. } => serde_json::json!({"title": m.title, "text": m.text}),
            Kind::DingTalk { .. } => serde_json::json!({
                "msgtype": "markdown",
                "markdown": {"title": m.title, "text": fit(&m.text, DINGTALK_MAX, lang)},
            }),
            Kind::WeCom => serde_json::json!({
                "msgtype": "markdown",
                "markdown": {"content": fit(&m.text, WECOM_MAX, lang)},
            }),
            Kind::Email(mailer) => {
                let mailer = match mailer.as_ref() {
                    Ok(m) => m,
                    Err(why) => return Payload::Unsendable(why.clone()),
                };
                if to.is_empty() {
                    return Payload::Unsendable("no recipient for this alert".into());
                }
                return match mailer.message(m, to) {
                    Ok(mail) => Payload::Mail(Box::new(mail)),
                    Err(why) => Payload::Unsendable(why),
                };
            }
        };
        Payload::Http(serde_json::to_vec(&body).unwrap_or_default())
    }

    /// The request of one attempt at `now_ms` (DingTalk signs each attempt afresh: it
    /// rejects a timestamp over an hour old). `Err` when it cannot be made at all.
    pub fn request(
        &self,
        client: &reqwest::Client,
        event: &'static str,
        body: &[u8],
        now_ms: i64,
    ) -> Result<reqwest::RequestBuilder, String> {
        let url = match &self.kind {
            Kind::DingTalk { secret: Err(e) } => return Err(e.clone()),
            Kind::DingTalk {
                secret: Ok(Some(secret)),
            } => {
                let sep = if self.url.contains('?') { '&' } else { '?' };
                format!(
                    "{}{sep}timestamp={now_ms}&sign={}",
                    self.url,
                    dingtalk_sign(secret, now_ms)
                )
            }
            _ => self.url.clone(),
        };
        let mut req = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Kind::Webhook { secret } = &self.kind {
            req = req.header("X-Poolguard-Event", event);
            if let Some(secret) = secret {
                req = req.header("X-Poolguard-Signature", signature(secret, body));
            }
        }
        Ok(req)
    }

    /// Sends one attempt.
    pub async fn attempt(
        &self,
        client: &reqwest::Client,
        event: &'static str,
        payload: &Payload,
        now_ms: i64,
    ) -> Tried {
        let body = match (payload, &self.kind) {
            (Payload::Unsendable(why), _) => return Tried::permanent(why.clone()),
            (Payload::Mail(mail), Kind::Email(mailer)) => {
                return match mailer.as_ref() {
                    Ok(m) => m.send(mail.as_ref().clone()).await,
                    Err(why) => Tried::permanent(why.clone()),
                };
            }
            (Payload::Mail(_), _) => return Tried::permanent("a mail for an HTTP channel".into()),
            (Payload::Http(body), _) => body,
        };
        let req = match self.request(client, event, body, now_ms) {
            Ok(r) => r,
            // The robot's secret could not be read: the same on every attempt.
            Err(e) => return Tried::permanent(e),
        };
        let resp = match req.send().await {
            Ok(r) => r,
            // Without the URL: a robot's holds its token.
            Err(e) => return Tried::http(None, Some(e.without_url().to_string())),
        };
        let status = resp.status();
        if !status.is_success() {
            let mut tried = Tried::http(Some(status.as_u16()), Some(format!("HTTP {status}")));
            tried.retry = http_retryable(status.as_u16());
            return tried;
        }
        if matches!(self.kind, Kind::Webhook { .. }) {
            return Tried::http(Some(status.as_u16()), None);
        }
        let answer: serde_json::Value = resp.json().await.unwrap_or_default();
        let error = match answer.get("errcode").and_then(|c| c.as_i64()) {
            Some(0) => None,
            Some(code) => Some(format!(
                "errcode {code}: {}",
                answer.get("errmsg").and_then(|m| m.as_str()).unwrap_or("")
            )),
            None => Some("answer without errcode".to_string()),
        };
        Tried::http(Some(status.as_u16()), error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dingtalk_sign_is_url_encoded_base64_hmac() {
        // Recomputed independently: HMAC-SHA256("SECtest", "1700000000000\nSECtest").
        let mut mac = Hmac::<Sha256>::new_from_slice(b"SECtest").expect("key");
        mac.update(b"1700000000000\nSECtest");
        let raw = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let sign = dingtalk_sign("SECtest", 1_700_000_000_000);
        assert!(!sign.contains(['+', '/', '=']));
        let decoded = sign
            .replace("%2B", "+")
            .replace("%2F", "/")
            .replace("%3D", "=");
        assert_eq!(decoded, raw);
    }

    #[test]
    fn only_failures_a_retry_can_fix_are_retried() {
        for s in [500, 502, 503, 408, 425, 429] {
            assert!(super::http_retryable(s), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 413, 422] {
            assert!(!super::http_retryable(s), "{s}");
        }
    }
}
