//! Bytes → `feeds::parse` in every format and kind: feeds come from uploads and URLs, so a
//! hostile list must never crash the loader. Also checks every accepted name is normalised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poolguard::config::{FeedFormat, FeedKind};
use poolguard::domain::DomainName;

const FORMATS: [FeedFormat; 10] = [
    FeedFormat::Auto,
    FeedFormat::Plain,
    FeedFormat::Hosts,
    FeedFormat::Adblock,
    FeedFormat::Dnsmasq,
    FeedFormat::Rpz,
    FeedFormat::Wildcard,
    FeedFormat::Ip,
    FeedFormat::Url,
    FeedFormat::Suricata,
];
const KINDS: [FeedKind; 3] = [FeedKind::Domains, FeedKind::Ips, FeedKind::Allow];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for format in FORMATS {
        for kind in KINDS {
            let parsed = poolguard::feeds::parse(&text, format, kind);
            for entry in parsed.domains.iter().chain(&parsed.exceptions) {
                let again = DomainName::parse(entry.name.as_str()).expect("accepted names reparse");
                assert_eq!(again.as_str(), entry.name.as_str());
            }
        }
    }
});
