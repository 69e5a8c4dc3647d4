//! Reply encoding shared by the server and the plugins: a plugin's message as the reply to its
//! request (ID, question, OPT per RFC 6891, truncation), and empty error replies.

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};

use crate::dns::request::{ADVERTISED_UDP_SIZE, Request};

/// Encodes `msg` as the reply to `req`: ID and opcode restored, the question echoed when the
/// plugin left it out, OPT per RFC 6891, truncated (TC, sections emptied) when it does not fit.
pub fn encode_reply(req: &Request, msg: Message) -> Vec<u8> {
    encode_reply_within(req, msg, req.reply_limit())
}

/// [`encode_reply`] truncated to `max` bytes instead of the client's limit (the tsig plugin
/// keeps room for the TSIG record it appends).
pub fn encode_reply_within(req: &Request, mut msg: Message, max: usize) -> Vec<u8> {
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
    match to_wire(&msg) {
        Ok(bytes) if bytes.len() <= max => bytes,
        Ok(_) => {
            msg.metadata.truncation = true;
            msg.answers.clear();
            msg.authorities.clear();
            msg.additionals.clear();
            match to_wire(&msg) {
                Ok(bytes) if bytes.len() <= max => bytes,
                _ => {
                    // The OPT record's options do not fit either (a long NSID): without them,
                    // as `wire::fit` truncates.
                    if let Some(e) = msg.edns.as_mut() {
                        *e.options_mut() = Default::default();
                    }
                    to_wire(&msg).unwrap_or_else(|_| servfail_bytes(req))
                }
            }
        }
        Err(e) => {
            tracing::error!("cannot encode reply to {} {}: {e}", req.name, req.qtype());
            servfail_bytes(req)
        }
    }
}

/// `msg` in wire form: exdns's own encoder for what it covers, else hickory's.
pub fn to_wire(msg: &Message) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    match crate::dns::wire::encode::encode(msg) {
        Some(bytes) => Ok(bytes),
        None => msg.to_vec(),
    }
}

pub fn servfail_bytes(req: &Request) -> Vec<u8> {
    encode_error(&req.msg, ResponseCode::ServFail).unwrap_or_default()
}

/// An empty reply to a decoded query with `rcode` (question echoed, OPT when the query had one).
pub fn encode_error(query: &Message, rcode: ResponseCode) -> Option<Vec<u8>> {
    let mut m = crate::dns::request::reply_to(query);
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
