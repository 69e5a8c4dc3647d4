//! `tsig`: TSIG keys (RFC 8945); verifies signed requests, signs the replies to them and
//! refuses unsigned requests of the query types (or opcodes) that must be signed (CoreDNS's
//! *tsig*).
//!
//! ```text
//! tsig [ZONE...] {
//!     secret NAME KEY
//!     secrets FILE
//!     require [QTYPE...|all|none]
//!     require_opcode [OPCODE...|all|none]
//! }
//! ```
//!
//! For a query in its zones: a signed query is verified over its bytes as received
//! ([`Request::wire`]); a good one goes on without its TSIG record and whatever comes back is
//! encoded and signed (every message of a zone transfer, in order); a bad one is answered
//! NOTAUTH with the TSIG error (BADKEY, BADSIG, BADTIME, BADTRUNC) or FORMERR, as
//! [`crate::dns::tsig`] decides. An unsigned query of a required type or opcode is REFUSED;
//! other unsigned queries pass untouched (and may be answered on the fast path). Queries outside
//! the zones pass untouched, signed or not, as in CoreDNS. No metrics (CoreDNS's tsig has none).

pub(crate) mod setup;

use async_trait::async_trait;
use hickory_proto::op::ResponseCode;
use tokio::sync::mpsc;

use crate::dns::cookie;
use crate::dns::reply::{encode_reply, encode_reply_within};
use crate::dns::request::{Outcome, Request};
use crate::dns::tsig::{Keyring, Signer, Verified, unix_now, verify};
use crate::dns::view::{FastReply, QueryView};
use crate::dns::wire;
use crate::plugin::names::type_name;
use crate::plugin::zones::match_zone;
use crate::plugin::{FastNext, Next, Plugin};

pub use setup::setup;

pub const NAME: &str = "tsig";

/// Messages of a signed zone transfer waiting to be written (each is signed as it is taken
/// from the plugin that produces them).
const TRANSFER_QUEUE: usize = 8;

/// The largest message a stream transport frames (its length is a 16-bit prefix).
const MAX_MESSAGE: usize = 65535;

/// What must be signed (CoreDNS's `require` and `require_opcode`; nothing by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Require {
    pub all_types: bool,
    pub types: Vec<u16>,
    pub all_opcodes: bool,
    pub opcodes: Vec<u8>,
}

impl Require {
    /// Whether a query of `qtype` with `opcode` must be signed.
    pub fn requires(&self, qtype: u16, opcode: u8) -> bool {
        self.all_types
            || self.types.contains(&qtype)
            || self.all_opcodes
            || self.opcodes.contains(&opcode)
    }
}

/// The handler.
#[derive(Debug)]
pub struct Tsig {
    /// Normalized zones (`example.org.`).
    pub zones: Vec<String>,
    pub keys: Keyring,
    pub require: Require,
}

impl Tsig {
    fn in_zones(&self, name: &str) -> bool {
        match_zone(&self.zones, name).is_some()
    }

    /// The outcome of the chain for a verified request, signed: one message encoded and
    /// signed, or each message of a transfer signed as it goes.
    fn signed(req: &Request, outcome: Outcome, mut signer: Signer) -> Outcome {
        let plugin = outcome.plugin();
        // The server truncates what exceeds `reply_limit` (which already leaves room for the
        // cookie it would add): the cookie, added here before signing, and the TSIG record
        // must fit under it too.
        let cookie_len = if req.cookie.is_some() {
            cookie::OPTION_SIZE
        } else {
            0
        };
        let room = req
            .reply_limit()
            .saturating_sub(cookie_len + signer.record_len());
        let bytes = match outcome {
            Outcome::Drop { .. } => return outcome,
            // The server answers a transfer over UDP with SERVFAIL; this one is signed.
            Outcome::Transfer { .. } if !req.proto.is_stream() => {
                encode_reply_within(req, req.reply_code(ResponseCode::ServFail), room)
            }
            Outcome::Transfer { messages, plugin } => {
                return Outcome::Transfer {
                    messages: sign_stream(messages, signer),
                    plugin,
                };
            }
            Outcome::Wire { bytes, .. } => wire::fit_within(req, bytes, room),
            other => match other.into_message(req) {
                Some(msg) => encode_reply_within(req, msg, room),
                None => return Outcome::Drop { plugin },
            },
        };
        sign_reply(req, bytes, plugin, |b| signer.sign(b))
    }
}

