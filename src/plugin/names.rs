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

/// `IN`, `CS`, `CH`, `HS`, `NONE`, `ANY`; `CLASSn` otherwise.
pub fn class_name(c: DNSClass) -> Cow<'static, str> {
    match class_mnemonic(c) {
        "" => Cow::Owned(format!("CLASS{}", u16::from(c))),
        name => Cow::Borrowed(name),
    }
}

/// miekg/dns's `ClassToString`, as (mnemonic, code).
const CLASSES: &[(&str, u16)] = &[
    ("IN", 1),
    ("CS", 2),
    ("CH", 3),
    ("HS", 4),
    ("NONE", 254),
    ("ANY", 255),
];

/// miekg/dns's `ClassToString` (the empty string for other classes).
pub fn class_mnemonic(c: DNSClass) -> &'static str {
    let code = u16::from(c);
    CLASSES
        .iter()
        .find(|(_, n)| *n == code)
        .map_or("", |(name, _)| name)
}

/// miekg/dns's `StringToClass` (case-sensitive).
pub fn class_from_mnemonic(s: &str) -> Option<DNSClass> {
    CLASSES
        .iter()
        .find(|(name, _)| *name == s)
        .map(|(_, n)| DNSClass::from(*n))
}

/// miekg/dns's `TypeToString`, as (mnemonic, code).
const TYPES: &[(&str, u16)] = &[
    ("None", 0),
    ("A", 1),
    ("NS", 2),
    ("MD", 3),
    ("MF", 4),
    ("CNAME", 5),
    ("SOA", 6),
    ("MB", 7),
    ("MG", 8),
    ("MR", 9),
    ("NULL", 10),
    ("PTR", 12),
    ("HINFO", 13),
    ("MINFO", 14),
    ("MX", 15),
    ("TXT", 16),
    ("RP", 17),
    ("AFSDB", 18),
    ("X25", 19),
    ("ISDN", 20),
    ("RT", 21),
    ("NSAP-PTR", 23),
    ("SIG", 24),
    ("KEY", 25),
    ("PX", 26),
    ("GPOS", 27),
    ("AAAA", 28),
    ("LOC", 29),
    ("NXT", 30),
    ("EID", 31),
    ("NIMLOC", 32),
    ("SRV", 33),
    ("ATMA", 34),
    ("NAPTR", 35),
    ("KX", 36),
    ("CERT", 37),
    ("DNAME", 39),
    ("OPT", 41),
    ("APL", 42),
    ("DS", 43),
    ("SSHFP", 44),
    ("IPSECKEY", 45),
    ("RRSIG", 46),
    ("NSEC", 47),
    ("DNSKEY", 48),
    ("DHCID", 49),
    ("NSEC3", 50),
    ("NSEC3PARAM", 51),
    ("TLSA", 52),
    ("SMIMEA", 53),
    ("HIP", 55),
    ("NINFO", 56),
    ("RKEY", 57),
    ("TALINK", 58),
    ("CDS", 59),
    ("CDNSKEY", 60),
    ("OPENPGPKEY", 61),
    ("CSYNC", 62),
    ("ZONEMD", 63),
    ("SVCB", 64),
    ("HTTPS", 65),
    ("SPF", 99),
    ("UINFO", 100),
    ("UID", 101),
    ("GID", 102),
    ("UNSPEC", 103),
    ("NID", 104),
    ("L32", 105),
    ("L64", 106),
    ("LP", 107),
    ("EUI48", 108),
    ("EUI64", 109),
    ("NXNAME", 128),
    ("TKEY", 249),
    ("TSIG", 250),
    ("IXFR", 251),
    ("AXFR", 252),
    ("MAILB", 253),
    ("MAILA", 254),
    ("ANY", 255),
    ("URI", 256),
    ("CAA", 257),
    ("AVC", 258),
    ("AMTRELAY", 260),
    ("RESINFO", 261),
    ("TA", 32768),
    ("DLV", 32769),
    ("Reserved", 65535),
];

/// miekg/dns's `TypeToString` (the empty string for other types).
pub fn type_mnemonic(t: RecordType) -> &'static str {
    let code = u16::from(t);
    TYPES
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(n, _)| *n)
        .unwrap_or("")
}

/// miekg/dns's `StringToType` (case-sensitive).
pub fn type_from_mnemonic(s: &str) -> Option<RecordType> {
    TYPES
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, c)| RecordType::from(*c))
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
