//! The server chassis end to end: the real binary on ephemeral loopback ports, checked with a
//! DNS client library for exact rcodes, flags and sections.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use support::*;

const WHOAMI: &str = ".:0 {\n    whoami\n}\n";

#[test]
fn whoami_over_udp_and_tcp() {
    let ex = Exdns::start(WHOAMI);
    let q = query("example.org.", RecordType::A, None);
    let r = udp(ex.dns(), &q);
    assert_eq!(r.metadata.id, q.metadata.id);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.metadata.authoritative);
    assert!(r.metadata.recursion_desired, "RD is copied from the query");
    assert!(!r.metadata.recursion_available);
    assert_eq!(r.queries, q.queries, "question echoed");
    // As CoreDNS's whoami: empty answer, the address and an SRV with the port in additional.
    assert!(r.answers.is_empty());
    assert_eq!(r.additionals.len(), 2);
    assert_eq!(r.additionals[0].name.to_ascii(), "example.org.");
    let lo: std::net::Ipv4Addr = "127.0.0.1".parse().unwrap();
    assert_eq!(r.additionals[0].data, RData::A(lo.into()));
    assert_eq!(r.additionals[1].name.to_ascii(), "_udp.example.org.");
    match &r.additionals[1].data {
        RData::SRV(srv) => assert_ne!(srv.port, 0),
        other => panic!("{other:?}"),
    }
    assert!(
        r.edns.is_none(),
        "no OPT in the reply to a query without one"
    );

    let r = tcp(ex.dns(), &q);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.additionals[1].name.to_ascii(), "_tcp.example.org.");
}

#[test]
fn edns_is_answered_with_1232_and_do_echoed() {
    let ex = Exdns::start(WHOAMI);
    let mut q = query("example.org.", RecordType::A, Some(4096));
    q.edns.as_mut().unwrap().set_dnssec_ok(true);
    let r = udp(ex.dns(), &q);
    let e = r.edns.expect("OPT in reply");
    assert_eq!(e.max_payload(), 1232);
    assert_eq!(e.version(), 0);
    assert!(e.flags().dnssec_ok);
}

#[test]
fn unknown_edns_version_is_badvers() {
    let ex = Exdns::start(WHOAMI);
    let mut q = query("example.org.", RecordType::A, Some(1232));
    q.edns.as_mut().unwrap().set_version(1);
    let r = udp(ex.dns(), &q);
    assert_eq!(u16::from(r.metadata.response_code), 16, "BADVERS (16)");
    assert_eq!(r.edns.as_ref().unwrap().version(), 0);
    assert!(r.answers.is_empty());
}

#[test]
fn refused_outside_the_configured_zones_and_longest_zone_wins() {
    let ex = Exdns::start(
        "example.org:0 {\n  hosts {\n    192.0.2.1 www.example.org\n  }\n}\nsub.example.org:0 {\n  hosts {\n    192.0.2.2 www.sub.example.org\n  }\n}\n",
    );
    let r = udp(ex.dns(), &query("www.example.com.", RecordType::A, None));
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert!(r.answers.is_empty());
    assert_eq!(r.queries[0].name().to_ascii(), "www.example.com.");

    let r = udp(ex.dns(), &query("www.example.org.", RecordType::A, None));
    assert_eq!(
        r.answers[0].data,
        RData::A("192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap().into())
    );
    let r = udp(
        ex.dns(),
        &query("WWW.Sub.Example.ORG.", RecordType::A, None),
    );
    assert_eq!(
        r.answers[0].data,
        RData::A("192.0.2.2".parse::<std::net::Ipv4Addr>().unwrap().into())
    );
    // A name in the sub zone is answered by the sub block only, never by the parent's data.
    let r = udp(
        ex.dns(),
        &query("other.sub.example.org.", RecordType::A, None),
    );
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::ServFail,
        "hosts without fallthrough: SERVFAIL, as CoreDNS"
    );
}

