//! The periodic bulletin to other units (`[alerts.bulletin]`): once a period has ended, its
//! summary (the figures of `GET /api/v1/reports/summary`) goes to the configured mail and
//! robot channels, in `[reports] language`, with the same retries and delivery log as alerts
//! (event `bulletin`).
//!
//! Periods start on Monday 00:00 in `[reports] timezone` for whole weeks (`every = "7d"`), at
//! local midnight for whole days; in general at local 1970-01-05 00:00 plus whole periods.
//! The task looks every `[alerts] check_every` (and at start, so a bulletin due while
//! poolguard was down goes out when it starts) and claims the last ended period in the store
//! before sending it (`poolguard_store::bulletin`): once per period, across restarts, and
//! once per group under the postgres backend.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;
use poolguard_config::reports::Language;
use poolguard_store::bulletin::BulletinStore;
use poolguard_store::{AlertStore, IncidentStore, StoreError, Summary};

use super::channel::{Channel, channels};
use super::message::{Message, escape};
use super::{Sent, deliver};
use crate::Accountability;
use crate::config::AlertsConfig;
use crate::report::local_time;

const DAY_MS: i64 = 86_400_000;

/// The last period that has ended at `now_ms`: `[since, until)` in ms.
pub fn last_period(now_ms: i64, every_ms: i64, tz: Tz) -> (i64, i64) {
    let every_ms = every_ms.max(1);
    let offset_ms = chrono::Utc
        .timestamp_millis_opt(now_ms)
        .single()
        .map_or(0, |t| {
            i64::from(
                tz.offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc(),
            ) * 1000
        });
    // 1970-01-05 was a Monday: weekly periods start on Mondays, daily ones at midnight.
    let anchor = 4 * DAY_MS - offset_ms;
    let current = anchor + (now_ms - anchor).div_euclid(every_ms) * every_ms;
    (current - every_ms, current)
}

/// The bulletin as people read it: a title naming the period, and Markdown figures.
pub fn render(s: &Summary, since_ms: i64, until_ms: i64, lang: Language, tz: Tz) -> Message {
    let zh = lang == Language::ZhCn;
    let date = |ms: i64| local_time(ms, tz);
    let (from, to) = (date(since_ms), date(until_ms));
    let title = if zh {
        format!("挖矿治理通报：{from} 至 {to}")
    } else {
        format!("Crypto-mining bulletin: {from} to {to}")
    };
    let mut t = format!("### {title}\n\n");
    let rows: [(&str, &str, i64); 4] = [
        ("Hits", "命中次数", s.hits),
        ("Incidents opened", "新立事件", s.incidents_opened),
        ("Incidents closed", "已结事件", s.incidents_closed),
        ("Incidents overdue", "逾期事件", s.incidents_overdue),
    ];
    for (en, cn, n) in rows {
        let _ = writeln!(t, "- **{}**: {n}", if zh { cn } else { en });
    }
    let heading = |t: &mut String, en: &str, cn: &str| {
        let _ = write!(t, "\n#### {}\n\n", if zh { cn } else { en });
    };
    if !s.by_department.is_empty() {
        heading(&mut t, "By department", "按部门");
        for d in &s.by_department {
            let _ = if zh {
                writeln!(
                    t,
                    "- {}：新立 {}，已结 {}，逾期 {}",
                    escape(&d.department),
                    d.opened,
                    d.closed,
                    d.overdue
                )
            } else {
                writeln!(
                    t,
                    "- {}: {} opened, {} closed, {} overdue",
                    escape(&d.department),
                    d.opened,
                    d.closed,
                    d.overdue
                )
            };
        }
    }
    let added = [
        (
            ("Pool names added to the feeds", "新增封堵的矿池域名"),
            s.added.names_total,
            &s.added.names,
        ),
        (
            ("Pool addresses added", "新增矿池地址"),
            s.added.addresses_total,
            &s.added.addresses,
        ),
    ];
    for ((en, cn), total, list) in added {
        if total == 0 {
            continue;
        }
        heading(
            &mut t,
            &format!("{en} ({total})"),
            &format!("{cn}（{total}）"),
        );
        for l in list {
            let _ = writeln!(t, "- {} ({})", escape(&l.entry), escape(&l.source));
        }
    }
    if !s.new_names.is_empty() {
        heading(&mut t, "New pool names seen", "新出现的矿池域名");
        for n in &s.new_names {
            let _ = writeln!(t, "- {} ({})", escape(&n.name), n.hits);
        }
    }
    if !s.top_offenders.is_empty() {
        heading(&mut t, "Top clients", "命中最多的终端");
        for o in &s.top_offenders {
            let who: Vec<String> = [o.asset.as_deref(), o.department.as_deref()]
                .into_iter()
                .flatten()
                .map(escape)
                .collect();
            let who = if who.is_empty() {
                String::new()
            } else {
                format!(" — {}", who.join(" · "))
            };
            let _ = writeln!(t, "- {} ({}){who}", escape(&o.client), o.hits);
            for d in &o.devices {
                let device = crate::report::bulletin::device_text(d);
                let _ = writeln!(t, "  - {}", escape(&device));
            }
        }
    }
    Message { title, text: t }
}

/// What the bulletin task reads and writes.
pub struct BulletinStores {
    /// The summary's figures (the group's, under the postgres backend).
    pub summaries: Arc<dyn IncidentStore>,
    /// Where each period is claimed.
    pub claims: Arc<dyn BulletinStore>,
    /// The delivery log.
    pub deliveries: Arc<dyn AlertStore>,
    /// What was added to the feeds and the pool address set (plugged in by the app).
    pub listings: poolguard_store::summary::SharedListings,
}

