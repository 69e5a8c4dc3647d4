//! `rrl`: response rate limiting, compatible with CoreDNS's external `rrl` plugin
//! (github.com/coredns/rrl), which replicates BIND 9's RRL.
//!
//! Every UDP response is accounted to a category: the client's prefix (`ipv4-prefix-length`,
//! `ipv6-prefix-length`), the response type (positive answer, NODATA, NXDOMAIN, referral,
//! error) and, depending on the type, the query name and type. Each category is a token bucket
//! in nanoseconds, as the original: a response costs `1s / ALLOWANCE`; the balance is at most
//! one second (a burst of ALLOWANCE responses) and at least `-window` (the penalty box). A
//! response whose balance is negative is dropped — except every `slip-ratio`th one, which is
//! sent truncated and empty so that a real client retries over TCP. TCP (and DoT) is never
//! limited. `requests-per-second` limits the requests of a prefix before they are answered.
//!
//! The table is bounded by `max-table-size`: fully refilled accounts are evicted when room is
//! needed; beyond the bound new categories are not limited (as the original). It is split in
//! shards, each behind its own lock held only for one account update (never across an await);
//! the account key is a 64-bit keyed hash, so the query path does not allocate.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use prometheus::{IntCounter, IntCounterVec};

use crate::dns::request::{Outcome, Request};
use crate::metrics;
use crate::plugin::zones::in_zone;
use crate::plugin::{Next, Plugin};

pub const NAME: &str = "rrl";

/// One second in nanoseconds, the unit of every balance.
pub const SECOND: i64 = 1_000_000_000;

/// Distinct `client_ip` label values exported at most; later prefixes count under `other`.
pub const MAX_METRIC_LABELS: usize = 1000;

pub(crate) static RESPONSES_EXCEEDED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    metrics::counter_vec(
        "coredns_rrl_responses_exceeded_total",
        "Counter of responses exceeding QPS limit.",
        &["client_ip"],
    )
});
pub(crate) static REQUESTS_EXCEEDED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    metrics::counter_vec(
        "coredns_rrl_requests_exceeded_total",
        "Counter of requests exceeding QPS limit.",
        &["client_ip"],
    )
});

/// The label values handed out so far (bounded by [`MAX_METRIC_LABELS`]).
static LABELS: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

/// The counter of `vec` for `prefix`, or for `other` once too many prefixes were labelled.
fn counter_for(vec: &IntCounterVec, prefix: IpAddr) -> IntCounter {
    let label = prefix.to_string();
    let mut set = LABELS.lock().unwrap_or_else(|e| e.into_inner());
    if set.contains(&label) || set.len() < MAX_METRIC_LABELS {
        set.insert(label.clone());
        vec.with_label_values(&[&label])
    } else {
        vec.with_label_values(&["other"])
    }
}

/// The response categories, as the original numbers them (they are part of the account key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RType {
    /// A positive response (with answers).
    Response = 0,
    /// NOERROR without answers or referral.
    Nodata = 1,
    Nxdomain = 2,
    /// NOERROR, no answers, NS first in the authority section.
    Referral = 3,
    /// Every other rcode.
    Error = 4,
}

/// The category of requests (`requests-per-second`).
const REQUESTS: u8 = 5;

/// The response type of a reply, as the original's `responseType`.
pub fn response_type(m: &Message) -> RType {
    if !m.answers.is_empty() {
        return RType::Response;
    }
    match m.metadata.response_code {
        ResponseCode::NXDomain => RType::Nxdomain,
        ResponseCode::NoError => {
            if m.authorities
                .first()
                .is_some_and(|r| r.record_type() == RecordType::NS)
            {
                RType::Referral
            } else {
                RType::Nodata
            }
        }
        _ => RType::Error,
    }
}

/// A parsed `rrl` directive. Intervals are nanoseconds per response (`1s / ALLOWANCE`); 0
/// means that category is not limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub zones: Vec<String>,
    /// Nanoseconds.
    pub window: i64,
    pub ipv4_prefix_length: u8,
    pub ipv6_prefix_length: u8,
    pub responses_interval: i64,
    pub nodata_interval: i64,
    pub nxdomains_interval: i64,
    pub referrals_interval: i64,
    pub errors_interval: i64,
    pub requests_interval: i64,
    pub slip_ratio: u32,
    pub max_table_size: usize,
    pub report_only: bool,
}

impl Config {
    /// The original's defaults for `zones`: window 15 s, /24 and /56, nothing limited, a table
    /// of 100000 accounts.
    pub fn new(zones: Vec<String>) -> Self {
        Config {
            zones,
            window: 15 * SECOND,
            ipv4_prefix_length: 24,
            ipv6_prefix_length: 56,
            responses_interval: 0,
            nodata_interval: 0,
            nxdomains_interval: 0,
            referrals_interval: 0,
            errors_interval: 0,
            requests_interval: 0,
            slip_ratio: 0,
            max_table_size: 100_000,
            report_only: false,
        }
    }

