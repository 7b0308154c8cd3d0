//! The written report of an incident (HTML for print, Markdown) and the periodic summary.
//!
//! The report is what a security officer signs and hands in within 72 hours, so it reads as a
//! document, not a dump: the institution's header, headings in the configured language
//! ([`i18n`]), times in the campus zone to the second with the zone named, the investigator's
//! account (how found, cause, measures, outcome, follow-up), hits per name before the
//! timeline, the timeline as an appendix collapsed to runs of identical rows
//! ([`evidence::runs`]), the resolution only once closed, signature lines, and the SHA-256 of
//! the evidence it is built from ([`evidence::evidence_sha256`]).
//!
//! It is generated from the evidence only: the incident row (identity snapshot, deadlines),
//! every hit linked to it, the feeds' sources, the audit trail and the notes. HTML prints on
//! A4 (`@page`), carries its CSS (and logo) inline and no script, escapes every piece of text,
//! declares UTF-8 and uses a CJK-capable font stack.

pub(crate) mod bulletin;
pub mod evidence;
mod html;
pub mod i18n;
mod markdown;

use std::collections::HashMap;

use base64::Engine as _;
use chrono_tz::Tz;

use super::FeedMeta;
use super::db::{IncidentHit, IncidentRow, Note};
use super::deadline::{DeadlineState, Judgement};
use poolguard_config::Config;
use poolguard_config::reports::{Language, logo_media_type};
use poolguard_store::audit::AuditEntry;
use poolguard_store::narrative::Narrative;
use poolguard_store::{IncidentStore, StoreError};

pub use bulletin::{summary_csv, summary_html};
pub use html::html;
pub use markdown::markdown;
pub use poolguard_store::summary::{
    Added, DepartmentFigures, Listed, NewName, Offender, OffenderDevice, Summary,
};

/// Hits shown in one report at most (an incident is normally a few dozen).
pub const MAX_REPORT_HITS: usize = 20_000;

/// HTML-escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for a Markdown table cell or line: no markup, no table breaks, no raw HTML.
pub fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `[reports]` as the renderer needs it: the zone parsed and the logo read once at start.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// The default language (`?lang=` overrides it per request).
    pub language: Language,
    pub tz: Tz,
    pub institution: String,
    pub unit: String,
    /// The logo as a `data:` URI, so the HTML stands alone.
    pub logo: Option<String>,
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self {
            language: Language::En,
            tz: Tz::UTC,
            institution: String::new(),
            unit: String::new(),
            logo: None,
        }
    }
}

impl ReportSettings {
    /// From `[reports]`. The logo was checked when the config was loaded; if it cannot be read
    /// now the report goes without it (logged), rather than poolguard not starting.
    pub fn from_config(config: &Config) -> Self {
        let r = &config.reports;
        let logo = r.logo_file.as_deref().and_then(|p| {
            let path = config.resolve(p);
            let media = logo_media_type(&path)?;
            match std::fs::read(&path) {
                Ok(bytes) => Some(format!(
                    "data:{media};base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(bytes)
                )),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "report logo not readable; reports go without it");
                    None
                }
            }
        });
        Self {
            language: r.language,
            tz: r.tz(),
            institution: r.institution.clone(),
            unit: r.unit.clone(),
            logo,
        }
    }
}

/// How one request wants the report: its language and whether every timeline row is listed.
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub language: Language,
    /// `?rows=all`: no runs, one row per hit.
    pub all_rows: bool,
}

/// Everything a report shows.
#[derive(Debug, Clone)]
pub struct ReportData {
    pub incident: IncidentRow,
    pub hits: Vec<IncidentHit>,
    /// True when the incident has more hits than [`MAX_REPORT_HITS`].
    pub truncated: bool,
    pub notes: Vec<Note>,
    /// Staff and system actions on the incident (audit trail), oldest first.
    pub actions: Vec<AuditEntry>,
    /// The investigator's account.
    pub narrative: Narrative,
    /// The feeds that matched, with their sources.
    pub feeds: Vec<FeedMeta>,
    /// When the report was generated (ms), the clock's now.
    pub generated_ms: i64,
    /// [`evidence::evidence_sha256`] of `hits` and `actions`.
    pub evidence_sha256: String,
}

/// Loads the report's data from `store`; `None` when the incident does not exist.
pub async fn load(
    store: &dyn IncidentStore,
    id: i64,
    feeds: &HashMap<String, FeedMeta>,
    now: i64,
) -> Result<Option<ReportData>, StoreError> {
    let Some(record) = store.incident_report(id, MAX_REPORT_HITS + 1).await? else {
        return Ok(None);
    };
    let mut hits = record.hits;
    let truncated = hits.len() > MAX_REPORT_HITS;
    hits.truncate(MAX_REPORT_HITS);
    let incident = record.incident;
    let feeds = incident
        .feeds
        .iter()
        .map(|f| {
            feeds.get(f).cloned().unwrap_or_else(|| FeedMeta {
                name: f.clone(),
                category: "unknown".into(),
                severity: "unknown".into(),
                action: None,
                path: None,
                url: None,
            })
        })
        .collect();
    let evidence_sha256 = evidence::evidence_sha256(&hits, &record.actions);
    Ok(Some(ReportData {
        incident,
        hits,
        truncated,
        notes: record.notes,
        actions: record.actions,
        narrative: record.narrative,
        feeds,
        generated_ms: now,
        evidence_sha256,
    }))
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("—")
}

