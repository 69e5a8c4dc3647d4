//! `cache` — a front-end cache for replies, with CoreDNS 1.14's semantics: a success and a denial
//! cache, TTL clamping, SERVFAIL caching, prefetch of popular entries and serve_stale.
//!
//! One instance per directive occurrence, shared by all zones of the server block. Entries live in
//! two moka caches (success, denial) keyed by a hash of (qname, qtype, qclass, DO, CD); every entry
//! re-checks the full key on lookup, so a hash collision is a miss, never a wrong answer.
//!
//! Background refreshes (prefetch, serve_stale `immediate`) run in a `tokio::spawn`ed task with an
//! owned copy of the rest of the chain ([`Next::plugins`]), so the client is answered from the cache
//! at once, as CoreDNS does. At most one refresh per entry runs at a time. No lock is held across
//! an await: the caches are lock-free to the caller, an entry's hit counter is a short mutex.

mod item;
pub mod metrics;
mod setup;
#[cfg(test)]
mod tests;

use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;

use crate::dns::request::{Outcome, Proto, Request};
use crate::dns::view::{FastReply, QueryView};
use crate::dns::wire::{self, Layout};
use crate::plugin::response::{self, RespType};
use crate::plugin::zones::in_zone;
use crate::plugin::{FastNext, Next, Plugin};
use item::{Item, Key, Kind, RefreshGuard};

pub(crate) use setup::go_atoi;
pub use setup::setup;

/// The `type` label of the success cache.
pub const SUCCESS: &str = "success";
/// The `type` label of the denial cache.
pub const DENIAL: &str = "denial";

/// CoreDNS's default capacity per cache (9984 entries once split into 256 shards).
pub const DEFAULT_CAPACITY: i64 = 10000;

/// The `view` label: exdns has no views.
const VIEW: &str = "";

/// The parsed directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Names under these zones are cached; others pass through.
    pub zones: Vec<String>,
    /// Success cache: capacity as configured, max and min TTL.
    pub pcap: i64,
    pub pttl: Duration,
    pub minpttl: Duration,
    /// Denial cache: capacity as configured, max and min TTL.
    pub ncap: i64,
    pub nttl: Duration,
    pub minnttl: Duration,
    /// How long SERVFAIL replies are cached (0: not at all).
    pub failttl: Duration,
    /// Prefetch after this many hits (0: off) with gaps under `duration`, once the TTL left is at
    /// most `percentage`% of the original.
    pub prefetch: u32,
    pub duration: Duration,
    pub percentage: u32,
    /// serve_stale: how long past expiry an entry may still answer (0: off).
    pub stale_up_to: Duration,
    /// serve_stale `verify`: ask upstream first, answer stale only if that fails.
    pub verify_stale: bool,
    /// serve_stale `verify VERIFY_TIMEOUT`: how long the verify is waited for before the stale
    /// entry answers (the verify goes on in the background); 0: until the upstream gives up.
    pub verify_stale_timeout: Duration,
    /// serve_stale RESPONSE_TTL: the TTL of stale answers (`None`: 0, CoreDNS's default).
    pub stale_ttl: Option<u32>,
    /// serve_stale FAILURE_RECHECK: after a failed refresh, the stale entry answers without
    /// asking upstream again for this long (0: every stale hit may refresh).
    pub stale_recheck: Duration,
    /// `serve_stale_policy prefer_positive`: a usable answer in the success cache wins over a
    /// cached denial or failure, and survives a later non-answering NOERROR.
    pub prefer_positive: bool,
    /// `disable success|denial ZONES`: zones whose replies the success/denial cache never stores.
    pub pexcept: Vec<String>,
    pub nexcept: Vec<String>,
    /// `keepttl`: answer with the stored TTL, not decremented by the entry's age.
    pub keepttl: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            zones: vec![".".to_string()],
            pcap: DEFAULT_CAPACITY,
            pttl: Duration::from_secs(3600),
            minpttl: Duration::from_secs(5),
            ncap: DEFAULT_CAPACITY,
            nttl: Duration::from_secs(1800),
            minnttl: Duration::from_secs(5),
            failttl: Duration::from_secs(5),
            prefetch: 0,
            duration: Duration::from_secs(60),
            percentage: 10,
            stale_up_to: Duration::ZERO,
            verify_stale: false,
            verify_stale_timeout: Duration::ZERO,
            stale_ttl: None,
            stale_recheck: Duration::ZERO,
            prefer_positive: false,
            pexcept: Vec::new(),
            nexcept: Vec::new(),
            keepttl: false,
        }
    }
}