#[test]
fn malformed_queries_get_formerr_and_never_crash() {
    let ex = Exdns::start(WHOAMI);
    // Header claims one question, body is garbage.
    let mut pkt = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    pkt.extend_from_slice(&[0xc0, 0x0c, 0xff, 0xff]); // compression pointer to itself
    let raw = udp_raw(ex.dns(), &pkt, Duration::from_secs(3)).expect("a FORMERR reply");
    let r = Message::from_vec(&raw).unwrap();
    assert_eq!(r.metadata.id, 0x1234);
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);

    // QDCOUNT 0.
    let mut q = query("example.org.", RecordType::A, None);
    q.queries.clear();
    let r = udp(ex.dns(), &q);
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);

    // QDCOUNT 2.
    let mut q = query("example.org.", RecordType::A, None);
    let extra = q.queries[0].clone();
    q.queries.push(extra);
    let r = udp(ex.dns(), &q);
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);

    // Shorter than a header: dropped. A response: dropped.
    assert!(udp_raw(ex.dns(), &[1, 2, 3], Duration::from_millis(300)).is_none());
    let mut resp = query("example.org.", RecordType::A, None);
    resp.metadata.message_type = hickory_proto::op::MessageType::Response;
    assert!(
        udp_raw(
            ex.dns(),
            &resp.to_vec().unwrap(),
            Duration::from_millis(300)
        )
        .is_none()
    );

    // Still serving.
    assert_eq!(
        udp(ex.dns(), &query("example.org.", RecordType::A, None))
            .metadata
            .response_code,
        ResponseCode::NoError
    );
}

#[test]
fn unknown_opcode_is_notimp() {
    let ex = Exdns::start(WHOAMI);
    // NOTIFY is accepted (as miekg/dns does) and answered NOTAUTH by a block without
    // `transfer`: this server is not a secondary of anything.
    for (op, rcode) in [
        (OpCode::Status, ResponseCode::NotImp),
        (OpCode::Update, ResponseCode::NotImp),
        (OpCode::Notify, ResponseCode::NotAuth),
    ] {
        let mut q = query("example.org.", RecordType::SOA, None);
        q.metadata.op_code = op;
        let r = udp(ex.dns(), &q);
        assert_eq!(r.metadata.response_code, rcode, "{op:?}");
        assert_eq!(r.metadata.op_code, op);
    }
}

/// CoreDNS's server: a DS query goes to the topmost block that serves the name (the parent side
/// of a delegation), else the root block; a zone defined without plugins is REFUSED.
#[test]
fn ds_goes_to_the_parent_block_and_empty_blocks_refuse() {
    let ex = Exdns::start(
        "example.org:0 {\n  template IN ANY {\n    rcode NXDOMAIN\n  }\n}\n\
         sub.example.org:0 {\n  whoami\n}\n\
         .:0 {\n  template IN ANY {\n    rcode YXDOMAIN\n  }\n}\n\
         empty.example.net:0 {\n}\n",
    );
    for (name, qtype, rcode) in [
        ("x.sub.example.org.", RecordType::A, ResponseCode::NoError),
        ("sub.example.org.", RecordType::A, ResponseCode::NoError),
        // The DS of sub.example.org is the parent's.
        ("sub.example.org.", RecordType::DS, ResponseCode::NXDomain),
        ("x.sub.example.org.", RecordType::DS, ResponseCode::NXDomain),
        ("example.org.", RecordType::DS, ResponseCode::NXDomain),
        // No block but the root serves example.com.
        ("example.com.", RecordType::DS, ResponseCode::YXDomain),
        ("example.com.", RecordType::A, ResponseCode::YXDomain),
        (
            "www.empty.example.net.",
            RecordType::A,
            ResponseCode::Refused,
        ),
        ("empty.example.net.", RecordType::DS, ResponseCode::Refused),
    ] {
        let r = udp(ex.dns(), &query(name, qtype, None));
        assert_eq!(r.metadata.response_code, rcode, "{name} {qtype}");
    }
}

fn big_hosts() -> String {
    let mut s = String::from("big.test:0 {\n  hosts {\n");
    for i in 0..60 {
        s.push_str(&format!(
            "    10.0.{}.{} many.big.test\n",
            i / 200,
            i % 200 + 1
        ));
    }
    s.push_str("  }\n}\n");
    s
}

