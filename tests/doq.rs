//! DNS over QUIC server blocks (`quic://`, RFC 9250) with real clients: dnspython's
//! `dns.query.quic` and an aioquic client (tests/support/doq.py) that sends exact bytes and
//! reports how the server closed the connection.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::EdnsOption;
use support::*;

const HOST: &str = "dns.example.test";

const ZONE: &str = "$ORIGIN example.org.\n\
@ 3600 IN SOA ns.example.org. admin.example.org. 1 7200 3600 1209600 3600\n\
@ 3600 IN NS ns.example.org.\n\
ns 3600 IN A 192.0.2.53\n\
www 3600 IN A 192.0.2.20\n";

fn script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/doq.py")
}

/// aioquic and dnspython are there (scripts/install-test-tools.sh installs them).
fn require_aioquic() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aioquic, dns.query"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    if std::env::var_os("EXDNS_ALLOW_MISSING_TOOLS").is_some() {
        eprintln!("skipping: python3 aioquic not installed");
        return false;
    }
    panic!("python3 aioquic is not installed (run `make test`, which installs the test tools)");
}

/// A `quic://` server for example.org with the test CA's certificate for [`HOST`]; `extra`
/// lines go into the block. Returns the server, the CA file and the DoQ address.
fn start(extra: &str) -> (Exdns, tempfile::TempDir, String, SocketAddr) {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certs(certs.path());
    let cf = format!(
        "quic://example.org:0 {{\n  tls {} {}\n{extra}\n  file db.example.org\n  transfer {{\n    to *\n  }}\n  prometheus 127.0.0.1:0\n}}\n",
        cert.display(),
        key.display()
    );
    let ex = Exdns::start_with(&cf, &[("db.example.org", ZONE)], &[]);
    let addr = ex.addr("quic://");
    (ex, certs, ca.display().to_string(), addr)
}

/// A test CA and its certificate for [`HOST`] in `dir`: (CA, certificate, key).
fn test_certs(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca = certs::TestCa::new("exdns test CA");
    let (cert, key) = ca.issue(&[HOST]).write(dir, "server");
    (ca.write(dir, "ca.pem"), cert, key)
}

/// Runs doq.py against `addr`, trusting `ca`, naming the server `host`.
fn doq(addr: SocketAddr, ca: &str, host: &str, args: &[&str]) -> String {
    let port = addr.port().to_string();
    let mut all = vec![script(), &port, ca, host];
    all.extend_from_slice(args);
    let (_, out) = run("python3", &all);
    out.trim().to_string()
}

