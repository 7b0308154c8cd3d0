//! The written report of an incident (HTML for print, Markdown) and the periodic summary.
//!
//! The report is generated from the evidence only: the incident row (identity snapshot,
//! deadlines), every hit linked to it, the feeds' sources, the audit trail of staff actions
//! and the notes. HTML prints on A4 (`@page`), carries its CSS inline and no script, escapes
//! every piece of text, declares UTF-8 and uses a CJK-capable font stack, because ledger fields
//! and notes are often Chinese.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::FeedMeta;
use super::db::{IncidentHit, IncidentRow, Note};
use super::deadline::Judgement;
use poolguard_model::rfc3339;
use poolguard_store::audit::AuditEntry;
use poolguard_store::{IncidentStore, StoreError};

pub use poolguard_store::summary::{DepartmentFigures, NewName, Offender, Summary};

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
    /// The feeds that matched, with their sources.
    pub feeds: Vec<FeedMeta>,
    /// When the report was generated (ms), the clock's now.
    pub generated_ms: i64,
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
    Ok(Some(ReportData {
        incident,
        hits,
        truncated,
        notes: record.notes,
        actions: record.actions,
        feeds,
        generated_ms: now,
    }))
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("—")
}

/// A summary line: label, value, and whether it records a missed deadline (shown in red).
type Fact = (&'static str, String, bool);

/// The summary lines shared by both formats.
fn facts(d: &ReportData) -> Vec<Fact> {
    let i = &d.incident;
    let id = &i.identity;
    let plain = |k: &'static str, v: String| (k, v, false);
    // The one deadline rule (`incidents::deadline`), as the API and the bulletin judge it.
    let deadline = |k: &'static str, j: Judgement| {
        (
            k,
            format!("{} — {}", rfc3339(j.due_ms), j.describe()),
            j.missed(),
        )
    };
    vec![
        plain("Incident", format!("#{}", i.id)),
        plain("Status", i.status.as_str().to_string()),
        plain("Resolution", opt(&i.resolution).to_string()),
        plain("Severity", i.severity.as_str().to_string()),
        plain("Categories", i.categories.join(", ")),
        plain("Client address", i.client.clone()),
        plain("Device", opt(&i.device).to_string()),
        plain("Responsible person", opt(&i.owner).to_string()),
        plain("Contact", opt(&id.contact).to_string()),
        plain("Asset (ledger)", opt(&id.asset).to_string()),
        plain("MAC", opt(&id.mac).to_string()),
        plain("Kind", opt(&id.kind).to_string()),
        plain("Location", opt(&id.location).to_string()),
        plain("Department", opt(&id.department).to_string()),
        plain("Assignee", opt(&i.assignee).to_string()),
        plain("Opened (first hit)", rfc3339(i.opened_ms)),
        plain("Last hit", rfc3339(i.last_hit_ms)),
        plain("Hits", i.hit_count.to_string()),
        plain("Distinct names", i.name_count.to_string()),
        deadline("Identify deadline", i.identify_deadline(d.generated_ms)),
        deadline("Report deadline", i.report_deadline(d.generated_ms)),
    ]
}

fn source(f: &FeedMeta) -> String {
    match (&f.url, &f.path) {
        (Some(u), _) => u.clone(),
        (None, Some(p)) => p.display().to_string(),
        (None, None) => "—".to_string(),
    }
}

