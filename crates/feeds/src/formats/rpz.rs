//! RPZ-lite: the subset of DNS Response Policy Zone files blocklists publish.
//!
//! `$TTL`, SOA, NS and other zone boilerplate are ignored; `;` starts a comment. Triggers are
//! owner names; actions are CNAME targets: `.` (NXDOMAIN), `*.` (NODATA) and `rpz-drop.` block,
//! `rpz-passthru.` is an exception, other targets (walled gardens) and local data are skipped.
//!
//! RPZ lists a name and its subtree separately (`x CNAME .` plus `*.x CNAME .`). Here a name
//! whose `*.` twin is present, or a `*.x` alone, is a subtree entry (as everywhere else in
//! poolguard); a name listed only without its twin is `exact`, because that is what the zone
//! says. Owner names are relative to the zone apex (the first `$ORIGIN`), or to the current
//! `$ORIGIN` when it changes; absolute names under the apex have it stripped. `32.4.3.2.1.rpz-ip`
//! triggers become addresses.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};

use crate::name::{Token, classify};
use crate::{Sink, each_line};
use poolguard_model::domain::DomainName;

#[derive(Default)]
struct Seen {
    line: usize,
    text: String,
    plain: bool,
    wild: bool,
}

/// Parses an RPZ zone file.
pub(crate) fn parse(text: &str, sink: &mut Sink) {
    let mut apex: Option<String> = None;
    let mut origin: Option<String> = None;
    let mut depth = 0usize;
    let mut last_owner: Option<String> = None;
    // (name, is_exception) → first line and forms seen; order kept for stable output.
    let mut index: HashMap<(DomainName, bool), usize> = HashMap::new();
    let mut seen: Vec<((DomainName, bool), Seen)> = Vec::new();

    each_line(text, sink, |sink, no, raw| {
        let line = match raw.find(';') {
            Some(i) => &raw[..i],
            None => raw,
        };
        if line.trim().is_empty() {
            sink.comment();
            return;
        }
        let opens = line.bytes().filter(|&b| b == b'(').count();
        let closes = line.bytes().filter(|&b| b == b')').count();
        let was_inside = depth > 0;
        depth = (depth + opens).saturating_sub(closes);
        if was_inside {
            // The rest of a multi-line record (the SOA's numbers): zone boilerplate.
            sink.comment();
            return;
        }
        let mut fields = line.split_ascii_whitespace();
        let continuation = line.starts_with([' ', '\t']);
        let Some(first) = fields.next() else {
            sink.comment();
            return;
        };
        if let Some(directive) = first.strip_prefix('$') {
            if directive.eq_ignore_ascii_case("ORIGIN") {
                match fields
                    .next()
                    .map(|o| o.trim_end_matches('.').to_ascii_lowercase())
                {
                    Some(o) => {
                        sink.comment();
                        if apex.is_none() {
                            apex = Some(o.clone());
                        }
                        origin = Some(o);
                    }
                    None => sink.reject(no, raw, "`$ORIGIN` without a name"),
                }
            } else if directive.eq_ignore_ascii_case("TTL") {
                sink.comment();
            } else {
                sink.skip("a zone-file directive other than `$ORIGIN` or `$TTL`");
            }
            return;
        }
        let owner = if continuation {
            match &last_owner {
                Some(o) => o.clone(),
                None => {
                    sink.reject(no, raw, "a continuation line with no record before it");
                    return;
                }
            }
        } else {
            last_owner = Some(first.to_string());
            first.to_string()
        };
        let mut rest: Vec<&str> = if continuation {
            std::iter::once(first).chain(fields).collect()
        } else {
            fields.collect()
        };
        // Drop TTL and class fields before the type.
        while rest
            .first()
            .is_some_and(|f| f.bytes().all(|b| b.is_ascii_digit()) || is_class(f))
        {
            rest.remove(0);
        }
        let (Some(rtype), target) = (rest.first(), rest.get(1)) else {
            sink.reject(no, raw, "a record without a type");
            return;
        };
        let is_exception = if rtype.eq_ignore_ascii_case("CNAME") {
            match target.map(|t| t.to_ascii_lowercase()).as_deref() {
                Some(".") | Some("*.") | Some("rpz-drop.") => false,
                Some("rpz-passthru.") => true,
                Some(_) => {
                    sink.skip("a CNAME to a walled garden: a redirect, not a block");
                    return;
                }
                None => {
                    sink.reject(no, raw, "CNAME without a target");
                    return;
                }
            }
        } else if matches!(
            rtype.to_ascii_uppercase().as_str(),
            "SOA" | "NS" | "TXT" | "MX" | "A" | "AAAA"
        ) {
            // Zone boilerplate, or local data (a walled garden): nothing we block on.
            if matches!(rtype.to_ascii_uppercase().as_str(), "SOA" | "NS") {
                sink.comment();
            } else {
                sink.skip("local data (a walled-garden record): not a block");
            }
            return;
        } else {
            sink.skip("a record type RPZ-lite does not act on");
            return;
        };
        let Some(name) = policy_name(&owner, apex.as_deref(), origin.as_deref()) else {
            sink.reject(
                no,
                raw,
                format!(
                    "`{owner}` is outside the zone `{}`",
                    apex.as_deref().unwrap_or(".")
                ),
            );
            return;
        };
        if name.is_empty() {
            sink.reject(no, raw, "a policy at the zone apex would match every name");
            return;
        }
        let (wild, bare) = match name.strip_prefix("*.") {
            Some(b) => (true, b),
            None => (false, name.as_str()),
        };
        if let Some(ip) = bare.strip_suffix(".rpz-ip") {
            match rpz_ip(ip) {
                Some(net) if !is_exception => sink.ip(no, raw, net),
                Some(_) => sink.skip("an rpz-ip passthru: exceptions can only allow names"),
                None => sink.reject(no, raw, "not an IPv4 rpz-ip trigger (`32.4.3.2.1.rpz-ip`)"),
            }
            return;
        }
        if bare.ends_with(".rpz-nsdname")
            || bare.ends_with(".rpz-nsip")
            || bare.ends_with(".rpz-client-ip")
        {
            sink.skip("an rpz-nsdname, rpz-nsip or rpz-client-ip trigger: not a query-name rule");
            return;
        }
        match classify(bare) {
            Ok(Token::Name(n)) => {
                if !sink.deferred_name(no, raw) {
                    return;
                }
                let key = (n, is_exception);
                let i = *index.entry(key.clone()).or_insert_with(|| {
                    seen.push((
                        key,
                        Seen {
                            line: no,
                            text: raw.to_string(),
                            ..Default::default()
                        },
                    ));
                    seen.len() - 1
                });
                let s = &mut seen[i].1;
                if wild {
                    s.wild = true;
                } else {
                    s.plain = true;
                }
            }
            Ok(Token::Ip(_)) => sink.reject(no, raw, "an address as an owner name; use `rpz-ip`"),
            Err(reason) => sink.reject(no, raw, reason),
        }
    });

    for ((name, is_exception), s) in seen {
        let exact = !s.wild;
        if is_exception {
            sink.exception(s.line, &s.text, name, exact);
        } else {
            sink.domain(s.line, &s.text, name, exact);
        }
    }
}

