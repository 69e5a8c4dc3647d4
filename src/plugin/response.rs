//! How a reply is classified, as CoreDNS's `plugin/pkg/response` does: `cache` keys its
//! behaviour on the [`RespType`], `log` on the class it maps to.

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;

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

/// Classifies `m` as CoreDNS's `response.Typify` does. (Expired-RRSIG detection is not done: the
/// DNSSEC record types are not decoded by this build.)
pub fn typify(m: &Message) -> RespType {
    match m.metadata.op_code {
        OpCode::Update => return RespType::Update,
        OpCode::Notify => return RespType::Meta,
        _ => {}
    }
    if let Some(q) = m.queries.first()
        && matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR)
    {
        return RespType::Meta;
    }
    let rcode = m.metadata.response_code;
    if !m.answers.is_empty() && rcode == ResponseCode::NoError {
        return RespType::NoError;
    }
    let soa = has_soa(m);
    let ns = m
        .authorities
        .iter()
        .any(|r| r.record_type() == RecordType::NS);
    if soa && rcode == ResponseCode::NoError {
        return RespType::NoData;
    }
    if soa && rcode == ResponseCode::NXDomain {
        return RespType::NameError;
    }
    if rcode == ResponseCode::ServFail {
        return RespType::ServerError;
    }
    if ns && rcode == ResponseCode::NoError {
        return RespType::Delegation;
    }
    if rcode == ResponseCode::NoError {
        return RespType::NoError;
    }
    RespType::OtherError
}

fn has_soa(m: &Message) -> bool {
    m.authorities
        .iter()
        .any(|r| r.record_type() == RecordType::SOA)
}
