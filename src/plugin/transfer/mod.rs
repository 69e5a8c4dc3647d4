//! `transfer`: zone transfers out (AXFR, RFC 5936; IXFR, RFC 1995) and NOTIFY (RFC 1996), with
//! CoreDNS's syntax and semantics, so standard secondaries (NSD, Knot, BIND, providers that pull
//! by AXFR) serve the zones of the authoritative plugins of the block.
//!
//! - Zone data come from the block's authoritative plugins through [`Transferer`] (k8s_gateway
//!   and file): the first one that has the zone answers, as CoreDNS's Transferer list does.
//!   Each transfer reads one version of the zone, so a transfer is never torn by a change.
//! - AXFR only over TCP/DoT (UDP: REFUSED, as CoreDNS); messages are packed up to 63,000
//!   bytes (CoreDNS 1.14.3's batching) with compressed names; SOA first and last.
//! - IXFR from an in-memory journal: a background task watches each zone's serial, and on a
//!   change diffs the new version against the previous one (not a re-list). A client that is
//!   current gets the SOA; a serial the journal does not reach gets the whole zone
//!   (AXFR-style). Over UDP, an IXFR that does not fit is answered with the SOA alone.
//! - NOTIFY on every serial change to each `to` address (not `*`, not a network), from the
//!   block's address (or `source`), retried with backoff until answered; a newer change
//!   replaces a pending one. Incoming NOTIFY for a zone of ours: NOERROR; else NOTAUTH.
//! - AXFR/IXFR from an address not in `to`: REFUSED at once. At most [`MAX_TRANSFERS`]
//!   transfers run at once; more wait a moment, then get REFUSED.

mod journal;
mod notify;
mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use ipnet::IpNet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::dns::request::{Outcome, Request};
use crate::plugin::util::TaskSlot;
use crate::plugin::zones::in_zone;
use crate::plugin::{Next, Plugin, StartupCtx};

use journal::Journals;

pub const NAME: &str = "transfer";

/// Transfers that may run at once (per `transfer` directive); the rest wait [`SLOT_WAIT`].
pub const MAX_TRANSFERS: usize = 8;
const SLOT_WAIT: Duration = Duration::from_secs(2);
/// A message is closed before its records (uncompressed) would pass this many bytes: CoreDNS
/// 1.14.3's batching, room left for header, question and a TSIG record. Names are compressed
/// against the zone's name near the start of each message (`wire::encode`; hickory's encoder
/// gives up compressing after 120 names or 16 KB, which made 100,000 names 3.52 MB instead of
/// 2.6 MB).
pub const BATCH_BYTES: usize = 63_000;

/// Zone data for transfers, implemented by authoritative plugins (CoreDNS's Transferer).
pub trait Transferer: Send + Sync {
    /// The current serial of `zone` (lower-case, absolute), or `None` when this plugin is not
    /// authoritative for it or cannot serve it yet (not synced, not loaded).
    fn serial(&self, zone: &str) -> Option<u32>;
    /// One consistent version of `zone`: its SOA first, then every other record (NS, glue and
    /// data; no closing SOA). `None` as for [`Transferer::serial`].
    fn records(&self, zone: &str) -> Option<Vec<Record>>;
}

/// Who may transfer, and who gets NOTIFY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// `*`: anyone (no NOTIFY).
    Any,
    /// An address (`:53` unless given): may transfer, and is notified.
    Addr(SocketAddr),
    /// A network (exdns's extension to CoreDNS's syntax): may transfer; not notified.
    Net(IpNet),
}

impl To {
    fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match self {
            To::Any => true,
            To::Addr(a) => canonical(a.ip()) == ip,
            To::Net(n) => n.contains(&ip),
        }
    }
}

/// A v4-mapped IPv6 peer (dual-stack socket) is the IPv4 client.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// One `transfer [ZONE...] { to ...; source ... }` occurrence.
#[derive(Debug, Clone)]
pub struct Xfr {
    /// Lower-case absolute zones.
    pub zones: Vec<String>,
    pub to: Vec<To>,
    pub source: Option<IpAddr>,
}

