//! `erratic`: a plugin for testing clients. It answers A and AAAA queries itself (192.0.2.53 and
//! 2001:db8::53, TTL 0, AA set) and SERVFAIL for other types, and can drop, truncate or delay
//! every Nth query. A global query counter decides: query number `n` (from 0) is dropped when
//! `n % drop == 0`, truncated when `n % truncate == 0`, delayed when `n % delay == 0`.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::dns::request::{Outcome, Request};
use crate::plugin::util::qname_as_sent;
use crate::plugin::{Next, Plugin};

pub const NAME: &str = "erratic";

/// The address in A replies (RFC 5737 documentation range).
pub const A_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
/// The address in AAAA replies (RFC 3849 documentation range).
pub const AAAA_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53);

/// The `erratic` handler. It never calls the next plugin.
#[derive(Debug, Default)]
pub struct Erratic {
    /// Queries seen so far.
    q: AtomicU64,
    /// Drop 1 in `drop` queries (0: never).
    pub drop: u64,
    /// Delay 1 in `delay` queries by `duration` (0: never).
    pub delay: u64,
    /// Truncate 1 in `truncate` queries (0: never).
    pub truncate: u64,
    pub duration: Duration,
    /// Undocumented CoreDNS knob: A replies carry 30 copies of the record (> 512 bytes
    /// uncompressed; exercises name compression and truncation).
    pub large: bool,
}

#[async_trait]
impl Plugin for Erratic {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, _next: Next<'_>) -> Outcome {
        let n = self.q.fetch_add(1, Ordering::Relaxed);
        let drop = self.drop > 0 && n.is_multiple_of(self.drop);
        let delay = self.delay > 0 && n.is_multiple_of(self.delay);
        let trunc = self.truncate > 0 && n.is_multiple_of(self.truncate);

        let mut m = req.reply();
        m.metadata.authoritative = true;
        m.metadata.truncation = trunc;
        let qname = qname_as_sent(req);

        let out = match req.qtype() {
            RecordType::A => {
                let rr = Record::from_rdata(qname, 0, RData::A(A(A_ADDR)));
                let copies = if self.large { 30 } else { 1 };
                m.answers = vec![rr; copies];
                Outcome::reply(m, NAME)
            }
            RecordType::AAAA => {
                m.answers
                    .push(Record::from_rdata(qname, 0, RData::AAAA(AAAA(AAAA_ADDR))));
                Outcome::reply(m, NAME)
            }
            RecordType::AXFR => Outcome::reply(xfr(req, &qname, trunc), NAME),
            // Every other type: SERVFAIL, written by the server.
            _ => Outcome::code(ResponseCode::ServFail, NAME),
        };
        if drop {
            return Outcome::Drop { plugin: NAME };
        }
        if delay {
            tokio::time::sleep(self.duration).await;
        }
        out
    }

    /// Flips between ready and not ready to exercise `/ready`: ready once 3 or 4 queries have
    /// been seen, not ready before and after (as CoreDNS's erratic).
    fn ready(&self) -> Option<bool> {
        let q = self.q.load(Ordering::Relaxed);
        Some((3..5).contains(&q))
    }
}

impl Erratic {
    /// Queries seen so far.
    pub fn queries(&self) -> u64 {
        self.q.load(Ordering::Relaxed)
    }
}

/// A small zone for `qname` in one message: SOA, 2 NS, 2 AAAA, and the closing SOA unless
/// `truncate` (an incomplete transfer, as CoreDNS's erratic sends).
fn xfr(req: &Request, zone: &Name, truncate: bool) -> Message {
    let mut m = req.reply();
    m.metadata.authoritative = true;
    let n = |s: &str| Name::from_ascii(s).expect("static name");
    let sub = |label: &[u8]| zone.prepend_label(label).unwrap_or_else(|_| zone.clone());
    let soa = Record::from_rdata(
        zone.clone(),
        0,
        RData::SOA(SOA::new(
            n("sns.dns.icann.org."),
            n("noc.dns.icann.org."),
            2018050825,
            7200,
            3600,
            1209600,
            3600,
        )),
    );
    m.answers = vec![
        soa.clone(),
        Record::from_rdata(zone.clone(), 0, RData::NS(NS(sub(b"b")))),
        Record::from_rdata(zone.clone(), 0, RData::NS(NS(sub(b"a")))),
        Record::from_rdata(
            sub(b"a"),
            0,
            RData::AAAA(AAAA("2001:bd8::53".parse().expect("static address"))),
        ),
        Record::from_rdata(
            sub(b"b"),
            0,
            RData::AAAA(AAAA("2001:500::54".parse().expect("static address"))),
        ),
    ];
    if !truncate {
        m.answers.push(soa);
    }
    m
}
