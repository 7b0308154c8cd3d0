//! One parser per on-disk syntax. Each is a loop over lines that hands what it finds to the
//! [`Sink`](super::Sink); none of them decides what a feed kind allows.

pub(crate) mod adblock;
pub(crate) mod dnsmasq;
pub(crate) mod hosts;
pub(crate) mod ip;
pub(crate) mod plain;
pub(crate) mod rpz;
pub(crate) mod suricata;
pub(crate) mod url;

/// The rule part of a line in the `#`-commented list syntaxes (plain, wildcard, hosts): `#`
/// ends the rule anywhere (no name contains it), `!` and `;` start a comment line. `None` for
/// comment and blank lines.
fn rule_text(raw: &str) -> Option<&str> {
    let line = match raw.find('#') {
        Some(i) => &raw[..i],
        None => raw,
    }
    .trim();
    (!line.is_empty() && !line.starts_with(['!', ';'])).then_some(line)
}
