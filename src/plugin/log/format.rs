//! The log line format: CoreDNS's replacer placeholders, parsed once at setup.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::op::Message;

use crate::dns::request::Request;
use crate::plugin::names::{class_name, rcode_name, type_name};

/// Written for a value that does not exist (no reply, unknown metadata).
pub const EMPTY_VALUE: &str = "-";

/// A placeholder with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Type,
    Name,
    Class,
    Proto,
    Size,
    Remote,
    Port,
    Local,
    Id,
    Opcode,
    Do,
    Bufsize,
    Rcode,
    Rsize,
    Duration,
    Rflags,
}

impl Label {
    fn from_placeholder(s: &str) -> Option<Label> {
        Some(match s {
            "{type}" => Label::Type,
            "{name}" => Label::Name,
            "{class}" => Label::Class,
            "{proto}" => Label::Proto,
            "{size}" => Label::Size,
            "{remote}" => Label::Remote,
            "{port}" => Label::Port,
            "{local}" => Label::Local,
            "{>id}" => Label::Id,
            "{>opcode}" => Label::Opcode,
            "{>do}" => Label::Do,
            "{>bufsize}" => Label::Bufsize,
            "{rcode}" => Label::Rcode,
            "{rsize}" => Label::Rsize,
            "{duration}" => Label::Duration,
            "{>rflags}" => Label::Rflags,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Literal(String),
    Label(Label),
    /// `{/NAME}`: a metadata value; exdns has no metadata plugin, so always `-`.
    Metadata(String),
}

/// A parsed format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    nodes: Vec<Node>,
}

impl Format {
    /// Parses `s` the way CoreDNS's replacer does: each `}` closes the nearest `{` before it;
    /// unknown `{X}` stay literal text, `{/X}` is metadata.
    pub fn parse(s: &str) -> Format {
        let mut nodes = Vec::new();
        let mut s = s;
        while let Some(j) = s.find('}') {
            let Some(i) = s[..j].rfind('{') else {
                nodes.push(Node::Literal(s[..=j].to_string()));
                s = &s[j + 1..];
                continue;
            };
            let val = &s[i..=j];
            if let Some(label) = Label::from_placeholder(val) {
                if i > 0 {
                    nodes.push(Node::Literal(s[..i].to_string()));
                }
                nodes.push(Node::Label(label));
            } else if let Some(meta) = val.strip_prefix("{/") {
                if i > 0 {
                    nodes.push(Node::Literal(s[..i].to_string()));
                }
                nodes.push(Node::Metadata(meta[..meta.len() - 1].to_string()));
            } else {
                nodes.push(Node::Literal(s[..=j].to_string()));
            }
            s = &s[j + 1..];
        }
        if !s.is_empty() {
            nodes.push(Node::Literal(s.to_string()));
        }
        Format { nodes }
    }

    /// The line for `req`, its reply as the client got it (`None`: nothing was sent) and the
    /// time the rest of the chain took.
    pub fn render(&self, req: &Request, reply: Option<&Message>, duration: Duration) -> String {
        let mut b = String::with_capacity(128);
        for node in &self.nodes {
            match node {
                Node::Literal(s) => b.push_str(s),
                Node::Metadata(_) => b.push_str(EMPTY_VALUE),
                Node::Label(l) => append(&mut b, *l, req, reply, duration),
            }
        }
        b
    }
}

fn append(b: &mut String, label: Label, req: &Request, reply: Option<&Message>, d: Duration) {
    // Writing to a String cannot fail.
    let _ = match label {
        Label::Type => write!(b, "{}", type_name(req.qtype())),
        Label::Name => write!(b, "{}", req.name),
        Label::Class => write!(b, "{}", class_name(req.qclass())),
        Label::Proto => write!(b, "{}", req.proto.as_str()),
        Label::Size => write!(b, "{}", req.size),
        Label::Remote => write_ip(b, req.src.ip()),
        Label::Port => write!(b, "{}", req.src.port()),
        Label::Local => write_ip(b, req.local.ip()),
        Label::Id => write!(b, "{}", req.id()),
        Label::Opcode => write!(b, "{}", u8::from(req.msg.metadata.op_code)),
        Label::Do => write!(b, "{}", req.do_bit()),
        Label::Bufsize => write!(b, "{}", req.max_reply_size()),
        Label::Rcode => match reply {
            Some(m) => write!(b, "{}", rcode_name(m.metadata.response_code)),
            None => write!(b, "{EMPTY_VALUE}"),
        },
        Label::Rsize => match reply {
            Some(m) => write!(b, "{}", crate::plugin::prometheus::reply_size(req, m)),
            None => write!(b, "{EMPTY_VALUE}"),
        },
        // Seconds with as many digits as needed and an `s` (Go's AppendFloat(secs, 'f', -1)).
        Label::Duration => write!(b, "{}s", d.as_secs_f64()),
        Label::Rflags => match reply {
            Some(m) => {
                write_flags(b, m);
                Ok(())
            }
            None => write!(b, "{EMPTY_VALUE}"),
        },
    };
}

/// The address, IPv6 in brackets (RFC 3986); v4-mapped IPv6 shown as IPv4, as Go does.
fn write_ip(b: &mut String, ip: IpAddr) -> std::fmt::Result {
    match ip.to_canonical() {
        IpAddr::V4(v4) => write!(b, "{v4}"),
        IpAddr::V6(v6) => write!(b, "[{v6}]"),
    }
}

/// `qr,aa,tc,rd,ra,ad,cd`: the set header flags, comma separated.
fn write_flags(b: &mut String, m: &Message) {
    let h = &m.metadata;
    let flags = [
        (
            h.message_type == hickory_proto::op::MessageType::Response,
            "qr",
        ),
        (h.authoritative, "aa"),
        (h.truncation, "tc"),
        (h.recursion_desired, "rd"),
        (h.recursion_available, "ra"),
        (h.authentic_data, "ad"),
        (h.checking_disabled, "cd"),
    ];
    let mut first = true;
    for (set, name) in flags {
        if set {
            if !first {
                b.push(',');
            }
            b.push_str(name);
            first = false;
        }
    }
}
