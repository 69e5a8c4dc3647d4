//! Setup, policy, health, relay and pinning tests. Upstreams are scripted in-process
//! ([`Upstream::fake`]) or small real UDP/TCP servers on loopback; DNS over TLS is in
//! `tls_tests.rs`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::policy::{Policy, order, random_one};
use super::setup::{host_port_or_file, parse, split_zone};
use super::upstream::FakeNet;
use super::*;
use crate::dns::request::{Outcome, Proto, Request};
use crate::plugin::test_chain::{
    NextMarker, capture_logs, dispenser, query, reply_of, request, request_from, serve, wait_for,
    with_edns,
};
use crate::plugin::{Plugin, directive, order_of};

// ---------------------------------------------------------------------------------------------
// setup

fn ok(text: &str) -> Config {
    match parse(&mut dispenser(text)) {
        Ok(c) => c,
        Err(e) => panic!("{text:?}: unexpected error {e}"),
    }
}

fn err(text: &str) -> String {
    match parse(&mut dispenser(text)) {
        Ok(_) => panic!("{text:?}: expected an error"),
        Err(e) => e.to_string(),
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn plain(s: &str) -> UpstreamSpec {
    UpstreamSpec {
        addr: sa(s),
        tls: false,
        https: false,
        server_name: None,
    }
}

fn tls(s: &str, name: Option<&str>) -> UpstreamSpec {
    UpstreamSpec {
        addr: sa(s),
        tls: true,
        https: false,
        server_name: name.map(str::to_string),
    }
}

/// A CA certificate in PEM, for `tls CA`.
fn ca_file(dir: &std::path::Path) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let p = dir.join("ca.pem");
    std::fs::write(&p, cert.pem()).unwrap();
    p.display().to_string()
}

#[test]
fn directive_is_registered_in_coredns_order() {
    let d = directive("forward").expect("forward is a directive");
    assert!(!d.once, "several forward lines chain");
    let at = order_of("forward").unwrap();
    assert_eq!(at, order_of("loop").unwrap() + 1);
    assert_eq!(order_of("erratic").unwrap(), at + 1);
}

#[test]
fn defaults() {
    let c = ok("forward . 127.0.0.1");
    assert_eq!(c.from, ".");
    assert_eq!(c.upstreams, vec![plain("127.0.0.1:53")]);
    assert!(c.ignored.is_empty());
    assert!(!c.force_tcp && !c.prefer_udp);
    assert_eq!(c.expire, Duration::from_secs(10));
    assert_eq!(c.max_fails, 2);
    assert_eq!(c.hc_interval, Duration::from_millis(500));
    assert!(c.hc_recursion_desired);
    assert_eq!(c.hc_domain, ".");
    assert_eq!(c.policy, Policy::Random);
    assert_eq!(c.tls, None);
    assert_eq!(c.tls_servername, None);
    assert_eq!(c.max_concurrent, 0);
    assert!(!c.failfast_all_unhealthy_upstreams);
    assert!(c.next_rcodes.is_empty() && c.failover_rcodes.is_empty());
    assert_eq!(c.read_timeout, Duration::from_secs(2));
    assert_eq!(c.source_address, None);
    assert_eq!(c.interface, None);
    assert!(c.tls_config.is_none(), "no TLS upstream, no TLS config");
}

fn https(s: &str, name: Option<&str>) -> UpstreamSpec {
    UpstreamSpec {
        addr: sa(s),
        tls: false,
        https: true,
        server_name: name.map(str::to_string),
    }
}

/// `https://` upstreams (CoreDNS 1.14): port 443 by default, `tls_servername` names them,
/// `doh_method` POST (default) or GET, the forward's `tls` CA verifies them.
#[test]
fn https_upstreams() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(dir.path());
    let c = ok(&format!(
        "forward . https://127.0.0.1 https://127.0.0.2:8443 tls://127.0.0.3 10.0.0.9 {{\n tls {ca}\n}}"
    ));
    assert_eq!(
        c.upstreams,
        vec![
            https("127.0.0.1:443", None),
            https("127.0.0.2:8443", None),
            tls("127.0.0.3:853", None),
            plain("10.0.0.9:53"),
        ]
    );
    assert_eq!(c.doh_method, super::doh::Method::Post);
    assert!(c.tls_config.is_some());
    let c = ok(&format!(
        "forward . https://9.9.9.9 {{\n tls_servername dns.quad9.net\n doh_method GET\n tls {ca}\n}}"
    ));
    assert_eq!(
        c.upstreams,
        vec![https("9.9.9.9:443", Some("dns.quad9.net"))]
    );
    assert_eq!(c.upstreams[0].verify_name(), "dns.quad9.net");
    assert_eq!(c.doh_method, super::doh::Method::Get);
}

#[test]
fn upstream_forms() {
    let c = ok(
        "forward Example.ORG 127.0.0.1:8053 [::1]:53 dns://10.0.0.1 dns://10.0.0.2:5353 2003::1",
    );
    assert_eq!(c.from, "example.org.");
    assert_eq!(
        c.upstreams,
        vec![
            plain("127.0.0.1:8053"),
            plain("[::1]:53"),
            plain("10.0.0.1:53"),
            plain("10.0.0.2:5353"),
            plain("[2003::1]:53"),
        ]
    );
    assert_eq!(
        ok("forward 10.9.3.0/18 127.0.0.1").from,
        "0.9.10.in-addr.arpa."
    );
    assert_eq!(
        ok("forward dns://example.net:53 127.0.0.1").from,
        "example.net."
    );

    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(dir.path());
    let c = ok(&format!(
        "forward . tls://127.0.0.1 tls://127.0.0.2:8853 tls://127.0.0.3%dns.example:9953 tls://[::1%v6.example]:853 tls://::2%v6b.example 10.0.0.9 {{\n tls {ca}\n}}"
    ));
    assert_eq!(
        c.upstreams,
        vec![
            tls("127.0.0.1:853", None),
            tls("127.0.0.2:8853", None),
            tls("127.0.0.3:9953", Some("dns.example")),
            tls("[::1]:853", Some("v6.example")),
            tls("[::2]:853", Some("v6b.example")),
            plain("10.0.0.9:53"),
        ]
    );
    assert_eq!(c.upstreams[0].verify_name(), "127.0.0.1");
    assert_eq!(c.tls.as_ref().unwrap().ca.as_deref(), Some(ca.as_str()));
    assert!(c.tls_config.is_some());

    // tls_servername names every tls:// upstream; plain ones stay plain.
    let c = ok(&format!(
        "forward . tls://9.9.9.9 tls://149.112.112.112 8.8.8.8 {{\n tls_servername dns.quad9.net\n tls {ca}\n}}"
    ));
    assert_eq!(
        c.upstreams,
        vec![
            tls("9.9.9.9:853", Some("dns.quad9.net")),
            tls("149.112.112.112:853", Some("dns.quad9.net")),
            plain("8.8.8.8:53"),
        ]
    );
    assert_eq!(c.tls_servername.as_deref(), Some("dns.quad9.net"));
}

#[test]
fn resolv_conf_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("resolv.conf");
    std::fs::write(
        &p,
        "# comment\n; other comment\nsearch example.org\nnameserver 10.10.255.252\nnameserver 2001:db8::53\n  nameserver   10.10.255.253 # trailing\noptions ndots:5\n",
    )
    .unwrap();
    let c = ok(&format!("forward . {} 10.0.0.1", p.display()));
    assert_eq!(
        c.upstreams,
        vec![
            plain("10.10.255.252:53"),
            plain("[2001:db8::53]:53"),
            plain("10.10.255.253:53"),
            plain("10.0.0.1:53"),
        ]
    );
    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "nameserver dns.example.org\n").unwrap();
    assert_eq!(
        err(&format!("forward . {}", bad.display())),
        format!(
            "Corefile:1 - Error during parsing: nameserver 'dns.example.org' in {} is not an IP address",
            bad.display()
        )
    );
}

