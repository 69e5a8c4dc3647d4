//! Builds [`Snapshot`]s from the [`Store`]: joins routes to Gateways and Services to their
//! EndpointSlices, applies `gatewayClasses`, resolves hostname addresses (in the background,
//! never on the query path), computes empty non-terminals and per-zone serials.
//!
//! [`Store`]: crate::kube::model::Store
//!
//! ## Serials
//! Every zone's serial is derived from a content hash (SHA-256 over the zone's names, kinds
//! and data in sorted order; names outside every configured zone — e.g. a Service's
//! `name.namespace` key — can be reached relative to any zone and count for all of them; a
//! name inside several nested zones counts for the longest):
//! - until the index has been synced once, the serial is a base derived from the hash alone
//!   (1 for an empty zone, else `1 + hash % 999_999_999`), so two instances that synced the
//!   same data answer the same serial; the base stays below any current Unix time;
//! - afterwards, when the hash changes the serial becomes `max(previous + 1, now)` (`now` in
//!   Unix seconds, truncated to u32), otherwise it stays. Instances that see the same change
//!   in the same second agree again.
//!
//! A restarted process starts again from the base (there is no persisted state), so its
//! serial can be lower than before the restart.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::kube::metrics::{INDEX_BUILD_SECONDS, INDEX_NAMES};
use crate::kube::model::{Address, Contribution, Filters, Kind, ObjKey, ObjKind};
use crate::kube::snapshot::{RecordSet, Snapshot, ZoneSerial};
use crate::kube::source::Feed;

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

/// Quiet time after a change before a rebuild starts (a burst of events makes one build).
const DEBOUNCE_QUIET: Duration = Duration::from_millis(5);
/// Under continuous churn a rebuild waits at most as long as the last build took, within these
/// bounds: small indexes follow every change within tens of milliseconds, big ones do not
/// rebuild back to back (at most about half a core spent building).
const DEBOUNCE_MAX_MIN: Duration = Duration::from_millis(25);
const DEBOUNCE_MAX_MAX: Duration = Duration::from_millis(200);
/// How often a resolved hostname is looked up again.
const RESOLVE_REFRESH: Duration = Duration::from_secs(60);
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
    map: Mutex<HashMap<String, Vec<IpAddr>>>,
}

impl HostCache {
    pub fn new() -> Self {
        HostCache::default()
    }

    /// The addresses last resolved for `host` (lower-case, no trailing dot).
    pub fn get(&self, host: &str) -> Option<Vec<IpAddr>> {
        self.lock().get(host).cloned()
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
        if map.get(host) == Some(&addrs) {
            return false;
        }
        map.insert(host.to_owned(), addrs);
        true
    }

    /// Forgets `host`; returns whether it was known.
    pub fn remove(&self, host: &str) -> bool {
        self.lock().remove(host).is_some()
    }

    fn copy(&self) -> HashMap<String, Vec<IpAddr>> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<IpAddr>>> {
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
/// bursts, rebuilds, swaps. Also runs the background resolver for hostname addresses.
pub async fn run(cfg: IndexConfig, feed: Feed, out: Arc<ArcSwap<Snapshot>>) {
    Index::new().run(cfg, feed, out).await
}

/// One synchronous build (used by `run` and by tests) with an empty hostname cache: hostname
/// addresses yield nothing. See [`Index::build`].
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

    /// One synchronous build from the store, with hostname addresses from the cache.
    /// `previous` (the snapshot being replaced) carries the serials forward.
    pub fn build(&self, cfg: &IndexConfig, feed: &Feed, previous: Option<&Snapshot>) -> Snapshot {
        self.build_at(cfg, feed, previous, unix_now()).snapshot
    }

    /// Like [`Index::run`]'s loop; see the free [`run`].
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
        loop {
            let previous = out.load_full();
            let (index, c, f) = (self.clone(), cfg.clone(), feed.clone());
            let started = std::time::Instant::now();
            // Big indexes take a while to build: keep that off the runtime's workers.
            let built = tokio::task::spawn_blocking(move || {
                index.build_at(&c, &f, Some(&previous), unix_now())
            })
            .await;
            match built {
                Ok(b) => {
                    let took = started.elapsed();
                    last_build = took;
                    INDEX_BUILD_SECONDS.observe(took.as_secs_f64());
                    let mut sizes = String::new();
                    for &k in &cfg.kinds {
                        let n = b.snapshot.names(k);
                        INDEX_NAMES.with_label_values(&[k.as_str()]).set(n as i64);
                        sizes.push_str(&format!(" {k}={n}"));
                    }
                    tracing::debug!(
                        "k8s_gateway index built in {took:?}:{sizes} ents={} hostnames={} synced={}",
                        b.snapshot.ents(),
                        b.hostnames.len(),
                        b.snapshot.synced()
                    );
                    out.store(Arc::new(b.snapshot));
                    hosts.send_if_modified(|cur| {
                        if *cur == b.hostnames {
                            false
                        } else {
                            *cur = b.hostnames;
                            true
                        }
                    });
                }
                Err(e) => tracing::error!("k8s_gateway index build failed: {e}"),
            }
            feed.changed().await;
            let max = last_build.clamp(DEBOUNCE_MAX_MIN, DEBOUNCE_MAX_MAX);
            debounce(&feed, DEBOUNCE_QUIET, max).await;
        }
    }