/// Sends the bulletin of the last ended period unless it was sent already; whether it sent.
pub async fn send_due(
    cfg: &Arc<AlertsConfig>,
    stores: &BulletinStores,
    acc: &Arc<Accountability>,
    client: &reqwest::Client,
    to: &[Channel],
) -> Result<bool, StoreError> {
    let now = acc.clock.now_ms();
    let tz = acc.reports.tz;
    let (since, until) = last_period(now, cfg.bulletin.every.ms(), tz);
    if !stores.claims.claim_bulletin(since, until, now).await? {
        metrics::counter!("poolguard_bulletins_total", "result" => "already_sent").increment(1);
        return Ok(false);
    }
    let mut summary = stores.summaries.summary(since, until, now).await?;
    summary.added = poolguard_store::summary::added(&stores.listings, since, until);
    let m = render(&summary, since, until, acc.reports.language, tz);
    for ch in to {
        let payload = ch.bulletin_payload(&m, &cfg.bulletin.to, acc.reports.language);
        tokio::spawn(deliver(
            client.clone(),
            cfg.clone(),
            ch.clone(),
            Sent {
                store: stores.deliveries.clone(),
                acc: acc.clone(),
                event: "bulletin",
                incident_id: None,
            },
            payload,
        ));
    }
    metrics::counter!("poolguard_bulletins_total", "result" => "sent").increment(1);
    tracing::info!(since, until, channels = to.len(), "bulletin sent");
    Ok(true)
}

/// Sends each period's bulletin once it has ended, looking every `[alerts] check_every`,
/// until `stop`; `None` when `[alerts.bulletin]` is off.
pub fn spawn(
    cfg: AlertsConfig,
    stores: BulletinStores,
    acc: Arc<Accountability>,
    stop: tokio_util::sync::CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if !cfg.bulletin.enabled {
        return None;
    }
    let client = reqwest::Client::builder()
        .timeout(cfg.timeout.0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    let to: Vec<Channel> = channels(&cfg)
        .into_iter()
        .filter(|c| cfg.bulletin.channels.contains(&c.target))
        .collect();
    let every = cfg.check_every.0.max(Duration::from_secs(1));
    let cfg = Arc::new(cfg);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(e) = send_due(&cfg, &stores, &acc, &client, &to).await {
                        tracing::warn!(error = %e, "bulletin check failed; will retry");
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekly_periods_start_on_monday_midnight_in_the_zone() {
        // 2026-12-09 (a Wednesday) 12:00 UTC = 20:00 in Shanghai.
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 12, 9, 12, 0, 0)
            .single()
            .expect("time")
            .timestamp_millis();
        let (since, until) = last_period(now, 7 * DAY_MS, chrono_tz::Asia::Shanghai);
        assert_eq!(
            local_time(since, chrono_tz::Asia::Shanghai),
            "2026-11-30 00:00:00 CST (Asia/Shanghai)"
        );
        assert_eq!(
            local_time(until, chrono_tz::Asia::Shanghai),
            "2026-12-07 00:00:00 CST (Asia/Shanghai)"
        );
        let (since, until) = last_period(now, DAY_MS, Tz::UTC);
        assert_eq!(
            (local_time(since, Tz::UTC), until - since),
            ("2026-12-08 00:00:00 UTC".to_string(), DAY_MS)
        );
    }

    #[test]
    fn renders_in_the_language() {
        let s = Summary {
            since: String::new(),
            until: String::new(),
            hits: 42,
            incidents_opened: 3,
            incidents_closed: 2,
            incidents_overdue: 1,
            by_department: vec![poolguard_store::summary::DepartmentFigures {
                department: "物理系".into(),
                opened: 3,
                closed: 2,
                overdue: 1,
            }],
            top_offenders: vec![poolguard_store::summary::Offender {
                client: "10.20.3.7".into(),
                asset: None,
                department: Some("物理系".into()),
                hits: 12,
                devices: vec![poolguard_store::summary::OffenderDevice {
                    mac: Some("00:1a:2b:3c:4d:5e".into()),
                    account: Some("lina".into()),
                    hostname: None,
                    owner: Some("Li Na".into()),
                    source: "radius".into(),
                    hits: 12,
                }],
            }],
            new_names: vec![poolguard_store::summary::NewName {
                name: "xmr.pool.example".into(),
                first_seen: String::new(),
                hits: 40,
            }],
            added: poolguard_store::summary::Added {
                names: vec![poolguard_store::summary::Listed {
                    entry: "xmr.newpool.example".into(),
                    source: "mining".into(),
                    since: String::new(),
                }],
                names_total: 1,
                ..Default::default()
            },
        };
        let zh = render(&s, 0, 7 * DAY_MS, Language::ZhCn, Tz::UTC);
        assert!(zh.title.starts_with("挖矿治理通报："), "{}", zh.title);
        assert!(
            zh.text.contains("**命中次数**: 42")
                && zh.text.contains("物理系：新立 3，已结 2，逾期 1")
                && zh.text.contains("新增封堵的矿池域名（1）")
                && zh.text.contains("- xmr.newpool.example (mining)")
                && zh.text.contains(
                    "- 10.20.3.7 (12) — 物理系\n  - 00:1a:2b:3c:4d:5e · lina · Li Na (radius, 12)"
                ),
            "{}",
            zh.text
        );
        let en = render(&s, 0, 7 * DAY_MS, Language::En, Tz::UTC);
        assert!(
            en.text.contains("**Incidents overdue**: 1")
                && en.text.contains("xmr.pool.example (40)"),
            "{}",
            en.text
        );
    }
}
