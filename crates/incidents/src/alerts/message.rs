//! An alert as people read it: a title and a Markdown text in `[reports] language`, times in
//! `[reports] timezone`, within a channel's size limit.
//!
//! The labels are the written report's ([`crate::report::i18n`]), so an alert and the report
//! it links to use the same words; only the titles are the alerts' own.

use std::fmt::Write as _;

use chrono_tz::Tz;
use poolguard_config::reports::Language;
use serde_json::Value;

use super::AlertEvent;
use crate::report::{i18n, local_rfc3339};

/// A rendered alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// One line: what happened, to which incident or client.
    pub title: String,
    /// Markdown: the title as a heading, then one line per known fact.
    pub text: String,
}

/// Where `text` was cut to fit a channel's limit.
const CUT_EN: &str = "\n\n… (truncated)";
const CUT_ZH: &str = "\n\n…（内容过长，已截断）";

fn title(event: &AlertEvent, lang: Language) -> String {
    let id = event
        .incident_id
        .map(|i| format!("#{i}"))
        .unwrap_or_default();
    let client = event.client.as_deref().unwrap_or("");
    let zh = lang == Language::ZhCn;
    match (event.event, zh) {
        ("incident.opened", false) => format!("Mining incident {id} opened: {client}"),
        ("incident.opened", true) => format!("挖矿事件 {id} 已立案：{client}"),
        ("incident.due_soon", false) => format!("Incident {id}: deadline soon ({client})"),
        ("incident.due_soon", true) => format!("事件 {id} 即将到期（{client}）"),
        ("incident.overdue", false) => format!("Incident {id} is overdue ({client})"),
        ("incident.overdue", true) => format!("事件 {id} 已逾期（{client}）"),
        ("quarantine.on", false) => format!("Client {client} quarantined (incident {id})"),
        ("quarantine.on", true) => format!("终端 {client} 已隔离（事件 {id}）"),
        ("quarantine.off", false) => format!("Client {client} released from quarantine"),
        ("quarantine.off", true) => format!("终端 {client} 已解除隔离"),
        (other, _) => format!("{other} {id} {client}"),
    }
}

/// Renders `event` in `lang`, times in `tz`.
pub fn render(event: &AlertEvent, lang: Language, tz: Tz) -> Message {
    let m = i18n::messages(lang);
    let zh = lang == Language::ZhCn;
    let title = title(event, lang);
    let mut text = format!("### {title}\n\n");
    let d = &event.detail;
    let s = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let time = |v: &Value| v.as_str().map(|t| local_rfc3339(t, tz));
    let rows: [(&str, Option<String>); 19] = [
        (m.incident, event.incident_id.map(|i| format!("#{i}"))),
        (m.client, event.client.clone()),
        (m.asset, s(&d["identity"]["asset"])),
        (m.mac, s(&d["identity"]["mac"])),
        (m.responsible, s(&d["identity"]["owner"])),
        (
            m.department,
            s(&d["identity"]["department"]).or_else(|| s(&d["department"])),
        ),
        (m.location, s(&d["identity"]["location"])),
        (m.contact, s(&d["identity"]["contact"])),
        (if zh { "矿池域名" } else { "Pool" }, s(&d["pool"])),
        (m.feed, s(&d["feed"])),
        (m.hits, s(&d["hits"])),
        (m.opened, time(&d["opened"])),
        (m.identify_deadline, time(&d["identify_by"])),
        (m.report_deadline, time(&d["report_by"])),
        (if zh { "期限" } else { "Deadline" }, s(&d["deadline"])),
        (if zh { "到期时间" } else { "Due" }, time(&d["due"])),
        (m.assignee, s(&d["assignee"])),
        (if zh { "原因" } else { "Reason" }, s(&d["reason"])),
        (if zh { "操作人" } else { "By" }, s(&d["by"])),
    ];
    for (label, value) in rows {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            let _ = writeln!(text, "- **{label}**: {}", escape(&v));
        }
    }
    if let Some(link) = d["link"].as_str() {
        let open = if zh {
            "查看事件报告"
        } else {
            "Open the incident report"
        };
        let _ = writeln!(text, "\n[{open}]({link})");
    }
    Message { title, text }
}

