use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::mpsc;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use super::*;
use crate::kube::model::{Address, NameData};

// ---------------------------------------------------------------------------------------------
// A converter standing in for `kinds::contribute`.

/// `spec.host` + `spec.ip` → one name; label `k8s-gateway.dns/ignore: "true"` → nothing;
/// `spec.bad` → an error. Also insists on `kind`/`apiVersion` being present (list items come
/// without them; the watcher must fill them in).
fn fake_convert(
    kind: ObjKind,
    v: &Value,
    _filters: &Filters,
) -> Result<(ObjKey, Option<Contribution>), String> {
    if v["kind"] != kind.as_str() {
        return Err(format!("kind is {}, want {kind}", v["kind"]));
    }
    if v["apiVersion"].as_str().is_none_or(str::is_empty) {
        return Err("no apiVersion".into());
    }
    let key = ObjKey::new(
        v["metadata"]["namespace"].as_str().unwrap_or(""),
        v["metadata"]["name"].as_str().unwrap_or(""),
    );
    if v["spec"]["bad"] == true {
        return Err("spec.bad is set".into());
    }
    if v["metadata"]["labels"]["k8s-gateway.dns/ignore"] == "true" {
        return Ok((key, None));
    }
    let ip: IpAddr = v["spec"]["ip"]
        .as_str()
        .ok_or("no spec.ip")?
        .parse()
        .map_err(|e| format!("spec.ip: {e}"))?;
    Ok((
        key,
        Some(Contribution::Names(vec![NameData {
            name: v["spec"]["host"].as_str().unwrap_or("").to_string(),
            addrs: vec![Address::Ip(ip)],
            ..Default::default()
        }])),
    ))
}

fn contribution(host: &str, ip: &str) -> Contribution {
    Contribution::Names(vec![NameData {
        name: host.into(),
        addrs: vec![Address::Ip(ip.parse().unwrap())],
        ..Default::default()
    }])
}

fn obj(ns: &str, name: &str, host: &str, ip: &str) -> Value {
    json!({
        "metadata": {"namespace": ns, "name": name, "resourceVersion": "1"},
        "spec": {"host": host, "ip": ip},
    })
}

fn with_labels(mut v: Value, labels: &[(&str, &str)]) -> Value {
    let map: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    v["metadata"]["labels"] = Value::Object(map);
    v
}

fn dynamic(v: Value) -> DynamicObject {
    serde_json::from_value(v).unwrap()
}

fn objects(feed: &Feed, kind: ObjKind) -> HashMap<ObjKey, Contribution> {
    feed.with_store(|s| s.get(kind).cloned().unwrap_or_default())
}

fn synced(feed: &Feed, kind: ObjKind) -> bool {
    feed.with_store(|s| s.is_synced(kind))
}

fn state(kind: ObjKind, selectors: usize, feed: &Feed) -> KindState {
    let (group, versions, _) = kind.api();
    KindState::new(
        kind,
        api_version(group, versions[0]),
        selectors,
        Arc::new(Filters::default()),
        feed.clone(),
        fake_convert,
    )
}

/// A fresh feed and the state of `kind` with `selectors` watches feeding it.
fn fresh(kind: ObjKind, selectors: usize) -> (Feed, KindState) {
    let feed = Feed::new();
    let st = state(kind, selectors, &feed);
    (feed, st)
}

fn key(ns: &str, name: &str) -> ObjKey {
    ObjKey::new(ns, name)
}

/// What [`fake_convert`] makes of each `(ns, name, host, ip)` row's [`obj`].
fn contributions(rows: &[(&str, &str, &str, &str)]) -> HashMap<ObjKey, Contribution> {
    rows.iter()
        .map(|&(ns, name, host, ip)| (key(ns, name), contribution(host, ip)))
        .collect()
}

/// `v` labelled `k8s-gateway.dns/ignore: "true"`.
fn ignored(v: Value) -> Value {
    with_labels(v, &[("k8s-gateway.dns/ignore", "true")])
}

type Event = watcher::Event<DynamicObject>;

fn apply(v: Value) -> Event {
    watcher::Event::Apply(dynamic(v))
}

fn delete(v: Value) -> Event {
    watcher::Event::Delete(dynamic(v))
}

fn init_apply(v: Value) -> Event {
    watcher::Event::InitApply(dynamic(v))
}

/// Feeds selector `sel`'s events to `st`, in order.
fn feed_events(st: &mut KindState, sel: usize, events: impl IntoIterator<Item = Event>) {
    for ev in events {
        st.on_event(sel, ev);
    }
}

/// Feeds selector `sel` a whole (re-)list of `objs`: Init, an InitApply each, InitDone.
fn list(st: &mut KindState, sel: usize, objs: impl IntoIterator<Item = Value>) {
    st.on_event(sel, watcher::Event::Init);
    feed_events(st, sel, objs.into_iter().map(init_apply));
    st.on_event(sel, watcher::Event::InitDone);
}

// ---------------------------------------------------------------------------------------------
// Event mapping with synthetic watcher events.

