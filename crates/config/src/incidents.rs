//! `[incidents]`, `[enforcement]`, `[notice]` and `[alerts]`: the accountability settings.
//!
//! Durations are written as operators write them (`"48h"`, `"30d"`); defaults follow the campus
//! rules (identify the device and its owner within 48 h, deliver the written report within 72 h).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Config, parse_duration};

/// A duration in config, written `"48h"`, `"30d"`, `"500ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl Span {
    /// The span in milliseconds, saturating.
    pub fn ms(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Span)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

fn hours(h: u64) -> Span {
    Span(Duration::from_secs(h * 3600))
}

/// `[incidents]`: the two campus deadlines, counted from an incident's first hit.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentsConfig {
    /// Open incidents from hits at all (off = hits are still stored, nobody is chased).
    pub enabled: bool,
    /// Device and responsible person must be recorded within this (campus rule: 48 h).
    pub identify_within: Span,
    /// The written report must be delivered within this (campus rule: 72 h).
    pub report_within: Span,
    /// `incident.due_soon` fires this long before a deadline.
    pub due_soon_before: Span,
    /// Security staff's test machines: answered as usual, hits stored marked `exempt`, no
    /// incident, no quarantine.
    pub exempt: ExemptConfig,
}

/// `[incidents.exempt]`: what exempts a hit (its address, or the MAC or account that held
/// the address then); parsed and checked by `poolguard_identity::Exempt`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExemptConfig {
    /// Addresses or networks (`10.9.0.7`, `10.20.0.0/24`).
    pub addresses: Vec<String>,
    /// MACs in any common spelling (`00-1A-2B-…`, `001a.2b3c.4d5e`).
    pub macs: Vec<String>,
    /// Logins (RADIUS User-Name or the ledger's account), case-insensitive.
    pub accounts: Vec<String>,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            identify_within: hours(48),
            report_within: hours(72),
            due_soon_before: hours(6),
            exempt: ExemptConfig::default(),
        }
    }
}

/// What happens to repeat offenders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EnforcementMode {
    /// Thresholds are not evaluated.
    #[default]
    Off,
    /// Crossing a threshold raises `quarantine.on` with `"applied": false`; nobody is cut off.
    Notify,
    /// Crossing a threshold quarantines the client's address (walled garden).
    Quarantine,
}

/// `[enforcement]`: "terminals that keep mining lose internet access".
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnforcementConfig {
    pub mode: EnforcementMode,
    /// This many incidents of one client within `incidents_window` is a repeat offender (0 = off).
    pub incidents_threshold: u32,
    pub incidents_window: Span,
    /// This many hits of one address within `hits_window` is a repeat offender (0 = off).
    pub hits_threshold: u32,
    pub hits_window: Span,
    /// A quarantined client's A queries get this address (the notice page).
    pub notice_ipv4: Ipv4Addr,
    /// A quarantined client's AAAA queries get this address.
    pub notice_ipv6: Ipv6Addr,
    /// Names (with their subdomains) a quarantined client may still resolve: portal, help desk.
    pub reachable: Vec<String>,
}

impl Default for EnforcementConfig {
    fn default() -> Self {
        Self {
            mode: EnforcementMode::Off,
            incidents_threshold: 3,
            incidents_window: hours(30 * 24),
            hits_threshold: 0,
            hits_window: hours(1),
            notice_ipv4: Ipv4Addr::LOCALHOST,
            notice_ipv6: Ipv6Addr::LOCALHOST,
            reachable: Vec::new(),
        }
    }
}

/// `[notice]`: the page a quarantined client's browser lands on.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoticeConfig {
    /// Where poolguard serves the page over HTTP (absent = not served).
    pub listen: Option<SocketAddr>,
    pub title: String,
    /// Explanation in Chinese.
    pub text_zh: String,
    /// Explanation in English.
    pub text_en: String,
    /// Whom to contact (help desk, phone, mail).
    pub contact: String,
}

