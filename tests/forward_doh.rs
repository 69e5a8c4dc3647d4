//! `forward` to DNS-over-HTTPS upstreams (`https://IP[:port]`, CoreDNS 1.14 syntax) with a real
//! dnsdist DoH frontend (HTTP/2) in front of a real unbound: the answers are the ones dnsdist
//! gives when asked directly, queries go out with ID 0 over one reused HTTP/2 connection, the
//! certificate is verified as for DoT, and an upstream that stops is marked down by the health
//! checks and skipped.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::dnsdist::{self, Dnsdist, DnsdistOpts};
use support::fwd::{POLL, a_of, ask, assert_same_reply, ca_bundle, metric, scrape, wait_until};
use support::unbound::{self, Unbound, UnboundOpts};
use support::{Exdns, run};

const NAME: &str = "dns.example.test";
const METRICS: &str = "127.0.0.1:0";

fn ready() -> bool {
    unbound::available() && dnsdist::available()
}

/// The plain DNS backend dnsdist asks.
fn backend() -> Unbound {
    Unbound::start(
        UnboundOpts::new()
            .no_tls()
            .static_zone("example.test")
            .data("www.example.test. 300 IN A 192.0.2.1")
            .data("api.example.test. 300 IN A 192.0.2.2")
            .data("txt.example.test. 300 IN TXT \"hello DoH\""),
    )
}

/// exdns forwarding `.` to `to` (`https://…` upstreams) with these option lines.
fn exdns(to: &[String], options: &[String]) -> Exdns {
    let mut c = format!(
        ".:0 {{\n  prometheus {METRICS}\n  forward . {} {{\n",
        to.join(" ")
    );
    for o in options {
        c.push_str(&format!("    {o}\n"));
    }
    c.push_str("  }\n}\n");
    Exdns::start(&c)
}

fn https(d: &Dnsdist) -> String {
    format!("https://{}", d.doh_addr)
}

fn verified(d: &Dnsdist) -> Vec<String> {
    vec![
        format!("tls {}", d.ca_pem.display()),
        format!("tls_servername {NAME}"),
    ]
}

/// Established TCP connections to `port` on this host.
fn connections_to(port: u16) -> usize {
    let (code, out) = run(
        "ss",
        &[
            "-Htn",
            "state",
            "established",
            &format!("( dport = :{port} )"),
        ],
    );
    assert_eq!(code, 0, "ss: {out}");
    out.lines().filter(|l| !l.trim().is_empty()).count()
}

