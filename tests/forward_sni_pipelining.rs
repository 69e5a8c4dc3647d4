//! The DoT client as seen by an in-process DoT upstream that records every ClientHello: SNI is
//! the configured server name; 200 concurrent client queries ride a few pipelined upstream
//! connections (and the connection-cache metrics show the reuse); a slow answer does not hold back
//! the others on the same connection; a connection the upstream closes is replaced transparently,
//! resuming the TLS session.

mod support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use support::fwd::{POLL, a_of, ask, metric, scrape, udp_burst, wait_until};
use support::tlsecho::{TlsEcho, TlsEchoOpts, Transport};
use support::{Exdns, query};

const NAME: &str = "dns.example.test";
const METRICS: &str = "127.0.0.1:0";

fn exdns(echo: &TlsEcho, to: &str, options: &[&str]) -> Exdns {
    let mut c = format!(
        ".:0 {{\n  prometheus {METRICS}\n  forward . {to} {{\n    tls {}\n",
        echo.ca_pem.display()
    );
    for o in options {
        c.push_str(&format!("    {o}\n"));
    }
    c.push_str("  }\n}\n");
    Exdns::start(&c)
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn client_hello_carries_the_configured_server_name() {
    // tls_servername.
    let echo = TlsEcho::start(TlsEchoOpts::new().alt_name("alt.example.test"));
    let ex = exdns(
        &echo,
        &format!("tls://{}", echo.addr),
        &[&format!("tls_servername {NAME}")],
    );
    let (r, _) = ask(ex.dns(), "www.example.test.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_of(&r), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    assert_eq!(echo.hello_snis(), vec![some(NAME)]);
    assert_eq!(echo.snis(), vec![some(NAME)], "the handshake completed");
    drop(ex);

    // A per-upstream name: `tls://IP%NAME:PORT`.
    let ex = exdns(
        &echo,
        &format!(
            "tls://{}%alt.example.test:{}",
            echo.addr.ip(),
            echo.addr.port()
        ),
        &[],
    );
    let (r, _) = ask(ex.dns(), "www.example.test.", RecordType::TXT);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        echo.hello_snis(),
        vec![some(NAME), some("alt.example.test")]
    );
    assert_eq!(
        echo.snis().last().cloned().flatten().as_deref(),
        Some("alt.example.test")
    );
    drop(ex);

    // No server name: no SNI at all (rustls does not send IP addresses) and the certificate,
    // which has no IP SAN, is rejected.
    let ex = exdns(&echo, &format!("tls://{}", echo.addr), &[]);
    let (r, _) = ask(ex.dns(), "www.example.test.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    assert!(wait_until(POLL, || echo.hello_snis().len() >= 3));
    assert_eq!(echo.hello_snis()[2], None, "{:?}", echo.hello_snis());
    assert_eq!(
        echo.tls_handshakes(),
        2,
        "only the two named handshakes completed"
    );
    assert_eq!(echo.num_queries(), 2);
}

fn hits_misses(ex: &Exdns, to: &str) -> (f64, f64) {
    let body = scrape(ex, METRICS);
    let labels = [("proxy_name", "forward"), ("to", to), ("proto", "tcp-tls")];
    (
        metric(&body, "coredns_proxy_conn_cache_hits_total", &labels).unwrap_or(0.0),
        metric(&body, "coredns_proxy_conn_cache_misses_total", &labels).unwrap_or(0.0),
    )
}

/// `n` queries for distinct names `pN-I.example.test.`.
fn burst_queries(prefix: &str, n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| query(&format!("{prefix}-{i}.example.test."), RecordType::A, None))
        .collect()
}

#[test]
fn two_hundred_concurrent_queries_ride_a_few_pipelined_connections() {
    let echo = TlsEcho::start(TlsEchoOpts::new());
    let ex = exdns(
        &echo,
        &format!("tls://{}", echo.addr),
        &[&format!("tls_servername {NAME}")],
    );
    let to = echo.addr.to_string();
    assert_eq!(hits_misses(&ex, &to), (0.0, 0.0));

    // Every answer takes 100 ms upstream, so queries pile up on the connections.
    let qs = burst_queries("p1", 200);
    for q in &qs {
        echo.set_delay(&q.queries[0].name().to_ascii(), Duration::from_millis(100));
    }
    let replies = udp_burst(ex.dns(), &qs, Duration::from_secs(8));
    for (q, r) in qs.iter().zip(&replies) {
        let (r, _) = r
            .as_ref()
            .unwrap_or_else(|| panic!("no reply for {:?}", q.queries[0]));
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a_of(r), vec![Ipv4Addr::new(192, 0, 2, 1)]);
        assert!(r.metadata.authentic_data);
    }
    assert_eq!(echo.num_queries(), 200);
    let conns = echo.connections();
    assert!((1..=4).contains(&conns), "{conns} upstream connections");
    assert!(
        echo.max_in_flight() > 1,
        "queries were pipelined: at most {} in flight",
        echo.max_in_flight()
    );
    let used: BTreeSet<u64> = echo.seen().iter().map(|s| s.conn).collect();
    assert!(used.len() <= 4, "{used:?}");
    assert!(echo.seen().iter().all(|s| s.transport == Transport::Tls));
    // One connection was opened cold (a miss); every other exchange reused one (or joined the
    // dial in progress).
    let (hits, misses) = hits_misses(&ex, &to);
    assert_eq!((hits, misses), (199.0, 1.0));

    // A second burst on the warm pool: all hits, no new connection beyond the limit.
    let qs = burst_queries("p2", 200);
    let replies = udp_burst(ex.dns(), &qs, Duration::from_secs(8));
    assert!(replies.iter().all(|r| {
        r.as_ref()
            .is_some_and(|(m, _)| m.metadata.response_code == ResponseCode::NoError)
    }));
    assert!(echo.connections() <= 4, "{}", echo.connections());
    assert_eq!(hits_misses(&ex, &to), (399.0, 1.0));
    assert_eq!(echo.tls_handshakes(), echo.connections());
}

