//! Patching single entries into a list, in the list's own syntax.
//!
//! `PATCH /feeds/{name}/entries` appends entries and drops lines without re-uploading the
//! list. An added entry is parsed on its own, then written as a line of the feed's format
//! ([`render_entry`]), so a hosts list stays a hosts list. A removal matches the line that is
//! the entry, or that lists exactly its name or prefix ([`Target`]); a line that merely
//! contains the name (a comment, a subdomain) stays. The result goes through the one write
//! path ([`Registry::write`]).

use super::{Registry, RegistryError, WriteReport, empty_report, lock};
use crate::loader::feed_file;
use crate::{ParsedFeed, Rejected};
use poolguard_config::{FeedFormat, FeedKind};

impl Registry {
    /// `PATCH /feeds/{name}/entries`: appends `add` (in the feed's format) and drops the lines
    /// that are, or list exactly, one of `remove`. Returns the report and the entries of
    /// `remove` that were not found.
    pub fn patch(
        &self,
        name: &str,
        add: &[String],
        remove: &[String],
        who: &str,
    ) -> Result<(WriteReport, Vec<String>), RegistryError> {
        let mut defs = lock(&self.defs);
        let feed = self.find(name)?;
        if feed.url.is_some() {
            return Err(RegistryError::Conflict(format!(
                "`{name}` is a subscription; its entries come from its URL"
            )));
        }
        let path = feed_file(&self.config, &feed)
            .ok_or_else(|| RegistryError::Conflict(format!("feed `{name}` has no file")))?;
        let current = match std::fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(RegistryError::Io { path, source }),
        };
        let format = match feed.format {
            FeedFormat::Auto if !current.trim().is_empty() => crate::detect::detect(&current),
            FeedFormat::Auto => FeedFormat::Plain,
            f => f,
        };
        // Every added entry must be one valid rule on its own.
        let mut bad = Vec::new();
        let mut lines_to_add = Vec::new();
        for (i, entry) in add.iter().enumerate() {
            let entry = entry.trim();
            let one = crate::parse(entry, FeedFormat::Plain, feed.kind);
            if one.accepted() != 1 || entry.contains('\n') {
                let reason = one
                    .rejected
                    .first()
                    .map(|r| r.reason.clone())
                    .unwrap_or_else(|| "is not one name, address or prefix".into());
                bad.push(Rejected {
                    line: i + 1,
                    text: entry.to_string(),
                    reason,
                });
                continue;
            }
            lines_to_add.push(render_entry(&one, format).ok_or_else(|| {
                RegistryError::Conflict(format!(
                    "`{entry}` cannot be written in this feed's format ({format:?}); upload the whole list"
                ))
            })?);
        }
        if !bad.is_empty() {
            let mut report = empty_report(name);
            report.rejected = bad;
            return Err(RegistryError::Unusable {
                message: "some entries in `add` are not valid; nothing was changed".into(),
                report: Box::new(report),
            });
        }
        let targets: Vec<Target> = remove.iter().map(|r| Target::new(r, feed.kind)).collect();
        let mut found = vec![false; targets.len()];
        let mut out = String::with_capacity(current.len() + lines_to_add.len() * 32);
        for line in current.split_inclusive('\n') {
            let hit = targets
                .iter()
                .position(|t| t.matches(line, format, feed.kind));
            match hit {
                Some(i) => found[i] = true,
                None => out.push_str(line),
            }
        }
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        for l in lines_to_add {
            out.push_str(&l);
            out.push('\n');
        }
        let missing: Vec<String> = remove
            .iter()
            .zip(&found)
            .filter(|(_, f)| !**f)
            .map(|(r, _)| r.clone())
            .collect();
        let report = self.write(&mut defs, &feed, out.as_bytes(), who, "patch", true)?;
        Ok((report, missing))
    }
}

/// One parsed entry written as a line of `format`; `None` for formats we do not write.
fn render_entry(one: &ParsedFeed, format: FeedFormat) -> Option<String> {
    if let Some(net) = one.ips.first() {
        return match format {
            FeedFormat::Adblock => Some(format!("||{}^", net.addr())),
            FeedFormat::Url | FeedFormat::Suricata | FeedFormat::Rpz | FeedFormat::Dnsmasq => None,
            _ => Some(net.to_string()),
        };
    }
    let d = one.domains.first()?;
    let n = d.name.as_str();
    Some(match (format, d.exact) {
        (FeedFormat::Plain | FeedFormat::Auto | FeedFormat::Wildcard, true) => format!("={n}"),
        (FeedFormat::Plain | FeedFormat::Auto, false) => n.to_string(),
        (FeedFormat::Wildcard, false) => format!("*.{n}"),
        // Our hosts reading is "the name and below"; an exact-only entry has no hosts form.
        (FeedFormat::Hosts, false) => format!("0.0.0.0 {n}"),
        (FeedFormat::Adblock, false) => format!("||{n}^"),
        (FeedFormat::Dnsmasq, false) => format!("address=/{n}/0.0.0.0"),
        (FeedFormat::Rpz, true) => format!("{n} CNAME ."),
        (FeedFormat::Rpz, false) => format!("{n} CNAME .\n*.{n} CNAME ."),
        _ => return None,
    })
}