fn is_class(f: &str) -> bool {
    ["IN", "CH", "HS", "CS"]
        .iter()
        .any(|c| f.eq_ignore_ascii_case(c))
}

/// The trigger name relative to the zone apex; `None` when an absolute name lies outside it.
fn policy_name(owner: &str, apex: Option<&str>, origin: Option<&str>) -> Option<String> {
    let owner = owner.to_ascii_lowercase();
    let full = if owner == "@" {
        origin.unwrap_or("").to_string()
    } else if let Some(abs) = owner.strip_suffix('.') {
        abs.to_string()
    } else {
        match origin {
            Some(o) if Some(o) != apex => format!("{owner}.{o}"),
            // Relative to the apex itself: already the policy name.
            _ => return Some(owner),
        }
    };
    match apex {
        None => Some(full),
        Some(a) if full == a => Some(String::new()),
        Some(a) => full
            .strip_suffix(a)
            .and_then(|p| p.strip_suffix('.'))
            .map(str::to_string),
    }
}

/// `32.4.3.2.1` → 1.2.3.4/32.
fn rpz_ip(s: &str) -> Option<IpNet> {
    let mut parts = s.split('.');
    let len: u8 = parts.next()?.parse().ok()?;
    let octets: Vec<u8> = parts.map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [d, c, b, a] = octets[..] else {
        return None;
    };
    let net = Ipv4Net::new(Ipv4Addr::new(a, b, c, d), len).ok()?;
    (net.trunc() == net).then_some(IpNet::V4(net))
}

#[cfg(test)]
mod tests {
    use crate::parse;
    use poolguard_config::{FeedFormat, FeedKind};

    #[test]
    fn pairs_exact_and_wildcards() {
        let text = "$TTL 3600\n@ SOA localhost. root.localhost. 1 2 3 4 5\n  NS  localhost.\n; c\npair.example CNAME .\n*.pair.example CNAME .\nonly.example CNAME .  ; exact\n*.sub.example 300 IN CNAME *.\nok.example CNAME rpz-passthru.\nwalled.example CNAME garden.campus.\n32.4.3.2.1.rpz-ip CNAME .\n";
        let p = parse(text, FeedFormat::Auto, FeedKind::Domains);
        assert_eq!(p.format, Some(FeedFormat::Rpz));
        let d = crate::entries(&p);
        assert_eq!(
            d,
            [
                ("pair.example", false),
                ("only.example", true),
                ("sub.example", false)
            ]
        );
        assert_eq!(p.exceptions[0].name.as_str(), "ok.example");
        assert_eq!(p.ips, ["1.2.3.4/32".parse().unwrap()]);
        assert_eq!(p.skipped, 1);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
    }

    #[test]
    fn origin_relative_and_absolute_names() {
        let text = "$ORIGIN rpz.campus.\n@ IN SOA ns.campus. host.campus. ( 1\n 2 3 4 5 )\na.example CNAME .\nb.example.rpz.campus. CNAME .\n$ORIGIN c.example.rpz.campus.\nwww CNAME .\nother.example. CNAME .\n";
        let p = parse(text, FeedFormat::Rpz, FeedKind::Domains);
        let d: Vec<_> = p.domains.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(d, ["a.example", "b.example", "www.c.example"]);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].line, 8);
    }
}
