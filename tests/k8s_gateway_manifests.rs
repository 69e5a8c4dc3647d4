//! k8s_gateway end to end with the `manifests` source: the real binary, real files, real queries.

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use support::*;

const GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: public
  namespace: gateway-system
spec:
  gatewayClassName: public
  listeners:
  - name: http
    port: 80
    protocol: HTTP
status:
  addresses:
  - type: IPAddress
    value: 192.0.2.10
  - type: IPAddress
    value: 2001:db8::10
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: apps
spec:
  parentRefs:
  - name: public
    namespace: gateway-system
  hostnames:
  - web.example.com
"#;

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: exdns-a
  namespace: kube-system
spec:
  type: LoadBalancer
  ports:
  - port: 53
    protocol: UDP
status:
  loadBalancer:
    ingress:
    - ip: 192.0.2.53
    - ip: 2001:db8::53
---
apiVersion: v1
kind: Service
metadata:
  name: exdns-b
  namespace: kube-system
spec:
  type: LoadBalancer
  ports:
  - port: 53
    protocol: UDP
status:
  loadBalancer:
    ingress:
    - ip: 192.0.2.54
---
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: apps
  annotations:
    coredns.io/hostname: api.example.com,*.api.example.com
spec:
  type: LoadBalancer
status:
  loadBalancer:
    ingress:
    - ip: 198.51.100.7
"#;

fn ingress(host: &str, ip: &str) -> String {
    format!(
        r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: apps
spec:
  rules:
  - host: {host}
status:
  loadBalancer:
    ingress:
    - ip: {ip}
"#
    )
}

fn corefile(dir: &str, apex: &str, secondary: &str) -> String {
    format!(
        "example.com:0 {{\n  k8s_gateway {{\n    manifests {dir}\n    apex {apex}\n    secondary {secondary}\n  }}\n  ready 127.0.0.1:0\n}}\n"
    )
}

