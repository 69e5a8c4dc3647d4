//! The cluster split of the pod-gateway setup: `cluster.local` and the cluster's reverse zone go
//! to the cluster DNS (a real unbound, plain DNS) in server blocks of their own, everything else
//! over DoT (the in-process DoT server); each query reaches the right upstream only. With `cache`
//! in front, a name reaches the upstream once until its TTL ends. And the pod-gateway chart's
//! Corefile itself runs with only its addresses adapted.

mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use support::fwd::{POLL, a_of, ask, ca_bundle, wait_until};
use support::tlsecho::{TlsEcho, TlsEchoOpts, default_answer};
use support::unbound::{self, Unbound, UnboundOpts};
use support::{Exdns, http_get, query, tcp};

const NAME: &str = "dns.example.test";
const KUBE_DNS: &str = "kube-dns.kube-system.svc.cluster.local.";

/// The cluster DNS stand-in: plain DNS only, the cluster's names and reverse zone.
fn cluster_dns() -> Unbound {
    Unbound::start(
        UnboundOpts::new()
            .no_tls()
            .static_zone("cluster.local")
            .data(&format!("{KUBE_DNS} 30 IN A 10.43.0.10"))
            .static_zone("43.10.in-addr.arpa")
            .data(&format!("10.0.43.10.in-addr.arpa. 30 IN PTR {KUBE_DNS}")),
    )
}

/// The DoT upstream: `ttl5.*` names are answered with TTL 5, the rest as `default_answer` (300).
fn dot_upstream(server_name: &str) -> TlsEcho {
    TlsEcho::start(
        TlsEchoOpts::new()
            .server_name(server_name)
            .handler(|q: &Message| {
                let mut r = default_answer(q);
                let ttl5 = q.queries.first().is_some_and(|q| {
                    q.name()
                        .to_ascii()
                        .to_ascii_lowercase()
                        .starts_with("ttl5.")
                });
                if ttl5 {
                    for rr in r.answers.iter_mut() {
                        rr.ttl = 5;
                    }
                }
                r
            }),
    )
}

fn split_corefile(echo: &TlsEcho, cluster: &Unbound, dot_block_extra: &str) -> String {
    format!(
        ".:0 {{
  bind 127.0.0.1
  errors
{dot_block_extra}  forward . tls://{} {{
    tls {}
    tls_servername {NAME}
  }}
}}
cluster.local:0 {{
  bind 127.0.0.1
  errors
  forward . {}
}}
10.43.0.0/16:0 {{
  bind 127.0.0.1
  errors
  forward . {}
}}
",
        echo.addr,
        echo.ca_pem.display(),
        cluster.addr,
        cluster.addr
    )
}

fn ptr_of(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(p) => Some(p.0.to_ascii()),
            _ => None,
        })
        .collect()
}

