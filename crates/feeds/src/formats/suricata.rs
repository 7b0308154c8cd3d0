//! Suricata / Emerging Threats rules: the domain names inside DNS, TLS-SNI and HTTP-Host rules.
//!
//! ET publishes the best-maintained mining-pool names as IDS rules. A rule is honoured only
//! when it names one domain in a DNS-visible buffer and anchors it the way DNS matching can:
//! - `dns.query; content:".herominers.com"; endswith;` → herominers.com and below (the leading
//!   dot plus `endswith` means "any subdomain of"); `endswith` without the dot is read the same
//!   way, because label-aligned suffixes are all a resolver can match;
//! - `content:"pool.hashvault.pro"; bsize:18;` (or `startswith` + `endswith`) → that exact name;
//! - DNS wire format (`content:"|06|static|0a|reasedoper|02|pw|00|"`) → that name and below.
//!
//! Everything else in a rule file (payload signatures, URI and certificate matches, partial
//! names such as `2iuu6o3zbmwynik2.tor2web.`, unanchored substrings, rules with several name
//! contents) is skipped and counted. Disabled rules (`#alert …`) are comments. The buffers are
//! `dns.query`/`dns_query`, `tls.sni`/`tls_sni` (sticky, before the content) and `http.host`
//! (sticky) or the older `http_host` (a modifier after the content).

use crate::name::{Token, classify};
use crate::{Sink, each_line};

const ACTIONS: [&str; 6] = ["alert", "drop", "reject", "pass", "rejectsrc", "rejectboth"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Buffer {
    /// Before any sticky buffer: raw packet payload (where wire-format names live).
    Payload,
    /// A buffer that carries a host name.
    Name,
    /// Any other buffer (URI, headers, certificate, file data).
    Other,
}

struct Content {
    buffer: Buffer,
    bytes: Vec<u8>,
    startswith: bool,
    endswith: bool,
}

/// Parses a Suricata rule file.
pub(crate) fn parse(text: &str, sink: &mut Sink) {
    each_line(text, sink, |sink, no, raw| {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            sink.comment();
            return;
        }
        let action = line.split_ascii_whitespace().next().unwrap_or("");
        if !ACTIONS.contains(&action) {
            sink.reject(
                no,
                raw,
                "not a Suricata rule (expected `alert … (options)`)",
            );
            return;
        }
        let (Some(open), Some(close)) = (line.find('('), line.rfind(')')) else {
            sink.reject(no, raw, "a rule without its `( … )` options");
            return;
        };
        if close < open {
            sink.reject(no, raw, "a rule without its `( … )` options");
            return;
        }
        match rule_name(&line[open + 1..close]) {
            Some((name, exact)) => match classify(&name) {
                Ok(Token::Name(n)) => sink.domain(no, raw, n, exact),
                Ok(Token::Ip(_)) => sink
                    .skip("matches an address in a name buffer; DNS blocking works on names here"),
                Err(reason) => sink.reject(no, raw, format!("`{name}` {reason}")),
            },
            None => sink.skip(
                "does not name exactly one anchored domain in a DNS, TLS-SNI or HTTP-Host buffer",
            ),
        }
    });
}