    /// The build itself, at Unix time `now` (for serials); also returns every hostname
    /// address seen, for the resolver.
    fn build_at(
        &self,
        cfg: &IndexConfig,
        feed: &Feed,
        previous: Option<&Snapshot>,
        now: u32,
    ) -> Built {
        let watched = cfg.watched();
        let (objects, synced) = feed.with_store(|s| {
            let objects: HashMap<ObjKind, HashMap<ObjKey, Contribution>> = watched
                .iter()
                .filter_map(|k| s.get(*k).map(|m| (*k, m.clone())))
                .collect();
            (objects, watched.iter().all(|k| s.is_synced(*k)))
        });
        let resolved = self.cache.copy();
        let mut hostnames = BTreeSet::new();
        let empty = HashMap::new();
        let objs = |k: ObjKind| objects.get(&k).unwrap_or(&empty);

        // Service → its ready EndpointSlice addresses.
        let mut endpoints: HashMap<&ObjKey, Vec<IpAddr>> = HashMap::new();
        for c in objs(ObjKind::EndpointSlice).values() {
            if let Contribution::EndpointSlice { service, addrs } = c {
                endpoints.entry(service).or_default().extend(addrs);
            }
        }
        let gateways = objs(ObjKind::Gateway);
        let classes = &cfg.filters.gateway_classes;

        let mut kinds: Vec<Kind> = Vec::with_capacity(cfg.kinds.len());
        for &k in &cfg.kinds {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }

        let mut snap = Snapshot {
            synced,
            ..Snapshot::default()
        };
        let mut conflicts = Vec::new();
        for &kind in &kinds {
            let mut accs: HashMap<String, Acc> = HashMap::new();
            for c in objs(kind.watched()[0]).values() {
                match c {
                    Contribution::Route {
                        hostnames: names,
                        parents,
                    } => {
                        let mut addrs = Vec::new();
                        for p in parents {
                            if let Some(Contribution::Gateway { class, addrs: gw }) =
                                gateways.get(p)
                                && (classes.is_empty() || classes.contains(class))
                            {
                                for a in gw {
                                    push_addr(&mut addrs, a, &resolved, &mut hostnames);
                                }
                            }
                        }
                        if addrs.is_empty() {
                            continue;
                        }
                        for name in names {
                            let acc = accs.entry(norm(name).into_owned()).or_default();
                            acc.addrs.extend_from_slice(&addrs);
                        }
                    }
                    Contribution::Names(names) => {
                        for nd in names {
                            let acc = accs.entry(norm(&nd.name).into_owned()).or_default();
                            match &nd.endpoints_of {
                                Some(svc) => {
                                    if let Some(eps) = endpoints.get(svc) {
                                        acc.addrs.extend_from_slice(eps);
                                    }
                                }
                                None => {
                                    for a in &nd.addrs {
                                        push_addr(&mut acc.addrs, a, &resolved, &mut hostnames);
                                    }
                                }
                            }
                            acc.txt.extend(nd.txt.iter().cloned());
                            acc.cname
                                .extend(nd.cname.iter().map(|c| norm(c).into_owned()));
                        }
                    }
                    Contribution::Gateway { .. } | Contribution::EndpointSlice { .. } => {}
                }
            }
            let (exact, wild) = (&mut snap.exact[kind.index()], &mut snap.wild[kind.index()]);
            exact.reserve(accs.len());
            for (name, acc) in accs {
                let (rs, conflict) = acc.finish();
                if rs.is_empty() || name.is_empty() {
                    continue;
                }
                if conflict {
                    conflicts.push(format!("{kind}/{name}"));
                }
                add_ancestors(&mut snap.ents, &name);
                match name.strip_prefix("*.") {
                    Some(parent) if !parent.is_empty() => {
                        wild.insert(parent.to_owned(), Arc::new(rs));
                    }
                    Some(_) => {}
                    None if name == "*" => {}
                    None => {
                        exact.insert(name, Arc::new(rs));
                    }
                }
            }
        }

        conflicts.sort_unstable();
        let old: &[String] = previous.map_or(&[], |p| &p.conflicts);
        for c in &conflicts {
            if old.binary_search(c).is_err() {
                tracing::warn!(
                    "k8s_gateway: {c} has a CNAME and other data; answering the CNAME only \
                     (a CNAME cannot coexist with other records, RFC 1034)"
                );
            }
        }
        snap.conflicts = conflicts;

        let ever_synced = synced || previous.is_some_and(|p| p.ever_synced);
        snap.ever_synced = ever_synced;
        for (zone, hash, count) in zone_hashes(&cfg.zones, &kinds, &snap) {
            let prev = previous
                .filter(|p| p.ever_synced)
                .and_then(|p| p.zones.get(&zone).copied());
            let serial = match prev {
                Some(p) if p.hash == hash => p.serial,
                Some(p) => p.serial.wrapping_add(1).max(1).max(now),
                None => base_serial(hash, count),
            };
            snap.zones.insert(zone, ZoneSerial { serial, hash });
        }
        Built {
            snapshot: snap,
            hostnames,
        }
    }
}