/// CoreDNS's effective capacity: 256 shards of `capacity / 256` entries, at least 4 each (so at
/// least 1024 entries; 10000 gives 9984).
pub fn effective_capacity(capacity: i64) -> u64 {
    (capacity / 256).max(4) as u64 * 256
}

/// A source of "now" (injectable for tests).
pub(crate) type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Keyed by the question's 64-bit keyed hash (foldhash, random seed per cache), which moka uses
/// as is: hashing it again would only cost time.
type Store = moka::sync::Cache<u64, Arc<Item>, BuildHasherDefault<U64Identity>>;

/// A `Hasher` for keys that are already uniformly distributed 64-bit hashes.
#[derive(Default)]
pub(crate) struct U64Identity(u64);

impl Hasher for U64Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; fold anything else in rather than lose it.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The request/hit/miss counters of one server label, resolved once (a labelled lookup per query
/// hashes every label value).
struct ServerCounters {
    server: Box<str>,
    requests: prometheus::IntCounter,
    hits: [prometheus::IntCounter; 2],
    misses: prometheus::IntCounter,
    /// `coredns_cache_entries` for the success and the denial cache.
    entries: [prometheus::IntGauge; 2],
}

/// The `cache` handler.
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: Config,
    /// The `zones` metric label: the zones joined by ",".
    zones_label: String,
    pcache: Store,
    ncache: Store,
    hasher: foldhash::fast::RandomState,
    /// Per server label; a handful at most.
    counters: RwLock<Vec<Arc<ServerCounters>>>,
    clock: Clock,
    /// The block's view name (the `view` label), set when the chain is linked.
    view: Arc<std::sync::OnceLock<Arc<str>>>,
}

impl Cache {
    pub fn new(cfg: Config) -> Self {
        Self::with_clock(cfg, Arc::new(Instant::now))
    }

    pub(crate) fn with_clock(cfg: Config, clock: Clock) -> Self {
        let zones_label = cfg.zones.join(",");
        let view: Arc<std::sync::OnceLock<Arc<str>>> = Arc::default();
        let pcache = new_store(&cfg, Kind::Success, &zones_label, &view);
        let ncache = new_store(&cfg, Kind::Denial, &zones_label, &view);
        Cache {
            inner: Arc::new(Inner {
                cfg,
                zones_label,
                pcache,
                ncache,
                hasher: foldhash::fast::RandomState::default(),
                counters: RwLock::new(Vec::new()),
                clock,
                view,
            }),
        }
    }

    /// The parsed configuration.
    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }
}

/// A moka cache with CoreDNS's capacity, LRU eviction (CoreDNS evicts at random; both always
/// admit the new entry), evictions counted, and entries dropped once past any use (TTL plus the
/// serve_stale window; the handler's own TTL check is what decides freshness).
fn new_store(
    cfg: &Config,
    kind: Kind,
    zones_label: &str,
    view: &Arc<std::sync::OnceLock<Arc<str>>>,
) -> Store {
    let view = view.clone();
    let cap = effective_capacity(if kind == Kind::Success {
        cfg.pcap
    } else {
        cfg.ncap
    });
    let zones = zones_label.to_string();
    let slack = cfg.stale_up_to + Duration::from_secs(1);
    moka::sync::Cache::builder()
        .max_capacity(cap)
        .eviction_policy(EvictionPolicy::lru())
        .expire_after(Lifetime { slack })
        .eviction_listener(move |_k, v: Arc<Item>, cause| {
            if cause == RemovalCause::Size {
                metrics::EVICTIONS
                    .with_label_values(&[
                        &*v.server,
                        kind.label(),
                        &zones,
                        view.get().map_or(VIEW, |v| v),
                    ])
                    .inc();
            }
        })
        .build_with_hasher(BuildHasherDefault::default())
}

struct Lifetime {
    slack: Duration,
}

impl moka::Expiry<u64, Arc<Item>> for Lifetime {
    fn expire_after_create(
        &self,
        _key: &u64,
        value: &Arc<Item>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(value.orig_ttl as u64) + self.slack)
    }

    fn expire_after_update(
        &self,
        _key: &u64,
        value: &Arc<Item>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(Duration::from_secs(value.orig_ttl as u64) + self.slack)
    }
}