fn a(addr: std::net::SocketAddr, name: &str, t: RecordType) -> Message {
    udp(addr, &query(name, t, None))
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

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start(apex: &str, secondary: &str) -> (Exdns, std::path::PathBuf) {
    let ex = Exdns::start_with(
        &corefile("objects", apex, secondary),
        &[
            ("objects/gateway.yaml", GATEWAY),
            ("objects/services.yaml", SERVICES),
            (
                "objects/ingress.yaml",
                &ingress("shop.example.com", "203.0.113.5"),
            ),
        ],
        &[],
    );
    let dir = ex.path("objects");
    (ex, dir)
}

#[test]
fn answers_follow_the_files() {
    let (ex, dir) = start("exdns-a.kube-system", "exdns-b.kube-system");
    let dns = ex.dns();
    wait_until("ready", || {
        http_get(ex.http_addr("127.0.0.1:0"), "/ready").0 == 200
    });

    let m = a(dns, "web.example.com.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative && !m.metadata.recursion_available);
    assert_eq!(ips(&m), vec!["192.0.2.10".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        ips(&a(dns, "web.example.com.", RecordType::AAAA)),
        vec!["2001:db8::10".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        ips(&a(dns, "shop.example.com.", RecordType::A)),
        vec!["203.0.113.5".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        ips(&a(dns, "x.api.example.com.", RecordType::A)),
        vec!["198.51.100.7".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        ips(&a(dns, "exdns-b.kube-system.example.com.", RecordType::A)),
        vec!["192.0.2.54".parse::<IpAddr>().unwrap()]
    );
    let m = a(dns, "nope.example.com.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(matches!(m.authorities[0].data, RData::SOA(_)));

    // Change: the Ingress moves to another address and host.
    let serial_before = match &a(dns, "example.com.", RecordType::SOA).answers[0].data {
        RData::SOA(s) => s.serial,
        _ => unreachable!(),
    };
    std::fs::write(
        dir.join("ingress.yaml"),
        ingress("store.example.com", "203.0.113.6"),
    )
    .unwrap();
    wait_until("the edit", || {
        ips(&a(dns, "store.example.com.", RecordType::A))
            == vec!["203.0.113.6".parse::<IpAddr>().unwrap()]
    });
    assert_eq!(
        a(dns, "shop.example.com.", RecordType::A)
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    let serial_after = match &a(dns, "example.com.", RecordType::SOA).answers[0].data {
        RData::SOA(s) => s.serial,
        _ => unreachable!(),
    };
    assert!(
        serial_after > serial_before,
        "serial {serial_before} -> {serial_after}"
    );

    // A broken file is reported and the rest (and its last good objects) keep serving.
    std::fs::write(
        dir.join("ingress.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\n  bad: [indent\n",
    )
    .unwrap();
    assert!(
        ex.wait_for_line("ingress.yaml", Duration::from_secs(10)),
        "{}",
        ex.output()
    );
    assert_eq!(
        ips(&a(dns, "store.example.com.", RecordType::A)),
        vec!["203.0.113.6".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        ips(&a(dns, "web.example.com.", RecordType::A)),
        vec!["192.0.2.10".parse::<IpAddr>().unwrap()]
    );

    // Delete: the route's file goes away.
    std::fs::remove_file(dir.join("gateway.yaml")).unwrap();
    wait_until("the delete", || {
        a(dns, "web.example.com.", RecordType::A)
            .metadata
            .response_code
            == ResponseCode::NXDomain
    });
}

#[test]
fn dual_deployment_agrees_on_ns_glue_and_soa() {
    let (one, dir) = start("exdns-a.kube-system", "exdns-b.kube-system");
    let two = Exdns::start(&corefile(
        dir.to_str().unwrap(),
        "exdns-b.kube-system",
        "exdns-a.kube-system",
    ));
    for ex in [&one, &two] {
        wait_until("ready", || {
            http_get(ex.http_addr("127.0.0.1:0"), "/ready").0 == 200
        });
    }
    let ns = |ex: &Exdns| {
        let m = a(ex.dns(), "example.com.", RecordType::NS);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        let mut names: Vec<String> = m
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::NS(n) => n.0.to_ascii(),
                o => panic!("{o:?}"),
            })
            .collect();
        names.sort();
        let mut glue: Vec<String> = m
            .additionals
            .iter()
            .map(|r| format!("{} {:?}", r.name, r.data))
            .collect();
        glue.sort();
        (names, glue)
    };
    let (n1, g1) = ns(&one);
    let (n2, g2) = ns(&two);
    assert_eq!(
        n1,
        vec![
            "exdns-a.kube-system.example.com.",
            "exdns-b.kube-system.example.com."
        ]
    );
    assert_eq!(n1, n2, "same NS set");
    assert_eq!(g1, g2, "same glue");
    assert_eq!(g1.len(), 3, "A+AAAA for a, A for b: {g1:?}");
    let soa = |ex: &Exdns| format!("{:?}", a(ex.dns(), "example.com.", RecordType::SOA).answers);
    assert_eq!(soa(&one), soa(&two), "identical SOA from both instances");
    // Each answers its own apex name (and the peer's, through the normal lookup).
    assert_eq!(
        ips(&a(
            one.dns(),
            "exdns-a.kube-system.example.com.",
            RecordType::A
        )),
        vec!["192.0.2.53".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        ips(&a(
            two.dns(),
            "exdns-b.kube-system.example.com.",
            RecordType::A
        )),
        vec!["192.0.2.54".parse::<IpAddr>().unwrap()]
    );
    // Negative answers carry the SOA on both.
    for ex in [&one, &two] {
        let m = a(ex.dns(), "missing.example.com.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(matches!(m.authorities[0].data, RData::SOA(_)));
    }
}

#[test]
fn reload_with_unchanged_k8s_gateway_keeps_answering() {
    let cf = |extra: &str| {
        format!(
            "example.com:0 {{\n  reload 2s 1s\n  {extra}\n  k8s_gateway {{\n    manifests objects\n    apex exdns-a.kube-system\n  }}\n  ready 127.0.0.1:0\n}}\n"
        )
    };
    let ex = Exdns::start_with(
        &cf("errors"),
        &[
            ("objects/gateway.yaml", GATEWAY),
            ("objects/services.yaml", SERVICES),
        ],
        &[],
    );
    wait_until("ready", || {
        http_get(ex.http_addr("127.0.0.1:0"), "/ready").0 == 200
    });
    let dns = ex.dns();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bad = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let t = {
        let (stop, bad) = (stop.clone(), bad.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let m = a(dns, "web.example.com.", RecordType::A);
                if m.metadata.response_code != ResponseCode::NoError || m.answers.len() != 1 {
                    bad.lock()
                        .unwrap()
                        .push(format!("{:?}", m.metadata.response_code));
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        })
    };
    // Another directive changes; k8s_gateway's settings do not.
    ex.write("Corefile", &cf("errors\n  log"));
    assert!(
        ex.wait_for_line("Running configuration SHA512", Duration::from_secs(10)),
        "{}",
        ex.output()
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let n = t.join().unwrap();
    assert!(n > 50);
    assert!(
        bad.lock().unwrap().is_empty(),
        "answers during the reload: {:?}",
        bad.lock().unwrap()
    );
    // The new config is live (log lines appear).
    a(dns, "web.example.com.", RecordType::A);
    assert!(
        ex.wait_for_line("\"A IN web.example.com. udp", Duration::from_secs(5)),
        "{}",
        ex.output()
    );
}

/// Every answer record as `owner ttl TYPE data`.
fn records(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect()
}

/// What fixtures/demo/README.md's "Expected answers" promises.
enum Demo<'a> {
    /// NOERROR with exactly these answer records (`owner ttl TYPE data`, in answer order for a
    /// CNAME and its chase; sorted otherwise).
    Records(&'a [&'a str]),
    /// NOERROR with at least these records (rows marked ¹: the internal Gateway's Hostname
    /// address may add what the system resolver makes of it).
    AtLeast(&'a [&'a str]),
    NoData,
    NxDomain,
}

/// The demo cluster, served as fixtures/demo/README.md configures it, answers every row of that
/// README's "Expected answers" table as it says (the rows that depend on the system resolver
/// only in what they promise regardless of it).
#[test]
fn demo_cluster_answers_as_its_readme_says() {
    use RecordType::{A, AAAA, CNAME, SOA, TXT};
    let files = demo_files();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .collect();
    let ex = Exdns::start_with(
        "example.com:0 {\n  k8s_gateway example.com {\n    manifests demo\n    apex exdns.kube-system\n    secondary exdns-secondary.kube-system\n  }\n  ready 127.0.0.1:0\n}\n",
        &files,
        &[],
    );
    wait_until("ready", || {
        http_get(ex.http_addr("127.0.0.1:0"), "/ready").0 == 200
    });
    let dns = ex.dns();
    use Demo::*;
    let rows: Vec<(&str, RecordType, Demo)> = vec![
        ("example.com.", A, NoData),
        ("example.com.", AAAA, NoData),
        (
            "exdns.kube-system.example.com.",
            A,
            Records(&["exdns.kube-system.example.com. 60 A 192.0.2.53"]),
        ),
        (
            "exdns.kube-system.example.com.",
            AAAA,
            Records(&["exdns.kube-system.example.com. 60 AAAA 2001:db8::53"]),
        ),
        (
            "exdns-secondary.kube-system.example.com.",
            A,
            Records(&["exdns-secondary.kube-system.example.com. 60 A 192.0.2.54"]),
        ),
        (
            "exdns-secondary.kube-system.example.com.",
            AAAA,
            Records(&["exdns-secondary.kube-system.example.com. 60 AAAA 2001:db8::54"]),
        ),
        (
            "www.example.com.",
            A,
            Records(&["www.example.com. 60 A 198.51.100.10"]),
        ),
        (
            "www.example.com.",
            AAAA,
            Records(&["www.example.com. 60 AAAA 2001:db8:100::10"]),
        ),
        (
            "shop.example.com.",
            A,
            Records(&["shop.example.com. 60 A 198.51.100.10"]),
        ),
        (
            "shop.example.com.",
            AAAA,
            Records(&["shop.example.com. 60 AAAA 2001:db8:100::10"]),
        ),
        (
            "api.example.com.",
            A,
            AtLeast(&[
                "api.example.com. 60 A 198.51.100.10",
                "api.example.com. 60 A 198.51.100.20",
            ]),
        ),
        (
            "api.example.com.",
            AAAA,
            AtLeast(&["api.example.com. 60 AAAA 2001:db8:100::10"]),
        ),
        (
            "status.example.com.",
            A,
            AtLeast(&[
                "status.example.com. 60 A 198.51.100.10",
                "status.example.com. 60 A 198.51.100.20",
            ]),
        ),
        (
            "status.example.com.",
            AAAA,
            AtLeast(&["status.example.com. 60 AAAA 2001:db8:100::10"]),
        ),
        (
            "wiki.example.com.",
            A,
            AtLeast(&["wiki.example.com. 60 A 198.51.100.20"]),
        ),
        (
            "grpc.example.com.",
            A,
            AtLeast(&["grpc.example.com. 60 A 198.51.100.20"]),
        ),
        (
            "mqtt.example.com.",
            A,
            Records(&["mqtt.example.com. 60 A 198.51.100.10"]),
        ),
        (
            "mqtt.example.com.",
            AAAA,
            Records(&["mqtt.example.com. 60 AAAA 2001:db8:100::10"]),
        ),
        (
            "pg.example.com.",
            A,
            Records(&["pg.example.com. 60 A 198.51.100.10"]),
        ),
        (
            "pg.example.com.",
            AAAA,
            Records(&["pg.example.com. 60 AAAA 2001:db8:100::10"]),
        ),
        (
            "syslog.example.com.",
            A,
            AtLeast(&["syslog.example.com. 60 A 198.51.100.20"]),
        ),
        (
            "whoami.example.com.",
            A,
            Records(&["whoami.example.com. 60 A 203.0.113.60"]),
        ),
        ("whoami.example.com.", AAAA, NoData),
        (
            "redis.example.com.",
            A,
            Records(&["redis.example.com. 60 A 203.0.113.64"]),
        ),
        (
            "cache.example.com.",
            A,
            Records(&["cache.example.com. 60 A 203.0.113.64"]),
        ),
        ("redis.example.com.", AAAA, NoData),
        (
            "game.example.com.",
            A,
            Records(&["game.example.com. 60 A 203.0.113.65"]),
        ),
        ("game.example.com.", AAAA, NoData),
        (
            "bookinfo.example.com.",
            A,
            Records(&["bookinfo.example.com. 60 A 203.0.113.70"]),
        ),
        (
            "bookinfo.example.com.",
            AAAA,
            Records(&["bookinfo.example.com. 60 AAAA 2001:db8:203::70"]),
        ),
        (
            "reviews.example.com.",
            A,
            Records(&["reviews.example.com. 60 A 203.0.113.70"]),
        ),
        (
            "reviews.example.com.",
            AAAA,
            Records(&["reviews.example.com. 60 AAAA 2001:db8:203::70"]),
        ),
        ("ratings.example.com.", A, NxDomain),
        ("ratings.example.com.", AAAA, NxDomain),
        (
            "istio-ingressgateway.istio-system.example.com.",
            A,
            Records(&["istio-ingressgateway.istio-system.example.com. 60 A 203.0.113.70"]),
        ),
        (
            "istio-ingressgateway.istio-system.example.com.",
            AAAA,
            Records(&["istio-ingressgateway.istio-system.example.com. 60 AAAA 2001:db8:203::70"]),
        ),
        (
            "dashboard.internal.example.com.",
            A,
            AtLeast(&["dashboard.internal.example.com. 60 A 198.51.100.20"]),
        ),
        (
            "vpn.example.com.",
            A,
            Records(&["vpn.example.com. 60 A 203.0.113.50"]),
        ),
        (
            "vpn.example.com.",
            AAAA,
            Records(&["vpn.example.com. 60 AAAA 2001:db8:203::50"]),
        ),
        ("info.example.com.", A, NoData),
        ("info.example.com.", AAAA, NoData),
        (
            "info.example.com.",
            TXT,
            Records(&[
                "info.example.com. 60 TXT contact=hostmaster@example.com",
                "info.example.com. 60 TXT exdns demo cluster",
            ]),
        ),
        (
            "docs.example.com.",
            CNAME,
            Records(&["docs.example.com. 60 CNAME wiki.example.com."]),
        ),
        (
            "lb.internal.example.com.",
            A,
            Records(&["lb.internal.example.com. 60 A 198.51.100.21"]),
        ),
        ("lb.internal.example.com.", AAAA, NoData),
        (
            "cafe.example.com.",
            A,
            Records(&["cafe.example.com. 60 A 203.0.113.60"]),
        ),
        ("cafe.example.com.", AAAA, NoData),
        (
            "blog.example.com.",
            A,
            Records(&["blog.example.com. 60 A 203.0.113.30"]),
        ),
        (
            "blog.example.com.",
            AAAA,
            Records(&["blog.example.com. 60 AAAA 2001:db8:203::30"]),
        ),
        (
            "legacy.example.com.",
            A,
            Records(&["legacy.example.com. 60 A 203.0.113.31"]),
        ),
        (
            "old.example.com.",
            A,
            Records(&["old.example.com. 60 A 203.0.113.31"]),
        ),
        ("old.example.com.", AAAA, NoData),
        (
            "shop-lb.example.com.",
            A,
            Records(&["shop-lb.example.com. 60 A 203.0.113.40"]),
        ),
        ("shop-lb.example.com.", AAAA, NoData),
        (
            "foo.apps.example.com.",
            A,
            Records(&["foo.apps.example.com. 60 A 203.0.113.40"]),
        ),
        ("foo.apps.example.com.", AAAA, NoData),
        (
            "smtp.example.com.",
            A,
            Records(&["smtp.example.com. 60 A 203.0.113.41"]),
        ),
        (
            "imap.example.com.",
            AAAA,
            Records(&["imap.example.com. 60 AAAA 2001:db8:203::41"]),
        ),
        (
            "gitlab.dev.example.com.",
            A,
            Records(&["gitlab.dev.example.com. 60 A 203.0.113.42"]),
        ),
        ("gitlab.dev.example.com.", AAAA, NoData),
        (
            "prometheus.example.com.",
            A,
            Records(&[
                "prometheus.example.com. 60 A 198.51.100.60",
                "prometheus.example.com. 60 A 198.51.100.61",
            ]),
        ),
        ("prometheus.example.com.", AAAA, NoData),
        // ExternalDNS annotations (externaldns.yaml)
        (
            "checkout.example.com.",
            A,
            Records(&["checkout.example.com. 300 A 203.0.113.44"]),
        ),
        ("checkout.example.com.", AAAA, NoData),
        (
            "registry.example.com.",
            A,
            Records(&["registry.example.com. 60 A 203.0.113.45"]),
        ),
        (
            "registry.example.com.",
            AAAA,
            Records(&["registry.example.com. 60 AAAA 2001:db8:203::45"]),
        ),
        (
            "status-page.example.com.",
            A,
            Records(&["status-page.example.com. 90 CNAME status-page.cdn.example.net."]),
        ),
        (
            "uptime.example.com.",
            AAAA,
            Records(&["uptime.example.com. 90 CNAME status-page.cdn.example.net."]),
        ),
        (
            "uptime.example.com.",
            TXT,
            Records(&["uptime.example.com. 90 CNAME status-page.cdn.example.net."]),
        ),
        (
            "promo.example.com.",
            A,
            Records(&["promo.example.com. 120 A 198.51.100.10"]),
        ),
        (
            "promo.example.com.",
            AAAA,
            Records(&["promo.example.com. 120 AAAA 2001:db8:100::10"]),
        ),
        (
            "edge.example.com.",
            A,
            Records(&["edge.example.com. 60 CNAME edge-lb.example.net."]),
        ),
        (
            "tea.example.com.",
            A,
            Records(&["tea.example.com. 45 A 203.0.113.61"]),
        ),
        (
            "chai.example.com.",
            A,
            Records(&["chai.example.com. 45 A 203.0.113.61"]),
        ),
        ("chai.example.com.", AAAA, NoData),
        // ExternalName Services
        (
            "postgres.data.example.com.",
            A,
            Records(&["postgres.data.example.com. 60 CNAME db.prod.example.net."]),
        ),
        (
            "postgres.data.example.com.",
            CNAME,
            Records(&["postgres.data.example.com. 60 CNAME db.prod.example.net."]),
        ),
        (
            "mirror.example.com.",
            A,
            Records(&[
                "mirror.example.com. 30 CNAME blog.example.com.",
                "blog.example.com. 60 A 203.0.113.30",
            ]),
        ),
        (
            "mirror.example.com.",
            AAAA,
            Records(&[
                "mirror.example.com. 30 CNAME blog.example.com.",
                "blog.example.com. 60 AAAA 2001:db8:203::30",
            ]),
        ),
        // empty non-terminals
        ("apps.example.com.", A, NoData),
        ("data.example.com.", A, NoData),
        ("dev.example.com.", AAAA, NoData),
        ("internal.example.com.", A, NoData),
        ("istio-system.example.com.", A, NoData),
        ("kube-system.example.com.", A, NoData),
        ("a.b.apps.example.com.", A, NxDomain),
        ("canary.example.com.", A, NxDomain),
        ("canary.shop.example.com.", A, NxDomain),
        ("storefront.shop.example.com.", A, NxDomain),
        ("anything.exdns.kube-system.example.com.", A, NxDomain),
    ];
    for (name, qtype, want) in &rows {
        let m = a(dns, name, *qtype);
        let got = records(&m);
        let ctx = format!("{name} {qtype}: {m:?}");
        assert!(m.metadata.authoritative, "{ctx}");
        match want {
            Records(w) | AtLeast(w) => {
                assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{ctx}");
                let cname = got.first().is_some_and(|r| r.contains(" CNAME "));
                let (mut got, mut w) = (got.clone(), w.to_vec());
                if !cname {
                    got.sort();
                    w.sort();
                }
                if matches!(want, AtLeast(_)) {
                    assert!(w.iter().all(|r| got.iter().any(|g| g == r)), "{ctx}");
                } else {
                    assert_eq!(got, w, "{ctx}");
                }
            }
            NoData => {
                assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{ctx}");
                assert!(got.is_empty(), "{ctx}");
                assert!(matches!(m.authorities[0].data, RData::SOA(_)), "{ctx}");
            }
            NxDomain => {
                assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{ctx}");
                assert!(matches!(m.authorities[0].data, RData::SOA(_)), "{ctx}");
            }
        }
    }
    // The apex: SOA MNAME the lower of apex and secondary, NS both, glue A and AAAA.
    let m = a(dns, "example.com.", SOA);
    match &m.answers[0].data {
        RData::SOA(s) => assert_eq!(
            s.mname.to_ascii(),
            "exdns-secondary.kube-system.example.com."
        ),
        other => panic!("{other:?}"),
    }
    let m = a(dns, "example.com.", RecordType::NS);
    let mut ns = records(&m);
    ns.sort();
    assert_eq!(
        ns,
        [
            "example.com. 60 NS exdns-secondary.kube-system.example.com.",
            "example.com. 60 NS exdns.kube-system.example.com."
        ]
    );
    assert_eq!(m.additionals.len(), 4, "{m:?}");
}

fn annotated(ttl: &str, target: &str, external_name: &str) -> String {
    format!(
        r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: apps
  annotations:
    external-dns.kubernetes.io/hostname: store.example.com
    external-dns.kubernetes.io/ttl: "{ttl}"
    external-dns.kubernetes.io/target: "{target}"
spec:
  rules:
  - host: shop.example.com
status:
  loadBalancer:
    ingress:
    - ip: 203.0.113.5
---
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: apps
spec:
  type: ExternalName
  externalName: {external_name}
"#
    )
}

/// The ExternalDNS annotations and ExternalName Services from files: edits show up on the wire,
/// TTLs included (on the fast path: nothing stands in front of k8s_gateway).
#[test]
fn annotations_and_external_names_follow_the_files() {
    let ex = Exdns::start_with(
        &corefile("objects", "exdns-a.kube-system", "exdns-b.kube-system"),
        &[(
            "objects/shop.yaml",
            &annotated("10m", "198.51.100.50", "db.example.net"),
        )],
        &[],
    );
    let dns = ex.dns();
    wait_until("ready", || {
        http_get(ex.http_addr("127.0.0.1:0"), "/ready").0 == 200
    });
    let recs = |name: &str, t: RecordType| records(&a(dns, name, t));
    for name in ["shop.example.com.", "store.example.com."] {
        assert_eq!(
            recs(name, RecordType::A),
            [format!("{name} 600 A 198.51.100.50")]
        );
    }
    assert_eq!(
        recs("db.apps.example.com.", RecordType::AAAA),
        ["db.apps.example.com. 60 CNAME db.example.net."]
    );

    // Edits: the TTL, a hostname target (a CNAME into our zone: the chase follows), and the
    // ExternalName.
    std::fs::write(
        ex.path("objects/shop.yaml"),
        annotated("45", "db.apps.example.com", "db2.example.net"),
    )
    .unwrap();
    wait_until("the edit", || {
        recs("store.example.com.", RecordType::A)
            == [
                "store.example.com. 45 CNAME db.apps.example.com.",
                "db.apps.example.com. 60 CNAME db2.example.net.",
            ]
    });
    assert_eq!(
        recs("shop.example.com.", RecordType::CNAME),
        ["shop.example.com. 45 CNAME db.apps.example.com."]
    );
    // An invalid TTL is ignored (the directive's ttl) with a warning naming the object.
    std::fs::write(
        ex.path("objects/shop.yaml"),
        annotated("forever", "198.51.100.51", "db2.example.net"),
    )
    .unwrap();
    wait_until("the second edit", || {
        recs("shop.example.com.", RecordType::A) == ["shop.example.com. 60 A 198.51.100.51"]
    });
    assert!(
        ex.wait_for_line(
            "annotation external-dns.kubernetes.io/ttl: \"forever\" is not a valid TTL",
            Duration::from_secs(10)
        ),
        "{}",
        ex.output()
    );
}

/// Reverse zones (a CIDR among the zones): PTR for the forward zone's addresses, SOA/NS at the
/// reverse apex, and an AXFR of the reverse zone with its PTRs.
#[test]
fn reverse_zones_answer_ptr_and_transfer() {
    let ex = Exdns::start_with(
        "example.com:0 192.0.2.0/24:0 {\n  k8s_gateway example.com 192.0.2.0/24 {\n    manifests objects\n    apex exdns-a.kube-system\n  }\n  transfer {\n    to *\n  }\n  ready 127.0.0.1:0\n}\n",
        &[
            ("objects/gateway.yaml", GATEWAY),
            ("objects/services.yaml", SERVICES),
            (
                "objects/ingress.yaml",
                &ingress("shop.example.com", "192.0.2.10"),
            ),
        ],
        &[],
    );
    wait_until("ready", || {
        http_get(ex.http_addr("127.0.0.1:0"), "/ready").0 == 200
    });
    let dns = ex.dns();
    let m = a(dns, "10.2.0.192.in-addr.arpa.", RecordType::PTR);
    assert!(m.metadata.authoritative, "{m:?}");
    assert_eq!(
        records(&m),
        [
            "10.2.0.192.in-addr.arpa. 60 PTR shop.example.com.",
            "10.2.0.192.in-addr.arpa. 60 PTR web.example.com.",
        ]
    );
    assert_eq!(
        records(&a(dns, "53.2.0.192.in-addr.arpa.", RecordType::PTR)),
        ["53.2.0.192.in-addr.arpa. 60 PTR exdns-a.kube-system.example.com."]
    );
    let m = a(dns, "99.2.0.192.in-addr.arpa.", RecordType::PTR);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities[0].name.to_ascii(), "2.0.192.in-addr.arpa.");
    let m = a(dns, "2.0.192.in-addr.arpa.", RecordType::NS);
    assert_eq!(
        records(&m),
        ["2.0.192.in-addr.arpa. 60 NS exdns-a.kube-system.2.0.192.in-addr.arpa."]
    );
    // AXFR: SOA, NS, the PTRs and the nameserver's addresses in name order, SOA.
    let mut q = query("2.0.192.in-addr.arpa.", RecordType::AXFR, None);
    q.metadata.recursion_desired = false;
    let m = tcp(dns, &q);
    let got: Vec<String> = records(&m)
        .into_iter()
        .map(|r| if r.contains(" SOA ") { "SOA".into() } else { r })
        .collect();
    assert_eq!(
        got,
        [
            "SOA",
            "2.0.192.in-addr.arpa. 60 NS exdns-a.kube-system.2.0.192.in-addr.arpa.",
            "10.2.0.192.in-addr.arpa. 60 PTR shop.example.com.",
            "10.2.0.192.in-addr.arpa. 60 PTR web.example.com.",
            "53.2.0.192.in-addr.arpa. 60 PTR exdns-a.kube-system.example.com.",
            "54.2.0.192.in-addr.arpa. 60 PTR exdns-b.kube-system.example.com.",
            "exdns-a.kube-system.2.0.192.in-addr.arpa. 60 A 192.0.2.53",
            "exdns-a.kube-system.2.0.192.in-addr.arpa. 60 AAAA 2001:db8::53",
            "SOA",
        ]
    );
}

/// `hostnameAsCNAME`: a load balancer's status hostname is answered as a CNAME (chased when it
/// is in the zone), instead of the addresses it resolves to.
#[test]
fn hostname_as_cname_answers_load_balancer_hostnames_as_cnames() {
    let lb = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: apps
spec:
  rules:
  - host: shop.example.com
status:
  loadBalancer:
    ingress:
    - hostname: lb-1.elb.example.net
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: inner
  namespace: apps
spec:
  rules:
  - host: inner.example.com
status:
  loadBalancer:
    ingress:
    - ip: 192.0.2.80
    - hostname: lb.example.com
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: lb
  namespace: apps
spec:
  rules:
  - host: lb.example.com
status:
  loadBalancer:
    ingress:
    - ip: 192.0.2.81
"#;
    let ex = Exdns::start_with(
        "example.com:0 {\n  k8s_gateway {\n    manifests objects\n    hostnameAsCNAME\n  }\n  ready 127.0.0.1:0\n}\n",
        &[("objects/lb.yaml", lb)],
        &[],
    );
    wait_until("ready", || {
        http_get(ex.http_addr("127.0.0.1:0"), "/ready").0 == 200
    });
    let dns = ex.dns();
    assert_eq!(
        records(&a(dns, "shop.example.com.", RecordType::A)),
        ["shop.example.com. 60 CNAME lb-1.elb.example.net."]
    );
    assert_eq!(
        records(&a(dns, "inner.example.com.", RecordType::A)),
        [
            "inner.example.com. 60 CNAME lb.example.com.",
            "lb.example.com. 60 A 192.0.2.81"
        ]
    );
}

/// The Istio ingress gateway's Service: not a LoadBalancer (its own name is not answered), its
/// externalIPs are what Istio Gateways selecting it answer.
fn istio_service(ip: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: ingressgateway
  namespace: istio-system
spec:
  type: ClusterIP
  selector:
    istio: ingressgateway
  externalIPs:
  - {ip}
"#
    )
}

/// An Istio Gateway (v1alpha3, as older Istio manifests have it) named `public` like the
/// Gateway API's in [`GATEWAY`], next to it in the same directory, and two VirtualServices.
const ISTIO: &str = r#"
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: public
  namespace: gateway-system
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["apps/*.mesh.example.com"]
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: shop
  namespace: apps
spec:
  hosts: [shop.mesh.example.com, shop.other.example.com]
  gateways: [gateway-system/public]
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: pinned
  namespace: other
  annotations:
    external-dns.alpha.kubernetes.io/target: 198.51.100.8
spec:
  hosts: [pinned.mesh.example.com]
  gateways: [gateway-system/public]
"#;

/// Istio Gateways and VirtualServices from files, next to a Gateway API Gateway of the same
/// name: each `Gateway` is read as its group's; the join follows the files.
#[test]
fn istio_objects_follow_the_files() {
    let ex = Exdns::start_with(
        &corefile("objects", "exdns-a.kube-system", "exdns-b.kube-system"),
        &[
            ("objects/gateway.yaml", GATEWAY),
            ("objects/services.yaml", SERVICES),
            ("objects/istio-svc.yaml", &istio_service("203.0.113.80")),
            ("objects/istio.yaml", ISTIO),
        ],
        &[],
    );
    let dir = ex.path("objects");
    let dns = ex.dns();
    wait_until("ready", || {
        http_get(ex.http_addr("127.0.0.1:0"), "/ready").0 == 200
    });
    let rcode = |name: &str| a(dns, name, RecordType::A).metadata.response_code;
    let v4 = |name: &str| records(&a(dns, name, RecordType::A));
    // The Gateway API's Gateway still answers its route.
    assert_eq!(v4("web.example.com."), ["web.example.com. 60 A 192.0.2.10"]);
    assert_eq!(
        v4("shop.mesh.example.com."),
        ["shop.mesh.example.com. 60 A 203.0.113.80"]
    );
    // Not a host of the Gateway's servers.
    assert_eq!(rcode("shop.other.example.com."), ResponseCode::NXDomain);
    // The target annotation, though `apps/` does not admit namespace `other`.
    assert_eq!(
        v4("pinned.mesh.example.com."),
        ["pinned.mesh.example.com. 60 A 198.51.100.8"]
    );
    // The Gateway's own name is a wildcard (one label).
    assert_eq!(
        v4("any.mesh.example.com."),
        ["any.mesh.example.com. 60 A 203.0.113.80"]
    );
    // A ClusterIP Service has no name of its own.
    assert_eq!(
        rcode("ingressgateway.istio-system.example.com."),
        ResponseCode::NXDomain
    );

    std::fs::write(dir.join("istio-svc.yaml"), istio_service("203.0.113.81")).unwrap();
    wait_until("the Service's edit", || {
        v4("shop.mesh.example.com.") == ["shop.mesh.example.com. 60 A 203.0.113.81"]
    });
    std::fs::remove_file(dir.join("istio.yaml")).unwrap();
    wait_until("the delete", || {
        rcode("shop.mesh.example.com.") == ResponseCode::NXDomain
    });
    assert_eq!(rcode("pinned.mesh.example.com."), ResponseCode::NXDomain);
    assert_eq!(v4("web.example.com."), ["web.example.com. 60 A 192.0.2.10"]);
}

/// A Traefik IngressRouteTCP `data/pg` of `group` (`traefik.io`, `traefik.containo.us`) with
/// `rule` and `target`.
fn traefik_tcp(group: &str, rule: &str, target: &str) -> String {
    format!(
        r#"apiVersion: {group}/v1alpha1
kind: IngressRouteTCP
metadata:
  name: pg
  namespace: data
  annotations:
    external-dns.alpha.kubernetes.io/target: {target}
spec:
  entryPoints: [pg]
  routes:
  - match: {rule:?}
    services:
    - name: pg
      port: 5432
"#
    )
}

/// Traefik's kinds from files, in both API groups: HostSNI rules (`*` and double-quoted values
/// give no name), IngressRouteUDP by its annotation only, one namespace/name in both groups
/// merged; edits and deletes follow the files.
#[test]
fn traefik_objects_of_both_groups_follow_the_files() {
    const UDP: &str = r#"
apiVersion: traefik.containo.us/v1alpha1
kind: IngressRouteUDP
metadata:
  name: dns
  namespace: infra
  annotations:
    external-dns.alpha.kubernetes.io/hostname: dns.example.com
    external-dns.alpha.kubernetes.io/target: 198.51.100.33
spec:
  entryPoints: [dns]
  routes:
  - services: [{name: dns, port: 53}]
"#;
    let rule = "HostSNI(`pg.example.com`) || HostSNI(`*`) || HostSNI(\"q.example.com\")";
    let ex = Exdns::start_with(
        &corefile("objects", "exdns-a.kube-system", "exdns-b.kube-system"),
        &[
            ("objects/services.yaml", SERVICES),
            (
                "objects/new.yaml",
                &traefik_tcp("traefik.io", rule, "198.51.100.31"),
            ),
            (
                "objects/legacy.yaml",
                &traefik_tcp("traefik.containo.us", rule, "198.51.100.32"),
            ),
            ("objects/udp.yaml", UDP),
        ],
        &[],
    );
    let dir = ex.path("objects");
    let dns = ex.dns();
    wait_until("ready", || {
        http_get(ex.http_addr("127.0.0.1:0"), "/ready").0 == 200
    });
    let rcode = |name: &str| a(dns, name, RecordType::A).metadata.response_code;
    let v4 = |name: &str| records(&a(dns, name, RecordType::A));
    assert_eq!(
        v4("pg.example.com."),
        [
            "pg.example.com. 60 A 198.51.100.31",
            "pg.example.com. 60 A 198.51.100.32"
        ]
    );
    assert_eq!(rcode("q.example.com."), ResponseCode::NXDomain);
    assert_eq!(
        v4("dns.example.com."),
        ["dns.example.com. 60 A 198.51.100.33"]
    );

    // The legacy copy gets the same target: one address.
    std::fs::write(
        dir.join("legacy.yaml"),
        traefik_tcp("traefik.containo.us", rule, "198.51.100.31"),
    )
    .unwrap();
    wait_until("the edit", || {
        v4("pg.example.com.") == ["pg.example.com. 60 A 198.51.100.31"]
    });
    // The traefik.io copy goes: the legacy one still answers.
    std::fs::remove_file(dir.join("new.yaml")).unwrap();
    std::fs::remove_file(dir.join("udp.yaml")).unwrap();
    wait_until("the deletes", || {
        rcode("dns.example.com.") == ResponseCode::NXDomain
    });
    assert_eq!(
        v4("pg.example.com."),
        ["pg.example.com. 60 A 198.51.100.31"]
    );
    std::fs::remove_file(dir.join("legacy.yaml")).unwrap();
    wait_until("the last delete", || {
        rcode("pg.example.com.") == ResponseCode::NXDomain
    });
}
