//! A cached reply and how long it may be kept (CoreDNS's `dnsutil.MinimalTTL`, with RFC 2308's
//! SOA rule for denials).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, RecordType};

use crate::dns::request::Request;
use crate::dns::view::QueryView;
use crate::dns::wire::{self, Layout};
use crate::plugin::response::RespType;

/// CoreDNS's `MinimalDefaultTTL`: the TTL used when a message gives nothing better.
pub(crate) const MINIMAL_DEFAULT_TTL: Duration = Duration::from_secs(5);

/// The lowest TTL in `buf` (answer, authority, additional except OPT), never above `max`. For a
/// denial the SOA counts as min(SOA TTL, SOA MINIMUM) (RFC 2308 section 5). Types other than
/// NoError/NameError/NoData and messages without records get [`MINIMAL_DEFAULT_TTL`].
pub(crate) fn minimal_ttl(buf: &[u8], layout: &Layout, t: RespType, max: Duration) -> Duration {
    if !matches!(
        t,
        RespType::NoError | RespType::NameError | RespType::NoData
    ) {
        return MINIMAL_DEFAULT_TTL;
    }
    let denial = matches!(t, RespType::NameError | RespType::NoData);
    let mut min: Option<u64> = None;
    for r in layout.rrs.iter().filter(|r| r.rtype != wire::T_OPT) {
        let mut ttl = r.ttl(buf) as u64;
        if denial && r.rtype == wire::T_SOA {
            // scan checked the SOA's RDATA: two names, then 20 octets ending with MINIMUM.
            let minimum = u32::from_be_bytes(buf[r.end - 4..r.end].try_into().unwrap_or([0; 4]));
            ttl = ttl.min(minimum as u64);
        }
        min = Some(min.map_or(ttl, |m| m.min(ttl)));
    }
    match min {
        None => MINIMAL_DEFAULT_TTL,
        Some(s) => Duration::from_secs(s).min(max),
    }
}

