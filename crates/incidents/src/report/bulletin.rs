//! The periodic bulletin (`GET /api/v1/reports/summary`) as printable HTML and as CSV.

use std::fmt::Write as _;

use poolguard_config::reports::Language;

use super::{Summary, escape, opt};

/// A label in the bulletin's language.
fn tr(lang: Language, en: &'static str, zh: &'static str) -> &'static str {
    match lang {
        Language::En => en,
        Language::ZhCn => zh,
    }
}

/// The summary as a printable HTML bulletin, in `lang`.
pub fn summary_html(s: &Summary, lang: Language) -> String {
    let t = |en, zh| tr(lang, en, zh);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{html_lang}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title} {since} – {until}</title>\n<style>\n\
@page {{ size: A4; margin: 18mm 15mm; }}\n\
body {{ font-family: \"Noto Sans CJK SC\", \"Source Han Sans SC\", \"PingFang SC\", \"Microsoft YaHei\", \"SimSun\", \"WenQuanYi Micro Hei\", sans-serif; font-size: 10pt; }}\n\
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #bbb; padding: 1mm 2mm; text-align: left; }} th {{ background: #eee; }}\n\
</style>\n</head>\n<body>\n<h1>{title}</h1>\n<p>{since} – {until}</p>\n\
<table><tr><th>{l_hits}</th><td>{hits}</td></tr><tr><th>{l_opened}</th><td>{o}</td></tr><tr><th>{l_closed}</th><td>{c}</td></tr><tr><th>{l_overdue}</th><td>{ov}</td></tr></table>\n\
<h2>{l_by_dept}</h2>\n<table><tr><th>{l_dept}</th><th>{l_o}</th><th>{l_c}</th><th>{l_ov}</th></tr>\n",
        html_lang = tr(lang, "en", "zh-CN"),
        title = t("Crypto-mining bulletin", "挖矿治理通报"),
        l_hits = t("Hits", "命中次数"),
        l_opened = t("Incidents opened", "新立事件"),
        l_closed = t("Incidents closed", "已结事件"),
        l_overdue = t("Incidents overdue", "逾期事件"),
        l_by_dept = t("By department", "按部门"),
        l_dept = t("Department", "部门"),
        l_o = t("Opened", "新立"),
        l_c = t("Closed", "已结"),
        l_ov = t("Overdue", "逾期"),
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
    let _ = write!(
        h,
        "</table>\n<h2>{}</h2>\n<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>\n",
        t("Top offenders", "命中最多的终端"),
        t("Client", "终端"),
        t(
            "Device (MAC · account · host name · owner, identified by)",
            "设备（MAC · 账号 · 主机名 · 责任人，识别来源）"
        ),
        t("Asset", "资产"),
        t("Department", "部门"),
        t("Hits", "命中次数")
    );
    for o in &s.top_offenders {
        let devices: Vec<String> = o.devices.iter().map(|d| escape(&device_text(d))).collect();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&o.client),
            devices.join("<br>"),
            escape(opt(&o.asset)),
            escape(opt(&o.department)),
            o.hits
        );
    }
    let added = [
        (
            t("Pool names added to the feeds", "新增封堵的矿池域名"),
            s.added.names_total,
            [
                t("Name", "域名"),
                t("Feed", "列表"),
                t("Listed since", "列入时间"),
            ],
            &s.added.names,
        ),
        (
            t("Pool addresses added", "新增矿池地址"),
            s.added.addresses_total,
            [
                t("Address", "地址"),
                t("Name", "域名"),
                t("First seen", "首次出现"),
            ],
            &s.added.addresses,
        ),
    ];
    for (heading, total, [c1, c2, c3], list) in added {
        let _ = write!(
            h,
            "</table>\n<h2>{heading} ({total})</h2>\n<table><tr><th>{c1}</th><th>{c2}</th><th>{c3}</th></tr>\n"
        );
        for l in list {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&l.entry),
                escape(&l.source),
                escape(&l.since)
            );
        }
    }
    let _ = write!(
        h,
        "</table>\n<h2>{}</h2>\n<table><tr><th>{}</th><th>{}</th><th>{}</th></tr>\n",
        t("New names seen", "新出现的矿池域名"),
        t("Name", "域名"),
        t("First seen", "首次出现"),
        t("Hits", "命中次数")
    );
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

/// One device of an offender on one line: `MAC · account · host · owner (source, hits)`,
/// the parts it has.
pub(crate) fn device_text(d: &super::OffenderDevice) -> String {
    let parts: Vec<&str> = [&d.mac, &d.account, &d.hostname, &d.owner]
        .into_iter()
        .filter_map(|p| p.as_deref())
        .collect();
    format!("{} ({}, {})", parts.join(" · "), d.source, d.hits)
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
        for d in &o.devices {
            w.write_record([
                "offender_device",
                &cell(&o.client),
                &d.hits.to_string(),
                "",
                "",
                &cell(&device_text(d)),
            ])?;
        }
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
