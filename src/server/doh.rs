//! DNS over HTTPS (RFC 8484) without the HTTP: what a request's method, path, query string,
//! content type and body make of it (a DNS message, or the HTTP status to answer with), the
//! query's way through the router and chain, and the reply's `Cache-Control: max-age`. Shared
//! by the HTTP/2 + HTTP/1.1 server ([`crate::server::https`]) and the HTTP/3 one.
//!
//! As CoreDNS's `core/dnsserver/server_https.go` and `plugin/pkg/doh`: the path is
//! `/dns-query` (anything else 404), GET carries the message as `?dns=` in unpadded base64url,
//! POST as the body; a message miekg/dns's accept function rejects, or one that does not
//! decode, is a 400; a query the chain leaves unanswered a 500. Stricter than CoreDNS where RFC
//! 8484 and RFC 9110 name a status: another method is a 405 (CoreDNS: 400), a POST body of
//! another media type a 415 (CoreDNS reads it anyway) and one over 65535 octets a 413 (CoreDNS:
//! 400).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine;
use bytes::Bytes;
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;
use hyper::Response;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};

use crate::dns::request::Proto;
use crate::dns::wire;
use crate::server::conns::{ConnState, ConnTable};
use crate::server::query::{self, Prepared};
use crate::server::router::Router;
use crate::server::tracker::Tracker;

/// CoreDNS's `doh.Path`.
pub const PATH: &str = "/dns-query";
/// CoreDNS's `doh.MimeType`.
pub const MIME: &str = "application/dns-message";
/// The largest DNS message: a POST body beyond it is refused with 413.
pub const MAX_MESSAGE: usize = 65535;
/// The longest `dns` parameter CoreDNS decodes (`maxBase64Len`: a 65536-octet message).
pub const MAX_BASE64: usize = (65536 * 8usize).div_ceil(6);
/// The largest request head (request line or pseudo-headers plus headers) a client may send:
/// room for the longest `?dns=` CoreDNS takes, and no more.
pub const MAX_HEAD: usize = 96 * 1024;

pub const BAD_REQUEST: u16 = 400;
pub const NOT_FOUND: u16 = 404;
pub const METHOD_NOT_ALLOWED: u16 = 405;
pub const PAYLOAD_TOO_LARGE: u16 = 413;
pub const UNSUPPORTED_MEDIA_TYPE: u16 = 415;
pub const INTERNAL_ERROR: u16 = 500;

/// What a request's head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// A GET: the DNS message, decoded from `?dns=` (still to be checked with [`check_wire`]).
    Get(Vec<u8>),
    /// A POST of `application/dns-message`: read the body (at most [`MAX_MESSAGE`] octets), then
    /// [`check_body`].
    Post,
}

/// Judges a request's head. `query` is the URI's query string without `?`; `content_length`
/// the declared body length, if any.
pub fn head(
    method: &str,
    path: &str,
    query: Option<&str>,
    content_type: Option<&[u8]>,
    content_length: Option<u64>,
) -> Result<Head, u16> {
    if path != PATH {
        return Err(NOT_FOUND);
    }
    match method {
        "GET" => {
            let mut found = None;
            for pair in query.unwrap_or("").split('&') {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if k != "dns" {
                    continue;
                }
                if found.is_some() {
                    // CoreDNS: "multiple 'dns' query values found".
                    return Err(BAD_REQUEST);
                }
                found = Some(v);
            }
            let b64 = found.ok_or(BAD_REQUEST)?;
            if b64.is_empty() || b64.len() > MAX_BASE64 {
                return Err(BAD_REQUEST);
            }
            // base64url needs no percent-encoding; a client that encoded it anyway is served.
            let b64 = percent_decode(b64).ok_or(BAD_REQUEST)?;
            let wire = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b64.as_bytes())
                .map_err(|_| BAD_REQUEST)?;
            Ok(Head::Get(wire))
        }
        "POST" => {
            if !content_type.is_some_and(is_dns_message) {
                return Err(UNSUPPORTED_MEDIA_TYPE);
            }
            if content_length.is_some_and(|n| n > MAX_MESSAGE as u64) {
                return Err(PAYLOAD_TOO_LARGE);
            }
            Ok(Head::Post)
        }
        _ => Err(METHOD_NOT_ALLOWED),
    }
}