/// Who consumes a reply that went through the cache.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The client: TTLs are rewritten and AD cleared as needed.
    Client,
    /// A background refresh: only the cache is updated; failures (SERVFAIL) are not stored so
    /// that the entry being refreshed keeps answering.
    Refresh,
}

fn in_any_zone(lower: &str, zones: &[String]) -> bool {
    zones.iter().any(|z| in_zone(lower, z))
}

impl Inner {
    /// The `view` label.
    fn view(&self) -> &str {
        self.view.get().map_or(VIEW, |v| v)
    }
}

impl Inner {
    fn hash(&self, k: &Key<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        k.name.hash(&mut h);
        u16::from(k.qtype).hash(&mut h);
        u16::from(k.qclass).hash(&mut h);
        k.do_bit.hash(&mut h);
        k.cd.hash(&mut h);
        h.finish()
    }

    fn store_for(&self, kind: Kind) -> &Store {
        match kind {
            Kind::Success => &self.pcache,
            Kind::Denial => &self.ncache,
        }
    }

    /// The entry answering `k` at `now` (fresh, or within the serve_stale window), counting the
    /// request, hit or miss. A cached SERVFAIL does not shadow a usable success entry.
    fn lookup(&self, h: u64, k: &Key<'_>, now: Instant, server: &str) -> Option<Arc<Item>> {
        let c = self.counters_for(server);
        c.requests.inc();
        match self.choose(h, k, now) {
            Some(i) => {
                c.hits[i.kind as usize].inc();
                Some(i)
            }
            None => {
                c.misses.inc();
                None
            }
        }
    }

    /// The entry [`Inner::lookup`] answers with, without counting anything: as CoreDNS, a
    /// denial before a success, except that a cached SERVFAIL does not shadow a usable success.
    /// A success entry not marked [`Item::may_be_denied`] has no denial stored after it, so
    /// it answers without a look in the denial cache (most hits are successes).
    fn choose(&self, h: u64, k: &Key<'_>, now: Instant) -> Option<Arc<Item>> {
        let stale = self.cfg.stale_up_to;
        let usable = |i: &Arc<Item>| i.matches(k) && i.usable(now, stale);
        let p = self.pcache.get(&h).filter(usable);
        if self.cfg.prefer_positive
            && !stale.is_zero()
            && let Some(good) = self
                .pcache
                .get(&h)
                .filter(|i| i.matches(k))
                .and_then(|i| i.answering_item())
                .filter(usable)
        {
            // serve_stale_policy prefer_positive: a usable answer wins over any denial.
            return Some(good);
        }
        if let Some(p) = &p
            && !p.may_be_denied()
        {
            return Some(p.clone());
        }
        match self.ncache.get(&h).filter(usable) {
            Some(n) if n.rcode == ResponseCode::ServFail => p.or(Some(n)),
            Some(n) => Some(n),
            None => p,
        }
    }

    /// The TTL a hit on `item` is answered with, `ttl` being what is left of it (0 when
    /// served stale): the stored TTL instead with `keepttl`.
    fn reply_ttl(&self, item: &Item, ttl: i64) -> u32 {
        if self.cfg.keepttl {
            item.orig_ttl
        } else {
            ttl.clamp(0, u32::MAX as i64) as u32
        }
    }