/// Sets every record TTL in `buf` (OPT excepted) to `ttl`.
pub(crate) fn set_ttls(buf: &mut [u8], layout: &Layout, ttl: u32) {
    let t = ttl.to_be_bytes();
    for r in layout.rrs.iter().filter(|r| r.rtype != wire::T_OPT) {
        buf[r.ttl_at..r.ttl_at + 4].copy_from_slice(&t);
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

/// One cached reply, kept as the bytes it is answered with.
#[derive(Debug)]
pub(crate) struct Item {
    name: String,
    qtype: RecordType,
    qclass: DNSClass,
    do_bit: bool,
    cd: bool,

    pub(crate) kind: Kind,
    pub(crate) rcode: ResponseCode,
    /// The reply as stored: ID 0, no OPT record, the question's name in lower case, the flags
    /// as received, every TTL the stored TTL.
    wire: Box<[u8]>,
    /// Offsets of the TTL fields in `wire`.
    ttls: Box<[u16]>,
    /// End of the question's name in `wire`.
    qname_end: usize,

    /// The TTL the entry was stored with, in seconds.
    pub(crate) orig_ttl: u32,
    pub(crate) stored: Instant,
    /// The `server` label of the request that stored it (for the eviction counter).
    pub(crate) server: std::sync::Arc<str>,

    freq: Mutex<Freq>,
    /// A background refresh of this entry is running.
    pub(crate) refreshing: AtomicBool,
    /// A denial for the same key was stored after this (success) entry.
    denied_later: AtomicBool,
    /// serve_stale FAILURE_RECHECK: no refresh before this instant (a refresh failed).
    retry_after: Mutex<Option<Instant>>,
    /// `serve_stale_policy prefer_positive`: the entry answers its question (a NOERROR reply
    /// with answer records).
    pub(crate) answering: bool,
    /// `serve_stale_policy prefer_positive`: the answering entry this non-answering success
    /// entry replaced, still served while usable (CoreDNS's `lastKnownGood`).
    pub(crate) last_known_good: Option<std::sync::Arc<Item>>,
}

impl Item {
    /// An entry for `key` from `reply` (laid out as `layout`, its TTLs already the entry's).
    /// `None` when the reply's OPT record is not its last record (not worth storing).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        key: &Key<'_>,
        reply: &[u8],
        layout: &Layout,
        rcode: ResponseCode,
        kind: Kind,
        now: Instant,
        ttl: Duration,
        server: std::sync::Arc<str>,
    ) -> Option<Self> {
        let mut w = reply[..layout.end].to_vec();
        let mut rrs = &layout.rrs[..];
        if let Some(i) = layout.opt {
            if i + 1 != rrs.len() {
                return None;
            }
            w.truncate(rrs[i].start);
            let ar = wire::u16_at(&w, 10) - 1;
            w[10..12].copy_from_slice(&ar.to_be_bytes());
            rrs = &rrs[..i];
        }
        w[0] = 0;
        w[1] = 0;
        wire::lowercase_qname(&mut w, layout);
        let ttls = rrs.iter().map(|r| r.ttl_at as u16).collect();
        Some(Item {
            name: key.name.to_string(),
            qtype: key.qtype,
            qclass: key.qclass,
            do_bit: key.do_bit,
            cd: key.cd,
            kind,
            rcode,
            wire: w.into_boxed_slice(),
            ttls,
            qname_end: layout.qname_end,
            orig_ttl: ttl.as_secs().min(u32::MAX as u64) as u32,
            stored: now,
            server,
            freq: Mutex::new(Freq::default()),
            refreshing: AtomicBool::new(false),
            denied_later: AtomicBool::new(false),
            retry_after: Mutex::new(None),
            answering: false,
            last_known_good: None,
        })
    }

    /// Starts a refresh unless one runs or, with `recheck`, a failed one is too recent.
    pub(crate) fn begin_refresh(&self, now: Instant, recheck: Duration) -> bool {
        if !recheck.is_zero()
            && let Some(t) = *self.retry_after.lock().unwrap_or_else(|e| e.into_inner())
            && now < t
        {
            return false;
        }
        !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// Notes how a refresh begun with [`Item::begin_refresh`] went (the flag itself is reset by
    /// its `RefreshGuard`): a failure holds further refreshes off for `recheck`.
    pub(crate) fn end_refresh(&self, now: Instant, recheck: Duration, refreshed: bool) {
        if !recheck.is_zero() && !refreshed {
            *self.retry_after.lock().unwrap_or_else(|e| e.into_inner()) = Some(now + recheck);
        }
    }

    /// This entry if it answers its question, else the answering entry it replaced, if any.
    pub(crate) fn answering_item(self: &std::sync::Arc<Self>) -> Option<std::sync::Arc<Item>> {
        if self.answering {
            return Some(self.clone());
        }
        self.last_known_good.clone().filter(|i| i.answering)
    }

    /// Whether a denial for this entry's key may have been stored after it.
    pub(crate) fn may_be_denied(&self) -> bool {
        self.denied_later.load(Ordering::Relaxed)
    }

    pub(crate) fn set_may_be_denied(&self) {
        self.denied_later.store(true, Ordering::Relaxed);
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

    /// The reply to `req` from this entry, in wire form and finalized for `req`, every record
    /// with `ttl`: the stored bytes with the request's ID, opcode, RD and CD and the case of its
    /// question; AA set (as CoreDNS does for answers from its cache); AD only when the client
    /// asked for DNSSEC (DO) or set AD; an OPT record when the request had EDNS.
    pub(crate) fn reply(&self, req: &Request, ttl: u32, do_bit: bool, ad: bool) -> Vec<u8> {
        let q = &req.msg.metadata;
        let to = ReplyTo {
            id: req.id(),
            opcode: u8::from(q.op_code),
            rd: q.recursion_desired,
            cd: q.checking_disabled,
            ad_ok: do_bit || ad,
            opt: req.msg.edns.as_ref().map(|e| e.flags().dnssec_ok),
        };
        self.build(&to, ttl, |qname| wire::copy_qname_case(qname, req.qname()))
    }

    /// [`Item::reply`] for a query on the fast path.
    pub(crate) fn reply_to_view(&self, q: &QueryView<'_>, ttl: u32) -> Vec<u8> {
        let to = ReplyTo {
            id: q.id(),
            opcode: 0,
            rd: q.recursion_desired(),
            cd: q.checking_disabled(),
            ad_ok: q.do_bit() || q.authentic_data(),
            opt: q.edns.map(|e| e.dnssec_ok),
        };
        self.build(&to, ttl, |qname| {
            // The same name (the entry matched it), so the same length; the client's case.
            let theirs = q.qname_wire();
            if theirs.len() == qname.len() {
                qname.copy_from_slice(theirs);
            }
        })
    }

    fn build(&self, to: &ReplyTo, ttl: u32, case: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire.len() + wire::OPT_SIZE);
        out.extend_from_slice(&self.wire);
        case(&mut out[wire::HEADER..self.qname_end]);
        let stored = wire::flags(&out);
        let mut f = wire::QR | wire::AA | (u16::from(to.opcode) << 11);
        f |= stored & (wire::RA | 0x000f);
        if to.rd {
            f |= wire::RD;
        }
        if to.cd {
            f |= wire::CD;
        }
        if stored & wire::AD != 0 && to.ad_ok {
            f |= wire::AD;
        }
        wire::set_flags(&mut out, f);
        out[0..2].copy_from_slice(&to.id.to_be_bytes());
        let t = ttl.to_be_bytes();
        for &at in self.ttls.iter() {
            let at = at as usize;
            out[at..at + 4].copy_from_slice(&t);
        }
        if let Some(dnssec_ok) = to.opt {
            wire::append_opt(&mut out, dnssec_ok);
        }
        out
    }
}

/// What a reply from the cache takes from the query.
struct ReplyTo {
    id: u16,
    opcode: u8,
    rd: bool,
    cd: bool,
    /// AD may be kept (the client set DO or AD).
    ad_ok: bool,
    /// The query had EDNS, with this DO bit.
    opt: Option<bool>,
}

/// Marks `item` as not refreshing when dropped (also when a refresh task panics).
pub(crate) struct RefreshGuard(pub(crate) std::sync::Arc<Item>);

impl Drop for RefreshGuard {
    fn drop(&mut self) {
        self.0.refreshing.store(false, Ordering::Release);
    }
}
