//! k8s_gateway end to end against the fake Kubernetes API server (tests/support/fake_apiserver.rs):
//! the real exdns binary with `kubeconfig PATH`, objects created, changed and deleted through the
//! fake, API-server faults injected (restart, dropped watches, compaction, CRDs missing, RBAC), and
//! the answers checked on the wire.
//!
//! Every wait is a bounded poll (at most [`WAIT`]); nothing sleeps for a fixed time and then
//! asserts.

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use serde_json::{Value, json};

use support::fake_apiserver::FakeApiServer;
use support::*;

const NET: &str = "networking.k8s.io";
const GW: &str = "gateway.networking.k8s.io";
const EXTDNS: &str = "externaldns.k8s.io";
const NGINX: &str = "k8s.nginx.org";
/// The configured addresses of `ready` and `prometheus` (keys of [`Exdns::http_addr`]).
const READY: &str = "127.0.0.2:0";
const METRICS: &str = "127.0.0.3:0";
/// The directive's default `ttl`.
const TTL: u32 = 60;
/// The longest any change may take to show up.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Objects

/// An object's body and the API resource (group, version, plural) it is created under.
struct Obj {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    body: Value,
}

fn obj(group: &'static str, version: &'static str, plural: &'static str, body: Value) -> Obj {
    Obj {
        group,
        version,
        plural,
        body,
    }
}

fn meta(ns: &str, name: &str) -> Value {
    json!({"name": name, "namespace": ns})
}