/// `bytes` (a reply to `req`) with the request's cookie and then the TSIG record `sign`
/// appends; the server adds nothing after it (its cookie goes only into an OPT record that is
/// the last record).
fn sign_reply(
    req: &Request,
    mut bytes: Vec<u8>,
    plugin: &'static str,
    sign: impl FnOnce(&mut Vec<u8>),
) -> Outcome {
    let rcode = wire::scan(&bytes)
        .map(|l| wire::rcode(&bytes, &l))
        .unwrap_or(ResponseCode::ServFail);
    if let Some(c) = &req.cookie {
        cookie::put_cookie(&mut bytes, c);
    }
    sign(&mut bytes);
    Outcome::Wire {
        bytes,
        rcode,
        plugin,
    }
}

/// A zone transfer's messages, each signed in order as it arrives (RFC 8945 §5.3.1: the first
/// over the request's MAC and every variable, the later ones over the prior MAC and the
/// timers). Ends when `messages` ends or the client's side is dropped.
pub fn sign_stream(
    mut messages: mpsc::Receiver<Vec<u8>>,
    mut signer: Signer,
) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(TRANSFER_QUEUE);
    tokio::spawn(async move {
        while let Some(mut m) = messages.recv().await {
            signer.sign(&mut m);
            if m.len() > MAX_MESSAGE {
                // Cannot be framed on a stream: end the transfer rather than corrupt it.
                tracing::error!(
                    "tsig: a signed transfer message of {} bytes exceeds 65535; transfer ended",
                    m.len()
                );
                break;
            }
            if tx.send(m).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// The request as the rest of the chain sees it: without its TSIG record (CoreDNS strips it
/// too, README's *Bugs*: a forwarded request goes upstream unsigned).
fn without_tsig(req: &Request) -> Request {
    let mut r = req.clone();
    if r.msg.signature.take().is_none() {
        r.msg.additionals.pop();
    }
    r.wire = None;
    r
}

#[async_trait]
impl Plugin for Tsig {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        let signed = req.is_tsig_signed();
        let qtype = u16::from(req.qtype());
        let opcode = u8::from(req.msg.metadata.op_code);
        if (!signed && !self.require.requires(qtype, opcode)) || !self.in_zones(&req.name) {
            return next.serve(req).await;
        }
        if !signed {
            tracing::debug!(
                "rejecting '{}' request without TSIG",
                type_name(req.qtype())
            );
            return Outcome::code(ResponseCode::Refused, NAME);
        }
        let Some(bytes) = req.wire.as_deref() else {
            // The server keeps the bytes of every signed query; without them nothing verifies.
            tracing::error!("tsig: a signed request without its wire bytes");
            return Outcome::code(ResponseCode::ServFail, NAME);
        };
        match verify(&self.keys, bytes, unix_now()) {
            Verified::Valid(signer) => {
                let inner = without_tsig(req);
                let outcome = next.serve(&inner).await;
                Tsig::signed(req, outcome, signer)
            }
            Verified::Rejected(rejection) => {
                tracing::debug!(
                    "TSIG validation failed: {} {} (key {:?})",
                    type_name(req.qtype()),
                    rejection.error,
                    rejection.key_name
                );
                let rcode = rejection.rcode();
                if rcode == ResponseCode::FormErr {
                    return Outcome::code(rcode, NAME);
                }
                // The question alone: nothing to truncate to make room.
                let bytes = encode_reply(req, req.reply_code(rcode));
                sign_reply(req, bytes, NAME, |b| rejection.sign(b))
            }
            // hickory saw a TSIG record that the wire reader does not: not well-formed.
            Verified::Unsigned => Outcome::code(ResponseCode::FormErr, NAME),
        }
    }

    fn fast(&self, q: &QueryView<'_>, next: FastNext<'_>) -> Option<FastReply> {
        // The fast path's shape admits no record but OPT, so a signed query never gets here;
        // check anyway: a signed query must not be answered unsigned.
        let opt = u16::from(q.edns.is_some());
        if wire::u16_at(q.buf, 10) != opt {
            return None;
        }
        if self.in_zones(q.name) && self.require.requires(u16::from(q.qtype), 0) {
            return None;
        }
        next.fast(q)
    }
}

#[cfg(test)]
mod tests;
