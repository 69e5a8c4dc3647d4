//! Self-test of `support::unbound`: a real unbound answers its local data over UDP, TCP and DoT
//! (checked with dig and kdig), refuses everything else, and rejects TLS clients that expect another
//! name or do not trust its CA.

mod support;

use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use support::tlsecho::{DotClient, client_config, roots_from_pem};
use support::unbound::{self, Unbound, UnboundOpts};
use support::{digout, have, query, run};

fn opts() -> UnboundOpts {
    UnboundOpts::new()
        .static_zone("example.test")
        .data("www.example.test. 300 IN A 192.0.2.1")
        .data("txt.example.test. 60 IN TXT \"hello world\"")
        .data("mail.example.test. 300 IN MX 10 mx.example.test.")
}

fn tools() -> bool {
    if !unbound::available() {
        return false;
    }
    for t in ["dig", "kdig"] {
        if !have(t) {
            eprintln!("skipping: {t} is not installed (scripts/test.sh installs it)");
            return false;
        }
    }
    true
}

/// dig output with every run of whitespace made one space.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn dig(ub: &Unbound, extra: &[&str]) -> (i32, String) {
    let port = ub.addr.port().to_string();
    let server = format!("@{}", ub.addr.ip());
    let mut args = vec![server.as_str(), "-p", &port, "+time=2", "+tries=1"];
    args.extend_from_slice(extra);
    run("dig", &args)
}

fn kdig_tls(ub: &Unbound, hostname: &str, ca: Option<&str>, extra: &[&str]) -> (i32, String) {
    let t = ub.tls_addr();
    let port = t.port().to_string();
    let server = format!("@{}", t.ip());
    let ca_arg = match ca {
        Some(p) => format!("+tls-ca={p}"),
        None => "+tls-ca".to_string(),
    };
    let host_arg = format!("+tls-hostname={hostname}");
    let mut args = vec![
        server.as_str(),
        "-p",
        &port,
        "+tls",
        &ca_arg,
        &host_arg,
        "+time=2",
        "+retry=0",
    ];
    args.extend_from_slice(extra);
    run("kdig", &args)
}