/// A build's result.
struct Built {
    snapshot: Snapshot,
    /// Every `Address::Hostname` in the objects the index used.
    hostnames: BTreeSet<String>,
}

/// The data gathered for one name of one kind, before sorting.
#[derive(Default)]
struct Acc {
    addrs: Vec<IpAddr>,
    txt: Vec<String>,
    cname: Vec<String>,
}

impl Acc {
    /// Sorted, de-duplicated records; `true` when a CNAME had to drop other data.
    fn finish(self) -> (RecordSet, bool) {
        let mut rs = RecordSet::default();
        for ip in self.addrs {
            match ip.to_canonical() {
                IpAddr::V4(a) => rs.a.push(a),
                IpAddr::V6(a) => rs.aaaa.push(a),
            }
        }
        rs.a.sort_unstable();
        rs.a.dedup();
        rs.aaaa.sort_unstable();
        rs.aaaa.dedup();
        rs.txt = self.txt;
        rs.txt.sort_unstable();
        rs.txt.dedup();
        rs.cname = self.cname;
        rs.cname.retain(|c| !c.is_empty());
        rs.cname.sort_unstable();
        rs.cname.dedup();
        let other = !(rs.a.is_empty() && rs.aaaa.is_empty() && rs.txt.is_empty());
        let conflict = other && !rs.cname.is_empty();
        if conflict {
            rs.a.clear();
            rs.aaaa.clear();
            rs.txt.clear();
        }
        (rs, conflict)
    }
}

/// Appends the IPs `a` stands for: itself, or a hostname's cached addresses (none until the
/// resolver has them). Records every hostname in `hostnames`.
fn push_addr(
    out: &mut Vec<IpAddr>,
    a: &Address,
    resolved: &HashMap<String, Vec<IpAddr>>,
    hostnames: &mut BTreeSet<String>,
) {
    match a {
        Address::Ip(ip) => out.push(*ip),
        Address::Hostname(h) => {
            let h = norm(h);
            if let Some(ips) = resolved.get(h.as_ref()) {
                out.extend_from_slice(ips);
            }
            if !hostnames.contains(h.as_ref()) {
                hostnames.insert(h.into_owned());
            }
        }
    }
}

/// Lower-case, without a trailing dot (sources already deliver names that way; this only
/// allocates when they did not).
fn norm(name: &str) -> Cow<'_, str> {
    let n = name.strip_suffix('.').unwrap_or(name);
    if n.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(n.to_ascii_lowercase())
    } else {
        Cow::Borrowed(n)
    }
}

/// Adds every proper ancestor of `name` (`a.b.c` → `b.c`, `c`).
fn add_ancestors(ents: &mut HashSet<String>, name: &str) {
    let mut rest = name;
    while let Some((_, parent)) = rest.split_once('.') {
        if parent.is_empty() {
            break;
        }
        if ents.contains(parent) {
            // Its own ancestors were added with it.
            break;
        }
        ents.insert(parent.to_owned());
        rest = parent;
    }
}

/// Whether `name` is `zone` or below it (`zone` without trailing dot; "" is the root).
fn in_zone(name: &str, zone: &str) -> bool {
    zone.is_empty()
        || name == zone
        || (name.len() > zone.len()
            && name.ends_with(zone)
            && name.as_bytes()[name.len() - zone.len() - 1] == b'.')
}

