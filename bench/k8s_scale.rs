//! Benchmark, not a test: `k8s_gateway` at scale against the fake Kubernetes API server.
//!
//! For each size N (default 1k, 10k, 100k objects) it fills the fake API server with a mix of
//! objects — 80 % Ingresses, 10 % LoadBalancer Services (`coredns.io/hostname`), 10 % HTTPRoutes
//! attached to one of 4 Gateways — one DNS name each, starts exdns (`k8s_gateway { kubeconfig }`,
//! `ready`, `prometheus`) and measures:
//! - start → ready: process spawn until `/ready` answers 200 (every kind listed, index built);
//! - RSS (`VmRSS`) after ready, after a query burst, after the churn, and the peak (`VmHWM`);
//! - event → answer: the time from an API write (an Ingress's or Service's load-balancer address
//!   changed) until exdns answers the new address, found by querying that name about every
//!   millisecond; once for isolated updates (one at a time) and under churn (RATE updates/s for
//!   CHURN_SECS seconds). p50/p99/max, and updates never seen within 5 s.
//!
//! Then, for each size in K8S_SCALE_MANIFESTS (default 10k), the same objects from the manifests
//! source instead (`k8s_gateway { manifests DIR }`): one `kind: List` JSON file as
//! `kubectl get -o json` writes it, one multi-document YAML file, one `kind: List` YAML file as
//! `kubectl get -o yaml` writes it; start → ready and RSS.
//!
//! It writes a Markdown report to `bench/results/k8s_scale.md` and prints it. Targets
//! (issue 3: ≤ 50 MB RSS at 10k objects, p99 event → answer ≤ 100 ms; issue 14: ≤ 50 MB at
//! 10k objects from every source) are reported, never asserted.
//!
//! Run with a release binary (`make bench` does):
//! `cargo test --release --test k8s_scale -- --ignored --nocapture`.
//! Environment: `EXDNS_BIN` (binary to run; default the one cargo built), `K8S_SCALE_SIZES`
//! (`1000,10000,100000`), `K8S_SCALE_RATE` (updates/s, 100), `K8S_SCALE_CHURN_SECS` (10),
//! `K8S_SCALE_ISOLATED` (isolated updates, 20), `K8S_SCALE_MANIFESTS` (`10000`; empty: none),
//! `K8S_SCALE_OUT` (report path). An empty `K8S_SCALE_SIZES` skips the API-server runs.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use serde_json::{Value, json};

use support::fake_apiserver::FakeApiServer;
use support::{Exdns, http_get, query};

const ZONE: &str = "bench.test";
const GATEWAYS: usize = 4;
const NAMESPACES: usize = 50;
const GW_GROUP: &str = "gateway.networking.k8s.io";
/// An update not answered within this time counts as missed.
const UPDATE_DEADLINE: Duration = Duration::from_secs(5);
/// Pause between isolated updates: longer than the index builder's debounce.
const ISOLATED_GAP: Duration = Duration::from_millis(300);
const BURST_THREADS: usize = 4;
const BURST_QUERIES: usize = 25_000;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    match std::env::var(key) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{key}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

// -------------------------------------------------------------------------------------------
// The objects

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ingress,
    Service,
    Route,
}

fn kind_of(i: usize) -> Kind {
    match i % 10 {
        8 => Kind::Service,
        9 => Kind::Route,
        _ => Kind::Ingress,
    }
}

fn name_of(i: usize) -> String {
    match kind_of(i) {
        Kind::Ingress => format!("ing{i}.{ZONE}"),
        Kind::Service => format!("svc{i}.{ZONE}"),
        Kind::Route => format!("route{i}.{ZONE}"),
    }
}

/// 10.0.0.0/8, one per object.
fn initial_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(0x0A00_0000 + i as u32)
}

/// 172.16.0.0/12, one per update.
fn churn_ip(j: usize) -> Ipv4Addr {
    Ipv4Addr::from(0xAC10_0000 + (j as u32 % 0x0010_0000))
}

fn gateway_ip(g: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 10 + g as u8)
}