fn local(ms: i64, tz: Tz) -> Option<chrono::DateTime<Tz>> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&tz))
}

/// A time as the report prints it: in the zone, to the second, the zone named
/// (`2026-12-07 10:14:03 CST (Asia/Shanghai)`; `… UTC` when the abbreviation is the name).
pub fn local_time(ms: i64, tz: Tz) -> String {
    let Some(t) = local(ms, tz) else {
        return ms.to_string();
    };
    let abbr = t.format("%Z").to_string();
    if abbr == tz.name() {
        format!("{} {abbr}", t.format("%Y-%m-%d %H:%M:%S"))
    } else {
        format!("{} {abbr} ({})", t.format("%Y-%m-%d %H:%M:%S"), tz.name())
    }
}

/// A stored RFC 3339 time (a note's) as the report prints times; as stored if unparsable.
pub fn local_rfc3339(t: &str, tz: Tz) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| local_time(d.timestamp_millis(), tz))
        .unwrap_or_else(|_| t.to_string())
}

/// A timeline cell: one time, or a run's span (`2026-12-07 01:01:38–01:01:44`); the zone is
/// named in the column's heading.
pub fn span(first_ms: i64, last_ms: i64, tz: Tz) -> String {
    let (Some(a), Some(b)) = (local(first_ms, tz), local(last_ms, tz)) else {
        return first_ms.to_string();
    };
    let full = "%Y-%m-%d %H:%M:%S";
    if first_ms / 1000 == last_ms / 1000 {
        a.format(full).to_string()
    } else if a.date_naive() == b.date_naive() {
        format!("{}–{}", a.format(full), b.format("%H:%M:%S"))
    } else {
        format!("{}–{}", a.format(full), b.format(full))
    }
}

/// A summary line: label, value, and whether it records a missed deadline (shown in red).
type Fact = (&'static str, String, bool);

/// A deadline as the report words it: due time — state and what it rests on.
fn deadline_text(j: &Judgement, m: &i18n::Messages, tz: Tz) -> String {
    let t = |ms| local_time(ms, tz);
    let what = match (j.state, j.done_ms, j.closed_ms) {
        (DeadlineState::Met, Some(d), _) => format!("{} {}", m.met_done, t(d)),
        (DeadlineState::Missed, Some(d), _) => format!("{} {}", m.missed_late, t(d)),
        (DeadlineState::Missed, None, Some(c)) => format!("{} {}", m.missed_never, t(c)),
        (DeadlineState::Missed, None, None) => m.missed_overdue.to_string(),
        (DeadlineState::NotNeeded, _, Some(c)) => format!("{} {}", m.not_needed, t(c)),
        (DeadlineState::NotNeeded, _, None) => m.not_needed.trim_end_matches(',').to_string(),
        _ => m.pending.to_string(),
    };
    format!("{} — {what}", t(j.due_ms))
}

/// The summary lines shared by both formats.
fn facts(d: &ReportData, m: &i18n::Messages, tz: Tz) -> Vec<Fact> {
    let i = &d.incident;
    let id = &i.identity;
    let plain = |k: &'static str, v: String| (k, v, false);
    // The one deadline rule (`incidents::deadline`), as the API and the bulletin judge it.
    let deadline = |k: &'static str, j: Judgement| (k, deadline_text(&j, m, tz), j.missed());
    vec![
        plain(m.incident, format!("#{}", i.id)),
        plain(m.status, m.status_name(i.status).to_string()),
        plain(m.severity, i.severity.as_str().to_string()),
        plain(m.categories, i.categories.join(", ")),
        plain(m.client, i.client.clone()),
        plain(m.device, opt(&i.device).to_string()),
        plain(m.responsible, opt(&i.owner).to_string()),
        plain(m.contact, opt(&id.contact).to_string()),
        plain(m.asset, opt(&id.asset).to_string()),
        plain(m.mac, opt(&id.mac).to_string()),
        plain(m.account, opt(&id.account).to_string()),
        plain(m.hostname, opt(&id.hostname).to_string()),
        // Kea, dhcpd, RADIUS (joined by `+`), or the ledger alone.
        plain(
            m.identity_source,
            id.source.clone().unwrap_or_else(|| "ledger".into()),
        ),
        plain(m.kind, opt(&id.kind).to_string()),
        plain(m.location, opt(&id.location).to_string()),
        plain(m.department, opt(&id.department).to_string()),
        plain(m.assignee, opt(&i.assignee).to_string()),
        plain(m.opened, local_time(i.opened_ms, tz)),
        plain(m.last_hit, local_time(i.last_hit_ms, tz)),
        plain(m.hits, i.hit_count.to_string()),
        plain(m.names, i.name_count.to_string()),
        deadline(m.identify_deadline, i.identify_deadline(d.generated_ms)),
        deadline(m.report_deadline, i.report_deadline(d.generated_ms)),
    ]
}

/// The investigator's account as (heading, text) pairs; `None` text = not recorded.
fn narrative_sections(n: &Narrative, m: &i18n::Messages) -> Vec<(&'static str, Option<String>)> {
    let mut measures: Vec<String> = n
        .actions
        .iter()
        .map(|a| m.measure_name(a).to_string())
        .collect();
    if let Some(other) = &n.actions_other {
        measures.push(format!("{}: {other}", m.measures_other));
    }
    let measures = (!measures.is_empty()).then(|| measures.join("; "));
    vec![
        (m.how_found, n.found.clone()),
        (m.cause, n.cause.clone()),
        (m.measures, measures),
        (m.outcome, n.outcome.clone()),
        (m.follow_up, n.follow_up.clone()),
    ]
}

/// A table as both formats print it: its headings and its rows of cells (plain text; each
/// format escapes).
struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&str]) -> Self {
        Self {
            head: head.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }
}

