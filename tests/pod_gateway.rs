//! The pod-gateway Corefile from spec/vpn-gateway.md, run unchanged except for addresses and
//! ports: DoT to "quad9" (an in-process DoT server holding a certificate for dns.quad9.net),
//! `cluster.local` to a cluster-DNS stand-in over plain DNS, `rewrite stop type AAAA A` in front.

mod support;

use std::net::Ipv4Addr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use support::tlsecho::{TlsEcho, TlsEchoOpts, a_record, reply_to};
use support::*;

fn corefile(quad9_a: &str, quad9_b: &str, cluster_dns: &str, health: &str) -> String {
    // The chart's file, addresses adapted: `bind 127.0.0.2` stays, ports become ephemeral.
    format!(
        r#".:0 {{
    bind 127.0.0.2
    rewrite stop type AAAA A
    errors
    health {health} {{ lameduck 5s }}
    log {{ class error }}
    forward . tls://{quad9_a} tls://{quad9_b} {{
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
    forward . {cluster_dns}
}}
"#
    )
}

#[test]
fn pod_gateway_corefile_resolves_through_dot_and_the_cluster_dns() {
    let quad9 = TlsEcho::start(TlsEchoOpts::new().server_name("dns.quad9.net"));
    // A second "quad9" address: the same server (sequential policy uses the first).
    let cluster = TlsEcho::start(TlsEchoOpts::new().handler(|q| {
        let mut r = reply_to(q);
        r.metadata.authoritative = true;
        let name = q.queries[0].name().to_ascii();
        if q.queries[0].query_type() == RecordType::A {
            r.answers
                .push(a_record(&name, Ipv4Addr::new(10, 43, 0, 10), 30));
        }
        r
    }));
    let cf = corefile(
        &quad9.addr.to_string(),
        &quad9.addr.to_string(),
        &cluster.addr.to_string(),
        "127.0.0.1:0",
    );
    // The DoT client trusts the system bundle; point it at the test CA as an operator would
    // point it at their CA bundle.
    let ex = Exdns::start_with_env(
        &cf,
        &[],
        &[],
        &[("SSL_CERT_FILE", quad9.ca_pem.to_str().unwrap())],
    );
    let dns = ex.addr("dns://127.0.0.2:");
    assert_eq!(dns.ip().to_string(), "127.0.0.2");

    // Internet names go over DoT with SNI dns.quad9.net.
    let r = udp(dns, &query("www.example.test.", RecordType::A, None));
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::NoError,
        "{}",
        ex.output()
    );
    assert_eq!(
        r.answers[0].data,
        RData::A(Ipv4Addr::new(192, 0, 2, 1).into())
    );
    assert!(quad9.queries_for("www.example.test.") >= 1);
    assert!(
        quad9
            .hello_snis()
            .iter()
            .all(|s| s.as_deref() == Some("dns.quad9.net")),
        "{:?}",
        quad9.hello_snis()
    );

    // AAAA is rewritten to A: the question stays AAAA, the answer holds the A records.
    let r = udp(dns, &query("v6.example.test.", RecordType::AAAA, None));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.queries[0].query_type(), RecordType::AAAA);
    assert!(matches!(r.answers[0].data, RData::A(_)), "{:?}", r.answers);

    // cluster.local goes to the cluster DNS over plain DNS, never to quad9.
    let before = quad9.num_queries();
    let r = udp(
        dns,
        &query(
            "kube-dns.kube-system.svc.cluster.local.",
            RecordType::A,
            None,
        ),
    );
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        r.answers[0].data,
        RData::A(Ipv4Addr::new(10, 43, 0, 10).into())
    );
    assert_eq!(
        cluster.queries_for("kube-dns.kube-system.svc.cluster.local."),
        1
    );
    assert_eq!(
        quad9.num_queries(),
        before,
        "cluster names never leave for the public resolver"
    );

    // NXDOMAIN and its SOA come back unchanged.
    let r = udp(dns, &query("nxdomain.example.test.", RecordType::A, None));
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert!(matches!(r.authorities[0].data, RData::SOA(_)));

    // Only error-class queries are logged (`log { class error }`).
    let r = udp(dns, &query("servfail.example.test.", RecordType::A, None));
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    assert!(
        ex.wait_for_line(
            "\"A IN servfail.example.test. udp",
            std::time::Duration::from_secs(5)
        ),
        "{}",
        ex.output()
    );
    assert!(
        !ex.output().contains("\"A IN www.example.test. udp"),
        "successes are not logged"
    );

    let (status, _, body) = http_get(ex.http_addr("127.0.0.1:0"), "/health");
    assert_eq!((status, body.as_str()), (200, "OK"));
}