fn namespace(i: usize) -> String {
    format!("team{}", i % NAMESPACES)
}

/// (group, plural, object) of object `i` with load-balancer address `ip` (routes: their
/// Gateway's address).
fn object(i: usize, ip: Ipv4Addr) -> (&'static str, &'static str, Value) {
    let ns = namespace(i);
    let host = name_of(i);
    match kind_of(i) {
        Kind::Ingress => (
            "networking.k8s.io",
            "ingresses",
            json!({
                "metadata": {
                    "name": format!("ing{i}"),
                    "namespace": ns,
                    "labels": {"app.kubernetes.io/name": format!("web{i}"), "team": ns},
                    "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"},
                },
                "spec": {
                    "ingressClassName": "nginx",
                    "tls": [{"hosts": [host], "secretName": format!("ing{i}-tls")}],
                    "rules": [{"host": host, "http": {"paths": [{
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": format!("web{i}"), "port": {"number": 80}}},
                    }]}}],
                },
                "status": {"loadBalancer": {"ingress": [{"ip": ip.to_string()}]}},
            }),
        ),
        Kind::Service => (
            "",
            "services",
            json!({
                "metadata": {
                    "name": format!("svc{i}"),
                    "namespace": ns,
                    "labels": {"app.kubernetes.io/name": format!("svc{i}"), "team": ns},
                    "annotations": {"coredns.io/hostname": host},
                },
                "spec": {
                    "type": "LoadBalancer",
                    "selector": {"app.kubernetes.io/name": format!("svc{i}")},
                    "clusterIP": Ipv4Addr::from(0x0A60_0000 + i as u32).to_string(),
                    "ports": [{"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}],
                },
                "status": {"loadBalancer": {"ingress": [{"ip": ip.to_string()}]}},
            }),
        ),
        Kind::Route => (
            GW_GROUP,
            "httproutes",
            json!({
                "metadata": {
                    "name": format!("route{i}"),
                    "namespace": ns,
                    "labels": {"app.kubernetes.io/name": format!("web{i}"), "team": ns},
                },
                "spec": {
                    "parentRefs": [{"name": format!("gw{}", i / 10 % GATEWAYS), "namespace": "gateway-system"}],
                    "hostnames": [host],
                    "rules": [{
                        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                        "backendRefs": [{"name": format!("web{i}"), "port": 80}],
                    }],
                },
            }),
        ),
    }
}

fn gateway(g: usize) -> Value {
    json!({
        "metadata": {"name": format!("gw{g}"), "namespace": "gateway-system"},
        "spec": {
            "gatewayClassName": "public",
            "listeners": [{"name": "https", "port": 443, "protocol": "HTTPS"}],
        },
        "status": {"addresses": [{"type": "IPAddress", "value": gateway_ip(g).to_string()}]},
    })
}

fn fill(fake: &FakeApiServer, n: usize) {
    for g in 0..GATEWAYS {
        fake.create(GW_GROUP, "v1", "gateways", gateway(g));
    }
    for i in 0..n {
        let (group, plural, obj) = object(i, initial_ip(i));
        fake.create(group, "v1", plural, obj);
    }
}

/// The objects whose own address changes (Ingresses and Services), visited with a stride
/// coprime to their count: an object is updated again only after every other one was.
struct Targets {
    eligible: Vec<usize>,
    stride: usize,
}

impl Targets {
    fn new(n: usize) -> Targets {
        let eligible: Vec<usize> = (0..n).filter(|&i| kind_of(i) != Kind::Route).collect();
        let len = eligible.len().max(1);
        let mut stride = 7919 % len;
        while gcd(stride.max(1), len) != 1 {
            stride += 1;
        }
        Targets {
            eligible,
            stride: stride.max(1),
        }
    }

    fn get(&self, j: usize) -> usize {
        self.eligible[j * self.stride % self.eligible.len()]
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

// -------------------------------------------------------------------------------------------
// Measuring

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// `exdns_k8s_gateway_index_build_seconds` (sum, count).
fn build_metrics(addr: SocketAddr) -> (f64, f64) {
    let (_, _, body) = http_get(addr, "/metrics");
    let get = |name: &str| {
        body.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        get("exdns_k8s_gateway_index_build_seconds_sum"),
        get("exdns_k8s_gateway_index_build_seconds_count"),
    )
}

fn answer_has(m: &Message, ip: Ipv4Addr) -> bool {
    m.answers
        .iter()
        .any(|r| matches!(&r.data, RData::A(a) if a.0 == ip))
}

/// An update the poller watches for: `name` answering `ip`, written at `t0`.
struct Pending {
    j: usize,
    name: String,
    ip: Ipv4Addr,
    t0: Instant,
    /// When to query it next.
    next: Instant,
}

/// How long after a query a pending name is queried again: every millisecond during its first
/// 20 ms, then every 1/20 of its age, so each delay is measured to within about 5 % while
/// hundreds of slow updates pending at once do not flood the server under test.
fn poll_gap(age: Duration) -> Duration {
    (age / 20).max(Duration::from_millis(1))
}

/// Queries pending names (see [`poll_gap`]); reports (update, delay) when the new address is
/// answered, (update, None) after [`UPDATE_DEADLINE`]. Ends when `rx` closes and nothing is
/// pending.
fn poller(
    dns: SocketAddr,
    rx: mpsc::Receiver<Pending>,
    results: mpsc::Sender<(usize, Option<Duration>)>,
) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(dns).unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut pending: Vec<Pending> = Vec::new();
    let mut closed = false;
    let mut buf = vec![0u8; 4096];
    loop {
        loop {
            match rx.try_recv() {
                Ok(p) => pending.push(p),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if pending.is_empty() {
            if closed {
                return;
            }
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(p) => pending.push(p),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            continue;
        }
        let cycle = Instant::now();
        let mut sent = 0;
        for p in pending.iter_mut().filter(|p| p.next <= cycle) {
            let mut m = query(&p.name, RecordType::A, None);
            m.metadata.id = p.j as u16;
            let _ = sock.send(&m.to_vec().unwrap());
            p.next = cycle + poll_gap(cycle - p.t0);
            sent += 1;
        }
        // Read every reply there is (late ones of earlier rounds too); wait up to 5 ms for
        // this round's.
        let until = cycle + Duration::from_millis(5);
        let mut got = 0;
        loop {
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(_) if got >= sent || Instant::now() >= until => break,
                Err(_) => {
                    thread::sleep(Duration::from_micros(100));
                    continue;
                }
            };
            let now = Instant::now();
            got += 1;
            let Ok(m) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if let Some(pos) = pending
                .iter()
                .position(|p| p.j as u16 == m.metadata.id && answer_has(&m, p.ip))
            {
                let p = pending.swap_remove(pos);
                let _ = results.send((p.j, Some(now - p.t0)));
            }
        }
        pending.retain(|p| {
            if p.t0.elapsed() > UPDATE_DEADLINE {
                let _ = results.send((p.j, None));
                false
            } else {
                true
            }
        });
        let spent = cycle.elapsed();
        if spent < Duration::from_millis(1) {
            thread::sleep(Duration::from_millis(1) - spent);
        }
    }
}

/// Delays summary: p50, p99, max (ms), seen, missed.
#[derive(Default)]
struct Delays {
    ms: Vec<f64>,
    missed: usize,
}

impl Delays {
    fn add(&mut self, d: Option<Duration>) {
        match d {
            Some(d) => self.ms.push(d.as_secs_f64() * 1000.0),
            None => self.missed += 1,
        }
    }

    fn pct(&self, p: f64) -> f64 {
        if self.ms.is_empty() {
            return f64::NAN;
        }
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        // Nearest rank.
        let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }

    fn max(&self) -> f64 {
        self.ms.iter().copied().fold(f64::NAN, f64::max)
    }
}

/// Sends BURST_QUERIES queries from each of BURST_THREADS threads (one at a time per thread,
/// names of every kind); returns (queries answered, seconds).
fn burst(dns: SocketAddr, n: usize) -> (usize, f64) {
    let start = Instant::now();
    let handles: Vec<_> = (0..BURST_THREADS)
        .map(|t| {
            thread::spawn(move || {
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                sock.connect(dns).unwrap();
                sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                let mut buf = vec![0u8; 4096];
                let mut ok = 0;
                for q in 0..BURST_QUERIES {
                    let i = (q * 7919 + t * 104_729) % n;
                    let mut m = query(&name_of(i), RecordType::A, None);
                    m.metadata.id = q as u16;
                    sock.send(&m.to_vec().unwrap()).unwrap();
                    if sock.recv(&mut buf).is_ok() {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let ok = handles.into_iter().map(|h| h.join().unwrap()).sum();
    (ok, start.elapsed().as_secs_f64())
}

/// Waits until exdns (started at `spawned`, `ready 127.0.0.1:0`) answers `/ready` with 200 and
/// the last of `n` objects answers; returns the seconds since `spawned`.
fn wait_ready(ex: &Exdns, n: usize, spawned: Instant) -> f64 {
    let ready_addr = ex.http_addr("127.0.0.1:0");
    let deadline = spawned + Duration::from_secs(600);
    loop {
        if http_get(ready_addr, "/ready").0 == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "exdns not ready after 600 s; output:\n{}",
            ex.output()
        );
        thread::sleep(Duration::from_millis(5));
    }
    let ready_s = spawned.elapsed().as_secs_f64();
    // The last object must answer (ready means every kind loaded and the index built).
    let last = query(&name_of(n - 1), RecordType::A, None);
    let r = support::udp(ex.dns(), &last);
    assert!(
        !r.answers.is_empty(),
        "no answer for {} after ready: {r:?}",
        name_of(n - 1)
    );
    ready_s
}

struct Row {
    n: usize,
    ready_s: f64,
    rss_ready: u64,
    rss_burst: u64,
    rss_churn: u64,
    hwm: u64,
    burst_qps: f64,
    isolated: Delays,
    churn: Delays,
    churn_sent: usize,
    churn_secs: f64,
    builds: f64,
    build_ms: f64,
}

fn run_size(n: usize, rate: f64, churn_secs: f64, isolated: usize) -> Row {
    eprintln!("k8s_scale: N={n}: filling the fake API server");
    let fake = FakeApiServer::start_with_defaults();
    fake.serve_gateway_api();
    fake.set_history_limit(10_000);
    let t = Instant::now();
    fill(&fake, n);
    let fill_s = t.elapsed().as_secs_f64();

    let kdir = tempfile::tempdir().unwrap();
    let kubeconfig = kdir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig);
    let corefile = format!(
        "{ZONE}:0 {{\n  k8s_gateway {ZONE} {{\n    kubeconfig {}\n  }}\n  ready 127.0.0.1:0\n  prometheus 127.0.0.2:0\n}}\n",
        kubeconfig.display()
    );
    eprintln!(
        "k8s_scale: N={n}: filled in {fill_s:.1} s; starting exdns ({})",
        support::bin().display()
    );
    let spawned = Instant::now();
    let ex = Exdns::start_with(&corefile, &[], &[]);
    let metrics_addr = ex.http_addr("127.0.0.2:0");
    let ready_s = wait_ready(&ex, n, spawned);
    let pid = ex.child.id();
    let dns = ex.dns();
    thread::sleep(Duration::from_secs(1));
    let rss_ready = proc_status_kib(pid, "VmRSS:");

    let (ok, secs) = burst(dns, n);
    let burst_qps = ok as f64 / secs;
    let rss_burst = proc_status_kib(pid, "VmRSS:");

    let (tx, rx) = mpsc::channel::<Pending>();
    let (res_tx, res_rx) = mpsc::channel();
    let poll = thread::spawn(move || poller(dns, rx, res_tx));
    let targets = Targets::new(n);
    let mut j = 0usize;
    let update = |j: usize, tx: &mpsc::Sender<Pending>| {
        let i = targets.get(j);
        let ip = churn_ip(j);
        let (group, plural, obj) = object(i, ip);
        let t0 = Instant::now();
        fake.update(group, "v1", plural, obj);
        tx.send(Pending {
            j,
            name: name_of(i),
            ip,
            t0,
            next: t0,
        })
        .unwrap();
    };

    eprintln!("k8s_scale: N={n}: {isolated} isolated updates");
    let mut iso = Delays::default();
    for _ in 0..isolated {
        update(j, &tx);
        j += 1;
        let (_, d) = res_rx
            .recv_timeout(UPDATE_DEADLINE + Duration::from_secs(1))
            .expect("poller result");
        iso.add(d);
        thread::sleep(ISOLATED_GAP);
    }

    eprintln!("k8s_scale: N={n}: churn, {rate} updates/s for {churn_secs} s");
    let (sum0, count0) = build_metrics(metrics_addr);
    let total = (rate * churn_secs).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    for k in 0..total {
        let due = start + interval * k as u32;
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        update(j, &tx);
        j += 1;
    }
    let sent_secs = start.elapsed().as_secs_f64();
    drop(tx);
    poll.join().unwrap();
    let mut churn = Delays::default();
    for (_, d) in res_rx.try_iter() {
        churn.add(d);
    }
    let (sum1, count1) = build_metrics(metrics_addr);
    let builds = count1 - count0;
    let build_ms = if builds > 0.0 {
        (sum1 - sum0) / builds * 1000.0
    } else {
        f64::NAN
    };
    let rss_churn = proc_status_kib(pid, "VmRSS:");
    let hwm = proc_status_kib(pid, "VmHWM:");
    drop(ex);
    drop(fake);
    Row {
        n,
        ready_s,
        rss_ready,
        rss_burst,
        rss_churn,
        hwm,
        burst_qps,
        isolated: iso,
        churn,
        churn_sent: total,
        churn_secs: sent_secs,
        builds,
        build_ms,
    }
}

// -------------------------------------------------------------------------------------------
// The manifests source

/// How the manifests scenario writes its objects: one file either way.
#[derive(Clone, Copy)]
enum Format {
    /// A `kind: List` in JSON, keys in `kubectl get -o json` order (`items` before `kind`).
    ListJson,
    /// One YAML document per object.
    MultiYaml,
    /// A `kind: List` in YAML, as `kubectl get -o yaml` writes it (`items` before `kind`).
    ListYaml,
}

impl Format {
    const ALL: [Format; 3] = [Format::ListJson, Format::MultiYaml, Format::ListYaml];

    fn label(self) -> &'static str {
        match self {
            Format::ListJson => "`kind: List`, JSON",
            Format::MultiYaml => "multi-document YAML",
            Format::ListYaml => "`kind: List`, YAML",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Format::ListJson => "objects.json",
            Format::MultiYaml | Format::ListYaml => "objects.yaml",
        }
    }
}

/// The objects of a size-`n` run as manifests (with `apiVersion` and `kind`), Gateways first.
fn manifest_objects(n: usize) -> Vec<Value> {
    let typed = |mut v: Value, api: &str, kind: &str| {
        let o = v.as_object_mut().unwrap();
        o.insert("apiVersion".into(), api.into());
        o.insert("kind".into(), kind.into());
        v
    };
    let gw_api = format!("{GW_GROUP}/v1");
    let mut out: Vec<Value> = (0..GATEWAYS)
        .map(|g| typed(gateway(g), &gw_api, "Gateway"))
        .collect();
    for i in 0..n {
        let (group, _, obj) = object(i, initial_ip(i));
        let api = if group.is_empty() {
            "v1".to_string()
        } else {
            format!("{group}/v1")
        };
        let kind = match kind_of(i) {
            Kind::Ingress => "Ingress",
            Kind::Service => "Service",
            Kind::Route => "HTTPRoute",
        };
        out.push(typed(obj, &api, kind));
    }
    out
}

fn manifest_text(objects: Vec<Value>, format: Format) -> String {
    let list = |objects| {
        json!({
            "apiVersion": "v1",
            "items": objects,
            "kind": "List",
            "metadata": {"resourceVersion": ""},
        })
    };
    match format {
        Format::ListJson => serde_json::to_string_pretty(&list(objects)).unwrap(),
        Format::MultiYaml => objects
            .iter()
            .map(|o| serde_yaml::to_string(o).unwrap())
            .collect::<Vec<_>>()
            .join("---\n"),
        Format::ListYaml => serde_yaml::to_string(&list(objects)).unwrap(),
    }
}

struct ManifestsRow {
    n: usize,
    format: Format,
    bytes: usize,
    ready_s: f64,
    rss_ready: u64,
    hwm: u64,
}

/// Starts exdns on `k8s_gateway { manifests DIR }` with the size-`n` objects in one file of
/// `format`; measures start → ready and the RSS 1 s after.
fn run_manifests(n: usize, format: Format) -> ManifestsRow {
    let dir = tempfile::tempdir().unwrap();
    let text = manifest_text(manifest_objects(n), format);
    std::fs::write(dir.path().join(format.file()), &text).unwrap();
    let corefile = format!(
        "{ZONE}:0 {{\n  k8s_gateway {ZONE} {{\n    manifests {}\n  }}\n  ready 127.0.0.1:0\n}}\n",
        dir.path().display()
    );
    eprintln!(
        "k8s_scale: N={n}: manifests, {} ({:.1} MB)",
        format.label(),
        text.len() as f64 / 1e6
    );
    let spawned = Instant::now();
    let ex = Exdns::start_with(&corefile, &[], &[]);
    let ready_s = wait_ready(&ex, n, spawned);
    thread::sleep(Duration::from_secs(1));
    let pid = ex.child.id();
    ManifestsRow {
        n,
        format,
        bytes: text.len(),
        ready_s,
        rss_ready: proc_status_kib(pid, "VmRSS:"),
        hwm: proc_status_kib(pid, "VmHWM:"),
    }
}

// -------------------------------------------------------------------------------------------
// The report

fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(": ").nth(1))
        .unwrap_or("?")
        .to_string();
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    let load = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let date = support::run("date", &["-u", "+%F %H:%M UTC"]).1;
    format!(
        "Machine: {cores} cores ({model}), {:.0} GiB RAM, Linux {kernel}; {}; load average before the run: {load}.",
        mem_kib as f64 / 1_048_576.0,
        date.trim()
    )
}

fn f(v: f64, prec: usize) -> String {
    if v.is_nan() {
        "–".to_string()
    } else {
        format!("{v:.prec$}")
    }
}

fn report(
    rows: &[Row],
    manifests: &[ManifestsRow],
    rate: f64,
    churn_secs: f64,
    isolated: usize,
    machine: &str,
) -> String {
    let bin = support::bin();
    let profile = if bin.components().any(|c| c.as_os_str() == "release") {
        "release"
    } else {
        "**not a release build — numbers are not representative**"
    };
    let commit = support::run("git", &["rev-parse", "--short", "HEAD"]).1;
    let mut s = String::new();
    s.push_str("# k8s_gateway at scale (fake API server, manifests)\n\n");
    s.push_str(machine);
    s.push_str(
        "\nexdns, the fake API server and the load generator share the machine's cores.\n\n",
    );
    s.push_str(&format!(
        "exdns {} ({profile}): `k8s_gateway {ZONE} {{ kubeconfig … }}` + `ready` + `prometheus`, watching the\n\
         fake API server of tests/support (real HTTP list/watch, paged lists of 500). Objects: 80 % Ingresses,\n\
         10 % LoadBalancer Services (`coredns.io/hostname`), 10 % HTTPRoutes on {GATEWAYS} Gateways, one name\n\
         each, in {NAMESPACES} namespaces. Updates change an Ingress's or Service's load-balancer IP.\n\n",
        commit.trim()
    ));
    s.push_str("## Start-up and memory\n\n");
    s.push_str("| objects | start → ready (s) | RSS at ready (MB) | RSS after query burst (MB) | RSS after churn (MB) | peak RSS (MB) | burst qps |\n");
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.n,
            f(r.ready_s, 2),
            f(mb(r.rss_ready), 1),
            f(mb(r.rss_burst), 1),
            f(mb(r.rss_churn), 1),
            f(mb(r.hwm), 1),
            f(r.burst_qps, 0),
        ));
    }
    s.push_str(&format!(
        "\nstart → ready: from spawning the process until `/ready` answers 200 (every watched kind listed\n\
         page by page and the first index built). RSS: `VmRSS` 1 s after ready, after {} queries ({BURST_THREADS}\n\
         clients, one query at a time each), and after the churn; peak: `VmHWM`. MB = 10^6 bytes.\n\n",
        BURST_THREADS * BURST_QUERIES
    ));
    if !manifests.is_empty() {
        s.push_str("## Memory by source\n\n");
        s.push_str("| objects | source | file (MB) | start → ready (s) | RSS at ready (MB) | peak RSS (MB) |\n");
        s.push_str("|---:|---|---:|---:|---:|---:|\n");
        for m in manifests {
            if let Some(r) = rows.iter().find(|r| r.n == m.n)
                && matches!(m.format, Format::ListJson)
            {
                s.push_str(&format!(
                    "| {} | API server (above) | – | {} | {} | {} |\n",
                    r.n,
                    f(r.ready_s, 2),
                    f(mb(r.rss_ready), 1),
                    f(mb(r.hwm), 1),
                ));
            }
            s.push_str(&format!(
                "| {} | `manifests`, {} | {} | {} | {} | {} |\n",
                m.n,
                m.format.label(),
                f(m.bytes as f64 / 1e6, 1),
                f(m.ready_s, 2),
                f(mb(m.rss_ready), 1),
                f(mb(m.hwm), 1),
            ));
        }
        s.push_str(
            "\nThe same objects (plus the Gateways) in one file under `k8s_gateway { manifests DIR }` + `ready`:\n\
             a `kind: List` in JSON or YAML with its keys in `kubectl get -o json|yaml` order (`items` before\n\
             `kind`), or one YAML document per object. RSS: `VmRSS` 1 s after ready; peak: `VmHWM` (the load\n\
             included).\n\n",
        );
    }
    s.push_str("## Event → answer\n\n");
    s.push_str("| objects | isolated p50 (ms) | isolated p99 (ms) | churn p50 (ms) | churn p99 (ms) | churn max (ms) | churn updates seen / sent | index builds during churn | mean build (ms) |\n");
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} / {} | {} | {} |\n",
            r.n,
            f(r.isolated.pct(0.50), 1),
            f(r.isolated.pct(0.99), 1),
            f(r.churn.pct(0.50), 1),
            f(r.churn.pct(0.99), 1),
            f(r.churn.max(), 1),
            r.churn.ms.len(),
            r.churn_sent,
            f(r.builds, 0),
            f(r.build_ms, 1),
        ));
    }
    s.push_str(&format!(
        "\nDelay: from just before the API write until a query for that name first returns the new address\n\
         (each pending name is queried every millisecond for 20 ms, then every 1/20 of its age: ±5 %).\n\
         Isolated: {isolated} updates, one at a time, {} ms apart. Churn: {rate} updates/s for {churn_secs} s\n\
         (actual send time of the last run: {} s), a different object each time. An update not answered\n\
         within {} s counts as not seen.\n\
         Index builds: `exdns_k8s_gateway_index_build_seconds` count and mean during the churn.\n\n",
        ISOLATED_GAP.as_millis(),
        f(rows.last().map_or(f64::NAN, |r| r.churn_secs), 1),
        UPDATE_DEADLINE.as_secs(),
    ));
    s.push_str("## Targets (issues 3 and 14)\n\n");
    match rows.iter().find(|r| r.n == 10_000) {
        Some(r) => {
            let rss = mb(r.rss_ready.max(r.rss_burst).max(r.rss_churn));
            s.push_str(&format!(
                "- RSS ≤ 50 MB at 10k objects: **{}** (largest steady RSS {:.1} MB, peak {:.1} MB).\n",
                if rss <= 50.0 { "met" } else { "missed" },
                rss,
                mb(r.hwm)
            ));
        }
        None => s.push_str(
            "- RSS ≤ 50 MB at 10k objects: not measured (10000 not in K8S_SCALE_SIZES).\n",
        ),
    }
    let at_10k: Vec<String> = rows
        .iter()
        .filter(|r| r.n == 10_000)
        .map(|r| ("API server".to_string(), r.rss_ready))
        .chain(
            manifests
                .iter()
                .filter(|m| m.n == 10_000)
                .map(|m| (format!("manifests, {}", m.format.label()), m.rss_ready)),
        )
        .map(|(what, kib)| {
            format!(
                "{what}: {:.1} MB{}",
                mb(kib),
                if mb(kib) <= 50.0 { "" } else { " (over)" }
            )
        })
        .collect();
    if at_10k.is_empty() {
        s.push_str(
            "- RSS at ready ≤ 50 MB at 10k objects from every source (issue 14): not measured.\n",
        );
    } else {
        let over = at_10k.iter().any(|l| l.ends_with("(over)"));
        s.push_str(&format!(
            "- RSS at ready ≤ 50 MB at 10k objects from every source (issue 14): **{}** ({}).\n",
            if over { "missed" } else { "met" },
            at_10k.join("; ")
        ));
    }
    for r in rows {
        let p99 = r.churn.pct(0.99);
        let ok = p99 <= 100.0 && r.churn.missed == 0;
        s.push_str(&format!(
            "- p99 event → answer ≤ 100 ms under churn at {} objects: **{}** (p99 {} ms{}).\n",
            r.n,
            if ok { "met" } else { "missed" },
            f(p99, 1),
            if r.churn.missed > 0 {
                format!(", {} updates not seen", r.churn.missed)
            } else {
                String::new()
            }
        ));
    }
    s
}

