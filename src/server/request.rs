//! The request view every plugin reads, and the outcome it returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};

/// The transport a query arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
    /// DNS over TLS (RFC 7858); counted as `tcp` in CoreDNS's metrics and logs.
    Tls,
}

impl Proto {
    /// As CoreDNS names it in logs and the `proto` metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp | Proto::Tls => "tcp",
        }
    }
    pub fn is_stream(&self) -> bool {
        !matches!(self, Proto::Udp)
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
    /// The largest reply the client can take on this transport.
    pub fn max_reply_size(&self) -> usize {
        if self.proto.is_stream() {
            65535
        } else {
            self.udp_size() as usize
        }
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
    let mut s = name.to_lowercase().to_ascii();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

/// What a plugin (or the chain) produced for a request: CoreDNS's write-or-return rule as a value.
#[derive(Debug, Clone)]
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
            | Outcome::Drop { plugin } => plugin,
        }
    }
    /// The response code the client will see (Drop: None).
    pub fn rcode(&self) -> Option<ResponseCode> {
        match self {
            Outcome::Reply { msg, .. } => Some(msg.metadata.response_code),
            Outcome::Code { rcode, .. } => Some(*rcode),
            Outcome::Drop { .. } => None,
        }
    }
    /// The reply as the client will get it (a Code becomes an empty reply with that code).
    pub fn into_message(self, req: &Request) -> Option<Message> {
        match self {
            Outcome::Reply { msg, .. } => Some(msg),
            Outcome::Code { rcode, .. } => Some(req.reply_code(rcode)),
            Outcome::Drop { .. } => None,
        }
    }
}
