//! `acl`: access control by client address and query type, per zone (CoreDNS's *acl*).
//!
//! Rules are tried in the order written; the first policy matching the query's type and source
//! address decides: `allow` passes the query on, `block` answers REFUSED, `filter` answers an
//! empty NOERROR, `drop` sends nothing. A query no policy matches is allowed. `block` and `filter`
//! replies carry an Extended DNS Error (RFC 8914: 15 Blocked, 17 Filtered) when the query had EDNS.

pub(crate) mod setup;

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use ipnet::IpNet;
use prometheus::IntCounterVec;

use crate::dns::request::{Outcome, Request};
use crate::metrics;
use crate::plugin::zones::match_zone;
use crate::plugin::{Next, Plugin};

pub use setup::setup;

/// EDNS option code of an Extended DNS Error (RFC 8914).
pub(crate) const EDE_OPTION: u16 = 15;
/// INFO-CODE "Blocked".
pub(crate) const EDE_BLOCKED: u16 = 15;
/// INFO-CODE "Filtered".
pub(crate) const EDE_FILTERED: u16 = 17;

static BLOCKED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    metrics::counter_vec(
        "coredns_acl_blocked_requests_total",
        "Counter of DNS requests being blocked.",
        &["server", "zone", "view"],
    )
});
static FILTERED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    metrics::counter_vec(
        "coredns_acl_filtered_requests_total",
        "Counter of DNS requests being filtered.",
        &["server", "zone", "view"],
    )
});
static ALLOWED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    metrics::counter_vec(
        "coredns_acl_allowed_requests_total",
        "Counter of DNS requests being allowed.",
        &["server", "view"],
    )
});
static DROPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    metrics::counter_vec(
        "coredns_acl_dropped_requests_total",
        "Counter of DNS requests being dropped.",
        &["server", "zone", "view"],
    )
});

/// The `view` label: exdns has no views, CoreDNS leaves it empty without one.
const VIEW: &str = "";

/// The handler: every `acl` occurrence of a server block, in file order.
#[derive(Debug)]
pub struct Acl {
    rules: Vec<Rule>,
    /// The block's view name (the `view` label), set when the chain is linked.
    view: std::sync::OnceLock<Arc<str>>,
}

/// One `acl [ZONES...] { ... }` occurrence.
#[derive(Debug)]
struct Rule {
    /// Normalized zones (`example.org.`).
    zones: Vec<String>,
    policies: Vec<Policy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Allow,
    Block,
    Filter,
    Drop,
}

/// `ACTION [type QTYPE...] [net SOURCE...]`.
#[derive(Debug)]
struct Policy {
    action: Action,
    /// `None`: every type.
    qtypes: Option<Vec<u16>>,
    sources: IpSet,
}

impl Policy {
    fn matches(&self, qtype: u16, ip: IpAddr) -> bool {
        if let Some(types) = &self.qtypes
            && !types.contains(&qtype)
        {
            return false;
        }
        self.sources.contains(ip)
    }
}

/// A set of networks as sorted, merged, disjoint address ranges: a lookup is a binary search.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IpSet {
    /// Every IPv4 and IPv6 address.
    fn any() -> Self {
        IpSet {
            v4: vec![(0, u32::MAX)],
            v6: vec![(0, u128::MAX)],
        }
    }

    fn from_nets(nets: &[IpNet]) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for n in nets {
            match n {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        IpSet {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(a) => in_ranges(&self.v4, u32::from(a)),
            IpAddr::V6(a) => in_ranges(&self.v6, u128::from(a)),
        }
    }
}

fn merge<T: Ord + Copy>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        if let Some(last) = out.last_mut()
            && start <= last.1
        {
            if end > last.1 {
                last.1 = end;
            }
            continue;
        }
        out.push((start, end));
    }
    out
}

fn in_ranges<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    let i = ranges.partition_point(|r| r.1 < x);
    ranges.get(i).is_some_and(|r| r.0 <= x)
}

/// What the rules decided, with the zone of the deciding rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision<'a> {
    Allow,
    Block(&'a str),
    Filter(&'a str),
    Drop(&'a str),
}

impl Acl {
    fn new(rules: Vec<Rule>) -> Self {
        Acl {
            rules,
            view: std::sync::OnceLock::new(),
        }
    }

    fn decide(&self, req: &Request) -> Decision<'_> {
        let qtype = u16::from(req.qtype());
        let ip = req.src.ip();
        for rule in &self.rules {
            let Some(zone) = match_zone(&rule.zones, &req.name) else {
                continue;
            };
            let action = rule
                .policies
                .iter()
                .find(|p| p.matches(qtype, ip))
                .map(|p| p.action);
            match action {
                Some(Action::Allow) => return Decision::Allow,
                Some(Action::Block) => return Decision::Block(zone),
                Some(Action::Filter) => return Decision::Filter(zone),
                Some(Action::Drop) => return Decision::Drop(zone),
                None => {}
            }
        }
        Decision::Allow
    }
}

/// An empty reply with `rcode`, with an Extended DNS Error when the query had EDNS.
fn denial(req: &Request, rcode: ResponseCode, info_code: u16) -> Message {
    let mut m = req.reply_code(rcode);
    if req.msg.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(req.udp_size());
        edns.set_dnssec_ok(req.do_bit());
        edns.options_mut().insert(EdnsOption::Unknown(
            EDE_OPTION,
            info_code.to_be_bytes().to_vec(),
        ));
        m.edns = Some(edns);
    }
    m
}

#[async_trait]
impl Plugin for Acl {
    fn link(&self, chain: &[Arc<dyn Plugin>]) {
        if let Some(v) = crate::plugin::view_of(chain) {
            let _ = self.view.set(v);
        }
    }

    fn name(&self) -> &'static str {
        "acl"
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        match self.decide(req) {
            Decision::Allow => {
                ALLOWED
                    .with_label_values(&[&*req.server, self.view.get().map_or(VIEW, |v| v)])
                    .inc();
                next.serve(req).await
            }
            Decision::Block(zone) => {
                BLOCKED
                    .with_label_values(&[&*req.server, zone, self.view.get().map_or(VIEW, |v| v)])
                    .inc();
                Outcome::reply(denial(req, ResponseCode::Refused, EDE_BLOCKED), "acl")
            }
            Decision::Filter(zone) => {
                FILTERED
                    .with_label_values(&[&*req.server, zone, self.view.get().map_or(VIEW, |v| v)])
                    .inc();
                Outcome::reply(denial(req, ResponseCode::NoError, EDE_FILTERED), "acl")
            }
            Decision::Drop(zone) => {
                DROPPED
                    .with_label_values(&[&*req.server, zone, self.view.get().map_or(VIEW, |v| v)])
                    .inc();
                Outcome::Drop { plugin: "acl" }
            }
        }
    }
}

#[cfg(test)]
mod tests;
