//! Builds [`Snapshot`]s from the [`Store`]: joins routes to Gateways and Services to their
//! EndpointSlices, applies `gatewayClasses`, resolves hostname addresses (in the background,
//! never on the query path), computes empty non-terminals and per-zone serials.
//!
//! The running index is incremental (see [`builder`]): the store logs which objects changed,
//! and a new snapshot costs work proportional to the names those changes touch, not to the
//! cluster. Snapshots share every untouched part of their name tables.
//!
//! [`Store`]: crate::kube::model::Store
//!
//! ## Serials
//! Every zone's serial is derived from a content hash (the sum, modulo 2^64, of a fixed-key
//! SipHash-2-4 of every entry — kind, name and data — of the zone; names outside every configured
//! zone — e.g. a Service's `name.namespace` key — can be reached relative to any zone and
//! count for all of them; a name inside several nested zones counts for the longest). The
//! sum does not depend on any order, so it is updated per changed entry:
//! - until the index has been synced once, the serial is a base derived from the hash alone
//!   (1 for an empty zone, else `1 + hash % 999_999_999`); nothing is served then (SERVFAIL);
//! - the first synced version takes the clock (Unix seconds, truncated to u32), so a restarted
//!   process never publishes a serial below the ones it published before — those were at most
//!   the clock of their time (or a few above it after bursts of more than one change a second);
//! - afterwards, when the hash changes the serial becomes `max(previous + 1, now)` (RFC 1982
//!   arithmetic), otherwise it stays. Two instances watching the same cluster agree whenever
//!   they see a change within the same second, which is the usual case: after a restart of one,
//!   from the next change on.
//!
//! docs/plugins/k8s_gateway.md ("Serials and zone transfers") gives the reasoning and limits.

mod builder;

pub(crate) use crate::kube::model::norm;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::kube::metrics::{INDEX_BUILD_SECONDS, INDEX_NAMES};
use crate::kube::model::{Filters, Kind, ObjKind};
use crate::kube::snapshot::Snapshot;
use crate::kube::source::Feed;

use builder::Builder;
pub(crate) use builder::is_reverse_zone;
// The tests (`use super::*`) build contributions and read record sets.
#[cfg(test)]
use crate::kube::model::{Address, Contribution, ObjKey};
#[cfg(test)]
use crate::kube::snapshot::RecordSet;

/// What the index is built for.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// Kinds answered, in precedence order.
    pub kinds: Vec<Kind>,
    /// Zones (lower-case, absolute), for per-zone serials.
    pub zones: Vec<String>,
    pub filters: Filters,
}

