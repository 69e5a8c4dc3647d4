//! `loadbalance`: randomizes the order of A, AAAA (and MX) records in NOERROR replies, CoreDNS's
//! `round_robin` policy. CNAMEs are moved to the front (glibc and some other stub resolvers want
//! them before the addresses), followed by the other records in their original order, then the
//! shuffled address records, then the shuffled MX records. Applies to the answer, authority and
//! additional sections; zone transfers and non-NOERROR replies are left alone.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use async_trait::async_trait;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use rand::Rng;
use rand::seq::SliceRandom;

use crate::dns::request::{Outcome, Request};
use crate::plugin::{Next, Plugin};

pub const NAME: &str = "loadbalance";

#[derive(Debug, Default)]
pub struct LoadBalance;

#[async_trait]
impl Plugin for LoadBalance {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        match next.serve(req).await.decoded(req) {
            Outcome::Reply { mut msg, plugin } => {
                shuffle_message(&mut msg, &mut rand::rng());
                Outcome::Reply { msg, plugin }
            }
            other => other,
        }
    }
}

/// Applies the round-robin policy to a reply in place (no-op unless NOERROR and not AXFR/IXFR).
pub fn shuffle_message<R: Rng + ?Sized>(msg: &mut Message, rng: &mut R) {
    if msg.metadata.response_code != ResponseCode::NoError {
        return;
    }
    if let Some(q) = msg.queries.first()
        && matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR)
    {
        return;
    }
    round_robin(&mut msg.answers, rng);
    round_robin(&mut msg.authorities, rng);
    round_robin(&mut msg.additionals, rng);
}

/// Position group of a record: CNAME first, then everything else, then A/AAAA, then MX.
fn group(r: &Record) -> u8 {
    match r.record_type() {
        RecordType::CNAME => 0,
        RecordType::A | RecordType::AAAA => 2,
        RecordType::MX => 3,
        _ => 1,
    }
}

/// Reorders one section: CNAMEs, other records (order kept), shuffled A/AAAA, shuffled MX.
pub fn round_robin<R: Rng + ?Sized>(records: &mut [Record], rng: &mut R) {
    if records.len() <= 1 {
        return;
    }
    // Stable: keeps the relative order within each group.
    records.sort_by_key(group);
    let addr_start = records.partition_point(|r| group(r) < 2);
    let mx_start = records.partition_point(|r| group(r) < 3);
    records[addr_start..mx_start].shuffle(rng);
    records[mx_start..].shuffle(rng);
}
