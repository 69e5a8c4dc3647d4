//! `header { query|response set|clear FLAGS... }`: sets or clears header flags (`aa`, `ra`,
//! `rd`) of the query the plugins after this one see, and of the replies they write, as
//! CoreDNS's *header*. Rules apply in order, so the last one for a flag wins.
//!
//! As in CoreDNS, a plugin that returns a code without writing a reply (the server then writes
//! an empty one) is not touched by response rules. On the fast path, response rules are applied
//! to the prepared bytes; a block with query rules takes the full path.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use std::borrow::Cow;

use async_trait::async_trait;
use hickory_proto::op::Metadata;

use crate::dns::request::{Outcome, Request};
use crate::dns::view::{FastReply, QueryView};
use crate::dns::wire;
use crate::plugin::{FastNext, Next, Plugin};

pub const NAME: &str = "header";

/// A header flag *header* can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `aa`: Authoritative Answer.
    Aa,
    /// `ra`: Recursion Available.
    Ra,
    /// `rd`: Recursion Desired.
    Rd,
}

impl Flag {
    /// The flag named `s` (lower case), as CoreDNS spells it.
    pub fn from_name(s: &str) -> Option<Flag> {
        match s {
            "aa" => Some(Flag::Aa),
            "ra" => Some(Flag::Ra),
            "rd" => Some(Flag::Rd),
            _ => None,
        }
    }

    /// Its bit in the header's flags word.
    pub fn bit(self) -> u16 {
        match self {
            Flag::Aa => wire::AA,
            Flag::Ra => wire::RA,
            Flag::Rd => wire::RD,
        }
    }
}

/// Set (`true`) or clear `flag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub flag: Flag,
    pub state: bool,
}

/// `rules` applied in order to a decoded header.
pub fn apply(meta: &mut Metadata, rules: &[Rule]) {
    for r in rules {
        let f = match r.flag {
            Flag::Aa => &mut meta.authoritative,
            Flag::Ra => &mut meta.recursion_available,
            Flag::Rd => &mut meta.recursion_desired,
        };
        *f = r.state;
    }
}

/// `rules` applied in order to the flags of the message `buf` (at least a header long).
pub fn apply_wire(buf: &mut [u8], rules: &[Rule]) {
    if buf.len() < wire::HEADER {
        return;
    }
    let mut f = wire::flags(buf);
    for r in rules {
        if r.state {
            f |= r.flag.bit();
        } else {
            f &= !r.flag.bit();
        }
    }
    wire::set_flags(buf, f);
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub query: Vec<Rule>,
    pub response: Vec<Rule>,
}

#[async_trait]
impl Plugin for Header {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        let req: Cow<'_, Request> = if self.query.is_empty() {
            Cow::Borrowed(req)
        } else {
            let mut r = req.clone();
            apply(&mut r.msg.metadata, &self.query);
            Cow::Owned(r)
        };
        let out = next.serve(&req).await;
        if self.response.is_empty() {
            return out;
        }
        match out {
            Outcome::Reply { mut msg, plugin } => {
                apply(&mut msg.metadata, &self.response);
                Outcome::Reply { msg, plugin }
            }
            Outcome::Wire {
                mut bytes,
                rcode,
                plugin,
            } => {
                apply_wire(&mut bytes, &self.response);
                Outcome::Wire {
                    bytes,
                    rcode,
                    plugin,
                }
            }
            other => other,
        }
    }

    fn fast(&self, q: &QueryView<'_>, next: FastNext<'_>) -> Option<FastReply> {
        if !self.query.is_empty() {
            return None;
        }
        let mut reply = next.fast(q)?;
        apply_wire(&mut reply.bytes, &self.response);
        Some(reply)
    }
}
