//! The API-server source: discovers which object kinds the cluster serves, list-watches each
//! served kind and delivers its objects' contributions to a [`Feed`].
//!
//! Decisions:
//! - **Discovery first.** Before watching a kind, its group/version resource list is fetched
//!   (`/api/v1` or `/apis/GROUP/VERSION`) and the first version exdns understands that is
//!   served and lists the kind's plural is used (TLSRoute: `v1` where served, else `v1alpha2`).
//!   kube's watcher would otherwise retry a missing CRD's 404 list forever and never sync.
//! - **A kind that is not served** (CRD not installed) is logged with one warning, marked
//!   synced with no objects (so readiness and queries do not wait for a CRD that may never be
//!   installed: absent objects are the truth), `exdns_k8s_gateway_kind_served{kind}` is 0, and
//!   discovery is re-probed every [`WatchOptions::discovery_interval`] (60 s; the
//!   `EXDNS_DISCOVERY_INTERVAL_MS` environment variable overrides it). When it appears it is
//!   watched; it stays synced meanwhile (its first list then replaces the empty set), so a
//!   CRD being installed does not make every answer SERVFAIL for a moment. A watched kind
//!   whose list/watch starts failing with 404 (CRD removed, or its version withdrawn) goes back
//!   to discovery: if it is no longer served its objects are dropped (they no longer exist);
//!   if another version is served that one is watched.
//! - **Errors never clear data.** While the API server is unreachable, forbids access or
//!   returns errors, the last good objects stay in the store; a kind keeps its synced state.
//!   Errors back off exponentially per watch (800 ms doubling to 30 s, with jitter; reset when
//!   the server answers again). A 410 (resourceVersion too old) is not an error to back off
//!   from: kube's watcher re-lists at once, and the re-list replaces the kind's objects
//!   (`Event::Replace`), so objects deleted while the watch was away disappear.
//! - **403 Forbidden** is logged once per kind at error level (`plugin/k8s_gateway: forbidden to
//!   list/watch services: ...`), counted in `exdns_k8s_gateway_watch_errors_total{kind,
//!   reason="forbidden"}` on every attempt, and retried with backoff. It does not block other
//!   kinds: a kind forbidden before its first list counts as synced with no objects (readiness
//!   and the other kinds' answers do not wait for RBAC to be fixed); once access is granted its
//!   list arrives and its names appear.
//! - **serviceLabelSelectors**: one server-side watch per selector; each keeps its own object
//!   set, and the kind's objects are their union (an object matching two selectors is indexed
//!   once and disappears only when no selector matches it). The kind syncs when every
//!   selector's first list has completed. EndpointSlices are watched without a selector.
//! - Object keys are `metadata.namespace/metadata.name` (namespace empty for Nodes).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, TypeMeta};
use kube::runtime::watcher;
use tokio::task::JoinSet;

use crate::kube::kinds;
use crate::kube::metrics::{EVENTS, KIND_SERVED, WATCH_ERRORS};
use crate::kube::model::{Contribution, Event, Filters, ObjKey, ObjKind};
use crate::kube::source::Feed;

/// Converts one raw object of a kind into its key and contribution
/// ([`kinds::contribute`] unless a test injects another).
pub type Convert =
    fn(ObjKind, &serde_json::Value, &Filters) -> Result<(ObjKey, Option<Contribution>), String>;

/// The default discovery re-probe interval: 60 s, or `EXDNS_DISCOVERY_INTERVAL_MS` (read once).
pub static DISCOVERY_INTERVAL: LazyLock<Duration> = LazyLock::new(|| {
    match std::env::var("EXDNS_DISCOVERY_INTERVAL_MS") {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => {
                tracing::warn!(
                    "ignoring EXDNS_DISCOVERY_INTERVAL_MS={v:?} (not a positive number of milliseconds)"
                );
                Duration::from_secs(60)
            }
        },
        Err(_) => Duration::from_secs(60),
    }
});

/// Tunables of [`run_with`].
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// How often a kind whose API is not served is looked for again.
    pub discovery_interval: Duration,
    /// First delay after a failed call; doubles per consecutive failure up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Object conversion.
    pub convert: Convert,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            discovery_interval: *DISCOVERY_INTERVAL,
            backoff_min: Duration::from_millis(800),
            backoff_max: Duration::from_secs(30),
            convert: kinds::contribute,
        }
    }
}