/// [`head`] of an HTTP request (any version): its method, URI, `Content-Type` and
/// `Content-Length`.
pub fn request_head(
    method: &hyper::Method,
    uri: &hyper::Uri,
    headers: &hyper::HeaderMap,
) -> Result<Head, u16> {
    if method == hyper::Method::GET {
        // A GET's headers say nothing the answer depends on (two map lookups saved per query).
        return head("GET", uri.path(), uri.query(), None, None);
    }
    let content_length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    head(
        method.as_str(),
        uri.path(),
        uri.query(),
        headers.get(CONTENT_TYPE).map(|v| v.as_bytes()),
        content_length,
    )
}

/// A POST body, read to its end (or to one octet past [`MAX_MESSAGE`]).
pub fn check_body(body: Vec<u8>) -> Result<Vec<u8>, u16> {
    if body.len() > MAX_MESSAGE {
        return Err(PAYLOAD_TOO_LARGE);
    }
    check_wire(&body)?;
    Ok(body)
}

/// 400 for a message CoreDNS's `dnsutil.UnpackRequest` refuses: a header miekg/dns's default
/// accept function does not accept (shorter than a header, a response, an opcode other than
/// QUERY or NOTIFY, QDCOUNT ≠ 1, ANCOUNT > 1, NSCOUNT > 1, ARCOUNT > 2), or a message that does
/// not decode.
pub fn check_wire(buf: &[u8]) -> Result<(), u16> {
    if buf.len() < wire::HEADER {
        return Err(BAD_REQUEST);
    }
    let count = |at: usize| u16::from_be_bytes([buf[at], buf[at + 1]]);
    let qr = buf[2] & 0x80 != 0;
    let opcode = (buf[2] >> 3) & 0xf;
    if qr
        || !matches!(opcode, 0 | 4)
        || count(4) != 1
        || count(6) > 1
        || count(8) > 1
        || count(10) > 2
    {
        return Err(BAD_REQUEST);
    }
    // The laid-out scan accepts what the server decodes; only what it cannot lay out is
    // decoded in full to judge it.
    if wire::scan(buf).is_none() && Message::from_vec(buf).is_err() {
        return Err(BAD_REQUEST);
    }
    Ok(())
}

/// `Content-Type: application/dns-message`, parameters allowed, case-insensitive.
fn is_dns_message(ct: &[u8]) -> bool {
    let media = ct.split(|&b| b == b';').next().unwrap_or(b"");
    media.trim_ascii().eq_ignore_ascii_case(MIME.as_bytes())
}

