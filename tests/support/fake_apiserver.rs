//! A fake Kubernetes API server that speaks the real HTTP protocol, for tests that run the real kube
//! client (kube-rs 4.2: `Api`, `kube::runtime::watcher`, discovery) against it.
//!
//! It runs on its own tokio runtime in a background thread and listens on `127.0.0.1:0` over plain
//! HTTP. Tests drive it synchronously: register resources (discovery follows), create / update /
//! delete objects (every mutation bumps one global resourceVersion and is recorded in a bounded
//! per-resource history that watches replay), and inject faults (restart, compaction, forbidden
//! kinds, latency, failing requests, paused connections).
//!
//! What it does like a real kube-apiserver (1.33):
//! - discovery: `/api`, `/api/v1`, `/apis`, `/apis/G`, `/apis/G/V` in the legacy format, and the
//!   aggregated discovery format (`apidiscovery.k8s.io/v2`) for `/api` and `/apis` when the Accept
//!   header asks for it (like every server since 1.30; [`FakeApiServer::set_aggregated_discovery`]
//!   turns that off to play an older server, which answers the legacy format whatever the Accept);
//! - list with `limit`/`continue` paging over a consistent snapshot (a continue token older than the
//!   retained history → 410 Expired), `labelSelector` (`a=b`, `a==b`, `a!=b`, `a in (x,y)`,
//!   `a notin (x,y)`, `a`, `!a`, `a>1`, `a<1`), `fieldSelector` (`metadata.name`,
//!   `metadata.namespace`, and for built-in kinds any dotted path), `resourceVersion` +
//!   `resourceVersionMatch` semantics; list items of built-in kinds carry no kind/apiVersion, those
//!   of custom resources do;
//! - watch: replay from `resourceVersion=N`, initial ADDED events for `resourceVersion` unset or
//!   `0`, streaming lists (`sendInitialEvents=true`, ending with the `k8s.io/initial-events-end`
//!   BOOKMARK), periodic BOOKMARKs when `allowWatchBookmarks=true`, the stream closed after
//!   `timeoutSeconds`, a too old resourceVersion → one `ERROR` event with a 410 Status, label and
//!   field selectors applied to events the way the watch cache does (an object that stops matching
//!   is sent as DELETED, one that starts matching as ADDED);
//! - `Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1` (metadata-only
//!   lists and watches);
//! - bearer-token authentication (401 without the token written to the kubeconfig), 403 Status for
//!   forbidden kinds, 404 Status for kinds not served.
//!
//! Not implemented: writes over HTTP (POST/PUT/PATCH/DELETE answer 405; the test mutates objects
//! through this API), protobuf, field selectors beyond the ones above for custom resources.
#![allow(dead_code)]

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// The bearer token written into the kubeconfig and required on every API request.
pub const TOKEN: &str = "fake-apiserver-token";

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];
const META_ACCEPT_LIST: &str = "as=PartialObjectMetadataList";
const META_ACCEPT: &str = "as=PartialObjectMetadata";
const AGGREGATED_CT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
/// Default server-side watch timeout when the client sends no `timeoutSeconds`.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// Per-resource request counters (keyed by plural, all groups and versions together).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResourceCounts {
    /// List requests (every `GET` of a collection without `watch=true`, including failed ones).
    pub lists: usize,
    /// Watch requests (including ones that were refused).
    pub watches: usize,
    /// Single-object gets.
    pub gets: usize,
    /// Watch streams currently open.
    pub open_watches: usize,
}

#[derive(Debug, Clone)]
struct ResourceDef {
    group: String,
    version: String,
    plural: String,
    singular: String,
    kind: String,
    namespaced: bool,
    /// Built-in kinds: list items carry no kind/apiVersion; field selectors on any path.
    builtin: bool,
    short_names: Vec<String>,
    categories: Vec<String>,
}

impl ResourceDef {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn coll_key(&self) -> (String, String) {
        (self.group.clone(), self.plural.clone())
    }

    /// `ingresses.networking.k8s.io`, `services`.
    fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn legacy_entries(&self) -> [Value; 2] {
        let mut main = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": VERBS,
            "storageVersionHash": storage_hash(&self.group_resource()),
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            main["categories"] = json!(self.categories);
        }
        let status = json!({
            "name": format!("{}/status", self.plural),
            "singularName": "",
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": STATUS_VERBS,
        });
        [main, status]
    }

    fn aggregated_entry(&self) -> Value {
        let rk = json!({"group": self.group, "version": self.version, "kind": self.kind});
        let mut v = json!({
            "resource": self.plural,
            "responseKind": rk,
            "scope": if self.namespaced { "Namespaced" } else { "Cluster" },
            "singularResource": self.singular,
            "verbs": VERBS,
            "subresources": [{"subresource": "status", "responseKind": rk, "verbs": STATUS_VERBS}],
        });
        if !self.short_names.is_empty() {
            v["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            v["categories"] = json!(self.categories);
        }
        v
    }
}

