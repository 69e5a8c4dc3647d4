//! `minimal`: drops the authority and additional sections of positive replies, as CoreDNS's
//! *minimal*: a reply `response::typify` calls NOERROR (answers with rcode NOERROR, or NOERROR
//! with nothing that says otherwise) keeps only its question and answers (and the OPT record).
//! Negative replies (NXDOMAIN, NODATA), errors, delegations and zone transfers pass unchanged.
//!
//! Replies in wire form (cache entries, relayed upstream replies) are cut in place: the answers
//! are written before the other sections and their names can only point backwards, so the
//! message up to the last answer, followed by the OPT record, is a well-formed message. Replies
//! given on the fast path by the plugins after this one are cut the same way.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use async_trait::async_trait;
use hickory_proto::rr::RecordType;

use crate::dns::request::{Outcome, Request};
use crate::dns::view::{FastReply, QueryView};
use crate::dns::wire;
use crate::plugin::response::{RespType, typify, typify_wire};
use crate::plugin::{FastNext, Next, Plugin};

pub const NAME: &str = "minimal";

#[derive(Debug, Default)]
pub struct Minimal;

/// `bytes` (a whole reply) without its authority and additional records but the OPT record,
/// when it is a NOERROR reply; else unchanged (also when it does not scan).
pub fn minimize_wire(bytes: Vec<u8>) -> Vec<u8> {
    let Some(l) = wire::scan(&bytes) else {
        return bytes;
    };
    if l.rrs.len() == l.an + l.opt.map_or(0, |_| 1) && l.end == bytes.len() {
        // Nothing to drop.
        return bytes;
    }
    if typify_wire(&bytes, &l, wire::rcode(&bytes, &l)) != RespType::NoError {
        return bytes;
    }
    let answers_end = l.answers().last().map_or(l.qname_end + 4, |r| r.end);
    let mut out = Vec::with_capacity(answers_end + 64);
    out.extend_from_slice(&bytes[..answers_end]);
    out[8..10].copy_from_slice(&0u16.to_be_bytes());
    let ar: u16 = match l.opt {
        Some(i) => {
            let rr = l.rrs[i];
            out.extend_from_slice(&bytes[rr.start..rr.end]);
            1
        }
        None => 0,
    };
    out[10..12].copy_from_slice(&ar.to_be_bytes());
    out
}

fn minimize(out: Outcome) -> Outcome {
    match out {
        Outcome::Reply { mut msg, plugin } => {
            if typify(&msg) == RespType::NoError {
                msg.authorities.clear();
                // The OPT record lives in `msg.edns`; an OPT among the additional records is
                // dropped when the reply is encoded anyway.
                msg.additionals
                    .retain(|r| r.record_type() == RecordType::OPT);
            }
            Outcome::Reply { msg, plugin }
        }
        Outcome::Wire {
            bytes,
            rcode,
            plugin,
        } => Outcome::Wire {
            bytes: minimize_wire(bytes),
            rcode,
            plugin,
        },
        other => other,
    }
}

#[async_trait]
impl Plugin for Minimal {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        minimize(next.serve(req).await)
    }

    fn fast(&self, q: &QueryView<'_>, next: FastNext<'_>) -> Option<FastReply> {
        let mut reply = next.fast(q)?;
        reply.bytes = minimize_wire(std::mem::take(&mut reply.bytes));
        Some(reply)
    }
}
