//! A cached reply and how long it may be kept (CoreDNS's `dnsutil.MinimalTTL`, with RFC 2308's
//! SOA rule for denials).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};

use crate::plugin::response::RespType;
use crate::server::request::Request;

/// CoreDNS's `MinimalDefaultTTL`: the TTL used when a message gives nothing better.
pub(crate) const MINIMAL_DEFAULT_TTL: Duration = Duration::from_secs(5);

/// The lowest TTL in `m` (answer, authority, additional except OPT), never above `max`. For a
/// denial the SOA counts as min(SOA TTL, SOA MINIMUM) (RFC 2308 section 5). Types other than
/// NoError/NameError/NoData and messages without records get [`MINIMAL_DEFAULT_TTL`].
pub(crate) fn minimal_ttl(m: &Message, t: RespType, max: Duration) -> Duration {
    if !matches!(
        t,
        RespType::NoError | RespType::NameError | RespType::NoData
    ) {
        return MINIMAL_DEFAULT_TTL;
    }
    let records = m
        .answers
        .iter()
        .chain(m.authorities.iter())
        .chain(m.additionals.iter())
        .filter(|r| r.record_type() != RecordType::OPT);
    let denial = matches!(t, RespType::NameError | RespType::NoData);
    let mut min: Option<u64> = None;
    for r in records {
        let mut ttl = r.ttl as u64;
        if denial && let RData::SOA(soa) = &r.data {
            ttl = ttl.min(soa.minimum as u64);
        }
        min = Some(min.map_or(ttl, |m| m.min(ttl)));
    }
    match min {
        None => MINIMAL_DEFAULT_TTL,
        Some(s) => Duration::from_secs(s).min(max),
    }
}

/// Which of the two caches an entry lives in (the `type` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Success,
    Denial,
}

impl Kind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Success => super::SUCCESS,
            Kind::Denial => super::DENIAL,
        }
    }
}

/// What identifies a cached reply: the question (lower-cased name) and the DO and CD bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key<'a> {
    pub name: &'a str,
    pub qtype: RecordType,
    pub qclass: DNSClass,
    pub do_bit: bool,
    pub cd: bool,
}

impl<'a> Key<'a> {
    pub(crate) fn of(req: &'a Request) -> Self {
        Key {
            name: &req.name,
            qtype: req.qtype(),
            qclass: req.qclass(),
            do_bit: req.do_bit(),
            cd: req.msg.metadata.checking_disabled,
        }
    }
}

/// Hit counting for prefetch (CoreDNS's `freq.Freq`).
#[derive(Debug, Default)]
struct Freq {
    last: Option<Instant>,
    hits: u32,
}

/// One cached reply.
#[derive(Debug)]
pub(crate) struct Item {
    name: String,
    qtype: RecordType,
    qclass: DNSClass,
    do_bit: bool,
    cd: bool,

    pub(crate) kind: Kind,
    pub(crate) rcode: ResponseCode,
    authentic_data: bool,
    recursion_available: bool,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,

    /// The TTL the entry was stored with, in seconds.
    pub(crate) orig_ttl: u32,
    pub(crate) stored: Instant,
    /// The `server` label of the request that stored it (for the eviction counter).
    pub(crate) server: std::sync::Arc<str>,

    freq: Mutex<Freq>,
    /// A background refresh of this entry is running.
    pub(crate) refreshing: AtomicBool,
}

impl Item {
    pub(crate) fn new(
        key: &Key<'_>,
        m: &Message,
        kind: Kind,
        now: Instant,
        ttl: Duration,
        server: std::sync::Arc<str>,
    ) -> Self {
        let keep = |rs: &[Record]| -> Vec<Record> {
            rs.iter()
                .filter(|r| r.record_type() != RecordType::OPT)
                .cloned()
                .collect()
        };
        Item {
            name: key.name.to_string(),
            qtype: key.qtype,
            qclass: key.qclass,
            do_bit: key.do_bit,
            cd: key.cd,
            kind,
            rcode: m.metadata.response_code,
            authentic_data: m.metadata.authentic_data,
            recursion_available: m.metadata.recursion_available,
            answers: keep(&m.answers),
            authorities: keep(&m.authorities),
            additionals: keep(&m.additionals),
            orig_ttl: ttl.as_secs().min(u32::MAX as u64) as u32,
            stored: now,
            server,
            freq: Mutex::new(Freq::default()),
            refreshing: AtomicBool::new(false),
        }
    }

