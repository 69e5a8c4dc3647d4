//! Amplification defences of a public authoritative server, end to end with the real binary:
//! response rate limiting (`rrl`) with slip, minimal ANY (RFC 8482), no open recursion without
//! a `forward` block for the zone, and `acl` in front of a forwarder.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use support::fwd::{metric, scrape};
use support::*;

/// Sends `n` copies of `name A` (IDs 1..=n) from a socket bound to `from` at once, then
/// collects replies for a second. Returns (answered in full, truncated, no reply).
fn burst(server: SocketAddr, from: &str, name: &str, n: u16) -> (usize, usize, usize) {
    let s = UdpSocket::bind(from).unwrap();
    socket2::SockRef::from(&s)
        .set_recv_buffer_size(1 << 20)
        .unwrap();
    let mut wire = Vec::new();
    for id in 1..=n {
        let mut q = query(name, RecordType::A, None);
        q.metadata.id = id;
        wire.push(q.to_vec().unwrap());
    }
    for w in &wire {
        s.send_to(w, server).unwrap();
    }
    let mut seen = vec![None; n as usize + 1];
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut buf = vec![0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let Ok((len, _)) = s.recv_from(&mut buf) else {
            break;
        };
        let m = Message::from_vec(&buf[..len]).unwrap();
        let id = m.metadata.id as usize;
        assert!(id >= 1 && id <= n as usize, "unknown ID {id}");
        assert!(seen[id].is_none(), "two replies to {id}");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.queries[0].name().to_ascii(), name);
        seen[id] = Some(m.metadata.truncation);
        if m.metadata.truncation {
            assert!(m.answers.is_empty(), "a slipped reply is empty");
        } else {
            assert_eq!(m.answers.len(), 1);
        }
    }
    let full = seen.iter().filter(|s| **s == Some(false)).count();
    let tc = seen.iter().filter(|s| **s == Some(true)).count();
    (full, tc, n as usize - full - tc)
}

const RRL: &str = "example.org:0 {
    bind 127.0.0.1
    prometheus 127.0.0.1:0
    rrl {
        responses-per-second 2
        window 5
        slip-ratio 2
    }
    hosts {
        192.0.2.1 www.example.org
        192.0.2.2 mail.example.org
    }
}
";

#[test]
fn rrl_answers_the_allowance_then_drops_and_slips() {
    let ex = Exdns::start(RRL);
    let dns = ex.dns();
    // 12 identical queries at once: 2 answered (one second of credit; a low rate, so that a
    // slow machine cannot earn another one during the burst), then of the 10 over the limit
    // every second one slips through truncated and the others are dropped.
    assert_eq!(burst(dns, "127.0.0.1:0", "www.example.org.", 12), (2, 5, 5));
    // Another name is another account: its own 2.
    assert_eq!(burst(dns, "127.0.0.1:0", "mail.example.org.", 7), (2, 2, 3));
    // Another /24 is another client: its own 2 for the same name.
    assert_eq!(burst(dns, "127.0.1.1:0", "www.example.org.", 6), (2, 2, 2));
    // TCP is never limited: the limited client gets its full answers there.
    for _ in 0..10 {
        let r = tcp(dns, &query("www.example.org.", RecordType::A, None));
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(!r.metadata.truncation);
        assert_eq!(r.answers.len(), 1);
    }
    // Each response over the limit is counted for the client's prefix.
    let body = scrape(&ex, "127.0.0.1:0");
    assert_eq!(
        metric(
            &body,
            "coredns_rrl_responses_exceeded_total",
            &[("client_ip", "127.0.0.0")]
        ),
        Some(15.0),
        "{body}"
    );
    assert_eq!(
        metric(
            &body,
            "coredns_rrl_responses_exceeded_total",
            &[("client_ip", "127.0.1.0")]
        ),
        Some(4.0)
    );
}

#[test]
fn dig_retries_a_slipped_reply_over_tcp() {
    let ex = Exdns::start(
        "example.org:0 {\n  bind 127.0.0.1\n  rrl {\n    responses-per-second 2\n    slip-ratio 1\n  }\n  hosts {\n    192.0.2.1 www.example.org\n  }\n}\n",
    );
    let dns = ex.dns();
    // Use up the allowance and run the balance 9 s into debt (the 18 over it all slip with
    // slip-ratio 1), so that however long a loaded machine takes to start dig, its UDP query is
    // still over the limit (a 3-query debt once refilled before a slow dig asked).
    assert_eq!(burst(dns, "127.0.0.1:0", "www.example.org.", 20), (2, 18, 0));
    if !have("dig") {
        eprintln!("dig not installed: the real-client half of this test is skipped");
        return;
    }
    let port = dns.port().to_string();
    let (code, out) = run(
        "dig",
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "+tries=1",
            "+timeout=3",
            "www.example.org",
            "A",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("192.0.2.1"), "{out}");
    assert!(out.contains("(TCP)"), "the answer came over TCP: {out}");
}