fn storage_hash(s: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    hex(&h.finish().to_be_bytes())[..11].to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EvType {
    Added,
    Modified,
    Deleted,
}

#[derive(Debug, Clone)]
struct Ev {
    rv: u64,
    typ: EvType,
    /// The new state (for DELETED: the last state with the deletion's resourceVersion).
    obj: Value,
    /// The state before (MODIFIED and DELETED).
    prev: Option<Value>,
}

/// Objects of one (group, plural), shared by all its served versions (like a CRD with conversion
/// strategy None), and its event history.
#[derive(Debug, Default)]
struct Collection {
    objects: BTreeMap<(String, String), Value>,
    history: VecDeque<Ev>,
    /// The highest resourceVersion of an event dropped from the history.
    trimmed_upto: u64,
    /// Set by compaction: watches and snapshots must start at or after this resourceVersion.
    compacted_at: u64,
}

impl Collection {
    /// The oldest resourceVersion N from which every later event is still known.
    fn history_start(&self) -> u64 {
        self.trimmed_upto.max(self.compacted_at)
    }

    /// The objects as they were at `rv` (rewinding the history). Caller checks `history_start`.
    fn snapshot_at(&self, rv: u64) -> BTreeMap<(String, String), Value> {
        let mut m = self.objects.clone();
        for ev in self.history.iter().rev() {
            if ev.rv <= rv {
                break;
            }
            let key = obj_key(&ev.obj);
            match ev.typ {
                EvType::Added => {
                    m.remove(&key);
                }
                EvType::Modified | EvType::Deleted => {
                    if let Some(p) = &ev.prev {
                        m.insert(key, p.clone());
                    }
                }
            }
        }
        m
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Ctl {
    down_gen: u64,
    downtime: Duration,
    shutdown: bool,
}

struct State {
    rv: u64,
    resources: Vec<ResourceDef>,
    collections: HashMap<(String, String), Collection>,
    forbidden: HashSet<String>,
    fail_any: (usize, u16),
    fail_for: HashMap<String, (usize, u16)>,
    latency: Duration,
    bookmark_interval: Duration,
    history_limit: usize,
    restart_downtime: Duration,
    watch_epoch: u64,
    paused: bool,
    auth_required: bool,
    aggregated_discovery: bool,
    counts: HashMap<String, ResourceCounts>,
    discovery_requests: usize,
    log: Vec<String>,
}

impl State {
    fn def(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceDef> {
        self.resources
            .iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
    }

    fn group_served(&self, group: &str, version: &str) -> bool {
        self.resources
            .iter()
            .any(|d| d.group == group && d.version == version)
    }

    fn counts(&mut self, plural: &str) -> &mut ResourceCounts {
        self.counts.entry(plural.to_string()).or_default()
    }

    fn record(&mut self, key: &(String, String), typ: EvType, obj: Value, prev: Option<Value>) {
        let rv = self.rv;
        let limit = self.history_limit.max(1);
        let coll = self.collections.entry(key.clone()).or_default();
        coll.history.push_back(Ev { rv, typ, obj, prev });
        while coll.history.len() > limit {
            if let Some(e) = coll.history.pop_front() {
                coll.trimmed_upto = e.rv;
            }
        }
    }

    /// Forgets every collection's history; old resourceVersions become too old.
    fn compact_all(&mut self) {
        self.rv += 1;
        let rv = self.rv;
        for c in self.collections.values_mut() {
            if let Some(last) = c.history.back() {
                c.trimmed_upto = c.trimmed_upto.max(last.rv);
            }
            c.history.clear();
            c.compacted_at = rv;
        }
    }
}

struct Inner {
    state: Mutex<State>,
    /// Bumped on every object change and watch-epoch change: wakes watch streams.
    changed: watch::Sender<u64>,
    /// Bumped to close every open connection abruptly.
    conn_kill: watch::Sender<u64>,
    ctl: watch::Sender<Ctl>,
    closed_gen: AtomicU64,
    up: AtomicBool,
    addr: SocketAddr,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v += 1);
    }
}

/// A running fake API server. Stops (closing every connection) when dropped.
pub struct FakeApiServer {
    inner: Arc<Inner>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeApiServer {
    /// Starts a server serving no resources (add them with [`serve_resource`](Self::serve_resource),
    /// [`serve_defaults`](Self::serve_defaults) and the other helpers).
    pub fn start() -> FakeApiServer {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake apiserver");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                rv: 1,
                resources: Vec::new(),
                collections: HashMap::new(),
                forbidden: HashSet::new(),
                fail_any: (0, 500),
                fail_for: HashMap::new(),
                latency: Duration::ZERO,
                bookmark_interval: Duration::from_secs(1),
                history_limit: 1000,
                restart_downtime: Duration::from_millis(300),
                watch_epoch: 0,
                paused: false,
                auth_required: true,
                aggregated_discovery: true,
                counts: HashMap::new(),
                discovery_requests: 0,
                log: Vec::new(),
            }),
            changed: watch::channel(0).0,
            conn_kill: watch::channel(0).0,
            ctl: watch::channel(Ctl::default()).0,
            closed_gen: AtomicU64::new(0),
            up: AtomicBool::new(true),
            addr,
        });
        let inner2 = inner.clone();
        let thread = std::thread::Builder::new()
            .name("fake-apiserver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake apiserver runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("tokio listener");
                    accept_loop(inner2, listener).await;
                });
            })
            .expect("spawn fake apiserver thread");
        FakeApiServer {
            inner,
            thread: Some(thread),
        }
    }

    /// [`start`](Self::start) + [`serve_defaults`](Self::serve_defaults).
    pub fn start_with_defaults() -> FakeApiServer {
        FakeApiServer::start().with_defaults()
    }

    /// Serves the built-in kinds exdns watches (see [`serve_defaults`](Self::serve_defaults)).
    pub fn with_defaults(self) -> Self {
        self.serve_defaults();
        self
    }

    pub fn port(&self) -> u16 {
        self.inner.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// A kubeconfig (cluster at [`url`](Self::url), a user with the bearer token [`TOKEN`],
    /// current-context `fake`, namespace `default`).
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: default
current-context: fake
users:
- name: fake
  user:
    token: {TOKEN}
",
            self.url()
        )
    }

    /// Writes [`kubeconfig_yaml`](Self::kubeconfig_yaml) to `path`.
    pub fn write_kubeconfig(&self, path: &Path) {
        std::fs::write(path, self.kubeconfig_yaml()).expect("write kubeconfig");
    }

    /// A kube client configured from this server's kubeconfig (the way exdns loads one).
    pub async fn kube_client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml()).expect("kubeconfig");
        let cfg =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .expect("kube config from kubeconfig");
        kube::Client::try_from(cfg).expect("kube client")
    }

    // ---------------------------------------------------------------------------------------
    // Resources

    /// Serves `plural` of `group`/`version` (group "" = core) as a custom resource: discovery lists
    /// it (with a status subresource), list items carry kind/apiVersion. Serving another version of
    /// the same group and plural shares the objects. Idempotent.
    pub fn serve_resource(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
    ) {
        self.add_def(ResourceDef {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            builtin: false,
            short_names: vec![],
            categories: vec![],
        });
    }

    fn serve_builtin(
        &self,
        group: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        short: &[&str],
    ) {
        self.add_def(ResourceDef {
            group: group.into(),
            version: "v1".into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            builtin: true,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: if plural == "services" {
                vec!["all".into()]
            } else {
                vec![]
            },
        });
    }

    fn add_def(&self, def: ResourceDef) {
        let mut st = self.inner.lock();
        if st.def(&def.group, &def.version, &def.plural).is_none() {
            st.collections.entry(def.coll_key()).or_default();
            st.resources.push(def);
        }
    }

    /// Core v1 services, nodes, namespaces; networking.k8s.io/v1 ingresses;
    /// discovery.k8s.io/v1 endpointslices (all as built-in kinds).
    pub fn serve_defaults(&self) {
        self.serve_builtin("", "services", "Service", true, &["svc"]);
        self.serve_builtin("", "nodes", "Node", false, &["no"]);
        self.serve_builtin("", "namespaces", "Namespace", false, &["ns"]);
        self.serve_builtin("networking.k8s.io", "ingresses", "Ingress", true, &["ing"]);
        self.serve_builtin(
            "discovery.k8s.io",
            "endpointslices",
            "EndpointSlice",
            true,
            &[],
        );
    }

    /// gateway.networking.k8s.io/v1 gatewayclasses (cluster), gateways, httproutes, grpcroutes,
    /// tlsroutes.
    pub fn serve_gateway_api(&self) {
        let g = "gateway.networking.k8s.io";
        self.serve_resource(g, "v1", "gatewayclasses", "GatewayClass", false);
        self.serve_resource(g, "v1", "gateways", "Gateway", true);
        self.serve_resource(g, "v1", "httproutes", "HTTPRoute", true);
        self.serve_resource(g, "v1", "grpcroutes", "GRPCRoute", true);
        self.serve_resource(g, "v1", "tlsroutes", "TLSRoute", true);
    }

    /// gateway.networking.k8s.io/v1alpha2 tlsroutes (objects shared with v1 when both are served).
    pub fn serve_tlsroutes_v1alpha2(&self) {
        self.serve_resource(
            "gateway.networking.k8s.io",
            "v1alpha2",
            "tlsroutes",
            "TLSRoute",
            true,
        );
    }

    /// externaldns.k8s.io/v1alpha1 dnsendpoints.
    pub fn serve_dnsendpoints(&self) {
        self.serve_resource(
            "externaldns.k8s.io",
            "v1alpha1",
            "dnsendpoints",
            "DNSEndpoint",
            true,
        );
    }

    /// k8s.nginx.org/v1 virtualservers.
    pub fn serve_virtualservers(&self) {
        self.serve_resource(
            "k8s.nginx.org",
            "v1",
            "virtualservers",
            "VirtualServer",
            true,
        );
    }

    /// networking.istio.io gateways and virtualservices at `version` (Istio serves v1, v1beta1
    /// and v1alpha3; releases before 1.22 not v1).
    pub fn serve_istio(&self, version: &str) {
        let g = "networking.istio.io";
        self.serve_resource(g, version, "gateways", "Gateway", true);
        self.serve_resource(g, version, "virtualservices", "VirtualService", true);
    }

    /// Stops serving `group`/`version`/`plural` (a CRD version uninstalled): absent from discovery,
    /// 404 for requests. When no other version of the kind remains served, its objects are deleted
    /// first (open watches see DELETED events, as when a CRD's instances are cleaned up), then open
    /// watches on it end.
    pub fn remove_resource(&self, group: &str, version: &str, plural: &str) {
        let mut st = self.inner.lock();
        let Some(pos) = st
            .resources
            .iter()
            .position(|d| d.group == group && d.version == version && d.plural == plural)
        else {
            return;
        };
        let def = st.resources.remove(pos);
        let others = st
            .resources
            .iter()
            .any(|d| d.group == group && d.plural == plural);
        if !others {
            let key = def.coll_key();
            let objs: Vec<Value> = st
                .collections
                .get(&key)
                .map(|c| c.objects.values().cloned().collect())
                .unwrap_or_default();
            for prev in objs {
                st.rv += 1;
                let mut last = prev.clone();
                set_meta(&mut last, "resourceVersion", json!(st.rv.to_string()));
                if let Some(c) = st.collections.get_mut(&key) {
                    c.objects.remove(&obj_key(&prev));
                }
                st.record(&key, EvType::Deleted, last, Some(prev));
            }
        }
        drop(st);
        self.inner.notify();
    }

    /// List/watch/get of `plural` (any group) answer 403 Forbidden.
    pub fn forbid(&self, plural: &str) {
        self.inner.lock().forbidden.insert(plural.to_string());
    }

    /// Undoes [`forbid`](Self::forbid).
    pub fn allow(&self, plural: &str) {
        self.inner.lock().forbidden.remove(plural);
    }

    // ---------------------------------------------------------------------------------------
    // Objects

    /// Creates an object (`metadata.name` required; `metadata.namespace` defaults to `default` for
    /// namespaced kinds). Sets apiVersion, kind, resourceVersion, uid, creationTimestamp,
    /// generation. Returns the stored object. Panics if the kind is not served or the object exists.
    pub fn create(&self, group: &str, version: &str, plural: &str, obj: Value) -> Value {
        let mut st = self.inner.lock();
        let def = st
            .def(group, version, plural)
            .unwrap_or_else(|| panic!("fake apiserver: {plural} {group}/{version} is not served"))
            .clone();
        let mut obj = normalize(obj, &def);
        let key = obj_key(&obj);
        let ck = def.coll_key();
        if st
            .collections
            .get(&ck)
            .is_some_and(|c| c.objects.contains_key(&key))
        {
            panic!(
                "fake apiserver: {plural} {}/{} already exists",
                key.0, key.1
            );
        }
        st.rv += 1;
        set_meta(&mut obj, "resourceVersion", json!(st.rv.to_string()));
        set_meta(&mut obj, "uid", json!(new_uid()));
        if obj["metadata"]
            .get("creationTimestamp")
            .is_none_or(Value::is_null)
        {
            set_meta(
                &mut obj,
                "creationTimestamp",
                json!(rfc3339(SystemTime::now())),
            );
        }
        set_meta(&mut obj, "generation", json!(1));
        st.collections
            .entry(ck.clone())
            .or_default()
            .objects
            .insert(key, obj.clone());
        st.record(&ck, EvType::Added, obj.clone(), None);
        drop(st);
        self.inner.notify();
        obj
    }

    /// Replaces an existing object (uid and creationTimestamp kept, generation bumped when `spec`
    /// changed, a new resourceVersion). Returns the stored object. Panics if it does not exist.
    pub fn update(&self, group: &str, version: &str, plural: &str, obj: Value) -> Value {
        let mut st = self.inner.lock();
        let def = st
            .def(group, version, plural)
            .unwrap_or_else(|| panic!("fake apiserver: {plural} {group}/{version} is not served"))
            .clone();
        let mut obj = normalize(obj, &def);
        let key = obj_key(&obj);
        let ck = def.coll_key();
        let prev = st
            .collections
            .get(&ck)
            .and_then(|c| c.objects.get(&key))
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "fake apiserver: {plural} {}/{} does not exist",
                    key.0, key.1
                )
            });
        st.rv += 1;
        set_meta(&mut obj, "resourceVersion", json!(st.rv.to_string()));
        set_meta(&mut obj, "uid", prev["metadata"]["uid"].clone());
        set_meta(
            &mut obj,
            "creationTimestamp",
            prev["metadata"]["creationTimestamp"].clone(),
        );
        let generation = prev["metadata"]["generation"].as_i64().unwrap_or(1);
        let generation = if obj.get("spec") != prev.get("spec") {
            generation + 1
        } else {
            generation
        };
        set_meta(&mut obj, "generation", json!(generation));
        if let Some(c) = st.collections.get_mut(&ck) {
            c.objects.insert(key, obj.clone());
        }
        st.record(&ck, EvType::Modified, obj.clone(), Some(prev));
        drop(st);
        self.inner.notify();
        obj
    }

    /// Creates the object, or updates it if it exists.
    pub fn apply(&self, group: &str, version: &str, plural: &str, obj: Value) -> Value {
        let exists = {
            let st = self.inner.lock();
            let def = st
                .def(group, version, plural)
                .unwrap_or_else(|| {
                    panic!("fake apiserver: {plural} {group}/{version} is not served")
                })
                .clone();
            let o = normalize(obj.clone(), &def);
            st.collections
                .get(&def.coll_key())
                .is_some_and(|c| c.objects.contains_key(&obj_key(&o)))
        };
        if exists {
            self.update(group, version, plural, obj)
        } else {
            self.create(group, version, plural, obj)
        }
    }

    /// Deletes an object (`namespace` "" for cluster-scoped kinds). Returns its last state (with
    /// the deletion's resourceVersion), None if it did not exist.
    pub fn delete(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let mut st = self.inner.lock();
        let def = st
            .def(group, version, plural)
            .unwrap_or_else(|| panic!("fake apiserver: {plural} {group}/{version} is not served"))
            .clone();
        let ns = if def.namespaced { namespace } else { "" };
        let ck = def.coll_key();
        let key = (ns.to_string(), name.to_string());
        let prev = st.collections.get_mut(&ck)?.objects.remove(&key)?;
        st.rv += 1;
        let mut last = prev.clone();
        set_meta(&mut last, "resourceVersion", json!(st.rv.to_string()));
        st.record(&ck, EvType::Deleted, last.clone(), Some(prev));
        drop(st);
        self.inner.notify();
        Some(last)
    }

    /// The stored object (as last created/updated).
    pub fn get(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let st = self.inner.lock();
        let c = st
            .collections
            .get(&(group.to_string(), plural.to_string()))?;
        c.objects
            .get(&(namespace.to_string(), name.to_string()))
            .or_else(|| c.objects.get(&(String::new(), name.to_string())))
            .cloned()
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.lock().rv
    }

    // ---------------------------------------------------------------------------------------
    // Faults

    /// Forgets the event history of every kind (like an etcd compaction): the resourceVersion moves
    /// on by one, every older resourceVersion is too old (a watch from it gets a 410 ERROR event, a
    /// continue token from before gets 410). Open watches are not disturbed, and their next
    /// BOOKMARK carries the new resourceVersion (so a client that got one resumes without 410; use a
    /// long [`set_bookmark_interval`](Self::set_bookmark_interval) to force the 410 path with
    /// `compact()` + [`drop_watches`](Self::drop_watches)).
    pub fn compact(&self) {
        self.inner.lock().compact_all();
        self.inner.notify();
    }

    /// Simulates an API server restart: the listener closes (connections refused) and every open
    /// connection (watches included) is cut, for [`set_restart_downtime`](Self::set_restart_downtime)
    /// (default 300 ms); then it listens again on the same port. Objects and history are kept, so
    /// clients resume their watches. Returns once the server is down.
    pub fn restart(&self) {
        let downtime = self.inner.lock().restart_downtime;
        let mut gen_ = 0;
        self.inner.ctl.send_modify(|c| {
            c.down_gen += 1;
            c.downtime = downtime;
            gen_ = c.down_gen;
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.inner.closed_gen.load(Ordering::Acquire) < gen_ && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// [`restart`](Self::restart) where the new server has no history: resourceVersions continue
    /// (one higher than before) but every older one is too old, so resuming watches get 410 and
    /// clients must re-list.
    pub fn restart_with_new_history(&self) {
        // Compact once every connection is doomed, so that no bookmark carries the new
        // resourceVersion to a client before the cut.
        self.restart();
        self.inner.lock().compact_all();
        self.inner.notify();
    }

    /// Whether the listener is up (false during a restart's downtime).
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    /// Waits until the listener is up again; false on timeout.
    pub fn wait_up(&self, timeout: Duration) -> bool {
        wait_for(timeout, || self.is_up())
    }

    pub fn set_restart_downtime(&self, d: Duration) {
        self.inner.lock().restart_downtime = d;
    }

    /// Ends every open watch stream cleanly (as at the server-side timeout); clients re-watch.
    pub fn drop_watches(&self) {
        self.inner.lock().watch_epoch += 1;
        self.inner.notify();
    }

    /// Paused: connections are accepted then closed at once; open connections are cut.
    pub fn pause(&self) {
        self.inner.lock().paused = true;
        self.inner.conn_kill.send_modify(|v| *v += 1);
    }

    pub fn resume(&self) {
        self.inner.lock().paused = false;
    }

    /// Delay before every request is answered (watch streams: before the first byte).
    pub fn set_latency(&self, d: Duration) {
        self.inner.lock().latency = d;
    }

    /// The next `n` requests (any path except health checks) fail with a Status of `code`
    /// (500 InternalError, 503 ServiceUnavailable, 429 TooManyRequests (Retry-After: 1),
    /// 504 Timeout, ...). Note: kube 4.2's default client retries 429/503/504 by itself (up to 15
    /// times), so those are only seen by the caller when they outlast the retries; use 500 for an
    /// error the caller sees at once.
    pub fn fail_next(&self, n: usize, code: u16) {
        self.inner.lock().fail_any = (n, code);
    }

    /// The next `n` list/watch/get requests of `plural` fail with a Status of `code`.
    pub fn fail_next_for(&self, plural: &str, n: usize, code: u16) {
        self.inner
            .lock()
            .fail_for
            .insert(plural.to_string(), (n, code));
    }

    /// Interval of BOOKMARK events on watches that allow them (default 1 s). Applies to watches
    /// started afterwards.
    pub fn set_bookmark_interval(&self, d: Duration) {
        self.inner.lock().bookmark_interval = d;
    }

    /// How many events each kind's history keeps (default 1000).
    pub fn set_history_limit(&self, n: usize) {
        self.inner.lock().history_limit = n;
    }

    /// Whether requests need the bearer token (default true).
    pub fn set_auth_required(&self, on: bool) {
        self.inner.lock().auth_required = on;
    }

    /// Whether `/api` and `/apis` answer the aggregated discovery format when asked (default true,
    /// like Kubernetes ≥ 1.30). Off: always the legacy format, like an old server.
    pub fn set_aggregated_discovery(&self, on: bool) {
        self.inner.lock().aggregated_discovery = on;
    }

    // ---------------------------------------------------------------------------------------
    // Counters

    /// Request counters of `plural` (all groups and versions).
    pub fn counts(&self, plural: &str) -> ResourceCounts {
        self.inner
            .lock()
            .counts
            .get(plural)
            .copied()
            .unwrap_or_default()
    }

    pub fn list_requests(&self, plural: &str) -> usize {
        self.counts(plural).lists
    }

    pub fn watch_requests(&self, plural: &str) -> usize {
        self.counts(plural).watches
    }

    pub fn open_watches(&self, plural: &str) -> usize {
        self.counts(plural).open_watches
    }

    pub fn open_watches_total(&self) -> usize {
        self.inner
            .lock()
            .counts
            .values()
            .map(|c| c.open_watches)
            .sum()
    }

    /// Requests to discovery paths (`/api`, `/apis`, `/api/v1`, `/apis/G[/V]`).
    pub fn discovery_requests(&self) -> usize {
        self.inner.lock().discovery_requests
    }

    /// Every request received, as `METHOD PATH?QUERY`.
    pub fn request_log(&self) -> Vec<String> {
        self.inner.lock().log.clone()
    }

    /// Stops the server (also done on drop).
    pub fn shutdown(&mut self) {
        self.inner.ctl.send_modify(|c| c.shutdown = true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Polls `f` every 10 ms until it is true; false on timeout.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// -------------------------------------------------------------------------------------------
// Objects helpers

fn normalize(obj: Value, def: &ResourceDef) -> Value {
    let mut obj = match obj {
        Value::Object(m) => Value::Object(m),
        other => panic!("fake apiserver: object must be a JSON object, got {other}"),
    };
    obj["apiVersion"] = json!(def.api_version());
    obj["kind"] = json!(def.kind);
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    if obj["metadata"]
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        panic!("fake apiserver: object without metadata.name: {obj}");
    }
    let meta = obj["metadata"].as_object_mut().expect("metadata object");
    if def.namespaced {
        if meta
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            meta.insert("namespace".into(), json!("default"));
        }
    } else {
        meta.remove("namespace");
    }
    obj
}

fn obj_key(obj: &Value) -> (String, String) {
    let m = &obj["metadata"];
    (
        m["namespace"].as_str().unwrap_or("").to_string(),
        m["name"].as_str().unwrap_or("").to_string(),
    )
}

fn set_meta(obj: &mut Value, field: &str, v: Value) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert(field.to_string(), v);
    }
}

fn new_uid() -> String {
    let r: u128 = rand::random();
    let h = format!("{r:032x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (y, m, d) = civil_from_days((secs / 86400) as i64);
    let rem = secs % 86400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

// -------------------------------------------------------------------------------------------
// Selectors

#[derive(Debug, Clone)]
enum LabelReq {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_label_selector(s: &str) -> Result<Vec<LabelReq>, String> {
    let mut out = Vec::new();
    for term in split_top(s) {
        let t = term.trim();
        if t.is_empty() {
            continue;
        }
        let bad = || format!("unable to parse requirement: invalid label selector term {t:?}");
        let kv = |k: &str, v: &str| -> Result<(String, String), String> {
            let (k, v) = (k.trim(), v.trim());
            if valid_key(k) && valid_value(v) {
                Ok((k.to_string(), v.to_string()))
            } else {
                Err(bad())
            }
        };
        let req = if let Some(rest) = t.strip_prefix('!') {
            let k = rest.trim();
            if !valid_key(k) {
                return Err(bad());
            }
            LabelReq::NotExists(k.to_string())
        } else if let Some(open) = t.find('(') {
            if !t.ends_with(')') {
                return Err(bad());
            }
            let head: Vec<&str> = t[..open].split_whitespace().collect();
            let [key, op] = head[..] else {
                return Err(bad());
            };
            if !valid_key(key) {
                return Err(bad());
            }
            let mut vals = Vec::new();
            for v in t[open + 1..t.len() - 1].split(',') {
                let v = v.trim();
                if !valid_value(v) {
                    return Err(bad());
                }
                vals.push(v.to_string());
            }
            match op {
                "in" => LabelReq::In(key.to_string(), vals),
                "notin" => LabelReq::NotIn(key.to_string(), vals),
                _ => return Err(bad()),
            }
        } else if let Some((k, v)) = t.split_once("!=") {
            let (k, v) = kv(k, v)?;
            LabelReq::Ne(k, v)
        } else if let Some((k, v)) = t.split_once("==") {
            let (k, v) = kv(k, v)?;
            LabelReq::Eq(k, v)
        } else if let Some((k, v)) = t.split_once('=') {
            let (k, v) = kv(k, v)?;
            LabelReq::Eq(k, v)
        } else if let Some((k, v)) = t.split_once('>') {
            let n = v.trim().parse().map_err(|_| bad())?;
            LabelReq::Gt(kv(k, "")?.0, n)
        } else if let Some((k, v)) = t.split_once('<') {
            let n = v.trim().parse().map_err(|_| bad())?;
            LabelReq::Lt(kv(k, "")?.0, n)
        } else {
            if !valid_key(t) {
                return Err(bad());
            }
            LabelReq::Exists(t.to_string())
        };
        out.push(req);
    }
    Ok(out)
}

fn labels_match(reqs: &[LabelReq], obj: &Value) -> bool {
    let labels = obj["metadata"]["labels"].as_object();
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    reqs.iter().all(|r| match r {
        LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
        LabelReq::Ne(k, v) => get(k) != Some(v.as_str()),
        LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        LabelReq::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        LabelReq::Exists(k) => get(k).is_some(),
        LabelReq::NotExists(k) => get(k).is_none(),
        LabelReq::Gt(k, n) => get(k)
            .and_then(|x| x.parse::<i64>().ok())
            .is_some_and(|x| x > *n),
        LabelReq::Lt(k, n) => get(k)
            .and_then(|x| x.parse::<i64>().ok())
            .is_some_and(|x| x < *n),
    })
}

#[derive(Debug, Clone)]
struct FieldReq {
    path: String,
    value: String,
    negate: bool,
}

fn parse_field_selector(s: &str, def: &ResourceDef) -> Result<Vec<FieldReq>, String> {
    let mut out = Vec::new();
    for term in s.split(',') {
        let t = term.trim();
        if t.is_empty() {
            continue;
        }
        let (path, value, negate) = if let Some((k, v)) = t.split_once("!=") {
            (k, v, true)
        } else if let Some((k, v)) = t.split_once("==") {
            (k, v, false)
        } else if let Some((k, v)) = t.split_once('=') {
            (k, v, false)
        } else {
            return Err(format!("invalid selector: '{s}'; can't understand '{t}'"));
        };
        let path = path.trim();
        if !def.builtin && path != "metadata.name" && path != "metadata.namespace" {
            return Err(format!("field label not supported: {path}"));
        }
        out.push(FieldReq {
            path: path.to_string(),
            value: value.trim().to_string(),
            negate,
        });
    }
    Ok(out)
}

fn fields_match(reqs: &[FieldReq], obj: &Value) -> bool {
    reqs.iter().all(|r| {
        let mut v = obj;
        for part in r.path.split('.') {
            v = &v[part];
        }
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        (s == r.value) != r.negate
    })
}

#[derive(Debug, Clone, Default)]
struct Filter {
    namespace: Option<String>,
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && obj["metadata"]["namespace"].as_str() != Some(ns.as_str())
        {
            return false;
        }
        labels_match(&self.labels, obj) && fields_match(&self.fields, obj)
    }

    fn has_selectors(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }
}

// -------------------------------------------------------------------------------------------
// HTTP plumbing

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(x) => {
                        out.push(x);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (pct_decode(k), pct_decode(v)),
            None => (pct_decode(p), String::new()),
        })
        .collect()
}

fn full(code: u16, ctype: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, ctype)
        .body(
            Full::new(body.into())
                .map_err(|e: Infallible| match e {})
                .boxed_unsync(),
        )
        .expect("response")
}