/// The printable HTML report.
pub fn html(d: &ReportData) -> String {
    let i = &d.incident;
    let mut h = String::with_capacity(4096 + d.hits.len() * 200);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n\
    <title>Incident #{id} — mining report</title>\n<style>\n\
    @page {{ size: A4; margin: 18mm 15mm; }}\n\
    body {{ font-family: \"Noto Sans CJK SC\", \"Source Han Sans SC\", \"PingFang SC\", \"Microsoft YaHei\", \"SimSun\", \"WenQuanYi Micro Hei\", \"DejaVu Sans\", sans-serif; font-size: 10pt; color: #111; }}\n\
    h1 {{ font-size: 16pt; margin: 0 0 4mm; }} h2 {{ font-size: 12pt; margin: 6mm 0 2mm; border-bottom: 1px solid #999; }}\n\
    table {{ border-collapse: collapse; width: 100%; }} th, td {{ border: 1px solid #bbb; padding: 1mm 2mm; text-align: left; vertical-align: top; }}\n\
    th {{ background: #eee; }} table.facts th {{ width: 35%; }} tr {{ page-break-inside: avoid; }} thead {{ display: table-header-group; }}\n\
    .missed {{ color: #a00; font-weight: bold; }} .small {{ font-size: 8pt; color: #555; }}\n\
    </style>\n</head>\n<body>\n<h1>Crypto-mining incident report #{id}</h1>\n\
    <p class=\"small\">Generated {gen} by poolguard from the stored DNS evidence.</p>\n\
    <h2>Summary</h2>\n<table class=\"facts\">\n",
        id = i.id,
        gen = escape(&rfc3339(d.generated_ms)),
    );
    for (k, v, missed) in facts(d) {
        let class = if missed { " class=\"missed\"" } else { "" };
        let _ = writeln!(
            h,
            "<tr><th>{}</th><td{class}>{}</td></tr>",
            escape(k),
            escape(&v)
        );
    }
    h.push_str("</table>\n<h2>Feeds and sources</h2>\n<table>\n<thead><tr><th>Feed</th><th>Category</th><th>Severity</th><th>Source</th></tr></thead>\n<tbody>\n");
    for f in &d.feeds {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&f.name),
            escape(&f.category),
            escape(&f.severity),
            escape(&source(f))
        );
    }
    let _ = write!(
        h,
        "</tbody></table>\n<h2>Timeline of hits ({})</h2>\n<table>\n<thead><tr><th>Time (UTC)</th><th>Client</th><th>Name</th><th>Type</th><th>Feed</th><th>Rule</th><th>Action</th></tr></thead>\n<tbody>\n",
        d.hits.len()
    );
    for hit in &d.hits {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&rfc3339(hit.time_ms)),
            escape(&hit.client),
            escape(&hit.name),
            escape(&hit.qtype),
            escape(opt(&hit.feed)),
            escape(opt(&hit.rule)),
            escape(&format!("{} ({})", hit.action, hit.rcode)),
        );
    }
    h.push_str("</tbody></table>\n");
    if d.truncated {
        let _ = writeln!(
            h,
            "<p class=\"missed\">Only the first {MAX_REPORT_HITS} hits are listed; the API has them all.</p>"
        );
    }
    h.push_str("<h2>Actions taken</h2>\n");
    if d.actions.is_empty() {
        h.push_str("<p>None recorded.</p>\n");
    } else {
        h.push_str("<table>\n<thead><tr><th>Time (UTC)</th><th>By</th><th>Action</th><th>Detail</th></tr></thead>\n<tbody>\n");
        for a in &d.actions {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&rfc3339(a.time_ms)),
                escape(&a.actor),
                escape(&a.action),
                escape(&a.detail)
            );
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("<h2>Notes</h2>\n");
    if d.notes.is_empty() {
        h.push_str("<p>None.</p>\n");
    } else {
        h.push_str("<table>\n<thead><tr><th>Time (UTC)</th><th>Author</th><th>Note</th></tr></thead>\n<tbody>\n");
        for n in &d.notes {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&n.time),
                escape(&n.author),
                escape(&n.text)
            );
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// The Markdown report (same content as the HTML).
pub fn markdown(d: &ReportData) -> String {
    let i = &d.incident;
    let mut m = String::with_capacity(2048 + d.hits.len() * 120);
    let _ = writeln!(m, "# Crypto-mining incident report #{}\n", i.id);
    let _ = writeln!(
        m,
        "Generated {} by poolguard from the stored DNS evidence.\n\n## Summary\n\n| | |\n|---|---|",
        rfc3339(d.generated_ms)
    );
    for (k, v, _) in facts(d) {
        let _ = writeln!(m, "| {} | {} |", md(k), md(&v));
    }
    m.push_str(
        "\n## Feeds and sources\n\n| Feed | Category | Severity | Source |\n|---|---|---|---|\n",
    );
    for f in &d.feeds {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} |",
            md(&f.name),
            md(&f.category),
            md(&f.severity),
            md(&source(f))
        );
    }
    let _ = writeln!(
        m,
        "\n## Timeline of hits ({})\n\n| Time (UTC) | Client | Name | Type | Feed | Rule | Action |\n|---|---|---|---|---|---|---|",
        d.hits.len()
    );
    for hit in &d.hits {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} ({}) |",
            rfc3339(hit.time_ms),
            md(&hit.client),
            md(&hit.name),
            md(&hit.qtype),
            md(opt(&hit.feed)),
            md(opt(&hit.rule)),
            md(&hit.action),
            md(&hit.rcode)
        );
    }
    if d.truncated {
        let _ = writeln!(
            m,
            "\nOnly the first {MAX_REPORT_HITS} hits are listed; the API has them all."
        );
    }
    m.push_str("\n## Actions taken\n\n");
    if d.actions.is_empty() {
        m.push_str("None recorded.\n");
    } else {
        m.push_str("| Time (UTC) | By | Action | Detail |\n|---|---|---|---|\n");
        for a in &d.actions {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} |",
                rfc3339(a.time_ms),
                md(&a.actor),
                md(&a.action),
                md(&a.detail)
            );
        }
    }
    m.push_str("\n## Notes\n\n");
    if d.notes.is_empty() {
        m.push_str("None.\n");
    } else {
        for n in &d.notes {
            let _ = writeln!(m, "- {} — {}: {}", md(&n.time), md(&n.author), md(&n.text));
        }
    }
    m
}