impl Xfr {
    fn allows(&self, ip: IpAddr) -> bool {
        self.to.iter().any(|t| t.allows(ip))
    }
}

/// The handler.
pub struct Transfer {
    xfrs: Vec<Xfr>,
    sources: OnceLock<Vec<Arc<dyn Transferer>>>,
    journals: Arc<Journals>,
    slots: Arc<Semaphore>,
    task: TaskSlot,
}

impl Transfer {
    pub fn new(xfrs: Vec<Xfr>) -> Self {
        Transfer {
            xfrs,
            sources: OnceLock::new(),
            journals: Arc::new(Journals::default()),
            slots: Arc::new(Semaphore::new(MAX_TRANSFERS)),
            task: TaskSlot::default(),
        }
    }

    /// The `transfer` occurrence whose zone is the longest match for `name`, and that zone
    /// (CoreDNS's longestMatch).
    fn longest_match(&self, name: &str) -> Option<(&Xfr, &str)> {
        let mut best: Option<(&Xfr, &str)> = None;
        for x in &self.xfrs {
            for z in &x.zones {
                if in_zone(name, z)
                    && best.is_none_or(|(_, b)| {
                        z.len() > b.len() || (z.len() == b.len() && z.as_str() > b)
                    })
                {
                    best = Some((x, z));
                }
            }
        }
        best
    }

    fn source_for(&self, zone: &str) -> Option<Arc<dyn Transferer>> {
        self.sources
            .get()?
            .iter()
            .find(|t| t.serial(zone).is_some())
            .cloned()
    }

    /// An incoming NOTIFY: acknowledged for a zone we transfer, NOTAUTH otherwise. exdns is
    /// the primary of its zones, so there is nothing to fetch.
    fn notify_in(&self, req: &Request) -> Outcome {
        let ours = req.qtype() == RecordType::SOA
            && self
                .longest_match(&req.name)
                .is_some_and(|(_, z)| z == req.name && self.source_for(z).is_some());
        if !ours {
            return Outcome::code(ResponseCode::NotAuth, NAME);
        }
        let mut m = req.reply();
        m.metadata.authoritative = true;
        Outcome::reply(m, NAME)
    }

