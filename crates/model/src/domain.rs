//! `DomainName`: a name normalised once, where it enters poolguard.
//!
//! Feeds, the API and config hand us names in every shape: mixed case, trailing dots, raw
//! Unicode (`myètherwället.com`), stray whitespace. They are turned into one canonical form here
//! (lower-case ASCII, IDN as punycode via UTS 46, no trailing dot, every label 1–63 bytes of
//! `[a-z0-9_-]` not starting or ending with `-`, at most 253 bytes) and nothing downstream ever
//! re-normalises. The matcher compares these bytes directly.

use std::fmt;

/// Why text is not a domain name. The message is shown to feed maintainers as-is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("name is longer than 253 characters")]
    TooLong,
    #[error("empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("label `{0}` is longer than 63 characters")]
    LabelTooLong(String),
    #[error("label `{0}` starts or ends with '-'")]
    Hyphen(String),
    #[error("character {0:?} is not allowed in a DNS name")]
    BadChar(char),
    #[error("not a valid internationalised name")]
    Idna,
}

/// A validated, canonical DNS name (no trailing dot). Cheap to compare and hash.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(Box<str>);

impl DomainName {
    /// Normalises user text: trims, drops one trailing dot, lower-cases, IDN → punycode.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let t = text.trim();
        let t = t.strip_suffix('.').unwrap_or(t);
        if t.is_empty() {
            return Err(NameError::Empty);
        }
        let ascii = if t.is_ascii() {
            t.to_ascii_lowercase()
        } else {
            // UTS 46 with transitional processing off (the mapping browsers use today).
            idna::domain_to_ascii(t).map_err(|_| NameError::Idna)?
        };
        Self::from_ascii_lower(ascii)
    }

    fn from_ascii_lower(s: String) -> Result<Self, NameError> {
        if s.len() > 253 {
            return Err(NameError::TooLong);
        }
        for label in s.split('.') {
            if label.is_empty() {
                return Err(NameError::EmptyLabel);
            }
            if label.len() > 63 {
                return Err(NameError::LabelTooLong(label.to_string()));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(NameError::Hyphen(label.to_string()));
            }
            if let Some(c) = label
                .chars()
                .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
            {
                return Err(NameError::BadChar(c));
            }
        }
        Ok(Self(s.into_boxed_str()))
    }

    /// The canonical text, e.g. `xmr.pool.minergate.com`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Number of labels: `pool.example` has 2.
    pub fn label_count(&self) -> usize {
        self.0.bytes().filter(|&b| b == b'.').count() + 1
    }

    /// True when `self` is `other` or below it.
    pub fn is_within(&self, other: &DomainName) -> bool {
        name_within(self.as_str(), other.as_str())
    }

    /// Whether the text looks like an IP address rather than a name (feeds mix them).
    pub fn looks_like_ip(text: &str) -> bool {
        text.trim().parse::<std::net::IpAddr>().is_ok()
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DomainName({})", self.0)
    }
}

impl std::str::FromStr for DomainName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for DomainName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// [`DomainName::is_within`] for names already in canonical spelling (lower case, no trailing
/// dot), such as a question name on the DNS path, without building a `DomainName`.
#[inline]
pub fn name_within(name: &str, domain: &str) -> bool {
    name == domain
        || (name.len() > domain.len()
            && name.ends_with(domain)
            && name.as_bytes()[name.len() - domain.len() - 1] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_dots_and_idn() {
        assert_eq!(
            DomainName::parse("MoneroOcean.stream.").unwrap().as_str(),
            "moneroocean.stream"
        );
        assert_eq!(
            DomainName::parse("myètherwället.com").unwrap().as_str(),
            "xn--mytherwllet-r8a0c.com"
        );
        assert_eq!(
            DomainName::parse(" xn--blckchin-5za9o.info ")
                .unwrap()
                .as_str(),
            "xn--blckchin-5za9o.info"
        );
    }

    #[test]
    fn rejects_what_cannot_be_a_name() {
        assert_eq!(DomainName::parse(""), Err(NameError::Empty));
        assert_eq!(DomainName::parse("a..b"), Err(NameError::EmptyLabel));
        assert!(matches!(
            DomainName::parse("xmr.-eu1.nanopool.org"),
            Err(NameError::Hyphen(_))
        ));
        assert_eq!(
            DomainName::parse("server.com:1234"),
            Err(NameError::BadChar(':'))
        );
        assert_eq!(
            DomainName::parse("graftpool.net/"),
            Err(NameError::BadChar('/'))
        );
        assert!(DomainName::parse(&"a".repeat(64)).is_err());
        assert!(DomainName::parse(&format!("{}.com", "a.".repeat(130))).is_err());
    }

    #[test]
    fn within_is_label_aligned() {
        let p = DomainName::parse("pool.example").unwrap();
        assert!(DomainName::parse("x.pool.example").unwrap().is_within(&p));
        assert!(p.is_within(&p));
        assert!(!DomainName::parse("xpool.example").unwrap().is_within(&p));
    }
}
