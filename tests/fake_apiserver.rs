//! The fake Kubernetes API server (tests/support/fake_apiserver.rs) against the real kube client:
//! kubeconfig loading, lists with paging and selectors, watches, the runtime watcher's recovery
//! paths (410, restarts, 403, 404), discovery (legacy and aggregated).

mod support;

use std::fmt::Debug;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, ResourceExt, WatchEvent,
    WatchParams,
};
use kube::discovery::{self, Discovery, Scope};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use support::fake_apiserver::{FakeApiServer, TOKEN};

const NET: &str = "networking.k8s.io";
const EXTDNS: &str = "externaldns.k8s.io";
const GW: &str = "gateway.networking.k8s.io";
const T: Duration = Duration::from_secs(10);

fn ingress(ns: &str, name: &str, labels: Value) -> Value {
    json!({
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"rules": [{"host": format!("{name}.example.org")}]},
    })
}

fn dnsendpoint(ns: &str, name: &str, target: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"endpoints": [{"dnsName": format!("{name}.example.org"), "recordType": "A", "targets": [target]}]},
    })
}

fn dnsendpoints_api(client: Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(EXTDNS, "v1alpha1", "DNSEndpoint"),
        "dnsendpoints",
    );
    Api::all_with(client, &ar)
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

fn api_reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.reason.clone(),
        other => format!("not an API error: {other}"),
    }
}

/// A watcher event, simplified for assertions.
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Init,
    InitApply(String),
    InitDone,
    /// ns/name and resourceVersion
    Apply(String, String),
    Delete(String),
    /// variant and HTTP/Status code (None: not an API status, e.g. connection refused)
    Err(&'static str, Option<u16>),
}

fn key<K: Resource>(o: &K) -> String {
    format!(
        "{}/{}",
        o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.clone().unwrap_or_default()
    )
}

fn simplify<K: Resource>(ev: Result<watcher::Event<K>, watcher::Error>) -> Ev {
    match ev {
        Ok(watcher::Event::Init) => Ev::Init,
        Ok(watcher::Event::InitApply(o)) => Ev::InitApply(key(&o)),
        Ok(watcher::Event::InitDone) => Ev::InitDone,
        Ok(watcher::Event::Apply(o)) => Ev::Apply(
            key(&o),
            o.meta().resource_version.clone().unwrap_or_default(),
        ),
        Ok(watcher::Event::Delete(o)) => Ev::Delete(key(&o)),
        Err(watcher::Error::InitialListFailed(e)) => Ev::Err("InitialListFailed", api_code(&e)),
        Err(watcher::Error::WatchStartFailed(e)) => Ev::Err("WatchStartFailed", api_code(&e)),
        Err(watcher::Error::WatchFailed(e)) => Ev::Err("WatchFailed", api_code(&e)),
        Err(watcher::Error::WatchError(s)) => Ev::Err("WatchError", Some(s.code)),
        Err(watcher::Error::NoResourceVersion) => Ev::Err("NoResourceVersion", None),
    }
}

/// Runs the real kube watcher in a task; its events arrive on the returned channel. After an error
/// the task waits 50 ms before polling again (a short backoff).
fn spawn_watcher<K>(api: Api<K>, cfg: watcher::Config) -> mpsc::UnboundedReceiver<Ev>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut s = watcher(api, cfg).boxed();
        while let Some(ev) = s.next().await {
            let e = simplify(ev);
            let is_err = matches!(e, Ev::Err(..));
            if tx.send(e).is_err() {
                return;
            }
            if is_err {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    rx
}

/// Collects events until one satisfies `pred`; returns all collected (the matching one last).
async fn until(rx: &mut mpsc::UnboundedReceiver<Ev>, pred: impl Fn(&Ev) -> bool) -> Vec<Ev> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) => {
                let done = pred(&e);
                seen.push(e);
                if done {
                    return seen;
                }
            }
            Ok(None) => panic!("watcher ended; events so far: {seen:?}"),
            Err(_) => panic!("timed out; events so far: {seen:?}"),
        }
    }
}

/// Asserts that no event arrives within `d`.
async fn quiet(rx: &mut mpsc::UnboundedReceiver<Ev>, d: Duration) {
    if let Ok(Some(e)) = tokio::time::timeout(d, rx.recv()).await {
        panic!("unexpected event {e:?}");
    }
}

async fn until_init_done(rx: &mut mpsc::UnboundedReceiver<Ev>) -> Vec<Ev> {
    until(rx, |e| *e == Ev::InitDone).await
}

