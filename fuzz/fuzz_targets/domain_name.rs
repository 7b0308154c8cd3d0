//! Bytes → `DomainName::parse`: every name from a feed, the API or a query goes through it.
//! An accepted name is lower-case ASCII without a trailing dot, at most 253 characters, and
//! parsing it again gives the same name (normalisation is idempotent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use poolguard::domain::DomainName;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(name) = DomainName::parse(text) else {
        return;
    };
    let s = name.as_str();
    assert!(!s.is_empty() && s.len() <= 253, "{s:?}");
    assert!(!s.ends_with('.'), "{s:?}");
    assert!(s.is_ascii() && !s.bytes().any(|b| b.is_ascii_uppercase()), "{s:?}");
    let again = DomainName::parse(s).expect("a normalised name parses");
    assert_eq!(again.as_str(), s);
});