/// Per configured zone (normalized): its content hash and how many names it holds.
fn zone_hashes(zones: &[String], kinds: &[Kind], snap: &Snapshot) -> Vec<(String, u64, usize)> {
    let mut names: Vec<String> = Vec::new();
    for z in zones {
        let z = norm(z).into_owned();
        if !names.contains(&z) {
            names.push(z);
        }
    }
    let mut hashers: Vec<(Sha256, usize)> = names.iter().map(|_| (Sha256::new(), 0)).collect();
    let mut buf = Vec::with_capacity(256);
    for &kind in kinds {
        for (wild, map) in [
            (false, &snap.exact[kind.index()]),
            (true, &snap.wild[kind.index()]),
        ] {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            for key in keys {
                let rs = &map[key];
                encode_entry(&mut buf, kind, wild, key, rs);
                // `*.p` lies in zone z when p is z or below it.
                let best = names
                    .iter()
                    .enumerate()
                    .filter(|(_, z)| in_zone(key, z))
                    .max_by_key(|(_, z)| z.len())
                    .map(|(i, _)| i);
                match best {
                    Some(i) => {
                        hashers[i].0.update(&buf);
                        hashers[i].1 += 1;
                    }
                    // Outside every zone: reachable relative to any of them.
                    None => {
                        for h in hashers.iter_mut() {
                            h.0.update(&buf);
                            h.1 += 1;
                        }
                    }
                }
            }
        }
    }
    names
        .into_iter()
        .zip(hashers)
        .map(|(z, (h, n))| {
            let d = h.finalize();
            let mut b = [0u8; 8];
            b.copy_from_slice(&d[..8]);
            (z, u64::from_be_bytes(b), n)
        })
        .collect()
}

/// An unambiguous byte encoding of one entry, for hashing.
fn encode_entry(buf: &mut Vec<u8>, kind: Kind, wild: bool, key: &str, rs: &RecordSet) {
    fn bytes(buf: &mut Vec<u8>, b: &[u8]) {
        buf.extend_from_slice(&(b.len() as u32).to_be_bytes());
        buf.extend_from_slice(b);
    }
    buf.clear();
    buf.push(kind.index() as u8);
    buf.push(wild as u8);
    bytes(buf, key.as_bytes());
    buf.extend_from_slice(&(rs.a.len() as u32).to_be_bytes());
    for a in &rs.a {
        buf.extend_from_slice(&a.octets());
    }
    buf.extend_from_slice(&(rs.aaaa.len() as u32).to_be_bytes());
    for a in &rs.aaaa {
        buf.extend_from_slice(&a.octets());
    }
    buf.extend_from_slice(&(rs.txt.len() as u32).to_be_bytes());
    for t in &rs.txt {
        bytes(buf, t.as_bytes());
    }
    buf.extend_from_slice(&(rs.cname.len() as u32).to_be_bytes());
    for c in &rs.cname {
        bytes(buf, c.as_bytes());
    }
}

/// The serial before the first synced build: from the data only, below any current Unix time.
fn base_serial(hash: u64, names: usize) -> u32 {
    if names == 0 {
        1
    } else {
        1 + (hash % 999_999_999) as u32
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

type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;
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
    /// With the system resolver (`getaddrinfo` on tokio's blocking pool).
    fn system(cache: Arc<HostCache>, feed: Feed) -> Self {
        Resolver {
            cache,
            feed,
            lookup: Arc::new(|name: String| -> LookupFuture {
                Box::pin(async move {
                    let addrs = tokio::net::lookup_host((name.as_str(), 0)).await?;
                    Ok(addrs.map(|sa| sa.ip()).collect())
                })
            }),
            refresh: RESOLVE_REFRESH,
            retry: RESOLVE_RETRY,
            timeout: RESOLVE_TIMEOUT,
            parallel: RESOLVE_PARALLEL,
        }
    }

    /// Runs until `names`' sender is dropped; `names` is the current set of hostnames.
    async fn run(self, mut names: watch::Receiver<BTreeSet<String>>) {
        let mut states: HashMap<String, HostState> = HashMap::new();
        let mut jobs: JoinSet<(String, io::Result<Vec<IpAddr>>)> = JoinSet::new();
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
    fn done(
        &self,
        states: &mut HashMap<String, HostState>,
        name: String,
        result: io::Result<Vec<IpAddr>>,
    ) {
        let Some(st) = states.get_mut(&name) else {
            return; // no longer wanted
        };
        st.in_flight = false;
        let result = result.and_then(|v| {
            if v.is_empty() {
                Err(io::Error::other("no addresses"))
            } else {
                Ok(v)
            }
        });
        match result {
            Ok(addrs) => {
                st.due = Instant::now() + self.refresh;
                st.failures = 0;
                if self.cache.insert(&name, addrs) {
                    tracing::debug!(
                        "k8s_gateway: {name} resolved to {:?}",
                        self.cache.get(&name)
                    );
                    self.feed.bump();
                }
            }
            Err(e) => {
                st.due = Instant::now() + self.retry;
                if st.failures == 0 {
                    tracing::warn!("k8s_gateway: cannot resolve status hostname {name}: {e}");
                } else {
                    tracing::debug!("k8s_gateway: cannot resolve status hostname {name}: {e}");
                }
                st.failures = st.failures.saturating_add(1);
            }
        }
    }
}

#[cfg(test)]
mod tests;