#[test]
fn initial_list_is_buffered_until_init_done_then_replaces_and_syncs() {
    let (feed, mut st) = fresh(ObjKind::Ingress, 1);
    st.on_event(0, watcher::Event::Init);
    feed_events(
        &mut st,
        0,
        [
            init_apply(obj("ns", "a", "a.example.com", "192.0.2.1")),
            init_apply(obj("ns", "b", "b.example.com", "192.0.2.2")),
        ],
    );
    assert!(objects(&feed, ObjKind::Ingress).is_empty());
    assert!(!synced(&feed, ObjKind::Ingress));
    let v0 = feed.version();
    st.on_event(0, watcher::Event::InitDone);
    assert!(synced(&feed, ObjKind::Ingress));
    assert!(feed.version() > v0);
    assert_eq!(
        objects(&feed, ObjKind::Ingress),
        contributions(&[
            ("ns", "a", "a.example.com", "192.0.2.1"),
            ("ns", "b", "b.example.com", "192.0.2.2"),
        ])
    );
}

#[test]
fn empty_initial_list_syncs() {
    let (feed, mut st) = fresh(ObjKind::Node, 1);
    list(&mut st, 0, []);
    assert!(synced(&feed, ObjKind::Node));
    assert!(objects(&feed, ObjKind::Node).is_empty());
}

#[test]
fn apply_and_delete_follow_the_watch() {
    let (feed, mut st) = fresh(ObjKind::Ingress, 1);
    list(&mut st, 0, []);
    // Each event, then what the kind holds after it.
    let steps = [
        (
            apply(obj("ns", "a", "a.example.com", "192.0.2.1")),
            contributions(&[("ns", "a", "a.example.com", "192.0.2.1")]),
        ),
        // Modified: the new contribution replaces the old.
        (
            apply(obj("ns", "a", "a.example.com", "192.0.2.9")),
            contributions(&[("ns", "a", "a.example.com", "192.0.2.9")]),
        ),
        // Ignored by label: exists but contributes nothing.
        (
            apply(ignored(obj("ns", "a", "a.example.com", "192.0.2.9"))),
            HashMap::new(),
        ),
    ];
    for (i, (ev, want)) in steps.into_iter().enumerate() {
        st.on_event(0, ev);
        assert_eq!(objects(&feed, ObjKind::Ingress), want, "step {i}");
    }
    feed_events(
        &mut st,
        0,
        [
            apply(obj("ns", "b", "b.example.com", "192.0.2.2")),
            delete(obj("ns", "b", "b.example.com", "192.0.2.2")),
        ],
    );
    assert!(objects(&feed, ObjKind::Ingress).is_empty());
}

#[test]
fn conversion_errors_remove_the_object_and_skip_it_in_lists() {
    let (feed, mut st) = fresh(ObjKind::DNSEndpoint, 1);
    list(
        &mut st,
        0,
        [
            obj("ns", "a", "a.example.com", "192.0.2.1"),
            obj("ns", "bad", "b.example.com", "not-an-ip"),
        ],
    );
    assert_eq!(
        objects(&feed, ObjKind::DNSEndpoint),
        contributions(&[("ns", "a", "a.example.com", "192.0.2.1")])
    );
    let mut broken = obj("ns", "a", "a.example.com", "192.0.2.1");
    broken["spec"]["bad"] = json!(true);
    st.on_event(0, apply(broken));
    assert!(objects(&feed, ObjKind::DNSEndpoint).is_empty());
    assert!(synced(&feed, ObjKind::DNSEndpoint));
}

#[test]
fn relist_keeps_old_data_until_done_then_drops_stale_objects() {
    let (feed, mut st) = fresh(ObjKind::Ingress, 1);
    list(
        &mut st,
        0,
        [
            obj("ns", "a", "a.example.com", "192.0.2.1"),
            obj("ns", "b", "b.example.com", "192.0.2.2"),
        ],
    );
    // A 410 makes the watcher start over.
    feed_events(
        &mut st,
        0,
        [
            watcher::Event::Init,
            init_apply(obj("ns", "a", "a.example.com", "192.0.2.1")),
        ],
    );
    assert_eq!(objects(&feed, ObjKind::Ingress).len(), 2);
    assert!(synced(&feed, ObjKind::Ingress));
    // A failed list restarts with a fresh Init: the partial buffer is discarded.
    list(&mut st, 0, [obj("ns", "c", "c.example.com", "192.0.2.3")]);
    assert_eq!(
        objects(&feed, ObjKind::Ingress),
        contributions(&[("ns", "c", "c.example.com", "192.0.2.3")])
    );
}

#[test]
fn list_items_without_type_fields_get_them_before_conversion() {
    let (feed, mut st) = fresh(ObjKind::TLSRoute, 1);
    let o = dynamic(obj("ns", "a", "a.example.com", "192.0.2.1"));
    assert!(o.types.is_none());
    st.on_event(0, watcher::Event::Init);
    st.on_event(0, watcher::Event::InitApply(o));
    st.on_event(0, watcher::Event::InitDone);
    assert_eq!(objects(&feed, ObjKind::TLSRoute).len(), 1);
}