/// Watches `kinds` (duplicates ignored) on the cluster behind `client` and delivers their
/// objects to `feed`. Runs until dropped (abort the task running it to stop every watch; the
/// per-kind tasks are aborted with it).
pub async fn run(client: Client, kinds: Vec<ObjKind>, filters: Filters, feed: Feed) {
    run_with(client, kinds, filters, feed, WatchOptions::default()).await
}

/// [`run`] with explicit options (tests shorten intervals and inject a converter).
pub async fn run_with(
    client: Client,
    mut kinds: Vec<ObjKind>,
    filters: Filters,
    feed: Feed,
    opts: WatchOptions,
) {
    crate::kube::metrics::init();
    let mut seen = std::collections::HashSet::new();
    kinds.retain(|k| seen.insert(*k));
    let filters = Arc::new(filters);
    let mut tasks = JoinSet::new();
    for kind in kinds {
        tasks.spawn(watch_kind(
            client.clone(),
            kind,
            filters.clone(),
            feed.clone(),
            opts.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
}

/// One kind, forever: discovery, then watching while served.
async fn watch_kind(
    client: Client,
    kind: ObjKind,
    filters: Arc<Filters>,
    feed: Feed,
    opts: WatchOptions,
) {
    let (group, _, _) = kind.api();
    let mut log = ErrorLog::default();
    let mut backoff = Backoff::new(opts.backoff_min, opts.backoff_max);
    let mut announced_unserved = false;
    let mut watched_before = false;
    loop {
        match discover(&client, kind).await {
            Ok(Some(version)) => {
                KIND_SERVED.with_label_values(&[kind.as_str()]).set(1);
                if announced_unserved {
                    tracing::info!(
                        "{kind} API ({}) is now served; watching it",
                        api_version(group, version)
                    );
                    announced_unserved = false;
                }
                if watched_before {
                    // Served again right after a 404 from list/watch: don't spin.
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                watched_before = true;
                if watch_served(&client, kind, version, &filters, &feed, &opts, &mut log).await {
                    backoff.reset();
                }
            }
            Ok(None) => {
                KIND_SERVED.with_label_values(&[kind.as_str()]).set(0);
                if announced_unserved {
                    tracing::debug!("{kind} API is still not served");
                } else {
                    tracing::warn!(
                        "{kind} API ({}) is not served; skipping it, will check again every {}",
                        if group.is_empty() { "core" } else { group },
                        fmt_interval(opts.discovery_interval)
                    );
                    announced_unserved = true;
                }
                watched_before = false;
                backoff.reset();
                log.progress();
                // Not served: none of its objects exist.
                feed.apply(kind, Event::Replace(Vec::new()));
                feed.set_synced(kind, true);
                tokio::time::sleep(opts.discovery_interval).await;
            }
            Err(failure) => {
                log.record(kind, &failure, Phase::Discovery);
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// `60s`, `1500ms`.
fn fmt_interval(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The first version of `kind` (in exdns's preference order) whose group/version the API
/// server serves with the kind's plural in it; `None` when none is.
async fn discover(client: &Client, kind: ObjKind) -> Result<Option<&'static str>, Failure> {
    let (group, versions, plural) = kind.api();
    for &version in versions {
        let res = if group.is_empty() {
            client.list_core_api_resources(version).await
        } else {
            client
                .list_api_group_resources(&api_version(group, version))
                .await
        };
        match res {
            Ok(list) => {
                if list.resources.iter().any(|r| r.name == plural) {
                    return Ok(Some(version));
                }
            }
            Err(e) => {
                let failure = Failure::from_client(&e);
                if failure.reason != Reason::NotFound {
                    return Err(failure);
                }
            }
        }
    }
    Ok(None)
}

/// Watches `kind` at `version` until a list/watch call answers 404 (the API went away);
/// returns whether the server delivered anything meanwhile.
async fn watch_served(
    client: &Client,
    kind: ObjKind,
    version: &str,
    filters: &Arc<Filters>,
    feed: &Feed,
    opts: &WatchOptions,
    log: &mut ErrorLog,
) -> bool {
    let (group, _, plural) = kind.api();
    let resource = ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: api_version(group, version),
        kind: kind.k8s_kind().to_string(),
        plural: plural.to_string(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let selectors: Vec<Option<String>> =
        if kind == ObjKind::Service && !filters.service_label_selectors.is_empty() {
            filters
                .service_label_selectors
                .iter()
                .map(|s| Some(s.clone()))
                .collect()
        } else {
            vec![None]
        };
    let mut state = KindState::new(
        kind,
        resource.api_version.clone(),
        selectors.len(),
        filters.clone(),
        feed.clone(),
        opts.convert,
    );
    let streams = selectors.into_iter().enumerate().map(|(i, selector)| {
        let mut config = watcher::Config::default().any_semantic();
        if let Some(s) = &selector {
            config = config.labels(s);
        }
        let backoff = Backoff::new(opts.backoff_min, opts.backoff_max);
        with_backoff(watcher(api.clone(), config).boxed(), backoff)
            .map(move |item| (i, item))
            .boxed()
    });
    let mut events = futures::stream::select_all(streams);
    let mut progressed = false;
    tracing::info!("watching {kind} ({})", resource.api_version);
    while let Some((i, item)) = events.next().await {
        match item {
            Ok(ev) => {
                if !matches!(ev, watcher::Event::Init) {
                    log.progress();
                    progressed = true;
                }
                state.on_event(i, ev);
            }
            Err(e) => {
                let failure = Failure::from_watcher(&e);
                log.record(kind, &failure, Phase::Watch);
                if failure.reason == Reason::Forbidden && !feed.with_store(|s| s.is_synced(kind)) {
                    // A forbidden kind must not hold every other kind's answers hostage
                    // (SERVFAIL until sync): it counts as synced with no objects, the error is
                    // logged and counted, and the watch keeps retrying.
                    feed.set_synced(kind, true);
                }
                if failure.reason == Reason::NotFound {
                    tracing::info!(
                        "{kind} ({}) returned 404; checking API discovery again",
                        resource.api_version
                    );
                    return progressed;
                }
            }
        }
    }
    // The merged watcher streams never end.
    progressed
}

/// Pauses a watcher stream after each error (except 410, which is followed by an immediate
/// re-list), growing the pause while errors repeat; any answer from the server resets it.
/// (kube's `StreamBackoff` resets on every `Ok`, including the `Init` the watcher emits before
/// each list attempt, so a failing list would never back off past the first delay.)
fn with_backoff<S, K>(
    stream: S,
    backoff: Backoff,
) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send
where
    S: Stream<Item = watcher::Result<watcher::Event<K>>> + Send + Unpin,
    K: Send,
{
    futures::stream::unfold(
        (stream, backoff, None::<Duration>),
        |(mut stream, mut backoff, pause)| async move {
            if let Some(d) = pause {
                tokio::time::sleep(d).await;
            }
            let item = stream.next().await?;
            let pause = match &item {
                Err(e) if Failure::from_watcher(e).reason == Reason::Expired => None,
                Err(_) => Some(backoff.next_delay()),
                Ok(watcher::Event::Init) => None,
                Ok(_) => {
                    backoff.reset();
                    None
                }
            };
            Some((item, (stream, backoff, pause)))
        },
    )
}

/// Exponential backoff with ±20 % jitter.
#[derive(Debug, Clone)]
struct Backoff {
    min: Duration,
    max: Duration,
    current: Option<Duration>,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            current: None,
        }
    }

    /// The un-jittered delay of the next attempt.
    fn next_base(&mut self) -> Duration {
        let next = match self.current {
            None => self.min,
            Some(d) => (d * 2).min(self.max),
        };
        self.current = Some(next);
        next
    }

    fn next_delay(&mut self) -> Duration {
        self.next_base().mul_f64(rand::random_range(0.8..=1.2))
    }

    fn reset(&mut self) {
        self.current = None;
    }
}

/// Why a call failed, as the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Forbidden,
    Unauthorized,
    NotFound,
    Expired,
    ApiError,
    Unreachable,
    Decode,
    Other,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Forbidden => "forbidden",
            Reason::Unauthorized => "unauthorized",
            Reason::NotFound => "not_found",
            Reason::Expired => "expired",
            Reason::ApiError => "api_error",
            Reason::Unreachable => "unreachable",
            Reason::Decode => "decode",
            Reason::Other => "other",
        }
    }

    fn from_status(status: &kube::core::Status) -> Reason {
        match status.code {
            401 => Reason::Unauthorized,
            403 => Reason::Forbidden,
            404 => Reason::NotFound,
            410 => Reason::Expired,
            _ if status.is_forbidden() => Reason::Forbidden,
            _ if status.is_not_found() => Reason::NotFound,
            _ => Reason::ApiError,
        }
    }
}

#[derive(Debug, Clone)]
struct Failure {
    reason: Reason,
    /// The API status message when there is one, else the error text.
    message: String,
}

impl Failure {
    fn from_client(e: &kube::Error) -> Failure {
        match e {
            kube::Error::Api(status) => Failure {
                reason: Reason::from_status(status),
                message: if status.message.is_empty() {
                    e.to_string()
                } else {
                    status.message.clone()
                },
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
                Failure {
                    reason: Reason::Unreachable,
                    message: e.to_string(),
                }
            }
            kube::Error::SerdeError(_)
            | kube::Error::FromUtf8(_)
            | kube::Error::LinesCodecMaxLineLengthExceeded => Failure {
                reason: Reason::Decode,
                message: e.to_string(),
            },
            _ => Failure {
                reason: Reason::Other,
                message: e.to_string(),
            },
        }
    }

    fn from_watcher(e: &watcher::Error) -> Failure {
        match e {
            watcher::Error::InitialListFailed(e)
            | watcher::Error::WatchStartFailed(e)
            | watcher::Error::WatchFailed(e) => Failure::from_client(e),
            watcher::Error::WatchError(status) => Failure {
                reason: Reason::from_status(status),
                message: if status.message.is_empty() {
                    e.to_string()
                } else {
                    status.message.clone()
                },
            },
            watcher::Error::NoResourceVersion => Failure {
                reason: Reason::Decode,
                message: e.to_string(),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Discovery,
    Watch,
}

/// Counts every failure; logs the first of a run of failures (403: once until the kind works
/// again, at error level), the rest at debug.
#[derive(Debug, Default)]
struct ErrorLog {
    forbidden_logged: bool,
    last: Option<Reason>,
}

impl ErrorLog {
    fn record(&mut self, kind: ObjKind, f: &Failure, phase: Phase) {
        WATCH_ERRORS
            .with_label_values(&[kind.as_str(), f.reason.as_str()])
            .inc();
        let (group, _, plural) = kind.api();
        match (f.reason, phase) {
            (Reason::Forbidden, _) if !self.forbidden_logged => {
                self.forbidden_logged = true;
                self.last = Some(f.reason);
                tracing::error!("forbidden to list/watch {plural}: {}", f.message);
            }
            (Reason::Expired, Phase::Watch) => {
                tracing::debug!("{kind} watch expired, re-listing: {}", f.message);
            }
            (reason, _) if self.last != Some(reason) && reason != Reason::Forbidden => {
                self.last = Some(reason);
                match phase {
                    Phase::Discovery => tracing::warn!(
                        "API discovery for {kind} ({}) failed ({}): {}",
                        if group.is_empty() { "core" } else { group },
                        reason.as_str(),
                        f.message
                    ),
                    Phase::Watch => tracing::warn!(
                        "list/watch of {plural} failed ({}): {}; keeping the last known objects",
                        reason.as_str(),
                        f.message
                    ),
                }
            }
            (reason, _) => {
                tracing::debug!(
                    "{kind} {phase:?} failed again ({}): {}",
                    reason.as_str(),
                    f.message
                );
            }
        }
    }

    /// The server answered: the next failure is news again.
    fn progress(&mut self) {
        self.forbidden_logged = false;
        self.last = None;
    }
}

/// Per-watch (per label selector) state.
#[derive(Debug, Default)]
struct SelectorState {
    /// Objects of a list in progress (`Init` .. `InitDone`).
    buffer: Option<Vec<(ObjKey, Contribution)>>,
    /// Whether a first list completed.
    listed: bool,
    /// This selector's objects (kept only when there are several selectors, to union them).
    objects: HashMap<ObjKey, Contribution>,
}

/// Turns watcher events of one kind (from one or several label-selector watches) into feed
/// events.
struct KindState {
    kind: ObjKind,
    api_version: String,
    filters: Arc<Filters>,
    feed: Feed,
    convert: Convert,
    selectors: Vec<SelectorState>,
    /// Every selector has listed once: the feed holds the union and follows changes.
    synced: bool,
}

impl KindState {
    fn new(
        kind: ObjKind,
        api_version: String,
        selectors: usize,
        filters: Arc<Filters>,
        feed: Feed,
        convert: Convert,
    ) -> Self {
        KindState {
            kind,
            api_version,
            filters,
            feed,
            convert,
            selectors: (0..selectors.max(1))
                .map(|_| SelectorState::default())
                .collect(),
            synced: false,
        }
    }

    fn single(&self) -> bool {
        self.selectors.len() == 1
    }

    fn count(&self, ty: &str) {
        EVENTS.with_label_values(&[self.kind.as_str(), ty]).inc();
    }

    fn on_event(&mut self, i: usize, ev: watcher::Event<DynamicObject>) {
        match ev {
            watcher::Event::Init => {
                self.selectors[i].buffer = Some(Vec::new());
            }
            watcher::Event::InitApply(obj) => {
                let (key, contribution) = self.convert(obj);
                if let Some(c) = contribution {
                    self.selectors[i]
                        .buffer
                        .get_or_insert_with(Vec::new)
                        .push((key, c));
                }
            }
            watcher::Event::InitDone => {
                self.count("list");
                let items = self.selectors[i].buffer.take().unwrap_or_default();
                if self.single() {
                    self.feed.apply(self.kind, Event::Replace(items));
                    self.synced = true;
                    self.feed.set_synced(self.kind, true);
                    // The list's pages are gone, and so are the objects it replaced.
                    crate::mem::release_free_memory();
                    return;
                }
                let sel = &mut self.selectors[i];
                sel.objects = items.into_iter().collect();
                sel.listed = true;
                if self.selectors.iter().all(|s| s.listed) {
                    let mut union: HashMap<ObjKey, Contribution> = HashMap::new();
                    for s in &self.selectors {
                        for (k, c) in &s.objects {
                            union.entry(k.clone()).or_insert_with(|| c.clone());
                        }
                    }
                    self.feed
                        .apply(self.kind, Event::Replace(union.into_iter().collect()));
                    self.synced = true;
                    self.feed.set_synced(self.kind, true);
                    crate::mem::release_free_memory();
                }
            }
            watcher::Event::Apply(obj) => {
                self.count("apply");
                let (key, contribution) = self.convert(obj);
                if self.single() {
                    self.feed.apply(self.kind, Event::Apply(key, contribution));
                    return;
                }
                let contribution = match contribution {
                    Some(c) => {
                        self.selectors[i].objects.insert(key.clone(), c.clone());
                        Some(c)
                    }
                    None => {
                        self.selectors[i].objects.remove(&key);
                        self.other(i, &key)
                    }
                };
                if self.synced {
                    self.feed.apply(self.kind, Event::Apply(key, contribution));
                }
            }
            watcher::Event::Delete(obj) => {
                self.count("delete");
                let key = meta_key(&obj);
                if self.single() {
                    self.feed.apply(self.kind, Event::Delete(key));
                    return;
                }
                self.selectors[i].objects.remove(&key);
                if self.synced {
                    let ev = match self.other(i, &key) {
                        Some(c) => Event::Apply(key, Some(c)),
                        None => Event::Delete(key),
                    };
                    self.feed.apply(self.kind, ev);
                }
            }
        }
    }

    /// The contribution of `key` under another selector than `i`.
    fn other(&self, i: usize, key: &ObjKey) -> Option<Contribution> {
        self.selectors
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .find_map(|(_, s)| s.objects.get(key).cloned())
    }

    /// Key and contribution of an object; a conversion error is logged and the object
    /// contributes nothing.
    fn convert(&self, mut obj: DynamicObject) -> (ObjKey, Option<Contribution>) {
        let key = meta_key(&obj);
        if obj.types.is_none() {
            // List items carry no apiVersion/kind; give the converter a complete object.
            obj.types = Some(TypeMeta {
                api_version: self.api_version.clone(),
                kind: self.kind.k8s_kind().to_string(),
            });
        }
        let value = match serde_json::to_value(&obj) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("ignoring {} {key}: {e}", self.kind);
                return (key, None);
            }
        };
        match (self.convert)(self.kind, &value, &self.filters) {
            Ok((_, contribution)) => (key, contribution),
            Err(e) => {
                tracing::warn!("ignoring {} {key}: {e}", self.kind);
                (key, None)
            }
        }
    }
}

fn meta_key(obj: &DynamicObject) -> ObjKey {
    ObjKey::new(
        obj.metadata.namespace.clone().unwrap_or_default(),
        obj.metadata.name.clone().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests;
