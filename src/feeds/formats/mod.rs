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