#[test]
fn answers_are_dnsdists_over_one_http2_connection_with_id_0() {
    if !ready() {
        return;
    }
    let ub = backend();
    let dd = Dnsdist::start(ub.addr, DnsdistOpts::new());
    for method in ["POST", "GET"] {
        let mut opts = verified(&dd);
        opts.push(format!("doh_method {method}"));
        let ex = exdns(&[https(&dd)], &opts);
        let cases: &[(&str, RecordType, ResponseCode)] = &[
            ("www.example.test.", RecordType::A, ResponseCode::NoError),
            ("api.example.test.", RecordType::A, ResponseCode::NoError),
            ("txt.example.test.", RecordType::TXT, ResponseCode::NoError),
            ("www.example.test.", RecordType::AAAA, ResponseCode::NoError),
            ("nope.example.test.", RecordType::A, ResponseCode::NXDomain),
            ("www.example.com.", RecordType::A, ResponseCode::Refused),
        ];
        for (name, qtype, rcode) in cases {
            let what = format!("{method} {name} {qtype}");
            let (got, _) = ask(ex.dns(), name, *qtype);
            assert_eq!(
                got.metadata.response_code,
                *rcode,
                "{what}: {}",
                ex.output()
            );
            let (direct, _) = ask(dd.addr, name, *qtype);
            assert_same_reply(&got, &direct, &what);
        }
        let (r, _) = ask(ex.dns(), "www.example.test.", RecordType::A);
        assert_eq!(
            a_of(&r),
            vec!["192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        // Queries at once share one HTTP/2 connection.
        let dns = ex.dns();
        let threads: Vec<_> = (0..24)
            .map(|i| {
                std::thread::spawn(move || {
                    let (r, _) = ask(dns, &format!("c{i}.example.test."), RecordType::A);
                    r.metadata.response_code
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), ResponseCode::NXDomain);
        }
        assert_eq!(
            connections_to(dd.doh_addr.port()),
            1,
            "one HTTP/2 connection"
        );
        drop(ex);
        assert!(
            wait_until(POLL, || connections_to(dd.doh_addr.port()) == 0),
            "the connection closes with exdns"
        );
    }
    // RFC 8484 §4.1: every query exdns sent (31 per method) reached dnsdist with ID 0; the
    // direct ones (random IDs) did not.
    let log = dd.log();
    assert_eq!(
        log.lines().filter(|l| l.ends_with(" with id 0")).count(),
        2 * 31,
        "{log}"
    );
}

#[test]
fn the_certificate_is_verified_as_for_dot() {
    if !ready() {
        return;
    }
    let ub = backend();
    let dd = Dnsdist::start(ub.addr, DnsdistOpts::new());
    let other = tempfile::tempdir().unwrap();
    let other_ca = support::certs::TestCa::new("another CA").write(other.path(), "other.pem");
    let right_ca = format!("tls {}", dd.ca_pem.display());
    let cases: &[(&str, Vec<String>, ResponseCode)] = &[
        (
            "the CA and the name",
            vec![right_ca.clone(), format!("tls_servername {NAME}")],
            ResponseCode::NoError,
        ),
        (
            "another name",
            vec![right_ca.clone(), "tls_servername other.example.test".into()],
            ResponseCode::ServFail,
        ),
        (
            "no name: the IP address, not in the certificate",
            vec![right_ca.clone()],
            ResponseCode::ServFail,
        ),
        (
            "another CA",
            vec![
                format!("tls {}", other_ca.display()),
                format!("tls_servername {NAME}"),
            ],
            ResponseCode::ServFail,
        ),
    ];
    for (what, opts, rcode) in cases {
        let mut opts = opts.clone();
        opts.push("max_fails 0".into());
        let ex = exdns(&[https(&dd)], &opts);
        let (r, _) = ask(ex.dns(), "www.example.test.", RecordType::A);
        assert_eq!(r.metadata.response_code, *rcode, "{what}: {}", ex.output());
    }
    let seen = dd
        .log()
        .lines()
        .filter(|l| l.contains("www.example.test."))
        .count();
    assert_eq!(seen, 1, "only the verified connection carried a query");
}

fn hc_failures(ex: &Exdns, to: SocketAddr) -> f64 {
    metric(
        &scrape(ex, METRICS),
        "coredns_proxy_healthcheck_failures_total",
        &[("proxy_name", "forward"), ("to", &to.to_string())],
    )
    .unwrap_or(0.0)
}

#[test]
fn a_doh_upstream_that_stops_is_marked_down_and_skipped() {
    if !ready() {
        return;
    }
    let ub = backend();
    let mut a = Dnsdist::start(ub.addr, DnsdistOpts::new());
    let b = Dnsdist::start(ub.addr, DnsdistOpts::new());
    let dir = tempfile::tempdir().unwrap();
    let bundle = ca_bundle(dir.path(), "cas.pem", &[&a.ca_pem, &b.ca_pem]);
    let ex = exdns(
        &[https(&a), https(&b)],
        &[
            format!("tls {}", bundle.display()),
            format!("tls_servername {NAME}"),
            "policy sequential".into(),
            "max_fails 2".into(),
            "health_check 100ms".into(),
            "read_timeout 500ms".into(),
        ],
    );
    let count = |d: &Dnsdist, name: &str| {
        d.log()
            .lines()
            .filter(|l| l.contains(&format!(" for {name} ")))
            .count()
    };
    let (r, _) = ask(ex.dns(), "q0.example.test.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        (count(&a, "q0.example.test."), count(&b, "q0.example.test.")),
        (1, 0)
    );
    assert_eq!(hc_failures(&ex, a.doh_addr), 0.0);

    a.stop();
    // The first query after the stop finds A's connection gone and goes on to B.
    let (r, _) = ask(ex.dns(), "q1.example.test.", RecordType::A);
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::NXDomain,
        "B answered"
    );
    assert_eq!(count(&b, "q1.example.test."), 1);
    // Probes over DoH fail (connection refused); after max_fails A is down.
    assert!(
        wait_until(POLL, || hc_failures(&ex, a.doh_addr) >= 3.0),
        "health check failures of A: {}",
        hc_failures(&ex, a.doh_addr)
    );
    assert_eq!(hc_failures(&ex, b.doh_addr), 0.0);
    for i in 2..6 {
        let name = format!("q{i}.example.test.");
        let (r, took) = ask(ex.dns(), &name, RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(took < Duration::from_millis(300), "{name} took {took:?}");
        assert_eq!(count(&b, &name), 1, "{name}");
    }
}
