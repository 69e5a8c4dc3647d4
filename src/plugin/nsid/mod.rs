//! `nsid [DATA]`: RFC 5001. When a query's OPT record carries the NSID option, the reply's OPT
//! record carries this server's identifier (DATA, by default the host's name), whichever plugin
//! wrote the reply. Queries without the option pass untouched.
//!
//! The fast path never sees a query with an NSID option (its shape admits only cookie and
//! padding options), so such a query always comes through [`Nsid::serve`], cache hits included;
//! for every other query `nsid` is transparent on the fast path.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use async_trait::async_trait;
use hickory_proto::op::Edns;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};

use crate::dns::request::{Outcome, Request};
use crate::dns::view::{FastReply, QueryView};
use crate::dns::wire;
use crate::plugin::{FastNext, Next, Plugin};

pub const NAME: &str = "nsid";

/// The NSID option code (RFC 5001).
pub const OPTION: u16 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nsid {
    /// What the NSID option carries (the Corefile's words joined by spaces).
    pub data: String,
}

impl Nsid {
    pub fn new(data: impl Into<String>) -> Self {
        Nsid { data: data.into() }
    }

    /// The reply `out` with the NSID option in its OPT record.
    fn stamp(&self, req: &Request, out: Outcome) -> Outcome {
        match out {
            Outcome::Wire {
                mut bytes,
                rcode,
                plugin,
            } => {
                if wire::put_option(&mut bytes, OPTION, self.data.as_bytes()) {
                    return Outcome::Wire {
                        bytes,
                        rcode,
                        plugin,
                    };
                }
                // A relayed reply exdns did not lay out: write it from its records.
                let out = Outcome::Wire {
                    bytes,
                    rcode,
                    plugin,
                }
                .decoded(req);
                self.stamp(req, out)
            }
            // A zone transfer's messages carry no OPT record to put it in.
            Outcome::Drop { .. } | Outcome::Transfer { .. } => out,
            out @ (Outcome::Reply { .. } | Outcome::Code { .. }) => {
                let plugin = out.plugin();
                let Some(mut msg) = out.into_message(req) else {
                    return Outcome::Drop { plugin };
                };
                let Ok(payload) = NSIDPayload::new(self.data.as_bytes()) else {
                    return Outcome::reply(msg, plugin);
                };
                let edns = msg.edns.get_or_insert_with(Edns::new);
                edns.options_mut().remove(EdnsCode::NSID);
                edns.options_mut().insert(EdnsOption::NSID(payload));
                Outcome::reply(msg, plugin)
            }
        }
    }
}

/// Whether `req`'s OPT record carries the NSID option.
pub fn asks_nsid(req: &Request) -> bool {
    req.msg
        .edns
        .as_ref()
        .is_some_and(|e| e.option(EdnsCode::NSID).is_some())
}

#[async_trait]
impl Plugin for Nsid {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        let out = next.serve(req).await;
        if !asks_nsid(req) {
            return out;
        }
        self.stamp(req, out)
    }

    /// A fast-path query has no NSID option (see the module's doc): nothing to add.
    fn fast(&self, q: &QueryView<'_>, next: FastNext<'_>) -> Option<FastReply> {
        next.fast(q)
    }
}