    async fn transfer(&self, req: &Request, next: Next<'_>) -> Outcome {
        let qtype = req.qtype();
        let Some((x, zone)) = self.longest_match(&req.name) else {
            return next.serve(req).await;
        };
        // Only the zone's apex can be transferred.
        if zone != req.name {
            return Outcome::code(ResponseCode::NotAuth, NAME);
        }
        if qtype == RecordType::AXFR && !req.proto.is_stream() {
            count(qtype, "refused");
            return Outcome::code(ResponseCode::Refused, NAME);
        }
        if !x.allows(req.src.ip()) {
            count(qtype, "refused");
            tracing::warn!(target: "exdns::plugin::transfer", "refused {qtype} of {zone} to {}: not in 'to'", req.src.ip());
            return Outcome::code(ResponseCode::Refused, NAME);
        }
        let Some(src) = self.source_for(zone) else {
            return next.serve(req).await;
        };
        // IXFR: the client's serial is the SOA in the authority section (RFC 1995 §3).
        let client_serial = if qtype == RecordType::IXFR {
            let soas: Vec<u32> = req
                .msg
                .authorities
                .iter()
                .filter_map(|r| match &r.data {
                    hickory_proto::rr::RData::SOA(s) => Some(s.serial),
                    _ => None,
                })
                .collect();
            if soas.len() != 1 || req.msg.authorities.len() != 1 {
                count(qtype, "formerr");
                return Outcome::code(ResponseCode::FormErr, NAME);
            }
            Some(soas[0])
        } else {
            None
        };
        // A slot first: a flood of requests must not read the zone many times at once.
        let Ok(Ok(permit)) =
            tokio::time::timeout(SLOT_WAIT, self.slots.clone().acquire_owned()).await
        else {
            count(qtype, "busy");
            tracing::warn!(target: "exdns::plugin::transfer", "refused {qtype} of {zone} to {}: {MAX_TRANSFERS} transfers running", req.src.ip());
            return Outcome::code(ResponseCode::Refused, NAME);
        };
        // Reading a large zone takes a moment: off the runtime's workers.
        let z = zone.to_string();
        let read = tokio::task::spawn_blocking(move || src.records(&z)).await;
        let Ok(Some(records)) = read else {
            return next.serve(req).await;
        };
        let Some(soa) = records
            .first()
            .filter(|r| r.record_type() == RecordType::SOA)
            .cloned()
        else {
            return Outcome::code(ResponseCode::ServFail, NAME);
        };
        let serial = soa_serial(&soa);
        let mut first = req.reply();
        first.metadata.authoritative = true;
        first.metadata.recursion_available = false;

        if let Some(cs) = client_serial {
            // Up to date (or ahead): the SOA alone.
            if !serial_lt(cs, serial) {
                count(qtype, "uptodate");
                first.answers.push(soa);
                tracing::info!(target: "exdns::plugin::transfer", "Outgoing noop, incremental transfer for up to date zone \"{zone}\" to {} for {serial} SOA serial", req.src.ip());
                return Outcome::reply(first, NAME);
            }
            if let Some(diffs) = self.journals.since(zone, cs, serial) {
                let mut rrs = vec![soa.clone()];
                for d in diffs.iter() {
                    rrs.push(d.from_soa.clone());
                    rrs.extend(d.removed.iter().cloned());
                    rrs.push(d.to_soa.clone());
                    rrs.extend(d.added.iter().cloned());
                }
                rrs.push(soa.clone());
                if !req.proto.is_stream() {
                    // One datagram, or the SOA alone (RFC 1995 §2): the client retries over TCP.
                    let mut m = first.clone();
                    m.answers = rrs;
                    let fits = m.to_vec().is_ok_and(|b| b.len() <= req.reply_limit());
                    if !fits {
                        m.answers = vec![soa];
                    }
                    count(qtype, if fits { "incremental" } else { "uptodate" });
                    return Outcome::reply(m, NAME);
                }
                count(qtype, "incremental");
                tracing::info!(target: "exdns::plugin::transfer", "Outgoing incremental transfer of {} records of zone \"{zone}\" to {} from {cs} to {serial} SOA serial", rrs.len(), req.src.ip());
                return stream(first, rrs, permit);
            }
            if !req.proto.is_stream() {
                // A full transfer never fits a datagram: the SOA tells the client to use TCP.
                count(qtype, "uptodate");
                first.answers.push(soa);
                return Outcome::reply(first, NAME);
            }
        }
        // AXFR (or the IXFR fallback): SOA, every record, SOA.
        let mut rrs = records;
        rrs.push(soa);
        count(qtype, "full");
        tracing::info!(target: "exdns::plugin::transfer", "Outgoing transfer of {} records of zone \"{zone}\" to {} for {serial} SOA serial", rrs.len(), req.src.ip());
        stream(first, rrs, permit)
    }
}

/// Streams `rrs` in messages shaped like `template`; the slot is held until the last is sent.
fn stream(template: Message, rrs: Vec<Record>, permit: OwnedSemaphorePermit) -> Outcome {
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let _permit = permit;
        for msg in pack(&template, rrs) {
            if tx.send(msg).await.is_err() {
                return; // the client went away
            }
        }
    });
    Outcome::Transfer {
        messages: rx,
        plugin: NAME,
    }
}