#[test]
fn every_option() {
    let text = "forward example.org 10.0.0.1 10.0.0.2 {
 except Sub.Example.org other.example.org
 force_tcp
 prefer_udp
 expire 30s
 max_fails 5
 health_check 5s no_rec domain Example.NET
 policy round_robin
 max_concurrent 1000
 next NXDOMAIN servfail
 failfast_all_unhealthy_upstreams
 failover SERVFAIL refused
 read_timeout 500ms
 source_address 127.0.0.1
 interface lo
}";
    let c = ok(text);
    assert_eq!(c.from, "example.org.");
    assert_eq!(c.ignored, vec!["sub.example.org.", "other.example.org."]);
    assert!(c.force_tcp && c.prefer_udp);
    assert_eq!(c.expire, Duration::from_secs(30));
    assert_eq!(c.max_fails, 5);
    assert_eq!(c.hc_interval, Duration::from_secs(5));
    assert!(!c.hc_recursion_desired);
    assert_eq!(c.hc_domain, "example.net.");
    assert_eq!(c.policy, Policy::RoundRobin);
    assert_eq!(c.max_concurrent, 1000);
    assert_eq!(c.next_rcodes, vec![3, 2]);
    assert!(c.failfast_all_unhealthy_upstreams);
    assert_eq!(c.failover_rcodes, vec![2, 5]);
    assert_eq!(c.read_timeout, Duration::from_millis(500));
    assert_eq!(c.source_address, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(c.interface.as_deref(), Some("lo"));

    assert_eq!(
        ok("forward . 1.1.1.1 {\npolicy sequential\n}").policy,
        Policy::Sequential
    );
    assert_eq!(
        ok("forward . 1.1.1.1 {\npolicy random\n}").policy,
        Policy::Random
    );
    assert_eq!(ok("forward . 1.1.1.1 {\nmax_fails 0\n}").max_fails, 0);
    assert_eq!(
        ok("forward . 1.1.1.1 {\nexpire 0s\n}").expire,
        Duration::ZERO
    );
    // A later health_check resets the domain to the root, as CoreDNS does.
    let c = ok("forward . 1.1.1.1 {\nhealth_check 1s domain a.example\nhealth_check 2s\n}");
    assert_eq!(
        (c.hc_domain.as_str(), c.hc_interval),
        (".", Duration::from_secs(2))
    );
    let c = ok("forward . 1.1.1.1 {\nhealth_check 0.5s domain .\n}");
    assert_eq!(c.hc_domain, ".");
    let c = ok("forward . [::1]:53 {\nsource_address ::1\n}");
    assert_eq!(c.source_address, Some("::1".parse().unwrap()));
}

#[test]
fn errors_worded_as_coredns() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(dir.path());
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let not_pem = not_pem.display().to_string();
    let long = "x".repeat(64);
    let sixteen: Vec<String> = (1..=16).map(|i| format!("10.0.0.{i}")).collect();
    let cases: Vec<(String, String)> = vec![
        ("forward".into(), "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'forward'".into()),
        ("forward .".into(), "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after '.'".into()),
        ("forward . a27.0.0.1".into(), "Corefile:1 - Error during parsing: not an IP address or file: \"a27.0.0.1\"".into()),
        ("forward . tls://[::1]%v6.example".into(), "Corefile:1 - Error during parsing: not an IP address or file: \"[::1]%v6.example\"".into()),
        ("forward . [2003::1]".into(), "Corefile:1 - Error during parsing: not an IP address or file: \"[2003::1]\"".into()),
        ("forward . /nonexistent/resolv.conf".into(), "Corefile:1 - Error during parsing: not an IP address or file: \"/nonexistent/resolv.conf\"".into()),
        ("forward . /dev/null".into(), "Corefile:1 - Error during parsing: no nameservers found".into()),
        (format!("forward {long} 127.0.0.1"), format!("Corefile:1 - Error during parsing: unable to normalize '{long}'")),
        ("forward . 127.0.0.1 {\nblaatl\n}".into(), "Corefile:2 - Error during parsing: unknown property 'blaatl'".into()),
        ("forward . https://127.0.0.1/dns-query".into(), "Corefile:1 - Error during parsing: paths are not allowed in HTTPS upstream addresses (the /dns-query path is used by default): https://127.0.0.1/dns-query".into()),
        ("forward . https://127.0.0.1 {\ndoh_method PUT\n}".into(), "Corefile:2 - Error during parsing: doh_method must be either POST or GET".into()),
        ("forward . https://127.0.0.1 {\ndoh_method\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'doh_method'".into()),
        ("forward . quic://127.0.0.1".into(), "Corefile:1 - Error during parsing: 'quic' is not supported as a destination protocol in forward: quic://127.0.0.1:853".into()),
        ("forward . 127.0.0.1:99999".into(), "Corefile:1 - Error during parsing: invalid upstream address '127.0.0.1:99999'".into()),
        (format!("forward . {}", sixteen.join(" ")), "Corefile:1 - Error during parsing: more than 15 TOs configured: 16".into()),
        ("forward . 127.0.0.1 {\nexcept\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'except'".into()),
        ("forward . 127.0.0.1 {\nmax_fails\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'max_fails'".into()),
        ("forward . 127.0.0.1 {\nmax_fails x\n}".into(), "Corefile:2 - Error during parsing: strconv.ParseUint: parsing \"x\": invalid syntax".into()),
        ("forward . 127.0.0.1 {\nmax_fails -1\n}".into(), "Corefile:2 - Error during parsing: strconv.ParseUint: parsing \"-1\": invalid syntax".into()),
        ("forward . 127.0.0.1 {\nmax_fails 4294967296\n}".into(), "Corefile:2 - Error during parsing: strconv.ParseUint: parsing \"4294967296\": value out of range".into()),
        ("forward . 127.0.0.1 {\nhealth_check\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'health_check'".into()),
        ("forward . 127.0.0.1 {\nhealth_check no_rec\n}".into(), "Corefile:2 - Error during parsing: time: invalid duration \"no_rec\"".into()),
        ("forward . 127.0.0.1 {\nhealth_check -1s\n}".into(), "Corefile:2 - Error during parsing: health_check can't be negative: -1000000000".into()),
        ("forward . 127.0.0.1 {\nhealth_check 0.5s rec\n}".into(), "Corefile:2 - Error during parsing: health_check: unknown option rec".into()),
        ("forward . 127.0.0.1 {\nhealth_check 0.5s domain\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'domain'".into()),
        ("forward . 127.0.0.1 {\nhealth_check 0.5s domain example..org\n}".into(), "Corefile:2 - Error during parsing: health_check: invalid domain name example..org".into()),
        ("forward . 127.0.0.1 {\nforce_tcp extra\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'extra'".into()),
        ("forward . 127.0.0.1 {\nprefer_udp extra\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'extra'".into()),
        ("forward . 127.0.0.1 {\ntls a b c d\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'd'".into()),
        ("forward . 127.0.0.1 {\ntls /nonexistent/ca.pem\n}".into(), "Corefile:2 - Error during parsing: error reading /nonexistent/ca.pem: open /nonexistent/ca.pem: no such file or directory".into()),
        (format!("forward . 127.0.0.1 {{\ntls {not_pem}\n}}"), format!("Corefile:2 - Error during parsing: could not read root certs from {not_pem}")),
        ("forward . 127.0.0.1 {\ntls /nonexistent/c.pem /nonexistent/k.pem\n}".into(), "Corefile:2 - Error during parsing: could not load TLS cert: open /nonexistent/c.pem: no such file or directory".into()),
        (format!("forward . 127.0.0.1 {{\ntls {ca} /nonexistent/k.pem\n}}"), "Corefile:2 - Error during parsing: could not load TLS cert: open /nonexistent/k.pem: no such file or directory".into()),
        (format!("forward . 127.0.0.1 {{\ntls {ca} {ca}\n}}"), format!("Corefile:2 - Error during parsing: could not load TLS cert: {ca}: no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY PEM block found")),
        ("forward . 127.0.0.1 {\ntls_servername\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'tls_servername'".into()),
        ("forward . 127.0.0.1 {\ntls_servername a..b\n}".into(), "Corefile:2 - Error during parsing: invalid tls_servername 'a..b'".into()),
        (format!("forward . tls://127.0.0.1%a.example {{\ntls_servername b.example\ntls {ca}\n}}"), "Corefile:1 - Error during parsing: both forward ('b.example') and proxy level ('a.example') TLS servernames are set for upstream proxy 'tls://127.0.0.1:853'".into()),
        (format!("forward . tls://127.0.0.1%a..b {{\ntls {ca}\n}}"), "Corefile:1 - Error during parsing: invalid TLS server name 'a..b'".into()),
        ("forward . 127.0.0.1 {\nexpire\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'expire'".into()),
        ("forward . 127.0.0.1 {\nexpire abc\n}".into(), "Corefile:2 - Error during parsing: time: invalid duration \"abc\"".into()),
        ("forward . 127.0.0.1 {\nexpire -1.5s\n}".into(), "Corefile:2 - Error during parsing: expire can't be negative: -1.5s".into()),
        ("forward . 127.0.0.1 {\npolicy\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'policy'".into()),
        ("forward . 127.0.0.1 {\npolicy first\n}".into(), "Corefile:2 - Error during parsing: unknown policy 'first'".into()),
        ("forward . 127.0.0.1 {\nmax_concurrent\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'max_concurrent'".into()),
        ("forward . 127.0.0.1 {\nmax_concurrent many\n}".into(), "Corefile:2 - Error during parsing: strconv.Atoi: parsing \"many\": invalid syntax".into()),
        ("forward . 127.0.0.1 {\nmax_concurrent -4\n}".into(), "Corefile:2 - Error during parsing: max_concurrent can't be negative: -4".into()),
        ("forward . 127.0.0.1 {\nnext\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'next'".into()),
        ("forward . 127.0.0.1 {\nnext NXDOMAIN FOO\n}".into(), "Corefile:2 - Error during parsing: FOO is not a valid rcode".into()),
        ("forward . 127.0.0.1 {\nfailfast_all_unhealthy_upstreams now\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'now'".into()),
        ("forward . 127.0.0.1 {\nfailover\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'failover'".into()),
        ("forward . 127.0.0.1 {\nfailover bogus\n}".into(), "Corefile:2 - Error during parsing: bogus is not a valid rcode".into()),
        ("forward . 127.0.0.1 {\nfailover SERVFAIL NoError\n}".into(), "Corefile:2 - Error during parsing: NoError cannot be used in failover".into()),
        ("forward . 127.0.0.1 {\nread_timeout\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'read_timeout'".into()),
        ("forward . 127.0.0.1 {\nread_timeout 0\n}".into(), "Corefile:2 - Error during parsing: read_timeout must be positive: 0s".into()),
        ("forward . 127.0.0.1 {\nread_timeout -1s\n}".into(), "Corefile:2 - Error during parsing: read_timeout must be positive: -1s".into()),
        ("forward . 127.0.0.1 {\nread_timeout 5\n}".into(), "Corefile:2 - Error during parsing: time: missing unit in duration \"5\"".into()),
        ("forward . 127.0.0.1 {\nsource_address\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'source_address'".into()),
        ("forward . 127.0.0.1 {\nsource_address tun0\n}".into(), "Corefile:2 - Error during parsing: source_address: invalid IP address 'tun0'".into()),
        ("forward . 127.0.0.1 {\nsource_address ::1\n}".into(), "Corefile:1 - Error during parsing: source_address ::1 and upstream 127.0.0.1:53 are not of the same address family".into()),
        ("forward . 127.0.0.1 {\ninterface\n}".into(), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'interface'".into()),
        ("forward . 127.0.0.1 {\ninterface a/b\n}".into(), "Corefile:2 - Error during parsing: interface: invalid interface name 'a/b'".into()),
        ("forward . 127.0.0.1 {\ninterface sixteencharslong\n}".into(), "Corefile:2 - Error during parsing: interface: invalid interface name 'sixteencharslong'".into()),
    ];
    for (text, want) in &cases {
        assert_eq!(&err(text), want, "input {text:?}");
    }
}

