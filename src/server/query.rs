//! One query's way through the server: decode and validate the wire bytes, route to a zone, run
//! the plugin chain, and encode the reply (EDNS, ID, truncation). Transport-independent.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hickory_proto::op::{Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::DNSClass;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::dns::cookie::{self, Cookies, ReplyCookie, Verdict};
use crate::dns::decode::decode_laid_out;
use crate::dns::reply::{encode_error, encode_reply, servfail_bytes};
use crate::dns::request::{Outcome, Proto, Request};
use crate::dns::view::{self, QueryView};
use crate::dns::wire;
use crate::plugin::config::CookiePolicy;
use crate::plugin::view::Facts;
use crate::plugin::{FastNext, Next};
use crate::server::router::{Block, Router};

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
/// REFUSED (unless the listener routes them: `Router::class_chaos`), an EDNS version other than
/// 0 → BADVERS.
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
    // NOTIFY (RFC 1996) is accepted as miekg/dns accepts it; a block without a plugin that
    // takes it answers NOTAUTH below.
    let notify = header.metadata.op_code == OpCode::Notify;
    if header.metadata.op_code != OpCode::Query && !notify {
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
    // Routed once: the fast path and the full path use the same route (views included).
    let routed = match (&layout, lower.as_deref()) {
        (Some(l), Some(name)) => Some(router.route(&wire_facts(buf, l, name, src, local, proto))),
        _ => None,
    };
    let verdict = match (&layout, routed) {
        (Some(l), Some(Some((_, block)))) => judge_cookie(block, buf, l, src, proto),
        _ => Verdict::None,
    };
    let cookie = match verdict {
        Verdict::Malformed => {
            return Prepared::Done(header_error(buf, &header, ResponseCode::FormErr));
        }
        Verdict::Answer(c) => Some(c),
        Verdict::None | Verdict::BadCookie(_) => None,
    };
    if let (Some(l), Some(name), Some(Some((zone, block)))) = (&layout, &lower, routed)
        && !matches!(verdict, Verdict::BadCookie(_))
        && !notify
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
            cookie,
        };
        if let Some(reply) = FastNext::new(&block.chain).fast(&q) {
            return Prepared::Done(Some(with_cookie(reply.bytes, cookie.as_ref())));
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
    if msg.queries[0].query_class() != DNSClass::IN && !router.class_chaos {
        // As CoreDNS: every other class is refused unless a block on this listener has `chaos`
        // or `forward`; then it is routed by name like IN, and each plugin handles it or not.
        return Prepared::Done(encode_error(&msg, ResponseCode::Refused));
    }
    if let Verdict::BadCookie(c) = verdict {
        // RFC 7873 §5.2.3: a bad server cookie over UDP; the client retries with this one.
        let reply = encode_error(&msg, ResponseCode::BADCOOKIE);
        return Prepared::Done(reply.map(|b| with_cookie(b, Some(&c))));
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
    req.cookie = cookie;
    if req.is_tsig_signed() {
        // The tsig plugin verifies the MAC over the bytes as received; only signed queries
        // pay for the copy.
        req.wire = Some(Arc::from(buf));
    }
    // `req.name` is `lower` when there is one, already routed.
    match routed.unwrap_or_else(|| router.route(&request_facts(&req))) {
        // A zone defined without plugins: REFUSED, as CoreDNS.
        Some((_, block)) if block.chain.is_empty() => {
            Prepared::Done(encode_error(&req.msg, ResponseCode::Refused))
        }
        Some((_, block)) if notify && !block.chain.iter().any(|p| p.accepts_notify()) => {
            Prepared::Done(encode_error(&req.msg, ResponseCode::NotAuth))
        }
        Some((zone, block)) => {
            req.zone = zone.clone();
            let block = block.clone();
            Prepared::Query(Box::new(req), block)
        }
        None => Prepared::Done(encode_error(&req.msg, ResponseCode::Refused)),
    }
}

/// What views may ask of a query, read from its wire form.
fn wire_facts<'a>(
    buf: &[u8],
    l: &wire::Layout,
    name: &'a str,
    src: SocketAddr,
    local: SocketAddr,
    proto: Proto,
) -> Facts<'a> {
    let edns = l.opt.and_then(|i| {
        let at = l.rrs.get(i)?.ttl_at;
        let size = u16::from_be_bytes([*buf.get(at.checked_sub(2)?)?, *buf.get(at - 1)?]);
        let dnssec_ok = buf.get(at + 2)? & 0x80 != 0;
        Some((size, dnssec_ok))
    });
    Facts {
        name,
        qtype: l.qtype,
        qclass: l.qclass,
        src,
        local,
        proto,
        size: buf.len(),
        id: u16::from_be_bytes([buf[0], buf[1]]),
        opcode: (buf[2] >> 3) & 0x0f,
        edns,
    }
}