#[test]
fn cluster_names_and_the_cluster_reverse_zone_go_to_the_cluster_dns() {
    if !unbound::available() {
        return;
    }
    let cluster = cluster_dns();
    let echo = dot_upstream(NAME);
    let ex = Exdns::start(&split_corefile(&echo, &cluster, ""));
    let dns = ex.dns();

    let (r, _) = ask(dns, KUBE_DNS, RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_of(&r), vec![Ipv4Addr::new(10, 43, 0, 10)]);
    assert!(r.metadata.authoritative, "the cluster DNS's own answer");
    assert!(
        !r.metadata.authentic_data,
        "not the DoT upstream's (which sets AD)"
    );
    // Over TCP too (plain TCP to the cluster DNS).
    let r = tcp(dns, &query(KUBE_DNS, RecordType::A, None));
    assert_eq!(a_of(&r), vec![Ipv4Addr::new(10, 43, 0, 10)]);
    assert_eq!(cluster.logged_queries(KUBE_DNS), 2, "{}", cluster.log());

    let (r, _) = ask(dns, "nope.default.svc.cluster.local.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(r.authorities.len(), 1);
    assert_eq!(r.authorities[0].name.to_ascii(), "cluster.local.");

    // The cluster CIDR's reverse zone.
    let (r, _) = ask(dns, "10.0.43.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(ptr_of(&r), vec![KUBE_DNS.to_string()]);
    assert_eq!(cluster.logged_queries("10.0.43.10.in-addr.arpa"), 1);

    // Everything else over DoT, never to the cluster DNS.
    let (r, _) = ask(dns, "www.example.org.", RecordType::A);
    assert_eq!(a_of(&r), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    assert!(r.metadata.authentic_data);
    let (r, _) = ask(dns, "1.2.0.192.in-addr.arpa.", RecordType::PTR);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(
        r.metadata.authentic_data,
        "outside the cluster CIDR: the DoT upstream"
    );
    assert_eq!(echo.queries_for("www.example.org"), 1);
    assert_eq!(echo.queries_for("1.2.0.192.in-addr.arpa"), 1);
    assert_eq!(cluster.logged_queries("www.example.org"), 0);
    assert_eq!(cluster.logged_queries("1.2.0.192.in-addr.arpa"), 0);
    assert_eq!(echo.num_queries(), 2, "{:?}", echo.seen());
    assert!(
        echo.seen()
            .iter()
            .all(|s| !s.name.ends_with("cluster.local."))
    );
}

fn ttl_of(m: &Message) -> u32 {
    m.answers.first().expect("an answer").ttl
}

#[test]
fn with_cache_in_front_a_name_reaches_the_upstream_once_per_ttl() {
    if !unbound::available() {
        return;
    }
    let cluster = cluster_dns();
    let echo = dot_upstream(NAME);
    let ex = Exdns::start(&split_corefile(&echo, &cluster, "  cache 30\n"));
    let dns = ex.dns();

    // TTL 300, capped at 30 by `cache 30`.
    for i in 0..5 {
        let (r, _) = ask(dns, "www.example.test.", RecordType::A);
        assert_eq!(a_of(&r), vec![Ipv4Addr::new(192, 0, 2, 1)]);
        if i > 0 {
            assert!(ttl_of(&r) <= 30, "{r:?}");
        }
    }
    assert_eq!(echo.queries_for("www.example.test"), 1);
    // Denials are cached too.
    for _ in 0..3 {
        let (r, _) = ask(dns, "nxdomain.example.test.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    }
    assert_eq!(echo.queries_for("nxdomain.example.test"), 1);
    // The cluster block has no cache: each query goes to the cluster DNS.
    for _ in 0..3 {
        let (r, _) = ask(dns, KUBE_DNS, RecordType::A);
        assert_eq!(a_of(&r), vec![Ipv4Addr::new(10, 43, 0, 10)]);
    }
    assert_eq!(cluster.logged_queries(KUBE_DNS), 3);

    // TTL 5: answered from the cache until it ends, then asked again.
    let first = Instant::now();
    let (r, _) = ask(dns, "ttl5.example.test.", RecordType::A);
    assert_eq!(ttl_of(&r), 5);
    assert_eq!(echo.queries_for("ttl5.example.test"), 1);
    let mut last_ttl = 5;
    let mut refetched_after = None;
    assert!(
        wait_until(POLL, || {
            let (r, _) = ask(dns, "ttl5.example.test.", RecordType::A);
            assert_eq!(a_of(&r), vec![Ipv4Addr::new(192, 0, 2, 1)]);
            let n = echo.queries_for("ttl5.example.test");
            if n == 1 {
                let ttl = ttl_of(&r);
                assert!(ttl <= last_ttl, "TTL counts down: {ttl} after {last_ttl}");
                last_ttl = ttl;
                std::thread::sleep(Duration::from_millis(100));
                false
            } else {
                assert_eq!(n, 2);
                refetched_after = Some(first.elapsed());
                true
            }
        }),
        "the name was never asked again"
    );
    let after = refetched_after.unwrap();
    assert!(
        after >= Duration::from_millis(4000) && after <= Duration::from_millis(7500),
        "asked upstream again after {after:?}, TTL 5"
    );
    assert!(
        last_ttl <= 1,
        "served from the cache down to TTL {last_ttl}"
    );
}

#[test]
fn the_pod_gateway_corefile_runs_with_addresses_adapted() {
    if !unbound::available() {
        return;
    }
    let cluster = cluster_dns();
    // Two DoT upstreams presenting certificates for dns.quad9.net, trusted through the system CA
    // bundle (SSL_CERT_FILE) as the chart's Corefile has no `tls` option.
    let a = dot_upstream("dns.quad9.net");
    let b = dot_upstream("dns.quad9.net");
    let dir = tempfile::tempdir().unwrap();
    let bundle = ca_bundle(dir.path(), "cas.pem", &[&a.ca_pem, &b.ca_pem]);
    // The chart's Corefile (spec/vpn-gateway.md) with `:53` → `:0`, `health :8081` →
    // `127.0.0.1:0`, the upstreams' and the cluster DNS's addresses replaced. Its first plugin
    // line, `rewrite stop type AAAA A`, is left out: exdns has no rewrite plugin on this branch.
    let corefile = format!(
        ".:0 {{
    bind 127.0.0.2
    errors
    health 127.0.0.1:0 {{ lameduck 5s }}
    log {{ class error }}
    forward . tls://{} tls://{} {{
        tls_servername dns.quad9.net
        policy sequential
        health_check 5s
    }}
    reload
}}
cluster.local:0 {{
    bind 127.0.0.2
    errors
    log {{ class error }}
    forward . {}
}}
",
        a.addr, b.addr, cluster.addr
    );
    let ex = Exdns::start_with_env(
        &corefile,
        &[],
        &[],
        &[("SSL_CERT_FILE", bundle.to_str().unwrap())],
    );
    let dns = ex.dns();
    assert_eq!(dns.ip().to_string(), "127.0.0.2");

    for name in ["www.example.org.", "api.example.net."] {
        let (r, _) = ask(dns, name, RecordType::A);
        assert_eq!(
            r.metadata.response_code,
            ResponseCode::NoError,
            "{}",
            ex.output()
        );
        assert_eq!(a_of(&r), vec![Ipv4Addr::new(192, 0, 2, 1)]);
        assert!(r.metadata.authentic_data);
        // `policy sequential`: the first upstream while it is healthy.
        assert_eq!((a.queries_for(name), b.queries_for(name)), (1, 0), "{name}");
    }
    assert!(
        a.hello_snis()
            .iter()
            .all(|s| s.as_deref() == Some("dns.quad9.net"))
    );
    let (r, _) = ask(dns, KUBE_DNS, RecordType::A);
    assert_eq!(a_of(&r), vec![Ipv4Addr::new(10, 43, 0, 10)]);
    assert_eq!(cluster.logged_queries(KUBE_DNS), 1);
    assert_eq!(a.queries_for(KUBE_DNS) + b.queries_for(KUBE_DNS), 0);
    let (status, _, body) = http_get(ex.http_addr("127.0.0.1:0"), "/health");
    assert_eq!((status, body.as_str()), (200, "OK"));
}