#[test]
fn host_port_or_file_and_split_zone_as_coredns() {
    let to = |v: &[&str]| host_port_or_file(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        to(&[
            "1.2.3.4",
            "tls://1.2.3.4",
            "tls://1.2.3.4%dns.quad9.net",
            "tls://1.2.3.4%q:10853",
            "dns://::1"
        ])
        .unwrap(),
        vec![
            "1.2.3.4:53",
            "tls://1.2.3.4:853",
            "tls://1.2.3.4%dns.quad9.net:853",
            "tls://1.2.3.4%q:10853",
            "[::1]:53"
        ]
    );
    assert_eq!(
        split_zone("tls://1.2.3.4%dns.quad9.net:853"),
        ("tls://1.2.3.4:853".to_string(), "dns.quad9.net".to_string())
    );
    assert_eq!(
        split_zone("tls://[2620:fe::fe%dns.quad9.net]:853"),
        (
            "tls://[2620:fe::fe]:853".to_string(),
            "dns.quad9.net".to_string()
        )
    );
    assert_eq!(
        split_zone("1.2.3.4:53"),
        ("1.2.3.4:53".to_string(), String::new())
    );
}

#[test]
fn setup_builds_a_handler_per_line() {
    let block = crate::plugin::test_chain::block(&["example.org."]);
    let mut config = crate::plugin::config::BlockConfig::default();
    let mut ctx = crate::plugin::SetupCtx {
        block: &block,
        config: &mut config,
    };
    let p = setup(
        &mut dispenser("forward . 127.0.0.1 10.0.0.1:5353"),
        &mut ctx,
    )
    .unwrap()
    .expect("a handler");
    assert_eq!(p.name(), "forward");
    let e = setup(&mut dispenser("forward . 127.0.0.1 {\nbogus\n}"), &mut ctx)
        .err()
        .expect("an error");
    assert_eq!(
        e.to_string(),
        "Corefile:2 - Error during parsing: unknown property 'bogus'"
    );
}

// ---------------------------------------------------------------------------------------------
// policies

#[test]
fn sequential_keeps_configured_order() {
    let robin = AtomicU32::new(0);
    for _ in 0..5 {
        assert_eq!(order(Policy::Sequential, 3, &robin).as_slice(), &[0, 1, 2]);
    }
}

#[test]
fn round_robin_rotates_the_first_choice() {
    let robin = AtomicU32::new(0);
    let got: Vec<Vec<u8>> = (0..4)
        .map(|_| order(Policy::RoundRobin, 3, &robin).as_slice().to_vec())
        .collect();
    assert_eq!(
        got,
        vec![vec![1, 0, 2], vec![2, 0, 1], vec![0, 1, 2], vec![1, 0, 2]]
    );
    assert_eq!(order(Policy::RoundRobin, 1, &robin).as_slice(), &[0]);
}

#[test]
fn random_is_a_permutation_and_varies() {
    let robin = AtomicU32::new(0);
    let mut firsts = [0usize; 4];
    for _ in 0..400 {
        let o = order(Policy::Random, 4, &robin);
        let mut s = o.as_slice().to_vec();
        firsts[s[0] as usize] += 1;
        s.sort();
        assert_eq!(s, vec![0, 1, 2, 3]);
    }
    assert!(
        firsts.iter().all(|&n| n > 40),
        "every upstream goes first sometimes: {firsts:?}"
    );
    let mut swapped = 0;
    for _ in 0..200 {
        if order(Policy::Random, 2, &robin).as_slice() == [1, 0] {
            swapped += 1;
        }
    }
    assert!(
        (40..160).contains(&swapped),
        "two upstreams swap half the time: {swapped}"
    );
    assert_eq!(order(Policy::Random, 1, &robin).as_slice(), &[0]);
    assert!((0..3).contains(&random_one(3)));
    assert_eq!(random_one(1), 0);
}