#[test]
fn oversized_udp_replies_are_truncated_and_valid() {
    let ex = Exdns::start(&big_hosts());
    // 60 A records ≈ 60*16 bytes > 512: without EDNS the reply must be truncated.
    let r = udp(ex.dns(), &query("many.big.test.", RecordType::A, None));
    assert!(r.metadata.truncation, "TC set");
    assert!(r.answers.is_empty());
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.queries[0].name().to_ascii(), "many.big.test.");
    // A 4096-byte buffer holds it.
    let r = udp(
        ex.dns(),
        &query("many.big.test.", RecordType::A, Some(4096)),
    );
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 60);
    // And TCP always does.
    let r = tcp(ex.dns(), &query("many.big.test.", RecordType::A, None));
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 60);
}

#[test]
fn tcp_pipelining_answers_100_queries_on_one_connection() {
    let ex = Exdns::start(WHOAMI);
    let mut s = TcpStream::connect(ex.dns()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut ids = Vec::new();
    let mut all = Vec::new();
    for i in 0..100u16 {
        let mut q = query(&format!("q{i}.example.org."), RecordType::A, None);
        q.metadata.id = 1000 + i;
        ids.push(q.metadata.id);
        let b = q.to_vec().unwrap();
        all.extend_from_slice(&(b.len() as u16).to_be_bytes());
        all.extend_from_slice(&b);
    }
    s.write_all(&all).unwrap(); // back to back, one write
    let mut got = Vec::new();
    for _ in 0..100 {
        let r = Message::from_vec(&read_framed(&mut s).expect("reply")).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        let n = r.metadata.id - 1000;
        assert_eq!(r.queries[0].name().to_ascii(), format!("q{n}.example.org."));
        got.push(r.metadata.id);
    }
    got.sort_unstable();
    assert_eq!(got, ids);
}

#[test]
fn slow_answer_does_not_hold_back_fast_ones_on_one_connection() {
    let ex = Exdns::start(
        "slow.test:0 {\n  erratic {\n    delay 1 800ms\n  }\n}\nfast.test:0 {\n  whoami\n}\n",
    );
    let mut s = TcpStream::connect(ex.dns()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut slow = query("a.slow.test.", RecordType::A, None);
    slow.metadata.id = 1;
    write_framed(&mut s, &slow.to_vec().unwrap());
    for i in 0..5u16 {
        let mut q = query("b.fast.test.", RecordType::A, None);
        q.metadata.id = 100 + i;
        write_framed(&mut s, &q.to_vec().unwrap());
    }
    let start = Instant::now();
    let mut order = Vec::new();
    for _ in 0..6 {
        let r = Message::from_vec(&read_framed(&mut s).expect("reply")).unwrap();
        order.push((r.metadata.id, start.elapsed()));
    }
    let ids: Vec<u16> = order.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        ids.last(),
        Some(&1),
        "the slow answer comes last: {order:?}"
    );
    assert!(
        order[4].1 < Duration::from_millis(600),
        "fast answers did not wait for the slow one: {order:?}"
    );
    assert!(
        order[5].1 >= Duration::from_millis(700),
        "the slow one was delayed: {order:?}"
    );
}

#[test]
fn tcp_garbage_length_closes_the_connection_but_serving_goes_on() {
    let ex = Exdns::start(WHOAMI);
    let mut s = TcpStream::connect(ex.dns()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    // Claims 3 bytes of message: not a DNS header; nothing to answer; then a valid query.
    s.write_all(&[0, 3, 1, 2, 3]).unwrap();
    let q = query("x.example.org.", RecordType::A, None);
    write_framed(&mut s, &q.to_vec().unwrap());
    let r = Message::from_vec(&read_framed(&mut s).expect("reply after garbage")).unwrap();
    assert_eq!(r.metadata.id, q.metadata.id);
    assert_eq!(
        udp(ex.dns(), &q).metadata.response_code,
        ResponseCode::NoError
    );
}

#[test]
fn bind_to_an_address_and_to_an_interface() {
    // An address: only 127.0.0.2 listens.
    let ex = Exdns::start(".:0 {\n  bind 127.0.0.2\n  whoami\n}\n");
    let addr = ex.addr("dns://127.0.0.2:");
    assert_eq!(addr.ip().to_string(), "127.0.0.2");
    let r = udp(addr, &query("example.org.", RecordType::A, None));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(
        udp_raw(
            std::net::SocketAddr::from(([127, 0, 0, 1], addr.port())),
            &query("example.org.", RecordType::A, None).to_vec().unwrap(),
            Duration::from_millis(300)
        )
        .is_none(),
        "nothing listens on 127.0.0.1"
    );
    // An interface name expands to its addresses (lo: 127.0.0.1, and ::1 where configured).
    let ex = Exdns::start(".:0 {\n  bind lo\n  whoami\n}\n");
    let keys: Vec<&str> = ex.listeners.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.iter().any(|k| k.starts_with("dns://127.0.0.1:")),
        "{keys:?}"
    );
    let r = udp(
        ex.addr("dns://127.0.0.1:"),
        &query("example.org.", RecordType::A, None),
    );
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    // A missing interface is a startup error naming it.
    let out = run_corefile(".:0 {\n  bind nosuchif0\n  whoami\n}\n", &[]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("nosuchif0"), "{}", out.stderr);
}

/// As CoreDNS (SO_REUSEPORT on its listeners): a block restricted by `bind` and a wildcard block
/// listen on the same port, and each query goes to the most specific listener: on 127.0.0.1 the
/// bound block's zones, on any other address the wildcard block's.
#[test]
fn a_bound_block_and_a_wildcard_block_share_a_port() {
    let port = free_port();
    let _ex = Exdns::start(&format!(
        ".:{port} {{\n  bind 127.0.0.1\n  whoami\n}}\nother.zone:{port} {{\n  hosts {{\n    192.0.2.7 www.other.zone\n  }}\n}}\n"
    ));
    let at = |ip: [u8; 4]| std::net::SocketAddr::from((ip, port));
    let www = query("www.other.zone.", RecordType::A, None);
    let elsewhere = query("example.org.", RecordType::A, None);
    for (ask, proto) in [
        (udp as fn(std::net::SocketAddr, &Message) -> Message, "udp"),
        (tcp, "tcp"),
    ] {
        // 127.0.0.1: the bound block, whoami for any name.
        let r = ask(at([127, 0, 0, 1]), &www);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{proto}");
        assert!(
            r.answers.is_empty(),
            "whoami, not hosts, on 127.0.0.1 ({proto}): {r:?}"
        );
        let r = ask(at([127, 0, 0, 1]), &elsewhere);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{proto}");
        // 127.0.0.2: the wildcard block, other.zone only.
        let r = ask(at([127, 0, 0, 2]), &www);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{proto}");
        match r.answers.first().map(|a| &a.data) {
            Some(RData::A(a)) => assert_eq!(a.0.to_string(), "192.0.2.7", "{proto}"),
            other => panic!("{proto}: {other:?}"),
        }
        let r = ask(at([127, 0, 0, 2]), &elsewhere);
        assert_eq!(r.metadata.response_code, ResponseCode::Refused, "{proto}");
    }
}

/// CoreDNS's `debug`: with it the debug lines are logged, without it they are not.
#[test]
fn debug_turns_on_debug_lines() {
    const LINE: &str = "[DEBUG] plugin/rrl: request rate exceeded from 127.0.0.0";
    let corefile = |debug: &str| {
        format!(
            ".:0 {{\n  bind 127.0.0.1\n  {debug}\n  rrl . {{\n    requests-per-second 1\n  }}\n  whoami\n}}\n"
        )
    };
    let q = query("x.example.org.", RecordType::A, None)
        .to_vec()
        .unwrap();
    let ex = Exdns::start(&corefile("debug"));
    for _ in 0..3 {
        let _ = udp_raw(ex.dns(), &q, Duration::from_millis(200));
    }
    assert!(
        ex.wait_for_line(LINE, Duration::from_secs(5)),
        "{}",
        ex.output()
    );

    let ex = Exdns::start(&corefile(""));
    for _ in 0..3 {
        let _ = udp_raw(ex.dns(), &q, Duration::from_millis(200));
    }
    assert!(
        !ex.wait_for_line(LINE, Duration::from_millis(500)),
        "{}",
        ex.output()
    );
}
