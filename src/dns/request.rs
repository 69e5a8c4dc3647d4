//! The request view every plugin reads, and the outcome it returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};

use crate::dns::cookie::{self, ReplyCookie};

/// The UDP payload size exdns advertises (DNS flag day 2020).
pub const ADVERTISED_UDP_SIZE: u16 = 1232;

/// The transport a query arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
    /// DNS over TLS (RFC 7858); counted as `tcp` in CoreDNS's metrics and logs.
    Tls,
    /// DNS over QUIC (RFC 9250); counted as `udp` in CoreDNS's metrics and logs (its DoQ writer
    /// reports the connection's UDP addresses), but a stream for reply sizes: a DoQ reply may
    /// take 65535 bytes and never has TC set (RFC 9250 §4.2).
    Quic,
    /// DNS over HTTPS (RFC 8484) over HTTP/2 or HTTP/1.1; `tcp` in CoreDNS's metrics and logs
    /// (its DoH writer's remote address is a TCP address).
    Https,
    /// DNS over HTTP/3; `udp` in CoreDNS's metrics and logs (its DoH3 writer's remote address is
    /// a UDP address), but a stream transport here: replies are never truncated.
    H3,
}

impl Proto {
    /// As CoreDNS names it in logs and the `proto` metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Proto::Udp | Proto::Quic | Proto::H3 => "udp",
            Proto::Tcp | Proto::Tls | Proto::Https => "tcp",
        }
    }
    pub fn is_stream(&self) -> bool {
        !matches!(self, Proto::Udp)
    }
    /// The largest reply a client that advertised `udp_size` can take on this transport.
    pub fn max_reply_size(&self, udp_size: u16) -> usize {
        if self.is_stream() {
            65535
        } else {
            udp_size as usize
        }
    }
    /// The largest reply exdns sends to a client that advertised `udp_size`. Over UDP never
    /// more than we advertise, whatever the client offers: fragmented replies get lost or
    /// spoofed (DNS flag day 2020), and a large buffer must not make us an amplifier.
    pub fn reply_limit(&self, udp_size: u16) -> usize {
        match self {
            Proto::Udp => self
                .max_reply_size(udp_size)
                .min(ADVERTISED_UDP_SIZE as usize),
            Proto::Tcp | Proto::Tls | Proto::Quic | Proto::Https | Proto::H3 => {
                self.max_reply_size(udp_size)
            }
        }
    }
}

/// A parsed query with its context. Built once per query by the listener.
#[derive(Debug, Clone)]
pub struct Request {
    pub msg: Message,
    pub src: SocketAddr,
    pub local: SocketAddr,
    pub proto: Proto,
    /// Size of the query on the wire.
    pub size: usize,
    /// The listener, as CoreDNS's `server` label spells it (`dns://:53`).
    pub server: Arc<str>,
    /// The server block zone the router matched (`example.org.`).
    pub zone: Arc<str>,
    /// Lower-case absolute qname (`www.example.org.`), "." when there is no question.
    pub name: String,
    pub received: Instant,
    /// The DNS cookie the server writes into the reply (RFC 7873), when the query had one and
    /// the block answers cookies; `valid` when the client's server cookie was.
    pub cookie: Option<ReplyCookie>,
    /// The query exactly as received, kept only when it carries a TSIG record (RFC 8945): the
    /// MAC covers these bytes, which re-encoding the decoded message would not reproduce. The
    /// tsig plugin verifies it and passes the request on without it.
    pub wire: Option<Arc<[u8]>>,
}

impl Request {
    /// Builds the view; `msg` must carry exactly one question (the listener checks).
    pub fn new(
        msg: Message,
        src: SocketAddr,
        local: SocketAddr,
        proto: Proto,
        size: usize,
    ) -> Self {
        let name = msg
            .queries
            .first()
            .map(|q| lower_fqdn(q.name()))
            .unwrap_or_else(|| ".".to_string());
        Self::with_name(msg, name, src, local, proto, size)
    }

    /// [`Request::new`] with the question's name already in `lower_fqdn` form.
    pub fn with_name(
        msg: Message,
        name: String,
        src: SocketAddr,
        local: SocketAddr,
        proto: Proto,
        size: usize,
    ) -> Self {
        Request {
            msg,
            src,
            local,
            proto,
            size,
            server: Arc::from(""),
            zone: Arc::from("."),
            name,
            received: Instant::now(),
            cookie: None,
            wire: None,
        }
    }