fn json_resp(code: u16, v: &Value) -> Response<Body> {
    full(code, "application/json", v.to_string())
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

fn status_value(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut v = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        v["details"] = d;
    }
    v
}

fn status_resp(code: u16, reason: &str, message: &str, details: Option<Value>) -> Response<Body> {
    json_resp(code, &status_value(code, reason, message, details))
}

fn not_found_path() -> Response<Body> {
    status_resp(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

fn injected(code: u16) -> Response<Body> {
    let msg = match code {
        500 => "Internal error occurred: injected fault".to_string(),
        503 => "the server is currently unable to handle the request".to_string(),
        429 => "Too many requests, please try again later.".to_string(),
        504 => "Timeout: request did not complete within requested timeout".to_string(),
        c => format!("injected fault {c}"),
    };
    let mut r = status_resp(code, reason_for(code), &msg, None);
    if code == 429 {
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    r
}

async fn accept_loop(inner: Arc<Inner>, first: TcpListener) {
    let mut ctl_rx = inner.ctl.subscribe();
    let mut seen = ctl_rx.borrow_and_update().down_gen;
    let mut listener = Some(first);
    loop {
        let l = match listener.take() {
            Some(l) => l,
            None => match rebind(&inner, &mut ctl_rx).await {
                Some(l) => l,
                None => return,
            },
        };
        inner.up.store(true, Ordering::Release);
        loop {
            tokio::select! {
                r = l.accept() => match r {
                    Ok((sock, _)) => {
                        if inner.lock().paused {
                            drop(sock);
                        } else {
                            spawn_conn(&inner, sock);
                        }
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                },
                r = ctl_rx.changed() => {
                    let c = *ctl_rx.borrow_and_update();
                    if r.is_err() || c.shutdown {
                        inner.conn_kill.send_modify(|v| *v += 1);
                        return;
                    }
                    if c.down_gen != seen {
                        seen = c.down_gen;
                        drop(l);
                        inner.up.store(false, Ordering::Release);
                        inner.conn_kill.send_modify(|v| *v += 1);
                        inner.closed_gen.store(seen, Ordering::Release);
                        tokio::select! {
                            _ = tokio::time::sleep(c.downtime) => {}
                            _ = ctl_rx.changed() => {
                                if ctl_rx.borrow_and_update().shutdown {
                                    return;
                                }
                            }
                        }
                        break;
                    }
                }
            }
        }
    }
}

/// Listens again on the same address after a restart (retrying while the port is busy).
async fn rebind(inner: &Inner, ctl_rx: &mut watch::Receiver<Ctl>) -> Option<TcpListener> {
    loop {
        if ctl_rx.borrow().shutdown {
            return None;
        }
        let attempt = TcpSocket::new_v4().and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(inner.addr)?;
            s.listen(1024)
        });
        match attempt {
            Ok(l) => return Some(l),
            Err(e) => {
                tracing::warn!(
                    "fake apiserver: rebinding {} failed: {e}; retrying",
                    inner.addr
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

fn spawn_conn(inner: &Arc<Inner>, sock: TcpStream) {
    let mut kill = inner.conn_kill.subscribe();
    let epoch = *kill.borrow_and_update();
    let inner = inner.clone();
    tokio::spawn(async move {
        let svc = hyper::service::service_fn(move |req| {
            let inner = inner.clone();
            async move {
                // A connection from before a restart/pause that the kill has not reached yet:
                // fail the service, which makes hyper drop the connection without an answer.
                if *inner.conn_kill.borrow() != epoch {
                    return Err(std::io::Error::other(
                        "connection closed by the fake apiserver",
                    ));
                }
                Ok(handle(inner, req).await)
            }
        });
        let conn =
            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(sock), svc);
        tokio::select! {
            _ = conn => {}
            _ = kill.changed() => {}
        }
    });
}

enum Route<'a> {
    Health,
    Version,
    ApiVersions,
    CoreResources(&'a str),
    Groups,
    Group(&'a str),
    GroupResources(&'a str, &'a str),
    /// group, version, rest segments
    Resource(&'a str, &'a str, Vec<&'a str>),
    NotFound,
}

fn route(path: &str) -> Route<'_> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["healthz" | "livez" | "readyz", ..] => Route::Health,
        ["version"] => Route::Version,
        ["api"] => Route::ApiVersions,
        ["api", v] => Route::CoreResources(v),
        ["api", v, rest @ ..] => Route::Resource("", v, rest.to_vec()),
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g),
        ["apis", g, v] => Route::GroupResources(g, v),
        ["apis", g, v, rest @ ..] => Route::Resource(g, v, rest.to_vec()),
        _ => Route::NotFound,
    }
}

/// What a request asked for, decided under the state lock.
enum Outcome {
    Done(Response<Body>),
    Watch(WatchReq, OpenWatchGuard),
}

struct WatchReq {
    def: ResourceDef,
    filter: Filter,
    /// None: start with ADDED events for the current objects.
    from_rv: Option<u64>,
    send_initial: bool,
    bookmarks: bool,
    timeout: Duration,
    meta: bool,
}

struct OpenWatchGuard {
    inner: Arc<Inner>,
    plural: String,
}

impl Drop for OpenWatchGuard {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        let c = st.counts(&self.plural);
        c.open_watches = c.open_watches.saturating_sub(1);
    }
}

async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query_s = req.uri().query().unwrap_or("").to_string();
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let authz = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let latency = {
        let mut st = inner.lock();
        st.log.push(if query_s.is_empty() {
            format!("{method} {path}")
        } else {
            format!("{method} {path}?{query_s}")
        });
        st.latency
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let r = route(&path);
    if matches!(r, Route::Health) {
        return full(200, "text/plain; charset=utf-8", "ok");
    }
    let query = parse_query(&query_s);
    let outcome = {
        let mut st = inner.lock();
        if st.auth_required && authz != format!("Bearer {TOKEN}") {
            Outcome::Done(status_resp(401, "Unauthorized", "Unauthorized", None))
        } else if st.fail_any.0 > 0 {
            st.fail_any.0 -= 1;
            Outcome::Done(injected(st.fail_any.1))
        } else if method != Method::GET {
            Outcome::Done(status_resp(
                405,
                "MethodNotAllowed",
                &format!("the fake apiserver does not implement {method}"),
                None,
            ))
        } else {
            dispatch(&inner, &mut st, r, &query, &accept)
        }
    };
    match outcome {
        Outcome::Done(resp) => resp,
        Outcome::Watch(w, guard) => {
            let (tx, mut rx) = mpsc::channel::<Bytes>(256);
            tokio::spawn(run_watch(inner.clone(), w, tx, guard));
            let stream = futures::stream::poll_fn(move |cx| {
                rx.poll_recv(cx)
                    .map(|o| o.map(|b| Ok::<_, std::io::Error>(Frame::data(b))))
            });
            Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "application/json")
                .body(StreamBody::new(stream).boxed_unsync())
                .expect("watch response")
        }
    }
}

fn dispatch(
    inner: &Arc<Inner>,
    st: &mut State,
    r: Route<'_>,
    q: &HashMap<String, String>,
    accept: &str,
) -> Outcome {
    let aggregated = st.aggregated_discovery && wants_aggregated(accept);
    let resp = match r {
        Route::Health => full(200, "text/plain", "ok"),
        Route::Version => json_resp(
            200,
            &json!({
                "major": "1", "minor": "33", "gitVersion": "v1.33.0",
                "gitCommit": "60a317eadfcb839692a68eab88b2096f4d708f4f", "gitTreeState": "clean",
                "buildDate": "2025-04-23T13:07:04Z", "goVersion": "go1.24.2", "compiler": "gc",
                "platform": "linux/amd64"
            }),
        ),
        Route::ApiVersions => {
            st.discovery_requests += 1;
            if aggregated {
                let resources: Vec<Value> = st
                    .resources
                    .iter()
                    .filter(|d| d.group.is_empty())
                    .map(ResourceDef::aggregated_entry)
                    .collect();
                let body = json!({
                    "kind": "APIGroupDiscoveryList",
                    "apiVersion": "apidiscovery.k8s.io/v2",
                    "metadata": {},
                    "items": [{
                        "metadata": {"creationTimestamp": null},
                        "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}],
                    }],
                });
                full(200, AGGREGATED_CT, body.to_string())
            } else {
                json_resp(
                    200,
                    &json!({
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [
                            {"clientCIDR": "0.0.0.0/0", "serverAddress": inner.addr.to_string()}
                        ],
                    }),
                )
            }
        }
        Route::CoreResources(v) => {
            st.discovery_requests += 1;
            if v == "v1" {
                json_resp(200, &resource_list(st, "", "v1", false))
            } else {
                not_found_path()
            }
        }
        Route::Groups => {
            st.discovery_requests += 1;
            let groups = group_names(st);
            if aggregated {
                let items: Vec<Value> = groups
                    .iter()
                    .map(|g| {
                        let versions: Vec<Value> = sorted_versions(st, g)
                            .iter()
                            .map(|v| {
                                let res: Vec<Value> = st
                                    .resources
                                    .iter()
                                    .filter(|d| &d.group == g && &d.version == v)
                                    .map(ResourceDef::aggregated_entry)
                                    .collect();
                                json!({"version": v, "resources": res, "freshness": "Current"})
                            })
                            .collect();
                        json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
                    })
                    .collect();
                let body = json!({
                    "kind": "APIGroupDiscoveryList",
                    "apiVersion": "apidiscovery.k8s.io/v2",
                    "metadata": {},
                    "items": items,
                });
                full(200, AGGREGATED_CT, body.to_string())
            } else {
                let list: Vec<Value> = groups.iter().map(|g| api_group(st, g)).collect();
                json_resp(
                    200,
                    &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": list}),
                )
            }
        }
        Route::Group(g) => {
            st.discovery_requests += 1;
            if group_names(st).iter().any(|x| x == g) {
                let mut v = api_group(st, g);
                v["kind"] = json!("APIGroup");
                v["apiVersion"] = json!("v1");
                json_resp(200, &v)
            } else {
                not_found_path()
            }
        }
        Route::GroupResources(g, v) => {
            st.discovery_requests += 1;
            if st.group_served(g, v) {
                json_resp(200, &resource_list(st, g, v, true))
            } else {
                not_found_path()
            }
        }
        Route::Resource(g, v, rest) => return resource_request(inner, st, g, v, &rest, q, accept),
        Route::NotFound => not_found_path(),
    };
    Outcome::Done(resp)
}

fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|mt| {
        let params: Vec<&str> = mt.split(';').map(str::trim).collect();
        params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"as=APIGroupDiscoveryList")
            && (params.contains(&"v=v2") || params.contains(&"v=v2beta1"))
    })
}