    fn interval(&self, t: RType) -> i64 {
        match t {
            RType::Response => self.responses_interval,
            RType::Nodata => self.nodata_interval,
            RType::Nxdomain => self.nxdomains_interval,
            RType::Referral => self.referrals_interval,
            RType::Error => self.errors_interval,
        }
    }
}

/// Where time comes from: nanoseconds on a monotonic scale (tests use a fake one).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> i64;
}

/// The monotonic clock of the process.
pub struct MonotonicClock(Instant);

impl MonotonicClock {
    pub fn new() -> Self {
        MonotonicClock(Instant::now())
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> i64 {
        i64::try_from(self.0.elapsed().as_nanos()).unwrap_or(i64::MAX)
    }
}

/// A clock that moves only when told to.
#[derive(Default)]
pub struct FakeClock(pub AtomicI64);

impl FakeClock {
    pub fn advance(&self, nanos: i64) {
        self.0.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// One category's account.
struct Account {
    /// The time from which the next response is allowed (BIND's balance = now - allow).
    allow: i64,
    /// Responses over the limit so far (for the slip ratio).
    over: u32,
    /// This account's exceeded counter, looked up on its first excess.
    counter: Option<IntCounter>,
}

/// What a debit decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Debit {
    Allowed,
    /// Over the limit; `slip`: this one goes out truncated instead of being dropped.
    Exceeded {
        slip: bool,
    },
    /// The table is full: this category is not tracked (not limited).
    Untracked,
}

/// The keys are already keyed hashes: no second hashing.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | *b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Shard {
    accounts: HashMap<u64, Account, BuildHasherDefault<Identity>>,
    cap: usize,
    last_sweep: i64,
}

/// A full shard is swept for refilled accounts at most this often.
const SWEEP_EVERY: i64 = SECOND / 20;

/// The bounded, sharded account table.
pub struct Table {
    shards: Box<[Mutex<Shard>]>,
    window: i64,
}

impl Table {
    /// A table of at most `max` accounts.
    pub fn new(max: usize, window: i64) -> Self {
        let n = (max / 256).clamp(1, 64);
        let shards = (0..n)
            .map(|i| {
                Mutex::new(Shard {
                    accounts: HashMap::default(),
                    cap: max / n + usize::from(i < max % n),
                    last_sweep: i64::MIN,
                })
            })
            .collect();
        Table { shards, window }
    }

    fn shard(&self, key: u64) -> MutexGuard<'_, Shard> {
        // The low bits pick the bucket inside a shard's map; the high ones the shard.
        let i = ((key >> 32) as usize) % self.shards.len();
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Accounts tracked now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).accounts.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Charges one response costing `interval` to account `key` at `now`. On an excess the
    /// account's counter (made by `counter` the first time) is incremented.
    pub fn debit(
        &self,
        key: u64,
        interval: i64,
        now: i64,
        slip_ratio: u32,
        counter: impl FnOnce() -> IntCounter,
    ) -> Debit {
        let mut shard = self.shard(key);
        let a = match shard.accounts.get_mut(&key) {
            Some(a) => a,
            None => {
                if shard.accounts.len() >= shard.cap {
                    if now.saturating_sub(shard.last_sweep) < SWEEP_EVERY {
                        return Debit::Untracked;
                    }
                    shard.last_sweep = now;
                    // A refilled account is the same as no account.
                    shard
                        .accounts
                        .retain(|_, a| now.saturating_sub(a.allow) < SECOND);
                    if shard.accounts.len() >= shard.cap {
                        return Debit::Untracked;
                    }
                }
                // A new account: a full second of credit, this response already paid.
                shard.accounts.insert(
                    key,
                    Account {
                        allow: now - SECOND + interval,
                        over: 0,
                        counter: None,
                    },
                );
                return Debit::Allowed;
            }
        };
        let balance = now
            .saturating_sub(a.allow)
            .saturating_sub(interval)
            .clamp(-self.window, SECOND - interval);
        a.allow = now - balance;
        if balance >= 0 {
            return Debit::Allowed;
        }
        a.over = a.over.wrapping_add(1);
        let slip = slip_ratio > 0 && a.over % slip_ratio == 0;
        a.counter.get_or_insert_with(counter).inc();
        Debit::Exceeded { slip }
    }
}

/// The `rrl` handler.
pub struct Rrl {
    cfg: Config,
    table: Table,
    clock: Arc<dyn Clock>,
    keys: RandomState,
}