#[test]
fn a_slow_answer_does_not_hold_back_the_others() {
    let echo = TlsEcho::start(TlsEchoOpts::new());
    echo.set_delay("slow.example.test", Duration::from_secs(1));
    let ex = exdns(
        &echo,
        &format!("tls://{}", echo.addr),
        &[&format!("tls_servername {NAME}")],
    );
    // Warm the pool: one connection.
    let (r, _) = ask(ex.dns(), "warm.example.test.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);

    let mut qs = vec![query("slow.example.test.", RecordType::A, None)];
    qs.extend(burst_queries("fast", 20));
    let replies = udp_burst(ex.dns(), &qs, Duration::from_secs(5));
    let slow_at = replies[0].as_ref().expect("slow reply").1;
    assert!(
        slow_at >= Duration::from_millis(950),
        "slow reply after {slow_at:?}"
    );
    let fast_last = replies[1..]
        .iter()
        .map(|r| r.as_ref().expect("fast reply").1)
        .max()
        .unwrap();
    assert!(
        fast_last + Duration::from_millis(500) < slow_at,
        "fast replies (last after {fast_last:?}) were held back by the slow one ({slow_at:?})"
    );
    // They all shared the one connection, the slow query sent first.
    assert_eq!(echo.connections(), 1);
    let seen = echo.seen();
    assert!(seen.iter().all(|s| s.conn == 1), "{seen:?}");
    let slow_pos = seen
        .iter()
        .position(|s| s.name == "slow.example.test.")
        .unwrap();
    assert!(
        seen[slow_pos + 1..]
            .iter()
            .any(|s| s.name.starts_with("fast-"))
    );
    assert!(echo.max_in_flight() > 1);
}

#[test]
fn closed_connections_are_replaced_transparently_and_resume_the_session() {
    let echo = TlsEcho::start(TlsEchoOpts::new().idle_timeout(Duration::from_secs(1)));
    let ex = exdns(
        &echo,
        &format!("tls://{}", echo.addr),
        &[&format!("tls_servername {NAME}")],
    );
    let (r, _) = ask(ex.dns(), "one.example.test.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(echo.tls_handshakes(), 1);

    // The upstream drops every connection at once (a restart); the next query still gets its
    // answer, over a new connection.
    echo.close_connections();
    assert!(wait_until(POLL, || echo.open_connections() == 0));
    let (r, _) = ask(ex.dns(), "two.example.test.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_of(&r), vec![Ipv4Addr::new(192, 0, 2, 1)]);

    // The upstream closes the idle connection; again no failure.
    assert!(wait_until(POLL, || echo.idle_closed() >= 1
        && echo.open_connections() == 0));
    let (r, _) = ask(ex.dns(), "three.example.test.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);

    assert_eq!(echo.tls_handshakes(), 3, "{:?}", echo.snis());
    assert!(
        echo.tls_resumed() >= 1,
        "a new connection resumed the TLS session"
    );
    assert!(echo.snis().iter().all(|s| s.as_deref() == Some(NAME)));
    for name in ["one", "two", "three"] {
        assert_eq!(
            echo.queries_for(&format!("{name}.example.test")),
            1,
            "{name}"
        );
    }
}