    pub fn id(&self) -> u16 {
        self.msg.metadata.id
    }
    pub fn qname(&self) -> &Name {
        self.msg.queries[0].name()
    }
    pub fn qtype(&self) -> RecordType {
        self.msg
            .queries
            .first()
            .map(|q| q.query_type())
            .unwrap_or(RecordType::NULL)
    }
    pub fn qclass(&self) -> DNSClass {
        self.msg
            .queries
            .first()
            .map(|q| q.query_class())
            .unwrap_or(DNSClass::IN)
    }
    /// The DNSSEC OK bit of the query's OPT record.
    pub fn do_bit(&self) -> bool {
        self.msg
            .edns
            .as_ref()
            .map(|e| e.flags().dnssec_ok)
            .unwrap_or(false)
    }
    /// The client's advertised UDP payload size (512 without EDNS, never below 512).
    pub fn udp_size(&self) -> u16 {
        self.msg
            .edns
            .as_ref()
            .map(|e| e.max_payload().max(512))
            .unwrap_or(512)
    }
    /// The largest reply the client can take on this transport ([`Proto::max_reply_size`]).
    pub fn max_reply_size(&self) -> usize {
        self.proto.max_reply_size(self.udp_size())
    }
    /// The largest reply a plugin may give this client: [`Proto::reply_limit`], less the
    /// cookie option the server adds afterwards.
    pub fn reply_limit(&self) -> usize {
        cookie_room(
            self.proto.reply_limit(self.udp_size()),
            self.cookie.as_ref(),
        )
    }
    /// Whether the query carries a TSIG record (the last additional record; hickory keeps it
    /// among the additionals).
    pub fn is_tsig_signed(&self) -> bool {
        // hickory's decoder keeps the TSIG record apart (`signature`) when it reads it.
        self.msg.signature.is_some()
            || self
                .msg
                .additionals
                .last()
                .is_some_and(|r| r.record_type() == RecordType::TSIG)
    }
    /// An empty reply skeleton: ID, opcode, RD and CD copied, QR set, the question echoed.
    /// The server adds the OPT record when writing it.
    pub fn reply(&self) -> Message {
        reply_to(&self.msg)
    }
    /// An empty reply with `rcode`.
    pub fn reply_code(&self, rcode: ResponseCode) -> Message {
        let mut m = self.reply();
        m.metadata.response_code = rcode;
        m
    }
}

/// `limit` less the room the server needs for `cookie` in the reply.
pub fn cookie_room(limit: usize, cookie: Option<&ReplyCookie>) -> usize {
    match cookie {
        Some(_) => limit.saturating_sub(cookie::OPTION_SIZE),
        None => limit,
    }
}

/// An empty reply to `query`: ID, opcode, RD and CD copied, QR set, the question echoed.
pub fn reply_to(query: &Message) -> Message {
    let mut m = Message::new(
        query.metadata.id,
        MessageType::Response,
        query.metadata.op_code,
    );
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.metadata.checking_disabled = query.metadata.checking_disabled;
    m.queries = query.queries.clone();
    m
}