impl Rrl {
    pub fn new(cfg: Config) -> Self {
        Self::with_clock(cfg, Arc::new(MonotonicClock::new()))
    }

    pub fn with_clock(cfg: Config, clock: Arc<dyn Clock>) -> Self {
        let table = Table::new(cfg.max_table_size, cfg.window);
        Rrl {
            cfg,
            table,
            clock,
            keys: RandomState::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Accounts tracked now.
    pub fn tracked(&self) -> usize {
        self.table.len()
    }

    /// The client's address masked to its prefix.
    pub fn prefix(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let len = u32::from(self.cfg.ipv4_prefix_length.min(32));
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                IpAddr::V4((bits & mask).into())
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let len = u32::from(self.cfg.ipv6_prefix_length.min(128));
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                IpAddr::V6((bits & mask).into())
            }
        }
    }

    fn key(&self, prefix: IpAddr, kind: u8, qtype: u16, name: impl Hash) -> u64 {
        let mut h = self.keys.build_hasher();
        prefix.hash(&mut h);
        kind.hash(&mut h);
        qtype.hash(&mut h);
        name.hash(&mut h);
        h.finish()
    }

    /// The account a response belongs to (BIND's rules): positive answers per qname and qtype;
    /// NODATA per qname; NXDOMAIN per zone (the authority section's owner), whatever the qtype;
    /// referrals per delegation and qtype; errors per prefix only.
    fn response_key(&self, prefix: IpAddr, t: RType, req: &Request, m: Option<&Message>) -> u64 {
        let qtype = u16::from(req.qtype());
        let auth = m.and_then(|m| m.authorities.first()).map(|r| &r.name);
        match t {
            RType::Response => self.key(prefix, t as u8, qtype, req.name.as_str()),
            RType::Nodata => self.key(prefix, t as u8, 0, req.name.as_str()),
            RType::Nxdomain => self.key(prefix, t as u8, 0, auth),
            RType::Referral => self.key(prefix, t as u8, qtype, auth),
            RType::Error => self.key(prefix, t as u8, 0, ""),
        }
    }
}

/// `out` sent truncated and empty: TC set, every section emptied, the question kept.
fn slipped(req: &Request, out: Outcome) -> Outcome {
    let mut m = out
        .into_message(req)
        .unwrap_or_else(|| req.reply_code(ResponseCode::ServFail));
    m.metadata.truncation = true;
    m.answers.clear();
    m.authorities.clear();
    m.additionals.clear();
    Outcome::reply(m, NAME)
}

#[async_trait]
impl Plugin for Rrl {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        // TCP proves the source address, and so does a valid server cookie (as Knot's and
        // NSD's RRL): never limited.
        if req.proto.is_stream()
            || req.cookie.is_some_and(|c| c.valid)
            || !self.cfg.zones.iter().any(|z| in_zone(&req.name, z))
        {
            return next.serve(req).await;
        }
        let prefix = self.prefix(req.src.ip());
        if self.cfg.requests_interval > 0 {
            let key = self.key(prefix, REQUESTS, 0, "");
            let d = self
                .table
                .debit(key, self.cfg.requests_interval, self.clock.now(), 0, || {
                    counter_for(&REQUESTS_EXCEEDED, prefix)
                });
            if matches!(d, Debit::Exceeded { .. }) && !self.cfg.report_only {
                tracing::debug!("request rate exceeded from {prefix}");
                return Outcome::Drop { plugin: NAME };
            }
        }
        // The reply's records decide its category (the zone of a denial, a referral's zone).
        let out = next.serve(req).await.decoded(req);
        let t = match &out {
            Outcome::Reply { msg, .. } => response_type(msg),
            Outcome::Code { rcode, .. } => {
                if *rcode == ResponseCode::NXDomain {
                    RType::Nxdomain
                } else {
                    RType::Error
                }
            }
            Outcome::Drop { .. } | Outcome::Wire { .. } | Outcome::Transfer { .. } => return out,
        };
        let interval = self.cfg.interval(t);
        if interval == 0 {
            return out;
        }
        let msg = match &out {
            Outcome::Reply { msg, .. } => Some(msg),
            _ => None,
        };
        let key = self.response_key(prefix, t, req, msg);
        let d = self
            .table
            .debit(key, interval, self.clock.now(), self.cfg.slip_ratio, || {
                counter_for(&RESPONSES_EXCEEDED, prefix)
            });
        match d {
            Debit::Allowed | Debit::Untracked => out,
            Debit::Exceeded { .. } if self.cfg.report_only => out,
            Debit::Exceeded { slip: true } => slipped(req, out),
            Debit::Exceeded { slip: false } => {
                tracing::debug!("dropped response to {} for {} ({:?})", req.src, req.name, t);
                Outcome::Drop { plugin: NAME }
            }
        }
    }
}