    /// The counters of `server`, resolved on its first query.
    fn counters_for(&self, server: &str) -> Arc<ServerCounters> {
        if let Some(c) = self
            .counters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|c| &*c.server == server)
        {
            return c.clone();
        }
        let zones = self.zones_label.as_str();
        let view = self.view();
        let c = Arc::new(ServerCounters {
            server: server.into(),
            requests: metrics::REQUESTS.with_label_values(&[server, zones, view]),
            hits: [Kind::Success, Kind::Denial]
                .map(|kind| metrics::HITS.with_label_values(&[server, kind.label(), zones, view])),
            misses: metrics::MISSES.with_label_values(&[server, zones, view]),
            entries: [SUCCESS, DENIAL]
                .map(|t| metrics::ENTRIES.with_label_values(&[server, t, zones, view])),
        });
        let mut all = self.counters.write().unwrap_or_else(|e| e.into_inner());
        if !all.iter().any(|x| x.server == c.server) {
            all.push(c.clone());
        }
        c
    }

    /// The entry stored for `k`, whatever its age.
    fn exists(&self, h: u64, k: &Key<'_>) -> Option<Arc<Item>> {
        self.ncache
            .get(&h)
            .filter(|i| i.matches(k))
            .or_else(|| self.pcache.get(&h).filter(|i| i.matches(k)))
    }

    /// CoreDNS's prefetch rule: counts the hit, then prefetch when it was hit at least `prefetch`
    /// times without a gap of `duration` and at most `percentage`% of its TTL is left.
    fn should_prefetch(&self, i: &Item, now: Instant) -> bool {
        if self.cfg.prefetch == 0 {
            return false;
        }
        let hits = i.update_hits(self.cfg.duration, now);
        // Float arithmetic as CoreDNS does it (math.Ceil(float64(pct) / 100 * float64(origTTL))).
        let threshold = (self.cfg.percentage as f64 / 100.0 * i.orig_ttl as f64).ceil() as i64;
        hits >= self.cfg.prefetch && i.ttl(now) <= threshold
    }

    /// Runs what followed the cache for `req` and stores the result; the client gets the result.
    /// Handles what CoreDNS's caching ResponseWriter does on WriteMsg. Replies are handled in
    /// wire form: a decoded reply is encoded here once (the server would encode it anyway),
    /// stored as bytes, and handed on as the bytes the server sends.
    fn process(&self, req: &Request, out: Outcome, mode: Mode) -> Outcome {
        let (bytes, plugin, was_code) = match out {
            Outcome::Wire { bytes, plugin, .. } => (bytes, plugin, false),
            Outcome::Reply { msg, plugin } => match encode_plain(req, msg) {
                Ok(b) => (b, plugin, false),
                Err(msg) => return Outcome::Reply { msg: *msg, plugin },
            },
            // A SERVFAIL without a reply is cached as the empty SERVFAIL reply the server writes.
            Outcome::Code {
                rcode: ResponseCode::ServFail,
                plugin,
            } => match encode_plain(req, req.reply_code(ResponseCode::ServFail)) {
                Ok(b) => (b, plugin, true),
                Err(_) => return Outcome::code(ResponseCode::ServFail, plugin),
            },
            other => return other,
        };
        let Some(layout) = wire::scan(&bytes) else {
            // Not a well-formed reply (cannot come from exdns's own encoder): passed on uncached.
            let rcode = ResponseCode::from_low(wire::header_rcode(&bytes) as u8);
            return Outcome::Wire {
                bytes,
                rcode,
                plugin,
            };
        };
        let mut bytes = bytes;
        let rcode = wire::rcode(&bytes, &layout);
        let t = response::typify_wire(&bytes, &layout, rcode);
        let cfg = &self.cfg;
        let duration = match t {
            RespType::NameError | RespType::NoData => {
                item::minimal_ttl(&bytes, &layout, t, cfg.nttl).clamp_between(cfg.minnttl, cfg.nttl)
            }
            RespType::ServerError => cfg.failttl,
            _ => {
                item::minimal_ttl(&bytes, &layout, t, cfg.pttl).clamp_between(cfg.minpttl, cfg.pttl)
            }
        };

        // The client sees the TTL the entry gets (no 1799 -> 8 jumps between miss and hit).
        if matches!(
            t,
            RespType::NoError
                | RespType::Delegation
                | RespType::NameError
                | RespType::NoData
                | RespType::ServerError
        ) {
            let ttl = duration.as_secs().min(u32::MAX as u64) as u32;
            item::set_ttls(&mut bytes, &layout, ttl);
        }

        let skip_failure = mode == Mode::Refresh && t == RespType::ServerError;
        if cacheable(&bytes, &layout, t) && !duration.is_zero() && !skip_failure {
            if reply_matches(req, &bytes, &layout) {
                self.store(req, &bytes, &layout, rcode, t, duration);
            } else {
                metrics::DROPS
                    .with_label_values(&[&*req.server, &self.zones_label, self.view()])
                    .inc();
            }
        }

        if was_code {
            return Outcome::Code {
                rcode: ResponseCode::ServFail,
                plugin,
            };
        }
        if mode == Mode::Client && !req.do_bit() && !req.msg.metadata.authentic_data {
            // The client did not ask for DNSSEC: the data can't be authenticated (RFC 6840 5.7-5.8
            // keeps AD for clients that set AD).
            let f = wire::flags(&bytes) & !wire::AD;
            wire::set_flags(&mut bytes, f);
        }
        wire::finalize_or_decode(req, bytes, &layout, rcode, plugin)
    }

    #[allow(clippy::too_many_arguments)]
    fn store(
        &self,
        req: &Request,
        buf: &[u8],
        layout: &Layout,
        rcode: ResponseCode,
        t: RespType,
        duration: Duration,
    ) {
        let kind = match t {
            RespType::NoError | RespType::Delegation => Kind::Success,
            RespType::NameError | RespType::NoData | RespType::ServerError => Kind::Denial,
            _ => return,
        };
        let except = match kind {
            Kind::Success => &self.cfg.pexcept,
            Kind::Denial => &self.cfg.nexcept,
        };
        if in_any_zone(&req.name, except) {
            return;
        }
        let k = Key::of(req);
        let h = self.hash(&k);
        let now = (self.clock)();
        let Some(mut item) = Item::new(
            &k,
            buf,
            layout,
            rcode,
            kind,
            now,
            duration,
            req.server.clone(),
        ) else {
            return;
        };
        item.answering = t == RespType::NoError;
        if self.cfg.prefer_positive && kind == Kind::Success && !item.answering {
            // A referral (or another NOERROR without the answer) keeps the last good answer.
            item.last_known_good = self
                .pcache
                .get(&h)
                .filter(|p| p.matches(&k))
                .and_then(|p| p.answering_item());
        }
        let answering = item.answering;
        self.store_for(kind).insert(h, Arc::new(item));
        match kind {
            // A fresh positive answer supersedes a denial (or SERVFAIL) stored for the same key;
            // under prefer_positive only one that answers the question.
            Kind::Success if self.cfg.prefer_positive && !answering => {}
            Kind::Success => self.ncache.invalidate(&h),
            // A denial shadows the success entry stored before it (CoreDNS looks in the denial
            // cache first): mark that entry so lookups do look there.
            Kind::Denial if rcode != ResponseCode::ServFail => {
                if let Some(p) = self.pcache.get(&h) {
                    p.set_may_be_denied();
                }
            }
            Kind::Denial => {}
        }
        let c = self.counters_for(&req.server);
        c.entries[0].set(self.pcache.entry_count() as i64);
        c.entries[1].set(self.ncache.entry_count() as i64);
    }

    /// Whether `out`, the rest of the chain's answer to a verify or a stale refresh, refreshes
    /// the entry (CoreDNS's `verifyStaleResponseWriter`): a NOERROR or NXDOMAIN reply, or under
    /// `prefer_positive` only a NOERROR reply with answer records.
    fn refreshes(&self, out: &Outcome) -> bool {
        let (rcode, answers) = match out {
            Outcome::Reply { msg, .. } => (msg.metadata.response_code, !msg.answers.is_empty()),
            Outcome::Wire { bytes, .. } => {
                if bytes.len() < 12 || wire::flags(bytes) & wire::TC != 0 {
                    return false;
                }
                (
                    ResponseCode::from_low(wire::header_rcode(bytes) as u8),
                    wire::u16_at(bytes, 6) > 0,
                )
            }
            _ => return false,
        };
        if self.cfg.prefer_positive {
            rcode == ResponseCode::NoError && answers
        } else {
            matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain)
        }
    }

    /// Refreshes `old` in the background through the rest of the chain (prefetch, serve_stale
    /// `immediate`). At most one refresh per entry at a time; for a `stale` entry, none within
    /// FAILURE_RECHECK of a failed one.
    fn spawn_refresh(
        self: &Arc<Self>,
        req: &Request,
        next: Next<'_>,
        old: &Arc<Item>,
        h: u64,
        stale: bool,
    ) {
        let recheck = if stale {
            self.cfg.stale_recheck
        } else {
            Duration::ZERO
        };
        if !old.begin_refresh((self.clock)(), recheck) {
            return;
        }
        let guard = RefreshGuard(old.clone());
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return; // no runtime (cannot happen inside the server): guard resets the flag
        };
        metrics::PREFETCH
            .with_label_values(&[&*req.server, &self.zones_label, self.view()])
            .inc();
        let inner = self.clone();
        let chain: Vec<Arc<dyn Plugin>> = next.plugins().to_vec();
        let mut r = req.clone();
        // As CoreDNS: ask with AD so an AD answer is cached, and as if over TCP so the reply is
        // not truncated for the client's UDP size.
        r.msg.metadata.authentic_data = true;
        r.proto = Proto::Tcp;
        rt.spawn(async move {
            let guard = guard;
            let out = Next::new(&chain).serve(&r).await;
            let refreshed = !stale || inner.refreshes(&out);
            guard.0.end_refresh((inner.clock)(), recheck, refreshed);
            if stale && !refreshed && !inner.cfg.prefer_positive {
                // As CoreDNS's stale refresh: a failure leaves the stale entry as it is (under
                // prefer_positive a non-answer is stored, and the answer still wins).
                return;
            }
            inner.process(&r, out, Mode::Refresh);
            // Keep the popularity the old entry had gathered.
            let k = Key::of(&r);
            if let Some(fresh) = inner.exists(h, &k)
                && !Arc::ptr_eq(&fresh, &guard.0)
            {
                fresh.reset_hits((inner.clock)(), guard.0.hits());
            }
        });
    }
}