/// The sizes listed in `key` (comma-separated; empty: none), else `default`.
fn sizes_from(key: &str, default: &str) -> Vec<usize> {
    let v: Vec<usize> = std::env::var(key)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{key}: {s:?} is not a number"))
        })
        .collect();
    assert!(v.iter().all(|&n| n >= 10), "{key}: sizes must be ≥ 10");
    v
}

#[test]
#[ignore = "benchmark: cargo test --release --test k8s_scale -- --ignored --nocapture"]
fn k8s_scale() {
    let sizes = sizes_from("K8S_SCALE_SIZES", "1000,10000,100000");
    let manifest_sizes = sizes_from("K8S_SCALE_MANIFESTS", "10000");
    let rate: f64 = env_or("K8S_SCALE_RATE", 100.0);
    let churn_secs: f64 = env_or("K8S_SCALE_CHURN_SECS", 10.0);
    let isolated: usize = env_or("K8S_SCALE_ISOLATED", 20);
    assert!(
        rate > 0.0 && churn_secs > 0.0,
        "rate and duration must be > 0"
    );
    let out: PathBuf = std::env::var_os("K8S_SCALE_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/results/k8s_scale.md")
        });
    let machine = machine();
    let mut rows = Vec::new();
    for &n in &sizes {
        let row = run_size(n, rate, churn_secs, isolated);
        eprintln!(
            "k8s_scale: N={n}: ready {:.2} s, RSS {:.1}/{:.1}/{:.1} MB (peak {:.1}), churn p50 {:.1} p99 {:.1} ms",
            row.ready_s,
            mb(row.rss_ready),
            mb(row.rss_burst),
            mb(row.rss_churn),
            mb(row.hwm),
            row.churn.pct(0.5),
            row.churn.pct(0.99)
        );
        rows.push(row);
    }
    let mut manifests = Vec::new();
    for &n in &manifest_sizes {
        for format in Format::ALL {
            let m = run_manifests(n, format);
            eprintln!(
                "k8s_scale: N={n}: manifests, {}: ready {:.2} s, RSS {:.1} MB (peak {:.1})",
                format.label(),
                m.ready_s,
                mb(m.rss_ready),
                mb(m.hwm)
            );
            manifests.push(m);
        }
    }
    let md = report(&rows, &manifests, rate, churn_secs, isolated, &machine);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&out, &md).unwrap();
    println!("{md}");
    eprintln!("k8s_scale: wrote {}", out.display());
}