async fn wait_async(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + T;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn kubeconfig_file_is_accepted_and_lists_page_over_a_consistent_snapshot() {
    let srv = FakeApiServer::start_with_defaults();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    srv.write_kubeconfig(&path);
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .unwrap();
    assert_eq!(cfg.cluster_url.to_string(), format!("{}/", srv.url()));
    assert_eq!(cfg.default_namespace, "default");
    let client = Client::try_from(cfg).unwrap();

    for (ns, name) in [
        ("b", "i2"),
        ("a", "i1"),
        ("a", "i3"),
        ("b", "i1"),
        ("c", "x"),
        ("a", "i2"),
        ("c", "y"),
    ] {
        srv.create(NET, "v1", "ingresses", ingress(ns, name, json!({})));
    }
    let api: Api<Ingress> = Api::all(client.clone());
    let p1 = api.list(&ListParams::default().limit(3)).await.unwrap();
    let names = |l: &kube::api::ObjectList<Ingress>| l.items.iter().map(key).collect::<Vec<_>>();
    assert_eq!(names(&p1), ["a/i1", "a/i2", "a/i3"]);
    assert_eq!(p1.metadata.remaining_item_count, Some(4));
    let rv1 = p1.metadata.resource_version.clone().unwrap();
    assert_eq!(rv1, srv.resource_version().to_string());
    let tok1 = p1.metadata.continue_.clone().expect("continue token");
    // Typed items deserialize although list items of built-in kinds carry no kind/apiVersion.
    assert_eq!(
        p1.items[0].spec.as_ref().unwrap().rules.as_ref().unwrap()[0]
            .host
            .as_deref(),
        Some("i1.example.org")
    );

    // Changes between pages do not show up in later pages of the same list.
    srv.delete(NET, "v1", "ingresses", "c", "x").unwrap();
    srv.create(NET, "v1", "ingresses", ingress("b", "i0", json!({})));
    let p2 = api
        .list(&ListParams::default().limit(3).continue_token(&tok1))
        .await
        .unwrap();
    assert_eq!(names(&p2), ["b/i1", "b/i2", "c/x"]);
    assert_eq!(p2.metadata.resource_version.as_deref(), Some(rv1.as_str()));
    let p3 = api
        .list(
            &ListParams::default()
                .limit(3)
                .continue_token(p2.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(names(&p3), ["c/y"]);
    assert_eq!(p3.metadata.continue_, None);

    // A fresh list sees the current state.
    let all = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        names(&all),
        ["a/i1", "a/i2", "a/i3", "b/i0", "b/i1", "b/i2", "c/y"]
    );
    assert_eq!(srv.list_requests("ingresses"), 4);

    // Once the history is compacted, the old continue token is too old.
    srv.compact();
    let e = api
        .list(&ListParams::default().limit(3).continue_token(&tok1))
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), Some(410));
    assert_eq!(api_reason(&e), "Expired");
}