impl Inner {
    /// serve_stale `verify VERIFY_TIMEOUT`: asks the rest of the chain in a task and waits up
    /// to the timeout. `Some`: the refreshed reply, in time. `None`: serve the stale entry; the
    /// task goes on and stores what it gets (a failure leaves the entry as it is).
    async fn verify_with_timeout(
        self: &Arc<Self>,
        req: &Request,
        next: Next<'_>,
        item: &Arc<Item>,
        guard: Option<RefreshGuard>,
    ) -> Option<Outcome> {
        let rt = tokio::runtime::Handle::try_current().ok()?;
        let inner = self.clone();
        let chain: Vec<Arc<dyn Plugin>> = next.plugins().to_vec();
        let r = req.clone();
        let item = item.clone();
        let recheck = self.cfg.stale_recheck;
        let (tx, rx) = tokio::sync::oneshot::channel();
        rt.spawn(async move {
            let out = Next::new(&chain).serve(&r).await;
            let refreshed = inner.refreshes(&out);
            if guard.is_some() {
                item.end_refresh((inner.clock)(), recheck, refreshed);
            }
            drop(guard);
            if !refreshed && inner.cfg.prefer_positive {
                inner.process(&r, out, Mode::Refresh);
                return;
            }
            let _ = tx.send(refreshed.then(|| inner.process(&r, out, Mode::Client)));
        });
        match tokio::time::timeout(self.cfg.verify_stale_timeout, rx).await {
            Ok(Ok(out)) => out,
            _ => None,
        }
    }
}

