//! `/health`, `/ready` and `/metrics` with CoreDNS-compatible content, and graceful shutdown.

mod support;

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::*;

const OPS: &str = ".:0 {\n  health 127.0.0.1:0 {\n    lameduck 1s\n  }\n  ready 127.0.0.2:0\n  prometheus 127.0.0.3:0\n  cache 30\n  whoami\n}\n";

#[test]
fn health_ready_metrics() {
    let ex = Exdns::start(OPS);
    let (s, head, body) = http_get(ex.http_addr("127.0.0.1:0"), "/health");
    assert_eq!((s, body.as_str()), (200, "OK"), "{head}");
    let (s, _, body) = http_get(ex.http_addr("127.0.0.2:0"), "/ready");
    assert_eq!((s, body.as_str()), (200, "OK"));

    let r = udp(ex.dns(), &query("example.org.", RecordType::A, None));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let _ = tcp(ex.dns(), &query("example.org.", RecordType::AAAA, None));
    let (s, head, body) = http_get(ex.http_addr("127.0.0.3:0"), "/metrics");
    assert_eq!(s, 200);
    assert!(
        head.to_lowercase().contains("content-type: text/plain"),
        "{head}"
    );
    for want in [
        "coredns_dns_requests_total{family=\"1\",proto=\"udp\",server=\"dns://:0\",type=\"A\",view=\"\",zone=\".\"} 1",
        "coredns_dns_requests_total{family=\"1\",proto=\"tcp\",server=\"dns://:0\",type=\"AAAA\",view=\"\",zone=\".\"} 1",
        "coredns_dns_responses_total{plugin=\"whoami\",rcode=\"NOERROR\",server=\"dns://:0\",view=\"\",zone=\".\"} 2",
        "coredns_dns_request_duration_seconds_bucket{",
        "coredns_dns_request_size_bytes_bucket{",
        "coredns_dns_response_size_bytes_bucket{",
        "coredns_build_info{",
        "coredns_plugin_enabled{name=\"cache\",server=\"dns://:0\",view=\"\",zone=\".\"} 1",
        "coredns_cache_misses_total{",
        "coredns_panics_total 0",
    ] {
        assert!(body.contains(want), "missing {want} in\n{body}");
    }
    let (s, _, _) = http_get(ex.http_addr("127.0.0.3:0"), "/nope");
    assert_eq!(s, 404);
}

/// As CoreDNS: `/ready` asks the plugins of the blocks that use `ready` (wherever their endpoint
/// is), and only those. `erratic` is not ready before its third query.
#[test]
fn ready_counts_the_plugins_of_blocks_that_use_it() {
    let ex =
        Exdns::start("a.test:0 {\n  ready 127.0.0.2:0\n  whoami\n}\nb.test:0 {\n  erratic\n}\n");
    let (s, _, body) = http_get(ex.http_addr("127.0.0.2:0"), "/ready");
    assert_eq!(
        (s, body.as_str()),
        (200, "OK"),
        "erratic's block has no ready"
    );

    let ex = Exdns::start(
        "a.test:0 {\n  ready 127.0.0.2:0\n  whoami\n}\nb.test:0 {\n  ready 127.0.0.2:0\n  erratic\n}\n",
    );
    let (s, _, body) = http_get(ex.http_addr("127.0.0.2:0"), "/ready");
    assert_eq!((s, body.as_str()), (503, "erratic"));
    // erratic drops every other query: answered or not, each one counts.
    let q = query("x.b.test.", RecordType::A, None).to_vec().unwrap();
    for _ in 0..3 {
        let _ = udp_raw(ex.dns(), &q, Duration::from_millis(300));
    }
    let (s, _, body) = http_get(ex.http_addr("127.0.0.2:0"), "/ready");
    assert_eq!(
        (s, body.as_str()),
        (200, "OK"),
        "erratic is ready after 3 queries"
    );
}

#[test]
fn sigterm_lameduck_then_exit_0() {
    let mut ex = Exdns::start(OPS);
    let dns = ex.dns();
    ex.signal(libc::SIGTERM);
    let t0 = Instant::now();
    // During lameduck: still answering, /ready says 503, /health says OK.
    std::thread::sleep(Duration::from_millis(200));
    let r = udp(dns, &query("example.org.", RecordType::A, None));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let (s, _, _) = http_get(ex.http_addr("127.0.0.2:0"), "/ready");
    assert_eq!(s, 503);
    let (s, _, _) = http_get(ex.http_addr("127.0.0.1:0"), "/health");
    assert_eq!(s, 200);
    let code = ex.wait_exit(Duration::from_secs(8));
    assert_eq!(code, Some(0), "{}", ex.output());
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "lameduck lasted about 1s"
    );
    assert!(
        ex.output().contains("Going into lameduck mode for 1s"),
        "{}",
        ex.output()
    );
}