fn group_names(st: &State) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in &st.resources {
        if !d.group.is_empty() && !out.contains(&d.group) {
            out.push(d.group.clone());
        }
    }
    out
}

/// Kubernetes version priority: GA > beta > alpha (higher numbers first), then others by name.
fn version_priority(v: &str) -> (u8, u32, u32, std::cmp::Reverse<String>) {
    let other = (0, 0, 0, std::cmp::Reverse(v.to_string()));
    let Some(rest) = v.strip_prefix('v') else {
        return other;
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(major) = digits.parse::<u32>() else {
        return other;
    };
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0, std::cmp::Reverse(String::new()));
    }
    for (tier, pre) in [(2u8, "beta"), (1u8, "alpha")] {
        if let Some(n) = tail.strip_prefix(pre)
            && let Ok(minor) = n.parse::<u32>()
        {
            return (tier, major, minor, std::cmp::Reverse(String::new()));
        }
    }
    other
}

fn sorted_versions(st: &State, group: &str) -> Vec<String> {
    let mut vs: Vec<String> = Vec::new();
    for d in &st.resources {
        if d.group == group && !vs.contains(&d.version) {
            vs.push(d.version.clone());
        }
    }
    vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    vs
}

fn api_group(st: &State, g: &str) -> Value {
    let versions: Vec<Value> = sorted_versions(st, g)
        .iter()
        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"name": g, "versions": versions, "preferredVersion": preferred})
}