/// The summary as a printable HTML bulletin.
pub fn summary_html(s: &Summary) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n<title>Mining bulletin {since} – {until}</title>\n<style>\n\
@page {{ size: A4; margin: 18mm 15mm; }}\n\
body {{ font-family: \"Noto Sans CJK SC\", \"Source Han Sans SC\", \"PingFang SC\", \"Microsoft YaHei\", \"SimSun\", \"WenQuanYi Micro Hei\", sans-serif; font-size: 10pt; }}\n\
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #bbb; padding: 1mm 2mm; text-align: left; }} th {{ background: #eee; }}\n\
</style>\n</head>\n<body>\n<h1>Crypto-mining bulletin</h1>\n<p>{since} – {until}</p>\n\
<table><tr><th>Hits</th><td>{hits}</td></tr><tr><th>Incidents opened</th><td>{o}</td></tr><tr><th>Incidents closed</th><td>{c}</td></tr><tr><th>Incidents overdue</th><td>{ov}</td></tr></table>\n\
<h2>By department</h2>\n<table><tr><th>Department</th><th>Opened</th><th>Closed</th><th>Overdue</th></tr>\n",
        since = escape(&s.since),
        until = escape(&s.until),
        hits = s.hits,
        o = s.incidents_opened,
        c = s.incidents_closed,
        ov = s.incidents_overdue,
    );
    for d in &s.by_department {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&d.department),
            d.opened,
            d.closed,
            d.overdue
        );
    }
    h.push_str("</table>\n<h2>Top offenders</h2>\n<table><tr><th>Client</th><th>Asset</th><th>Department</th><th>Hits</th></tr>\n");
    for o in &s.top_offenders {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&o.client),
            escape(opt(&o.asset)),
            escape(opt(&o.department)),
            o.hits
        );
    }
    h.push_str("</table>\n<h2>New names seen</h2>\n<table><tr><th>Name</th><th>First seen</th><th>Hits</th></tr>\n");
    for n in &s.new_names {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&n.name),
            escape(&n.first_seen),
            n.hits
        );
    }
    h.push_str("</table>\n</body>\n</html>\n");
    h
}

/// The summary as CSV: one `section,key,value…` row per figure, for spreadsheets.
pub fn summary_csv(s: &Summary) -> Result<Vec<u8>, csv::Error> {
    let cell = |v: &str| poolguard_model::neutralise(v).into_owned();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "section",
        "key",
        "opened_or_hits",
        "closed",
        "overdue",
        "extra",
    ])?;
    w.write_record(["period", &s.since, "", "", "", &s.until])?;
    w.write_record(["total", "hits", &s.hits.to_string(), "", "", ""])?;
    w.write_record([
        "total",
        "incidents",
        &s.incidents_opened.to_string(),
        &s.incidents_closed.to_string(),
        &s.incidents_overdue.to_string(),
        "",
    ])?;
    for d in &s.by_department {
        w.write_record([
            "department",
            &cell(&d.department),
            &d.opened.to_string(),
            &d.closed.to_string(),
            &d.overdue.to_string(),
            "",
        ])?;
    }
    for o in &s.top_offenders {
        w.write_record([
            "offender",
            &cell(&o.client),
            &o.hits.to_string(),
            "",
            "",
            &cell(o.asset.as_deref().unwrap_or("")),
        ])?;
    }
    for n in &s.new_names {
        w.write_record([
            "new_name",
            &cell(&n.name),
            &n.hits.to_string(),
            "",
            "",
            &n.first_seen,
        ])?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
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
}
