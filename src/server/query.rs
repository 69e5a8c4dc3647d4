//! One query's way through the server: decode and validate the wire bytes, route to a zone, run
//! the plugin chain, and encode the reply (EDNS, ID, truncation). Transport-independent.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hickory_proto::op::{
    Edns, EdnsFlags, Header, Message, MessageType, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::plugin::{FastNext, Next};
use crate::server::request::{Outcome, Proto, Request};
use crate::server::router::{Block, Router};
use crate::server::view::{self, QueryView};
use crate::server::wire;

/// The UDP payload size exdns advertises (DNS flag day 2020).
pub const ADVERTISED_UDP_SIZE: u16 = 1232;

/// What the listener should do with a datagram or stream message.
pub enum Prepared {
    /// Reply at once with these bytes (errors found while decoding), or drop when `None`.
    Done(Option<Vec<u8>>),
    /// A valid query, routed: run this block's chain.
    Query(Box<Request>, Arc<Block>),
}

/// Decodes and validates `buf`; routes it. Never panics on any input.
///
/// The header is judged before anything else is decoded, by the rules of miekg/dns's default
/// accept function (what CoreDNS runs): fewer than 12 bytes or a response → no reply; an opcode
/// other than QUERY → NOTIMP; QDCOUNT ≠ 1, ANCOUNT > 1, NSCOUNT > 1 or ARCOUNT > 2 → FORMERR.
/// Then, as CoreDNS's server: an undecodable message → FORMERR, a class other than IN →
/// REFUSED, an EDNS version other than 0 → BADVERS.
pub fn prepare(
    router: &Arc<Router>,
    buf: &[u8],
    src: SocketAddr,
    local: SocketAddr,
    proto: Proto,
) -> Prepared {
    // A bug here must cost one query, not the listener: the panic is logged and counted, and
    // the message dropped.
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        prepare_inner(router, buf, src, local, proto)
    }))
    .unwrap_or_else(|_| {
        crate::metrics::PANICS.inc();
        tracing::error!("recovered from panic in server while decoding a query from {src}");
        Prepared::Done(None)
    })
}

fn prepare_inner(
    router: &Arc<Router>,
    buf: &[u8],
    src: SocketAddr,
    local: SocketAddr,
    proto: Proto,
) -> Prepared {
    let Ok(header) = Header::read(&mut BinDecoder::new(buf)) else {
        // Not even a header: nothing to answer to.
        return Prepared::Done(None);
    };
    if header.metadata.message_type == MessageType::Response {
        // Never answer responses (reflection loops).
        return Prepared::Done(None);
    }
    if header.metadata.op_code != OpCode::Query {
        return Prepared::Done(header_error(buf, &header, ResponseCode::NotImp));
    }
    let c = &header.counts;
    if c.queries != 1 || c.answers > 1 || c.authorities > 1 || c.additionals > 2 {
        return Prepared::Done(header_error(buf, &header, ResponseCode::FormErr));
    }
    let layout = wire::scan(buf);
    let lower = wire::plain_lower_qname(buf);
    // A dual-stack socket sees IPv4 clients as ::ffff:a.b.c.d; plugins (acl, whoami, metrics'
    // family) see the plain IPv4 address. Replies still go to the raw address.
    let src = SocketAddr::new(src.ip().to_canonical(), src.port());
    let local = SocketAddr::new(local.ip().to_canonical(), local.port());
    // Routed once: the fast path and the full path use the same route.
    let routed = lower.as_deref().map(|name| router.route(name));
    if let (Some(l), Some(name), Some(Some((zone, block)))) = (&layout, &lower, routed)
        && let Some(shape) = view::shape(buf, l)
    {
        let q = QueryView {
            buf,
            qname_end: l.qname_end,
            name,
            qtype: shape.qtype,
            edns: shape.edns,
            proto,
            src,
            server: &router.server,
            zone,
        };
        if let Some(reply) = FastNext::new(&block.chain).fast(&q) {
            return Prepared::Done(Some(reply.bytes));
        }
    }
    let decoded = match layout.and_then(|l| decode_laid_out(buf, &header, &l)) {
        Some(m) => Ok(m),
        None => Message::from_vec(buf),
    };
    let msg = match decoded {
        Ok(m) => m,
        Err(_) => return Prepared::Done(header_error(buf, &header, ResponseCode::FormErr)),
    };
    if msg.queries.len() != 1 {
        return Prepared::Done(encode_error(&msg, ResponseCode::FormErr));
    }
    if msg.queries[0].query_class() != DNSClass::IN {
        // CoreDNS without the chaos plugin (exdns has none) refuses every other class.
        return Prepared::Done(encode_error(&msg, ResponseCode::Refused));
    }
    if let Some(edns) = &msg.edns
        && edns.version() != 0
    {
        return Prepared::Done(encode_error(&msg, ResponseCode::BADVERS));
    }
    let mut req = match lower {
        Some(name) => Request::with_name(msg, name, src, local, proto, buf.len()),
        None => Request::new(msg, src, local, proto, buf.len()),
    };
    req.server = router.server.clone();
    // `req.name` is `lower` when there is one, already routed.
    match routed.unwrap_or_else(|| router.route(&req.name)) {
        Some((zone, block)) => {
            req.zone = zone.clone();
            let block = block.clone();
            Prepared::Query(Box::new(req), block)
        }
        None => Prepared::Done(encode_error(&req.msg, ResponseCode::Refused)),
    }
}