/// Replies the cache may store (CoreDNS's `key()` rules plus RFC 2308's "no SOA, no caching").
fn cacheable(buf: &[u8], layout: &Layout, t: RespType) -> bool {
    if wire::flags(buf) & wire::TC != 0 {
        return false;
    }
    match t {
        RespType::OtherError | RespType::Meta | RespType::Update => false,
        // NOERROR with an empty answer and neither SOA nor NS: a NODATA without SOA.
        RespType::NoError => layout.an > 0,
        _ => true,
    }
}

/// CoreDNS's `request.Match` (the reply is a response to this question), the class included.
fn reply_matches(req: &Request, buf: &[u8], layout: &Layout) -> bool {
    wire::is_reply_to(buf, layout, req) && layout.qclass == u16::from(req.qclass())
}

trait ClampBetween {
    fn clamp_between(self, min: Self, max: Self) -> Self;
}

impl ClampBetween for Duration {
    /// CoreDNS's `computeTTL`: raise to `min`, then cap at `max` (max wins if min > max).
    fn clamp_between(self, min: Duration, max: Duration) -> Duration {
        self.max(min).min(max)
    }
}

#[async_trait]
impl Plugin for Cache {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn link(&self, chain: &[Arc<dyn Plugin>]) {
        if let Some(v) = crate::plugin::view_of(chain) {
            let _ = self.inner.view.set(v);
        }
    }