/// The reply messages of a `raw` exchange, or what happened instead.
fn raw(addr: SocketAddr, ca: &str, msg: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let out = doq(addr, ca, HOST, &["raw", &hex(msg)]);
    match out.strip_prefix("reply ") {
        Some(rest) => Ok(rest.split(' ').map(unhex).collect()),
        None => Err(out),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn query0(name: &str, qtype: RecordType) -> Message {
    let mut q = query(name, qtype, Some(1232));
    q.metadata.id = 0;
    q
}

fn metric(ex: &Exdns, needle: &str) -> u64 {
    let (_, _, body) = http_get(ex.http_addr("127.0.0.1:0"), "/metrics");
    body.lines()
        .find(|l| l.starts_with(needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Answers over DoQ are the answers over UDP, byte for byte, with ID 0; a zone transfer comes
/// back on the query's stream; dnspython's DoQ client gets the answer.
#[test]
fn doq_answers_as_udp_does() {
    if !require_aioquic() {
        return;
    }
    let (ex, _certs, ca, addr) = start("");
    let cases: &[(&str, RecordType, ResponseCode, usize)] = &[
        ("www.example.org.", RecordType::A, ResponseCode::NoError, 1),
        ("example.org.", RecordType::NS, ResponseCode::NoError, 1),
        (
            "nope.example.org.",
            RecordType::A,
            ResponseCode::NXDomain,
            0,
        ),
        ("www.example.com.", RecordType::A, ResponseCode::Refused, 0),
    ];
    // A plain dns:// twin of the block answers the same bytes over UDP.
    let twin = Exdns::start_with(
        "example.org:0 {\n  file db.example.org\n}\n",
        &[("db.example.org", ZONE)],
        &[],
    );
    for (name, qtype, rcode, answers) in cases {
        let q = query0(name, *qtype).to_vec().unwrap();
        let got = raw(addr, &ca, &q).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.len(), 1, "{name}: one message on the stream");
        let m = Message::from_vec(&got[0]).unwrap();
        assert_eq!(m.metadata.id, 0, "{name}: ID 0 (RFC 9250 §4.2.1)");
        assert_eq!(m.metadata.response_code, *rcode, "{name}");
        assert_eq!(m.answers.len(), *answers, "{name}");
        assert!(!m.metadata.truncation, "{name}: never TC over DoQ");
        let over_udp = udp_raw(twin.dns(), &q, Duration::from_secs(5)).unwrap();
        assert_eq!(got[0], over_udp, "{name}: the same bytes as over UDP");
    }

    // AXFR over DoQ (RFC 9250 §4.2: the messages of a transfer on the query's stream).
    let got = raw(
        addr,
        &ca,
        &query0("example.org.", RecordType::AXFR).to_vec().unwrap(),
    )
    .expect("AXFR over DoQ");
    let records: Vec<_> = got
        .iter()
        .flat_map(|b| Message::from_vec(b).unwrap().answers)
        .collect();
    assert_eq!(records.len(), 5, "SOA, NS, A, A, SOA: {records:?}");
    assert_eq!(records[0].record_type(), RecordType::SOA);
    assert_eq!(records[4].record_type(), RecordType::SOA);

    // dnspython's client, verifying the server against the test CA.
    let out = doq(addr, &ca, HOST, &["query", "www.example.org", "A"]);
    assert!(out.contains("id 0\n"), "{out}");
    assert!(out.contains("rcode NOERROR"), "{out}");
    assert!(out.contains("flags QR AA RD"), "{out}");
    assert!(
        out.contains("www.example.org. 3600 IN A 192.0.2.20"),
        "{out}"
    );

    // CoreDNS's counter of DoQ streams answered, and the `proto` label DoQ gets there: udp.
    assert_eq!(
        metric(
            &ex,
            "coredns_dns_quic_responses_total{server=\"quic://:0\",status=\"0x0\"}"
        ),
        cases.len() as u64 + 2
    );
    assert!(
        metric(
            &ex,
            "coredns_dns_requests_total{family=\"1\",proto=\"udp\",server=\"quic://:0\""
        ) > 0,
        "DoQ queries count as proto=udp, as in CoreDNS"
    );
}

/// Each protocol error of RFC 9250 §4.3.3 closes the connection with DOQ_PROTOCOL_ERROR (0x2).
#[test]
fn doq_protocol_errors_close_the_connection() {
    if !require_aioquic() {
        return;
    }
    let (ex, _certs, ca, addr) = start("  timeouts {\n    read 1s\n  }");
    let good = query0("www.example.org.", RecordType::A).to_vec().unwrap();
    let nonzero = {
        let mut q = query0("www.example.org.", RecordType::A);
        q.metadata.id = 0x1234;
        q.to_vec().unwrap()
    };
    let keepalive = {
        let mut q = query0("www.example.org.", RecordType::A);
        let mut e = Edns::new();
        e.options_mut().insert(EdnsOption::Unknown(11, vec![]));
        q.edns = Some(e);
        q.to_vec().unwrap()
    };
    let mut response = good.clone();
    response[2] |= 0x80;
    let cases: &[(&str, &[u8])] = &[
        ("non-zero message ID", &nonzero),
        ("edns-tcp-keepalive option", &keepalive),
        ("a response", &response),
        ("a truncated message", &good[..good.len() - 3]),
        ("a zero length", &[]),
    ];
    for (what, msg) in cases {
        assert_eq!(raw(addr, &ca, msg), Err("closed 0x2".to_string()), "{what}");
    }
    // A stream that stops in the middle of its length prefix: closed after the read timeout.
    assert_eq!(doq(addr, &ca, HOST, &["stall"]), "closed 0x2");
    assert_eq!(
        metric(
            &ex,
            "coredns_dns_quic_responses_total{server=\"quic://:0\",status=\"0x2\"}"
        ),
        cases.len() as u64 + 1
    );
    // The server still answers.
    assert_eq!(raw(addr, &ca, &good).map(|r| r.len()), Ok(1));
}

/// The server is verified as DoT's is: the test CA and the certificate's name; ALPN `doq` only.
#[test]
fn doq_tls_verification_and_alpn() {
    if !require_aioquic() {
        return;
    }
    let (_ex, _certs, ca, addr) = start("");
    let q = hex(&query0("www.example.org.", RecordType::A).to_vec().unwrap());
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = test_certs(other.path());
    let other_ca = other_ca.display().to_string();
    let cases: &[(&str, &str, &str, Option<&str>, bool)] = &[
        ("the test CA and the name", &ca, HOST, None, true),
        ("another name", &ca, "other.example.test", None, false),
        ("another CA", &other_ca, HOST, None, false),
        ("ALPN dot", &ca, HOST, Some("dot"), false),
        ("ALPN h3", &ca, HOST, Some("h3"), false),
    ];
    for (what, ca, host, alpn, ok) in cases {
        let mut args = vec!["raw", q.as_str()];
        args.extend(alpn.iter());
        let out = doq(addr, ca, host, &args);
        assert_eq!(out.starts_with("reply 0000"), *ok, "{what}: {out}");
        if !ok {
            assert!(out.starts_with("failed"), "{what}: {out}");
        }
    }
}

/// Idle connections beyond the listener's share of one source, and garbage datagrams, do not
/// keep the server from answering a new client.
#[test]
fn doq_idle_connections_and_garbage_do_not_block_queries() {
    if !require_aioquic() {
        return;
    }
    let (_ex, _certs, ca, addr) = start("");
    let port = addr.port().to_string();
    // 150 connections from 127.0.0.1 that never ask anything (one source may hold 128).
    let mut idle = Command::new("python3")
        .args([script(), &port, &ca, HOST, "idle", "150", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(idle.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(
        line.trim(),
        "ready 150",
        "every idle connection was admitted"
    );
    // Garbage: short datagrams, a long one, a QUIC-looking long header with junk.
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..500u32 {
        let mut junk = vec![0xc0u8, 0, 0, 0, 1];
        junk.extend((0..(i % 1300)).map(|j| (j * 7 + i) as u8));
        s.send_to(&junk, addr).unwrap();
        s.send_to(&[i as u8], addr).unwrap();
    }
    let q = query0("www.example.org.", RecordType::A).to_vec().unwrap();
    let got = raw(addr, &ca, &q).expect("answered beside idle connections");
    let m = Message::from_vec(&got[0]).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
    let _ = idle.kill();
    let _ = idle.wait();
}

/// A reload with a new certificate: the listener stays (same port), new connections get the new
/// certificate.
#[test]
fn doq_reload_swaps_the_certificate_on_the_same_listener() {
    if !require_aioquic() {
        return;
    }
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ca_a, cert_a, key_a) = test_certs(a.path());
    let (ca_b, cert_b, key_b) = test_certs(b.path());
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let corefile = |cert: &str, key: &str| {
        format!("quic://example.org:0 {{\n  tls {cert} {key}\n  file db.example.org\n}}\n")
    };
    let ex = Exdns::start_with(
        &corefile("a.pem", "a.key"),
        &[
            ("db.example.org", ZONE),
            ("a.pem", &read(&cert_a)),
            ("a.key", &read(&key_a)),
            ("b.pem", &read(&cert_b)),
            ("b.key", &read(&key_b)),
        ],
        &[],
    );
    let addr = ex.addr("quic://");
    let q = hex(&query0("www.example.org.", RecordType::A).to_vec().unwrap());
    let (ca_a, ca_b) = (ca_a.display().to_string(), ca_b.display().to_string());
    let answered = |ca: &str| doq(addr, ca, HOST, &["raw", &q]).starts_with("reply 0000");
    assert!(answered(&ca_a), "{}", ex.output());
    assert!(!answered(&ca_b));

    ex.reload_with(&corefile("b.pem", "b.key"));
    // The very first connection after the reload gets the new certificate (it arrives before
    // the listener has made its new config, and is accepted with that config all the same).
    assert!(answered(&ca_b), "{}", ex.output());
    // Answered on the address bound at start-up: the same listener, not a new one.
    assert!(!answered(&ca_a));
}