#[tokio::test]
async fn requests_without_the_token_are_unauthorized() {
    let srv = FakeApiServer::start_with_defaults();
    let addr = srv.addr();
    let (code, _, body) =
        tokio::task::spawn_blocking(move || support::http_get(addr, "/api/v1/services"))
            .await
            .unwrap();
    assert_eq!(code, 401);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["reason"], "Unauthorized");
    // Health checks need no token.
    let (code, _, body) = tokio::task::spawn_blocking(move || support::http_get(addr, "/readyz"))
        .await
        .unwrap();
    assert_eq!((code, body.as_str()), (200, "ok"));
    assert!(TOKEN.len() > 8);
    // The kube client sends it.
    let client = srv.kube_client().await;
    Api::<Ingress>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let srv = FakeApiServer::start_with_defaults();
    srv.create(
        NET,
        "v1",
        "ingresses",
        ingress("a", "web-front", json!({"app": "web", "tier": "front"})),
    );
    srv.create(
        NET,
        "v1",
        "ingresses",
        ingress("a", "web-back", json!({"app": "web", "tier": "back"})),
    );
    srv.create(
        NET,
        "v1",
        "ingresses",
        ingress("a", "db", json!({"app": "db", "tier": "store"})),
    );
    srv.create(NET, "v1", "ingresses", ingress("b", "plain", json!({})));
    let api: Api<Ingress> = Api::all(srv.kube_client().await);
    let sel = |lp: ListParams| {
        let api = api.clone();
        async move {
            let mut v: Vec<String> = api
                .list(&lp)
                .await
                .unwrap()
                .items
                .iter()
                .map(|i| i.name_any())
                .collect();
            v.sort();
            v
        }
    };
    assert_eq!(
        sel(ListParams::default().labels("app=web")).await,
        ["web-back", "web-front"]
    );
    assert_eq!(sel(ListParams::default().labels("app==db")).await, ["db"]);
    assert_eq!(
        sel(ListParams::default().labels("app!=web")).await,
        ["db", "plain"]
    );
    assert_eq!(
        sel(ListParams::default().labels("tier in (front, store)")).await,
        ["db", "web-front"]
    );
    assert_eq!(
        sel(ListParams::default().labels("tier notin (front,store)")).await,
        ["plain", "web-back"]
    );
    assert_eq!(
        sel(ListParams::default().labels("app")).await,
        ["db", "web-back", "web-front"]
    );
    assert_eq!(sel(ListParams::default().labels("!app")).await, ["plain"]);
    assert_eq!(
        sel(ListParams::default().labels("app=web,tier!=back")).await,
        ["web-front"]
    );
    assert_eq!(
        sel(ListParams::default().fields("metadata.name=db")).await,
        ["db"]
    );
    assert_eq!(
        sel(ListParams::default().fields("metadata.namespace!=a")).await,
        ["plain"]
    );
    // A selector with limit: pages count matching objects only.
    let page = api
        .list(&ListParams::default().labels("app").limit(2))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    assert!(page.metadata.continue_.is_some());
    assert_eq!(page.metadata.remaining_item_count, None);

    let e = api
        .list(&ListParams::default().labels("app in (web"))
        .await
        .unwrap_err();
    assert_eq!(
        (api_code(&e), api_reason(&e).as_str()),
        (Some(400), "BadRequest")
    );
    // Custom resources support only metadata.name / metadata.namespace field selectors.
    srv.serve_dnsendpoints();
    let e = dnsendpoints_api(srv.kube_client().await)
        .list(&ListParams::default().fields("spec.foo=bar"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), Some(400));
    match e {
        kube::Error::Api(s) => assert_eq!(s.message, "field label not supported: spec.foo"),
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn namespaced_lists_gets_and_cluster_scoped_kinds() {
    let srv = FakeApiServer::start_with_defaults();
    srv.create(NET, "v1", "ingresses", ingress("a", "one", json!({})));
    srv.create(NET, "v1", "ingresses", ingress("b", "two", json!({})));
    srv.create("", "v1", "nodes", json!({"metadata": {"name": "node-1"}, "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}));
    let client = srv.kube_client().await;
    let a: Api<Ingress> = Api::namespaced(client.clone(), "a");
    let l = a.list(&ListParams::default()).await.unwrap();
    assert_eq!(l.items.iter().map(key).collect::<Vec<_>>(), ["a/one"]);
    let one = a.get("one").await.unwrap();
    assert_eq!(one.metadata.generation, Some(1));
    assert!(one.metadata.uid.as_ref().is_some_and(|u| u.len() == 36));
    assert!(one.metadata.creation_timestamp.is_some());
    let e = a.get("two").await.unwrap_err();
    assert_eq!(
        (api_code(&e), api_reason(&e).as_str()),
        (Some(404), "NotFound")
    );
    match e {
        kube::Error::Api(s) => {
            assert_eq!(s.message, "ingresses.networking.k8s.io \"two\" not found")
        }
        other => panic!("{other}"),
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let n = nodes.get("node-1").await.unwrap();
    assert_eq!(n.metadata.namespace, None);
    assert_eq!(n.status.unwrap().addresses.unwrap()[0].address, "10.0.0.1");
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    // Metadata-only requests.
    let meta = Api::<Ingress>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(meta.items.len(), 2);
    assert_eq!(meta.items[0].metadata.name.as_deref(), Some("one"));
    assert_eq!(
        a.get_metadata("one").await.unwrap().metadata.uid,
        one.metadata.uid
    );
    // Update bumps generation when the spec changes and keeps the uid.
    let mut changed = ingress("a", "one", json!({"x": "y"}));
    changed["spec"]["rules"][0]["host"] = json!("changed.example.org");
    srv.update(NET, "v1", "ingresses", changed);
    let one2 = a.get("one").await.unwrap();
    assert_eq!(one2.metadata.generation, Some(2));
    assert_eq!(one2.metadata.uid, one.metadata.uid);
    assert!(
        one2.metadata
            .resource_version
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > one
                .metadata
                .resource_version
                .unwrap()
                .parse::<u64>()
                .unwrap()
    );
}

#[tokio::test]
async fn watcher_sees_create_update_delete_in_order() {
    let srv = FakeApiServer::start_with_defaults();
    srv.serve_dnsendpoints();
    srv.create(
        EXTDNS,
        "v1alpha1",
        "dnsendpoints",
        dnsendpoint("a", "old", "192.0.2.1"),
    );
    let api = dnsendpoints_api(srv.kube_client().await);
    let mut rx = spawn_watcher(api, watcher::Config::default());
    assert_eq!(
        until_init_done(&mut rx).await,
        [Ev::Init, Ev::InitApply("a/old".into()), Ev::InitDone]
    );
    assert_eq!(srv.list_requests("dnsendpoints"), 1);
    assert!(wait_async(|| srv.open_watches("dnsendpoints") == 1).await);

    let c = srv.create(
        EXTDNS,
        "v1alpha1",
        "dnsendpoints",
        dnsendpoint("b", "new", "192.0.2.2"),
    );
    let u = srv.update(
        EXTDNS,
        "v1alpha1",
        "dnsendpoints",
        dnsendpoint("b", "new", "192.0.2.3"),
    );
    let d = srv
        .delete(EXTDNS, "v1alpha1", "dnsendpoints", "b", "new")
        .unwrap();
    let rv = |v: &Value| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        until(&mut rx, |e| matches!(e, Ev::Apply(..))).await,
        [Ev::Apply("b/new".into(), rv(&c))]
    );
    assert_eq!(
        until(&mut rx, |e| matches!(e, Ev::Apply(..))).await,
        [Ev::Apply("b/new".into(), rv(&u))]
    );
    assert_eq!(
        until(&mut rx, |e| matches!(e, Ev::Delete(..))).await,
        [Ev::Delete("b/new".into())]
    );
    assert!(rv(&c).parse::<u64>().unwrap() < rv(&u).parse::<u64>().unwrap());
    assert!(rv(&u).parse::<u64>().unwrap() < rv(&d).parse::<u64>().unwrap());
    assert_eq!(srv.list_requests("dnsendpoints"), 1);
    assert_eq!(srv.watch_requests("dnsendpoints"), 1);
}

#[tokio::test]
async fn raw_watch_replays_from_a_resource_version_and_sends_bookmarks() {
    let srv = FakeApiServer::start_with_defaults();
    srv.set_bookmark_interval(Duration::from_millis(100));
    let first = srv.create(NET, "v1", "ingresses", ingress("a", "one", json!({})));
    let rv_first = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    srv.create(NET, "v1", "ingresses", ingress("a", "two", json!({})));
    srv.delete(NET, "v1", "ingresses", "a", "one");
    let api: Api<Ingress> = Api::all(srv.kube_client().await);

    // From the first object's resourceVersion: the later events only, then bookmarks at the current
    // resourceVersion.
    let mut s = api
        .watch(&WatchParams::default().timeout(5), &rv_first)
        .await
        .unwrap()
        .boxed();
    let mut got = Vec::new();
    let mut bookmarks = Vec::new();
    while bookmarks.len() < 3 {
        match tokio::time::timeout(T, s.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(o) => got.push(format!("ADDED {}", o.name_any())),
            WatchEvent::Modified(o) => got.push(format!("MODIFIED {}", o.name_any())),
            WatchEvent::Deleted(o) => got.push(format!("DELETED {}", o.name_any())),
            WatchEvent::Bookmark(b) => {
                assert_eq!(b.types.kind, "Ingress");
                assert_eq!(b.types.api_version, "networking.k8s.io/v1");
                bookmarks.push(b.metadata.resource_version);
            }
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(got, ["ADDED two", "DELETED one"]);
    assert!(
        bookmarks
            .iter()
            .all(|b| *b == srv.resource_version().to_string())
    );
    drop(s);

    // Without bookmarks: resourceVersion 0 gives the current objects, then nothing.
    let mut s = api
        .watch(&WatchParams::default().timeout(5).disable_bookmarks(), "0")
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(T, s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Added(o) => assert_eq!(o.name_any(), "two"),
        other => panic!("{other:?}"),
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(400), s.next())
            .await
            .is_err()
    );
    drop(s);

    // The server ends the stream after timeoutSeconds.
    let started = Instant::now();
    let mut s = api
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    while tokio::time::timeout(T, s.next()).await.unwrap().is_some() {}
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(wait_async(|| srv.open_watches("ingresses") == 0).await);
    assert_eq!(srv.watch_requests("ingresses"), 3);
}

#[tokio::test]
async fn too_old_resource_version_gives_410_and_the_watcher_relists() {
    let srv = FakeApiServer::start_with_defaults();
    // No bookmark may move the watcher's resourceVersion past the compaction.
    srv.set_bookmark_interval(Duration::from_secs(60));
    srv.create(NET, "v1", "ingresses", ingress("a", "one", json!({})));
    let api: Api<Ingress> = Api::all(srv.kube_client().await);

    // Raw: a watch from before the compaction gets one ERROR event with a 410 Status, then ends.
    let old = srv.resource_version().to_string();
    srv.compact();
    let mut s = api
        .watch(&WatchParams::default().timeout(5), &old)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(T, s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Error(e) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
            assert!(
                e.message.starts_with("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(tokio::time::timeout(T, s.next()).await.unwrap().is_none());

    // The runtime watcher: after the 410 it starts over with a new list.
    let mut rx = spawn_watcher(api, watcher::Config::default().any_semantic());
    assert_eq!(
        until_init_done(&mut rx).await,
        [Ev::Init, Ev::InitApply("a/one".into()), Ev::InitDone]
    );
    // The watcher's list: kube drops resourceVersion=0 when it pages (limit=500).
    let log = srv.request_log();
    assert!(
        log.iter()
            .any(|l| l.contains("/ingresses?") && l.contains("limit=500")),
        "{log:?}"
    );
    srv.create(NET, "v1", "ingresses", ingress("a", "two", json!({})));
    assert!(matches!(
        until(&mut rx, |e| matches!(e, Ev::Apply(..))).await[..],
        [Ev::Apply(..)]
    ));
    // Compaction leaves the open watch alone; the re-watch from the watcher's last resourceVersion
    // (now older than the history) gets the 410.
    srv.compact();
    quiet(&mut rx, Duration::from_millis(200)).await;
    srv.drop_watches();
    let evs = until_init_done(&mut rx).await;
    assert_eq!(
        evs,
        [
            Ev::Err("WatchError", Some(410)),
            Ev::Init,
            Ev::InitApply("a/one".into()),
            Ev::InitApply("a/two".into()),
            Ev::InitDone
        ]
    );
    assert_eq!(srv.list_requests("ingresses"), 2);
}

#[tokio::test]
async fn restart_with_new_history_makes_the_watcher_relist() {
    let srv = FakeApiServer::start_with_defaults();
    srv.set_restart_downtime(Duration::from_millis(200));
    srv.create(NET, "v1", "ingresses", ingress("a", "one", json!({})));
    let mut rx = spawn_watcher(
        Api::<Ingress>::all(srv.kube_client().await),
        watcher::Config::default(),
    );
    until_init_done(&mut rx).await;
    srv.restart_with_new_history();
    assert!(!srv.is_up());
    srv.create(
        NET,
        "v1",
        "ingresses",
        ingress("a", "during-downtime", json!({})),
    );
    let evs = until_init_done(&mut rx).await;
    let tail = &evs[evs.len() - 4..];
    assert_eq!(
        tail,
        [
            Ev::Init,
            Ev::InitApply("a/during-downtime".into()),
            Ev::InitApply("a/one".into()),
            Ev::InitDone
        ]
    );
    assert!(evs.contains(&Ev::Err("WatchError", Some(410))), "{evs:?}");
    assert!(srv.is_up());
    assert_eq!(srv.list_requests("ingresses"), 2);
}

#[tokio::test]
async fn restart_the_watcher_reconnects_and_resumes_without_relisting() {
    let srv = FakeApiServer::start_with_defaults();
    srv.set_restart_downtime(Duration::from_millis(300));
    srv.create(NET, "v1", "ingresses", ingress("a", "one", json!({})));
    let mut rx = spawn_watcher(
        Api::<Ingress>::all(srv.kube_client().await),
        watcher::Config::default(),
    );
    until_init_done(&mut rx).await;
    assert!(wait_async(|| srv.open_watches("ingresses") == 1).await);
    srv.restart();
    assert!(!srv.is_up());
    assert!(wait_async(|| srv.open_watches("ingresses") == 0).await);
    srv.create(NET, "v1", "ingresses", ingress("a", "two", json!({})));
    let evs = until(&mut rx, |e| matches!(e, Ev::Apply(..))).await;
    assert!(
        matches!(evs.last(), Some(Ev::Apply(k, _)) if k == "a/two"),
        "{evs:?}"
    );
    assert!(!evs.contains(&Ev::Init), "{evs:?}");
    // While down, the client saw connection errors (no HTTP status).
    assert!(
        evs.iter()
            .all(|e| matches!(e, Ev::Err(_, None) | Ev::Apply(..))),
        "{evs:?}"
    );
    assert_eq!(srv.list_requests("ingresses"), 1);
    assert!(srv.watch_requests("ingresses") >= 2);
    assert!(wait_async(|| srv.open_watches("ingresses") == 1).await);
}

#[tokio::test]
async fn forbidden_kind_gives_403_until_allowed() {
    let srv = FakeApiServer::start_with_defaults();
    srv.create(NET, "v1", "ingresses", ingress("a", "one", json!({})));
    srv.forbid("ingresses");
    let api: Api<Ingress> = Api::all(srv.kube_client().await);
    let e = api.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(
        (api_code(&e), api_reason(&e).as_str()),
        (Some(403), "Forbidden")
    );
    match &e {
        kube::Error::Api(s) => assert!(
            s.message
                .starts_with("ingresses.networking.k8s.io is forbidden: User"),
            "{}",
            s.message
        ),
        other => panic!("{other}"),
    }
    let mut rx = spawn_watcher(api, watcher::Config::default());
    assert_eq!(until(&mut rx, |_| true).await, [Ev::Init]);
    assert_eq!(
        until(&mut rx, |_| true).await,
        [Ev::Err("InitialListFailed", Some(403))]
    );
    srv.allow("ingresses");
    let evs = until_init_done(&mut rx).await;
    assert!(
        evs.ends_with(&[Ev::Init, Ev::InitApply("a/one".into()), Ev::InitDone]),
        "{evs:?}"
    );
}

#[tokio::test]
async fn removed_resource_is_404_and_absent_from_discovery() {
    let srv = FakeApiServer::start_with_defaults();
    srv.serve_dnsendpoints();
    srv.create(
        EXTDNS,
        "v1alpha1",
        "dnsendpoints",
        dnsendpoint("a", "one", "192.0.2.1"),
    );
    let client = srv.kube_client().await;
    let mut rx = spawn_watcher(dnsendpoints_api(client.clone()), watcher::Config::default());
    until_init_done(&mut rx).await;
    let d = Discovery::new(client.clone()).run().await.unwrap();
    assert!(d.has_group(EXTDNS));

    srv.remove_resource(EXTDNS, "v1alpha1", "dnsendpoints");
    // The instances go first, then the watch ends and re-watching fails with 404 (kube reads the
    // Status of a failed watch request as an error item of the stream).
    assert_eq!(until(&mut rx, |_| true).await, [Ev::Delete("a/one".into())]);
    assert_eq!(
        until(&mut rx, |_| true).await,
        [Ev::Err("WatchFailed", Some(404))]
    );
    let e = dnsendpoints_api(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(
        (api_code(&e), api_reason(&e).as_str()),
        (Some(404), "NotFound")
    );
    let d = Discovery::new(client.clone()).run().await.unwrap();
    assert!(!d.has_group(EXTDNS));
    assert!(d.has_group(NET));
    let d = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    assert!(!d.has_group(EXTDNS));
    assert!(discovery::group(&client, EXTDNS).await.is_err());

    // Installed again: served, empty.
    srv.serve_dnsendpoints();
    let l = dnsendpoints_api(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(l.items.is_empty());
}

fn kinds(d: &Discovery) -> Vec<String> {
    let mut out = Vec::new();
    for g in d.groups() {
        for v in g.versions() {
            for (ar, caps) in g.versioned_resources(v) {
                let scope = if caps.scope == Scope::Namespaced {
                    "ns"
                } else {
                    "cluster"
                };
                out.push(format!(
                    "{} {} {} {}",
                    ar.api_version, ar.kind, ar.plural, scope
                ));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn discovery_lists_groups_versions_and_kinds() {
    let srv = FakeApiServer::start_with_defaults();
    srv.serve_gateway_api();
    srv.serve_tlsroutes_v1alpha2();
    srv.serve_dnsendpoints();
    srv.serve_virtualservers();
    let client = srv.kube_client().await;
    let d = Discovery::new(client.clone()).run().await.unwrap();
    let expected = [
        "discovery.k8s.io/v1 EndpointSlice endpointslices ns",
        "externaldns.k8s.io/v1alpha1 DNSEndpoint dnsendpoints ns",
        "gateway.networking.k8s.io/v1 GRPCRoute grpcroutes ns",
        "gateway.networking.k8s.io/v1 Gateway gateways ns",
        "gateway.networking.k8s.io/v1 GatewayClass gatewayclasses cluster",
        "gateway.networking.k8s.io/v1 HTTPRoute httproutes ns",
        "gateway.networking.k8s.io/v1 TLSRoute tlsroutes ns",
        "gateway.networking.k8s.io/v1alpha2 TLSRoute tlsroutes ns",
        "k8s.nginx.org/v1 VirtualServer virtualservers ns",
        "networking.k8s.io/v1 Ingress ingresses ns",
        "v1 Namespace namespaces cluster",
        "v1 Node nodes cluster",
        "v1 Service services ns",
    ];
    assert_eq!(kinds(&d), expected);
    let gw = d.get(GW).unwrap();
    assert_eq!(gw.versions().collect::<Vec<_>>(), ["v1", "v1alpha2"]);
    assert_eq!(gw.preferred_version(), Some("v1"));
    let (ar, caps) = d
        .resolve_gvk(&GroupVersionKind::gvk(NET, "v1", "Ingress"))
        .unwrap();
    assert_eq!(ar.plural, "ingresses");
    assert!(caps.supports_operation(discovery::verbs::WATCH));
    assert_eq!(caps.subresources.len(), 1);

    // Aggregated discovery (2 requests) sees the same.
    let before = srv.discovery_requests();
    let agg = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    assert_eq!(kinds(&agg), expected);
    assert_eq!(srv.discovery_requests() - before, 2);
    assert_eq!(agg.get(GW).unwrap().preferred_version(), Some("v1"));

    // One-shot lookups.
    let (ar, caps) = discovery::pinned_kind(
        &client,
        &GroupVersionKind::gvk(EXTDNS, "v1alpha1", "DNSEndpoint"),
    )
    .await
    .unwrap();
    assert_eq!(
        (ar.plural.as_str(), caps.scope),
        ("dnsendpoints", Scope::Namespaced)
    );
    let g = discovery::group(&client, "k8s.nginx.org").await.unwrap();
    assert_eq!(
        g.recommended_kind("VirtualServer").unwrap().0.plural,
        "virtualservers"
    );
    assert!(discovery::group(&client, "nope.example.com").await.is_err());
    let e = client
        .list_api_group_resources("nope.example.com/v1")
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), Some(404));

    // Objects of a kind served in two versions are shared; each version presents its apiVersion.
    srv.create(
        GW,
        "v1",
        "tlsroutes",
        json!({"metadata": {"name": "r", "namespace": "a"}, "spec": {}}),
    );
    for v in ["v1", "v1alpha2"] {
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(GW, v, "TLSRoute"),
            "tlsroutes",
        );
        let l = Api::<DynamicObject>::all_with(client.clone(), &ar)
            .list(&ListParams::default())
            .await
            .unwrap();
        assert_eq!(l.items.len(), 1);
        assert_eq!(
            l.items[0].types.as_ref().unwrap().api_version,
            format!("{GW}/{v}")
        );
    }

    // An old server (no aggregated discovery): the legacy walk still works.
    srv.set_aggregated_discovery(false);
    let d = Discovery::new(client.clone()).run().await.unwrap();
    assert_eq!(kinds(&d), expected);
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_then_changes() {
    let srv = FakeApiServer::start_with_defaults();
    srv.create(NET, "v1", "ingresses", ingress("a", "one", json!({})));
    srv.create(NET, "v1", "ingresses", ingress("a", "two", json!({})));
    let mut rx = spawn_watcher(
        Api::<Ingress>::all(srv.kube_client().await),
        watcher::Config::default().streaming_lists(),
    );
    assert_eq!(
        until_init_done(&mut rx).await,
        [
            Ev::InitApply("a/one".into()),
            Ev::InitApply("a/two".into()),
            Ev::InitDone
        ]
    );
    srv.create(NET, "v1", "ingresses", ingress("a", "three", json!({})));
    assert!(matches!(&until(&mut rx, |_| true).await[..], [Ev::Apply(k, _)] if k == "a/three"));
    assert_eq!(srv.list_requests("ingresses"), 0);
    let log = srv.request_log();
    assert!(
        log.iter().any(|l| l.contains("sendInitialEvents=true")
            && l.contains("resourceVersionMatch=NotOlderThan")),
        "{log:?}"
    );
}

#[tokio::test]
async fn label_selector_watch_turns_objects_that_stop_matching_into_deletes() {
    let srv = FakeApiServer::start_with_defaults();
    srv.create(
        NET,
        "v1",
        "ingresses",
        ingress("a", "web", json!({"app": "web"})),
    );
    srv.create(
        NET,
        "v1",
        "ingresses",
        ingress("a", "db", json!({"app": "db"})),
    );
    let mut rx = spawn_watcher(
        Api::<Ingress>::all(srv.kube_client().await),
        watcher::Config::default().labels("app=web"),
    );
    assert_eq!(
        until_init_done(&mut rx).await,
        [Ev::Init, Ev::InitApply("a/web".into()), Ev::InitDone]
    );
    srv.update(
        NET,
        "v1",
        "ingresses",
        ingress("a", "web", json!({"app": "other"})),
    );
    assert_eq!(until(&mut rx, |_| true).await, [Ev::Delete("a/web".into())]);
    srv.update(
        NET,
        "v1",
        "ingresses",
        ingress("a", "db", json!({"app": "db", "x": "1"})),
    );
    srv.update(
        NET,
        "v1",
        "ingresses",
        ingress("a", "db", json!({"app": "web"})),
    );
    assert!(matches!(&until(&mut rx, |_| true).await[..], [Ev::Apply(k, _)] if k == "a/db"));
    quiet(&mut rx, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn injected_failures_latency_and_pause() {
    let srv = FakeApiServer::start_with_defaults();
    let api: Api<Ingress> = Api::all(srv.kube_client().await);
    srv.fail_next(2, 500);
    for _ in 0..2 {
        let e = api.list(&ListParams::default()).await.unwrap_err();
        assert_eq!(
            (api_code(&e), api_reason(&e).as_str()),
            (Some(500), "InternalError")
        );
    }
    api.list(&ListParams::default()).await.unwrap();

    srv.fail_next_for("ingresses", 1, 500);
    let e = api.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(
        (api_code(&e), api_reason(&e).as_str()),
        (Some(500), "InternalError")
    );
    api.list(&ListParams::default()).await.unwrap();

    // kube 4.2 retries 429/503/504 by itself (its default retry layer).
    let before = srv.list_requests("ingresses");
    srv.fail_next_for("ingresses", 2, 503);
    api.list(&ListParams::default()).await.unwrap();
    assert_eq!(srv.list_requests("ingresses") - before, 3);

    srv.set_latency(Duration::from_millis(300));
    let t = Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    srv.set_latency(Duration::ZERO);

    srv.pause();
    let e = api.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(api_code(&e), None, "{e}");
    srv.resume();
    api.list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn history_limit_makes_old_resource_versions_too_old() {
    let srv = FakeApiServer::start_with_defaults();
    srv.set_history_limit(3);
    let first = srv.create(NET, "v1", "ingresses", ingress("a", "i0", json!({})));
    for i in 1..5 {
        srv.create(
            NET,
            "v1",
            "ingresses",
            ingress("a", &format!("i{i}"), json!({})),
        );
    }
    let api: Api<Ingress> = Api::all(srv.kube_client().await);
    let wp = WatchParams::default().timeout(5).disable_bookmarks();
    let mut s = api
        .watch(&wp, first["metadata"]["resourceVersion"].as_str().unwrap())
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(T, s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("{other:?}"),
    }
    // From two events back: the last two creations.
    let rv = (srv.resource_version() - 2).to_string();
    let mut s = api.watch(&wp, &rv).await.unwrap().boxed();
    let mut names = Vec::new();
    for _ in 0..2 {
        match tokio::time::timeout(T, s.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(o) => names.push(o.name_any()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(names, ["i3", "i4"]);
}

/// The server needs no runtime of the caller's: plain `#[test]`s (which run exdns as a process)
/// drive it synchronously. Also checks the raw wire format.
#[test]
fn sync_use_and_raw_wire_format() {
    let srv = FakeApiServer::start_with_defaults();
    srv.serve_dnsendpoints();
    srv.set_auth_required(false);
    srv.create(
        NET,
        "v1",
        "ingresses",
        ingress("a", "one", json!({"app": "web"})),
    );
    srv.create(NET, "v1", "ingresses", ingress("a", "two", json!({})));
    srv.create(
        EXTDNS,
        "v1alpha1",
        "dnsendpoints",
        dnsendpoint("a", "e", "192.0.2.1"),
    );
    let get = |p: &str| {
        let (code, _, body) = support::http_get(srv.addr(), p);
        (code, serde_json::from_str::<Value>(&body).unwrap())
    };
    let (code, l) =
        get("/apis/networking.k8s.io/v1/namespaces/a/ingresses?limit=1&labelSelector=app%3Dweb");
    assert_eq!(code, 200);
    assert_eq!(l["kind"], "IngressList");
    assert_eq!(l["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(
        l["metadata"]["resourceVersion"],
        srv.resource_version().to_string()
    );
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    // Built-in kinds: list items without TypeMeta; custom resources: with.
    assert_eq!(l["items"][0].get("kind"), None);
    assert_eq!(l["items"][0]["metadata"]["name"], "one");
    let (_, l) = get("/apis/externaldns.k8s.io/v1alpha1/dnsendpoints");
    assert_eq!(l["items"][0]["kind"], "DNSEndpoint");
    assert_eq!(l["items"][0]["apiVersion"], "externaldns.k8s.io/v1alpha1");
    // Discovery, legacy format without the aggregated Accept.
    let (_, g) = get("/apis");
    assert_eq!(g["kind"], "APIGroupList");
    let net = g["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == NET)
        .unwrap();
    assert_eq!(
        net["preferredVersion"],
        json!({"groupVersion": "networking.k8s.io/v1", "version": "v1"})
    );
    let (_, r) = get("/apis/networking.k8s.io/v1");
    assert_eq!(r["kind"], "APIResourceList");
    assert_eq!(r["groupVersion"], "networking.k8s.io/v1");
    assert_eq!(r["resources"][0]["name"], "ingresses");
    assert_eq!(r["resources"][0]["singularName"], "ingress");
    assert_eq!(r["resources"][0]["namespaced"], true);
    assert_eq!(r["resources"][0]["kind"], "Ingress");
    assert!(
        r["resources"][0]["verbs"]
            .as_array()
            .unwrap()
            .contains(&json!("watch"))
    );
    assert_eq!(r["resources"][1]["name"], "ingresses/status");
    let (_, v) = get("/api");
    assert_eq!(v["versions"], json!(["v1"]));
    let (code, st) = get("/apis/nope.example.com/v1");
    assert_eq!(
        (code, st["kind"].as_str(), st["code"].as_u64()),
        (404, Some("Status"), Some(404))
    );
    let (code, _) = get("/apis/networking.k8s.io/v1/widgets");
    assert_eq!(code, 404);
    assert_eq!(srv.list_requests("ingresses"), 1);
    assert_eq!(srv.list_requests("dnsendpoints"), 1);
}