// ---------------------------------------------------------------------------------------------
// scripted upstreams

/// A reply to `query`: ID and question echoed, RD copied, RA set, then `edit`.
fn answer(query: &[u8], edit: impl FnOnce(&mut Message)) -> Vec<u8> {
    let q = Message::from_vec(query).unwrap();
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.queries = q.queries.clone();
    edit(&mut m);
    m.to_vec().unwrap()
}

fn a_record(name: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(Name::from_ascii(name).unwrap(), 300, RData::A(A(ip.into())))
}

fn is_probe(q: &[u8]) -> bool {
    Message::from_vec(q)
        .map(|m| m.queries.first().map(|q| q.query_type()) == Some(RecordType::NS))
        .unwrap_or(false)
}

/// A scripted upstream: answers with `ip` while healthy, fails at once otherwise; counts the
/// client queries (not the probes) and the probes it saw.
struct Scripted {
    healthy: AtomicBool,
    queries: AtomicUsize,
    probes: AtomicUsize,
    ip: [u8; 4],
    rcode: Mutex<ResponseCode>,
    seen: Mutex<Vec<(Vec<u8>, Transport)>>,
}

impl Scripted {
    fn new(ip: [u8; 4]) -> Arc<Self> {
        Arc::new(Scripted {
            healthy: AtomicBool::new(true),
            queries: AtomicUsize::new(0),
            probes: AtomicUsize::new(0),
            ip,
            rcode: Mutex::new(ResponseCode::NoError),
            seen: Mutex::new(Vec::new()),
        })
    }

    fn net(self: &Arc<Self>) -> FakeNet {
        let me = self.clone();
        Arc::new(move |q: Vec<u8>, t: Transport| {
            let me = me.clone();
            async move {
                if is_probe(&q) {
                    me.probes.fetch_add(1, Ordering::SeqCst);
                } else {
                    me.queries.fetch_add(1, Ordering::SeqCst);
                    me.seen.lock().unwrap().push((q.clone(), t));
                }
                if !me.healthy.load(Ordering::SeqCst) {
                    return Err(ExchangeError::Io("connection refused".to_string()));
                }
                let rcode = *me.rcode.lock().unwrap();
                let ip = me.ip;
                Ok(answer(&q, |m| {
                    m.metadata.response_code = rcode;
                    if rcode == ResponseCode::NoError {
                        let name = m.queries[0].name().to_ascii();
                        m.answers.push(a_record(&name, ip));
                    }
                }))
            }
            .boxed()
        })
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    fn set_healthy(&self, on: bool) {
        self.healthy.store(on, Ordering::SeqCst);
    }
}

fn addr_n(i: usize) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, i as u8], 53))
}

/// A forward instance over scripted upstreams.
fn forward_with(cfg: Config, nets: Vec<FakeNet>) -> Arc<Forward> {
    forward_pinned(cfg, nets, Arc::new(Pin::none()))
}

fn forward_pinned(cfg: Config, nets: Vec<FakeNet>, pin: Arc<Pin>) -> Arc<Forward> {
    super::metrics::register();
    let ups = nets
        .into_iter()
        .enumerate()
        .map(|(i, n)| Arc::new(Upstream::fake(addr_n(i + 1), pin.clone(), n)))
        .collect();
    Arc::new(Forward::with_upstreams(cfg, ups, pin))
}

fn cfg() -> Config {
    let mut c = Config::new(".");
    c.policy = Policy::Sequential;
    c.hc_interval = Duration::from_millis(20);
    c.read_timeout = Duration::from_millis(200);
    c
}

async fn ask(f: &Forward, name: &str) -> Outcome {
    serve(f, &request(name, RecordType::A), &[Arc::new(NextMarker)]).await
}

