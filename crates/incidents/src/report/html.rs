//! The report as printable HTML: A4 pages, table headings repeated on every page, rows and
//! short sections never split across pages, no script, everything inline.

use std::fmt::Write as _;

use super::i18n::{Messages, messages};
use super::{
    ReportData, ReportSettings, Table, View, audit_table, escape, facts, feeds_table,
    local_rfc3339, local_time, names_table, narrative_sections, timeline_table,
};

/// Print rules: A4 with margins a binder leaves room for; a table's `thead` repeats on each
/// page; a row, a narrative block or the signature block is never cut by a page break.
const STYLE: &str = "@page { size: A4; margin: 18mm 15mm 20mm 20mm; }\n\
body { font-family: \"Noto Sans CJK SC\", \"Source Han Sans SC\", \"PingFang SC\", \"Microsoft YaHei\", \"SimSun\", \"WenQuanYi Micro Hei\", \"DejaVu Sans\", sans-serif; font-size: 10pt; color: #111; }\n\
header { display: flex; align-items: center; gap: 5mm; border-bottom: 2px solid #333; padding-bottom: 3mm; margin-bottom: 4mm; }\n\
header img { max-height: 18mm; max-width: 40mm; } header .org { font-size: 13pt; font-weight: bold; } header .unit { font-size: 11pt; }\n\
h1 { font-size: 16pt; margin: 0 0 4mm; } h2 { font-size: 12pt; margin: 6mm 0 2mm; border-bottom: 1px solid #999; break-after: avoid; page-break-after: avoid; }\n\
h3 { font-size: 10.5pt; margin: 3mm 0 1mm; break-after: avoid; }\n\
table { border-collapse: collapse; width: 100%; } th, td { border: 1px solid #bbb; padding: 1mm 2mm; text-align: left; vertical-align: top; overflow-wrap: break-word; }\n\
th { background: #eee; } table.facts th { width: 35%; }\n\
tr, .block, .signatures, .evidence { break-inside: avoid; page-break-inside: avoid; } thead { display: table-header-group; }\n\
.missed { color: #a00; font-weight: bold; } .small { font-size: 8pt; color: #555; } .empty { color: #777; font-style: italic; }\n\
.hash { font-family: \"DejaVu Sans Mono\", monospace; font-size: 9pt; overflow-wrap: anywhere; }\n\
.signatures td { height: 14mm; } .appendix { break-before: page; page-break-before: always; }\n";

