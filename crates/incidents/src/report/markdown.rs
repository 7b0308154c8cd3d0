//! The report as Markdown: the same sections as the HTML, for mail bodies and wikis.

use std::fmt::Write as _;

use super::i18n::messages;
use super::{
    ReportData, ReportSettings, Table, View, audit_table, facts, feeds_table, local_rfc3339,
    local_time, md, names_table, narrative_sections, timeline_table,
};

fn table(m: &mut String, t: &Table) {
    m.push('|');
    for c in &t.head {
        let _ = write!(m, " {} |", md(c));
    }
    m.push_str("\n|");
    m.push_str(&"---|".repeat(t.head.len()));
    m.push('\n');
    for r in &t.rows {
        m.push('|');
        for c in r {
            let _ = write!(m, " {} |", md(c));
        }
        m.push('\n');
    }
}

/// The Markdown report (same content as the HTML, without the logo).
pub fn markdown(d: &ReportData, s: &ReportSettings, v: View) -> String {
    let t = messages(v.language);
    let tz = s.tz;
    let i = &d.incident;
    let mut m = String::with_capacity(4096 + d.hits.len() * 120);
    for line in [&s.institution, &s.unit] {
        if !line.is_empty() {
            let _ = writeln!(m, "**{}**  ", md(line));
        }
    }
    if !s.institution.is_empty() || !s.unit.is_empty() {
        m.push('\n');
    }
    let _ = writeln!(m, "# {} #{}\n", md(t.title), i.id);
    let _ = writeln!(
        m,
        "{} — {}\n\n## {}\n\n| | |\n|---|---|",
        md(t.generated),
        local_time(d.generated_ms, tz),
        md(t.summary)
    );
    for (k, val, _) in facts(d, t, tz) {
        let _ = writeln!(m, "| {} | {} |", md(k), md(&val));
    }
    let _ = writeln!(m, "\n## {}\n", md(t.investigation));
    for (title, text) in narrative_sections(&d.narrative, t) {
        let body = text
            .map(|x| md(&x))
            .unwrap_or_else(|| format!("*{}*", md(t.not_recorded)));
        let _ = writeln!(m, "### {}\n\n{body}\n", md(title));
    }
    if let (Some(r), Some(closed)) = (&i.resolution, i.closed_ms)
        && i.status == poolguard_model::Status::Closed
    {
        let _ = writeln!(
            m,
            "## {}\n\n| | |\n|---|---|\n| {} | {} |\n| {} | {} |\n",
            md(t.resolution),
            md(t.resolution),
            md(r),
            md(t.closed_at),
            local_time(closed, tz)
        );
    }
    let _ = writeln!(m, "## {}\n", md(t.hits_per_name));
    table(&mut m, &names_table(d, t, tz));
    let _ = writeln!(m, "\n## {}\n", md(t.feeds));
    table(&mut m, &feeds_table(d, t));
    let _ = writeln!(m, "\n## {}\n", md(t.audit));
    if d.actions.is_empty() {
        let _ = writeln!(m, "{}", md(t.none_recorded));
    } else {
        table(&mut m, &audit_table(d, t, tz));
    }
    let _ = writeln!(m, "\n## {}\n", md(t.notes));
    if d.notes.is_empty() {
        let _ = writeln!(m, "{}", md(t.none_recorded));
    } else {
        for n in &d.notes {
            let _ = writeln!(
                m,
                "- {} — {}: {}",
                md(&local_rfc3339(&n.time, tz)),
                md(&n.author),
                md(&n.text)
            );
        }
    }
    let _ = writeln!(
        m,
        "\n## {}\n\n{}: `{}`\n\n{}\n",
        md(t.evidence),
        md(t.evidence_hash),
        d.evidence_sha256,
        md(t.evidence_explain)
    );
    let _ = writeln!(m, "## {}\n", md(t.signatures));
    for (who, name) in [(t.investigator, &i.assignee), (t.responsible, &i.owner)] {
        let name = name
            .as_deref()
            .map(|n| format!(" ({})", md(n)))
            .unwrap_or_default();
        let _ = writeln!(
            m,
            "{}{name}: {} ____________________ {} ____________\n",
            md(who),
            md(t.signature),
            md(t.date)
        );
    }
    let _ = writeln!(
        m,
        "## {} ({})\n\n{}\n",
        md(t.appendix),
        d.hits.len(),
        md(if v.all_rows { t.all_rows } else { t.collapsed })
    );
    table(&mut m, &timeline_table(d, t, tz, v.all_rows));
    if d.truncated {
        let _ = writeln!(m, "\n{}", md(t.truncated));
    }
    m
}