fn resource_list(st: &State, g: &str, v: &str, with_api_version: bool) -> Value {
    let resources: Vec<Value> = st
        .resources
        .iter()
        .filter(|d| d.group == g && d.version == v)
        .flat_map(ResourceDef::legacy_entries)
        .collect();
    let gv = if g.is_empty() {
        v.to_string()
    } else {
        format!("{g}/{v}")
    };
    let mut out = json!({"kind": "APIResourceList", "groupVersion": gv, "resources": resources});
    if with_api_version {
        out["apiVersion"] = json!("v1");
    }
    out
}

/// An object as served: TypeMeta of the requested version; in lists built-in kinds drop TypeMeta;
/// metadata-only requests get PartialObjectMetadata.
fn present(obj: &Value, def: &ResourceDef, meta: bool, in_list: bool) -> Value {
    if meta {
        return json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"].clone(),
        });
    }
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        if in_list && def.builtin {
            m.remove("kind");
            m.remove("apiVersion");
        } else {
            m.insert("kind".into(), json!(def.kind));
            m.insert("apiVersion".into(), json!(def.api_version()));
        }
    }
    o
}

#[allow(clippy::too_many_arguments)]
fn resource_request(
    inner: &Arc<Inner>,
    st: &mut State,
    g: &str,
    v: &str,
    rest: &[&str],
    q: &HashMap<String, String>,
    accept: &str,
) -> Outcome {
    let done = Outcome::Done;
    if !st.group_served(g, v) {
        return done(not_found_path());
    }
    // Work out (plural, namespace, name, subresource).
    let namespaced_path = rest.len() >= 3
        && rest[0] == "namespaces"
        && st.def(g, v, rest[2]).is_some_and(|d| d.namespaced);
    let (plural, ns, name, sub) = if namespaced_path {
        (
            rest[2],
            Some(rest[1]),
            rest.get(3).copied(),
            rest.get(4).copied(),
        )
    } else {
        (rest[0], None, rest.get(1).copied(), rest.get(2).copied())
    };
    let too_long = if namespaced_path {
        rest.len() > 5
    } else {
        rest.len() > 3
    };
    let Some(def) = st.def(g, v, plural).cloned() else {
        return done(not_found_path());
    };
    if too_long {
        return done(not_found_path());
    }
    let is_watch =
        name.is_none() && matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = if name.is_some() {
        st.counts(plural).gets += 1;
        "get"
    } else if is_watch {
        st.counts(plural).watches += 1;
        "watch"
    } else {
        st.counts(plural).lists += 1;
        "list"
    };
    if let Some((n, code)) = st.fail_for.get_mut(plural)
        && *n > 0
    {
        *n -= 1;
        return done(injected(*code));
    }
    if st.forbidden.contains(plural) {
        let scope = match ns {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_string(),
        };
        let msg = format!(
            "{} is forbidden: User \"system:serviceaccount:default:exdns\" cannot {verb} resource \"{plural}\" in API group \"{g}\" {scope}",
            def.group_resource()
        );
        return done(status_resp(
            403,
            "Forbidden",
            &msg,
            Some(json!({"group": g, "kind": plural})),
        ));
    }
    let meta = accept.contains(META_ACCEPT);
    let coll_key = def.coll_key();
    if let Some(name) = name {
        if sub.is_some_and(|s| s != "status") {
            return done(not_found_path());
        }
        let key = (ns.unwrap_or("").to_string(), name.to_string());
        let obj = st
            .collections
            .get(&coll_key)
            .and_then(|c| c.objects.get(&key));
        return done(match obj {
            Some(o) => {
                let mut r = json_resp(200, &present(o, &def, meta, false));
                if meta {
                    set_ct(
                        &mut r,
                        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
                    );
                }
                r
            }
            None => status_resp(
                404,
                "NotFound",
                &format!("{} \"{name}\" not found", def.group_resource()),
                Some(json!({"name": name, "group": g, "kind": plural})),
            ),
        });
    }
    if ns.is_some() && !def.namespaced {
        return done(not_found_path());
    }
    let mut filter = Filter {
        namespace: ns.map(str::to_string),
        ..Filter::default()
    };
    if let Some(s) = q.get("labelSelector") {
        match parse_label_selector(s) {
            Ok(l) => filter.labels = l,
            Err(e) => return done(status_resp(400, "BadRequest", &e, None)),
        }
    }
    if let Some(s) = q.get("fieldSelector") {
        match parse_field_selector(s, &def) {
            Ok(f) => filter.fields = f,
            Err(e) => return done(status_resp(400, "BadRequest", &e, None)),
        }
    }
    let rv_param = q.get("resourceVersion").map(String::as_str).unwrap_or("");
    let rv_match = q
        .get("resourceVersionMatch")
        .map(String::as_str)
        .unwrap_or("");
    let parsed_rv = if rv_param.is_empty() {
        None
    } else {
        match rv_param.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return done(status_resp(
                    400,
                    "BadRequest",
                    &format!("resourceVersion: Invalid value: \"{rv_param}\": must be a number"),
                    None,
                ));
            }
        }
    };
    if is_watch {
        let send_initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
        let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
        if send_initial && (rv_match != "NotOlderThan" || !bookmarks) {
            return done(status_resp(
                422,
                "Invalid",
                "sendInitialEvents requires resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true",
                None,
            ));
        }
        if !send_initial && !rv_match.is_empty() {
            return done(status_resp(
                422,
                "Invalid",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                None,
            ));
        }
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_WATCH_TIMEOUT);
        st.counts(plural).open_watches += 1;
        let guard = OpenWatchGuard {
            inner: inner.clone(),
            plural: plural.to_string(),
        };
        let from_rv = match parsed_rv {
            Some(0) | None => None,
            Some(n) => Some(n),
        };
        return Outcome::Watch(
            WatchReq {
                def,
                filter,
                from_rv,
                send_initial,
                bookmarks,
                timeout,
                meta,
            },
            guard,
        );
    }
    done(list(st, &def, &filter, q, parsed_rv, rv_match, meta))
}

