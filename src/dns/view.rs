//! The fast path: a query in its common shape, read in place from the wire, offered to the
//! block's chain before a [`Request`](crate::dns::request::Request) is built.
//!
//! Most queries have one shape: one question of class IN, no records but an OPT record of
//! version 0 (with no options, or a cookie or padding). For those the server builds a
//! [`QueryView`] over the datagram and calls [`Plugin::fast`](crate::plugin::Plugin::fast) along
//! the chain. A plugin that can answer from what it holds, without waiting (a cache hit), returns
//! the finished reply; a plugin that is transparent for such answers (errors, prometheus) passes
//! the view on; every other plugin returns `None` and the query takes the full path, decoded
//! into a `Request`, as if the fast path did not exist. The contract that keeps both paths
//! identical: a plugin returning `None` has done nothing (no counter, no state change), and a
//! reply from the fast path is byte for byte what the full path would have sent.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::dns::cookie::ReplyCookie;
use crate::dns::request::{Proto, cookie_room};
use crate::dns::wire::{self, HEADER, Layout};

/// The EDNS parts of a query that a reply depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewEdns {
    /// The client's UDP payload size, as sent.
    pub udp_size: u16,
    /// The DNSSEC OK bit.
    pub dnssec_ok: bool,
}

/// A query of the common shape, in place.
#[derive(Debug)]
pub struct QueryView<'a> {
    /// The query as received.
    pub buf: &'a [u8],
    /// End of the question's name in `buf` (it starts at [`HEADER`]).
    pub qname_end: usize,
    /// The question's name, lower case and absolute (`www.example.org.`).
    pub name: &'a str,
    pub qtype: RecordType,
    /// `None` when the query had no OPT record.
    pub edns: Option<ViewEdns>,
    pub proto: Proto,
    /// The client (IPv4-mapped addresses as plain IPv4, as plugins see them).
    pub src: SocketAddr,
    /// CoreDNS's `server` label of the listener.
    pub server: &'a Arc<str>,
    /// The server block's zone the name was routed to.
    pub zone: &'a Arc<str>,
    /// The cookie the server writes into the reply (see `Request::cookie`).
    pub cookie: Option<ReplyCookie>,
}

/// The parts of a query [`shape`] checked, before routing.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub qtype: RecordType,
    pub edns: Option<ViewEdns>,
}

/// Whether the query `buf` (laid out as `layout`, its header already judged a QUERY with one
/// question) has the common shape: class IN, no answer or authority record, at most one
/// additional record, an OPT of version 0 whose options are only cookies or padding.
pub fn shape(buf: &[u8], layout: &Layout) -> Option<Shape> {
    if layout.qclass != 1 || layout.an != 0 || layout.ns != 0 {
        return None;
    }
    let edns = match (layout.opt, layout.rrs.len()) {
        (None, 0) => None,
        (Some(0), 1) => {
            let rr = layout.rrs[0];
            let ttl = rr.ttl(buf);
            if (ttl >> 16) as u8 != 0 || !plain_options(&buf[rr.rdata..rr.end]) {
                return None;
            }
            Some(ViewEdns {
                udp_size: wire::u16_at(buf, rr.ttl_at - 2),
                dnssec_ok: ttl & 0x8000 != 0,
            })
        }
        _ => return None,
    };
    Some(Shape {
        qtype: RecordType::from(layout.qtype),
        edns,
    })
}

/// EDNS option codes a fast-path query may carry: they change nothing in a reply.
const COOKIE: u16 = 10;
const PADDING: u16 = 12;

/// Whether `rdata` is a well-formed list of cookie and padding options (or empty).
fn plain_options(rdata: &[u8]) -> bool {
    let mut at = 0;
    while at < rdata.len() {
        if at + 4 > rdata.len() {
            return false;
        }
        let code = wire::u16_at(rdata, at);
        let len = wire::u16_at(rdata, at + 2) as usize;
        if !matches!(code, COOKIE | PADDING) || at + 4 + len > rdata.len() {
            return false;
        }
        at += 4 + len;
    }
    true
}

impl QueryView<'_> {
    fn flags(&self) -> u16 {
        wire::flags(self.buf)
    }
    pub fn id(&self) -> u16 {
        wire::u16_at(self.buf, 0)
    }
    pub fn recursion_desired(&self) -> bool {
        self.flags() & wire::RD != 0
    }
    pub fn checking_disabled(&self) -> bool {
        self.flags() & wire::CD != 0
    }
    pub fn authentic_data(&self) -> bool {
        self.flags() & wire::AD != 0
    }
    pub fn do_bit(&self) -> bool {
        self.edns.is_some_and(|e| e.dnssec_ok)
    }
    /// The question's name as the client wrote it, in wire form.
    pub fn qname_wire(&self) -> &[u8] {
        &self.buf[HEADER..self.qname_end]
    }
    /// The client's advertised UDP payload size (512 without EDNS, never below 512).
    pub fn udp_size(&self) -> u16 {
        self.edns.map_or(512, |e| e.udp_size.max(512))
    }
    /// The largest reply a plugin may give this client (as `Request::reply_limit`).
    pub fn reply_limit(&self) -> usize {
        cookie_room(
            self.proto.reply_limit(self.udp_size()),
            self.cookie.as_ref(),
        )
    }
}

/// A reply from the fast path: the bytes to send (finished for the client, within its size)
/// and, for the metrics, its rcode and the plugin that wrote it.
#[derive(Debug)]
pub struct FastReply {
    pub bytes: Vec<u8>,
    pub rcode: ResponseCode,
    pub plugin: &'static str,
}

/// Builds the view of `buf` as the server does (server `dns://:53`, zone `.`) and hands it to
/// `f`; `None` when the query does not have the fast path's shape.
#[cfg(test)]
pub(crate) fn with_view<R>(
    buf: &[u8],
    proto: Proto,
    f: impl FnOnce(&QueryView<'_>) -> R,
) -> Option<R> {
    let l = wire::scan(buf)?;
    let sh = shape(buf, &l)?;
    let name = wire::plain_lower_qname(buf)?;
    let (server, zone): (Arc<str>, Arc<str>) = (Arc::from("dns://:53"), Arc::from("."));
    Some(f(&QueryView {
        buf,
        qname_end: l.qname_end,
        name: &name,
        qtype: sh.qtype,
        edns: sh.edns,
        proto,
        src: SocketAddr::from(([192, 0, 2, 200], 5353)),
        server: &server,
        zone: &zone,
        cookie: None,
    }))
}