/// Lower-case, absolute text form of `name` (`www.example.org.`).
pub fn lower_fqdn(name: &Name) -> String {
    if let Some(s) = plain_lower_fqdn(name) {
        return s;
    }
    let mut s = name.to_lowercase().to_ascii();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

/// [`lower_fqdn`] for the names that need no escaping (see [`push_plain_label`]), without
/// hickory's general formatter; `None` for the others.
fn plain_lower_fqdn(name: &Name) -> Option<String> {
    let mut v: Vec<u8> = Vec::with_capacity(name.len() + 1);
    for label in name.iter() {
        if !push_plain_label(&mut v, label) {
            return None;
        }
    }
    if v.is_empty() {
        v.push(b'.');
    }
    String::from_utf8(v).ok()
}

/// Appends `label` lower-cased and a dot to `out`, as [`lower_fqdn`] writes it, when it needs
/// no escaping there (letters, digits, `_`, `-` but first, `*` first); else returns false and
/// leaves `out` as it was.
pub(crate) fn push_plain_label(out: &mut Vec<u8>, label: &[u8]) -> bool {
    let start = out.len();
    out.reserve(label.len() + 1);
    if let Some((&first, rest)) = label.split_first() {
        let f = match first {
            b'*' => b'*',
            b'-' => 0,
            b => PLAIN[b as usize],
        };
        if f == 0 {
            return false;
        }
        out.push(f);
        for &b in rest {
            let l = PLAIN[b as usize];
            if l == 0 {
                out.truncate(start);
                return false;
            }
            out.push(l);
        }
    }
    out.push(b'.');
    true
}

/// Lower-cases `label` in place when it is plain (see [`push_plain_label`]); else returns false
/// (`label` may then be partly lower-cased).
pub(crate) fn lower_plain_label(label: &mut [u8]) -> bool {
    if let Some((first, rest)) = label.split_first_mut() {
        let f = match *first {
            b'*' => b'*',
            b'-' => 0,
            b => PLAIN[b as usize],
        };
        if f == 0 {
            return false;
        }
        *first = f;
        for b in rest {
            let l = PLAIN[*b as usize];
            if l == 0 {
                return false;
            }
            *b = l;
        }
    }
    true
}

/// For each octet: its lower-case form when it may appear unescaped in a label after the first
/// position (letters, digits, `_`, `-`), else 0. A query's name is lower-cased through this
/// table once per query.
static PLAIN: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => c,
            b'A'..=b'Z' => c + 32,
            _ => 0,
        };
        b += 1;
    }
    t
};