/// `%XX` escapes decoded; `None` for a malformed escape. Borrowed when there is none.
fn percent_decode(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !s.contains('%') {
        return Some(std::borrow::Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(std::borrow::Cow::Owned)
}

/// The `Cache-Control: max-age` of a reply, as CoreDNS computes it
/// (`dnsutil.MinimalTTLWithMaximum(msg, response.Typify(msg), 1h)`): the lowest TTL of the
/// answer, authority and additional records (OPT aside), at most 3600; 5 for a reply that is not
/// NOERROR, NXDOMAIN or NODATA (SERVFAIL, REFUSED, a delegation…) and for one without records.
pub fn max_age(reply: &[u8]) -> u32 {
    use crate::plugin::response::{RespType, Shape, classify};
    const MINIMAL: u32 = 5;
    const MAXIMUM: u32 = 3600;
    // One pass over the records, nothing allocated: this runs for every answer.
    let walk = || -> Option<u32> {
        if reply.len() < wire::HEADER || wire::u16_at(reply, 4) != 1 {
            return None;
        }
        let count = |at: usize| wire::u16_at(reply, at) as usize;
        let (an, ns, ar) = (count(6), count(8), count(10));
        let mut at = wire::skip_name(reply, wire::HEADER)?;
        let qtype = wire::u16_at(reply.get(..at + 4)?, at);
        at += 4;
        let (mut lowest, mut soa, mut delegation, mut high) = (None::<u32>, false, false, 0);
        for i in 0..an + ns + ar {
            at = wire::skip_name(reply, at)?;
            let fixed = reply.get(at..at + 10)?;
            let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
            let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
            if rtype == wire::T_OPT {
                high = fixed[4];
            } else {
                lowest = Some(lowest.map_or(ttl, |l| l.min(ttl)));
            }
            if (an..an + ns).contains(&i) {
                soa |= rtype == wire::T_SOA;
                delegation |= rtype == wire::T_NS;
            }
            at += 10 + u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        }
        if at > reply.len() {
            return None;
        }
        let t = classify(Shape {
            op_code: OpCode::from_u8(((wire::flags(reply) >> 11) & 0xf) as u8),
            qtype: Some(RecordType::from(qtype)),
            rcode: ResponseCode::from(high, wire::header_rcode(reply) as u8),
            has_answers: an > 0,
            soa,
            ns: delegation,
        });
        matches!(
            t,
            RespType::NoError | RespType::NameError | RespType::NoData
        )
        .then(|| lowest.map_or(MINIMAL, |l| l.min(MAXIMUM)))
    };
    walk().unwrap_or(MINIMAL)
}

/// Where a DoH query comes from and arrives at.
pub struct Peer {
    pub src: SocketAddr,
    pub local: SocketAddr,
    pub proto: Proto,
}

/// Runs a checked DNS message through the listener's router and chain (the fast path first, as
/// for TCP). `Err(500)` when the chain leaves the query unanswered (CoreDNS: "No response").
pub async fn answer(
    router: &Arc<ArcSwap<Router>>,
    tracker: &Arc<Tracker>,
    wire: &[u8],
    peer: &Peer,
) -> Result<Vec<u8>, u16> {
    match answer_now(router, tracker, wire, peer) {
        Ok(reply) => reply,
        Err(later) => later.await,
    }
}

/// [`answer`] without waiting: the reply when the fast path or a chain that never waits gives
/// it at once, else the future that will (holding the tracker's guard).
pub fn answer_now(
    router: &Arc<ArcSwap<Router>>,
    tracker: &Arc<Tracker>,
    wire: &[u8],
    peer: &Peer,
) -> Result<Result<Vec<u8>, u16>, impl Future<Output = Result<Vec<u8>, u16>> + Send + 'static> {
    // The guard is released before anything awaits.
    let prepared = query::prepare(&router.load(), wire, peer.src, peer.local, peer.proto);
    match prepared {
        Prepared::Done(Some(bytes)) => Ok(Ok(bytes)),
        Prepared::Done(None) => Ok(Err(INTERNAL_ERROR)),
        Prepared::Query(req, block) => {
            let guard = tracker.start();
            match query::try_now(Box::pin(query::run(req, block))) {
                Ok(reply) => Ok(reply.ok_or(INTERNAL_ERROR)),
                Err(fut) => Err(async move {
                    let _guard = guard;
                    fut.await.ok_or(INTERNAL_ERROR)
                }),
            }
        }
    }
}

/// How much of a refused or oversized request body is read and thrown away so the client sees
/// the status rather than a reset.
pub const DRAIN_MAX: usize = 256 * 1024;

/// What the requests of one DoH connection (HTTP/2 or HTTP/1.1) share.
pub struct Ctx {
    pub router: Arc<ArcSwap<Router>>,
    pub tracker: Arc<Tracker>,
    pub peer: Peer,
    pub read_timeout: Duration,
    pub state: Arc<ConnState>,
    pub table: Arc<ConnTable>,
    /// Requests being served on this connection.
    in_flight: AtomicUsize,
    /// `coredns_dns_https_responses_total{server,status="200"}`, looked up once.
    ok: prometheus::IntCounter,
}

impl Ctx {
    pub fn new(
        router: Arc<ArcSwap<Router>>,
        tracker: Arc<Tracker>,
        peer: Peer,
        read_timeout: Duration,
        state: Arc<ConnState>,
        table: Arc<ConnTable>,
    ) -> Self {
        let ok = crate::metrics::HTTPS_RESPONSES
            .with_label_values(&[router.load().server.as_ref(), status_label(200)]);
        Ctx {
            router,
            tracker,
            peer,
            read_timeout,
            state,
            table,
            in_flight: AtomicUsize::new(0),
            ok,
        }
    }

    /// A request's head arrived.
    pub fn begin(&self) {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.state.active(&self.table);
        }
        self.state.query_started();
    }

    /// Its reply is queued.
    pub fn end(&self) {
        self.state.query_done();
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.state.active(&self.table);
            self.state.wait();
        }
    }

    /// Requests arrived and were answered at once (never in flight): the connection is active
    /// now, and waits for the next message unless others are in flight.
    pub fn touch(&self) {
        self.state.active(&self.table);
        if self.idle() {
            self.state.wait();
        }
    }

    /// No request in flight.
    pub fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    pub fn count_ok(&self) {
        self.ok.inc();
    }

    /// Counts a reply by its status.
    pub fn count(&self, status: u16) {
        if status == 200 {
            return self.count_ok();
        }
        let server = &self.router.load().server;
        crate::metrics::HTTPS_RESPONSES
            .with_label_values(&[server.as_ref(), status_label(status)])
            .inc();
    }
}

