//! What the report derives from the raw evidence: the SHA-256 that pins it, the hits per
//! name, and the timeline collapsed to runs of identical rows.
//!
//! The hash is over a canonical text, so anyone can recompute it from an export of the rows
//! (docs/INCIDENTS.md, "Evidence hash"):
//!
//! * one line per hit: `hit`, id, time_ms, client, name, qtype, action, feed, rule, rcode;
//! * one line per audit row: `audit`, id, time_ms, actor, role, action, target, before_hash,
//!   after_hash, detail;
//! * fields separated by a tab, absent values empty, and in every field `\` written `\\`,
//!   tab `\t`, line feed `\n`, carriage return `\r`; each line ends with a line feed;
//! * the lines sorted by their UTF-8 bytes, concatenated, hashed with SHA-256, printed as
//!   64 lower-case hex digits.
//!
//! Sorting makes the hash independent of the order the store returns rows in; the ids make
//! two identical hits in the same millisecond two lines.

use sha2::{Digest, Sha256};

use poolguard_store::audit::AuditEntry;
use poolguard_store::incidents::IncidentHit;

fn field(out: &mut String, v: &str) {
    out.push('\t');
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// The canonical line of a hit (without the trailing line feed's sort concerns).
fn hit_line(h: &IncidentHit) -> String {
    let mut l = String::from("hit");
    for v in [
        &h.id.to_string(),
        &h.time_ms.to_string(),
        &h.client,
        &h.name,
        &h.qtype,
        &h.action,
        h.feed.as_deref().unwrap_or(""),
        h.rule.as_deref().unwrap_or(""),
        &h.rcode,
    ] {
        field(&mut l, v);
    }
    l.push('\n');
    l
}

fn audit_line(a: &AuditEntry) -> String {
    let mut l = String::from("audit");
    for v in [
        &a.id.to_string(),
        &a.time_ms.to_string(),
        &a.actor,
        &a.role,
        &a.action,
        &a.target,
        a.before_hash.as_deref().unwrap_or(""),
        a.after_hash.as_deref().unwrap_or(""),
        &a.detail,
    ] {
        field(&mut l, v);
    }
    l.push('\n');
    l
}

/// The SHA-256 (lower-case hex) of the evidence's canonical text (see the module comment).
pub fn evidence_sha256(hits: &[IncidentHit], audit: &[AuditEntry]) -> String {
    let mut lines: Vec<String> = hits.iter().map(hit_line).collect();
    lines.extend(audit.iter().map(audit_line));
    lines.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut h = Sha256::new();
    for l in &lines {
        h.update(l.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The hits of one name, feed and rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameSummary {
    pub name: String,
    pub feed: Option<String>,
    pub rule: Option<String>,
    pub count: usize,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// Hits per (name, feed, rule), most hits first (then by name).
pub fn per_name(hits: &[IncidentHit]) -> Vec<NameSummary> {
    let mut out: Vec<NameSummary> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for h in hits {
        let key = (h.name.as_str(), h.feed.as_deref(), h.rule.as_deref());
        match index.get(&key) {
            Some(&i) => {
                let s: &mut NameSummary = &mut out[i];
                s.count += 1;
                s.first_ms = s.first_ms.min(h.time_ms);
                s.last_ms = s.last_ms.max(h.time_ms);
            }
            None => {
                index.insert(key, out.len());
                out.push(NameSummary {
                    name: h.name.clone(),
                    feed: h.feed.clone(),
                    rule: h.rule.clone(),
                    count: 1,
                    first_ms: h.time_ms,
                    last_ms: h.time_ms,
                });
            }
        }
    }
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    out
}

/// Consecutive timeline rows that differ only in their time: shown as one row.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// The first hit of the run (its fields are the run's).
    pub hit: &'a IncidentHit,
    pub count: usize,
    pub first_ms: i64,
    pub last_ms: i64,
}

fn same(a: &IncidentHit, b: &IncidentHit) -> bool {
    (
        &a.client, &a.name, &a.qtype, &a.action, &a.feed, &a.rule, &a.rcode,
    ) == (
        &b.client, &b.name, &b.qtype, &b.action, &b.feed, &b.rule, &b.rcode,
    )
}

/// The timeline (oldest first) as runs; `all` keeps every row a run of one.
pub fn runs(hits: &[IncidentHit], all: bool) -> Vec<Run<'_>> {
    let mut out: Vec<Run<'_>> = Vec::new();
    for h in hits {
        if !all
            && let Some(last) = out.last_mut()
            && same(last.hit, h)
        {
            last.count += 1;
            last.last_ms = h.time_ms;
            continue;
        }
        out.push(Run {
            hit: h,
            count: 1,
            first_ms: h.time_ms,
            last_ms: h.time_ms,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: i64, t: i64, name: &str) -> IncidentHit {
        IncidentHit {
            id,
            time_ms: t,
            client: "10.0.0.7".into(),
            name: name.into(),
            qtype: "A".into(),
            action: "nxdomain".into(),
            feed: Some("mining".into()),
            rule: Some(name.into()),
            rcode: "NXDomain".into(),
        }
    }

    #[test]
    fn hash_is_stable_and_order_free_and_changes_with_a_row() {
        let hits = vec![hit(1, 10, "a.pool"), hit(2, 20, "b.pool")];
        let audit = vec![AuditEntry {
            id: 5,
            detail: "status: open → investigating\tx".into(),
            ..AuditEntry::now("alice", "investigator", "incident.update", "incident/1")
        }];
        let h = evidence_sha256(&hits, &audit);
        assert_eq!(h.len(), 64);
        let reversed: Vec<_> = hits.iter().rev().cloned().collect();
        assert_eq!(evidence_sha256(&reversed, &audit), h);
        let mut changed = hits.clone();
        changed[1].name = "c.pool".into();
        assert_ne!(evidence_sha256(&changed, &audit), h);
        assert_ne!(evidence_sha256(&hits, &[]), h);
        assert!(audit_line(&audit[0]).contains("investigating\\tx\n"));
    }

    #[test]
    fn runs_and_names() {
        let hits = vec![
            hit(1, 10, "a.pool"),
            hit(2, 11, "a.pool"),
            hit(3, 12, "b.pool"),
            hit(4, 13, "a.pool"),
        ];
        let r = runs(&hits, false);
        assert_eq!(
            r.iter()
                .map(|r| (r.count, r.first_ms, r.last_ms))
                .collect::<Vec<_>>(),
            [(2, 10, 11), (1, 12, 12), (1, 13, 13)]
        );
        assert_eq!(runs(&hits, true).len(), 4);
        let n = per_name(&hits);
        assert_eq!(
            (n[0].name.as_str(), n[0].count, n[0].first_ms, n[0].last_ms),
            ("a.pool", 3, 10, 13)
        );
        assert_eq!((n[1].name.as_str(), n[1].count), ("b.pool", 1));
    }
}