/// What a plugin (or the chain) produced for a request: CoreDNS's write-or-return rule as a value.
#[derive(Debug)]
pub enum Outcome {
    /// A reply written by `plugin`.
    Reply { msg: Message, plugin: &'static str },
    /// A return code without a reply (SERVFAIL, REFUSED, FORMERR, NOTIMP): the server writes an
    /// empty reply with that code.
    Code {
        rcode: ResponseCode,
        plugin: &'static str,
    },
    /// Nothing is sent back (acl `drop`, erratic `drop`).
    Drop { plugin: &'static str },
    /// A reply already in wire form and made the reply to this request (`wire::finalize`: ID,
    /// opcode, OPT), so the server sends it as is — after truncating it when it is larger than
    /// the client can take. `rcode` is its full response code. Cache hits and relayed upstream
    /// replies travel this way; plugins that need the records call [`Outcome::decoded`].
    Wire {
        bytes: Vec<u8>,
        rcode: ResponseCode,
        plugin: &'static str,
    },
    /// A zone transfer (AXFR/IXFR over TCP or DoT): complete reply messages in order (ID,
    /// flags and question set), produced while the connection writes them. The server writes
    /// them back to back, nothing interleaved, and closes the stream when the sender is
    /// dropped. Over UDP it is never produced (the server answers SERVFAIL if it were).
    Transfer {
        messages: tokio::sync::mpsc::Receiver<Vec<u8>>,
        plugin: &'static str,
    },
}

impl Outcome {
    pub fn reply(msg: Message, plugin: &'static str) -> Self {
        Outcome::Reply { msg, plugin }
    }
    pub fn code(rcode: ResponseCode, plugin: &'static str) -> Self {
        Outcome::Code { rcode, plugin }
    }
    /// The plugin that produced this outcome.
    pub fn plugin(&self) -> &'static str {
        match self {
            Outcome::Reply { plugin, .. }
            | Outcome::Code { plugin, .. }
            | Outcome::Wire { plugin, .. }
            | Outcome::Transfer { plugin, .. }
            | Outcome::Drop { plugin } => plugin,
        }
    }
    /// The response code the client will see (Drop: None).
    pub fn rcode(&self) -> Option<ResponseCode> {
        match self {
            Outcome::Reply { msg, .. } => Some(msg.metadata.response_code),
            Outcome::Code { rcode, .. } | Outcome::Wire { rcode, .. } => Some(*rcode),
            Outcome::Transfer { .. } => Some(ResponseCode::NoError),
            Outcome::Drop { .. } => None,
        }
    }
    /// The reply as the client will get it (a Code becomes an empty reply with that code).
    pub fn into_message(self, req: &Request) -> Option<Message> {
        match self {
            Outcome::Reply { msg, .. } => Some(msg),
            Outcome::Code { rcode, .. } => Some(req.reply_code(rcode)),
            Outcome::Wire { bytes, rcode, .. } => Some(decode_wire(req, &bytes, rcode)),
            // The messages stream to the client; plugins that read replies see an empty one.
            Outcome::Transfer { .. } => Some(req.reply_code(ResponseCode::NoError)),
            Outcome::Drop { .. } => None,
        }
    }

    /// [`Outcome::into_message`] without consuming the outcome (a `Reply` is cloned).
    pub fn to_message(&self, req: &Request) -> Option<Message> {
        match self {
            Outcome::Reply { msg, .. } => Some(msg.clone()),
            Outcome::Code { rcode, .. } => Some(req.reply_code(*rcode)),
            Outcome::Wire { bytes, rcode, .. } => Some(decode_wire(req, bytes, *rcode)),
            Outcome::Transfer { .. } => Some(req.reply_code(ResponseCode::NoError)),
            Outcome::Drop { .. } => None,
        }
    }

    /// The same outcome with a wire reply decoded into a [`Outcome::Reply`], for plugins that
    /// read or change records (loadbalance, rewrite, rrl). A relayed reply hickory cannot
    /// decode (well-formed, but with a record it rejects) becomes SERVFAIL, as when forward
    /// decoded every reply: those plugins cannot do their work on it. Other outcomes are
    /// unchanged.
    pub fn decoded(self, _req: &Request) -> Outcome {
        match self {
            Outcome::Wire { bytes, plugin, .. } => match Message::from_vec(&bytes) {
                Ok(msg) => Outcome::Reply { msg, plugin },
                Err(e) => {
                    tracing::debug!("{plugin}: a reply that does not decode: {e}");
                    Outcome::Code {
                        rcode: ResponseCode::ServFail,
                        plugin,
                    }
                }
            },
            other => other,
        }
    }
}

#[cfg(test)]
impl Outcome {
    /// A copy, for test tables (a transfer's stream cannot be copied).
    pub(crate) fn dup(&self) -> Outcome {
        match self {
            Outcome::Reply { msg, plugin } => Outcome::reply(msg.clone(), plugin),
            Outcome::Code { rcode, plugin } => Outcome::code(*rcode, plugin),
            Outcome::Drop { plugin } => Outcome::Drop { plugin },
            Outcome::Wire {
                bytes,
                rcode,
                plugin,
            } => Outcome::Wire {
                bytes: bytes.clone(),
                rcode: *rcode,
                plugin,
            },
            Outcome::Transfer { .. } => panic!("a transfer cannot be copied"),
        }
    }
}

/// A wire reply as a `Message`; one that does not decode (a relayed upstream reply with an
/// exotic record hickory rejects) is seen as an empty reply with its rcode.
fn decode_wire(req: &Request, bytes: &[u8], rcode: ResponseCode) -> Message {
    Message::from_vec(bytes).unwrap_or_else(|_| req.reply_code(rcode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lower_fqdn_is_hickorys_text() {
        let names: &[&[&[u8]]] = &[
            &[],
            &[b"www", b"Example", b"ORG"],
            &[b"_dns", b"_tcp", b"example", b"org"],
            &[b"*", b"wild", b"example", b"org"],
            &[b"a-b", b"c_d", b"x1"],
            &[b"a*b", b"example"],
            &[b"sp ace", b"example"],
            &[b"dot.ted", b"example"],
            &[b"UTF\xc3\xa9", b"example"],
            &[b"\x00\xff", b"example"],
        ];
        for labels in names {
            let n = Name::from_labels(labels.iter().copied()).unwrap();
            let hickory = {
                let mut t = n.to_lowercase().to_ascii();
                if !t.ends_with('.') {
                    t.push('.');
                }
                t
            };
            assert_eq!(lower_fqdn(&n), hickory, "{labels:?}");
            if let Some(p) = plain_lower_fqdn(&n) {
                assert_eq!(p, hickory, "{labels:?}");
            }
        }
        // The longest name: 255 octets on the wire, 254 characters as text.
        let long: Vec<Vec<u8>> = vec![
            vec![b'A'; 63],
            vec![b'b'; 63],
            vec![b'c'; 63],
            vec![b'D'; 61],
        ];
        let n = Name::from_labels(long.iter().map(|l| &l[..])).unwrap();
        let mut q = Message::new(1, MessageType::Query, hickory_proto::op::OpCode::Query);
        q.add_query(hickory_proto::op::Query::query(n.clone(), RecordType::A));
        let text = crate::dns::wire::plain_lower_qname(&q.to_vec().unwrap()).unwrap();
        assert_eq!(text.len(), 254);
        assert_eq!(text, n.to_lowercase().to_ascii());
        let lead = Name::from_labels([&b"-lead"[..], &b"example"[..]]).unwrap();
        assert_eq!(lower_fqdn(&lead), "\\-lead.example.");
        assert!(plain_lower_fqdn(&lead).is_none());
        assert!(plain_lower_fqdn(&Name::from_ascii("www.example.").unwrap()).is_some());
    }

    /// Every octet, first in a label and after the first: plain exactly for letters, digits,
    /// `_`, `-` (not first) and `*` (first only), and then hickory's text.
    #[test]
    fn plain_labels_octet_by_octet() {
        for b in 0..=255u8 {
            for (label, first) in [(vec![b, b'x'], true), (vec![b'x', b], false)] {
                let n = Name::from_labels([&label[..], &b"example"[..]]).unwrap();
                let plain = b.is_ascii_alphanumeric()
                    || b == b'_'
                    || (b == b'-' && !first)
                    || (b == b'*' && first);
                let mut out = b"keep".to_vec();
                assert_eq!(push_plain_label(&mut out, &label), plain, "{label:?}");
                let mut q = Message::new(1, MessageType::Query, hickory_proto::op::OpCode::Query);
                q.add_query(hickory_proto::op::Query::query(n.clone(), RecordType::A));
                assert_eq!(
                    crate::dns::wire::plain_lower_qname(&q.to_vec().unwrap()),
                    plain_lower_fqdn(&n),
                    "from the wire: {label:?}"
                );
                if plain {
                    assert_eq!(out.len(), 4 + 3);
                    assert_eq!(
                        plain_lower_fqdn(&n).unwrap(),
                        n.to_lowercase().to_ascii(),
                        "{label:?}"
                    );
                } else {
                    assert_eq!(out, b"keep", "left as it was: {label:?}");
                    assert!(plain_lower_fqdn(&n).is_none(), "{label:?}");
                }
            }
        }
    }

    /// A well-formed reply hickory cannot decode (a HINFO whose string overruns its RDATA) is
    /// SERVFAIL for the plugins that need records; the other outcomes pass unchanged.
    #[test]
    fn decoded_wire_that_hickory_rejects_is_servfail() {
        use hickory_proto::op::{MessageType, OpCode, Query};
        let mut q = Message::new(7, MessageType::Query, OpCode::Query);
        q.add_query(Query::query(
            Name::from_ascii("x.example.").unwrap(),
            RecordType::A,
        ));
        let a: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let req = Request::new(q.clone(), a, a, Proto::Udp, 30);
        let mut bytes = q.to_vec().unwrap();
        bytes[2] |= 0x80;
        bytes[7] = 1;
        bytes.extend_from_slice(&[0xc0, 12, 0, 13, 0, 1, 0, 0, 0, 5, 0, 1, 5]);
        assert!(crate::dns::wire::scan(&bytes).is_some());
        assert!(Message::from_vec(&bytes).is_err());
        let out = Outcome::Wire {
            bytes: bytes.clone(),
            rcode: ResponseCode::NoError,
            plugin: "forward",
        };
        assert!(matches!(
            out.decoded(&req),
            Outcome::Code {
                rcode: ResponseCode::ServFail,
                plugin: "forward"
            }
        ));
        // A reply that decodes becomes a Reply with its records.
        let mut good = q.to_vec().unwrap();
        good[2] |= 0x80;
        let out = Outcome::Wire {
            bytes: good,
            rcode: ResponseCode::NoError,
            plugin: "cache",
        };
        assert!(matches!(
            out.decoded(&req),
            Outcome::Reply {
                plugin: "cache",
                ..
            }
        ));
    }
}