/// An error reply's head.
pub fn error_head(status: u16) -> Response<()> {
    let mut b = Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("x-content-type-options", "nosniff");
    if status == METHOD_NOT_ALLOWED {
        b = b.header(hyper::header::ALLOW, "GET, POST");
    }
    b.body(()).unwrap_or_default()
}

/// An error reply's body.
pub fn error_bytes(status: u16) -> Bytes {
    Bytes::from_static(error_body(status).as_bytes())
}

/// A status as the `status` label of the DoH response counters.
pub fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        BAD_REQUEST => "400",
        NOT_FOUND => "404",
        METHOD_NOT_ALLOWED => "405",
        PAYLOAD_TOO_LARGE => "413",
        UNSUPPORTED_MEDIA_TYPE => "415",
        INTERNAL_ERROR => "500",
        _ => "other",
    }
}

/// The text of an error reply's body, as Go's `http.Error` writes CoreDNS's.
pub fn error_body(status: u16) -> &'static str {
    match status {
        BAD_REQUEST => "invalid request\n",
        INTERNAL_ERROR => "No response\n",
        METHOD_NOT_ALLOWED => "method not allowed\n",
        PAYLOAD_TOO_LARGE => "request body too large\n",
        UNSUPPORTED_MEDIA_TYPE => "unsupported media type\n",
        _ => "\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for example.org. A, ID 0x1234.
    fn query() -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x07example\x03org\x00\x00\x01\x00\x01");
        q
    }

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    #[test]
    fn heads() {
        let q = query();
        let dns = format!("dns={}", b64(&q));
        let padded = format!("dns={}=", b64(&q[..13]));
        let twice = format!("{dns}&{dns}");
        let other_first = format!("ct=x&{dns}");
        let escaped = format!("dns={}%3D", b64(&q[..13]));
        let ct: Option<&[u8]> = Some(b"application/dns-message");
        #[allow(clippy::type_complexity)]
        let cases: &[(
            &str,
            &str,
            Option<&str>,
            Option<&[u8]>,
            Option<u64>,
            Result<Head, u16>,
        )] = &[
            (
                "GET",
                PATH,
                Some(&dns),
                None,
                None,
                Ok(Head::Get(q.clone())),
            ),
            (
                "GET",
                PATH,
                Some(&other_first),
                None,
                None,
                Ok(Head::Get(q.clone())),
            ),
            ("GET", "/", Some(&dns), None, None, Err(404)),
            ("GET", "/dns-query/", Some(&dns), None, None, Err(404)),
            ("GET", PATH, None, None, None, Err(400)),
            ("GET", PATH, Some("dns"), None, None, Err(400)),
            ("GET", PATH, Some("dns=!!!"), None, None, Err(400)),
            ("GET", PATH, Some(&padded), None, None, Err(400)),
            ("GET", PATH, Some(&escaped), None, None, Err(400)),
            ("GET", PATH, Some("dns=%zz"), None, None, Err(400)),
            ("GET", PATH, Some(&twice), None, None, Err(400)),
            ("POST", PATH, None, ct, Some(29), Ok(Head::Post)),
            (
                "POST",
                PATH,
                None,
                Some(b"Application/DNS-Message; x=1"),
                None,
                Ok(Head::Post),
            ),
            ("POST", PATH, None, Some(b"text/plain"), Some(29), Err(415)),
            ("POST", PATH, None, None, Some(29), Err(415)),
            ("POST", PATH, None, ct, Some(65536), Err(413)),
            ("POST", "/x", None, ct, Some(29), Err(404)),
            ("PUT", PATH, None, ct, Some(29), Err(405)),
            ("HEAD", PATH, Some(&dns), None, None, Err(405)),
        ];
        for (method, path, query, ct, len, want) in cases {
            assert_eq!(
                &head(method, path, *query, *ct, *len),
                want,
                "{method} {path} {query:?} {ct:?} {len:?}"
            );
        }
    }

    #[test]
    fn bodies() {
        let q = query();
        assert_eq!(check_body(q.clone()), Ok(q.clone()));
        let mut response = q.clone();
        response[2] |= 0x80;
        let mut update = q.clone();
        update[2] = 5 << 3;
        let mut two_questions = q.clone();
        two_questions[5] = 2;
        let cases: &[(&str, Vec<u8>, u16)] = &[
            ("empty", vec![], 400),
            ("short", q[..11].to_vec(), 400),
            ("response", response, 400),
            ("update", update, 400),
            ("two questions", two_questions, 400),
            ("truncated question", q[..20].to_vec(), 400),
            ("too large", vec![0; 65536], 413),
        ];
        for (name, body, want) in cases {
            assert_eq!(check_body(body.clone()), Err(*want), "{name}");
        }
    }

    /// A reply to [`query`] with `an` A records of the given TTLs, an SOA in the authority
    /// section when `soa` is Some(ttl), and `rcode`.
    fn reply(rcode: u8, answers: &[u32], soa: Option<u32>, opt: bool) -> Vec<u8> {
        let mut r = query();
        r[2] = 0x81;
        r[3] = 0x80 | rcode;
        r[7] = answers.len() as u8;
        r[9] = soa.is_some() as u8;
        r[11] = opt as u8;
        for ttl in answers {
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
            r.extend_from_slice(&ttl.to_be_bytes());
            r.extend_from_slice(&[0, 4, 192, 0, 2, 1]);
        }
        if let Some(ttl) = soa {
            r.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1]);
            r.extend_from_slice(&ttl.to_be_bytes());
            let rdata: &[u8] = &[
                0xc0, 12, 0xc0, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 60,
            ];
            r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            r.extend_from_slice(rdata);
        }
        if opt {
            r.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        }
        r
    }

    #[test]
    fn max_ages() {
        let mut cut = reply(0, &[300], None, true);
        cut.truncate(cut.len() - 5);
        let mut badvers = reply(0, &[300], None, true);
        let at = badvers.len() - 6; // the OPT TTL's first octet: the extended rcode
        badvers[at] = 1;
        let mut delegation = reply(0, &[], Some(120), false);
        let at = query().len() + 3; // the authority record's type: SOA (6) → NS (2)
        delegation[at] = 2;
        let cases: &[(&str, Vec<u8>, u32)] = &[
            (
                "answers: lowest TTL",
                reply(0, &[300, 30, 600], None, true),
                30,
            ),
            ("capped at an hour", reply(0, &[86400], None, false), 3600),
            (
                "NXDOMAIN: the SOA's TTL",
                reply(3, &[], Some(900), true),
                900,
            ),
            (
                "NODATA: the SOA's TTL",
                reply(0, &[], Some(120), false),
                120,
            ),
            ("empty NOERROR", reply(0, &[], None, true), 5),
            ("SERVFAIL", reply(2, &[], None, true), 5),
            ("REFUSED", reply(5, &[], None, false), 5),
            ("zero TTL", reply(0, &[0], None, false), 0),
            ("garbage", vec![1, 2, 3], 5),
            ("cut short", cut, 5),
            ("BADVERS in the OPT record", badvers, 5),
            ("a delegation (NS, no SOA)", delegation, 5),
        ];
        for (name, r, want) in cases {
            assert_eq!(max_age(r), *want, "{name}");
        }
    }
}