/// One summary of `events` held back by digest mode (`more`: held beyond those listed): one
/// line per event, its time, title, department and pool.
pub fn render_digest(events: &[AlertEvent], more: usize, lang: Language, tz: Tz) -> Message {
    let n = events.len() + more;
    let zh = lang == Language::ZhCn;
    let title = if zh {
        format!("poolguard 告警汇总：{n} 条")
    } else {
        format!("poolguard digest: {n} alerts")
    };
    let mut text = format!("### {title}\n\n");
    for e in events {
        let d = &e.detail;
        let mut extra: Vec<String> = Vec::new();
        for v in [
            d["identity"]["department"]
                .as_str()
                .or(d["department"].as_str()),
            d["pool"].as_str(),
        ]
        .into_iter()
        .flatten()
        {
            extra.push(escape(v));
        }
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(" — {}", extra.join(" · "))
        };
        let _ = writeln!(
            text,
            "- {} {}{extra}",
            local_rfc3339(&e.time, tz),
            self::title(e, lang)
        );
    }
    if more > 0 {
        let _ = if zh {
            writeln!(text, "- ……另有 {more} 条")
        } else {
            writeln!(text, "- … and {more} more")
        };
    }
    Message { title, text }
}

/// Markdown's emphasis and link characters in a value (a ledger field, a name) are shown
/// as themselves, so a value cannot restyle the message or forge a link.
pub(super) fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '*' | '_' | '[' | ']' | '`' | '#' | '<' | '>') {
            out.push('\\');
        }
        if c != '\n' && c != '\r' {
            out.push(c);
        } else {
            out.push(' ');
        }
    }
    out
}

/// `text` cut to at most `max` bytes of UTF-8 at a character boundary, with a marker saying
/// so in `lang`; unchanged when it fits.
pub fn fit(text: &str, max: usize, lang: Language) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let marker = if lang == Language::ZhCn {
        CUT_ZH
    } else {
        CUT_EN
    };
    let mut end = max.saturating_sub(marker.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = text[..end].to_string();
    out.push_str(marker);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened() -> AlertEvent {
        let mut ev = AlertEvent::incident("incident.opened", 7, "10.1.2.3", 0);
        ev.detail = serde_json::json!({
            "identity": {"department": "物理系", "owner": "李*伟"},
            "pool": "xmr.pool.minergate.com",
            "hits": 4,
            "report_by": "1970-01-04T00:00:00Z",
            "link": "https://pg/api/v1/incidents/7/report",
        });
        ev
    }

    #[test]
    fn renders_in_the_language_and_zone() {
        let zh = render(&opened(), Language::ZhCn, chrono_tz::Asia::Shanghai);
        assert_eq!(zh.title, "挖矿事件 #7 已立案：10.1.2.3");
        assert!(zh.text.contains("物理系"), "{}", zh.text);
        assert!(zh.text.contains("李\\*伟"), "{}", zh.text);
        assert!(zh.text.contains("1970-01-04 08:00:00 CST"), "{}", zh.text);
        assert!(zh.text.contains("(https://pg/api/v1/incidents/7/report)"));
        let en = render(&opened(), Language::En, Tz::UTC);
        assert!(en.title.starts_with("Mining incident #7 opened"));
        assert!(en.text.contains("xmr.pool.minergate.com"));
    }

    #[test]
    fn digest_lists_every_held_event() {
        let mut b = AlertEvent::incident("incident.opened", 8, "10.1.2.4", 0);
        b.detail = serde_json::json!({"identity": {"department": "化学系"}, "pool": "pool.b"});
        let m = render_digest(&[opened(), b], 3, Language::ZhCn, Tz::UTC);
        assert_eq!(m.title, "poolguard 告警汇总：5 条");
        assert!(
            m.text
                .contains("挖矿事件 #7 已立案：10.1.2.3 — 物理系 · xmr.pool.minergate.com"),
            "{}",
            m.text
        );
        assert!(m.text.contains("#8") && m.text.contains("化学系 · pool.b"));
        assert!(m.text.contains("另有 3 条"));
    }

    #[test]
    fn fit_cuts_at_a_character_boundary() {
        let long = "矿".repeat(2000); // 6000 bytes
        let cut = fit(&long, 4096, Language::ZhCn);
        assert!(cut.len() <= 4096);
        assert!(cut.ends_with(CUT_ZH));
        assert_eq!(fit("short", 4096, Language::En), "short");
    }
}