#[test]
fn several_selectors_sync_together_and_union_their_objects() {
    let (feed, mut st) = fresh(ObjKind::Service, 2);
    let a = || obj("ns", "a", "a.example.com", "192.0.2.1");
    let b = || obj("ns", "b", "b.example.com", "192.0.2.2");
    let has = |name: &str| objects(&feed, ObjKind::Service).contains_key(&key("ns", name));
    list(&mut st, 0, [a()]);
    // Only one of two selectors has listed: nothing published, not synced.
    assert!(!synced(&feed, ObjKind::Service));
    assert!(objects(&feed, ObjKind::Service).is_empty());
    // Changes before the kind syncs are kept for the union.
    st.on_event(0, apply(b()));
    list(&mut st, 1, [a()]);
    assert!(synced(&feed, ObjKind::Service));
    assert_eq!(
        objects(&feed, ObjKind::Service),
        contributions(&[
            ("ns", "a", "a.example.com", "192.0.2.1"),
            ("ns", "b", "b.example.com", "192.0.2.2"),
        ])
    );
    // `a` matches both selectors: it stays until neither matches.
    st.on_event(0, delete(a()));
    assert!(has("a"));
    st.on_event(1, delete(a()));
    assert!(!has("a"));
    // Ignored under one selector while the other still has the older version: the union keeps
    // the other's until that watch reports the change too.
    st.on_event(1, apply(b()));
    st.on_event(0, apply(ignored(b())));
    assert!(has("b"));
    st.on_event(1, apply(ignored(b())));
    assert!(objects(&feed, ObjKind::Service).is_empty());
    // A re-list of one selector republishes the union.
    list(&mut st, 0, [a()]);
    assert_eq!(
        objects(&feed, ObjKind::Service),
        contributions(&[("ns", "a", "a.example.com", "192.0.2.1")])
    );
}

#[test]
fn failures_are_classified_by_status_code() {
    let api = |code: u16, reason: &str| {
        kube::Error::Api(
            kube::core::Status::failure("nope", reason)
                .with_code(code)
                .boxed(),
        )
    };
    for (code, reason, want) in [
        (403, "Forbidden", Reason::Forbidden),
        (404, "NotFound", Reason::NotFound),
        (401, "Unauthorized", Reason::Unauthorized),
        (500, "InternalError", Reason::ApiError),
    ] {
        assert_eq!(
            Failure::from_client(&api(code, reason)).reason,
            want,
            "{code} {reason}"
        );
    }
    assert_eq!(Failure::from_client(&api(403, "Forbidden")).message, "nope");
    let gone = watcher::Error::WatchError(
        kube::core::Status::failure("too old resource version", "Expired")
            .with_code(410)
            .boxed(),
    );
    assert_eq!(Failure::from_watcher(&gone).reason, Reason::Expired);
    assert_eq!(
        Failure::from_watcher(&watcher::Error::InitialListFailed(api(403, "Forbidden"))).reason,
        Reason::Forbidden
    );
    assert_eq!(
        Failure::from_watcher(&watcher::Error::NoResourceVersion).reason,
        Reason::Decode
    );
}