fn set_ct(r: &mut Response<Body>, ct: &'static str) {
    r.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ct));
}

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

fn list(
    st: &State,
    def: &ResourceDef,
    filter: &Filter,
    q: &HashMap<String, String>,
    parsed_rv: Option<u64>,
    rv_match: &str,
    meta: bool,
) -> Response<Body> {
    let empty = Collection::default();
    let coll = st.collections.get(&def.coll_key()).unwrap_or(&empty);
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut start_after: Option<(String, String)> = None;
    let snapshot_rv;
    if let Some(tok) = q.get("continue").filter(|t| !t.is_empty()) {
        let decoded = unhex(tok)
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| {
                Some((
                    v["rv"].as_u64()?,
                    v["ns"].as_str()?.to_string(),
                    v["name"].as_str()?.to_string(),
                ))
            });
        let Some((rv, ns, name)) = decoded else {
            return status_resp(
                400,
                "BadRequest",
                "continue key is not valid: malformed token",
                None,
            );
        };
        if rv < coll.history_start() {
            return status_resp(410, "Expired", CONTINUE_EXPIRED, None);
        }
        snapshot_rv = rv;
        start_after = Some((ns, name));
    } else {
        match parsed_rv {
            None | Some(0) => snapshot_rv = st.rv,
            Some(n) if n > st.rv => {
                return status_resp(
                    504,
                    "Timeout",
                    &format!("Too large resource version: {n}, current: {}", st.rv),
                    Some(
                        json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
                    ),
                );
            }
            Some(n) if rv_match == "Exact" => {
                if n < coll.history_start() {
                    return status_resp(
                        410,
                        "Expired",
                        &format!("too old resource version: {n} ({})", coll.history_start()),
                        None,
                    );
                }
                snapshot_rv = n;
            }
            Some(_) => snapshot_rv = st.rv,
        }
    }
    let objects: Cow<'_, BTreeMap<(String, String), Value>> = if snapshot_rv >= st.rv {
        Cow::Borrowed(&coll.objects)
    } else {
        Cow::Owned(coll.snapshot_at(snapshot_rv))
    };
    let lower = match &start_after {
        Some(k) => Bound::Excluded(k.clone()),
        None => Bound::Unbounded,
    };
    let mut items = Vec::new();
    let mut last_key: Option<(String, String)> = None;
    let mut remaining = 0usize;
    for (k, obj) in objects.range((lower, Bound::Unbounded)) {
        if !filter.matches(obj) {
            continue;
        }
        if limit > 0 && items.len() >= limit {
            remaining += 1;
            continue;
        }
        items.push(present(obj, def, meta, true));
        last_key = Some(k.clone());
    }
    let mut md = Map::new();
    md.insert("resourceVersion".into(), json!(snapshot_rv.to_string()));
    if remaining > 0
        && let Some((ns, name)) = last_key
    {
        let tok = json!({"v": "meta.k8s.io/v1", "rv": snapshot_rv, "ns": ns, "name": name});
        md.insert("continue".into(), json!(hex(tok.to_string().as_bytes())));
        if !filter.has_selectors() {
            md.insert("remainingItemCount".into(), json!(remaining));
        }
    }
    let (kind, api_version) = if meta {
        (
            "PartialObjectMetadataList".to_string(),
            "meta.k8s.io/v1".to_string(),
        )
    } else {
        (format!("{}List", def.kind), def.api_version())
    };
    let body = json!({"kind": kind, "apiVersion": api_version, "metadata": md, "items": items});
    let mut r = json_resp(200, &body);
    if meta {
        set_ct(
            &mut r,
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        );
    }
    r
}

