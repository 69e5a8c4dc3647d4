//! How a reply is classified, as CoreDNS's `plugin/pkg/response` does: `cache` keys its
//! behaviour on the [`RespType`], `log` on the class it maps to.

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::dns::wire::{self, Layout};

/// CoreDNS's `response.Type`: what kind of reply a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespType {
    /// A positive reply (NOERROR with answers, or NOERROR with nothing that says otherwise).
    NoError,
    /// NXDOMAIN with an SOA in the authority section.
    NameError,
    /// SERVFAIL.
    ServerError,
    /// NOERROR, no answer, SOA in the authority section.
    NoData,
    /// NOERROR, no answer, NS records in the authority section.
    Delegation,
    /// NOTIFY, AXFR, IXFR.
    Meta,
    /// Dynamic update.
    Update,
    /// Everything else (REFUSED, FORMERR, NOTIMP, NXDOMAIN without SOA, ...).
    OtherError,
}

/// What [`classify`] looks at in a reply, whatever form the reply is in (a decoded `Message`
/// or wire bytes).
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub op_code: OpCode,
    /// The question's type, if there is a question.
    pub qtype: Option<RecordType>,
    /// The full response code.
    pub rcode: ResponseCode,
    pub has_answers: bool,
    /// The authority section holds an SOA / NS record.
    pub soa: bool,
    pub ns: bool,
}

/// CoreDNS's `response.Typify` on a reply's [`Shape`]. (Expired-RRSIG detection is not done:
/// the DNSSEC record types are not decoded by this build.)
pub fn classify(s: Shape) -> RespType {
    match s.op_code {
        OpCode::Update => return RespType::Update,
        OpCode::Notify => return RespType::Meta,
        _ => {}
    }
    if matches!(s.qtype, Some(RecordType::AXFR | RecordType::IXFR)) {
        return RespType::Meta;
    }
    let rcode = s.rcode;
    if s.has_answers && rcode == ResponseCode::NoError {
        return RespType::NoError;
    }
    if s.soa && rcode == ResponseCode::NoError {
        return RespType::NoData;
    }
    if s.soa && rcode == ResponseCode::NXDomain {
        return RespType::NameError;
    }
    if rcode == ResponseCode::ServFail {
        return RespType::ServerError;
    }
    if s.ns && rcode == ResponseCode::NoError {
        return RespType::Delegation;
    }
    if rcode == ResponseCode::NoError {
        return RespType::NoError;
    }
    RespType::OtherError
}

/// CoreDNS's `response.Typify` on a reply in wire form (laid out as `layout`) whose full
/// response code is `rcode`.
pub fn typify_wire(buf: &[u8], layout: &Layout, rcode: ResponseCode) -> RespType {
    let in_authority = |t: u16| layout.authorities().iter().any(|r| r.rtype == t);
    classify(Shape {
        op_code: OpCode::from_u8(((wire::flags(buf) >> 11) & 0xf) as u8),
        qtype: Some(RecordType::from(layout.qtype)),
        rcode,
        has_answers: layout.an > 0,
        soa: in_authority(wire::T_SOA),
        ns: in_authority(wire::T_NS),
    })
}

/// Classifies `m` as CoreDNS's `response.Typify` does.
pub fn typify(m: &Message) -> RespType {
    let in_authority = |t: RecordType| m.authorities.iter().any(|r| r.record_type() == t);
    classify(Shape {
        op_code: m.metadata.op_code,
        qtype: m.queries.first().map(|q| q.query_type()),
        rcode: m.metadata.response_code,
        has_answers: !m.answers.is_empty(),
        soa: in_authority(RecordType::SOA),
        ns: in_authority(RecordType::NS),
    })
}