fn table(h: &mut String, t: &Table) {
    h.push_str("<table>\n<thead><tr>");
    for c in &t.head {
        let _ = write!(h, "<th>{}</th>", escape(c));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for r in &t.rows {
        h.push_str("<tr>");
        for c in r {
            let _ = write!(h, "<td>{}</td>", escape(c));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n");
}

/// The printable HTML report.
pub fn html(d: &ReportData, s: &ReportSettings, v: View) -> String {
    let m = messages(v.language);
    let tz = s.tz;
    let i = &d.incident;
    let mut h = String::with_capacity(8192 + d.hits.len() * 200);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title} #{id}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n",
        lang = v.language.tag(),
        title = escape(m.title),
        id = i.id,
    );
    if s.logo.is_some() || !s.institution.is_empty() || !s.unit.is_empty() {
        h.push_str("<header>");
        if let Some(logo) = &s.logo {
            let _ = write!(h, "<img src=\"{}\" alt=\"\">", escape(logo));
        }
        let _ = writeln!(
            h,
            "<div><div class=\"org\">{}</div><div class=\"unit\">{}</div></div></header>",
            escape(&s.institution),
            escape(&s.unit)
        );
    }
    let _ = write!(
        h,
        "<h1>{} #{}</h1>\n<p class=\"small\">{} — {}</p>\n<h2>{}</h2>\n<table class=\"facts\">\n",
        escape(m.title),
        i.id,
        escape(m.generated),
        escape(&local_time(d.generated_ms, tz)),
        escape(m.summary),
    );
    for (k, val, missed) in facts(d, m, tz) {
        let class = if missed { " class=\"missed\"" } else { "" };
        let _ = writeln!(
            h,
            "<tr><th>{}</th><td{class}>{}</td></tr>",
            escape(k),
            escape(&val)
        );
    }
    h.push_str("</table>\n");
    narrative(&mut h, d, m);
    if let (Some(r), Some(closed)) = (&i.resolution, i.closed_ms)
        && i.status == poolguard_model::Status::Closed
    {
        let _ = write!(
            h,
            "<section class=\"block\"><h2>{}</h2>\n<table class=\"facts\">\n<tr><th>{}</th><td>{}</td></tr>\n<tr><th>{}</th><td>{}</td></tr>\n</table></section>\n",
            escape(m.resolution),
            escape(m.resolution),
            escape(r),
            escape(m.closed_at),
            escape(&local_time(closed, tz)),
        );
    }
    let _ = writeln!(h, "<h2>{}</h2>", escape(m.hits_per_name));
    table(&mut h, &names_table(d, m, tz));
    let _ = writeln!(h, "<h2>{}</h2>", escape(m.feeds));
    table(&mut h, &feeds_table(d, m));
    let _ = writeln!(h, "<h2>{}</h2>", escape(m.audit));
    if d.actions.is_empty() {
        let _ = writeln!(h, "<p>{}</p>", escape(m.none_recorded));
    } else {
        table(&mut h, &audit_table(d, m, tz));
    }
    let _ = writeln!(h, "<h2>{}</h2>", escape(m.notes));
    if d.notes.is_empty() {
        let _ = writeln!(h, "<p>{}</p>", escape(m.none_recorded));
    } else {
        let mut t = Table::new(&[m.time, m.author, m.note]);
        for n in &d.notes {
            t.rows.push(vec![
                local_rfc3339(&n.time, tz),
                n.author.clone(),
                n.text.clone(),
            ]);
        }
        table(&mut h, &t);
    }
    let _ = write!(
        h,
        "<section class=\"evidence\"><h2>{}</h2>\n<p>{}: <span class=\"hash\">{}</span></p>\n<p class=\"small\">{}</p></section>\n",
        escape(m.evidence),
        escape(m.evidence_hash),
        escape(&d.evidence_sha256),
        escape(m.evidence_explain),
    );
    signatures(&mut h, d, m);
    timeline(&mut h, d, m, v.all_rows, tz);
    h.push_str("</body>\n</html>\n");
    h
}

fn narrative(h: &mut String, d: &ReportData, m: &Messages) {
    let _ = writeln!(h, "<h2>{}</h2>", escape(m.investigation));
    for (title, text) in narrative_sections(&d.narrative, m) {
        let body = match text {
            Some(t) => format!("<p>{}</p>", escape(&t).replace('\n', "<br>")),
            None => format!("<p class=\"empty\">{}</p>", escape(m.not_recorded)),
        };
        let _ = writeln!(
            h,
            "<section class=\"block\"><h3>{}</h3>{body}</section>",
            escape(title)
        );
    }
}

fn signatures(h: &mut String, d: &ReportData, m: &Messages) {
    let i = &d.incident;
    let _ = write!(
        h,
        "<section class=\"signatures\"><h2>{}</h2>\n<table>\n",
        escape(m.signatures)
    );
    for (who, name) in [(m.investigator, &i.assignee), (m.responsible, &i.owner)] {
        let _ = writeln!(
            h,
            "<tr><th>{}{}</th><td>{}:</td><td>{}:</td></tr>",
            escape(who),
            name.as_deref()
                .map(|n| format!(" ({})", escape(n)))
                .unwrap_or_default(),
            escape(m.signature),
            escape(m.date),
        );
    }
    h.push_str("</table></section>\n");
}

fn timeline(h: &mut String, d: &ReportData, m: &Messages, all_rows: bool, tz: chrono_tz::Tz) {
    let _ = write!(
        h,
        "<section class=\"appendix\"><h2>{} ({})</h2>\n<p class=\"small\">{}</p>\n",
        escape(m.appendix),
        d.hits.len(),
        escape(if all_rows { m.all_rows } else { m.collapsed }),
    );
    table(h, &timeline_table(d, m, tz, all_rows));
    if d.truncated {
        let _ = writeln!(h, "<p class=\"missed\">{}</p>", escape(m.truncated));
    }
    h.push_str("</section>\n");
}