fn answer_ip(out: Outcome) -> [u8; 4] {
    let m = reply_of(out);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    match m.answers.first().map(|r| &r.data) {
        Some(RData::A(a)) => a.0.octets(),
        other => panic!("expected an A answer, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// matching, relay, rcodes

#[tokio::test]
async fn from_and_except_decide_what_is_forwarded() {
    let up = Scripted::new([10, 0, 0, 1]);
    let mut c = cfg();
    c.from = "example.org.".to_string();
    c.ignored = vec!["sub.example.org.".to_string(), "example.org.".to_string()];
    let f = forward_with(c, vec![up.net()]);
    assert_eq!(ask(&f, "other.net.").await.plugin(), "next");
    assert_eq!(ask(&f, "a.sub.example.org.").await.plugin(), "next");
    assert_eq!(
        ask(&f, "www.example.org.").await.plugin(),
        "next",
        "except example.org covers its names"
    );
    // FROM itself is always forwarded, even when excepted.
    assert_eq!(answer_ip(ask(&f, "example.org.").await), [10, 0, 0, 1]);
    assert_eq!(up.queries(), 1);
    assert!(f.matches("example.org.") && !f.matches("www.example.org."));
}

#[tokio::test]
async fn reply_is_relayed_unchanged_with_the_client_id() {
    let up = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let seen = up.clone();
    let net: FakeNet = Arc::new(move |q: Vec<u8>, _t| {
        seen.lock().unwrap().push(q.clone());
        async move {
            Ok(answer(&q, |m| {
                m.metadata.response_code = ResponseCode::NXDomain;
                m.metadata.authoritative = true;
                m.metadata.authentic_data = true;
                m.metadata.checking_disabled = true;
                let soa = SOA::new(
                    Name::from_ascii("ns.example.org.").unwrap(),
                    Name::from_ascii("hostmaster.example.org.").unwrap(),
                    7,
                    3600,
                    600,
                    86400,
                    60,
                );
                m.authorities.push(Record::from_rdata(
                    Name::from_ascii("example.org.").unwrap(),
                    60,
                    RData::SOA(soa),
                ));
                m.additionals
                    .push(a_record("ns.example.org.", [10, 9, 9, 9]));
            }))
        }
        .boxed()
    });
    let f = forward_with(cfg(), vec![net]);
    let mut q = with_edns(query("NoSuch.Example.org.", RecordType::A), 1232, true);
    q.metadata.id = 777;
    q.metadata.checking_disabled = true;
    let req = request_from(q, "10.0.0.1:40000", Proto::Udp);
    let out = serve(&*f, &req, &[]).await;
    assert_eq!(out.plugin(), "forward");
    let m = reply_of(out);
    assert_eq!(m.metadata.id, 777, "the client's ID is restored");
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        m.metadata.authoritative && m.metadata.authentic_data && m.metadata.recursion_available
    );
    assert!(m.metadata.checking_disabled && m.metadata.recursion_desired);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(
        m.additionals,
        vec![a_record("ns.example.org.", [10, 9, 9, 9])]
    );
    assert_eq!(
        m.queries[0].name().to_ascii(),
        "NoSuch.Example.org.",
        "question as sent"
    );

    // The client's EDNS went upstream as is; the ID did not.
    let sent = up.lock().unwrap().clone();
    let q = Message::from_vec(&sent[0]).unwrap();
    let e = q.edns.expect("the client's OPT is forwarded");
    assert_eq!(e.max_payload(), 1232);
    assert!(e.flags().dnssec_ok);
    assert!(q.metadata.checking_disabled && q.metadata.recursion_desired);
    let mut ids = vec![q.metadata.id];
    for _ in 0..4 {
        serve(&*f, &req, &[]).await;
        ids.push(
            Message::from_vec(up.lock().unwrap().last().unwrap())
                .unwrap()
                .metadata
                .id,
        );
    }
    assert!(
        ids.iter().any(|&i| i != 777),
        "upstream IDs are fresh: {ids:?}"
    );
    ids.dedup();
    assert!(ids.len() > 1, "a fresh ID per query: {ids:?}");
}

#[tokio::test]
async fn a_reply_for_another_question_is_formerr() {
    let net: FakeNet = Arc::new(|q: Vec<u8>, _t| {
        async move {
            let mut m = Message::from_vec(&answer(&q, |_| {})).unwrap();
            m.queries[0].set_name(Name::from_ascii("evil.example.").unwrap());
            Ok(m.to_vec().unwrap())
        }
        .boxed()
    });
    let f = forward_with(cfg(), vec![net]);
    let out = ask(&f, "www.example.org.").await;
    assert_eq!(out.plugin(), "forward");
    let m = reply_of(out);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert!(m.answers.is_empty());
    assert_eq!(m.queries[0].name().to_ascii(), "www.example.org.");

    // Another type is as wrong as another name.
    let net: FakeNet = Arc::new(|q: Vec<u8>, _t| {
        async move {
            let mut m = Message::from_vec(&answer(&q, |_| {})).unwrap();
            m.queries[0].set_query_type(RecordType::AAAA);
            Ok(m.to_vec().unwrap())
        }
        .boxed()
    });
    let f = forward_with(cfg(), vec![net]);
    assert_eq!(
        reply_of(ask(&f, "www.example.org.").await)
            .metadata
            .response_code,
        ResponseCode::FormErr
    );
}

#[tokio::test]
async fn failover_tries_the_next_upstream_on_listed_rcodes() {
    let a = Scripted::new([10, 0, 0, 1]);
    let b = Scripted::new([10, 0, 0, 2]);
    *a.rcode.lock().unwrap() = ResponseCode::ServFail;
    let mut c = cfg();
    c.failover_rcodes = vec![2, 5];
    let f = forward_with(c.clone(), vec![a.net(), b.net()]);
    assert_eq!(answer_ip(ask(&f, "x.example.").await), [10, 0, 0, 2]);
    assert_eq!((a.queries(), b.queries()), (1, 1));

    // Every upstream fails over: the last reply is returned.
    *b.rcode.lock().unwrap() = ResponseCode::Refused;
    let m = reply_of(ask(&f, "x.example.").await);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!((a.queries(), b.queries()), (2, 2));

    // A down upstream is skipped; the failover replies still end in a reply, not a SERVFAIL
    // code.
    let c3 = Scripted::new([10, 0, 0, 3]);
    c3.set_healthy(false);
    let f3 = forward_with(c.clone(), vec![c3.net(), a.net(), b.net()]);
    f3.upstreams()[0].health.record(false);
    f3.upstreams()[0].health.record(false);
    let out = ask(&f3, "x.example.").await;
    assert_eq!(out.plugin(), "forward");
    assert!(matches!(out, Outcome::Wire { .. }), "{out:?}");
    assert_eq!(c3.queries(), 0);

    // Without failover the first reply is relayed as it is.
    let (qa, qb) = (a.queries(), b.queries());
    let f = forward_with(cfg(), vec![a.net(), b.net()]);
    let out = ask(&f, "x.example.").await;
    assert_eq!(out.plugin(), "forward");
    assert_eq!(reply_of(out).metadata.response_code, ResponseCode::ServFail);
    assert_eq!((a.queries(), b.queries()), (qa + 1, qb));
}

#[tokio::test]
async fn next_passes_listed_rcodes_to_the_next_forward() {
    let a = Scripted::new([10, 0, 0, 1]);
    let b = Scripted::new([10, 0, 0, 2]);
    *a.rcode.lock().unwrap() = ResponseCode::NXDomain;
    let mut c = cfg();
    c.next_rcodes = vec![3];
    let first = forward_with(c, vec![a.net()]);
    let second: Arc<dyn Plugin> = forward_with(cfg(), vec![b.net()]);
    let req = request("www.example.org.", RecordType::A);
    let out = serve(&*first, &req, &[second.clone(), Arc::new(NextMarker)]).await;
    assert_eq!(answer_ip(out), [10, 0, 0, 2]);
    assert_eq!((a.queries(), b.queries()), (1, 1));

    // The next plugin is not a forward: the NXDOMAIN is relayed.
    let out = serve(&*first, &req, &[Arc::new(NextMarker)]).await;
    assert_eq!(out.plugin(), "forward");
    assert_eq!(reply_of(out).metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn max_concurrent_refuses_over_the_limit() {
    let net: FakeNet = Arc::new(|q: Vec<u8>, _t| {
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(answer(&q, |_| {}))
        }
        .boxed()
    });
    let mut c = cfg();
    c.max_concurrent = 1;
    let f = forward_with(c, vec![net]);
    let before = super::metrics::MAX_CONCURRENT_REJECTS.get();
    let (x, y) = tokio::join!(ask(&f, "a.example."), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        ask(&f, "b.example.").await
    });
    assert_eq!(x.rcode(), Some(ResponseCode::NoError));
    assert!(
        matches!(
            y,
            Outcome::Code {
                rcode: ResponseCode::Refused,
                plugin: "forward"
            }
        ),
        "{y:?}"
    );
    assert!(super::metrics::MAX_CONCURRENT_REJECTS.get() > before);
    // The slot is released: the next query passes.
    assert_eq!(
        ask(&f, "c.example.").await.rcode(),
        Some(ResponseCode::NoError)
    );
}

#[tokio::test]
async fn transport_follows_the_client_unless_told() {
    let up = Scripted::new([10, 0, 0, 1]);
    let f = forward_with(cfg(), vec![up.net()]);
    let udp = request("a.example.", RecordType::A);
    let tcp = request_from(
        query("b.example.", RecordType::A),
        "10.0.0.1:40000",
        Proto::Tcp,
    );
    serve(&*f, &udp, &[]).await;
    serve(&*f, &tcp, &[]).await;
    let mut c = cfg();
    c.force_tcp = true;
    let forced = forward_with(c, vec![up.net()]);
    serve(&*forced, &udp, &[]).await;
    let mut c = cfg();
    c.prefer_udp = true;
    let preferred = forward_with(c, vec![up.net()]);
    serve(&*preferred, &tcp, &[]).await;
    let seen: Vec<Transport> = up.seen.lock().unwrap().iter().map(|(_, t)| *t).collect();
    assert_eq!(
        seen,
        vec![
            Transport::Udp,
            Transport::Tcp,
            Transport::Tcp,
            Transport::Udp
        ]
    );
}

/// An upstream that truncates over UDP and answers in full over TCP.
fn truncating(calls: Arc<Mutex<Vec<Transport>>>) -> FakeNet {
    Arc::new(move |q: Vec<u8>, t: Transport| {
        calls.lock().unwrap().push(t);
        async move {
            Ok(answer(&q, |m| {
                if t == Transport::Udp {
                    m.metadata.truncation = true;
                } else {
                    let name = m.queries[0].name().to_ascii();
                    m.answers.push(a_record(&name, [10, 0, 0, 7]));
                }
            }))
        }
        .boxed()
    })
}

#[tokio::test]
async fn truncated_replies_are_relayed_or_retried_over_tcp_with_prefer_udp() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let f = forward_with(cfg(), vec![truncating(calls.clone())]);
    let m = reply_of(ask(&f, "big.example.").await);
    assert!(
        m.metadata.truncation,
        "TC relayed to the UDP client, who retries over TCP"
    );
    assert!(m.answers.is_empty());
    assert_eq!(*calls.lock().unwrap(), vec![Transport::Udp]);

    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut c = cfg();
    c.prefer_udp = true;
    let f = forward_with(c, vec![truncating(calls.clone())]);
    assert_eq!(answer_ip(ask(&f, "big.example.").await), [10, 0, 0, 7]);
    assert_eq!(*calls.lock().unwrap(), vec![Transport::Udp, Transport::Tcp]);
}

// ---------------------------------------------------------------------------------------------
// health

#[tokio::test]
async fn a_failing_upstream_is_probed_marked_down_skipped_and_recovers() {
    let a = Scripted::new([10, 0, 0, 1]);
    let b = Scripted::new([10, 0, 0, 2]);
    a.set_healthy(false);
    let f = forward_with(cfg(), vec![a.net(), b.net()]);
    let ua = f.upstreams()[0].clone();
    let failures = || {
        super::metrics::HEALTHCHECK_FAILURES
            .with_label_values(&["forward", ua.to()])
            .get()
    };
    let failures_before = failures();

    // The failed exchange falls through to b and starts probing a.
    assert_eq!(answer_ip(ask(&f, "q1.example.").await), [10, 0, 0, 2]);
    assert_eq!(a.queries(), 1);
    wait_for("a marked down", || ua.down(2)).await;
    assert!(ua.fails() >= 2);
    assert!(failures() >= failures_before + 2);
    assert!(a.probes.load(Ordering::SeqCst) >= 2);
    // The probe is `. IN NS` with RD.
    let probe = Message::from_vec(&super::health::probe_query(".", true)).unwrap();
    assert!(probe.metadata.recursion_desired && probe.edns.is_none());
    assert_eq!(probe.queries[0].name().to_ascii(), ".");
    assert!(!f.all_upstreams_down());

    // Down: skipped without being asked.
    assert_eq!(answer_ip(ask(&f, "q2.example.").await), [10, 0, 0, 2]);
    assert_eq!(a.queries(), 1, "a down upstream is not tried");

    // It answers probes again: fails reset, probing stops, it is used again (sequential).
    a.set_healthy(true);
    wait_for("a recovered", || ua.fails() == 0 && !ua.health.probing()).await;
    assert!(!ua.down(2));
    assert_eq!(answer_ip(ask(&f, "q3.example.").await), [10, 0, 0, 1]);
    let probes = a.probes.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(
        a.probes.load(Ordering::SeqCst),
        probes,
        "no probes once healthy"
    );
}

#[tokio::test]
async fn all_down_fails_fast_with_failfast_else_tries_one_at_random() {
    let a = Scripted::new([10, 0, 0, 1]);
    let b = Scripted::new([10, 0, 0, 2]);
    a.set_healthy(false);
    b.set_healthy(false);
    let mut c = cfg();
    c.failfast_all_unhealthy_upstreams = true;
    let f = forward_with(c, vec![a.net(), b.net()]);
    let out = ask(&f, "q.example.").await;
    assert!(matches!(
        out,
        Outcome::Code {
            rcode: ResponseCode::ServFail,
            plugin: "forward"
        }
    ));
    let ups = f.upstreams().to_vec();
    wait_for("all down", || ups.iter().all(|u| u.down(2))).await;
    assert!(f.all_upstreams_down());

    let broken = super::metrics::HEALTHCHECK_BROKEN.get();
    let asked = a.queries() + b.queries();
    let start = Instant::now();
    let out = ask(&f, "q.example.").await;
    assert!(matches!(
        out,
        Outcome::Code {
            rcode: ResponseCode::ServFail,
            plugin: "forward"
        }
    ));
    assert!(start.elapsed() < Duration::from_millis(50), "immediate");
    assert_eq!(a.queries() + b.queries(), asked, "nothing is sent");
    assert!(super::metrics::HEALTHCHECK_BROKEN.get() > broken);

    // Without failfast one upstream is tried at random; b answers now.
    b.set_healthy(true);
    let f2 = forward_with(cfg(), vec![a.net(), b.net()]);
    for u in f2.upstreams() {
        u.health.record(false);
        u.health.record(false);
    }
    assert!(f2.all_upstreams_down());
    let mut answered = 0;
    for _ in 0..20 {
        let asked = a.queries() + b.queries();
        let out = ask(&f2, "r.example.").await;
        assert_eq!(a.queries() + b.queries(), asked + 1, "exactly one attempt");
        if out.rcode() == Some(ResponseCode::NoError) {
            answered += 1;
        } else {
            assert!(matches!(
                out,
                Outcome::Code {
                    rcode: ResponseCode::ServFail,
                    ..
                }
            ));
        }
    }
    assert!(
        answered > 0 && answered < 20,
        "random pick: {answered}/20 went to b"
    );
}

#[tokio::test]
async fn max_fails_zero_never_marks_down_nor_probes() {
    let a = Scripted::new([10, 0, 0, 1]);
    a.set_healthy(false);
    let mut c = cfg();
    c.max_fails = 0;
    let f = forward_with(c, vec![a.net()]);
    let out = ask(&f, "q.example.").await;
    assert!(matches!(
        out,
        Outcome::Code {
            rcode: ResponseCode::ServFail,
            ..
        }
    ));
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(a.probes.load(Ordering::SeqCst), 0);
    assert!(!f.upstreams()[0].down(0) && !f.all_upstreams_down());
    assert_eq!(
        a.queries(),
        2,
        "two rounds over the one upstream, then SERVFAIL"
    );
}

#[tokio::test]
async fn timeouts_end_in_servfail_and_are_logged() {
    let (_g, logs) = capture_logs();
    let net: FakeNet = Arc::new(|_q, _t| {
        async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Err(ExchangeError::Timeout)
        }
        .boxed()
    });
    let mut c = cfg();
    c.read_timeout = Duration::from_millis(50);
    c.max_fails = 0;
    let f = forward_with(c, vec![net]);
    let start = Instant::now();
    let out = ask(&f, "slow.example.").await;
    assert!(matches!(
        out,
        Outcome::Code {
            rcode: ResponseCode::ServFail,
            plugin: "forward"
        }
    ));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(1),
        "{took:?}"
    );
    assert!(
        logs.lines()
            .iter()
            .any(|l| l == "WARN exdns::plugin::forward: slow.example. A: 192.0.2.1:53: i/o timeout"),
        "{:?}",
        logs.lines()
    );
}

