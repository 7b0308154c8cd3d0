//! One token of a feed line → a [`DomainName`], an address, or a reason it is neither.
//!
//! The common case (a valid name) costs one `DomainName::parse`; everything else takes a slow
//! path that works out *why* the token is wrong, in words a list maintainer can act on
//! ("has a port; a DNS name cannot"), because "character ':' is not allowed" does not say what
//! to fix. Nothing is ever repaired: a port or path is not stripped (TRICKY 3).

use std::net::IpAddr;

use ipnet::IpNet;

use poolguard_model::domain::{DomainName, NameError};

/// What a token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Name(DomainName),
    Ip(IpNet),
}

/// Broken hosts exports glue the address to the name (`0.0.0.0adminer.com`, TRICKY 5);
/// as a name it would even be valid, so it is caught by prefix before anything else.
const GLUED_PREFIXES: [&str; 2] = ["0.0.0.0", "127.0.0.1"];

/// Classifies one token (already trimmed, without `*.`/`=` prefixes).
pub(crate) fn classify(token: &str) -> Result<Token, String> {
    for p in GLUED_PREFIXES {
        if let Some(rest) = token.strip_prefix(p)
            && rest
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
        {
            return Err(format!(
                "the address `{p}` is glued to the name `{rest}` (a broken hosts export); \
                 write `{p} {rest}` or just `{rest}`"
            ));
        }
    }
    match DomainName::parse(token) {
        Ok(name) => {
            let s = name.as_str();
            let Some(dot) = s.rfind('.') else {
                return Err(format!(
                    "`{s}` is a single label: it would block a whole top-level domain"
                ));
            };
            let tld = &s[dot + 1..];
            if tld.bytes().all(|b| b.is_ascii_digit()) {
                return match s.parse::<IpAddr>() {
                    Ok(ip) => Ok(Token::Ip(IpNet::from(ip))),
                    Err(_) => Err(format!(
                        "top-level label `{tld}` is numeric: neither a domain name nor an IP address"
                    )),
                };
            }
            if let Some(label) = placeholder(token) {
                return Err(format!(
                    "label `{label}` looks like a template placeholder (an all-capitals word in \
                     an otherwise lower-case name); write the real name"
                ));
            }
            Ok(Token::Name(name))
        }
        Err(e) => slow_path(token, e),
    }
}

/// `decred.LOCATION.nicehash.com` (TRICKY 3): a label of four or more capital letters in a
/// name whose other labels are all lower case is template text, not a host. Mixed-case labels
/// (`bestETNpool`) and all-capitals names (`POOL.EXAMPLE`) are ordinary names.
fn placeholder(token: &str) -> Option<&str> {
    if !token.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut found = None;
    for label in token.split('.') {
        let upper = label.bytes().filter(|b| b.is_ascii_uppercase()).count();
        if upper == 0 {
            continue;
        }
        if found.is_some() || upper < 4 || upper != label.len() {
            return None;
        }
        found = Some(label);
    }
    found
}

/// Parses an address or CIDR prefix, refusing host bits and absurdly broad prefixes.
///
/// Host bits (`10.1.2.3/8`) are rejected, not truncated: the line is ambiguous (a typo in the
/// address or in the length), and guessing wrong blocks 16 million addresses.
pub(crate) fn parse_net(token: &str) -> Option<Result<IpNet, String>> {
    if let Ok(ip) = token.parse::<IpAddr>() {
        return Some(Ok(IpNet::from(ip)));
    }
    let net = token.parse::<IpNet>().ok()?;
    if net.trunc() != net {
        return Some(Err(format!(
            "prefix has host bits set; write `{}` (the network) or the single address",
            net.trunc()
        )));
    }
    let min = match net {
        IpNet::V4(_) => 8,
        IpNet::V6(_) => 16,
    };
    if net.prefix_len() < min {
        return Some(Err(format!(
            "prefix /{} is broader than /{min}: it would block a large part of the internet",
            net.prefix_len()
        )));
    }
    Some(Ok(net))
}

fn slow_path(token: &str, e: NameError) -> Result<Token, String> {
    if let Some(r) = parse_net(token) {
        return r.map(Token::Ip);
    }
    if token.contains("://") {
        return Err("is a URL; a feed line names a host, not a URL".into());
    }
    if token.split_whitespace().nth(1).is_some() {
        return Err("has more than one field; write one name per line".into());
    }
    if let Some((host, port)) = token.rsplit_once(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && !host.contains(':')
    {
        return Err(format!(
            "has a port (`:{port}`); a DNS name cannot, and the port is not stripped \
             because `{host}` may be an unrelated domain"
        ));
    }
    if let Some(i) = token.find('/') {
        let path = &token[i..];
        return Err(format!(
            "has a path (`{}`); a DNS name cannot, and blocking the host would block more than the rule means",
            super::shorten(path)
        ));
    }
    if token.contains('*') {
        return Err("has a `*` wildcard inside the name; only a leading `*.` is supported".into());
    }
    Err(match e {
        NameError::Hyphen(label) if label.starts_with('-') => {
            format!("label `{label}` starts with '-'")
        }
        NameError::Hyphen(label) => format!("label `{label}` ends with '-'"),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(t: &str) -> String {
        classify(t).expect_err("should be rejected")
    }

    #[test]
    fn names_ips_and_reasons() {
        assert_eq!(
            classify("MoneroOcean.stream"),
            Ok(Token::Name(
                DomainName::parse("moneroocean.stream").unwrap()
            ))
        );
        assert_eq!(
            classify("1.2.3.4"),
            Ok(Token::Ip("1.2.3.4/32".parse().unwrap()))
        );
        assert_eq!(classify("::1"), Ok(Token::Ip("::1/128".parse().unwrap())));
        assert!(reason("server.com:1234").starts_with("has a port (`:1234`)"));
        assert!(reason("graftpool.net/").starts_with("has a path (`/`)"));
        assert_eq!(
            reason("xmr.-eu1.nanopool.org"),
            "label `-eu1` starts with '-'"
        );
        assert_eq!(reason("bad-.com"), "label `bad-` ends with '-'");
        assert!(reason("info").contains("single label"));
        assert!(reason("0.0.0.0adminer.com").contains("glued"));
        assert!(reason("1.2.3.999").contains("numeric"));
        assert!(reason("10.1.2.3/8").contains("host bits"));
        assert!(reason("0.0.0.0/0").contains("broader"));
        assert!(reason("a*b.com").contains("wildcard"));
        assert!(reason("http://x.com").contains("URL"));
        assert!(reason("decred.LOCATION.nicehash.com").contains("placeholder"));
        assert!(classify("www.bestETNpool.com").is_ok());
        assert!(classify("POOL.EXAMPLE").is_ok());
    }
}