/// The messages of a transfer: `rrs` in order, each message closed before it would pass
/// [`BATCH_BYTES`] (the records' uncompressed size, so compressed messages stay below it).
pub fn pack(template: &Message, rrs: Vec<Record>) -> impl Iterator<Item = Vec<u8>> + Send + use<> {
    let template = template.clone();
    let mut rrs = rrs.into_iter().peekable();
    std::iter::from_fn(move || {
        rrs.peek()?;
        let mut m = template.clone();
        let mut size = 0;
        while let Some(r) = rrs.peek() {
            let len = record_len(r);
            if !m.answers.is_empty() && size + len > BATCH_BYTES {
                break;
            }
            size += len;
            m.answers.push(rrs.next().expect("peeked"));
        }
        if let Some(b) = crate::dns::wire::encode::encode(&m) {
            return Some(b);
        }
        // A record type exdns's encoder leaves to hickory (file zones: CAA, DS, ...).
        match m.to_vec() {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::error!(target: "exdns::plugin::transfer", "cannot encode a transfer message: {e}");
                None
            }
        }
    })
}

/// An upper bound of a record's wire size without compression (no allocation for the types
/// zones mostly hold).
fn record_len(r: &Record) -> usize {
    use hickory_proto::rr::RData;
    use hickory_proto::serialize::binary::BinEncodable;
    let name = |n: &hickory_proto::rr::Name| n.len() + 2;
    let rdata = match &r.data {
        RData::A(_) => 4,
        RData::AAAA(_) => 16,
        RData::NS(n) => name(&n.0),
        RData::CNAME(n) => name(&n.0),
        RData::PTR(n) => name(&n.0),
        RData::MX(mx) => 2 + name(&mx.exchange),
        RData::SOA(soa) => name(&soa.mname) + name(&soa.rname) + 20,
        RData::TXT(t) => t.txt_data.iter().map(|s| s.len() + 1).sum(),
        other => other.to_bytes().map_or(512, |b| b.len()),
    };
    name(&r.name) + 10 + rdata
}

fn soa_serial(r: &Record) -> u32 {
    match &r.data {
        hickory_proto::rr::RData::SOA(s) => s.serial,
        _ => 0,
    }
}

/// RFC 1982: whether serial `a` is before `b`.
pub fn serial_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

/// `exdns_transfer_requests_total{type, outcome}`.
static REQUESTS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    crate::metrics::counter_vec(
        "exdns_transfer_requests_total",
        "Zone transfer requests, by type (AXFR, IXFR) and outcome: full, incremental, uptodate (the SOA alone), refused, busy (too many transfers running), formerr.",
        &["type", "outcome"],
    )
});

fn count(qtype: RecordType, outcome: &str) {
    REQUESTS
        .with_label_values(&[&qtype.to_string(), outcome])
        .inc();
}

#[async_trait]
impl Plugin for Transfer {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        if req.msg.metadata.op_code == OpCode::Notify {
            return self.notify_in(req);
        }
        match req.qtype() {
            RecordType::AXFR | RecordType::IXFR => self.transfer(req, next).await,
            _ => next.serve(req).await,
        }
    }

    fn link(&self, chain: &[Arc<dyn Plugin>]) {
        let found: Vec<Arc<dyn Transferer>> = chain
            .iter()
            .filter_map(|p| p.clone().transferer())
            .collect();
        let _ = self.sources.set(found);
    }

    fn accepts_notify(&self) -> bool {
        true
    }

    async fn on_startup(&self, ctx: &StartupCtx) -> Result<(), String> {
        let sources = self.sources.get().cloned().unwrap_or_default();
        if sources.is_empty() {
            tracing::warn!(target: "exdns::plugin::transfer", "no plugin in this block can transfer a zone (k8s_gateway or file)");
        }
        let task = tokio::spawn(notify::watch(
            self.xfrs.clone(),
            sources,
            self.journals.clone(),
            ctx.dns_addrs.clone(),
        ));
        self.task.set(task);
        Ok(())
    }

    fn on_shutdown(&self) {
        self.task.stop();
    }
}

/// Builds a NOTIFY for `zone` carrying its SOA (RFC 1996 §3.7).
fn notify_message(id: u16, zone: &hickory_proto::rr::Name, soa: Option<Record>) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Notify);
    m.metadata.authoritative = true;
    m.queries.push(hickory_proto::op::Query::query(
        zone.clone(),
        RecordType::SOA,
    ));
    if let Some(s) = soa {
        m.answers.push(s);
    }
    m
}