impl Default for NoticeConfig {
    fn default() -> Self {
        Self {
            listen: None,
            title: "网络访问已暂停 / Network access suspended".to_string(),
            text_zh: "本终端多次访问加密货币挖矿服务，根据校园网管理规定，其互联网访问已被暂停。请清除挖矿程序后联系信息中心恢复访问。".to_string(),
            text_en: "This device repeatedly contacted cryptocurrency-mining services. Under the campus network rules its internet access is suspended. Remove the mining software, then contact the information centre to restore access.".to_string(),
            contact: "信息中心 / Information Centre".to_string(),
        }
    }
}

/// Events a webhook can subscribe to.
pub const EVENTS: [&str; 5] = [
    "incident.opened",
    "incident.due_soon",
    "incident.overdue",
    "quarantine.on",
    "quarantine.off",
];

/// `[alerts]`: where incident and quarantine events go.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub webhooks: Vec<WebhookConfig>,
    /// DingTalk group robots.
    pub dingtalk: Vec<crate::robots::DingTalkConfig>,
    /// WeCom (企业微信) group robots.
    pub wecom: Vec<crate::robots::WeComConfig>,
    /// Mail over SMTP.
    pub email: Vec<crate::email::EmailConfig>,
    /// Where people open an incident (`https://poolguard.campus.edu`): alerts link to
    /// `<console_url>/api/v1/incidents/<id>/report`. Absent = alerts carry no link.
    pub console_url: Option<String>,
    /// Attempts per delivery, including the first (bounded retries).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled each time, capped at 5 min.
    pub retry_backoff: Span,
    /// Per-request timeout.
    pub timeout: Span,
    /// How often deadlines are checked for `incident.due_soon` / `incident.overdue`.
    pub check_every: Span,
    /// RFC 5424 syslog over UDP for the SIEM (`host:port`), every event.
    pub syslog: Option<SocketAddr>,
    /// The periodic bulletin to other units (`[alerts.bulletin]`).
    pub bulletin: crate::bulletin::BulletinConfig,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            dingtalk: Vec::new(),
            wecom: Vec::new(),
            email: Vec::new(),
            console_url: None,
            max_attempts: 5,
            retry_backoff: Span(Duration::from_secs(2)),
            timeout: Span(Duration::from_secs(10)),
            check_every: Span(Duration::from_secs(60)),
            syslog: None,
            bulletin: Default::default(),
        }
    }
}

/// One `[[alerts.webhooks]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` endpoint.
    pub url: String,
    /// Subscribed events; empty = all.
    #[serde(default)]
    pub events: Vec<String>,
    /// HMAC-SHA256 key for `X-Poolguard-Signature`.
    #[serde(default)]
    pub secret: Option<String>,
}

/// A walled garden that cannot show its page: each problem names its keys and the fix.
///
/// Not a load error (a lab whose clients run on the poolguard host may mean it), but
/// `poolguard check` reports each one as a problem and start logs each one as a warning.
/// Only with `mode = "quarantine"`: in the other modes nobody is sent anywhere. A loopback
/// `notice_ipv4` sends every quarantined browser to its own machine, where no page is: it
/// sees a connection error, not why it was cut off nor whom to call. `notice_ipv6 = ::1`
/// alone is not reported: a browser falls back to `notice_ipv4` when `::1` refuses it, and
/// an IPv4-only campus has no better value to give.
pub fn walled_garden_problems(c: &Config) -> Vec<String> {
    let e = &c.enforcement;
    if e.mode != EnforcementMode::Quarantine {
        return Vec::new();
    }
    let v4 = e.notice_ipv4;
    let nowhere = |ip: std::net::IpAddr| ip.is_loopback() || ip.is_unspecified();
    let mut problems = Vec::new();
    if nowhere(v4.into()) {
        let serve = match c.notice.listen {
            None => "`[notice] listen` is not set, so poolguard does not serve the page: set \
                     `[notice] listen = \"0.0.0.0:80\"` and `notice_ipv4` to this server's \
                     campus address, or set `notice_ipv4` to a web server that shows the notice"
                .to_string(),
            Some(listen) => format!(
                "set `notice_ipv4` to the campus address of this server, where `[notice] listen \
                 = \"{listen}\"` serves the page (listen on 0.0.0.0 or that address)"
            ),
        };
        let v6 = if nowhere(e.notice_ipv6.into()) {
            format!(
                "; likewise `notice_ipv6 = \"{}\"` (the page's IPv6 address, if it has one)",
                e.notice_ipv6
            )
        } else {
            String::new()
        };
        problems.push(format!(
            "[enforcement] notice_ipv4 = \"{v4}\" with mode = \"quarantine\" sends every \
             quarantined client to its own machine (loopback), where no notice page is: they \
             see a connection error, not the notice. Fix: {serve}{v6}"
        ));
    } else if let Some(listen) = c.notice.listen
        && listen.ip().is_loopback()
    {
        problems.push(format!(
            "[notice] listen = \"{listen}\" is a loopback address, so quarantined clients sent \
             to notice_ipv4 = \"{v4}\" cannot reach the page. Fix: `[notice] listen = \
             \"0.0.0.0:{port}\"` (or \"{v4}:{port}\")",
            port = listen.port()
        ));
    }
    problems
}

