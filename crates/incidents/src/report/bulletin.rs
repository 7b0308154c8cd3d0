//! The periodic bulletin (`GET /api/v1/reports/summary`) as printable HTML and as CSV.

use std::fmt::Write as _;

use super::{Summary, escape, opt};

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
    let _ = write!(
        h,
        "</table>\n<h2>Pool names added to the feeds ({})</h2>\n<table><tr><th>Name</th><th>Feed</th><th>Listed since</th></tr>\n",
        s.added.names_total
    );
    for l in &s.added.names {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&l.entry),
            escape(&l.source),
            escape(&l.since)
        );
    }
    let _ = write!(
        h,
        "</table>\n<h2>Pool addresses added ({})</h2>\n<table><tr><th>Address</th><th>Name</th><th>First seen</th></tr>\n",
        s.added.addresses_total
    );
    for l in &s.added.addresses {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&l.entry),
            escape(&l.source),
            escape(&l.since)
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
    for (section, list) in [
        ("added_name", &s.added.names),
        ("added_address", &s.added.addresses),
    ] {
        for l in list {
            w.write_record([section, &cell(&l.entry), "", "", "", &cell(&l.source)])?;
        }
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