    /// Whether this entry answers exactly `key` (guards against hash collisions).
    pub(crate) fn matches(&self, key: &Key<'_>) -> bool {
        self.qtype == key.qtype
            && self.qclass == key.qclass
            && self.do_bit == key.do_bit
            && self.cd == key.cd
            && self.name == key.name
    }

    /// Seconds left before expiry; negative once expired (whole seconds of age, as CoreDNS).
    pub(crate) fn ttl(&self, now: Instant) -> i64 {
        let age = now.saturating_duration_since(self.stored).as_secs();
        self.orig_ttl as i64 - age.min(i64::MAX as u64) as i64
    }

    /// Whether it can answer at `now`: fresh, or expired by less than `stale_up_to`.
    pub(crate) fn usable(&self, now: Instant, stale_up_to: Duration) -> bool {
        let ttl = self.ttl(now);
        ttl > 0 || (!stale_up_to.is_zero() && ((-ttl) as u64) < stale_up_to.as_secs())
    }

    /// Counts a hit in the `window` sliding window; returns the hit count.
    pub(crate) fn update_hits(&self, window: Duration, now: Instant) -> u32 {
        let mut f = self.freq.lock().unwrap_or_else(|e| e.into_inner());
        let outside = match (f.last, now.checked_sub(window)) {
            (None, _) => true,
            (Some(last), Some(earliest)) => last < earliest,
            (Some(_), None) => false,
        };
        f.hits = if outside { 1 } else { f.hits.saturating_add(1) };
        f.last = Some(now);
        f.hits
    }

    pub(crate) fn hits(&self) -> u32 {
        self.freq.lock().unwrap_or_else(|e| e.into_inner()).hits
    }

    /// Carries the hit history of the entry it replaced (after a prefetch).
    pub(crate) fn reset_hits(&self, now: Instant, hits: u32) {
        let mut f = self.freq.lock().unwrap_or_else(|e| e.into_inner());
        f.last = Some(now);
        f.hits = hits;
    }

    /// The reply to `req` from this entry, every record with `ttl`. AA is set (as CoreDNS does
    /// for answers from its cache); AD only when the client asked for DNSSEC (DO) or set AD.
    pub(crate) fn to_msg(&self, req: &Request, ttl: u32, do_bit: bool, ad: bool) -> Message {
        let mut m = req.reply();
        m.metadata.authoritative = true;
        m.metadata.authentic_data = self.authentic_data && (do_bit || ad);
        m.metadata.recursion_available = self.recursion_available;
        m.metadata.response_code = self.rcode;
        m.answers = with_ttl(&self.answers, ttl);
        m.authorities = with_ttl(&self.authorities, ttl);
        m.additionals = with_ttl(&self.additionals, ttl);
        m
    }
}

fn with_ttl(rs: &[Record], ttl: u32) -> Vec<Record> {
    rs.iter()
        .map(|r| {
            let mut r = r.clone();
            r.ttl = ttl;
            r
        })
        .collect()
}

/// Sets every record TTL in `rs` (OPT excepted) to `ttl`.
pub(crate) fn set_ttls(rs: &mut [Record], ttl: u32) {
    for r in rs.iter_mut() {
        if r.record_type() != RecordType::OPT {
            r.ttl = ttl;
        }
    }
}

/// Marks `item` as not refreshing when dropped (also when a refresh task panics).
pub(crate) struct RefreshGuard(pub(crate) std::sync::Arc<Item>);

impl Drop for RefreshGuard {
    fn drop(&mut self) {
        self.0.refreshing.store(false, Ordering::Release);
    }
}