/// The one domain a rule's options name, with whether it is exact; `None` when the rule does
/// not name exactly one anchored domain.
fn rule_name(options: &str) -> Option<(String, bool)> {
    let mut buffer = Buffer::Payload;
    let mut contents: Vec<Content> = Vec::new();
    let mut name_bsize: Option<usize> = None;
    for opt in split_options(options) {
        let (key, value) = match opt.split_once(':') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (opt.trim(), None),
        };
        match (key, value) {
            ("content", Some(v)) => {
                // Negated contents (`content:!"EHLO"`) say what must be absent: no name there.
                if let Some(bytes) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                    contents.push(Content {
                        buffer,
                        bytes: decode(bytes)?,
                        startswith: false,
                        endswith: false,
                    });
                }
            }
            ("bsize", Some(v)) if buffer == Buffer::Name => name_bsize = v.parse().ok(),
            ("endswith", None) => contents.last_mut()?.endswith = true,
            ("startswith", None) => contents.last_mut()?.startswith = true,
            ("dns.query" | "dns_query" | "tls.sni" | "tls_sni" | "http.host", None) => {
                buffer = Buffer::Name;
            }
            ("http_host", None) => contents.last_mut()?.buffer = Buffer::Name,
            ("nocase" | "fast_pattern" | "dotprefix" | "rawbytes", None) => {}
            (k, None) if k.contains('.') => buffer = Buffer::Other,
            // Old-style modifiers (`http_uri`, `http_header`) move the content they follow.
            (k, None) if k.starts_with("http_") || k.starts_with("tls_") || k == "file_data" => {
                if k == "file_data" {
                    buffer = Buffer::Other;
                } else if let Some(c) = contents.last_mut() {
                    c.buffer = Buffer::Other;
                }
            }
            _ => {}
        }
    }
    let named: Vec<&Content> = contents
        .iter()
        .filter(|c| c.buffer == Buffer::Name)
        .collect();
    match named.as_slice() {
        [c] => {
            let text = std::str::from_utf8(&c.bytes).ok()?;
            if text.ends_with('.') {
                return None; // a prefix of a name (`x.tor2web.`): DNS cannot match it
            }
            let exact = (c.startswith && c.endswith) || name_bsize == Some(c.bytes.len());
            let name = text.strip_prefix('.').unwrap_or(text);
            if exact && !text.starts_with('.') {
                Some((name.to_string(), true))
            } else if c.endswith {
                Some((name.to_string(), false))
            } else {
                None
            }
        }
        [] => {
            let mut wire = contents
                .iter()
                .filter(|c| c.buffer == Buffer::Payload)
                .filter_map(|c| wire_name(&c.bytes));
            match (wire.next(), wire.next()) {
                (Some(n), None) => Some((n, false)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Splits rule options on `;`, honouring quotes and `\` escapes.
fn split_options(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => quoted = !quoted,
            b';' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out.retain(|o| !o.trim().is_empty());
    out
}

/// Decodes a content string: text with `|hex bytes|` sections and `\` escapes.
fn decode(s: &str) -> Option<Vec<u8>> {
    if s.bytes().filter(|&b| b == b'|').count() % 2 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len());
    for (i, part) in s.split('|').enumerate() {
        if i % 2 == 1 {
            for h in part.split_ascii_whitespace() {
                out.push(u8::from_str_radix(h, 16).ok()?);
            }
        } else {
            let mut bytes = part.bytes();
            while let Some(b) = bytes.next() {
                out.push(if b == b'\\' { bytes.next()? } else { b });
            }
        }
    }
    Some(out)
}

/// A complete DNS wire-format name (`|06|static|0a|reasedoper|02|pw|00|`).
fn wire_name(b: &[u8]) -> Option<String> {
    let mut labels: Vec<&str> = Vec::new();
    let mut i = 0;
    loop {
        let len = *b.get(i)? as usize;
        if len == 0 {
            return (i + 1 == b.len() && labels.len() >= 2).then(|| labels.join("."));
        }
        let label = b.get(i + 1..i + 1 + len)?;
        if !label
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        {
            return None;
        }
        labels.push(std::str::from_utf8(label).ok()?);
        i += 1 + len;
    }
}

#[cfg(test)]
mod tests {
    use crate::parse;
    use poolguard_config::{FeedFormat, FeedKind};

    #[test]
    fn anchored_names_only() {
        let text = r#"# ET
#alert dns any any -> any any (msg:"disabled"; dns.query; content:"off.example"; endswith; sid:1;)
alert dns $HOME_NET any -> any any (msg:"x"; dns.query; content:".herominers.com"; nocase; endswith; sid:2;)
alert dns $HOME_NET any -> any any (msg:"x"; dns.query; content:"pool.hashvault.pro"; nocase; bsize:18; sid:3;)
alert dns $HOME_NET any -> any any (msg:"x"; dns.query; bsize:14; content:"monerohash.com"; nocase; sid:4;)
alert tls $HOME_NET any -> any any (msg:"x"; tls.sni; content:"coin-hive.com"; endswith; sid:5;)
alert udp $HOME_NET any -> any 53 (msg:"x"; content:"|01 00 00 01|"; depth:4; content:"|06|static|0a|reasedoper|02|pw|00|"; distance:0; sid:6;)
alert dns any any -> any any (msg:"x"; dns.query; content:"2iuu6o3zbmwynik2.tor2web."; sid:7;)
alert dns any any -> any any (msg:"x"; dns.query; content:"aptgetgxqs3secda"; sid:8;)
alert tls any any -> any any (msg:"x"; tls.cert_subject; content:"CN=eu.minerpool.pw"; sid:9;)
alert http any any -> any any (msg:"x; y"; content:"Host|3a| old.example"; http_header; sid:10;)
alert http any any -> any any (msg:"x"; content:"old-host.example"; http_host; endswith; sid:11;)
garbage
"#;
        let p = parse(text, FeedFormat::Auto, FeedKind::Domains);
        assert_eq!(p.format, Some(FeedFormat::Suricata));
        let d = crate::entries(&p);
        assert_eq!(
            d,
            [
                ("herominers.com", false),
                ("pool.hashvault.pro", true),
                ("monerohash.com", true),
                ("coin-hive.com", false),
                ("static.reasedoper.pw", false),
                ("old-host.example", false),
            ]
        );
        assert_eq!(p.skipped, 4);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].line, 13);
    }
}