#[tokio::test]
async fn shutdown_stops_probing() {
    let a = Scripted::new([10, 0, 0, 1]);
    a.set_healthy(false);
    let f = forward_with(cfg(), vec![a.net()]);
    ask(&f, "q.example.").await;
    wait_for("probing", || a.probes.load(Ordering::SeqCst) >= 1).await;
    f.on_shutdown();
    tokio::time::sleep(Duration::from_millis(40)).await;
    let probes = a.probes.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(a.probes.load(Ordering::SeqCst), probes);
    assert!(!f.upstreams()[0].health.probing());
}

// ---------------------------------------------------------------------------------------------
// real plain DNS on loopback

/// A DNS server on 127.0.0.1 (UDP and TCP, same port): A 192.0.2.1 for every name, truncated
/// over UDP for names starting with `big`; counts UDP and TCP queries.
struct PlainServer {
    addr: SocketAddr,
    udp: Arc<AtomicUsize>,
    tcp: Arc<AtomicUsize>,
    tcp_conns: Arc<AtomicUsize>,
}

fn plain_reply(q: &[u8], over_udp: bool) -> Option<Vec<u8>> {
    let msg = Message::from_vec(q).ok()?;
    let big = msg.queries.first()?.name().to_ascii().starts_with("big");
    Some(answer(q, |m| {
        if over_udp && big {
            m.metadata.truncation = true;
        } else {
            let name = m.queries[0].name().to_ascii();
            m.answers.push(a_record(&name, [192, 0, 2, 1]));
        }
    }))
}

