//! `any`: answers queries of type ANY with a single HINFO record, as RFC 8482 allows, so ANY
//! can no longer be used to pull every record of a name (or for amplification). Every other
//! query goes to the next plugin.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use async_trait::async_trait;
use hickory_proto::rr::rdata::HINFO;
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};

use crate::dns::request::{Outcome, Request};
use crate::plugin::util::qname_as_sent;
use crate::plugin::{Next, Plugin};

pub const NAME: &str = "any";

/// TTL of the synthesized HINFO record (CoreDNS uses 8482).
pub const HINFO_TTL: u32 = 8482;
/// HINFO CPU string, as CoreDNS writes it.
pub const HINFO_CPU: &str = "ANY obsoleted";
/// HINFO OS string, as CoreDNS writes it.
pub const HINFO_OS: &str = "See RFC 8482";

#[derive(Debug, Default)]
pub struct Any;

#[async_trait]
impl Plugin for Any {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        if req.qtype() != RecordType::ANY {
            return next.serve(req).await;
        }
        let mut m = req.reply();
        let owner = qname_as_sent(req);
        let mut rr = Record::from_rdata(
            owner,
            HINFO_TTL,
            RData::HINFO(HINFO::new(HINFO_CPU.to_string(), HINFO_OS.to_string())),
        );
        rr.dns_class = DNSClass::IN;
        m.answers.push(rr);
        Outcome::reply(m, NAME)
    }
}