/// [`decode_laid_out`], scanning `buf` first.
#[cfg(test)]
pub(crate) fn decode_query(buf: &[u8], header: &Header) -> Option<Message> {
    decode_laid_out(buf, header, &wire::scan(buf)?)
}

/// The common query (laid out as `l`) decoded without hickory's general decoder: one question,
/// no records but an OPT record (its options decoded by hickory). `None` for anything else,
/// which `Message::from_vec` decodes.
fn decode_laid_out(buf: &[u8], header: &Header, l: &wire::Layout) -> Option<Message> {
    if l.an != 0 || l.ns != 0 || l.rrs.len() > usize::from(l.opt.is_some()) {
        return None;
    }
    // The question's name has no pointer (scan checked): it decodes on its own.
    let name = Name::read(&mut BinDecoder::new(&buf[wire::HEADER..l.qname_end])).ok()?;
    let mut msg = Message::new(
        header.metadata.id,
        header.metadata.message_type,
        header.metadata.op_code,
    );
    msg.metadata = header.metadata;
    let mut q = Query::query(name, RecordType::from(l.qtype));
    q.set_query_class(DNSClass::from(l.qclass));
    msg.queries.push(q);
    if let Some(i) = l.opt {
        let rr = l.rrs[i];
        if rr.rdata != rr.end {
            // Options (a cookie, from dig): hickory decodes the OPT record alone.
            let opt = Record::read(&mut BinDecoder::new(&buf[rr.start..rr.end])).ok()?;
            let e = Edns::from(&opt);
            // As hickory's decoder: the OPT record's high bits complete the header's rcode.
            msg.metadata.response_code =
                ResponseCode::from(e.rcode_high(), msg.metadata.response_code.low());
            msg.edns = Some(e);
            return Some(msg);
        }
        let ttl = rr.ttl(buf);
        let mut e = Edns::new();
        e.set_max_payload(wire::u16_at(buf, rr.ttl_at - 2));
        e.set_version((ttl >> 16) as u8);
        *e.flags_mut() = EdnsFlags::from(ttl as u16);
        e.set_rcode_high((ttl >> 24) as u8);
        msg.metadata.response_code =
            ResponseCode::from(e.rcode_high(), msg.metadata.response_code.low());
        msg.edns = Some(e);
    }
    Some(msg)
}

/// Runs the chain of the block `prepare` routed the query to and encodes the reply.
/// `None`: send nothing.
pub async fn run(req: Box<Request>, block: Arc<Block>) -> Option<Vec<u8>> {
    let outcome = CatchPanic(Next::new(&block.chain).serve(&req)).await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(()) => {
            crate::metrics::PANICS.inc();
            tracing::error!(
                "recovered from panic in server: {} {}",
                req.name,
                req.qtype()
            );
            Outcome::code(ResponseCode::ServFail, "")
        }
    };
    // Encoding is guarded as the chain is: a panic gives the client an empty SERVFAIL.
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        if let Outcome::Wire { bytes, .. } = outcome {
            return Some(crate::server::wire::fit(&req, bytes));
        }
        let msg = outcome.into_message(&req)?;
        Some(encode_reply(&req, msg))
    }))
    .unwrap_or_else(|_| {
        crate::metrics::PANICS.inc();
        tracing::error!(
            "recovered from panic in server: encoding the reply to {} {}",
            req.name,
            req.qtype()
        );
        std::panic::catch_unwind(AssertUnwindSafe(|| servfail_bytes(&req))).ok()
    })
}