#[test]
fn backoff_doubles_up_to_the_cap_and_resets() {
    let mut b = Backoff::new(Duration::from_millis(800), Duration::from_secs(30));
    let seq: Vec<u128> = (0..8).map(|_| b.next_base().as_millis()).collect();
    assert_eq!(seq, [800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
    b.reset();
    assert_eq!(b.next_base(), Duration::from_millis(800));
    for _ in 0..20 {
        let d = b.next_delay();
        assert!(d <= Duration::from_secs(36), "{d:?}");
    }
    let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(100));
    let d = b.next_delay();
    assert!(
        d >= Duration::from_millis(80) && d <= Duration::from_millis(120),
        "{d:?}"
    );
}

#[test]
fn intervals_are_formatted_for_the_warning() {
    assert_eq!(fmt_interval(Duration::from_secs(60)), "60s");
    assert_eq!(fmt_interval(Duration::from_millis(1500)), "1500ms");
    assert_eq!(fmt_interval(Duration::from_millis(50)), "50ms");
}

// ---------------------------------------------------------------------------------------------
// A minimal API server: discovery, list (with label selectors), watch streams; 403 and 404.

type Body = BoxBody<Bytes, Infallible>;

struct Watch {
    resource: String,
    selector: Vec<(String, String)>,
    tx: mpsc::UnboundedSender<Bytes>,
}

#[derive(Default)]
struct FakeState {
    /// group/version ("v1" for core) → served plurals.
    served: HashMap<String, Vec<String>>,
    forbidden: HashSet<String>,
    /// "group/version/plural" → objects.
    objects: HashMap<String, Vec<Value>>,
    rv: u64,
    watches: Vec<Watch>,
    /// Every reported change (resource, resourceVersion, old, new), replayed to watches that
    /// start from an older resourceVersion.
    history: Vec<(String, u64, Option<Value>, Option<Value>)>,
    requests: Vec<String>,
}

struct Fake {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_selector(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once("==").or_else(|| p.split_once('='))?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn matches(selector: &[(String, String)], obj: &Value) -> bool {
    selector
        .iter()
        .all(|(k, v)| obj["metadata"]["labels"][k].as_str() == Some(v.as_str()))
}

fn json_response(code: StatusCode, v: Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())).boxed())
        .unwrap()
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    json_response(
        StatusCode::from_u16(code).unwrap(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn event_line(ty: &str, obj: &Value) -> Bytes {
    let mut line = json!({"type": ty, "object": obj}).to_string();
    line.push('\n');
    Bytes::from(line)
}

impl FakeState {
    fn handle(&mut self, path: &str, query: &str) -> Response<Body> {
        self.requests.push(format!("{path}?{query}"));
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (gv, plural) = match segs.as_slice() {
            ["api", v] => (v.to_string(), None),
            ["api", v, p] => (v.to_string(), Some(*p)),
            ["apis", g, v] => (format!("{g}/{v}"), None),
            ["apis", g, v, p] => (format!("{g}/{v}"), Some(*p)),
            _ => {
                return status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                );
            }
        };
        let Some(plurals) = self.served.get(&gv) else {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        };
        let Some(plural) = plural else {
            let resources: Vec<Value> = plurals
                .iter()
                .map(|p| {
                    json!({"name": p, "singularName": "", "namespaced": p != "nodes",
                                "kind": "X", "verbs": ["get", "list", "watch"]})
                })
                .collect();
            return json_response(
                StatusCode::OK,
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                       "resources": resources}),
            );
        };
        if !plurals.iter().any(|p| p == plural) {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
        if self.forbidden.contains(plural) {
            let group = gv.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            return status(
                403,
                "Forbidden",
                &format!(
                    "{plural} is forbidden: User \"system:serviceaccount:dns:exdns\" cannot list resource \"{plural}\" in API group \"{group}\" at the cluster scope"
                ),
            );
        }
        let params: HashMap<String, String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), percent_decode(v)))
            .collect();
        let selector = parse_selector(params.get("labelSelector").map_or("", |s| s.as_str()));
        let resource = format!("{gv}/{plural}");
        if params.get("watch").is_some_and(|w| w == "true" || w == "1") {
            let (tx, rx) = mpsc::unbounded();
            let from: u64 = params
                .get("resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(self.rv);
            let watch = Watch {
                resource,
                selector,
                tx,
            };
            for (r, rv, old, new) in &self.history {
                if *r == watch.resource && *rv > from {
                    watch.notify(old.as_ref(), new.as_ref());
                }
            }
            self.watches.push(watch);
            let body = StreamBody::new(rx.map(|b| Ok::<_, Infallible>(Frame::data(b))));
            return Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(BodyExt::boxed(body))
                .unwrap();
        }
        let items: Vec<Value> = self
            .objects
            .get(&resource)
            .map(|objs| {
                objs.iter()
                    .filter(|o| matches(&selector, o))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        json_response(
            StatusCode::OK,
            json!({"apiVersion": gv, "kind": "List",
                   "metadata": {"resourceVersion": self.rv.to_string()}, "items": items}),
        )
    }

    fn send(&mut self, resource: &str, old: Option<&Value>, new: Option<&Value>) {
        self.history
            .push((resource.to_string(), self.rv, old.cloned(), new.cloned()));
        self.watches
            .retain(|w| w.resource != resource || w.notify(old, new));
    }
}

impl Watch {
    /// Sends the event this change means for this watch's selector; false once closed.
    fn notify(&self, old: Option<&Value>, new: Option<&Value>) -> bool {
        let was = old.is_some_and(|o| matches(&self.selector, o));
        let is = new.is_some_and(|o| matches(&self.selector, o));
        let line = match (new, was, is) {
            (Some(new), false, true) => event_line("ADDED", new),
            (Some(new), true, true) => event_line("MODIFIED", new),
            (_, true, false) => match (new, old) {
                (Some(o), _) | (None, Some(o)) => event_line("DELETED", o),
                (None, None) => return true,
            },
            _ => return true,
        };
        self.tx.unbounded_send(line).is_ok()
    }
}

fn same_object(a: &Value, b: &Value) -> bool {
    a["metadata"]["namespace"] == b["metadata"]["namespace"]
        && a["metadata"]["name"] == b["metadata"]["name"]
}

impl Fake {
    async fn start() -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(FakeState::default()));
        let tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (st, ts) = (state.clone(), tasks.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                let conn = tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let resp = st
                                .lock()
                                .unwrap()
                                .handle(req.uri().path(), req.uri().query().unwrap_or(""));
                            async move { Ok::<_, Infallible>(resp) }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
                ts.lock().unwrap().push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Fake { addr, state, tasks }
    }

    fn serve(&self, gv: &str, plural: &str) {
        self.state
            .lock()
            .unwrap()
            .served
            .entry(gv.to_string())
            .or_default()
            .push(plural.to_string());
    }

    fn unserve(&self, gv: &str) {
        self.state.lock().unwrap().served.remove(gv);
    }

    fn forbid(&self, plural: &str) {
        self.state
            .lock()
            .unwrap()
            .forbidden
            .insert(plural.to_string());
    }

    /// Creates or updates an object; watches are told (unless `silently`).
    fn put_with(&self, resource: &str, mut obj: Value, silently: bool) {
        let mut st = self.state.lock().unwrap();
        st.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        let list = st.objects.entry(resource.to_string()).or_default();
        let old = match list.iter().position(|o| same_object(o, &obj)) {
            Some(i) => Some(std::mem::replace(&mut list[i], obj.clone())),
            None => {
                list.push(obj.clone());
                None
            }
        };
        if !silently {
            st.send(resource, old.as_ref(), Some(&obj));
        }
    }

    fn put(&self, resource: &str, obj: Value) {
        self.put_with(resource, obj, false)
    }

    fn delete_with(&self, resource: &str, ns: &str, name: &str, silently: bool) {
        let mut st = self.state.lock().unwrap();
        st.rv += 1;
        let rv = st.rv;
        let list = st.objects.entry(resource.to_string()).or_default();
        let Some(i) = list
            .iter()
            .position(|o| o["metadata"]["namespace"] == ns && o["metadata"]["name"] == name)
        else {
            return;
        };
        let mut old = list.remove(i);
        old["metadata"]["resourceVersion"] = json!(rv.to_string());
        if !silently {
            st.send(resource, Some(&old), None);
        }
    }

    fn delete(&self, resource: &str, ns: &str, name: &str) {
        self.delete_with(resource, ns, name, false)
    }

    /// Sends a 410 Gone error event on every watch of `resource` and closes them.
    fn expire(&self, resource: &str) {
        let mut st = self.state.lock().unwrap();
        let line = event_line(
            "ERROR",
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "too old resource version: 1 (5)", "reason": "Expired", "code": 410}),
        );
        st.watches.retain(|w| {
            if w.resource == resource {
                let _ = w.tx.unbounded_send(line.clone());
                false
            } else {
                true
            }
        });
    }

    /// Closes every watch stream (the watcher resumes from its last resourceVersion).
    fn close_watches(&self) {
        self.state.lock().unwrap().watches.clear();
    }

    /// Stops the server: the listener and every connection go away.
    fn shutdown(&self) {
        self.close_watches();
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// A client built through [`crate::kube::client::client`] from a kubeconfig file.
    async fn client(&self) -> kube::Client {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            f.path(),
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: u\n",
                self.addr
            ),
        )
        .unwrap();
        crate::kube::client::client(Some((f.path().to_path_buf(), None)))
            .await
            .unwrap()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn test_options() -> WatchOptions {
    WatchOptions {
        discovery_interval: Duration::from_millis(100),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        convert: fake_convert,
    }
}