#[test]
fn answers_local_data_over_udp_and_tcp() {
    if !tools() {
        return;
    }
    let ub = Unbound::start(opts());

    let (code, out) = dig(&ub, &["www.example.test", "A"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(
        digout::flags(&out).iter().any(|f| f == "aa"),
        "authoritative local data: {out}"
    );
    assert!(
        squash(&out).contains("www.example.test. 300 IN A 192.0.2.1"),
        "{out}"
    );

    let (_, out) = dig(&ub, &["+tcp", "txt.example.test", "TXT"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("\"hello world\""), "{out}");

    // NXDOMAIN and NODATA carry the zone's SOA in the authority section (its TTL capped at the SOA
    // minimum, as RFC 2308 has it).
    let (_, out) = dig(&ub, &["nope.example.test", "A"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert!(out.contains("AUTHORITY: 1"), "{out}");
    assert!(
        squash(&out).contains(
            "example.test. 300 IN SOA ns.example.test. hostmaster.example.test. 1 3600 900 604800 300"
        ),
        "{out}"
    );
    let (_, out) = dig(&ub, &["www.example.test", "AAAA"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("ANSWER: 0, AUTHORITY: 1"), "{out}");

    // Names outside the local data: refused, deterministically, without recursion.
    let (_, out) = dig(&ub, &["www.example.com", "A"]);
    assert!(out.contains("status: REFUSED"), "{out}");

    // The same through the in-process path (what the harness's probe uses).
    let reply = support::udp(ub.addr, &query("mail.example.test.", RecordType::MX, None));
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(reply.answers.len(), 1);
    assert!(matches!(&reply.answers[0].data, RData::MX(mx) if mx.preference == 10));

    assert!(ub.logged_queries("www.example.test") >= 1, "{}", ub.log());
    assert!(ub.num_queries() >= 6, "{:?}", ub.stats());
}

#[test]
fn answers_over_tls_with_the_right_name_only() {
    if !tools() {
        return;
    }
    let ub = Unbound::start(opts().server_name("dot.example.test"));
    let ca = ub.ca_pem.display().to_string();

    let (code, out) = kdig_tls(
        &ub,
        "dot.example.test",
        Some(&ca),
        &["www.example.test", "A"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("TLS session"), "kdig used TLS: {out}");
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("192.0.2.1"), "{out}");
    assert_eq!(ub.tls_queries(), 1, "{:?}", ub.stats());

    // A client expecting another name rejects the certificate.
    let (code, out) = kdig_tls(&ub, "other.example.test", Some(&ca), &["www.example.test"]);
    assert_ne!(code, 0, "{out}");
    assert!(!out.contains("status: NOERROR"), "{out}");
    // So does a client that does not trust the test CA (system roots only).
    let (code, out) = kdig_tls(&ub, "dot.example.test", None, &["www.example.test"]);
    assert_ne!(code, 0, "{out}");
    assert!(!out.contains("status: NOERROR"), "{out}");
    assert_eq!(ub.tls_queries(), 1, "failed handshakes carry no query");

    // The harness's own DoT client: pipelined queries on one connection.
    let cfg = client_config(roots_from_pem(&ub.ca_pem));
    let mut c = DotClient::connect(ub.tls_addr(), "dot.example.test", &cfg).unwrap();
    let q1 = query("www.example.test.", RecordType::A, Some(1232));
    let q2 = query("nope.example.test.", RecordType::A, Some(1232));
    c.send(&q1).unwrap();
    c.send(&q2).unwrap();
    let mut replies = [c.recv().unwrap(), c.recv().unwrap()];
    replies.sort_by_key(|m| m.metadata.id != q1.metadata.id);
    assert_eq!(replies[0].metadata.id, q1.metadata.id);
    assert_eq!(replies[0].metadata.response_code, ResponseCode::NoError);
    assert_eq!(replies[1].metadata.id, q2.metadata.id);
    assert_eq!(replies[1].metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(replies[1].authorities.len(), 1);
    assert!(DotClient::connect(ub.tls_addr(), "wrong.example.test", &cfg).is_err());
    drop(c);
    // A second connection with the same client configuration resumes the TLS session.
    let mut c = DotClient::connect(ub.tls_addr(), "dot.example.test", &cfg).unwrap();
    assert!(c.resumed(), "session resumed");
    assert_eq!(c.query(&q1).unwrap().metadata.id, q1.metadata.id);
    assert_eq!(ub.tls_resumed(), 1, "{:?}", ub.stats());
}

#[test]
fn stop_and_restart() {
    if !tools() {
        return;
    }
    let mut ub = Unbound::start(opts().no_tls());
    assert!(ub.tls_addr.is_none());
    assert!(ub.is_running());
    ub.stop();
    assert!(!ub.is_running());
    let (_, out) = dig(&ub, &["www.example.test", "A"]);
    assert!(
        !out.contains("status: NOERROR"),
        "stopped unbound answered: {out}"
    );
    ub.restart();
    let (code, out) = dig(&ub, &["www.example.test", "A"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("192.0.2.1"), "{out}");
}

#[test]
fn idle_tls_connections_are_closed_when_configured() {
    if !tools() {
        return;
    }
    let ub = Unbound::start(opts().tcp_idle_timeout(200));
    let cfg = client_config(roots_from_pem(&ub.ca_pem));
    let mut c = DotClient::connect(ub.tls_addr(), "dns.example.test", &cfg).unwrap();
    let q = query("www.example.test.", RecordType::A, None);
    assert_eq!(c.query(&q).unwrap().metadata.id, q.metadata.id);
    std::thread::sleep(Duration::from_millis(700));
    let closed = c.send(&q).and_then(|_| c.recv());
    assert!(
        closed.is_err(),
        "connection still open after the idle timeout"
    );
}