/// Encodes `msg` as the reply to `req`: ID and opcode restored, the question echoed when the
/// plugin left it out, OPT per RFC 6891, truncated (TC, sections emptied) when it does not fit.
pub fn encode_reply(req: &Request, mut msg: Message) -> Vec<u8> {
    msg.metadata.id = req.msg.metadata.id;
    msg.metadata.message_type = MessageType::Response;
    msg.metadata.op_code = req.msg.metadata.op_code;
    if msg.queries.is_empty() {
        msg.queries = req.msg.queries.clone();
    }
    match &req.msg.edns {
        Some(qe) => {
            let mut e = msg.edns.take().unwrap_or_default();
            e.set_max_payload(ADVERTISED_UDP_SIZE);
            e.set_version(0);
            e.set_dnssec_ok(qe.flags().dnssec_ok);
            msg.edns = Some(e);
        }
        None => {
            msg.edns = None;
            if msg.metadata.response_code.high() > 0 {
                // An extended rcode cannot be expressed without OPT.
                msg.metadata.response_code = ResponseCode::ServFail;
            }
        }
    }
    // Additional records of type OPT would duplicate the EDNS record.
    msg.additionals
        .retain(|r| r.record_type() != hickory_proto::rr::RecordType::OPT);
    let max = req.reply_limit();
    match to_wire(&msg) {
        Ok(bytes) if bytes.len() <= max => bytes,
        Ok(_) => {
            msg.metadata.truncation = true;
            msg.answers.clear();
            msg.authorities.clear();
            msg.additionals.clear();
            to_wire(&msg).unwrap_or_else(|_| servfail_bytes(req))
        }
        Err(e) => {
            tracing::error!("cannot encode reply to {} {}: {e}", req.name, req.qtype());
            servfail_bytes(req)
        }
    }
}

/// `msg` in wire form: exdns's own encoder for what it covers, else hickory's.
pub fn to_wire(msg: &Message) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    match crate::server::wire::encode::encode(msg) {
        Some(bytes) => Ok(bytes),
        None => msg.to_vec(),
    }
}

fn servfail_bytes(req: &Request) -> Vec<u8> {
    encode_error(&req.msg, ResponseCode::ServFail).unwrap_or_default()
}

/// An empty reply to a decoded query with `rcode` (question echoed, OPT when the query had one).
pub fn encode_error(query: &Message, rcode: ResponseCode) -> Option<Vec<u8>> {
    let mut m = crate::server::request::reply_to(query);
    m.metadata.response_code = rcode;
    if query.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(ADVERTISED_UDP_SIZE);
        e.set_version(0);
        m.edns = Some(e);
    } else if rcode.high() > 0 {
        m.metadata.response_code = ResponseCode::ServFail;
    }
    if m.queries.len() > 1 {
        m.queries.truncate(1);
    }
    to_wire(&m).ok()
}

/// An empty reply with `rcode` to a message judged by its `header` alone: the header's ID,
/// opcode, RD and CD, and the question when there is exactly one and it decodes (as
/// miekg/dns-based servers answer).
fn header_error(buf: &[u8], header: &Header, rcode: ResponseCode) -> Option<Vec<u8>> {
    let mut m = Message::new(
        header.metadata.id,
        MessageType::Response,
        header.metadata.op_code,
    );
    m.metadata.recursion_desired = header.metadata.recursion_desired;
    m.metadata.checking_disabled = header.metadata.checking_disabled;
    m.metadata.response_code = rcode;
    let mut d = BinDecoder::new(buf);
    if header.counts.queries == 1
        && Header::read(&mut d).is_ok()
        && let Ok(q) = Query::read(&mut d)
    {
        m.queries.push(q);
    }
    m.to_vec().ok()
}

/// Polls a future, turning a panic into `Err(())` so one bad query never takes a task down.
struct CatchPanic<F>(F);

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, ()>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of the only field; it is never moved out.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

/// Polls `fut` once; if it is already complete returns its output, else hands the future back
/// so the caller can spawn it. Most authoritative and cached answers complete on the first poll,
/// which saves a task spawn per query.
pub fn try_now<F: Future + Unpin>(mut fut: F) -> Result<F::Output, F> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match Pin::new(&mut fut).poll(&mut cx) {
        Poll::Ready(v) => Ok(v),
        Poll::Pending => Err(fut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every query `dig` and `kdig` sent with many options (the fuzz seeds): the fast decoder
    /// gives exactly what hickory's decoder gives, or leaves the query to it.
    #[test]
    fn decode_query_agrees_with_hickory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/query");
        let (mut fast, mut total) = (0, 0);
        for entry in std::fs::read_dir(dir).unwrap() {
            let buf = std::fs::read(entry.unwrap().path()).unwrap();
            let Ok(header) = Header::read(&mut BinDecoder::new(&buf)) else {
                continue;
            };
            total += 1;
            if let Some(m) = decode_query(&buf, &header) {
                fast += 1;
                let h = Message::from_vec(&buf).expect("hickory decodes what the scan accepts");
                assert_eq!(m, h, "{buf:?}");
            }
        }
        assert!(
            total > 500 && fast > total / 2,
            "{fast} of {total} decoded fast"
        );
    }
}
