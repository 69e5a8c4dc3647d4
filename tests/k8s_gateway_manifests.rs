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
