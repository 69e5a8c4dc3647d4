//! Health checking against real upstreams: an upstream that stops answering is probed, marked
//! down after `max_fails` failed probes and skipped (queries go to the other one, without waiting
//! for the dead one); with `failfast_all_unhealthy_upstreams` and every upstream down the answer is
//! an immediate SERVFAIL; when the upstream answers again it is used again without any help.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::Exdns;
use support::fwd::{POLL, a_of, ask, ca_bundle, metric, scrape, wait_until};
use support::tlsecho::{Behavior, TlsEcho, TlsEchoOpts};

const NAME: &str = "dns.example.test";
const METRICS: &str = "127.0.0.1:0";

/// exdns forwarding `.` to the DoT servers `ups` (trusting each one's CA).
fn exdns_tls(dir: &tempfile::TempDir, ups: &[&TlsEcho], options: &[&str]) -> Exdns {
    let pems: Vec<&std::path::Path> = ups.iter().map(|u| u.ca_pem.as_path()).collect();
    let bundle = ca_bundle(dir.path(), "cas.pem", &pems);
    let to: Vec<String> = ups.iter().map(|u| format!("tls://{}", u.addr)).collect();
    let mut c = format!(
        ".:0 {{\n  prometheus {METRICS}\n  forward . {} {{\n    tls {}\n    tls_servername {NAME}\n",
        to.join(" "),
        bundle.display()
    );
    for o in options {
        c.push_str(&format!("    {o}\n"));
    }
    c.push_str("  }\n}\n");
    Exdns::start(&c)
}

fn hc_failures(ex: &Exdns, to: SocketAddr) -> f64 {
    metric(
        &scrape(ex, METRICS),
        "coredns_proxy_healthcheck_failures_total",
        &[("proxy_name", "forward"), ("to", &to.to_string())],
    )
    .unwrap_or(0.0)
}

fn broken(ex: &Exdns) -> f64 {
    metric(
        &scrape(ex, METRICS),
        "coredns_forward_healthcheck_broken_total",
        &[],
    )
    .expect("coredns_forward_healthcheck_broken_total is exported")
}

#[test]
fn an_upstream_that_stops_answering_is_marked_down_skipped_and_recovers() {
    let a = TlsEcho::start(TlsEchoOpts::new());
    let b = TlsEcho::start(TlsEchoOpts::new());
    let dir = tempfile::tempdir().unwrap();
    // `sequential`: A is always tried first while it is healthy.
    let ex = exdns_tls(
        &dir,
        &[&a, &b],
        &[
            "policy sequential",
            "max_fails 2",
            "health_check 100ms",
            "read_timeout 500ms",
        ],
    );
    let (r, _) = ask(ex.dns(), "q0.example.test.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        (
            a.queries_for("q0.example.test"),
            b.queries_for("q0.example.test")
        ),
        (1, 0)
    );
    assert_eq!(hc_failures(&ex, a.addr), 0.0);

    // A reads queries but never answers again.
    a.set_behavior(Behavior::Hang);
    let (r, took) = ask(ex.dns(), "q1.example.test.", RecordType::A);
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::NoError,
        "B answered"
    );
    assert_eq!(
        (
            a.queries_for("q1.example.test"),
            b.queries_for("q1.example.test")
        ),
        (1, 1)
    );
    assert!(
        took >= Duration::from_millis(450),
        "A was waited for first: {took:?}"
    );

    // Probes (`. IN NS` to A) fail; after max_fails of them A is down.
    assert!(
        wait_until(POLL, || hc_failures(&ex, a.addr) >= 3.0),
        "health check failures of A: {}",
        hc_failures(&ex, a.addr)
    );
    assert!(a.queries_for(".") >= 3, "A was probed: {:?}", a.seen());
    assert!(
        a.seen()
            .iter()
            .filter(|s| s.name == ".")
            .all(|s| s.qtype == RecordType::NS && s.rd)
    );
    // Down: skipped, B answers at once.
    for i in 2..7 {
        let name = format!("q{i}.example.test.");
        let (r, took) = ask(ex.dns(), &name, RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(!a_of(&r).is_empty());
        assert!(took < Duration::from_millis(300), "{name} took {took:?}");
        assert_eq!(
            (a.queries_for(&name), b.queries_for(&name)),
            (0, 1),
            "{name}"
        );
    }
    assert_eq!(hc_failures(&ex, b.addr), 0.0);

    // A answers again: the next probe succeeds and A is used again, by itself.
    a.set_behavior(Behavior::Answer);
    let mut n = 100;
    assert!(
        wait_until(POLL, || {
            n += 1;
            let name = format!("q{n}.example.test.");
            let (r, _) = ask(ex.dns(), &name, RecordType::A);
            r.metadata.response_code == ResponseCode::NoError && a.queries_for(&name) == 1
        }),
        "A was not used again"
    );
    // And stays healthy: no more probes fail.
    let failures = hc_failures(&ex, a.addr);
    for i in 0..5 {
        let name = format!("after{i}.example.test.");
        let (r, took) = ask(ex.dns(), &name, RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a.queries_for(&name), 1);
        assert!(took < Duration::from_millis(300));
    }
    assert_eq!(hc_failures(&ex, a.addr), failures);
}