async fn plain_server(ip: &str) -> PlainServer {
    let udp_sock = tokio::net::UdpSocket::bind(format!("{ip}:0"))
        .await
        .unwrap();
    let addr = udp_sock.local_addr().unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (udp, tcp, tcp_conns) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let u = udp.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        while let Ok((n, from)) = udp_sock.recv_from(&mut buf).await {
            u.fetch_add(1, Ordering::SeqCst);
            if let Some(r) = plain_reply(&buf[..n], true) {
                let _ = udp_sock.send_to(&r, from).await;
            }
        }
    });
    let (t, tc) = (tcp.clone(), tcp_conns.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tc.fetch_add(1, Ordering::SeqCst);
            let t = t.clone();
            tokio::spawn(async move {
                loop {
                    let mut len = [0u8; 2];
                    if s.read_exact(&mut len).await.is_err() {
                        break;
                    }
                    let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                    if s.read_exact(&mut q).await.is_err() {
                        break;
                    }
                    t.fetch_add(1, Ordering::SeqCst);
                    if let Some(r) = plain_reply(&q, false) {
                        let mut out = (r.len() as u16).to_be_bytes().to_vec();
                        out.extend_from_slice(&r);
                        if s.write_all(&out).await.is_err() {
                            break;
                        }
                    }
                }
            });
        }
    });
    PlainServer {
        addr,
        udp,
        tcp,
        tcp_conns,
    }
}

fn real_forward(text: &str) -> Arc<Forward> {
    super::metrics::register();
    Arc::new(Forward::new(ok(text)).unwrap())
}

#[tokio::test]
async fn plain_udp_and_tcp_upstream_with_pooling() {
    let srv = plain_server("127.0.0.1").await;
    let f = real_forward(&format!("forward . {}", srv.addr));
    let to = srv.addr.to_string();
    let hits = |proto: &str| {
        super::metrics::CONN_CACHE_HITS
            .with_label_values(&["forward", &to, proto])
            .get()
    };
    let misses = |proto: &str| {
        super::metrics::CONN_CACHE_MISSES
            .with_label_values(&["forward", &to, proto])
            .get()
    };

    for i in 0..3 {
        assert_eq!(
            answer_ip(ask(&f, &format!("u{i}.example.")).await),
            [192, 0, 2, 1]
        );
    }
    assert_eq!(srv.udp.load(Ordering::SeqCst), 3);
    assert_eq!((misses("udp"), hits("udp")), (1, 2), "one socket, reused");
    assert_eq!(f.upstreams()[0].udp_pool().unwrap().idle(), 1);
    let dur = super::metrics::REQUEST_DURATION
        .with_label_values(&["forward", &to, "NOERROR"])
        .get_sample_count();
    assert_eq!(dur, 3);

    // Truncated over UDP: relayed to a UDP client.
    assert!(reply_of(ask(&f, "big.example.").await).metadata.truncation);

    // A TCP client: TCP upstream, pipelined on one pooled connection.
    let tcp_req = |n: usize| {
        request_from(
            query(&format!("big{n}.example."), RecordType::A),
            "10.0.0.1:40000",
            Proto::Tcp,
        )
    };
    let reqs: Vec<Request> = (0..20).map(tcp_req).collect();
    let outs = futures::future::join_all(reqs.iter().map(|r| serve(&*f, r, &[]))).await;
    for o in outs {
        assert_eq!(answer_ip(o), [192, 0, 2, 1]);
    }
    assert_eq!(srv.tcp.load(Ordering::SeqCst), 20);
    assert_eq!(srv.tcp_conns.load(Ordering::SeqCst), 1);
    assert_eq!(misses("tcp"), 1);
    assert_eq!(hits("tcp"), 19);
}

#[tokio::test]
async fn pinned_to_loopback_by_interface_and_source() {
    let srv = plain_server("127.0.0.1").await;
    let f = real_forward(&format!(
        "forward . {} {{\n interface lo\n source_address 127.0.0.1\n}}",
        srv.addr
    ));
    assert_eq!(answer_ip(ask(&f, "a.example.").await), [192, 0, 2, 1]);
    let tcp = request_from(
        query("b.example.", RecordType::A),
        "10.0.0.1:40000",
        Proto::Tcp,
    );
    assert_eq!(answer_ip(serve(&*f, &tcp, &[]).await), [192, 0, 2, 1]);
    assert_eq!(srv.udp.load(Ordering::SeqCst), 1);
    assert_eq!(srv.tcp.load(Ordering::SeqCst), 1);
    assert!(!f.all_upstreams_down());

    // A source address that is not ours: the socket cannot be bound, nothing is sent.
    let f = real_forward(&format!(
        "forward . {} {{\n source_address 192.0.2.99\n max_fails 0\n}}",
        srv.addr
    ));
    let out = ask(&f, "c.example.").await;
    assert!(matches!(
        out,
        Outcome::Code {
            rcode: ResponseCode::ServFail,
            ..
        }
    ));
    assert_eq!(srv.udp.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_missing_interface_fails_closed_at_once() {
    let (_g, logs) = capture_logs();
    let up = Scripted::new([10, 0, 0, 1]);
    let pin = Arc::new(Pin::new(None, Some("exdnsnope0".to_string())));
    let f = forward_pinned(cfg(), vec![up.net(), up.net()], pin);
    let start = Instant::now();
    let out = ask(&f, "q.example.").await;
    assert!(matches!(
        out,
        Outcome::Code {
            rcode: ResponseCode::ServFail,
            plugin: "forward"
        }
    ));
    assert!(start.elapsed() < Duration::from_millis(50));
    assert_eq!(up.queries(), 0, "nothing is sent anywhere");
    assert!(f.all_upstreams_down());
    ask(&f, "q2.example.").await;
    let lines = logs.lines();
    let down: Vec<_> = lines
        .iter()
        .filter(|l| {
            *l == "ERROR exdns::plugin::forward::pin: interface exdnsnope0 does not exist; not forwarding (fail closed)"
        })
        .collect();
    assert_eq!(down.len(), 1, "logged once, not per query: {lines:?}");
}

#[test]
fn link_state_of_real_interfaces() {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    use std::os::fd::AsRawFd;
    assert!(matches!(pin::link_state_on(s.as_raw_fd(), "lo"), Ok(LinkState::Up(i)) if i > 0));
    assert_eq!(
        pin::link_state_on(s.as_raw_fd(), "exdnsnope0").unwrap(),
        LinkState::Missing
    );
    assert!(pin::valid_interface_name("tun0") && pin::valid_interface_name("wg-vpn.1"));
    assert!(!pin::valid_interface_name("") && !pin::valid_interface_name("a b"));
}

/// In a network namespace of its own (a thread that unshared CLONE_NEWNET; root only) the
/// loopback interface starts down: forwarding pinned to it fails closed until it is brought up,
/// resumes by itself, and fails closed again when it goes down.
#[test]
fn interface_down_fails_closed_and_recovery_is_automatic() {
    let t = std::thread::spawn(|| {
        // SAFETY: unshare only affects this thread's namespaces.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            let e = std::io::Error::last_os_error();
            assert_ne!(
                unsafe { libc::geteuid() },
                0,
                "root could not unshare a network namespace: {e}"
            );
            eprintln!("skipped: needs root to create a network namespace ({e})");
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (_g, logs) = capture_logs();
            // Bound to the wildcard address: 127.0.0.1 only exists once lo is up.
            let server = tokio::net::UdpSocket::bind("0.0.0.0:0").await.unwrap();
            let port = server.local_addr().unwrap().port();
            let seen = Arc::new(AtomicUsize::new(0));
            let s = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok((n, from)) = server.recv_from(&mut buf).await {
                    s.fetch_add(1, Ordering::SeqCst);
                    if let Some(r) = plain_reply(&buf[..n], true) {
                        let _ = server.send_to(&r, from).await;
                    }
                }
            });
            let f = real_forward(&format!(
                "forward . 127.0.0.1:{port} {{\n interface lo\n read_timeout 300ms\n}}"
            ));

            let start = Instant::now();
            let out = ask(&f, "a.example.").await;
            assert!(matches!(
                out,
                Outcome::Code {
                    rcode: ResponseCode::ServFail,
                    ..
                }
            ));
            assert!(start.elapsed() < Duration::from_millis(50));
            assert!(f.all_upstreams_down());

            pin::set_link_up("lo", true).unwrap();
            assert_eq!(answer_ip(ask(&f, "b.example.").await), [192, 0, 2, 1]);
            assert_eq!(seen.load(Ordering::SeqCst), 1);
            assert_eq!(f.upstreams()[0].udp_pool().unwrap().idle(), 1);
            assert!(!f.all_upstreams_down());

            pin::set_link_up("lo", false).unwrap();
            let start = Instant::now();
            let out = ask(&f, "c.example.").await;
            assert!(matches!(
                out,
                Outcome::Code {
                    rcode: ResponseCode::ServFail,
                    ..
                }
            ));
            assert!(start.elapsed() < Duration::from_millis(50));
            assert_eq!(
                f.upstreams()[0].udp_pool().unwrap().idle(),
                0,
                "pooled sockets dropped"
            );
            assert_eq!(seen.load(Ordering::SeqCst), 1, "nothing sent while down");

            pin::set_link_up("lo", true).unwrap();
            assert_eq!(answer_ip(ask(&f, "d.example.").await), [192, 0, 2, 1]);
            assert_eq!(seen.load(Ordering::SeqCst), 2);

            let lines = logs.lines();
            let down = lines
                .iter()
                .filter(|l| {
                    *l == "ERROR exdns::plugin::forward::pin: interface lo is down; not forwarding (fail closed)"
                })
                .count();
            let up = lines
                .iter()
                .filter(|l| *l == "INFO exdns::plugin::forward::pin: interface lo is up; forwarding resumed")
                .count();
            assert_eq!((down, up), (2, 2), "{lines:?}");
        });
    });
    t.join().unwrap();
}

