//! `local [{ localhost_prefix on|off }]`: answers the local names of RFC 6761/6303 itself, as
//! CoreDNS's *local*, so they never leave the server (a `forward` after it never sees them):
//!
//! - `localhost.`: A 127.0.0.1, AAAA ::1, SOA, NS `localhost.`, NODATA for other types;
//! - `0.in-addr.arpa.`, `127.in-addr.arpa.`, `255.in-addr.arpa.`: SOA, NS, NODATA for others;
//!   `1.0.0.127.in-addr.arpa.` PTR `localhost.` (NODATA for other types); every other name under
//!   these zones NXDOMAIN;
//! - names under `.localhost.` and, unless `localhost_prefix off`, names starting with
//!   `localhost.` (`localhost.example.org.`): A 127.0.0.1, AAAA ::1, NODATA for other types;
//!   these are counted in `coredns_local_localhost_requests_total` and logged at debug level.
//!
//! Records have TTL 604800 and class IN; SOA `localhost. root.localhost. 1 0 0 0 604800`; AA is
//! clear (CoreDNS's `SetReply`). Every other query goes to the next plugin.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use std::sync::LazyLock;

use async_trait::async_trait;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, NS, PTR, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::dns::request::{Outcome, Request};
use crate::dns::view::{FastReply, QueryView};
use crate::plugin::util::{go_quote, qname_as_sent};
use crate::plugin::zones::in_zone;
use crate::plugin::{FastNext, Next, Plugin};

pub const NAME: &str = "local";

/// TTL of every record *local* writes (a week).
pub const TTL: u32 = 604800;

/// The zones *local* answers for.
pub const ZONES: [&str; 4] = [
    "localhost.",
    "0.in-addr.arpa.",
    "127.in-addr.arpa.",
    "255.in-addr.arpa.",
];

/// `coredns_local_localhost_requests_total`: queries for names under `.localhost.` or, with
/// `localhost_prefix on`, starting with `localhost.` (not `localhost.` itself).
pub static LOCALHOST_COUNT: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    crate::metrics::counter(
        "coredns_local_localhost_requests_total",
        "Counter of special localhost subdomain requests.",
    )
});

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    /// `localhost_prefix on` (the default): `localhost.<anything>` is answered as localhost.
    pub localhost_prefix: bool,
}

impl Default for Local {
    fn default() -> Self {
        Local {
            localhost_prefix: true,
        }
    }
}

/// Why a name is *local*'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// Under `.localhost.`, or a legacy `localhost.<domain>` name.
    Localhost,
    /// In one of [`ZONES`] (the index).
    Zone(usize),
}

impl Local {
    /// Whether *local* answers `name` (lower case, absolute, as `Request::name`), and why.
    pub fn hit(&self, name: &str) -> Option<Hit> {
        const LC: usize = "localhost.".len();
        if name.len() > LC
            && (name.ends_with(".localhost.")
                || (self.localhost_prefix && name.starts_with("localhost.")))
        {
            return Some(Hit::Localhost);
        }
        ZONES.iter().position(|z| in_zone(name, z)).map(Hit::Zone)
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap_or_else(|_| Name::root())
}

fn rr(owner: Name, data: RData) -> Record {
    let mut r = Record::from_rdata(owner, TTL, data);
    r.dns_class = DNSClass::IN;
    r
}

/// CoreDNS's `soaFromOrigin`.
fn soa(origin: Name) -> Record {
    rr(
        origin,
        RData::SOA(SOA::new(
            name("localhost."),
            name("root.localhost."),
            1,
            0,
            0,
            0,
            TTL,
        )),
    )
}

fn loopback(owner: Name, qtype: RecordType) -> Option<Record> {
    match qtype {
        RecordType::A => Some(rr(owner, RData::A(A::new(127, 0, 0, 1)))),
        RecordType::AAAA => Some(rr(owner, RData::AAAA(AAAA::new(0, 0, 0, 0, 0, 0, 0, 1)))),
        _ => None,
    }
}

/// The reply to `req`, whose name is *local*'s for `hit`.
fn answer(req: &Request, hit: Hit) -> hickory_proto::op::Message {
    let mut m = req.reply();
    let qname = qname_as_sent(req);
    let qtype = req.qtype();
    let zone = match hit {
        Hit::Localhost => {
            match loopback(qname.clone(), qtype) {
                Some(r) => m.answers.push(r),
                None => m.authorities.push(soa(qname)),
            }
            return m;
        }
        Hit::Zone(i) => i,
    };
    // The zone as the client spelled it: the question's last labels.
    let zone_labels = ZONES[zone].matches('.').count();
    let zone_name = qname.trim_to(zone_labels);
    match req.name.as_str() {
        n if n == ZONES[zone] => match qtype {
            RecordType::A | RecordType::AAAA if zone == 0 => {
                m.answers.extend(loopback(qname, qtype));
            }
            RecordType::SOA => m.answers.push(soa(qname)),
            RecordType::NS => m.answers.push(rr(qname, RData::NS(NS(name("localhost."))))),
            _ => m.authorities.push(soa(qname)),
        },
        "1.0.0.127.in-addr.arpa." => match qtype {
            RecordType::PTR => m
                .answers
                .push(rr(qname, RData::PTR(PTR(name("localhost."))))),
            _ => m.authorities.push(soa(zone_name)),
        },
        _ => {
            m.metadata.response_code = ResponseCode::NXDomain;
            m.authorities.push(soa(zone_name));
        }
    }
    m
}

#[async_trait]
impl Plugin for Local {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        let Some(hit) = self.hit(&req.name) else {
            return next.serve(req).await;
        };
        if hit == Hit::Localhost {
            tracing::debug!(
                "plugin/local: Intercepting localhost query for {} {}, from {}",
                go_quote(&req.name),
                crate::plugin::names::type_name(req.qtype()),
                req.src.ip()
            );
            LOCALHOST_COUNT.inc();
        }
        Outcome::reply(answer(req, hit), NAME)
    }

    /// Names that are not *local*'s pass on; *local*'s own take the full path.
    fn fast(&self, q: &QueryView<'_>, next: FastNext<'_>) -> Option<FastReply> {
        if self.hit(q.name).is_some() {
            return None;
        }
        next.fast(q)
    }
}
