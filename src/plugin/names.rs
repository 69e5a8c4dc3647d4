//! Mnemonics of types, classes and rcodes as CoreDNS (miekg/dns) prints them: `AAAA`, `IN`,
//! `NXDOMAIN`; in logs unknown values read `TYPE65280`, `CLASS3`, or the rcode number. Used by
//! `log` and `errors` for their lines and by `prometheus` for its labels.

use std::borrow::Cow;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, RecordType};

/// `A`, `AAAA`, `HINFO`…; `TYPE1234` for types without a mnemonic.
pub fn type_name(t: RecordType) -> Cow<'static, str> {
    match t {
        RecordType::Unknown(n) => Cow::Owned(format!("TYPE{n}")),
        RecordType::ZERO => Cow::Borrowed("None"),
        t => Cow::Borrowed(t.into()),
    }
}

/// `IN`, `CH`, `HS`, `NONE`, `ANY`; `CLASSn` otherwise.
pub fn class_name(c: DNSClass) -> Cow<'static, str> {
    Cow::Borrowed(match c {
        DNSClass::IN => "IN",
        DNSClass::CH => "CH",
        DNSClass::HS => "HS",
        DNSClass::NONE => "NONE",
        DNSClass::ANY => "ANY",
        other => return Cow::Owned(format!("CLASS{}", u16::from(other))),
    })
}

/// `NOERROR`, `SERVFAIL`, `NXDOMAIN`…; the number for codes without a name.
pub fn rcode_name(r: ResponseCode) -> Cow<'static, str> {
    match rcode_mnemonic(r) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(u16::from(r).to_string()),
    }
}

/// miekg/dns's `RcodeToString`: the name of an rcode, `None` for codes without one. BADVERS
/// (16) reads `BADSIG`, as there.
pub fn rcode_mnemonic(r: ResponseCode) -> Option<&'static str> {
    Some(match u16::from(r) {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        11 => "DSOTYPENI",
        16 => "BADSIG",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_miekg() {
        assert_eq!(type_name(RecordType::AAAA), "AAAA");
        assert_eq!(type_name(RecordType::ANY), "ANY");
        assert_eq!(type_name(RecordType::HINFO), "HINFO");
        assert_eq!(type_name(RecordType::Unknown(65280)), "TYPE65280");
        assert_eq!(class_name(DNSClass::IN), "IN");
        assert_eq!(class_name(DNSClass::CH), "CH");
        assert_eq!(class_name(DNSClass::Unknown(7)), "CLASS7");
        assert_eq!(rcode_name(ResponseCode::NoError), "NOERROR");
        assert_eq!(rcode_name(ResponseCode::ServFail), "SERVFAIL");
        assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_name(ResponseCode::NotImp), "NOTIMP");
        assert_eq!(rcode_name(ResponseCode::Refused), "REFUSED");
        assert_eq!(rcode_name(ResponseCode::FormErr), "FORMERR");
        assert_eq!(rcode_name(ResponseCode::BADCOOKIE), "BADCOOKIE");
        assert_eq!(rcode_name(ResponseCode::BADVERS), "BADSIG");
        assert_eq!(rcode_name(ResponseCode::Unknown(11)), "DSOTYPENI");
        assert_eq!(rcode_name(ResponseCode::Unknown(3000)), "3000");
    }
}