/// Runs the source until the returned guard is dropped.
struct Running(tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn start(fake: &Fake, kinds: Vec<ObjKind>, filters: Filters, feed: &Feed) -> Running {
    let client = fake.client().await;
    Running(tokio::spawn(run_with(
        client,
        kinds,
        filters,
        feed.clone(),
        test_options(),
    )))
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn errors(kind: ObjKind, reason: &str) -> u64 {
    WATCH_ERRORS
        .with_label_values(&[kind.as_str(), reason])
        .get()
}

fn served_gauge(kind: ObjKind) -> i64 {
    KIND_SERVED.with_label_values(&[kind.as_str()]).get()
}

const INGRESSES: &str = "networking.k8s.io/v1/ingresses";

/// A fresh feed and the source watching `kinds` (no filters) into it.
async fn watch(fake: &Fake, kinds: Vec<ObjKind>) -> (Feed, Running) {
    let feed = Feed::new();
    let run = start(fake, kinds, Filters::default(), &feed).await;
    (feed, run)
}

/// Whether `kind` holds the object `ns`/`name`.
fn has(feed: &Feed, kind: ObjKind, ns: &str, name: &str) -> bool {
    objects(feed, kind).contains_key(&key(ns, name))
}

/// Whether `kind` holds `ns`/`name` with the contribution of `host` at `ip`.
fn holds(feed: &Feed, kind: ObjKind, (ns, name, host, ip): (&str, &str, &str, &str)) -> bool {
    objects(feed, kind).get(&key(ns, name)) == Some(&contribution(host, ip))
}

/// The keys `kind` holds.
fn keys(feed: &Feed, kind: ObjKind) -> HashSet<ObjKey> {
    objects(feed, kind).into_keys().collect()
}

/// `(ns, name)` rows as keys.
fn key_set(rows: &[(&str, &str)]) -> HashSet<ObjKey> {
    rows.iter().map(|&(ns, name)| key(ns, name)).collect()
}

#[tokio::test]
async fn list_syncs_and_watch_events_apply() {
    let fake = Fake::start().await;
    fake.serve("networking.k8s.io/v1", "ingresses");
    fake.put(INGRESSES, obj("web", "a", "a.example.com", "192.0.2.1"));
    let lists_before = EVENTS.with_label_values(&["Ingress", "list"]).get();
    let (feed, _run) = watch(&fake, vec![ObjKind::Ingress]).await;

    wait_until("Ingress synced", || synced(&feed, ObjKind::Ingress)).await;
    assert_eq!(
        objects(&feed, ObjKind::Ingress),
        contributions(&[("web", "a", "a.example.com", "192.0.2.1")])
    );
    assert_eq!(served_gauge(ObjKind::Ingress), 1);
    assert!(EVENTS.with_label_values(&["Ingress", "list"]).get() > lists_before);

    fake.put(INGRESSES, obj("web", "b", "b.example.com", "192.0.2.2"));
    wait_until("b added", || {
        holds(
            &feed,
            ObjKind::Ingress,
            ("web", "b", "b.example.com", "192.0.2.2"),
        )
    })
    .await;
    fake.put(INGRESSES, obj("web", "a", "a.example.com", "192.0.2.7"));
    wait_until("a modified", || {
        holds(
            &feed,
            ObjKind::Ingress,
            ("web", "a", "a.example.com", "192.0.2.7"),
        )
    })
    .await;
    fake.delete(INGRESSES, "web", "b");
    wait_until("b deleted", || !has(&feed, ObjKind::Ingress, "web", "b")).await;
    assert_eq!(objects(&feed, ObjKind::Ingress).len(), 1);
    // The list was asked for once the discovery of networking.k8s.io/v1 succeeded.
    let reqs = fake.requests();
    let disco = reqs
        .iter()
        .position(|r| r.starts_with("/apis/networking.k8s.io/v1?"))
        .unwrap();
    let list = reqs
        .iter()
        .position(|r| {
            r.starts_with("/apis/networking.k8s.io/v1/ingresses?") && !r.contains("watch=")
        })
        .unwrap();
    assert!(disco < list, "{reqs:?}");
    assert!(
        reqs.iter()
            .any(|r| r.contains("/ingresses?") && r.contains("watch=true")),
        "{reqs:?}"
    );
}

#[tokio::test]
async fn unserved_kind_is_synced_and_watched_once_it_appears() {
    let fake = Fake::start().await;
    // The group is served, but without grpcroutes; TLSRoute only at v1alpha2.
    fake.serve("gateway.networking.k8s.io/v1", "httproutes");
    fake.serve("gateway.networking.k8s.io/v1alpha2", "tlsroutes");
    fake.put(
        "gateway.networking.k8s.io/v1alpha2/tlsroutes",
        obj("gw", "t", "t.example.com", "192.0.2.5"),
    );
    let (feed, _run) = watch(
        &fake,
        vec![ObjKind::GRPCRoute, ObjKind::TLSRoute, ObjKind::GRPCRoute],
    )
    .await;

    wait_until("both synced", || {
        synced(&feed, ObjKind::GRPCRoute) && synced(&feed, ObjKind::TLSRoute)
    })
    .await;
    assert!(objects(&feed, ObjKind::GRPCRoute).is_empty());
    assert_eq!(served_gauge(ObjKind::GRPCRoute), 0);
    assert_eq!(
        objects(&feed, ObjKind::TLSRoute),
        contributions(&[("gw", "t", "t.example.com", "192.0.2.5")])
    );
    let reqs = fake.requests();
    assert!(
        reqs.iter()
            .any(|r| r.starts_with("/apis/gateway.networking.k8s.io/v1alpha2/tlsroutes?")),
        "{reqs:?}"
    );
    assert!(
        !reqs.iter().any(|r| r.contains("/grpcroutes")),
        "an unserved kind must not be listed: {reqs:?}"
    );

    // The CRD gets installed: picked up at the next discovery round.
    fake.serve("gateway.networking.k8s.io/v1", "grpcroutes");
    fake.put(
        "gateway.networking.k8s.io/v1/grpcroutes",
        obj("gw", "g", "g.example.com", "192.0.2.6"),
    );
    wait_until("GRPCRoute listed", || {
        has(&feed, ObjKind::GRPCRoute, "gw", "g")
    })
    .await;
    assert_eq!(served_gauge(ObjKind::GRPCRoute), 1);
    assert!(synced(&feed, ObjKind::GRPCRoute));
    fake.put(
        "gateway.networking.k8s.io/v1/grpcroutes",
        obj("gw", "h", "h.example.com", "192.0.2.8"),
    );
    wait_until("GRPCRoute watched", || {
        has(&feed, ObjKind::GRPCRoute, "gw", "h")
    })
    .await;
}

#[tokio::test]
async fn tlsroute_prefers_v1_when_served() {
    let fake = Fake::start().await;
    fake.serve("gateway.networking.k8s.io/v1", "tlsroutes");
    fake.serve("gateway.networking.k8s.io/v1alpha2", "tlsroutes");
    fake.put(
        "gateway.networking.k8s.io/v1/tlsroutes",
        obj("gw", "new", "new.example.com", "192.0.2.1"),
    );
    fake.put(
        "gateway.networking.k8s.io/v1alpha2/tlsroutes",
        obj("gw", "old", "old.example.com", "192.0.2.2"),
    );
    let (feed, _run) = watch(&fake, vec![ObjKind::TLSRoute]).await;
    wait_until("TLSRoute synced", || synced(&feed, ObjKind::TLSRoute)).await;
    assert_eq!(
        objects(&feed, ObjKind::TLSRoute),
        contributions(&[("gw", "new", "new.example.com", "192.0.2.1")])
    );
}

#[tokio::test]
async fn forbidden_kind_is_counted_synced_empty_and_does_not_block_others() {
    let fake = Fake::start().await;
    fake.serve("v1", "nodes");
    fake.serve("v1", "services");
    fake.forbid("nodes");
    fake.put(
        "v1/services",
        obj("dns", "s", "s.example.com", "192.0.2.53"),
    );
    let before = errors(ObjKind::Node, "forbidden");
    let (feed, _run) = watch(&fake, vec![ObjKind::Node, ObjKind::Service]).await;
    wait_until("Service synced", || synced(&feed, ObjKind::Service)).await;
    // Retried with backoff, counted each time.
    wait_until("two 403s counted", || {
        errors(ObjKind::Node, "forbidden") >= before + 2
    })
    .await;
    assert!(
        synced(&feed, ObjKind::Node),
        "a forbidden kind does not hold readiness back"
    );
    assert!(objects(&feed, ObjKind::Node).is_empty());
    assert_eq!(served_gauge(ObjKind::Node), 1);
    assert_eq!(objects(&feed, ObjKind::Service).len(), 1);
    fake.put(
        "v1/services",
        obj("dns", "t", "t.example.com", "192.0.2.54"),
    );
    wait_until("Service still watched", || {
        has(&feed, ObjKind::Service, "dns", "t")
    })
    .await;
    assert!(synced(&feed, ObjKind::Node));
    let text = crate::metrics::gather_text();
    assert!(
        text.contains("exdns_k8s_gateway_watch_errors_total{kind=\"Node\",reason=\"forbidden\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn label_selectors_are_ored_and_deduplicated() {
    let fake = Fake::start().await;
    fake.serve("v1", "services");
    let svc = "v1/services";
    // Service n/NAME for NAME.example.com at `ip`, with `labels`.
    let put = |name: &str, ip: &str, labels: &[(&str, &str)]| {
        let host = format!("{name}.example.com");
        fake.put(svc, with_labels(obj("n", name, &host, ip), labels));
    };
    put("a", "192.0.2.1", &[("app", "web")]);
    put("b", "192.0.2.2", &[("tier", "db")]);
    put("c", "192.0.2.3", &[("app", "web"), ("tier", "db")]);
    put("d", "192.0.2.4", &[("app", "api")]);
    let feed = Feed::new();
    let filters = Filters {
        service_label_selectors: vec!["app=web".into(), "tier=db".into()],
        ..Default::default()
    };
    let _run = start(&fake, vec![ObjKind::Service], filters, &feed).await;
    wait_until("Service synced", || synced(&feed, ObjKind::Service)).await;
    assert_eq!(
        keys(&feed, ObjKind::Service),
        key_set(&[("n", "a"), ("n", "b"), ("n", "c")])
    );
    let reqs = fake.requests();
    for sel in ["labelSelector=app%3Dweb", "labelSelector=tier%3Ddb"] {
        assert!(reqs.iter().any(|r| r.contains(sel)), "{sel}: {reqs:?}");
    }

    // c loses app=web: the web watch deletes it, the db watch still has it.
    put("c", "192.0.2.33", &[("tier", "db")]);
    wait_until("c updated", || {
        holds(
            &feed,
            ObjKind::Service,
            ("n", "c", "c.example.com", "192.0.2.33"),
        )
    })
    .await;
    // d gains app=web.
    put("d", "192.0.2.4", &[("app", "web")]);
    wait_until("d added", || has(&feed, ObjKind::Service, "n", "d")).await;
    // c matches nothing any more.
    fake.put(svc, obj("n", "c", "c.example.com", "192.0.2.33"));
    wait_until("c gone", || !has(&feed, ObjKind::Service, "n", "c")).await;
    assert_eq!(
        keys(&feed, ObjKind::Service),
        key_set(&[("n", "a"), ("n", "b"), ("n", "d")])
    );
}

#[tokio::test]
async fn relist_after_410_replaces_stale_objects() {
    let fake = Fake::start().await;
    let res = "externaldns.k8s.io/v1alpha1/dnsendpoints";
    fake.serve("externaldns.k8s.io/v1alpha1", "dnsendpoints");
    fake.put(res, obj("n", "a", "a.example.com", "192.0.2.1"));
    fake.put(res, obj("n", "b", "b.example.com", "192.0.2.2"));
    let before = errors(ObjKind::DNSEndpoint, "expired");
    let (feed, _run) = watch(&fake, vec![ObjKind::DNSEndpoint]).await;
    wait_until("DNSEndpoint synced", || synced(&feed, ObjKind::DNSEndpoint)).await;
    wait_until("watch open", || {
        fake.requests()
            .iter()
            .any(|r| r.contains("/dnsendpoints?") && r.contains("watch=true"))
    })
    .await;
    // Changes the watch never reported, then the watch expires.
    fake.delete_with(res, "n", "b", true);
    fake.put_with(res, obj("n", "c", "c.example.com", "192.0.2.3"), true);
    fake.expire(res);
    wait_until("re-listed", || {
        keys(&feed, ObjKind::DNSEndpoint) == key_set(&[("n", "a"), ("n", "c")])
    })
    .await;
    assert!(synced(&feed, ObjKind::DNSEndpoint));
    assert!(errors(ObjKind::DNSEndpoint, "expired") > before);
}

#[tokio::test]
async fn unreachable_api_server_keeps_the_last_data() {
    let fake = Fake::start().await;
    let res = "k8s.nginx.org/v1/virtualservers";
    fake.serve("k8s.nginx.org/v1", "virtualservers");
    fake.put(res, obj("n", "v", "v.example.com", "192.0.2.1"));
    let (feed, _run) = watch(&fake, vec![ObjKind::VirtualServer]).await;
    wait_until("VirtualServer synced", || {
        synced(&feed, ObjKind::VirtualServer)
    })
    .await;
    let before = errors(ObjKind::VirtualServer, "unreachable");
    fake.shutdown();
    wait_until("reconnects failing", || {
        errors(ObjKind::VirtualServer, "unreachable") >= before + 2
    })
    .await;
    assert!(synced(&feed, ObjKind::VirtualServer));
    assert_eq!(
        objects(&feed, ObjKind::VirtualServer),
        contributions(&[("n", "v", "v.example.com", "192.0.2.1")])
    );
}

#[tokio::test]
async fn removed_crd_drops_its_objects_and_is_rediscovered() {
    let fake = Fake::start().await;
    let gv = "gateway.networking.k8s.io/v1";
    fake.serve(gv, "gateways");
    fake.put(
        "gateway.networking.k8s.io/v1/gateways",
        obj("gw", "g", "g.example.com", "192.0.2.1"),
    );
    let (feed, _run) = watch(&fake, vec![ObjKind::Gateway]).await;
    wait_until("Gateway synced", || {
        objects(&feed, ObjKind::Gateway).len() == 1
    })
    .await;
    fake.unserve(gv);
    fake.close_watches();
    wait_until("Gateway objects dropped", || {
        objects(&feed, ObjKind::Gateway).is_empty()
    })
    .await;
    assert!(synced(&feed, ObjKind::Gateway));
    assert_eq!(served_gauge(ObjKind::Gateway), 0);
    // Installed again.
    fake.serve(gv, "gateways");
    wait_until("Gateway listed again", || {
        objects(&feed, ObjKind::Gateway).len() == 1
    })
    .await;
    assert_eq!(served_gauge(ObjKind::Gateway), 1);
}

// A current-thread runtime: every spawned task logs to this thread's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn forbidden_and_unserved_kinds_are_logged_once() {
    let (_guard, logs) = crate::plugin::test_chain::capture_logs();
    // tracing-core computes a callsite's interest from the calling thread's subscriber while
    // only one dispatcher exists, so a callsite first hit by another test's thread would be
    // cached as "never" for ours. A second live dispatcher makes it consult every dispatcher.
    let _second = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .finish(),
    );

    let fake = Fake::start().await;
    fake.serve("v1", "nodes");
    fake.forbid("nodes");
    let (feed, _run) = watch(&fake, vec![ObjKind::Node, ObjKind::TLSRoute]).await;
    let count = |prefix: &str| {
        fake.requests()
            .iter()
            .filter(|r| r.starts_with(prefix))
            .count()
    };
    wait_until("repeated 403s and discovery rounds", || {
        count("/api/v1/nodes?") >= 3 && count("/apis/gateway.networking.k8s.io/v1alpha2?") >= 3
    })
    .await;
    for line in [
        "ERROR exdns::kube::watch: forbidden to list/watch nodes: nodes is forbidden: User \"system:serviceaccount:dns:exdns\" cannot list resource \"nodes\" in API group \"\" at the cluster scope",
        "WARN exdns::kube::watch: TLSRoute API (gateway.networking.k8s.io) is not served; skipping it, will check again every 100ms",
    ] {
        let lines = logs.lines();
        let n = lines.iter().filter(|l| l.contains(line)).count();
        assert_eq!(n, 1, "{line}: {lines:#?}");
    }
    assert!(synced(&feed, ObjKind::TLSRoute));
    assert!(
        synced(&feed, ObjKind::Node),
        "forbidden: synced with no objects"
    );
}