/// Checks the accountability sections; `Err((key, reason))`.
pub fn validate(c: &Config) -> Result<(), (String, String)> {
    let i = &c.incidents;
    if i.identify_within.0.is_zero() || i.report_within.0.is_zero() {
        return Err((
            "incidents.identify_within / report_within".into(),
            "must be above 0".into(),
        ));
    }
    if i.report_within.0 < i.identify_within.0 {
        return Err((
            "incidents.report_within".into(),
            "must not be shorter than identify_within (the report needs the identification)".into(),
        ));
    }
    for (n, r) in c.enforcement.reachable.iter().enumerate() {
        if poolguard_model::domain::DomainName::parse(r).is_err() {
            return Err((
                format!("enforcement.reachable[{n}]"),
                format!("`{r}` is not a domain name"),
            ));
        }
    }
    for (n, w) in c.alerts.webhooks.iter().enumerate() {
        if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
            return Err((
                format!("alerts.webhooks[{n}].url"),
                format!("`{}` must start with http:// or https://", w.url),
            ));
        }
        if let Some(e) = w.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
            return Err((
                format!("alerts.webhooks[{n}].events"),
                format!("`{e}` is not one of {}", EVENTS.join(", ")),
            ));
        }
    }
    for (n, d) in c.alerts.dingtalk.iter().enumerate() {
        let sources = usize::from(d.secret_file.is_some()) + usize::from(d.secret_env.is_some());
        crate::robots::validate_robot("dingtalk", n, &d.webhook_url, &d.events, sources)?;
    }
    for (n, w) in c.alerts.wecom.iter().enumerate() {
        crate::robots::validate_robot("wecom", n, &w.webhook_url, &w.events, 0)?;
    }
    for (n, e) in c.alerts.email.iter().enumerate() {
        crate::email::validate_email(n, e)?;
    }
    if let Some(url) = &c.alerts.console_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err((
            "alerts.console_url".into(),
            format!("`{url}` must start with http:// or https://"),
        ));
    }
    crate::bulletin::validate_bulletin(&c.alerts)?;
    if c.alerts.max_attempts == 0 || c.alerts.max_attempts > 20 {
        return Err(("alerts.max_attempts".into(), "must be 1 to 20".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Result<Config, crate::ConfigError> {
        Config::from_toml(text, Path::new("t.toml"), Path::new("."))
    }

    #[test]
    fn defaults_follow_the_campus_rules() {
        let c = parse("").unwrap();
        assert_eq!(
            c.incidents.identify_within.0,
            Duration::from_secs(48 * 3600)
        );
        assert_eq!(c.incidents.report_within.0, Duration::from_secs(72 * 3600));
        assert_eq!(c.enforcement.mode, EnforcementMode::Off);
        assert!(c.notice.listen.is_none());
    }

    #[test]
    fn robots_parse_and_validate() {
        let c = parse(
            "[alerts]\nconsole_url = \"https://pg.campus.edu\"\n\
             [[alerts.dingtalk]]\nwebhook_url = \"https://oapi.dingtalk.com/robot/send?access_token=t\"\n\
             secret_env = \"DT_SECRET\"\nevents = [\"incident.opened\"]\n\
             [[alerts.wecom]]\nwebhook_url = \"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k\"\n",
        )
        .unwrap();
        assert_eq!(
            c.alerts.dingtalk[0].secret_env.as_deref(),
            Some("DT_SECRET")
        );
        assert!(c.alerts.wecom[0].events.is_empty());
        let both = parse(
            "[[alerts.dingtalk]]\nwebhook_url = \"https://x\"\nsecret_env = \"A\"\nsecret_file = \"/s\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(both.contains("alerts.dingtalk[0].secret_file"), "{both}");
        let ev = parse("[[alerts.wecom]]\nwebhook_url = \"https://x\"\nevents = [\"nope\"]\n")
            .unwrap_err()
            .to_string();
        assert!(ev.contains("alerts.wecom[0].events"), "{ev}");
    }

    #[test]
    fn email_parses_and_refuses_clear_text_off_loopback() {
        let c = parse(
            "[[alerts.email]]\nserver = \"smtp.campus.edu:587\"\nusername = \"pg\"\n\
             password_env = \"SMTP_PW\"\nfrom = \"pg@campus.edu\"\nto = [\"soc@campus.edu\"]\n\
             departments = { \"物理系\" = [\"phys@campus.edu\"] }\n",
        )
        .unwrap();
        assert_eq!(c.alerts.email[0].tls, crate::email::SmtpTls::Starttls);
        assert_eq!(c.alerts.email[0].departments["物理系"], ["phys@campus.edu"]);
        let clear = parse(
            "[[alerts.email]]\nserver = \"smtp.campus.edu:25\"\ntls = \"none\"\n\
             from = \"pg@campus.edu\"\nto = [\"soc@campus.edu\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(clear.contains("alerts.email[0].tls"), "{clear}");
        assert!(
            parse(
                "[[alerts.email]]\nserver = \"127.0.0.1:25\"\ntls = \"none\"\n\
                 from = \"pg@campus.edu\"\nto = [\"soc@campus.edu\"]\n"
            )
            .is_ok()
        );
        let nobody = parse("[[alerts.email]]\nserver = \"h:587\"\nfrom = \"a@b\"\n")
            .unwrap_err()
            .to_string();
        assert!(nobody.contains("no recipients"), "{nobody}");
    }

    #[test]
    fn sections_parse_and_validate() {
        let c = parse(
            "[incidents]\nidentify_within = \"24h\"\nreport_within = \"3d\"\n\
             [enforcement]\nmode = \"quarantine\"\nincidents_threshold = 3\nincidents_window = \"30d\"\n\
             hits_threshold = 50\nhits_window = \"1h\"\nreachable = [\"portal.campus.edu\"]\n\
             [[alerts.webhooks]]\nurl = \"https://siem.campus.edu/hook\"\nevents = [\"incident.opened\"]\nsecret = \"k\"\n",
        )
        .unwrap();
        assert_eq!(
            c.incidents.identify_within.0,
            Duration::from_secs(24 * 3600)
        );
        assert_eq!(
            c.enforcement.incidents_window.0,
            Duration::from_secs(30 * 86400)
        );
        assert_eq!(c.alerts.webhooks[0].events, ["incident.opened"]);
        let bad =
            parse("[[alerts.webhooks]]\nurl = \"https://x\"\nevents = [\"incident.exploded\"]\n")
                .unwrap_err()
                .to_string();
        assert!(bad.contains("alerts.webhooks[0].events"), "{bad}");
        let bad = parse("[incidents]\nidentify_within = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("duration"), "{bad}");
        let bad = parse("[incidents]\nidentify_within = \"80h\"\n")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("report_within"), "{bad}");
        let bad = parse("[enforcement]\nmode = \"ban\"\n")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("mode") || bad.contains("variant"), "{bad}");
    }
}
