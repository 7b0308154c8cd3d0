//! How the query log and `GET /api/v1/check` spell query types and response codes: the
//! conventional upper-case mnemonics `dig` prints, so a log row reads like `dig` output.

use std::borrow::Cow;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// `A`, `AAAA`, … and `TYPE65534` for types hickory does not name (RFC 3597 spelling).
pub(crate) fn type_mnemonic(t: RecordType) -> Cow<'static, str> {
    match t {
        RecordType::Unknown(code) => format!("TYPE{code}").into(),
        other => <&'static str>::from(other).into(),
    }
}

/// The conventional upper-case rcode names the query log stores.
pub(crate) fn rcode_text(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::BADVERS => "BADVERS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_use_rfc3597_spelling() {
        assert_eq!(type_mnemonic(RecordType::Unknown(65534)), "TYPE65534");
        assert_eq!(type_mnemonic(RecordType::AAAA), "AAAA");
    }
}