/// A pinned interface that goes from down to missing (and back) is logged at each change of
/// reason, not only after the 10 s repeat interval: "is down" does not stay the last word about
/// an interface that was deleted. Root only (a network namespace of its own, a veth made there).
#[test]
fn a_new_reason_for_failing_closed_is_logged_at_once() {
    let t = std::thread::spawn(|| {
        // SAFETY: unshare only affects this thread's namespaces (and the processes it starts).
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            let e = std::io::Error::last_os_error();
            assert_ne!(
                unsafe { libc::geteuid() },
                0,
                "root could not unshare a network namespace: {e}"
            );
            eprintln!("skipped: needs root to create a network namespace ({e})");
            return;
        }
        let ip = |args: &[&str]| {
            let out = std::process::Command::new("ip").args(args).output();
            match out {
                Ok(o) => assert!(o.status.success(), "ip {args:?}: {o:?}"),
                Err(e) => panic!("ip {args:?}: {e}"),
            }
        };
        let (_g, logs) = capture_logs();
        ip(&[
            "link", "add", "exdt0", "type", "veth", "peer", "name", "exdt1",
        ]);
        let pin = Pin::new(None, Some("exdt0".to_string()));
        // Created down.
        assert!(matches!(pin.check(), Err(PinError::Down(_))));
        assert!(matches!(pin.check(), Err(PinError::Down(_))));
        ip(&["link", "del", "exdt0"]);
        assert!(matches!(pin.check(), Err(PinError::Missing(_))));
        assert!(matches!(pin.check(), Err(PinError::Missing(_))));
        ip(&[
            "link", "add", "exdt0", "type", "veth", "peer", "name", "exdt1",
        ]);
        assert!(matches!(pin.check(), Err(PinError::Down(_))));
        ip(&["link", "set", "exdt1", "up"]);
        ip(&["link", "set", "exdt0", "up"]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while pin.check().is_err() {
            assert!(Instant::now() < deadline, "exdt0 never came up");
            std::thread::sleep(Duration::from_millis(10));
        }
        let prefix = "exdns::plugin::forward::pin: interface exdt0";
        let want = [
            format!("ERROR {prefix} is down; not forwarding (fail closed)"),
            format!("ERROR {prefix} does not exist; not forwarding (fail closed)"),
            format!("ERROR {prefix} is down; not forwarding (fail closed)"),
            format!("INFO {prefix} is up; forwarding resumed"),
        ];
        assert_eq!(logs.lines(), want);
    });
    t.join().unwrap();
}

/// Replies are relayed byte for byte: a record type exdns knows nothing of, the upstream's EDNS
/// options and its name compression reach the client unchanged; only the ID and the OPT
/// record's size, version and DO bit are the client's.
#[tokio::test]
async fn replies_are_relayed_byte_for_byte() {
    // Answer: the question's name (pointer), type 65400, class IN, TTL 77, RDATA 1 2 3.
    // Additional: OPT with size 4096 and an NSID option ("up").
    let net: FakeNet = Arc::new(|q: Vec<u8>, _t| {
        async move {
            let mut r = q[..12].to_vec();
            r[2] |= 0x80; // QR
            r[3] = 0x80; // RA
            r[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 1]);
            let qend = 12 + crate::dns::wire::check_name(&q, 12).unwrap() - 12 + 4;
            r.extend_from_slice(&q[12..qend]);
            r.extend_from_slice(&[0xc0, 12, 0xff, 0x78, 0, 1, 0, 0, 0, 77, 0, 3, 1, 2, 3]);
            r.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 6, 0, 3, 0, 2, b'u', b'p']);
            Ok(r)
        }
        .boxed()
    });
    let f = forward_with(cfg(), vec![net]);
    let mut q = query("Odd.Example.org.", RecordType::A);
    q.metadata.id = 0x1234;
    let req = request_from(with_edns(q, 1400, true), "10.0.0.1:40000", Proto::Udp);
    let out = serve(&*f, &req, &[Arc::new(NextMarker)]).await;
    let Outcome::Wire {
        bytes,
        rcode,
        plugin,
    } = out
    else {
        panic!("expected a relayed reply, got {out:?}");
    };
    assert_eq!((rcode, plugin), (ResponseCode::NoError, "forward"));
    assert_eq!(bytes[..2], [0x12, 0x34], "the client's ID");
    let qend = 12 + 17 + 4;
    assert_eq!(&bytes[12..qend - 4], b"\x03Odd\x07Example\x03org\x00");
    assert_eq!(
        &bytes[qend..qend + 15],
        &[0xc0, 12, 0xff, 0x78, 0, 1, 0, 0, 0, 77, 0, 3, 1, 2, 3],
        "the unknown record, compression pointer included"
    );
    // OPT: exdns's size (1232), version 0, the client's DO, the upstream's NSID option.
    assert_eq!(
        &bytes[qend + 15..],
        &[
            0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 6, 0, 3, 0, 2, b'u', b'p'
        ]
    );

    // Without EDNS in the query the OPT record is removed.
    let req = request("odd.example.org.", RecordType::A);
    let out = serve(&*f, &req, &[Arc::new(NextMarker)]).await;
    let Outcome::Wire { bytes, .. } = out else {
        panic!("expected a relayed reply, got {out:?}");
    };
    assert_eq!(bytes[10..12], [0, 0], "ARCOUNT");
    assert_eq!(bytes.len(), qend + 15);
}

/// A reply that is not a well-formed message (here an A record of 3 octets) is a failed
/// exchange: never relayed, the client gets SERVFAIL.
#[tokio::test]
async fn malformed_replies_fail_the_exchange() {
    let net: FakeNet = Arc::new(|q: Vec<u8>, _t| {
        async move {
            let mut r = answer(&q, |_| {});
            r[7] = 1; // ANCOUNT
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 3, 1, 2, 3]);
            Ok(r)
        }
        .boxed()
    });
    let mut c = cfg();
    c.max_fails = 0;
    let f = forward_with(c, vec![net]);
    let out = ask(&f, "www.example.org.").await;
    assert!(
        matches!(
            out,
            Outcome::Code {
                rcode: ResponseCode::ServFail,
                ..
            }
        ),
        "{out:?}"
    );
}
