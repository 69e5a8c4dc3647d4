//! `whoami`: answers every query with the client's address, port and transport (CoreDNS's
//! default plugin). The reply has an empty answer section; the additional section holds an A or
//! AAAA record of the client address owned by the qname and an SRV record `_udp.QNAME` /
//! `_tcp.QNAME` whose port is the client's port, all with TTL 0, AA set.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use std::net::IpAddr;

use async_trait::async_trait;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record};

use crate::dns::request::{Outcome, Request};
use crate::plugin::util::qname_as_sent;
use crate::plugin::{Next, Plugin};

pub const NAME: &str = "whoami";

/// The `whoami` handler. It never calls the next plugin.
#[derive(Debug, Default)]
pub struct Whoami;

#[async_trait]
impl Plugin for Whoami {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, _next: Next<'_>) -> Outcome {
        match answer(req) {
            Some(msg) => Outcome::reply(msg, NAME),
            // Only when `_udp.` + qname exceeds 255 octets; CoreDNS fails to pack that reply.
            None => Outcome::code(ResponseCode::ServFail, NAME),
        }
    }
}

/// Builds the whoami reply for `req`; `None` when the SRV owner name would be too long.
pub fn answer(req: &Request) -> Option<Message> {
    let mut m = req.reply();
    m.metadata.authoritative = true;

    // The qname as the client spelled it (case preserved), like CoreDNS's state.QName().
    let qname = qname_as_sent(req);
    let class = req.qclass();

    // A v4-mapped IPv6 peer (dual-stack socket) is an IPv4 client, as Go's To4() sees it.
    let ip = match req.src.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    let mut addr = match ip {
        IpAddr::V4(v4) => Record::from_rdata(qname.clone(), 0, RData::A(A(v4))),
        IpAddr::V6(v6) => Record::from_rdata(qname.clone(), 0, RData::AAAA(AAAA(v6))),
    };
    addr.dns_class = class;

    // As CoreDNS's `state.Proto()`: DoH is `tcp`, DoQ and DoH3 `udp`.
    let label: &[u8] = if req.proto.as_str() == "tcp" {
        b"_tcp"
    } else {
        b"_udp"
    };
    let owner = qname.prepend_label(label).ok()?;
    let mut srv = Record::from_rdata(
        owner,
        0,
        RData::SRV(SRV::new(0, 0, req.src.port(), Name::root())),
    );
    srv.dns_class = class;

    m.additionals = vec![addr, srv];
    Some(m)
}