fn ingress(ns: &str, name: &str, host: &str, ip: &str) -> Obj {
    obj(
        NET,
        "v1",
        "ingresses",
        json!({
            "metadata": meta(ns, name),
            "spec": {"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
        }),
    )
}

fn lb_service(ns: &str, name: &str, annotations: Value, labels: Value, ips: &[&str]) -> Obj {
    let ingress: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    obj(
        "",
        "v1",
        "services",
        json!({
            "metadata": {"name": name, "namespace": ns, "annotations": annotations, "labels": labels},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 443, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": ingress}},
        }),
    )
}

fn gateway(ns: &str, name: &str, addrs: &[&str]) -> Obj {
    let addresses: Vec<Value> = addrs
        .iter()
        .map(|a| json!({"type": "IPAddress", "value": a}))
        .collect();
    obj(
        GW,
        "v1",
        "gateways",
        json!({
            "metadata": meta(ns, name),
            "spec": {"gatewayClassName": "public",
                     "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
            "status": {"addresses": addresses},
        }),
    )
}

fn httproute(ns: &str, name: &str, hosts: &[&str], parent: (&str, &str)) -> Obj {
    obj(
        GW,
        "v1",
        "httproutes",
        json!({
            "metadata": meta(ns, name),
            "spec": {
                "parentRefs": [{"name": parent.1, "namespace": parent.0}],
                "hostnames": hosts,
                "rules": [{"backendRefs": [{"name": name, "port": 80}]}],
            },
        }),
    )
}

fn dnsendpoint(ns: &str, name: &str, endpoints: Value) -> Obj {
    obj(
        EXTDNS,
        "v1alpha1",
        "dnsendpoints",
        json!({"metadata": meta(ns, name), "spec": {"endpoints": endpoints}}),
    )
}

fn virtualserver(ns: &str, name: &str, host: &str, ip: &str) -> Obj {
    obj(
        NGINX,
        "v1",
        "virtualservers",
        json!({
            "metadata": meta(ns, name),
            "spec": {"host": host,
                     "upstreams": [{"name": "web", "service": name, "port": 80}],
                     "routes": [{"path": "/", "action": {"pass": "web"}}]},
            "status": {"state": "Valid", "externalEndpoints": [{"ip": ip, "ports": "[80,443]"}]},
        }),
    )
}

/// A fake cluster serving every kind exdns watches by default.
fn cluster() -> FakeApiServer {
    let c = FakeApiServer::start_with_defaults();
    c.serve_gateway_api();
    c.serve_dnsendpoints();
    c.serve_virtualservers();
    c
}

/// [`Obj`]s created and replaced in a fake cluster, the API resource coming with the object.
trait Objects {
    fn add(&self, o: Obj);
    fn set(&self, o: Obj);
}

impl Objects for FakeApiServer {
    fn add(&self, o: Obj) {
        self.create(o.group, o.version, o.plural, o.body);
    }

    fn set(&self, o: Obj) {
        self.update(o.group, o.version, o.plural, o.body);
    }
}

/// The Ingress most tests start from: `shop.example.com` at 203.0.113.5 ([`expect_shop`]).
fn add_shop(c: &FakeApiServer) {
    c.add(ingress("shop", "shop", "shop.example.com", "203.0.113.5"));
}

// ---------------------------------------------------------------------------------------------
// exdns

/// `example.com` answered by `k8s_gateway` with one `kubeconfig` line per cluster (plus
/// `extra` lines in its block), `ready` and `prometheus` on their own loopback addresses.
fn start_env(clusters: &[&FakeApiServer], extra: &str, env: &[(&str, &str)]) -> Exdns {
    let mut kubeconfigs = String::new();
    let mut files: Vec<(String, String)> = Vec::new();
    for (i, c) in clusters.iter().enumerate() {
        // What `FakeApiServer::write_kubeconfig` writes (the server URL and its bearer token),
        // in exdns's working directory (its temp dir), where the relative path resolves.
        let name = format!("kubeconfig-{i}.yaml");
        kubeconfigs += &format!("    kubeconfig {name}\n");
        files.push((name, c.kubeconfig_yaml()));
    }
    let corefile = format!(
        "example.com:0 {{\n  k8s_gateway {{\n{kubeconfigs}{extra}  }}\n  ready {READY}\n  prometheus {METRICS}\n}}\n"
    );
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .collect();
    Exdns::start_with_env(&corefile, &files, &[], env)
}

fn start(clusters: &[&FakeApiServer], extra: &str) -> Exdns {
    start_env(clusters, extra, &[])
}

/// [`start`], then [`wait_ready`].
fn start_ready(clusters: &[&FakeApiServer], extra: &str) -> Exdns {
    let ex = start(clusters, extra);
    wait_ready(&ex);
    ex
}

fn ready(ex: &Exdns) -> (u16, String) {
    let (status, _, body) = http_get(ex.http_addr(READY), "/ready");
    (status, body)
}

fn metrics(ex: &Exdns) -> String {
    let (status, _, body) = http_get(ex.http_addr(METRICS), "/metrics");
    assert_eq!(status, 200);
    body
}

/// The value of the sample `series` (`name{labels}` exactly as exposed), if present.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Polls `f` (every 25 ms) until it holds; fails after [`WAIT`] with exdns's output.
fn wait_until(ex: &Exdns, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        if Instant::now() >= deadline {
            panic!(
                "timed out after {WAIT:?} waiting for {what}; exdns output:\n{}",
                ex.output()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn wait_ingress_watch(ex: &Exdns, c: &FakeApiServer) {
    wait_until(ex, "an open Ingress watch", || {
        c.open_watches("ingresses") == 1
    });
}

fn wait_ready(ex: &Exdns) {
    wait_until(ex, "/ready 200", || ready(ex).0 == 200);
}

// ---------------------------------------------------------------------------------------------
// DNS

fn ask(ex: &Exdns, name: &str, qtype: RecordType) -> Message {
    udp(ex.dns(), &query(name, qtype, None))
}

fn ips(m: &Message) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn parse_ips(want: &[&str]) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = want.iter().map(|a| a.parse().unwrap()).collect();
    v.sort();
    v
}

/// Whether `name`/`qtype` is answered NOERROR with exactly the addresses `want`.
fn answers(ex: &Exdns, name: &str, qtype: RecordType, want: &[&str]) -> bool {
    let m = ask(ex, name, qtype);
    m.metadata.response_code == ResponseCode::NoError && ips(&m) == parse_ips(want)
}

/// A positive answer: NOERROR, AA set, RA clear, exactly the addresses `want` (every record of
/// the queried type, owned by the lower-cased qname, with the directive's TTL), nothing in the
/// authority section.
fn assert_addrs(m: &Message, want: &[&str]) {
    let q = &m.queries[0];
    let owner = q.name().to_ascii().to_ascii_lowercase();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert!(m.metadata.authoritative, "AA: {m:?}");
    assert!(!m.metadata.recursion_available, "RA: {m:?}");
    assert!(!m.metadata.truncation, "TC: {m:?}");
    for r in &m.answers {
        assert_eq!(r.name.to_ascii(), owner, "owner: {m:?}");
        assert_eq!(r.ttl, TTL, "ttl: {m:?}");
        assert_eq!(r.record_type(), q.query_type(), "type: {m:?}");
    }
    assert_eq!(ips(m), parse_ips(want), "{m:?}");
    assert!(m.authorities.is_empty(), "authority: {m:?}");
}

/// Polls until `name`/`qtype` answers exactly `want`, then checks the whole answer.
fn eventually_addrs(ex: &Exdns, name: &str, qtype: RecordType, want: &[&str]) {
    wait_until(ex, &format!("{name} {qtype} = {want:?}"), || {
        answers(ex, name, qtype, want)
    });
    assert_addrs(&ask(ex, name, qtype), want);
}

/// The negative answers' SOA: owner the zone, MNAME `dns1.kube-system.example.com.`.
fn assert_soa_authority(m: &Message) {
    assert_eq!(m.authorities.len(), 1, "{m:?}");
    let soa = &m.authorities[0];
    assert_eq!(soa.name.to_ascii(), "example.com.", "{m:?}");
    match &soa.data {
        RData::SOA(s) => {
            assert_eq!(s.mname.to_ascii(), "dns1.kube-system.example.com.");
            assert_eq!(s.minimum, 60);
        }
        other => panic!("not a SOA: {other:?}"),
    }
}

fn is_nxdomain(ex: &Exdns, name: &str) -> bool {
    ask(ex, name, RecordType::A).metadata.response_code == ResponseCode::NXDomain
}

/// NXDOMAIN, AA, no answer, the zone's SOA in authority.
fn assert_nxdomain(m: &Message) {
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{m:?}");
    assert!(m.metadata.authoritative, "AA: {m:?}");
    assert!(m.answers.is_empty(), "{m:?}");
    assert_soa_authority(m);
}

/// Polls until `name` is NXDOMAIN, then checks the whole answer.
fn eventually_nxdomain(ex: &Exdns, name: &str) {
    wait_until(ex, &format!("{name} NXDOMAIN"), || is_nxdomain(ex, name));
    assert_nxdomain(&ask(ex, name, RecordType::A));
}

/// NOERROR, no answer, the zone's SOA in authority.
fn assert_nodata(m: &Message) {
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert!(m.metadata.authoritative, "AA: {m:?}");
    assert!(m.answers.is_empty(), "{m:?}");
    assert_soa_authority(m);
}

/// Checks the whole answer to `name`/`qtype`: exactly the addresses `want` ([`assert_addrs`]).
#[track_caller]
fn expect_addrs(ex: &Exdns, name: &str, qtype: RecordType, want: &[&str]) {
    assert_addrs(&ask(ex, name, qtype), want);
}

#[track_caller]
fn expect_a(ex: &Exdns, name: &str, want: &[&str]) {
    expect_addrs(ex, name, RecordType::A, want);
}

/// The answer while [`add_shop`]'s Ingress is unchanged.
#[track_caller]
fn expect_shop(ex: &Exdns) {
    expect_a(ex, "shop.example.com.", &["203.0.113.5"]);
}

#[track_caller]
fn expect_nxdomain(ex: &Exdns, name: &str) {
    assert_nxdomain(&ask(ex, name, RecordType::A));
}

#[track_caller]
fn expect_nodata(ex: &Exdns, name: &str, qtype: RecordType) {
    assert_nodata(&ask(ex, name, qtype));
}

/// What a row of a [`check`] table expects.
enum Want<'a> {
    /// [`expect_a`].
    A(&'a [&'a str]),
    /// [`expect_nxdomain`].
    NxDomain,
    /// [`expect_nodata`] for this type.
    NoData(RecordType),
}

/// Checks each row's answer in order, as one `expect_*` call per row would.
#[track_caller]
fn check(ex: &Exdns, rows: &[(&str, Want)]) {
    for (name, want) in rows {
        match want {
            Want::A(ips) => expect_a(ex, name, ips),
            Want::NxDomain => expect_nxdomain(ex, name),
            Want::NoData(qtype) => expect_nodata(ex, name, *qtype),
        }
    }
}

/// [`eventually_addrs`] for A.
fn eventually_a(ex: &Exdns, name: &str, want: &[&str]) {
    eventually_addrs(ex, name, RecordType::A, want);
}

#[track_caller]
fn assert_ready(ex: &Exdns) {
    assert_eq!(ready(ex), (200, "OK".to_string()));
}

/// A SERVFAIL with nothing in the answer and authority sections.
#[track_caller]
fn assert_servfail(m: &Message) {
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:?}");
    assert!(m.answers.is_empty() && m.authorities.is_empty(), "{m:?}");
}

/// The Ingress watch's 410s are counted (`reason="expired"`).
#[track_caller]
fn assert_ingress_watch_expired(ex: &Exdns) {
    let expired = sample(
        &metrics(ex),
        "exdns_k8s_gateway_watch_errors_total{kind=\"Ingress\",reason=\"expired\"}",
    );
    assert!(expired.is_some_and(|v| v >= 1.0), "{expired:?}");
}

/// Waits (at most [`WAIT`]) for exdns to log `line`; fails with its whole output.
#[track_caller]
fn expect_log_line(ex: &Exdns, line: &str) {
    assert!(ex.wait_for_line(line, WAIT), "{}", ex.output());
}

/// The `exdns_k8s_gateway_kind_served` sample of `kind` in a `/metrics` body.
fn kind_served(body: &str, kind: &str) -> Option<f64> {
    sample(
        body,
        &format!("exdns_k8s_gateway_kind_served{{kind=\"{kind}\"}}"),
    )
}

fn serial(ex: &Exdns) -> u32 {
    match &ask(ex, "example.com.", RecordType::SOA).answers[0].data {
        RData::SOA(s) => s.serial,
        other => panic!("not a SOA: {other:?}"),
    }
}

fn txt(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| match &r.data {
            RData::TXT(t) => t
                .txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .concat(),
            other => panic!("not a TXT: {other:?}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Objects follow the cluster.

#[test]
fn objects_created_changed_and_deleted_follow_the_cluster() {
    let c = cluster();
    // Present before exdns starts: comes with the initial list.
    add_shop(&c);
    let ex = start_ready(&[&c], "");
    check(
        &ex,
        &[
            ("Shop.Example.COM.", Want::A(&["203.0.113.5"])),
            ("shop.example.com.", Want::NoData(RecordType::AAAA)),
            ("api.example.com.", Want::NxDomain),
        ],
    );
    let serial0 = serial(&ex);

    // Created through the API: a LoadBalancer Service with a hostname list (a wildcard
    // included) and one named by external-dns's annotation, IPv6 only.
    let api = |ips: &[&str]| {
        lb_service(
            "apps",
            "api",
            json!({"coredns.io/hostname": "api.example.com,*.api.example.com"}),
            json!({}),
            ips,
        )
    };
    c.add(api(&["198.51.100.7"]));
    c.add(lb_service(
        "apps",
        "v6",
        json!({"external-dns.alpha.kubernetes.io/hostname": "v6.example.com"}),
        json!({}),
        &["2001:db8::6"],
    ));
    eventually_a(&ex, "api.example.com.", &["198.51.100.7"]);
    check(
        &ex,
        &[
            ("x.api.example.com.", Want::A(&["198.51.100.7"])),
            ("a.b.api.example.com.", Want::NxDomain),
        ],
    );
    eventually_addrs(&ex, "v6.example.com.", RecordType::AAAA, &["2001:db8::6"]);
    check(
        &ex,
        &[
            ("v6.example.com.", Want::NoData(RecordType::A)),
            // An annotated Service is not also known as name.namespace.
            ("api.apps.example.com.", Want::NxDomain),
        ],
    );

    // A Gateway and an HTTPRoute attached to it (in another namespace).
    c.add(gateway(
        "gateway-system",
        "public",
        &["192.0.2.10", "2001:db8::10"],
    ));
    c.add(httproute(
        "apps",
        "web",
        &["web.example.com", "shop.example.com"],
        ("gateway-system", "public"),
    ));
    eventually_a(&ex, "web.example.com.", &["192.0.2.10"]);
    expect_addrs(&ex, "web.example.com.", RecordType::AAAA, &["2001:db8::10"]);
    // Routes beat Ingresses for the same name (kinds are not merged).
    eventually_a(&ex, "shop.example.com.", &["192.0.2.10"]);

    // A DNSEndpoint with an A and a TXT endpoint.
    c.add(dnsendpoint(
            "apps",
            "records",
            json!([
                {"dnsName": "ep.example.com", "recordType": "A", "targets": ["192.0.2.77", "192.0.2.78"]},
                {"dnsName": "ep.example.com", "recordType": "TXT", "targets": ["owner=apps"]},
            ]),
        ));
    eventually_a(&ex, "ep.example.com.", &["192.0.2.77", "192.0.2.78"]);
    let m = ask(&ex, "ep.example.com.", RecordType::TXT);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(txt(&m), vec!["owner=apps"]);
    assert_eq!(m.answers[0].ttl, TTL);
    let serial1 = serial(&ex);
    assert!(serial1 > serial0, "serial {serial0} -> {serial1}");

    // Changes: the Gateway moves (every route name follows), the Service's address changes,
    // the Ingress gets another host, the DNSEndpoint loses a target.
    c.set(gateway("gateway-system", "public", &["192.0.2.11"]));
    eventually_a(&ex, "web.example.com.", &["192.0.2.11"]);
    check(
        &ex,
        &[
            ("shop.example.com.", Want::A(&["192.0.2.11"])),
            ("web.example.com.", Want::NoData(RecordType::AAAA)),
        ],
    );
    c.set(api(&["198.51.100.8", "198.51.100.9"]));
    eventually_a(&ex, "y.api.example.com.", &["198.51.100.8", "198.51.100.9"]);
    c.set(ingress("shop", "shop", "store.example.com", "203.0.113.6"));
    eventually_a(&ex, "store.example.com.", &["203.0.113.6"]);
    c.set(dnsendpoint(
        "apps",
        "records",
        json!([{"dnsName": "ep.example.com", "recordType": "A", "targets": ["192.0.2.78"]}]),
    ));
    eventually_a(&ex, "ep.example.com.", &["192.0.2.78"]);
    expect_nodata(&ex, "ep.example.com.", RecordType::TXT);
    let serial2 = serial(&ex);
    assert!(serial2 > serial1, "serial {serial1} -> {serial2}");

    // Deletes: the route goes (its names with it; shop.example.com is no Ingress host any
    // more either), then the rest.
    c.delete(GW, "v1", "httproutes", "apps", "web");
    eventually_nxdomain(&ex, "web.example.com.");
    expect_nxdomain(&ex, "shop.example.com.");
    c.delete("", "v1", "services", "apps", "api");
    eventually_nxdomain(&ex, "api.example.com.");
    expect_nxdomain(&ex, "x.api.example.com.");
    c.delete(EXTDNS, "v1alpha1", "dnsendpoints", "apps", "records");
    eventually_nxdomain(&ex, "ep.example.com.");
    c.delete(NET, "v1", "ingresses", "shop", "shop");
    eventually_nxdomain(&ex, "store.example.com.");
    // What was not deleted is still there.
    expect_addrs(&ex, "v6.example.com.", RecordType::AAAA, &["2001:db8::6"]);
}

// ---------------------------------------------------------------------------------------------
// 2. Before the first sync.

#[test]
fn servfail_and_not_ready_until_the_first_list_then_answers() {
    let c = cluster();
    add_shop(&c);
    // The API server accepts connections and closes them: nothing can be listed.
    c.pause();
    let ex = start(&[&c], "");
    for name in ["shop.example.com.", "missing.example.com."] {
        assert_servfail(&ask(&ex, name, RecordType::A));
    }
    let m = ask(&ex, "example.com.", RecordType::SOA);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:?}");
    assert_eq!(ready(&ex), (503, "k8s_gateway".to_string()));
    assert_eq!(c.list_requests("ingresses"), 0);

    c.resume();
    wait_until(&ex, "the first answer", || {
        ask(&ex, "shop.example.com.", RecordType::A)
            .metadata
            .response_code
            != ResponseCode::ServFail
    });
    expect_shop(&ex);
    expect_nxdomain(&ex, "missing.example.com.");
    assert_ready(&ex);
}

#[test]
fn servfail_while_the_initial_list_is_slow() {
    let c = cluster();
    add_shop(&c);
    // Every request (discovery, then the list) takes 1.5 s: for about 3 s nothing has synced.
    c.set_latency(Duration::from_millis(1500));
    let ex = start(&[&c], "");
    assert_servfail(&ask(&ex, "shop.example.com.", RecordType::A));
    assert_eq!(ready(&ex), (503, "k8s_gateway".to_string()));
    // Never a premature NXDOMAIN: every answer until the sync is SERVFAIL, then the data.
    wait_until(&ex, "the first answer", || {
        let rcode = ask(&ex, "shop.example.com.", RecordType::A)
            .metadata
            .response_code;
        assert!(
            matches!(rcode, ResponseCode::ServFail | ResponseCode::NoError),
            "{rcode:?} before the data"
        );
        rcode == ResponseCode::NoError
    });
    expect_shop(&ex);
    assert_ready(&ex);
}

// ---------------------------------------------------------------------------------------------
// 3. API server restart.

#[test]
fn api_server_restart_keeps_answers_and_resumes_the_watch() {
    let c = cluster();
    c.set_restart_downtime(Duration::from_secs(2));
    add_shop(&c);
    c.add(lb_service(
        "kube-system",
        "dns1",
        json!({}),
        json!({}),
        &["192.0.2.53"],
    ));
    let mut ex = start_ready(&[&c], "");
    expect_shop(&ex);

    c.restart();
    // During the outage: the last good data, and still ready. A change made meanwhile cannot
    // have arrived yet.
    c.set(ingress("shop", "shop", "shop.example.com", "203.0.113.7"));
    check(
        &ex,
        &[
            ("shop.example.com.", Want::A(&["203.0.113.5"])),
            ("dns1.kube-system.example.com.", Want::A(&["192.0.2.53"])),
            ("missing.example.com.", Want::NxDomain),
        ],
    );
    assert_ready(&ex);
    assert!(!c.is_up(), "the checks above ran during the outage");

    assert!(c.wait_up(WAIT));
    // After the restart: the change made during the outage, and a new object created after it,
    // both arrive over the resumed watch, without restarting exdns.
    eventually_a(&ex, "shop.example.com.", &["203.0.113.7"]);
    c.add(ingress("shop", "blog", "blog.example.com", "203.0.113.9"));
    eventually_a(&ex, "blog.example.com.", &["203.0.113.9"]);
    assert!(ex.child.try_wait().unwrap().is_none(), "exdns exited");
    assert_eq!(ex.output().matches("exdns ready to serve").count(), 1);
}

// ---------------------------------------------------------------------------------------------
// 4. Dropped watches.

#[test]
fn dropped_watches_resume_without_a_relist() {
    let c = cluster();
    add_shop(&c);
    let ex = start_ready(&[&c], "");
    wait_ingress_watch(&ex, &c);
    let lists = c.list_requests("ingresses");
    let watches = c.watch_requests("ingresses");

    c.drop_watches();
    wait_until(&ex, "the Ingress watch to be opened again", || {
        c.watch_requests("ingresses") > watches && c.open_watches("ingresses") == 1
    });
    c.add(ingress("shop", "blog", "blog.example.com", "203.0.113.9"));
    eventually_a(&ex, "blog.example.com.", &["203.0.113.9"]);
    c.delete(NET, "v1", "ingresses", "shop", "shop");
    eventually_nxdomain(&ex, "shop.example.com.");
    // The watch resumed from its resourceVersion: no second list.
    assert_eq!(c.list_requests("ingresses"), lists);
}

// ---------------------------------------------------------------------------------------------
// 5. 410 Gone: re-list.

#[test]
fn restart_with_new_history_relists_and_drops_what_was_deleted_meanwhile() {
    let c = cluster();
    c.set_restart_downtime(Duration::from_millis(1000));
    add_shop(&c);
    c.add(ingress("shop", "old", "old.example.com", "203.0.113.6"));
    let ex = start_ready(&[&c], "");
    expect_a(&ex, "old.example.com.", &["203.0.113.6"]);
    let lists = c.list_requests("ingresses");

    c.restart_with_new_history();
    // While the watch is away: one object deleted, one created. The resumed watch's
    // resourceVersion is too old (410), so only a re-list can tell.
    c.delete(NET, "v1", "ingresses", "shop", "old");
    c.add(ingress("shop", "new", "new.example.com", "203.0.113.8"));
    expect_a(&ex, "old.example.com.", &["203.0.113.6"]);
    assert!(c.wait_up(WAIT));
    eventually_a(&ex, "new.example.com.", &["203.0.113.8"]);
    eventually_nxdomain(&ex, "old.example.com.");
    expect_shop(&ex);
    assert!(c.list_requests("ingresses") > lists, "no re-list");
    assert_ingress_watch_expired(&ex);
    // And the new watch follows later changes.
    c.delete(NET, "v1", "ingresses", "shop", "shop");
    eventually_nxdomain(&ex, "shop.example.com.");
}

#[test]
fn compaction_then_dropped_watch_relists() {
    let c = cluster();
    // No bookmark may carry the post-compaction resourceVersion to the client.
    c.set_bookmark_interval(Duration::from_secs(3600));
    add_shop(&c);
    let ex = start_ready(&[&c], "");
    wait_ingress_watch(&ex, &c);
    let lists = c.list_requests("ingresses");

    c.compact();
    c.drop_watches();
    wait_until(&ex, "a re-list after 410", || {
        c.list_requests("ingresses") > lists
    });
    assert_ingress_watch_expired(&ex);
    expect_shop(&ex);
    assert_ready(&ex);
    c.set(ingress("shop", "shop", "shop.example.com", "203.0.113.6"));
    eventually_a(&ex, "shop.example.com.", &["203.0.113.6"]);
}

// ---------------------------------------------------------------------------------------------
// 6. CRDs installed later.

#[test]
fn kinds_not_served_at_start_are_picked_up_when_installed() {
    // Only the built-in kinds: no Gateway API, no DNSEndpoint, no VirtualServer CRDs.
    let c = FakeApiServer::start_with_defaults();
    add_shop(&c);
    let ex = start_env(&[&c], "", &[("EXDNS_DISCOVERY_INTERVAL_MS", "200")]);
    wait_ready(&ex);
    expect_shop(&ex);
    expect_nxdomain(&ex, "ep.example.com.");
    expect_log_line(
        &ex,
        "[WARNING] plugin/k8s_gateway: DNSEndpoint API (externaldns.k8s.io) is not served; skipping it, will check again every 200ms",
    );
    let body = metrics(&ex);
    assert_eq!(kind_served(&body, "DNSEndpoint"), Some(0.0), "{body}");
    assert_eq!(kind_served(&body, "Ingress"), Some(1.0));

    // The DNSEndpoint CRD is installed and an object created.
    c.serve_dnsendpoints();
    c.add(dnsendpoint(
        "apps",
        "records",
        json!([{"dnsName": "ep.example.com", "recordType": "A", "targets": ["192.0.2.77"]}]),
    ));
    eventually_a(&ex, "ep.example.com.", &["192.0.2.77"]);
    expect_log_line(
        &ex,
        "[INFO] plugin/k8s_gateway: DNSEndpoint API (externaldns.k8s.io/v1alpha1) is now served; watching it",
    );

    // The Gateway API CRDs too: a Gateway and a route.
    c.serve_gateway_api();
    c.add(gateway("gateway-system", "public", &["192.0.2.10"]));
    c.add(httproute(
        "apps",
        "web",
        &["web.example.com"],
        ("gateway-system", "public"),
    ));
    eventually_a(&ex, "web.example.com.", &["192.0.2.10"]);
    // Ready throughout, the other kinds unaffected.
    assert_ready(&ex);
    expect_shop(&ex);
    let body = metrics(&ex);
    assert_eq!(kind_served(&body, "DNSEndpoint"), Some(1.0), "{body}");
}

// ---------------------------------------------------------------------------------------------
// 7. A forbidden kind.

#[test]
fn forbidden_kind_does_not_block_the_others() {
    let c = cluster();
    c.forbid("virtualservers");
    add_shop(&c);
    c.add(virtualserver(
        "apps",
        "cafe",
        "cafe.example.com",
        "192.0.2.90",
    ));
    let ex = start_ready(&[&c], "");
    expect_shop(&ex);
    // Not readable: as if it did not exist.
    expect_nxdomain(&ex, "cafe.example.com.");
    let series =
        "exdns_k8s_gateway_watch_errors_total{kind=\"VirtualServer\",reason=\"forbidden\"}";
    // Counted on every attempt: wait for the retry (backoff 0.8 s) to be refused too.
    wait_until(&ex, "two forbidden attempts", || {
        sample(&metrics(&ex), series).is_some_and(|v| v >= 2.0)
    });
    expect_log_line(
        &ex,
        "[ERROR] plugin/k8s_gateway: forbidden to list/watch virtualservers: virtualservers.k8s.nginx.org is forbidden: User \"system:serviceaccount:default:exdns\" cannot list resource \"virtualservers\" in API group \"k8s.nginx.org\" at the cluster scope",
    );
    // Other kinds keep following the cluster.
    c.add(ingress("shop", "blog", "blog.example.com", "203.0.113.9"));
    eventually_a(&ex, "blog.example.com.", &["203.0.113.9"]);
    assert_ready(&ex);
    // Logged once, however often it is retried.
    let logged: Vec<String> = ex
        .output()
        .lines()
        .filter(|l| l.contains("virtualservers") && l.contains("forbidden"))
        .map(str::to_string)
        .collect();
    assert_eq!(logged.len(), 1, "logged once: {logged:#?}");

    // RBAC fixed: the VirtualServer appears.
    c.allow("virtualservers");
    eventually_a(&ex, "cafe.example.com.", &["192.0.2.90"]);
    assert_ready(&ex);
}

// ---------------------------------------------------------------------------------------------
// 8. Several clusters.

#[test]
fn two_clusters_are_merged() {
    let a = cluster();
    let b = cluster();
    for (cl, name, host, ip) in [
        (&a, "shop", "a.example.com", "203.0.113.1"),
        (&b, "blog", "b.example.com", "203.0.113.2"),
        // The same namespace/name in both clusters, for the same host: both addresses.
        (&a, "both", "both.example.com", "198.51.100.1"),
        (&b, "both", "both.example.com", "198.51.100.2"),
    ] {
        cl.add(ingress("shop", name, host, ip));
    }
    // A route in B whose Gateway is in B; a Gateway of the same name in A has another
    // address and must not be joined.
    a.add(gateway("gateway-system", "public", &["192.0.2.1"]));
    b.add(gateway("gateway-system", "public", &["192.0.2.2"]));
    b.add(httproute(
        "apps",
        "web",
        &["web.example.com"],
        ("gateway-system", "public"),
    ));
    let ex = start_ready(&[&a, &b], "");
    check(
        &ex,
        &[
            ("a.example.com.", Want::A(&["203.0.113.1"])),
            ("b.example.com.", Want::A(&["203.0.113.2"])),
            (
                "both.example.com.",
                Want::A(&["198.51.100.1", "198.51.100.2"]),
            ),
            ("web.example.com.", Want::A(&["192.0.2.2"])),
        ],
    );

    // Deleted in B: gone; A's objects stay.
    b.delete(NET, "v1", "ingresses", "shop", "blog");
    eventually_nxdomain(&ex, "b.example.com.");
    b.delete(NET, "v1", "ingresses", "shop", "both");
    eventually_a(&ex, "both.example.com.", &["198.51.100.1"]);
    expect_a(&ex, "a.example.com.", &["203.0.113.1"]);
    // Created in A: appears.
    a.add(ingress("shop", "new", "new.example.com", "203.0.113.3"));
    eventually_a(&ex, "new.example.com.", &["203.0.113.3"]);
    // One cluster down: the other's changes still arrive, the down one's data stays.
    a.set_restart_downtime(Duration::from_millis(1000));
    a.restart();
    b.add(ingress("shop", "late", "late.example.com", "203.0.113.4"));
    eventually_a(&ex, "late.example.com.", &["203.0.113.4"]);
    expect_a(&ex, "a.example.com.", &["203.0.113.1"]);
    assert_ready(&ex);
}

// ---------------------------------------------------------------------------------------------
// 9. serviceLabelSelectors.

#[test]
fn service_label_selectors_filter_services() {
    let c = cluster();
    let svc = |name: &str, labels: Value, ip: &str| {
        lb_service(
            "apps",
            name,
            json!({"coredns.io/hostname": format!("{name}.example.com")}),
            labels,
            &[ip],
        )
    };
    for (name, labels, ip) in [
        ("web", json!({"app": "web"}), "192.0.2.1"),
        ("edge", json!({"app": "proxy", "tier": "edge"}), "192.0.2.2"),
        ("db", json!({"app": "db"}), "192.0.2.3"),
        ("bare", json!({}), "192.0.2.4"),
    ] {
        c.add(svc(name, labels, ip));
    }
    let ex = start(
        &[&c],
        "    serviceLabelSelectors \"app=web\" \"tier in (edge,core)\"\n",
    );
    wait_ready(&ex);
    check(
        &ex,
        &[
            ("web.example.com.", Want::A(&["192.0.2.1"])),
            ("edge.example.com.", Want::A(&["192.0.2.2"])),
            ("db.example.com.", Want::NxDomain),
            ("bare.example.com.", Want::NxDomain),
        ],
    );
    // One server-side watch per selector.
    let log = c.request_log();
    for sel in [
        "labelSelector=app%3Dweb",
        "labelSelector=tier+in+%28edge%2Ccore%29",
    ] {
        assert!(
            log.iter()
                .any(|l| l.starts_with("GET /api/v1/services?") && l.contains(sel)),
            "no request with {sel}: {log:#?}"
        );
    }

    // Labels change: db starts matching, web stops.
    c.set(svc("db", json!({"app": "web"}), "192.0.2.3"));
    eventually_a(&ex, "db.example.com.", &["192.0.2.3"]);
    c.set(svc("web", json!({"app": "other"}), "192.0.2.1"));
    eventually_nxdomain(&ex, "web.example.com.");
    // Matching both selectors: indexed once, gone only when neither matches.
    c.set(svc(
        "edge",
        json!({"app": "web", "tier": "edge"}),
        "192.0.2.8",
    ));
    eventually_a(&ex, "edge.example.com.", &["192.0.2.8"]);
    c.set(svc(
        "edge",
        json!({"app": "proxy", "tier": "edge"}),
        "192.0.2.8",
    ));
    // The app=web watch reports edge as deleted, then (same watch, in order) a marker.
    c.add(svc("marker", json!({"app": "web"}), "192.0.2.9"));
    eventually_a(&ex, "marker.example.com.", &["192.0.2.9"]);
    expect_a(&ex, "edge.example.com.", &["192.0.2.8"]);
    c.set(svc(
        "edge",
        json!({"app": "proxy", "tier": "backend"}),
        "192.0.2.8",
    ));
    eventually_nxdomain(&ex, "edge.example.com.");
    // A new matching Service appears; a new non-matching one does not.
    c.add(svc("late", json!({"tier": "core"}), "192.0.2.6"));
    c.add(svc("other", json!({"app": "x"}), "192.0.2.7"));
    eventually_a(&ex, "late.example.com.", &["192.0.2.6"]);
    expect_nxdomain(&ex, "other.example.com.");
}

// ---------------------------------------------------------------------------------------------
// 10. ExternalDNS annotations (hostname, ttl, target) and ExternalName Services.

/// Every answer record as `owner ttl TYPE data` (sorted unless the answer starts with a CNAME,
/// whose chase keeps its order).
fn records(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect();
    if !v.first().is_some_and(|r| r.contains(" CNAME ")) {
        v.sort();
    }
    v
}

/// The whole answer to `name`/`qtype`: NOERROR, AA, exactly `want` (`owner ttl TYPE data`).
#[track_caller]
fn expect_records(ex: &Exdns, name: &str, qtype: RecordType, want: &[&str]) {
    let m = ask(ex, name, qtype);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert!(m.metadata.authoritative, "AA: {m:?}");
    assert!(m.authorities.is_empty(), "authority: {m:?}");
    assert_eq!(records(&m), want, "{name} {qtype}");
}

/// Polls until `name`/`qtype` answers exactly `want`, then checks the whole answer.
fn eventually_records(ex: &Exdns, name: &str, qtype: RecordType, want: &[&str]) {
    wait_until(ex, &format!("{name} {qtype} = {want:?}"), || {
        records(&ask(ex, name, qtype)) == want
    });
    expect_records(ex, name, qtype, want);
}

/// A Service of any type with these annotations and spec (status: one load balancer address).
fn service(ns: &str, name: &str, annotations: Value, spec: Value) -> Obj {
    obj(
        "",
        "v1",
        "services",
        json!({
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": spec,
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.99"}]}},
        }),
    )
}

fn with_annotations(mut o: Obj, annotations: Value) -> Obj {
    o.body["metadata"]["annotations"] = annotations;
    o
}

#[test]
fn externaldns_annotations_follow_the_cluster_on_every_kind() {
    let c = cluster();
    // Present before exdns starts.
    c.add(with_annotations(
        ingress("web", "blog", "blog.example.com", "203.0.113.30"),
        json!({"external-dns.kubernetes.io/hostname": "news.example.com",
               "external-dns.kubernetes.io/ttl": "2m"}),
    ));
    let ex = start_ready(&[&c], "");
    check(
        &ex,
        &[
            ("news.example.com.", Want::NoData(RecordType::AAAA)),
            ("other.example.com.", Want::NxDomain),
        ],
    );
    // Both names of the Ingress, with its TTL (the fast path's A and the full path's NODATA
    // above agree on the name).
    for name in ["blog.example.com.", "news.example.com."] {
        expect_records(
            &ex,
            name,
            RecordType::A,
            &[&format!("{name} 120 A 203.0.113.30")],
        );
    }

    // A Service named by the alpha prefix, its TTL from the alpha prefix too, pointed at a
    // hostname: a CNAME.
    c.add(service(
        "apps",
        "api",
        json!({"external-dns.alpha.kubernetes.io/hostname": "api.example.com",
               "external-dns.alpha.kubernetes.io/ttl": "30",
               "external-dns.kubernetes.io/target": "api-lb.example.net"}),
        json!({"type": "LoadBalancer"}),
    ));
    eventually_records(
        &ex,
        "api.example.com.",
        RecordType::A,
        &["api.example.com. 30 CNAME api-lb.example.net."],
    );
    // A Gateway whose target annotation gives the addresses, and a route named only by its
    // annotation, with its own TTL.
    c.add(with_annotations(
        gateway("gateway-system", "public", &["192.0.2.10"]),
        json!({"external-dns.kubernetes.io/target": "198.51.100.70,2001:db8::70"}),
    ));
    c.add(with_annotations(
        httproute("apps", "promo", &[], ("gateway-system", "public")),
        json!({"external-dns.kubernetes.io/hostname": "promo.example.com",
               "external-dns.kubernetes.io/ttl": "1h"}),
    ));
    eventually_records(
        &ex,
        "promo.example.com.",
        RecordType::A,
        &["promo.example.com. 3600 A 198.51.100.70"],
    );
    expect_records(
        &ex,
        "promo.example.com.",
        RecordType::AAAA,
        &["promo.example.com. 3600 AAAA 2001:db8::70"],
    );
    // A VirtualServer with an extra name and a TTL.
    c.add(with_annotations(
        virtualserver("cafe", "cafe", "cafe.example.com", "203.0.113.60"),
        json!({"external-dns.kubernetes.io/hostname": "coffee.example.com",
               "external-dns.kubernetes.io/ttl": "45s"}),
    ));
    eventually_records(
        &ex,
        "coffee.example.com.",
        RecordType::A,
        &["coffee.example.com. 45 A 203.0.113.60"],
    );
    expect_records(
        &ex,
        "cafe.example.com.",
        RecordType::A,
        &["cafe.example.com. 45 A 203.0.113.60"],
    );

    // Changes: the Ingress's TTL becomes invalid (ignored with a warning: the directive's
    // ttl), the Service's target goes (its load balancer address answers), the Gateway's
    // target goes (its status addresses answer), the route's TTL changes.
    c.set(with_annotations(
        ingress("web", "blog", "blog.example.com", "203.0.113.30"),
        json!({"external-dns.kubernetes.io/hostname": "news.example.com",
               "external-dns.kubernetes.io/ttl": "1d"}),
    ));
    eventually_records(
        &ex,
        "news.example.com.",
        RecordType::A,
        &["news.example.com. 60 A 203.0.113.30"],
    );
    expect_a(&ex, "blog.example.com.", &["203.0.113.30"]);
    expect_log_line(&ex, "annotation external-dns.kubernetes.io/ttl");
    c.set(service(
        "apps",
        "api",
        json!({"external-dns.alpha.kubernetes.io/hostname": "api.example.com",
               "external-dns.alpha.kubernetes.io/ttl": "30"}),
        json!({"type": "LoadBalancer"}),
    ));
    eventually_records(
        &ex,
        "api.example.com.",
        RecordType::A,
        &["api.example.com. 30 A 203.0.113.99"],
    );
    c.set(gateway("gateway-system", "public", &["192.0.2.10"]));
    eventually_records(
        &ex,
        "promo.example.com.",
        RecordType::A,
        &["promo.example.com. 3600 A 192.0.2.10"],
    );
    expect_nodata(&ex, "promo.example.com.", RecordType::AAAA);
    c.set(with_annotations(
        httproute("apps", "promo", &[], ("gateway-system", "public")),
        json!({"external-dns.kubernetes.io/hostname": "promo.example.com",
               "external-dns.kubernetes.io/ttl": "0"}),
    ));
    eventually_records(
        &ex,
        "promo.example.com.",
        RecordType::A,
        &["promo.example.com. 0 A 192.0.2.10"],
    );

    // Deletes take every name with them.
    c.delete(NET, "v1", "ingresses", "web", "blog");
    eventually_nxdomain(&ex, "news.example.com.");
    expect_nxdomain(&ex, "blog.example.com.");
    c.delete(GW, "v1", "httproutes", "apps", "promo");
    eventually_nxdomain(&ex, "promo.example.com.");
    c.delete(NGINX, "v1", "virtualservers", "cafe", "cafe");
    eventually_nxdomain(&ex, "coffee.example.com.");
}

#[test]
fn external_name_services_follow_the_cluster() {
    let c = cluster();
    c.add(ingress("web", "blog", "blog.example.com", "203.0.113.30"));
    c.add(service(
        "data",
        "postgres",
        json!({}),
        json!({"type": "ExternalName", "externalName": "db.prod.example.net"}),
    ));
    let ex = start_ready(&[&c], "");
    // name.namespace.<zone>: a CNAME for every type.
    for qtype in [
        RecordType::A,
        RecordType::AAAA,
        RecordType::CNAME,
        RecordType::TXT,
    ] {
        expect_records(
            &ex,
            "postgres.data.example.com.",
            qtype,
            &["postgres.data.example.com. 60 CNAME db.prod.example.net."],
        );
    }
    check(&ex, &[("data.example.com.", Want::NoData(RecordType::A))]);

    // An annotated one with its own TTL, pointing into our zone: the chase follows.
    c.add(service(
        "web",
        "mirror",
        json!({"external-dns.kubernetes.io/hostname": "mirror.example.com,docs.example.com",
               "external-dns.kubernetes.io/ttl": "30"}),
        json!({"type": "ExternalName", "externalName": "blog.example.com"}),
    ));
    eventually_records(
        &ex,
        "mirror.example.com.",
        RecordType::A,
        &[
            "mirror.example.com. 30 CNAME blog.example.com.",
            "blog.example.com. 60 A 203.0.113.30",
        ],
    );
    expect_records(
        &ex,
        "docs.example.com.",
        RecordType::CNAME,
        &["docs.example.com. 30 CNAME blog.example.com."],
    );
    // Annotated: not also known as name.namespace.
    expect_nxdomain(&ex, "mirror.web.example.com.");

    // The externalName changes; then an IP there answers as an address (as ExternalDNS).
    c.set(service(
        "data",
        "postgres",
        json!({}),
        json!({"type": "ExternalName", "externalName": "db.dr.example.net"}),
    ));
    eventually_records(
        &ex,
        "postgres.data.example.com.",
        RecordType::A,
        &["postgres.data.example.com. 60 CNAME db.dr.example.net."],
    );
    c.set(service(
        "data",
        "postgres",
        json!({}),
        json!({"type": "ExternalName", "externalName": "198.51.100.80"}),
    ));
    eventually_a(&ex, "postgres.data.example.com.", &["198.51.100.80"]);
    // Becoming a ClusterIP Service (not answered) removes it; deleting the other too.
    c.set(service(
        "data",
        "postgres",
        json!({}),
        json!({"type": "ClusterIP", "clusterIP": "10.96.0.9"}),
    ));
    eventually_nxdomain(&ex, "postgres.data.example.com.");
    c.delete("", "v1", "services", "web", "mirror");
    eventually_nxdomain(&ex, "mirror.example.com.");
    expect_a(&ex, "blog.example.com.", &["203.0.113.30"]);
}

fn l4route(
    plural: &'static str,
    kind: &str,
    ns: &str,
    name: &str,
    host: &str,
    parent: (&str, &str),
) -> Obj {
    obj(
        GW,
        "v1alpha2",
        plural,
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1alpha2",
            "kind": kind,
            "metadata": {"name": name, "namespace": ns,
                         "annotations": {"external-dns.alpha.kubernetes.io/hostname": host}},
            "spec": {
                "parentRefs": [{"name": parent.1, "namespace": parent.0, "sectionName": "l4"}],
                "rules": [{"backendRefs": [{"name": name, "port": 5432}]}],
            },
        }),
    )
}

/// TCPRoute and UDPRoute (v1alpha2): named by their ExternalDNS hostname annotation, with their
/// parent Gateway's addresses; the kinds are watched once their CRDs are served.
#[test]
fn tcp_and_udp_routes_answer_with_their_gateways_addresses() {
    let c = cluster();
    c.serve_resource(GW, "v1alpha2", "tcproutes", "TCPRoute", true);
    c.serve_resource(GW, "v1alpha2", "udproutes", "UDPRoute", true);
    c.add(gateway("infra", "l4", &["192.0.2.70", "2001:db8::70"]));
    c.add(l4route(
        "tcproutes",
        "TCPRoute",
        "db",
        "pg",
        "pg.example.com",
        ("infra", "l4"),
    ));
    let ex = start_ready(&[&c], "");
    expect_a(&ex, "pg.example.com.", &["192.0.2.70"]);
    expect_addrs(&ex, "pg.example.com.", RecordType::AAAA, &["2001:db8::70"]);
    c.add(l4route(
        "udproutes",
        "UDPRoute",
        "dns",
        "syslog",
        "syslog.example.com",
        ("infra", "l4"),
    ));
    eventually_a(&ex, "syslog.example.com.", &["192.0.2.70"]);
    c.delete(GW, "v1alpha2", "tcproutes", "db", "pg");
    eventually_nxdomain(&ex, "pg.example.com.");
}

fn listener_gateway(ns: &str, name: &str, ip: &str, hostname: &str) -> Obj {
    obj(
        GW,
        "v1",
        "gateways",
        json!({
            "metadata": meta(ns, name),
            "spec": {"gatewayClassName": "public",
                     "listeners": [{"name": "web", "port": 443, "protocol": "HTTPS",
                                    "hostname": hostname},
                                   {"name": "db", "port": 5432, "protocol": "TCP"}]},
            "status": {"addresses": [{"type": "IPAddress", "value": ip}]},
        }),
    )
}

/// A route without hostnames answers for its Gateway's listener hostname, and follows it when
/// the Gateway's listeners change.
#[test]
fn routes_without_hostnames_follow_their_listeners_hostnames() {
    let c = cluster();
    c.add(listener_gateway(
        "infra",
        "gw",
        "192.0.2.90",
        "app.example.com",
    ));
    c.add(httproute("apps", "r", &[], ("infra", "gw")));
    let ex = start_ready(&[&c], "");
    expect_a(&ex, "app.example.com.", &["192.0.2.90"]);
    c.set(listener_gateway(
        "infra",
        "gw",
        "192.0.2.90",
        "*.apps.example.com",
    ));
    eventually_a(&ex, "x.apps.example.com.", &["192.0.2.90"]);
    eventually_nxdomain(&ex, "app.example.com.");
}

/// `hostnameAsCNAME`: a Service's load balancer hostname is answered as a CNAME; without the
/// option it would be resolved.
#[test]
fn hostname_as_cname_from_the_api_server() {
    let c = cluster();
    c.add(obj(
        "",
        "v1",
        "services",
        json!({
            "metadata": {"name": "web", "namespace": "apps",
                         "annotations": {"external-dns.alpha.kubernetes.io/hostname": "web.example.com"}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 443, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": [{"hostname": "web-lb.elb.example.net"}]}},
        }),
    ));
    let ex = start_ready(&[&c], "    hostnameAsCNAME\n");
    assert_eq!(
        records(&ask(&ex, "web.example.com.", RecordType::A)),
        ["web.example.com. 60 CNAME web-lb.elb.example.net."]
    );
}

/// Traefik IngressRoute: `Host(…)` names with the target annotation's data (ExternalDNS's
/// traefik-proxy source); watched once its CRD is served.
#[test]
fn traefik_ingressroutes_answer_their_target() {
    let c = cluster();
    c.serve_resource(
        "traefik.io",
        "v1alpha1",
        "ingressroutes",
        "IngressRoute",
        true,
    );
    c.add(obj(
        "traefik.io",
        "v1alpha1",
        "ingressroutes",
        json!({
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "IngressRoute",
            "metadata": {"name": "whoami", "namespace": "apps",
                         "annotations": {"external-dns.alpha.kubernetes.io/target": "192.0.2.95"}},
            "spec": {"entryPoints": ["websecure"],
                     "routes": [{"match": "Host(`whoami.example.com`) && PathPrefix(`/`)",
                                 "kind": "Rule", "services": [{"name": "whoami", "port": 80}]}]},
        }),
    ));
    let ex = start_ready(&[&c], "");
    expect_a(&ex, "whoami.example.com.", &["192.0.2.95"]);
}

const TRAEFIK: &str = "traefik.io";
const TRAEFIK_LEGACY: &str = "traefik.containo.us";

/// Serves Traefik's three kinds of `group`.
fn serve_traefik(c: &FakeApiServer, group: &str) {
    for (plural, kind) in [
        ("ingressroutes", "IngressRoute"),
        ("ingressroutetcps", "IngressRouteTCP"),
        ("ingressrouteudps", "IngressRouteUDP"),
    ] {
        c.serve_resource(group, "v1alpha1", plural, kind, true);
    }
}

/// A Traefik object of `group`: `kind` (IngressRoute, IngressRouteTCP, IngressRouteUDP) with
/// `annotations` and one route per rule.
fn traefik(
    group: &'static str,
    kind: &str,
    ns: &str,
    name: &str,
    annotations: Value,
    rules: &[&str],
) -> Obj {
    let plural = match kind {
        "IngressRoute" => "ingressroutes",
        "IngressRouteTCP" => "ingressroutetcps",
        _ => "ingressrouteudps",
    };
    let routes: Vec<Value> = rules
        .iter()
        .map(|r| json!({"match": r, "services": [{"name": name, "port": 5432}]}))
        .collect();
    obj(
        group,
        "v1alpha1",
        plural,
        json!({
            "apiVersion": format!("{group}/v1alpha1"),
            "kind": kind,
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": {"entryPoints": ["edge"], "routes": routes},
        }),
    )
}

fn target(ip: &str) -> Value {
    json!({"external-dns.alpha.kubernetes.io/target": ip})
}

/// IngressRouteTCP names come from `HostSNI(…)` rules (several hosts, `||`, `*` skipped, only
/// backquoted values, as ExternalDNS's expressions); IngressRouteUDP names only from the
/// hostname annotation. Only the legacy traefik.containo.us group is served: it is read, the
/// missing traefik.io CRDs are skipped (and reported), and deletes remove the answers.
#[test]
fn traefik_tcp_and_udp_routes_of_the_legacy_group() {
    let c = cluster();
    serve_traefik(&c, TRAEFIK_LEGACY);
    c.add(traefik(
        TRAEFIK_LEGACY,
        "IngressRouteTCP",
        "data",
        "pg",
        target("192.0.2.101"),
        &[
            "HostSNI(`pg.example.com`, `pg-ro.example.com`) || HostSNI( `pg2.example.com` )",
            "HostSNI(`*`)",
            "HostSNI(\"quoted.example.com\")",
        ],
    ));
    let mut udp_ann = target("192.0.2.102");
    udp_ann["external-dns.alpha.kubernetes.io/hostname"] = json!("dns.example.com,ntp.example.com");
    c.add(traefik(
        TRAEFIK_LEGACY,
        "IngressRouteUDP",
        "infra",
        "dns",
        udp_ann,
        &["HostSNI(`ignored.example.com`)"],
    ));
    c.add(traefik(
        TRAEFIK_LEGACY,
        "IngressRoute",
        "web",
        "old",
        target("192.0.2.103"),
        &["Host(`old.example.com`)"],
    ));
    let ex = start_ready(&[&c], "");
    check(
        &ex,
        &[
            ("pg.example.com.", Want::A(&["192.0.2.101"])),
            ("pg-ro.example.com.", Want::A(&["192.0.2.101"])),
            ("pg2.example.com.", Want::A(&["192.0.2.101"])),
            ("quoted.example.com.", Want::NxDomain),
            ("dns.example.com.", Want::A(&["192.0.2.102"])),
            ("ntp.example.com.", Want::A(&["192.0.2.102"])),
            ("dns.example.com.", Want::NoData(RecordType::AAAA)),
            ("ignored.example.com.", Want::NxDomain),
            ("old.example.com.", Want::A(&["192.0.2.103"])),
        ],
    );
    let body = metrics(&ex);
    for kind in ["IngressRoute", "IngressRouteTCP", "IngressRouteUDP"] {
        assert_eq!(kind_served(&body, kind), Some(0.0), "{kind}: {body}");
        let legacy = format!("{kind}.traefik.containo.us");
        assert_eq!(kind_served(&body, &legacy), Some(1.0), "{legacy}: {body}");
    }
    expect_log_line(
        &ex,
        "[WARNING] plugin/k8s_gateway: IngressRouteTCP API (traefik.io) is not served; skipping it",
    );

    c.delete(TRAEFIK_LEGACY, "v1alpha1", "ingressroutetcps", "data", "pg");
    eventually_nxdomain(&ex, "pg.example.com.");
    expect_nxdomain(&ex, "pg2.example.com.");
    c.delete(
        TRAEFIK_LEGACY,
        "v1alpha1",
        "ingressrouteudps",
        "infra",
        "dns",
    );
    eventually_nxdomain(&ex, "dns.example.com.");
    expect_a(&ex, "old.example.com.", &["192.0.2.103"]);
}

/// Both groups served: an object present in both under one namespace/name answers once (the
/// records of both groups are merged, as ExternalDNS merges their endpoints: the same target
/// twice is one address, different targets are both answered); deleting one copy keeps the
/// other's answer.
#[test]
fn traefik_objects_in_both_groups_are_merged() {
    let c = cluster();
    serve_traefik(&c, TRAEFIK);
    serve_traefik(&c, TRAEFIK_LEGACY);
    for group in [TRAEFIK, TRAEFIK_LEGACY] {
        c.add(traefik(
            group,
            "IngressRouteTCP",
            "data",
            "pg",
            target("192.0.2.111"),
            &["HostSNI(`pg.example.com`)"],
        ));
    }
    let mut a = target("192.0.2.112");
    a["external-dns.alpha.kubernetes.io/hostname"] = json!("syslog.example.com");
    c.add(traefik(
        TRAEFIK,
        "IngressRouteUDP",
        "infra",
        "syslog",
        a,
        &[],
    ));
    let mut b = target("192.0.2.113");
    b["external-dns.alpha.kubernetes.io/hostname"] = json!("syslog.example.com");
    c.add(traefik(
        TRAEFIK_LEGACY,
        "IngressRouteUDP",
        "infra",
        "syslog",
        b,
        &[],
    ));
    let ex = start_ready(&[&c], "");
    expect_a(&ex, "pg.example.com.", &["192.0.2.111"]);
    expect_a(&ex, "syslog.example.com.", &["192.0.2.112", "192.0.2.113"]);
    let body = metrics(&ex);
    assert_eq!(kind_served(&body, "IngressRouteTCP"), Some(1.0), "{body}");
    assert_eq!(
        kind_served(&body, "IngressRouteTCP.traefik.containo.us"),
        Some(1.0),
        "{body}"
    );

    // One copy goes: the other still answers, alone.
    c.delete(TRAEFIK, "v1alpha1", "ingressroutetcps", "data", "pg");
    c.delete(
        TRAEFIK_LEGACY,
        "v1alpha1",
        "ingressrouteudps",
        "infra",
        "syslog",
    );
    eventually_a(&ex, "syslog.example.com.", &["192.0.2.112"]);
    expect_a(&ex, "pg.example.com.", &["192.0.2.111"]);
    // The legacy copy changes, then goes too.
    c.set(traefik(
        TRAEFIK_LEGACY,
        "IngressRouteTCP",
        "data",
        "pg",
        target("192.0.2.114"),
        &["HostSNI(`pg.example.com`)"],
    ));
    eventually_a(&ex, "pg.example.com.", &["192.0.2.114"]);
    c.delete(TRAEFIK_LEGACY, "v1alpha1", "ingressroutetcps", "data", "pg");
    eventually_nxdomain(&ex, "pg.example.com.");
    expect_a(&ex, "syslog.example.com.", &["192.0.2.112"]);
}

// ---------------------------------------------------------------------------------------------
// Istio Gateway and VirtualService (ExternalDNS's istio-gateway / istio-virtualservice sources).

const ISTIO: &str = "networking.istio.io";

/// An Istio Gateway with `spec.selector` and one server with `hosts`.
fn istio_gateway(ns: &str, name: &str, selector: Value, hosts: &[&str]) -> Obj {
    obj(
        ISTIO,
        "v1beta1",
        "gateways",
        json!({
            "metadata": meta(ns, name),
            "spec": {"selector": selector,
                     "servers": [{"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                                  "hosts": hosts, "tls": {"mode": "SIMPLE", "credentialName": name}}]},
        }),
    )
}

fn istio_virtualservice(ns: &str, name: &str, hosts: &[&str], gateways: &[&str]) -> Obj {
    obj(
        ISTIO,
        "v1beta1",
        "virtualservices",
        json!({
            "metadata": meta(ns, name),
            "spec": {"hosts": hosts, "gateways": gateways,
                     "http": [{"route": [{"destination": {"host": name, "port": {"number": 80}}}]}]},
        }),
    )
}

/// The ingress gateway's Service: its selector is what Istio Gateways' selectors are matched
/// against (not its labels).
fn istio_ingress_service(ips: &[&str]) -> Obj {
    let ingress: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    obj(
        "",
        "v1",
        "services",
        json!({
            "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system",
                         "labels": {"app": "unrelated"}},
            "spec": {"type": "LoadBalancer",
                     "selector": {"istio": "ingressgateway", "app": "istio-ingressgateway"},
                     "ports": [{"port": 443, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": ingress}},
        }),
    )
}

/// Istio's CRDs installed after start (v1beta1 only: an Istio before 1.22); a VirtualService
/// bound to a Gateway answers with the addresses of the Service the Gateway's selector picks;
/// a host no server of the Gateway takes has no record; target annotations override; changes
/// and deletions of the Service, the Gateway and the VirtualService follow the cluster.
#[test]
fn istio_virtualservices_answer_their_gateways_service_addresses() {
    let c = cluster();
    add_shop(&c);
    c.add(istio_ingress_service(&["192.0.2.50"]));
    let ex = start_env(&[&c], "", &[("EXDNS_DISCOVERY_INTERVAL_MS", "200")]);
    wait_ready(&ex);
    expect_shop(&ex);
    expect_log_line(
        &ex,
        "[WARNING] plugin/k8s_gateway: IstioGateway API (networking.istio.io) is not served; skipping it, will check again every 200ms",
    );
    let body = metrics(&ex);
    assert_eq!(kind_served(&body, "IstioGateway"), Some(0.0), "{body}");
    assert_eq!(kind_served(&body, "IstioVirtualService"), Some(0.0));

    c.serve_istio("v1beta1");
    c.add(istio_gateway(
        "istio-system",
        "public",
        json!({"istio": "ingressgateway"}),
        &["apps/web.example.com", "*/gw.example.com"],
    ));
    c.add(istio_virtualservice(
        "apps",
        "web",
        &["web.example.com", "other.example.com"],
        &["istio-system/public", "mesh"],
    ));
    // Bound through the Gateway's selector to the Service's load balancer.
    eventually_a(&ex, "web.example.com.", &["192.0.2.50"]);
    expect_log_line(
        &ex,
        "[INFO] plugin/k8s_gateway: IstioVirtualService API (networking.istio.io/v1beta1) is now served; watching it",
    );
    check(
        &ex,
        &[
            // The Gateway's own server hosts answer too.
            ("gw.example.com.", Want::A(&["192.0.2.50"])),
            // No server of the Gateway takes this host: no record (ExternalDNS publishes none).
            ("other.example.com.", Want::NxDomain),
            ("web.example.com.", Want::NoData(RecordType::AAAA)),
        ],
    );

    // Target annotations: on a VirtualService it wins over its Gateways; on a Gateway it
    // replaces the Services' addresses.
    c.add(with_annotations(
        istio_virtualservice(
            "apps",
            "pinned",
            &["pinned.example.com"],
            &["istio-system/public"],
        ),
        json!({"external-dns.alpha.kubernetes.io/target": "198.51.100.8"}),
    ));
    c.add(with_annotations(
        istio_gateway(
            "apps",
            "annotated",
            json!({"istio": "ingressgateway"}),
            &["*"],
        ),
        json!({"external-dns.alpha.kubernetes.io/target": "203.0.113.77"}),
    ));
    c.add(istio_virtualservice(
        "apps",
        "ann",
        &["ann.example.com"],
        &["annotated"],
    ));
    eventually_a(&ex, "pinned.example.com.", &["198.51.100.8"]);
    eventually_a(&ex, "ann.example.com.", &["203.0.113.77"]);

    // The Service's load balancer changes: the Gateway and its VirtualServices follow.
    c.set(istio_ingress_service(&["192.0.2.51", "192.0.2.52"]));
    eventually_a(&ex, "web.example.com.", &["192.0.2.51", "192.0.2.52"]);
    expect_a(&ex, "gw.example.com.", &["192.0.2.51", "192.0.2.52"]);

    // The Gateway stops taking web.example.com.
    c.set(istio_gateway(
        "istio-system",
        "public",
        json!({"istio": "ingressgateway"}),
        &["*/gw.example.com"],
    ));
    eventually_nxdomain(&ex, "web.example.com.");
    expect_a(&ex, "gw.example.com.", &["192.0.2.51", "192.0.2.52"]);

    // Deleting the Service takes the Gateway's answers; deleting the annotated Gateway its
    // VirtualService's; the pinned VirtualService answers until it is deleted itself.
    c.delete("", "v1", "services", "istio-system", "istio-ingressgateway");
    eventually_nxdomain(&ex, "gw.example.com.");
    c.delete(ISTIO, "v1beta1", "gateways", "apps", "annotated");
    eventually_nxdomain(&ex, "ann.example.com.");
    expect_a(&ex, "pinned.example.com.", &["198.51.100.8"]);
    c.delete(ISTIO, "v1beta1", "virtualservices", "apps", "pinned");
    eventually_nxdomain(&ex, "pinned.example.com.");
    expect_shop(&ex);
    assert_ready(&ex);
}

/// `resources IstioVirtualService` alone: the Gateways and Services it joins are watched, but
/// only the VirtualService's names answer.
#[test]
fn istio_virtualservices_alone_still_join_gateways_and_services() {
    let c = cluster();
    c.serve_istio("v1");
    c.add(istio_ingress_service(&["192.0.2.60"]));
    let mut gw = istio_gateway(
        "istio-system",
        "public",
        json!({"istio": "ingressgateway"}),
        &["*.example.com"],
    );
    gw.version = "v1";
    c.add(gw);
    let mut vs = istio_virtualservice(
        "apps",
        "web",
        &["web.example.com"],
        &["istio-system/public"],
    );
    vs.version = "v1";
    c.add(vs);
    let ex = start_ready(&[&c], "    resources IstioVirtualService\n");
    check(
        &ex,
        &[
            ("web.example.com.", Want::A(&["192.0.2.60"])),
            // Neither the Gateway's wildcard nor the Service's own name is answered.
            ("gw.example.com.", Want::NxDomain),
            (
                "istio-ingressgateway.istio-system.example.com.",
                Want::NxDomain,
            ),
        ],
    );
}