/// What views may ask of a decoded query (whose name did not take the wire's fast route).
fn request_facts(req: &Request) -> Facts<'_> {
    let q = req.msg.queries.first();
    Facts {
        name: &req.name,
        qtype: q.map_or(0, |q| u16::from(q.query_type())),
        qclass: q.map_or(0, |q| u16::from(q.query_class())),
        src: req.src,
        local: req.local,
        proto: req.proto,
        size: req.size,
        id: req.msg.metadata.id,
        opcode: u8::from(req.msg.metadata.op_code),
        edns: req
            .msg
            .edns
            .as_ref()
            .map(|e| (e.max_payload(), e.flags().dnssec_ok)),
    }
}

/// The cookie policy of a block without a `cookie` directive: this process's random secret.
static DEFAULT_COOKIES: std::sync::LazyLock<Cookies> = std::sync::LazyLock::new(Cookies::random);

/// What the query's COOKIE option (in its OPT record) is worth to `block`.
fn judge_cookie(
    block: &Block,
    buf: &[u8],
    l: &wire::Layout,
    src: SocketAddr,
    proto: Proto,
) -> Verdict {
    let Some(i) = l.opt else {
        return Verdict::None;
    };
    let cookies = match &block.config.cookie {
        CookiePolicy::Off => return Verdict::None,
        CookiePolicy::Default => &*DEFAULT_COOKIES,
        CookiePolicy::On(c) => c,
    };
    let rdata = &buf[l.rrs[i].rdata..l.rrs[i].end];
    let verdict = cookies.judge(rdata, src.ip(), !proto.is_stream());
    let outcome = match verdict {
        Verdict::None => return verdict,
        Verdict::Malformed => 0,
        Verdict::BadCookie(_) => 1,
        Verdict::Answer(c) if c.valid => 2,
        Verdict::Answer(_)
            if cookie::find_option(rdata, cookie::COOKIE).is_some_and(|o| o.len() > 8) =>
        {
            3
        }
        Verdict::Answer(_) => 4,
    };
    COOKIE_OUTCOMES[outcome].inc();
    verdict
}

/// `exdns_dns_cookies_total{outcome}`: queries with a COOKIE option, by what it was worth.
static COOKIE_OUTCOMES: std::sync::LazyLock<[prometheus::IntCounter; 5]> = std::sync::LazyLock::new(
    || {
        let v = crate::metrics::counter_vec(
            "exdns_dns_cookies_total",
            "Queries with a DNS cookie, by outcome: malformed (FORMERR), badcookie (BADCOOKIE over UDP), valid, invalid (a fresh cookie given), new (a client cookie alone).",
            &["outcome"],
        );
        ["malformed", "badcookie", "valid", "invalid", "new"].map(|o| v.with_label_values(&[o]))
    },
);

/// `reply` with the query's cookie in its OPT record.
fn with_cookie(mut reply: Vec<u8>, cookie: Option<&ReplyCookie>) -> Vec<u8> {
    if let Some(c) = cookie {
        cookie::put_cookie(&mut reply, c);
    }
    reply
}

/// What a query gets back over a stream: one message, or a zone transfer's messages.
pub enum Reply {
    One(Vec<u8>),
    Stream(tokio::sync::mpsc::Receiver<Vec<u8>>),
}

/// [`run`] for a stream transport: a transfer's messages stream back.
pub async fn run_stream(req: Box<Request>, block: Arc<Block>) -> Option<Reply> {
    run_inner(req, block).await
}

/// Runs the chain of the block `prepare` routed the query to and encodes the reply.
/// `None`: send nothing.
pub async fn run(req: Box<Request>, block: Arc<Block>) -> Option<Vec<u8>> {
    match run_inner(req, block).await? {
        Reply::One(bytes) => Some(bytes),
        // Never produced for datagrams (see `run_inner`).
        Reply::Stream(_) => None,
    }
}

async fn run_inner(req: Box<Request>, block: Arc<Block>) -> Option<Reply> {
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
        // `bufsize` holds the whole reply to its size, with what the plugins before it in the
        // chain added (nsid), as CoreDNS's in-place change of the request does.
        let fit_to = match block.config.bufsize {
            Some(size) => crate::plugin::bufsize::clamp(&req, size),
            None => std::borrow::Cow::Borrowed(&*req),
        };
        let bytes = match outcome {
            Outcome::Wire { bytes, .. } => crate::dns::wire::fit(&fit_to, bytes),
            Outcome::Transfer { messages, .. } if req.proto.is_stream() => {
                return Some(Reply::Stream(messages));
            }
            // A transfer never goes back over UDP.
            Outcome::Transfer { .. } => servfail_bytes(&req),
            outcome => encode_reply(&fit_to, outcome.into_message(&req)?),
        };
        Some(Reply::One(with_cookie(bytes, req.cookie.as_ref())))
    }))
    .unwrap_or_else(|_| {
        crate::metrics::PANICS.inc();
        tracing::error!(
            "recovered from panic in server: encoding the reply to {} {}",
            req.name,
            req.qtype()
        );
        std::panic::catch_unwind(AssertUnwindSafe(|| servfail_bytes(&req)))
            .ok()
            .map(Reply::One)
    })
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