impl IndexConfig {
    /// Every object kind that must be watched, de-duplicated.
    pub fn watched(&self) -> Vec<ObjKind> {
        let mut v: Vec<ObjKind> = self
            .kinds
            .iter()
            .flat_map(|k| k.watched().iter().copied())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Quiet time after a change before the index is updated (a burst of events makes one update).
const DEBOUNCE_QUIET: Duration = Duration::from_millis(2);
/// Under continuous churn an update waits at most as long as the last one took, within these
/// bounds. Updates are incremental (sub-millisecond for a few changed objects), so the lower
/// bound is what applies in steady state; the upper one spaces out the big ones (the first
/// load, a re-list of a large kind).
const DEBOUNCE_MAX_MIN: Duration = Duration::from_millis(10);
const DEBOUNCE_MAX_MAX: Duration = Duration::from_millis(200);
/// How often a resolved hostname is looked up again when its TTL is not known (getaddrinfo).
const RESOLVE_REFRESH: Duration = Duration::from_secs(60);
/// Otherwise at its TTL, within these bounds: not more often than every 5 s (a TTL of 0 must
/// not make a busy loop), at least every 5 minutes (a cloud load balancer's addresses move).
const RESOLVE_TTL_MIN: Duration = Duration::from_secs(5);
const RESOLVE_TTL_MAX: Duration = Duration::from_secs(300);
/// How soon a failed lookup is retried.
const RESOLVE_RETRY: Duration = Duration::from_secs(10);
/// A lookup that takes longer counts as failed.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many lookups run at once.
const RESOLVE_PARALLEL: usize = 16;

/// Addresses of hostname-typed status addresses (`Address::Hostname`), filled by the
/// background resolver and read by every build.
#[derive(Debug, Default)]
pub struct HostCache {
    map: Mutex<HostMap>,
}

/// The cache's contents, and which hostnames changed since the index builder last looked
/// (recorded once it asked).
#[derive(Debug, Default)]
pub(crate) struct HostMap {
    pub(crate) addrs: HashMap<String, Vec<IpAddr>>,
    changed: Option<HashSet<String>>,
}

impl HostMap {
    /// Starts (or restarts) recording changed hostnames, from an empty set.
    pub(crate) fn track_changes(&mut self) {
        self.changed = Some(HashSet::new());
    }

    /// The hostnames whose addresses changed since the last call.
    pub(crate) fn take_changes(&mut self) -> HashSet<String> {
        self.changed
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn note(&mut self, host: &str) {
        if let Some(c) = self.changed.as_mut()
            && !c.contains(host)
        {
            c.insert(host.to_owned());
        }
    }
}

impl HostCache {
    pub fn new() -> Self {
        HostCache::default()
    }

    /// The addresses last resolved for `host` (lower-case, no trailing dot).
    pub fn get(&self, host: &str) -> Option<Vec<IpAddr>> {
        self.lock().addrs.get(host).cloned()
    }

    /// Stores the addresses of `host` (sorted and de-duplicated here); returns whether they
    /// differ from what was stored.
    pub fn insert(&self, host: &str, mut addrs: Vec<IpAddr>) -> bool {
        for a in addrs.iter_mut() {
            *a = a.to_canonical();
        }
        addrs.sort_unstable();
        addrs.dedup();
        let mut map = self.lock();
        if map.addrs.get(host) == Some(&addrs) {
            return false;
        }
        map.addrs.insert(host.to_owned(), addrs);
        map.note(host);
        true
    }

    /// Forgets `host`; returns whether it was known.
    pub fn remove(&self, host: &str) -> bool {
        let mut map = self.lock();
        let known = map.addrs.remove(host).is_some();
        if known {
            map.note(host);
        }
        known
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HostMap> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One index: the hostname cache shared by its builds and its background resolver.
/// Cheap to clone (clones share the cache).
#[derive(Debug, Clone, Default)]
pub struct Index {
    cache: Arc<HostCache>,
}

/// Keeps `out` up to date with `feed` until the task is aborted: waits for changes, debounces
/// bursts, updates, swaps. Also runs the background resolver for hostname addresses.
pub async fn run(cfg: IndexConfig, feed: Feed, out: Arc<ArcSwap<Snapshot>>) {
    Index::new().run(cfg, feed, out).await
}

/// One synchronous full build (for tests) with an empty hostname cache: hostname addresses
/// yield nothing. See [`Index::build`].
pub fn build(cfg: &IndexConfig, feed: &Feed, previous: Option<&Snapshot>) -> Snapshot {
    Index::new().build(cfg, feed, previous)
}

impl Index {
    pub fn new() -> Self {
        Index::default()
    }

    /// The hostname cache (the resolver fills it; tests may too).
    pub fn cache(&self) -> &Arc<HostCache> {
        &self.cache
    }

    /// One synchronous full build from the store, with hostname addresses from the cache.
    /// `previous` (the snapshot being replaced) carries the serials forward.
    pub fn build(&self, cfg: &IndexConfig, feed: &Feed, previous: Option<&Snapshot>) -> Snapshot {
        self.build_at(cfg, feed, previous, unix_now()).snapshot
    }

    /// Like [`Index::run`]'s loop; see the free [`run`]. Only one running index may use a
    /// feed: it owns the store's change log.
    pub async fn run(&self, cfg: IndexConfig, feed: Feed, out: Arc<ArcSwap<Snapshot>>) {
        let (hosts_tx, hosts_rx) = watch::channel(BTreeSet::new());
        let resolver = Resolver::system(self.cache.clone(), feed.clone());
        tokio::join!(
            self.build_loop(Arc::new(cfg), feed, out, hosts_tx),
            resolver.run(hosts_rx)
        );
    }

    async fn build_loop(
        &self,
        cfg: Arc<IndexConfig>,
        feed: Feed,
        out: Arc<ArcSwap<Snapshot>>,
        hosts: watch::Sender<BTreeSet<String>>,
    ) {
        let mut last_build = DEBOUNCE_MAX_MIN;
        // Moved to the blocking pool for each update and back; lost if an update panics, and
        // then rebuilt from the whole store.
        let mut builder: Option<Builder> = None;
        loop {
            let mut b = builder
                .take()
                .unwrap_or_else(|| Builder::new(&cfg, self.cache.clone(), true));
            let previous = out.load_full();
            let f = feed.clone();
            let started = std::time::Instant::now();
            // The first load of a big cluster takes a while: keep updates off the runtime's
            // workers.
            let built = tokio::task::spawn_blocking(move || {
                b.step(&f, Some(&previous), unix_now());
                let snap = Arc::new(b.snapshot().clone());
                (b, snap)
            })
            .await;
            match built {
                Ok((b, snap)) => {
                    let took = started.elapsed();
                    last_build = took;
                    INDEX_BUILD_SECONDS.observe(took.as_secs_f64());
                    for &k in &cfg.kinds {
                        INDEX_NAMES
                            .with_label_values(&[k.as_str()])
                            .set(snap.names(k) as i64);
                    }
                    if tracing::enabled!(tracing::Level::DEBUG) {
                        let mut sizes = String::new();
                        for &k in &cfg.kinds {
                            sizes.push_str(&format!(" {k}={}", snap.names(k)));
                        }
                        tracing::debug!(
                            "index updated in {took:?}:{sizes} ents={} synced={}",
                            snap.ents(),
                            snap.synced()
                        );
                    }
                    out.store(snap);
                    if b.hostnames_changed() {
                        let names = b.hostnames();
                        hosts.send_if_modified(|cur| {
                            if *cur == names {
                                false
                            } else {
                                *cur = names;
                                true
                            }
                        });
                    }
                    builder = Some(b);
                }
                Err(e) => tracing::error!("index update failed: {e}"),
            }
            feed.changed().await;
            let max = last_build.clamp(DEBOUNCE_MAX_MIN, DEBOUNCE_MAX_MAX);
            debounce(&feed, DEBOUNCE_QUIET, max).await;
        }
    }

    /// A full build at Unix time `now` (for serials); also returns every hostname address
    /// seen, for the resolver.
    fn build_at(
        &self,
        cfg: &IndexConfig,
        feed: &Feed,
        previous: Option<&Snapshot>,
        now: u32,
    ) -> Built {
        let mut b = Builder::new(cfg, self.cache.clone(), false);
        b.step(feed, previous, now);
        let hostnames = b.hostnames();
        Built {
            snapshot: b.into_snapshot(),
            hostnames,
        }
    }
}

/// A build's result.
struct Built {
    snapshot: Snapshot,
    /// Every `Address::Hostname` in the objects the index used (the running index asks its
    /// builder directly; tests read it here).
    #[cfg_attr(not(test), allow(dead_code))]
    hostnames: BTreeSet<String>,
}

/// Whether `name` is `zone` or below it (`zone` without trailing dot; "" is the root).
fn in_zone(name: &str, zone: &str) -> bool {
    zone.is_empty()
        || name == zone
        || (name.len() > zone.len()
            && name.ends_with(zone)
            && name.as_bytes()[name.len() - zone.len() - 1] == b'.')
}

/// The serial before the first synced build: from the data only, below any current Unix time.
fn base_serial(hash: u64, names: usize) -> u32 {
    if names == 0 {
        1
    } else {
        1 + (hash % 999_999_999) as u32
    }
}

/// The serial after `prev` at Unix time `now`: the clock, or `prev + 1` when the clock is not
/// ahead of it (RFC 1982 arithmetic; 0 is skipped).
fn next_serial(prev: u32, now: u32) -> u32 {
    let bumped = prev.wrapping_add(1).max(1);
    if now != 0 && now.wrapping_sub(bumped) < 0x8000_0000 {
        now
    } else {
        bumped
    }
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// After a change: waits until `quiet` passes without another, or `max` since it started.
async fn debounce(feed: &Feed, quiet: Duration, max: Duration) {
    let deadline = Instant::now() + max;
    loop {
        let until = (Instant::now() + quiet).min(deadline);
        tokio::select! {
            _ = feed.changed() => {
                if Instant::now() >= deadline {
                    return;
                }
            }
            _ = tokio::time::sleep_until(until) => return,
        }
    }
}

/// A lookup's addresses and how long they are valid (`None`: not known).
type LookupResult = io::Result<(Vec<IpAddr>, Option<Duration>)>;
type LookupFuture = Pin<Box<dyn Future<Output = LookupResult> + Send>>;
type LookupFn = Arc<dyn Fn(String) -> LookupFuture + Send + Sync>;

/// Resolves hostname addresses in the background into a [`HostCache`], and bumps the feed
/// when a result changes so the next build includes it.
struct Resolver {
    cache: Arc<HostCache>,
    feed: Feed,
    lookup: LookupFn,
    refresh: Duration,
    retry: Duration,
    timeout: Duration,
    parallel: usize,
}

/// Per hostname: when to look it up next.
struct HostState {
    due: Instant,
    in_flight: bool,
    failures: u32,
}

impl Resolver {
    /// With hickory-resolver on the system's configuration (`/etc/resolv.conf`: the cluster's
    /// DNS in a pod), which gives each answer's TTL; when that configuration cannot be read,
    /// with `getaddrinfo` on tokio's blocking pool (no TTL: refreshed every minute).
    fn system(cache: Arc<HostCache>, feed: Feed) -> Self {
        let lookup: LookupFn = match hickory_resolver::TokioResolver::builder_tokio()
            .and_then(|b| b.build())
        {
            Ok(r) => hickory_lookup(r),
            Err(e) => {
                tracing::warn!(
                    "cannot read the system's resolver configuration ({e}); status hostnames are looked up with getaddrinfo"
                );
                Arc::new(|name: String| -> LookupFuture {
                    Box::pin(async move {
                        let addrs = tokio::net::lookup_host((name.as_str(), 0)).await?;
                        Ok((addrs.map(|sa| sa.ip()).collect(), None))
                    })
                })
            }
        };
        Resolver {
            cache,
            feed,
            lookup,
            refresh: RESOLVE_REFRESH,
            retry: RESOLVE_RETRY,
            timeout: RESOLVE_TIMEOUT,
            parallel: RESOLVE_PARALLEL,
        }
    }

    /// Runs until `names`' sender is dropped; `names` is the current set of hostnames.
    async fn run(self, mut names: watch::Receiver<BTreeSet<String>>) {
        let mut states: HashMap<String, HostState> = HashMap::new();
        let mut jobs: JoinSet<(String, LookupResult)> = JoinSet::new();
        let mut job_names: HashMap<tokio::task::Id, String> = HashMap::new();
        let initial = names.borrow_and_update().clone();
        self.sync(&mut states, &initial);
        loop {
            let now = Instant::now();
            for (name, st) in states.iter_mut() {
                if jobs.len() >= self.parallel {
                    break;
                }
                if !st.in_flight && st.due <= now {
                    st.in_flight = true;
                    let lookup = self.lookup.clone();
                    let timeout = self.timeout;
                    let n = name.clone();
                    let h = jobs.spawn(async move {
                        let r = match tokio::time::timeout(timeout, lookup(n.clone())).await {
                            Ok(r) => r,
                            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
                        };
                        (n, r)
                    });
                    job_names.insert(h.id(), name.clone());
                }
            }
            let wake = if jobs.len() < self.parallel {
                states
                    .values()
                    .filter(|s| !s.in_flight)
                    .map(|s| s.due)
                    .min()
            } else {
                None
            };
            let sleep_to = wake.unwrap_or_else(|| now + Duration::from_secs(3600));
            tokio::select! {
                r = names.changed() => {
                    if r.is_err() {
                        return;
                    }
                    let set = names.borrow_and_update().clone();
                    self.sync(&mut states, &set);
                }
                Some(done) = jobs.join_next_with_id(), if !jobs.is_empty() => {
                    let (name, result) = match done {
                        Ok((id, (name, r))) => {
                            job_names.remove(&id);
                            (name, r)
                        }
                        Err(e) => {
                            let Some(name) = job_names.remove(&e.id()) else { continue };
                            (name, Err(io::Error::other(e.to_string())))
                        }
                    };
                    self.done(&mut states, name, result);
                }
                _ = tokio::time::sleep_until(sleep_to), if wake.is_some() => {}
            }
        }
    }

    /// Tracks exactly the hostnames in `set`: new ones are due at once, gone ones forgotten.
    fn sync(&self, states: &mut HashMap<String, HostState>, set: &BTreeSet<String>) {
        states.retain(|name, _| {
            let keep = set.contains(name);
            if !keep {
                self.cache.remove(name);
            }
            keep
        });
        let now = Instant::now();
        for name in set {
            if !states.contains_key(name) {
                states.insert(
                    name.clone(),
                    HostState {
                        due: now,
                        in_flight: false,
                        failures: 0,
                    },
                );
            }
        }
    }

    /// Records one lookup's result. A failure keeps the last good addresses (a flaky resolver
    /// should not take names down) and retries sooner.
    fn done(&self, states: &mut HashMap<String, HostState>, name: String, result: LookupResult) {
        let Some(st) = states.get_mut(&name) else {
            return; // no longer wanted
        };
        st.in_flight = false;
        let result = result.and_then(|(v, ttl)| {
            if v.is_empty() {
                Err(io::Error::other("no addresses"))
            } else {
                Ok((v, ttl))
            }
        });
        match result {
            Ok((addrs, ttl)) => {
                st.due = Instant::now() + refresh_after(ttl, self.refresh);
                st.failures = 0;
                if self.cache.insert(&name, addrs) {
                    tracing::debug!("{name} resolved to {:?}", self.cache.get(&name));
                    self.feed.bump();
                }
            }
            Err(e) => {
                st.due = Instant::now() + self.retry;
                if st.failures == 0 {
                    tracing::warn!("cannot resolve status hostname {name}: {e}");
                } else {
                    tracing::debug!("cannot resolve status hostname {name}: {e}");
                }
                st.failures = st.failures.saturating_add(1);
            }
        }
    }
}

/// Lookups through `r`, with the answer's remaining TTL.
fn hickory_lookup(r: hickory_resolver::TokioResolver) -> LookupFn {
    let r = Arc::new(r);
    Arc::new(move |name: String| -> LookupFuture {
        let r = r.clone();
        Box::pin(async move {
            let l = r.lookup_ip(name.as_str()).await.map_err(io::Error::other)?;
            let ttl = l
                .valid_until()
                .saturating_duration_since(std::time::Instant::now());
            Ok((l.iter().collect(), Some(ttl)))
        })
    })
}

/// When to look a hostname up again: at its TTL within [`RESOLVE_TTL_MIN`] and
/// [`RESOLVE_TTL_MAX`], or after `unknown` when the lookup gave no TTL.
fn refresh_after(ttl: Option<Duration>, unknown: Duration) -> Duration {
    ttl.map_or(unknown, |t| t.clamp(RESOLVE_TTL_MIN, RESOLVE_TTL_MAX))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod bench;
