//! The OPT record of a fast-path answer, shared by its two writers (blocks and cached
//! answers): our UDP size and the client's DO bit, nothing else.

/// The OPT record of a fast-path answer to an EDNS client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseOpt {
    /// Our UDP payload size (RFC 6891 §6.2.3).
    pub payload: u16,
    /// The client's DO bit: RFC 3225 §3 says the answer MUST copy it.
    pub dnssec_ok: bool,
}

impl ResponseOpt {
    /// The record up to RDLEN: root owner, type OPT, our size, extended RCODE 0, version 0,
    /// flags with DO copied.
    pub fn head(&self) -> [u8; 9] {
        let [hi, lo] = self.payload.to_be_bytes();
        let flags = if self.dnssec_ok { 0x80 } else { 0 };
        [0, 0, 41, hi, lo, 0, 0, flags, 0]
    }
}