#[test]
fn failfast_all_unhealthy_upstreams_answers_servfail_at_once() {
    let a = TlsEcho::start(TlsEchoOpts::new());
    let b = TlsEcho::start(TlsEchoOpts::new());
    let dir = tempfile::tempdir().unwrap();
    let common = ["max_fails 1", "health_check 100ms", "read_timeout 1s"];
    let fast = exdns_tls(
        &dir,
        &[&a, &b],
        &[&common[..], &["failfast_all_unhealthy_upstreams"]].concat(),
    );
    // The control: the same without failfast.
    let slow = exdns_tls(&dir, &[&a, &b], &common);
    for ex in [&fast, &slow] {
        let (r, _) = ask(ex.dns(), "warm.example.test.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    }

    a.set_behavior(Behavior::Hang);
    b.set_behavior(Behavior::Hang);
    for ex in [&fast, &slow] {
        // The first failure starts the probes.
        let (r, _) = ask(ex.dns(), "first.example.test.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
        assert!(
            wait_until(POLL, || hc_failures(ex, a.addr) >= 2.0
                && hc_failures(ex, b.addr) >= 2.0),
            "both upstreams down"
        );
    }

    // Every upstream down, failfast: SERVFAIL at once, nothing sent.
    let broken_before = broken(&fast);
    let (seen_a, seen_b) = (
        a.queries_for("ff.example.test"),
        b.queries_for("ff.example.test"),
    );
    for _ in 0..3 {
        let (r, took) = ask(fast.dns(), "ff.example.test.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
        assert!(r.answers.is_empty());
        assert!(took < Duration::from_millis(300), "failfast took {took:?}");
    }
    assert_eq!(
        (
            a.queries_for("ff.example.test"),
            b.queries_for("ff.example.test")
        ),
        (seen_a, seen_b)
    );
    assert!(broken(&fast) >= broken_before + 3.0);
    // Logged (at most once a second, so ask until this name's line shows).
    assert!(
        wait_until(POLL, || {
            let (r, _) = ask(fast.dns(), "ff.example.test.", RecordType::A);
            assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
            fast.output()
                .contains("[WARNING] plugin/forward: ff.example.test. A: no healthy upstreams")
        }),
        "{}",
        fast.output()
    );
    assert_eq!(
        a.queries_for("ff.example.test") + b.queries_for("ff.example.test"),
        seen_a + seen_b
    );

    // Without failfast a random upstream is still tried: the answer waits for its timeout.
    let (r, took) = ask(slow.dns(), "spray.example.test.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    assert!(
        took >= Duration::from_millis(950),
        "no failfast took only {took:?}"
    );
    assert!(a.queries_for("spray.example.test") + b.queries_for("spray.example.test") >= 1);
    assert!(broken(&slow) >= 1.0);

    // Both answer again: recovery without a restart.
    a.set_behavior(Behavior::Answer);
    b.set_behavior(Behavior::Answer);
    for ex in [&fast, &slow] {
        assert!(
            wait_until(POLL, || {
                let (r, _) = ask(ex.dns(), "back.example.test.", RecordType::A);
                r.metadata.response_code == ResponseCode::NoError
            }),
            "no recovery: {}",
            ex.output()
        );
        let (r, took) = ask(ex.dns(), "again.example.test.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(took < Duration::from_millis(500), "{took:?}");
    }
}

#[test]
fn a_stopped_plain_upstream_is_skipped_and_used_again_after_restart() {
    let mut a = TlsEcho::start(TlsEchoOpts::new());
    let b = TlsEcho::start(TlsEchoOpts::new());
    let a_addr = a.addr;
    let ex = Exdns::start(&format!(
        ".:0 {{\n  prometheus {METRICS}\n  forward . {} {} {{\n    policy sequential\n    max_fails 2\n    health_check 100ms\n    read_timeout 500ms\n  }}\n}}\n",
        a.addr, b.addr
    ));
    let (r, _) = ask(ex.dns(), "p0.example.test.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a.queries_for("p0.example.test"), 1);

    // A is gone (its port refuses): B answers, and A's probes fail until it is down.
    a.stop();
    let (r, _) = ask(ex.dns(), "p1.example.test.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(b.queries_for("p1.example.test"), 1);
    assert!(wait_until(POLL, || hc_failures(&ex, a_addr) >= 3.0));
    for i in 2..6 {
        let name = format!("p{i}.example.test.");
        let (r, took) = ask(ex.dns(), &name, RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(b.queries_for(&name), 1);
        assert!(took < Duration::from_millis(300), "{took:?}");
    }

    // A comes back on the same address: used again once a probe succeeds.
    let a = TlsEcho::start(TlsEchoOpts::new().addr(a_addr));
    let mut n = 100;
    assert!(
        wait_until(POLL, || {
            n += 1;
            let name = format!("p{n}.example.test.");
            let (r, _) = ask(ex.dns(), &name, RecordType::A);
            r.metadata.response_code == ResponseCode::NoError && a.queries_for(&name) == 1
        }),
        "A was not used again"
    );
    assert!(a.queries_for(".") >= 1, "A was probed back to health");
}