    /// A fresh hit, when nothing else is due: no prefetch configured, not stale, and the reply
    /// fits the client's size. Everything else (misses included) takes the full path, which
    /// counts it.
    fn fast(&self, q: &QueryView<'_>, _next: FastNext<'_>) -> Option<FastReply> {
        let inner = &self.inner;
        if inner.cfg.prefetch != 0
            || matches!(q.qtype, RecordType::AXFR | RecordType::IXFR)
            || !in_any_zone(q.name, &inner.cfg.zones)
        {
            return None;
        }
        let now = (inner.clock)();
        let k = Key {
            name: q.name,
            qtype: q.qtype,
            qclass: DNSClass::IN,
            do_bit: q.do_bit(),
            cd: q.checking_disabled(),
        };
        let h = inner.hash(&k);
        let item = inner.choose(h, &k, now)?;
        let ttl = item.ttl(now);
        if ttl < 0 {
            return None;
        }
        let bytes = item.reply_to_view(q, inner.reply_ttl(&item, ttl));
        if bytes.len() > q.reply_limit() {
            return None;
        }
        let c = inner.counters_for(q.server);
        c.requests.inc();
        c.hits[item.kind as usize].inc();
        Some(FastReply {
            bytes,
            rcode: item.rcode,
            plugin: "cache",
        })
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        let inner = &self.inner;
        // Only plain queries for names in our zones; zone transfers, NOTIFY and UPDATE pass.
        if req.msg.queries.len() != 1
            || req.msg.metadata.op_code != OpCode::Query
            || matches!(req.qtype(), RecordType::AXFR | RecordType::IXFR)
            || !in_any_zone(&req.name, &inner.cfg.zones)
        {
            return next.serve(req).await;
        }

        let now = (inner.clock)();
        let k = Key::of(req);
        let h = inner.hash(&k);
        let Some(item) = inner.lookup(h, &k, now, &req.server) else {
            let out = next.serve(req).await;
            return inner.process(req, out, Mode::Client);
        };

        let ttl = item.ttl(now);
        let stale = ttl < 0;
        if stale {
            // serve_stale.
            if inner.cfg.verify_stale {
                let recheck = inner.cfg.stale_recheck;
                let track = !recheck.is_zero();
                if !track || item.begin_refresh(now, recheck) {
                    let guard = track.then(|| RefreshGuard(item.clone()));
                    if inner.cfg.verify_stale_timeout.is_zero() {
                        let out = next.serve(req).await;
                        let refreshed = inner.refreshes(&out);
                        if track {
                            item.end_refresh((inner.clock)(), recheck, refreshed);
                        }
                        drop(guard);
                        if refreshed {
                            return inner.process(req, out, Mode::Client);
                        }
                        if inner.cfg.prefer_positive {
                            // Stored, not answered with: the positive answer still wins.
                            inner.process(req, out, Mode::Refresh);
                        }
                    } else if let Some(out) =
                        inner.verify_with_timeout(req, next, &item, guard).await
                    {
                        return out;
                    }
                }
            } else {
                inner.spawn_refresh(req, next, &item, h, true);
            }
            metrics::SERVED_STALE
                .with_label_values(&[&*req.server, &inner.zones_label, inner.view()])
                .inc();
        } else if inner.should_prefetch(&item, now) {
            inner.spawn_refresh(req, next, &item, h, false);
        }
        let reply_ttl = match (stale, inner.cfg.stale_ttl) {
            // RESPONSE_TTL, whatever keepttl says (as CoreDNS).
            (true, Some(t)) if t > 0 => t,
            (true, _) => inner.reply_ttl(&item, 0),
            (false, _) => inner.reply_ttl(&item, ttl),
        };
        let bytes = item.reply(req, reply_ttl, k.do_bit, req.msg.metadata.authentic_data);
        Outcome::Wire {
            bytes,
            rcode: item.rcode,
            plugin: "cache",
        }
    }
}

/// `msg` as a reply in wire form, before the server's finishing (the request's question when
/// the plugin left it out; its OPT record, if any, kept for the extended rcode). `Err` gives the
/// message back when it cannot be encoded or has no single question.
fn encode_plain(req: &Request, mut msg: Message) -> Result<Vec<u8>, Box<Message>> {
    if msg.queries.is_empty() {
        msg.queries = req.msg.queries.clone();
    }
    if msg.queries.len() != 1 {
        return Err(Box::new(msg));
    }
    crate::dns::reply::to_wire(&msg).map_err(|_| Box::new(msg))
}