/// An entry to remove: matched by line text, or by the name/prefix a line lists.
struct Target {
    text: String,
    name: Option<String>,
    net: Option<ipnet::IpNet>,
}

impl Target {
    fn new(text: &str, kind: FeedKind) -> Self {
        let text = text.trim().to_string();
        let one = crate::parse(&text, FeedFormat::Plain, kind);
        Self {
            name: one.domains.first().map(|d| d.name.as_str().to_string()),
            net: one.ips.first().copied(),
            text,
        }
    }

    fn matches(&self, line: &str, format: FeedFormat, kind: FeedKind) -> bool {
        let trimmed = line.trim();
        if trimmed.eq_ignore_ascii_case(&self.text) {
            return true;
        }
        let needle = match (&self.name, &self.net) {
            (Some(n), _) => n.clone(),
            (None, Some(net)) => net.addr().to_string(),
            _ => return false,
        };
        // Cheap pre-filter; only candidate lines are parsed.
        if !trimmed.to_ascii_lowercase().contains(&needle) {
            return false;
        }
        let one = crate::parse(trimmed, format, kind);
        let names = one.domains.iter().chain(&one.exceptions);
        match (&self.name, &self.net) {
            (Some(n), _) => {
                one.accepted() > 0
                    && one.ips.is_empty()
                    && names.clone().all(|d| d.name.as_str() == n)
            }
            (None, Some(net)) => one.ips.len() == 1 && one.ips[0] == *net,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(entry: &str) -> ParsedFeed {
        crate::parse(entry, FeedFormat::Plain, FeedKind::Domains)
    }

    /// An added entry, written in the feed's format, parses back to the same entry there.
    #[test]
    fn added_entries_round_trip_in_each_format() {
        for format in [
            FeedFormat::Plain,
            FeedFormat::Wildcard,
            FeedFormat::Hosts,
            FeedFormat::Adblock,
            FeedFormat::Dnsmasq,
            FeedFormat::Rpz,
        ] {
            for entry in ["pool.example", "=exact.pool.example"] {
                let p = one(entry);
                let Some(line) = render_entry(&p, format) else {
                    // These syntaxes have no exact-only form.
                    assert!(
                        matches!(
                            format,
                            FeedFormat::Adblock | FeedFormat::Dnsmasq | FeedFormat::Hosts
                        ) && entry.starts_with('='),
                        "{format:?} {entry}"
                    );
                    continue;
                };
                let back = crate::parse(&line, format, FeedKind::Domains);
                assert!(back.rejected.is_empty(), "{format:?}: {line}");
                assert_eq!(back.domains.len(), 1, "{format:?}: {line}");
                assert_eq!(
                    back.domains[0].name, p.domains[0].name,
                    "{format:?}: {line}"
                );
                if format != FeedFormat::Hosts {
                    assert_eq!(
                        back.domains[0].exact, p.domains[0].exact,
                        "{format:?}: {line}"
                    );
                }
            }
        }
    }

    /// A removal matches the line that lists the name, not lines that merely contain it.
    #[test]
    fn removal_matches_the_listed_name_only() {
        let t = Target::new("pool.example", FeedKind::Domains);
        let k = FeedKind::Domains;
        assert!(t.matches("||pool.example^\n", FeedFormat::Adblock, k));
        assert!(t.matches("0.0.0.0 pool.example\n", FeedFormat::Hosts, k));
        assert!(t.matches("address=/pool.example/0.0.0.0\n", FeedFormat::Dnsmasq, k));
        assert!(t.matches("  pool.example  \n", FeedFormat::Plain, k));
        assert!(!t.matches("x.pool.example\n", FeedFormat::Plain, k));
        assert!(!t.matches("||notpool.example^\n", FeedFormat::Adblock, k));
        assert!(!t.matches("# pool.example was here\n", FeedFormat::Plain, k));
        let ip = Target::new("203.0.113.0/24", FeedKind::Ips);
        assert!(ip.matches("203.0.113.0/24\n", FeedFormat::Ip, FeedKind::Ips));
        assert!(!ip.matches("203.0.113.0/25\n", FeedFormat::Ip, FeedKind::Ips));
    }
}