fn event_line(typ: &str, obj: Value) -> Bytes {
    let mut s = json!({"type": typ, "object": obj}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn bookmark(def: &ResourceDef, meta: bool, rv: u64, initial_end: bool) -> Bytes {
    let (kind, av) = if meta {
        (
            "PartialObjectMetadata".to_string(),
            "meta.k8s.io/v1".to_string(),
        )
    } else {
        (def.kind.clone(), def.api_version())
    };
    let mut md = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        json!({"kind": kind, "apiVersion": av, "metadata": md}),
    )
}

fn expired_event(rv: u64, start: u64) -> Bytes {
    event_line(
        "ERROR",
        status_value(
            410,
            "Expired",
            &format!("too old resource version: {rv} ({start})"),
            None,
        ),
    )
}

/// The watch event a history event becomes for a watcher with `f` (None: not visible).
fn filtered_event(ev: &Ev, f: &Filter) -> Option<(&'static str, Value)> {
    match ev.typ {
        EvType::Added => f.matches(&ev.obj).then(|| ("ADDED", ev.obj.clone())),
        EvType::Deleted => f.matches(&ev.obj).then(|| ("DELETED", ev.obj.clone())),
        EvType::Modified => {
            let now = f.matches(&ev.obj);
            let before = ev.prev.as_ref().is_some_and(|p| f.matches(p));
            match (before, now) {
                (true, true) => Some(("MODIFIED", ev.obj.clone())),
                (false, true) => Some(("ADDED", ev.obj.clone())),
                (true, false) => {
                    // Like the watch cache: the previous content with the event's resourceVersion.
                    let mut o = ev.prev.clone().unwrap_or(Value::Null);
                    set_meta(&mut o, "resourceVersion", json!(ev.rv.to_string()));
                    Some(("DELETED", o))
                }
                (false, false) => None,
            }
        }
    }
}

async fn run_watch(
    inner: Arc<Inner>,
    w: WatchReq,
    tx: mpsc::Sender<Bytes>,
    _guard: OpenWatchGuard,
) {
    let mut changed = inner.changed.subscribe();
    changed.borrow_and_update();
    let deadline = tokio::time::Instant::now() + w.timeout;
    let ck = w.def.coll_key();
    let start = {
        let st = inner.lock();
        let empty = Collection::default();
        let coll = st.collections.get(&ck).unwrap_or(&empty);
        match w.from_rv {
            Some(n) if !w.send_initial => {
                if n < coll.history_start() {
                    Err((n, coll.history_start()))
                } else {
                    Ok((n, st.watch_epoch, st.bookmark_interval, Vec::new()))
                }
            }
            _ => {
                let initial: Vec<Bytes> = coll
                    .objects
                    .values()
                    .filter(|o| w.filter.matches(o))
                    .map(|o| event_line("ADDED", present(o, &w.def, w.meta, false)))
                    .collect();
                Ok((st.rv, st.watch_epoch, st.bookmark_interval, initial))
            }
        }
    };
    let (mut cursor, epoch, interval, initial) = match start {
        Ok(s) => s,
        Err((n, start)) => {
            let _ = tx.send(expired_event(n, start)).await;
            return;
        }
    };
    for line in initial {
        if tx.send(line).await.is_err() {
            return;
        }
    }
    if w.send_initial
        && tx
            .send(bookmark(&w.def, w.meta, cursor, true))
            .await
            .is_err()
    {
        return;
    }
    let interval = interval.max(Duration::from_millis(10));
    let mut next_bookmark = tokio::time::Instant::now() + interval;
    loop {
        let (lines, end, expired) = {
            let st = inner.lock();
            let empty = Collection::default();
            let coll = st.collections.get(&ck).unwrap_or(&empty);
            let expired = (coll.trimmed_upto > cursor).then(|| coll.history_start());
            let mut lines = Vec::new();
            if expired.is_none() {
                for ev in coll.history.iter().filter(|e| e.rv > cursor) {
                    if let Some((typ, obj)) = filtered_event(ev, &w.filter) {
                        lines.push(event_line(typ, present(&obj, &w.def, w.meta, false)));
                    }
                }
                cursor = cursor.max(st.rv);
            }
            let served = st
                .def(&w.def.group, &w.def.version, &w.def.plural)
                .is_some();
            (lines, st.watch_epoch != epoch || !served, expired)
        };
        for line in lines {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        if let Some(start) = expired {
            let _ = tx.send(expired_event(cursor, start)).await;
            return;
        }
        if end {
            return;
        }
        tokio::select! {
            r = changed.changed() => {
                if r.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep_until(next_bookmark), if w.bookmarks => {
                if tx.send(bookmark(&w.def, w.meta, cursor, false)).await.is_err() {
                    return;
                }
                next_bookmark = tokio::time::Instant::now() + interval;
            }
            _ = tokio::time::sleep_until(deadline) => return,
            _ = tx.closed() => return,
        }
    }
}