/// The time column's heading, naming the zone.
fn time_column(m: &i18n::Messages, tz: Tz) -> String {
    format!("{} ({})", m.time, tz.name())
}

/// Hits per name, feed and rule.
fn names_table(d: &ReportData, m: &i18n::Messages, tz: Tz) -> Table {
    let mut t = Table::new(&[m.name, m.feed, m.rule, m.count, m.first_seen, m.last_seen]);
    for n in evidence::per_name(&d.hits) {
        t.rows.push(vec![
            n.name,
            opt(&n.feed).to_string(),
            opt(&n.rule).to_string(),
            n.count.to_string(),
            local_time(n.first_ms, tz),
            local_time(n.last_ms, tz),
        ]);
    }
    t
}

/// The feeds with their sources.
fn feeds_table(d: &ReportData, m: &i18n::Messages) -> Table {
    let mut t = Table::new(&[m.feed, m.category, m.severity, m.source]);
    for f in &d.feeds {
        t.rows.push(vec![
            f.name.clone(),
            f.category.clone(),
            f.severity.clone(),
            source(f),
        ]);
    }
    t
}

/// The audit trail.
fn audit_table(d: &ReportData, m: &i18n::Messages, tz: Tz) -> Table {
    let mut t = Table::new(&[&time_column(m, tz), m.by, m.action, m.detail]);
    for a in &d.actions {
        t.rows.push(vec![
            span(a.time_ms, a.time_ms, tz),
            a.actor.clone(),
            a.action.clone(),
            a.detail.clone(),
        ]);
    }
    t
}

/// The appendix: runs of identical rows, or every row.
fn timeline_table(d: &ReportData, m: &i18n::Messages, tz: Tz, all_rows: bool) -> Table {
    let mut t = Table::new(&[
        &time_column(m, tz),
        m.client,
        m.name,
        m.qtype,
        m.feed,
        m.rule,
        m.action,
        m.count,
    ]);
    for r in evidence::runs(&d.hits, all_rows) {
        let hit = r.hit;
        t.rows.push(vec![
            span(r.first_ms, r.last_ms, tz),
            hit.client.clone(),
            hit.name.clone(),
            hit.qtype.clone(),
            opt(&hit.feed).to_string(),
            opt(&hit.rule).to_string(),
            format!("{} ({})", hit.action, hit.rcode),
            format!("× {}", r.count),
        ]);
    }
    t
}

fn source(f: &FeedMeta) -> String {
    match (&f.url, &f.path) {
        (Some(u), _) => u.clone(),
        (None, Some(p)) => p.display().to_string(),
        (None, None) => "—".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
        assert_eq!(escape("张伟"), "张伟");
        assert_eq!(md("a|b*<c>"), "a\\|b\\*&lt;c&gt;");
    }

    #[test]
    fn times_in_the_zone_to_the_second() {
        // 2026-12-07T02:14:03.456Z
        let ms = 1_796_609_643_456;
        assert_eq!(
            local_time(ms, chrono_tz::Asia::Shanghai),
            "2026-12-07 10:14:03 CST (Asia/Shanghai)"
        );
        assert_eq!(local_time(ms, Tz::UTC), "2026-12-07 02:14:03 UTC");
        assert_eq!(
            local_rfc3339("2026-12-07T02:14:03.456Z", chrono_tz::Asia::Shanghai),
            "2026-12-07 10:14:03 CST (Asia/Shanghai)"
        );
        assert_eq!(
            span(ms, ms + 6_000, chrono_tz::Asia::Shanghai),
            "2026-12-07 10:14:03–10:14:09"
        );
    }
}