#[test]
fn any_gets_one_small_hinfo_record() {
    // Without `any`, ANY for a name with many records would list them all.
    let mut cf = String::from("example.org:0 {\n  bind 127.0.0.1\n  any\n  hosts {\n");
    for i in 1..=50 {
        cf.push_str(&format!("    192.0.2.{i} www.example.org\n"));
        cf.push_str(&format!("    2001:db8::{i:x} www.example.org\n"));
    }
    cf.push_str("  }\n}\n");
    let ex = Exdns::start(&cf);
    let q = query("www.example.org.", RecordType::ANY, Some(4096));
    let raw = udp_raw(ex.dns(), &q.to_vec().unwrap(), Duration::from_secs(3)).unwrap();
    let r = Message::from_vec(&raw).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 1);
    assert_eq!(r.answers[0].record_type(), RecordType::HINFO);
    assert_eq!(r.answers[0].ttl, 8482);
    assert!(raw.len() < 100, "{} bytes", raw.len());
    // The records are still there for the types asked.
    let r = tcp(ex.dns(), &query("www.example.org.", RecordType::A, None));
    assert_eq!(r.answers.len(), 50);
}

#[test]
fn no_open_recursion_without_a_forward_block() {
    // An authoritative-only server (even with cache) refuses every name outside its zones,
    // RD or not: it never recurses or forwards.
    let ex = Exdns::start(
        "example.org:0 {\n  bind 127.0.0.1\n  cache 30\n  hosts {\n    192.0.2.1 www.example.org\n  }\n}\n",
    );
    for name in ["www.example.com.", "example.", "org.", "."] {
        for rd in [true, false] {
            let mut q = query(name, RecordType::A, Some(1232));
            q.metadata.recursion_desired = rd;
            let r = udp(ex.dns(), &q);
            assert_eq!(r.metadata.response_code, ResponseCode::Refused, "{name}");
            assert!(!r.metadata.recursion_available, "{name}");
            assert!(r.answers.is_empty() && r.authorities.is_empty(), "{name}");
        }
    }
    let r = udp(ex.dns(), &query("www.example.org.", RecordType::A, None));
    assert_eq!(r.answers.len(), 1);
    assert!(!r.metadata.recursion_available);
}

/// A UDP upstream answering `A 192.0.2.99` to everything; counts the queries it gets.
struct Upstream {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
}

impl Upstream {
    fn start() -> Upstream {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let count = queries.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                if q.queries.first().map(|q| q.name().to_ascii()).as_deref()
                    != Some("www.example.com.")
                {
                    // Health probes (`. NS`) are not counted.
                    let mut r =
                        Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
                    r.queries = q.queries.clone();
                    let _ = s.send_to(&r.to_vec().unwrap(), from);
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
                r.metadata.recursion_available = true;
                r.queries = q.queries.clone();
                r.answers.push(Record::from_rdata(
                    q.queries[0].name().clone(),
                    60,
                    RData::A(A("192.0.2.99".parse().unwrap())),
                ));
                let _ = s.send_to(&r.to_vec().unwrap(), from);
            }
        });
        Upstream { addr, queries }
    }
}

#[test]
fn a_forward_block_recurses_only_for_its_zone() {
    let up = Upstream::start();
    let ex = Exdns::start(&format!(
        "example.com:0 {{\n  bind 127.0.0.1\n  forward . {}\n}}\n",
        up.addr
    ));
    let r = udp(ex.dns(), &query("www.example.com.", RecordType::A, None));
    assert_eq!(r.answers.len(), 1);
    assert_eq!(up.queries.load(Ordering::SeqCst), 1);
    // Outside the forwarded zone: REFUSED, nothing sent upstream.
    let r = udp(ex.dns(), &query("www.example.net.", RecordType::A, None));
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert_eq!(up.queries.load(Ordering::SeqCst), 1);
}

/// One query from a socket bound to `from`.
fn udp_from(from: &str, server: SocketAddr, q: &Message) -> Message {
    let s = UdpSocket::bind(from).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.send_to(&q.to_vec().unwrap(), server).unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = s.recv_from(&mut buf).expect("a reply");
    Message::from_vec(&buf[..n]).unwrap()
}

#[test]
fn acl_restricts_the_forwarder_to_its_clients() {
    let up = Upstream::start();
    let ex = Exdns::start(&format!(
        ".:0 {{\n  bind 127.0.0.1\n  acl {{\n    allow net 127.0.0.2/32 127.0.5.0/24\n    block\n  }}\n  forward . {}\n}}\n",
        up.addr
    ));
    let q = query("www.example.com.", RecordType::A, None);
    // Allowed clients are forwarded.
    for from in ["127.0.0.2:0", "127.0.5.77:0"] {
        let r = udp_from(from, ex.dns(), &q);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{from}");
        assert_eq!(r.answers.len(), 1, "{from}");
    }
    assert_eq!(up.queries.load(Ordering::SeqCst), 2);
    // Everyone else is REFUSED before anything reaches the upstream, over UDP and TCP.
    for from in ["127.0.0.1:0", "127.0.0.3:0", "127.0.6.1:0"] {
        let r = udp_from(from, ex.dns(), &q);
        assert_eq!(r.metadata.response_code, ResponseCode::Refused, "{from}");
        assert!(r.answers.is_empty());
    }
    let r = tcp(ex.dns(), &q);
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert_eq!(
        up.queries.load(Ordering::SeqCst),
        2,
        "blocked queries never left"
    );
}
