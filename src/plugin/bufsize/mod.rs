//! `bufsize [SIZE]`: limits the EDNS UDP payload size of the block's queries to SIZE (default
//! 1232, 512–4096), as CoreDNS's *bufsize*: a query advertising more is handled as if it had
//! advertised SIZE (so its UDP reply is truncated at SIZE, `log`'s `{>bufsize}` shows SIZE, and
//! `forward` asks the upstream with SIZE); a query advertising less, or without EDNS, is left
//! alone. exdns never sends UDP replies above [`ADVERTISED_UDP_SIZE`] whatever the client offers,
//! so a SIZE above that changes nothing.
//!
//! The reply's OPT record advertises the smaller of SIZE and [`ADVERTISED_UDP_SIZE`] (CoreDNS's
//! reply echoes the clamped request size; exdns always advertises its own). The OPT record is
//! patched in the wire reply, on the fast path too.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use std::borrow::Cow;

use async_trait::async_trait;

use crate::dns::reply::encode_reply;
use crate::dns::request::{ADVERTISED_UDP_SIZE, Outcome, Request};
use crate::dns::view::{FastReply, QueryView, ViewEdns};
use crate::dns::wire;
use crate::plugin::{FastNext, Next, Plugin};

pub const NAME: &str = "bufsize";

/// The default SIZE (DNS flag day 2020).
pub const DEFAULT_SIZE: u16 = 1232;
/// The smallest and largest SIZE (RFC 6891).
pub const MIN_SIZE: u16 = 512;
pub const MAX_SIZE: u16 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bufsize {
    pub size: u16,
}

impl Bufsize {
    pub fn new(size: u16) -> Self {
        Bufsize { size }
    }

    /// What the reply's OPT record advertises.
    pub fn advertised(&self) -> u16 {
        self.size.min(ADVERTISED_UDP_SIZE)
    }
}

/// `req` with its EDNS UDP size lowered to `size` when it advertised more (CoreDNS changes the
/// request in place; here the plugins after `bufsize` get a copy, and the server fits the final
/// reply to it: see `BlockConfig::bufsize`).
pub fn clamp(req: &Request, size: u16) -> Cow<'_, Request> {
    match &req.msg.edns {
        Some(e) if e.max_payload() > size => {
            let mut r = req.clone();
            if let Some(e) = r.msg.edns.as_mut() {
                e.set_max_payload(size);
            }
            Cow::Owned(r)
        }
        _ => Cow::Borrowed(req),
    }
}

/// Sets the UDP size of the OPT record of `bytes` (a finished reply) to `size`; nothing happens
/// when it has none.
pub fn set_advertised(bytes: &mut [u8], size: u16) {
    if let Some(l) = wire::scan(bytes)
        && let Some(i) = l.opt
    {
        let at = l.rrs[i].ttl_at - 2;
        bytes[at..at + 2].copy_from_slice(&size.to_be_bytes());
    }
}

#[async_trait]
impl Plugin for Bufsize {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        let req = clamp(req, self.size);
        let out = next.serve(&req).await;
        if self.advertised() == ADVERTISED_UDP_SIZE || req.msg.edns.is_none() {
            return out;
        }
        // The reply's OPT record is written when the reply is encoded: encode it here, for
        // the clamped request, and patch what it advertises.
        let (mut bytes, rcode, plugin) = match out {
            Outcome::Wire {
                bytes,
                rcode,
                plugin,
            } => (wire::fit(&req, bytes), rcode, plugin),
            Outcome::Drop { .. } => return out,
            out => {
                let (rcode, plugin) = (out.rcode(), out.plugin());
                let Some(msg) = out.into_message(&req) else {
                    return Outcome::Drop { plugin };
                };
                let rcode = rcode.unwrap_or(msg.metadata.response_code);
                (encode_reply(&req, msg), rcode, plugin)
            }
        };
        set_advertised(&mut bytes, self.advertised());
        Outcome::Wire {
            bytes,
            rcode,
            plugin,
        }
    }

    /// The rest of the chain sees the clamped size; its reply advertises SIZE.
    fn fast(&self, q: &QueryView<'_>, next: FastNext<'_>) -> Option<FastReply> {
        let Some(edns) = q.edns else {
            return next.fast(q);
        };
        let clamped = QueryView {
            edns: Some(ViewEdns {
                udp_size: edns.udp_size.min(self.size),
                ..edns
            }),
            ..*q
        };
        let mut reply = next.fast(&clamped)?;
        if self.advertised() != ADVERTISED_UDP_SIZE {
            set_advertised(&mut reply.bytes, self.advertised());
        }
        Some(reply)
    }
}
