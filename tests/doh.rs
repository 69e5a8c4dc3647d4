//! DNS over HTTPS (`https://` blocks, RFC 8484): the real clients `kdig +https`/`+https-get`,
//! `dig +https`/`+https-get`/`+http-plain` and `curl --doh-url` against the test CA; every HTTP
//! status of the DoH request rules over HTTP/1.1 and HTTP/2, with the reply bytes identical to
//! the TCP reply and the server answering after each error; metrics; and hostile clients
//! (slowloris over HTTP/1.1, HTTP/2 and TLS, more HTTP/2 streams than allowed, oversized
//! bodies) while a normal query is still answered.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use support::{Exdns, make_certs, query, read_framed, require, run, write_framed};

const NAME: &str = "dns.example.test";

/// An `https://` block with TLS from the test CA and a `dns://` key on the same block (the TCP
/// reply the DoH replies are compared with), plus `/metrics`.
fn tls_server(extra: &str) -> (Exdns, tempfile::TempDir, PathBuf) {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(certs.path(), NAME);
    let cf = format!(
        "example.org:0 https://example.org:0 {{\n  tls {} {}\n  prometheus 127.0.0.1:0\n{extra}  hosts {{\n    ttl 60\n    192.0.2.20 www.example.org\n  }}\n}}\n",
        cert.display(),
        key.display()
    );
    (Exdns::start(&cf), certs, ca)
}

/// The DoH wire form of a query for `name`/`qtype`: ID 0 (RFC 8484 §4.1), RD, no EDNS.
fn wire(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = query(name, qtype, None);
    m.metadata.id = 0;
    m.to_vec().unwrap()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The reply over TCP to the same bytes.
fn tcp_reply(addr: SocketAddr, q: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write_framed(&mut s, q);
    read_framed(&mut s).expect("tcp reply")
}

/// An HTTP exchange as curl saw it.
#[derive(Debug)]
struct Http {
    status: u16,
    /// The response head, lower-cased.
    head: String,
    body: Vec<u8>,
}

impl Http {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim())
        })
    }
}

/// Runs curl with `args` and returns the last response.
fn curl(args: &[&str]) -> Http {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let body = dir.path().join("body");
    let mut all: Vec<&str> = vec!["-s", "--max-time", "20", "-o"];
    let (h, b) = (head.display().to_string(), body.display().to_string());
    all.extend_from_slice(&[&b, "-D", &h, "-w", "%{http_code}"]);
    all.extend_from_slice(args);
    let (_, out) = run("curl", &all);
    Http {
        status: out.trim().parse().unwrap_or(0),
        head: std::fs::read_to_string(&head)
            .unwrap_or_default()
            .to_ascii_lowercase(),
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

/// curl's arguments to reach `port` as `NAME` trusting `ca`.
fn tls_args(port: u16, ca: &Path) -> Vec<String> {
    vec![
        "--resolve".into(),
        format!("{NAME}:{port}:127.0.0.1"),
        "--cacert".into(),
        ca.display().to_string(),
    ]
}

fn url(port: u16, path_and_query: &str) -> String {
    format!("https://{NAME}:{port}{path_and_query}")
}

#[test]
fn real_clients_over_https() {
    if !require("kdig") || !require("dig") || !require("curl") {
        return;
    }
    let (ex, _certs, ca) = tls_server("");
    let port = ex.addr("https://").port().to_string();
    let ca_arg = format!("+tls-ca={}", ca.display());
    let host_arg = format!("+tls-hostname={NAME}");
    // kdig: POST (its default) and GET, over HTTP/2.
    for (flag, method) in [("+https", "HTTP/2-POST"), ("+https-get", "HTTP/2-GET")] {
        let (code, out) = run(
            "kdig",
            &[
                "@127.0.0.1",
                "-p",
                &port,
                flag,
                &ca_arg,
                &host_arg,
                "www.example.org",
                "A",
            ],
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(method), "kdig {flag} used {method}: {out}");
        assert!(out.contains("(status: 200)"), "{out}");
        assert!(out.contains("status: NOERROR"), "{out}");
        assert!(
            out.contains("www.example.org.    \t60\tIN\tA\t192.0.2.20"),
            "{out}"
        );
    }
    // dig: POST and GET.
    for (flag, label) in [("+https", "(HTTPS)"), ("+https-get", "(HTTPS-GET)")] {
        let (code, out) = run(
            "dig",
            &[
                "@127.0.0.1",
                "-p",
                &port,
                flag,
                &ca_arg,
                &host_arg,
                "www.example.org",
                "A",
            ],
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(label), "dig {flag}: {out}");
        assert!(out.contains("status: NOERROR"), "{out}");
        assert!(
            out.contains("www.example.org.\t60\tIN\tA\t192.0.2.20"),
            "{out}"
        );
    }
    // A client that does not trust the certificate gets no answer.
    let (_, out) = run(
        "kdig",
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "+https",
            "+tls-ca",
            &host_arg,
            "www.example.org",
        ],
    );
    assert!(!out.contains("status: NOERROR"), "untrusted: {out}");
    // curl resolves a name through exdns (the connection itself then fails: nothing listens
    // on 192.0.2.20).
    let port: u16 = port.parse().unwrap();
    let mut args: Vec<String> = tls_args(port, &ca);
    args.extend([
        "-v".into(),
        "--connect-timeout".into(),
        "1".into(),
        "--doh-url".into(),
        url(port, "/dns-query"),
        "http://www.example.org:9/".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, out) = run_stderr("curl", &args);
    assert!(out.contains("DoH A: 192.0.2.20"), "{out}");
}

/// Runs a command, returns (status, stdout and stderr).
fn run_stderr(cmd: &str, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .expect("run command");
    let mut s = String::from_utf8_lossy(&out.stdout).to_string();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), s)
}

#[test]
fn http_statuses_over_http1_and_http2() {
    if !require("curl") {
        return;
    }
    let (ex, _certs, ca) = tls_server("");
    let port = ex.addr("https://").port();
    let tcp = ex.addr("dns://");
    let good = wire("www.example.org", RecordType::A);
    let good_reply = tcp_reply(tcp, &good);
    let nope = wire("nope.example.org", RecordType::A);
    let nope_reply = tcp_reply(tcp, &nope);
    let mut response = good.clone();
    response[2] |= 0x80;
    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = files.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        format!("@{}", p.display())
    };
    let good_body = write("good", &good);
    let big_body = write("big", &vec![0u8; 70_000]);
    let get = |q: &[u8]| format!("/dns-query?dns={}", b64(q));
    let ct = "content-type: application/dns-message";

    struct Case<'a> {
        name: &'a str,
        path: String,
        args: Vec<&'a str>,
        status: u16,
        /// For a 200: the reply (must equal the TCP reply) and its max-age.
        reply: Option<(&'a [u8], u32)>,
    }
    let cases = vec![
        Case {
            name: "GET",
            path: get(&good),
            args: vec![],
            status: 200,
            reply: Some((&good_reply, 60)),
        },
        Case {
            name: "POST",
            path: "/dns-query".into(),
            args: vec!["-H", ct, "--data-binary", &good_body],
            status: 200,
            reply: Some((&good_reply, 60)),
        },
        Case {
            name: "SERVFAIL reply: max-age 5",
            path: get(&nope),
            args: vec![],
            status: 200,
            reply: Some((&nope_reply, 5)),
        },
        Case {
            name: "other path",
            path: format!("/resolve?dns={}", b64(&good)),
            args: vec![],
            status: 404,
            reply: None,
        },
        Case {
            name: "no dns parameter",
            path: "/dns-query?name=www.example.org".into(),
            args: vec![],
            status: 400,
            reply: None,
        },
        Case {
            name: "bad base64",
            path: "/dns-query?dns=not*base64".into(),
            args: vec![],
            status: 400,
            reply: None,
        },
        Case {
            name: "padded base64",
            path: format!("/dns-query?dns={}=", b64(&good[..13])),
            args: vec![],
            status: 400,
            reply: None,
        },
        Case {
            name: "shorter than a header",
            path: get(&good[..7]),
            args: vec![],
            status: 400,
            reply: None,
        },
        Case {
            name: "undecodable question",
            path: get(&good[..good.len() - 3]),
            args: vec![],
            status: 400,
            reply: None,
        },
        Case {
            name: "a response",
            path: get(&response),
            args: vec![],
            status: 400,
            reply: None,
        },
        Case {
            name: "PUT",
            path: "/dns-query".into(),
            args: vec!["-X", "PUT", "-H", ct, "--data-binary", &good_body],
            status: 405,
            reply: None,
        },
        Case {
            name: "DELETE",
            path: get(&good),
            args: vec!["-X", "DELETE"],
            status: 405,
            reply: None,
        },
        Case {
            name: "POST of another media type",
            path: "/dns-query".into(),
            args: vec![
                "-H",
                "content-type: text/plain",
                "--data-binary",
                &good_body,
            ],
            status: 415,
            reply: None,
        },
        Case {
            name: "POST over 65535 octets",
            path: "/dns-query".into(),
            args: vec!["-H", ct, "--data-binary", &big_body],
            status: 413,
            reply: None,
        },
        Case {
            name: "chunked POST over 65535 octets",
            path: "/dns-query".into(),
            args: vec![
                "-H",
                ct,
                "-H",
                "transfer-encoding: chunked",
                "--data-binary",
                &big_body,
            ],
            status: 413,
            reply: None,
        },
    ];
    let tls: Vec<String> = tls_args(port, &ca);
    for version in ["--http1.1", "--http2"] {
        for c in &cases {
            // chunked is HTTP/1.1 only.
            if c.name.starts_with("chunked") && version == "--http2" {
                continue;
            }
            let u = url(port, &c.path);
            let mut args: Vec<&str> = tls.iter().map(String::as_str).collect();
            args.push(version);
            args.extend(c.args.iter().copied());
            args.push(&u);
            let r = curl(&args);
            let what = format!("{version} {}: {r:?}", c.name);
            assert_eq!(r.status, c.status, "{what}");
            let want_version = if version == "--http2" {
                "http/2 "
            } else {
                "http/1.1 "
            };
            assert!(r.head.starts_with(want_version), "{what}");
            match c.reply {
                Some((reply, age)) => {
                    assert_eq!(r.body, reply, "{what}");
                    assert_eq!(r.header("content-type"), Some("application/dns-message"));
                    let cc = format!("max-age={age}");
                    assert_eq!(r.header("cache-control"), Some(cc.as_str()), "{what}");
                    assert_eq!(
                        r.header("content-length"),
                        Some(reply.len().to_string().as_str())
                    );
                }
                None => {
                    assert_ne!(
                        r.header("content-type"),
                        Some("application/dns-message"),
                        "{what}"
                    );
                    if c.status == 405 {
                        assert_eq!(r.header("allow"), Some("get, post"), "{what}");
                    }
                }
            }
            // The server still answers.
            let u = url(port, &get(&good));
            let mut args: Vec<&str> = tls.iter().map(String::as_str).collect();
            args.extend([version, u.as_str()]);
            let after = curl(&args);
            assert_eq!(after.status, 200, "after {what}");
            assert_eq!(after.body, good_reply, "after {what}");
        }
    }
    // Metrics: replies by status, as CoreDNS counts them, and the queries with proto "tcp".
    let (_, _, metrics) = support::http_get(ex.http_addr("127.0.0.1:0"), "/metrics");
    let server = "https://:0";
    for (status, n) in [
        // 3 answered cases and an answered query after each of the 15 + 14 cases.
        ("200", 2 * 3 + 29),
        ("400", 2 * 6),
        ("404", 2),
        ("405", 2 * 2),
        ("413", 3),
        ("415", 2),
    ] {
        let line = format!(
            "coredns_dns_https_responses_total{{server=\"{server}\",status=\"{status}\"}} {n}"
        );
        assert!(metrics.contains(&line), "no {line:?} in\n{metrics}");
    }
    let line = format!(
        "coredns_dns_requests_total{{family=\"1\",proto=\"tcp\",server=\"{server}\",type=\"A\",view=\"\",zone=\"example.org.\"}}"
    );
    assert!(metrics.contains(&line), "no {line:?} in\n{metrics}");
}

/// Without `tls` an `https://` block serves plain HTTP (as CoreDNS does, for a proxy in front):
/// HTTP/1.1, and HTTP/2 with prior knowledge (`dig +http-plain`).
#[test]
fn plain_http_without_tls() {
    if !require("dig") || !require("curl") {
        return;
    }
    let ex = Exdns::start(
        "https://example.org:0 {\n  hosts {\n    192.0.2.20 www.example.org\n  }\n}\n",
    );
    let addr = ex.addr("https://");
    let port = addr.port().to_string();
    for (flag, label) in [("+http-plain", "(HTTP)"), ("+http-plain-get", "(HTTP-GET)")] {
        let (code, out) = run(
            "dig",
            &["@127.0.0.1", "-p", &port, flag, "www.example.org", "A"],
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(label), "dig {flag}: {out}");
        assert!(out.contains("status: NOERROR"), "{out}");
        assert!(
            out.contains("www.example.org.\t3600\tIN\tA\t192.0.2.20"),
            "{out}"
        );
    }
    let u = format!(
        "http://127.0.0.1:{port}/dns-query?dns={}",
        b64(&wire("www.example.org", RecordType::A))
    );
    let r = curl(&["--http1.1", &u]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.head.starts_with("http/1.1 200"), "{r:?}");
    let m = Message::from_vec(&r.body).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
}

// ---- hostile clients ----

/// A server with short timeouts so the hostile cases end quickly.
fn plain_server() -> Exdns {
    Exdns::start(
        "https://example.org:0 {\n  timeouts {\n    read 1s\n    idle 2s\n  }\n  hosts {\n    192.0.2.20 www.example.org\n  }\n}\n",
    )
}

/// A normal DoH query on a fresh connection is answered.
fn answered(addr: SocketAddr) {
    let u = format!(
        "http://127.0.0.1:{}/dns-query?dns={}",
        addr.port(),
        b64(&wire("www.example.org", RecordType::A))
    );
    let r = curl(&["--http1.1", &u]);
    assert_eq!(r.status, 200, "{r:?}");
}

/// Reads until the server closes the connection; false if it is still open after `within`.
fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn slowloris_is_closed_and_others_served() {
    let ex = plain_server();
    let addr = ex.addr("https://");
    // HTTP/1.1: a request head that never ends.
    let mut h1 = TcpStream::connect(addr).unwrap();
    h1.write_all(b"GET /dns-query?dns=AAAB HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    // HTTP/2: the preface, then a HEADERS frame whose header block never ends.
    let mut h2 = TcpStream::connect(addr).unwrap();
    h2.write_all(H2_PREFACE).unwrap();
    h2.write_all(&frame(4, 0, 0, &[])).unwrap();
    h2.write_all(&frame(1, 0, 1, &[0x82])).unwrap();
    // Connected and silent.
    let mut silent = TcpStream::connect(addr).unwrap();
    answered(addr);
    for (name, s) in [
        ("http/1.1", &mut h1),
        ("http/2", &mut h2),
        ("silent", &mut silent),
    ] {
        assert!(
            closed_by_server(s, Duration::from_secs(30)),
            "{name} slowloris connection still open"
        );
    }
    answered(addr);
}

#[test]
fn tls_handshake_never_finished_is_closed() {
    let (ex, _certs, ca) = tls_server("  timeouts {\n    read 1s\n    idle 2s\n  }\n");
    let addr = ex.addr("https://");
    let mut s = TcpStream::connect(addr).unwrap();
    // A TLS record header promising more than is ever sent.
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    let good = wire("www.example.org", RecordType::A);
    let tls = tls_args(addr.port(), &ca);
    let u = url(addr.port(), &format!("/dns-query?dns={}", b64(&good)));
    let mut args: Vec<&str> = tls.iter().map(String::as_str).collect();
    args.push(&u);
    assert_eq!(curl(&args).status, 200);
    assert!(closed_by_server(&mut s, Duration::from_secs(30)));
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len() as u32;
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, ty, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// (type, flags, stream, payload); None at EOF or timeout.
fn read_frame(s: &mut TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut h = [0u8; 9];
    s.read_exact(&mut h).ok()?;
    let n = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
    let mut p = vec![0u8; n];
    s.read_exact(&mut p).ok()?;
    let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
    Some((h[3], h[4], stream, p))
}

/// An HPACK header block of literal fields (never indexed, no Huffman).
fn hpack(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (k, v) in fields {
        assert!(k.len() < 127 && v.len() < 127);
        b.push(0x10);
        b.push(k.len() as u8);
        b.extend_from_slice(k.as_bytes());
        b.push(v.len() as u8);
        b.extend_from_slice(v.as_bytes());
    }
    b
}

/// The header block of `GET /dns-query?dns=…` for `www.example.org` A (h2c).
fn hpack_get() -> Vec<u8> {
    hpack(&[
        (":method", "GET"),
        (":scheme", "http"),
        (
            ":path",
            &format!(
                "/dns-query?dns={}",
                b64(&wire("www.example.org", RecordType::A))
            ),
        ),
        (":authority", "x"),
    ])
}

#[test]
fn http2_streams_are_bounded() {
    let ex = plain_server();
    let addr = ex.addr("https://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(H2_PREFACE).unwrap();
    s.write_all(&frame(4, 0, 0, &[])).unwrap();
    // The server's SETTINGS advertise the stream limit.
    let max_streams = loop {
        let (ty, flags, _, p) = read_frame(&mut s).expect("server SETTINGS");
        if ty == 4 && flags & 1 == 0 {
            break p
                .chunks(6)
                .find(|c| c[..2] == [0, 3])
                .map(|c| u32::from_be_bytes([c[2], c[3], c[4], c[5]]));
        }
    };
    assert_eq!(max_streams, Some(256));
    s.write_all(&frame(4, 1, 0, &[])).unwrap();
    // 300 POSTs whose bodies never come: 256 are taken, 44 refused.
    let post = hpack(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/dns-query"),
        (":authority", "x"),
        ("content-type", "application/dns-message"),
    ]);
    let mut out = Vec::new();
    for i in 0..300u32 {
        out.extend(frame(1, 0x4, 2 * i + 1, &post));
    }
    s.write_all(&out).unwrap();
    let mut refused = 0;
    while refused < 44 {
        let (ty, _, stream, p) =
            read_frame(&mut s).expect("RST_STREAM for the streams over the limit");
        if ty == 3 {
            assert_eq!(p, 7u32.to_be_bytes(), "REFUSED_STREAM on {stream}");
            assert!(stream > 2 * 256, "stream {stream} within the limit refused");
            refused += 1;
        }
    }
    // Another client is served meanwhile.
    answered(addr);
    // After the read timeout each stalled POST gets its 400; then the connection serves a query.
    let mut bad_requests = 0;
    while bad_requests < 256 {
        let (ty, _, stream, p) = read_frame(&mut s).expect("400 for each stalled POST");
        if ty == 1 {
            assert_eq!(
                p.first(),
                Some(&0x8c),
                "stream {stream}: :status 400 (HPACK index 12)"
            );
            bad_requests += 1;
        }
    }
    let get = hpack_get();
    s.write_all(&frame(1, 0x5, 601, &get)).unwrap();
    loop {
        let (ty, _, stream, p) = read_frame(&mut s).expect("reply to the GET");
        if ty == 1 && stream == 601 {
            assert_eq!(p.first(), Some(&0x88), ":status 200 (HPACK index 8)");
            break;
        }
    }
}

#[test]
fn http2_rapid_reset_costs_only_that_connection() {
    // CVE-2023-44487's pattern: streams opened and cancelled at once, thousands in a row. The
    // server may answer some, refuse others or end the connection with GOAWAY; it must not
    // stall, and another client is answered meanwhile.
    let ex = plain_server();
    let addr = ex.addr("https://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(H2_PREFACE).unwrap();
    s.write_all(&frame(4, 0, 0, &[])).unwrap();
    let get = hpack_get();
    let mut burst = Vec::new();
    for i in 0..5000u32 {
        burst.extend(frame(1, 0x5, 2 * i + 1, &get));
        burst.extend(frame(3, 0, 2 * i + 1, &8u32.to_be_bytes())); // RST_STREAM CANCEL
    }
    // The server may close the connection part way (GOAWAY): a failed write is an answer too.
    let _ = s.write_all(&burst);
    answered(addr);
    // Whatever it sent, the connection ends in a GOAWAY or keeps serving.
    let mut reader = s.try_clone().unwrap();
    let probe = hpack_get();
    let _ = s.write_all(&frame(1, 0x5, 10_001, &probe));
    loop {
        let mut h = [0u8; 9];
        match reader.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) => {
                // Closed is fine; still open and silent is a stall.
                assert!(
                    !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "the connection stalled: {e}"
                );
                break;
            }
        }
        let n = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        let mut p = vec![0u8; n];
        if reader.read_exact(&mut p).is_err() {
            break;
        }
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        match (h[3], stream) {
            (7, _) => break, // GOAWAY
            (1, 10_001) => {
                assert_eq!(p.first(), Some(&0x88), ":status 200 (HPACK index 8)");
                break;
            }
            _ => continue,
        }
    }
    answered(addr);
}

// ---- many requests on one HTTP/2 connection (the h2 crate's client) ----

/// An h2c connection to `addr` driven by `rt`, and requests queued on it before it is first
/// polled: they reach the server in one burst.
struct H2 {
    send: h2::client::SendRequest<bytes::Bytes>,
}

impl H2 {
    async fn connect(
        addr: SocketAddr,
    ) -> (
        H2,
        h2::client::Connection<tokio::net::TcpStream, bytes::Bytes>,
    ) {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (send, conn) = h2::client::handshake(tcp).await.unwrap();
        (H2 { send }, conn)
    }

    /// Queues a request (and its body, if any); the response comes from the returned future.
    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> h2::client::ResponseFuture {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(format!("http://example.org{path}"));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (resp, mut stream) = self
            .send
            .send_request(b.body(()).unwrap(), body.is_none())
            .unwrap();
        if let Some(body) = body {
            stream.send_data(body.into(), true).unwrap();
        }
        resp
    }
}

/// A response's status, headers and whole body (its flow-control window given back as read).
async fn h2_response(resp: h2::client::ResponseFuture) -> (u16, hyper::HeaderMap, Vec<u8>) {
    let resp = tokio::time::timeout(Duration::from_secs(20), resp)
        .await
        .expect("a response within 20 s")
        .unwrap();
    let (parts, mut body) = resp.into_parts();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    (parts.status.as_u16(), parts.headers, out)
}

/// A query for `www.example.org` A with `id`, and an EDNS padding option of `pad` octets.
fn padded(id: u16, pad: usize) -> Vec<u8> {
    let mut q = wire("www.example.org", RecordType::A);
    q[0..2].copy_from_slice(&id.to_be_bytes());
    if pad > 0 {
        q[11] = 1; // ARCOUNT
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
        q.extend_from_slice(&((pad + 4) as u16).to_be_bytes());
        q.extend_from_slice(&[0, 12]);
        q.extend_from_slice(&(pad as u16).to_be_bytes());
        q.extend(std::iter::repeat_n(0u8, pad));
    }
    q
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn http2_burst_of_mixed_requests_on_one_connection() {
    // Answered at once (GETs), by a future of the connection (POSTs) and refused (every
    // status), all arriving together: each stream gets its own reply, the right one.
    let ex = plain_server();
    let addr = ex.addr("https://");
    let dns = "application/dns-message";
    rt().block_on(async {
        let (mut c, conn) = H2::connect(addr).await;
        let mut gets = Vec::new();
        for id in 0..40u16 {
            let q = padded(id, 0);
            gets.push((
                id,
                c.request("GET", &format!("/dns-query?dns={}", b64(&q)), &[], None),
            ));
        }
        let mut posts = Vec::new();
        for id in 100..110u16 {
            posts.push((
                id,
                c.request(
                    "POST",
                    "/dns-query",
                    &[("content-type", dns)],
                    Some(padded(id, 0)),
                ),
            ));
        }
        let refused = vec![
            (404, c.request("GET", "/other?dns=AAAB", &[], None)),
            (
                405,
                c.request(
                    "PUT",
                    "/dns-query",
                    &[("content-type", dns)],
                    Some(padded(1, 0)),
                ),
            ),
            (
                415,
                c.request(
                    "POST",
                    "/dns-query",
                    &[("content-type", "text/plain")],
                    Some(padded(1, 0)),
                ),
            ),
            (400, c.request("GET", "/dns-query?dns=!!!", &[], None)),
            (
                400,
                c.request(
                    "POST",
                    "/dns-query",
                    &[("content-type", dns)],
                    Some(vec![1, 2, 3]),
                ),
            ),
            (
                413,
                c.request(
                    "POST",
                    "/dns-query",
                    &[("content-type", dns)],
                    Some(vec![0; 70_000]),
                ),
            ),
        ];
        tokio::spawn(conn);
        for (id, resp) in gets.into_iter().chain(posts) {
            let (status, headers, body) = h2_response(resp).await;
            assert_eq!(status, 200, "query {id}");
            assert_eq!(headers["content-type"], dns);
            assert_eq!(headers["cache-control"], "max-age=3600", "query {id}");
            assert_eq!(headers["content-length"], body.len().to_string().as_str());
            let m = Message::from_vec(&body).unwrap();
            assert_eq!(m.metadata.id, id);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert_eq!(m.answers.len(), 1, "query {id}: {m:?}");
            assert_eq!(m.answers[0].data.to_string(), "192.0.2.20");
        }
        for (want, resp) in refused {
            let (status, headers, body) = h2_response(resp).await;
            assert_eq!(status, want, "{body:?}");
            assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
            if want == 405 {
                assert_eq!(headers["allow"], "GET, POST");
            }
        }
        // The connection serves on.
        let q = padded(7, 0);
        let (status, _, body) =
            h2_response(c.request("GET", &format!("/dns-query?dns={}", b64(&q)), &[], None)).await;
        assert_eq!(status, 200);
        assert_eq!(Message::from_vec(&body).unwrap().metadata.id, 7);
    });
}

#[test]
fn http2_post_bodies_beyond_the_connection_window() {
    // HTTP/2's connection window starts at 65535 octets: bodies the server reads (and those it
    // drains to refuse) must be given back to it, or the connection stalls once that much has
    // been posted.
    let ex = plain_server();
    let addr = ex.addr("https://");
    let dns = "application/dns-message";
    rt().block_on(async {
        let (mut c, conn) = H2::connect(addr).await;
        tokio::spawn(conn);
        for round in 0..4u16 {
            // 40 × ~2 KiB per round, ~320 KiB in all.
            let resps: Vec<_> = (0..40u16)
                .map(|i| {
                    let id = round * 100 + i;
                    (
                        id,
                        c.request(
                            "POST",
                            "/dns-query",
                            &[("content-type", dns)],
                            Some(padded(id, 2000)),
                        ),
                    )
                })
                .collect();
            for (id, resp) in resps {
                let (status, _, body) = h2_response(resp).await;
                assert_eq!(status, 200, "query {id}");
                assert_eq!(Message::from_vec(&body).unwrap().metadata.id, id);
            }
            // An oversized body with no content-length: read on and thrown away, then 413.
            let (status, _, _) = h2_response(c.request(
                "POST",
                "/dns-query",
                &[("content-type", dns)],
                Some(vec![0; 100_000]),
            ))
            .await;
            assert_eq!(status, 413, "round {round}");
        }
    });
}

// ---- DNS over HTTP/3 ----

/// A CA and a server certificate for [`NAME`] that `cryptography` (aioquic's X.509 parser)
/// accepts: the shared test certificates encode `basicConstraints CA:FALSE` explicitly, which
/// strict DER forbids (a DEFAULT value), so the leaf here has no basicConstraints at all.
fn der_strict_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "exdns test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![NAME.to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, NAME);
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// One DoH3 request for the python client.
struct H3Case<'a> {
    name: &'a str,
    method: &'a str,
    path: String,
    ctype: &'a str,
    body: Vec<u8>,
    status: u16,
    /// For a 200: the reply (must equal the TCP reply) and its max-age.
    reply: Option<(&'a [u8], u32)>,
}

#[test]
fn doh3_with_dnspython_and_aioquic() {
    if !require("python3") {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = der_strict_certs(certs.path());
    let cf = format!(
        "example.org:0 https3://example.org:0 {{\n  tls {} {}\n  prometheus 127.0.0.1:0\n  hosts {{\n    ttl 60\n    192.0.2.20 www.example.org\n  }}\n}}\n",
        cert.display(),
        key.display()
    );
    let ex = Exdns::start(&cf);
    let port = ex.addr("https3://").port();
    let tcp = ex.addr("dns://");
    let good = wire("www.example.org", RecordType::A);
    let good_reply = tcp_reply(tcp, &good);
    let nope = wire("nope.example.org", RecordType::A);
    let nope_reply = tcp_reply(tcp, &nope);
    let get = |q: &[u8]| format!("/dns-query?dns={}", b64(q));
    let ct = "application/dns-message";
    let case = |name, method, path: String, ctype, body: &[u8], status| H3Case {
        name,
        method,
        path,
        ctype,
        body: body.to_vec(),
        status,
        reply: None,
    };
    let cases = vec![
        H3Case {
            reply: Some((&good_reply, 60)),
            ..case("GET", "GET", get(&good), "", &[], 200)
        },
        H3Case {
            reply: Some((&good_reply, 60)),
            ..case("POST", "POST", "/dns-query".into(), ct, &good, 200)
        },
        H3Case {
            reply: Some((&nope_reply, 5)),
            ..case("SERVFAIL", "GET", get(&nope), "", &[], 200)
        },
        case("other path", "GET", "/x".into(), "", &[], 404),
        case("bad base64", "GET", "/dns-query?dns=*".into(), "", &[], 400),
        case("short message", "GET", get(&good[..5]), "", &[], 400),
        case("PUT", "PUT", "/dns-query".into(), ct, &good, 405),
        case(
            "text/plain",
            "POST",
            "/dns-query".into(),
            "text/plain",
            &good,
            415,
        ),
        case(
            "too large",
            "POST",
            "/dns-query".into(),
            ct,
            &[0; 70_000],
            413,
        ),
        H3Case {
            reply: Some((&good_reply, 60)),
            ..case("GET after the errors", "GET", get(&good), "", &[], 200)
        },
    ];
    let input: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            serde_json::json!({
                "method": c.method,
                "path": c.path,
                "ctype": c.ctype,
                "body": c.body.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            })
        })
        .collect();
    let got = doh3_client(port, &ca, &input, &[]);
    // The stream limit is QUIC's stream credit: a client cannot open more than 256 at once.
    assert_eq!(got["max_streams_bidi"], 256);
    let got = got["results"].as_array().unwrap();
    assert_eq!(got.len(), cases.len());
    for (c, g) in cases.iter().zip(got) {
        assert_eq!(g["status"], c.status, "{}: {g}", c.name);
        match c.reply {
            Some((reply, age)) => {
                let hex: String = reply.iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(g["body"], hex, "{}: the TCP reply's bytes", c.name);
                assert_eq!(g["content_type"], "application/dns-message", "{}", c.name);
                assert_eq!(g["cache_control"], format!("max-age={age}"), "{}", c.name);
            }
            None => assert_ne!(g["content_type"], "application/dns-message", "{}", c.name),
        }
    }
    // dnspython's own DoH3 query, POST and GET.
    let code = format!(
        "import dns.message, dns.query\n\
         for post in (True, False):\n    \
         r = dns.query.https(dns.message.make_query('www.example.org', 'A'), 'https://{NAME}:{port}/dns-query', bootstrap_address='127.0.0.1', post=post, http_version=dns.query.HTTPVersion.H3, verify='{}', timeout=10)\n    \
         print(dns.rcode.to_text(r.rcode()), r.answer[0].to_text())\n",
        ca.display()
    );
    let (status, out) = run_stderr("python3", &["-c", &code]);
    assert_eq!(status, 0, "{out}");
    assert_eq!(
        out,
        "NOERROR www.example.org. 60 IN A 192.0.2.20\nNOERROR www.example.org. 60 IN A 192.0.2.20\n"
    );
    // Metrics: CoreDNS's DoH3 counter, and proto "udp" as CoreDNS labels DoH3 queries.
    let (_, _, metrics) = support::http_get(ex.http_addr("127.0.0.1:0"), "/metrics");
    for (status, n) in [
        ("200", 6),
        ("400", 2),
        ("404", 1),
        ("405", 1),
        ("413", 1),
        ("415", 1),
    ] {
        let line = format!(
            "coredns_dns_https3_responses_total{{server=\"https3://:0\",status=\"{status}\"}} {n}"
        );
        assert!(metrics.contains(&line), "no {line:?} in\n{metrics}");
    }
    assert!(
        metrics.contains("proto=\"udp\",server=\"https3://:0\""),
        "{metrics}"
    );
}

/// Runs tests/support/py/doh3_client.py (one QUIC connection to `port`, the requests of `input`;
/// `args` after the fixed ones) and returns what it printed.
fn doh3_client(
    port: u16,
    ca: &Path,
    input: &[serde_json::Value],
    args: &[&str],
) -> serde_json::Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/py/doh3_client.py"
    );
    let mut child = std::process::Command::new("python3")
        .args([script, &port.to_string(), &ca.display().to_string(), NAME])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(input).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "doh3 client failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Start-up: which keys need `tls`, and the schemes still refused.
#[test]
fn startup_checks() {
    let cases: &[(&str, i32, &str)] = &[
        ("https://.:0 {\n  whoami\n}\n", 0, ""),
        // As CoreDNS: the options of other schemes are kept in the block's config, unused.
        (
            ".:0 {\n  https {\n    max_connections 5\n  }\n  https3 {\n    max_streams 1\n  }\n  whoami\n}\n",
            0,
            "",
        ),
        (
            "https3://.:0 {\n  whoami\n}\n",
            1,
            "Corefile:1 - Error during setup: https3://.:0 needs the tls directive (tls CERT KEY [CA])",
        ),
        (
            "grpc://.:0 {\n  whoami\n}\n",
            1,
            "Corefile:1 - Error during setup: grpc:// servers are not supported by exdns (key 'grpc://.:0')",
        ),
    ];
    for (corefile, want_code, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("Corefile");
        std::fs::write(&p, corefile).unwrap();
        let out = std::process::Command::new(support::bin())
            .current_dir(dir.path())
            .args(["-conf", "Corefile", "-check"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*want_code), "{corefile}: {text}");
        assert!(text.contains(want), "{corefile}: {text}");
    }
}

// ---- `https` and `https3` limits ----

/// An `https://` block without TLS, with `/metrics` and `extra` lines. A long idle timeout:
/// at the cap it shrinks to a tenth, and idle connections must not go on their own.
fn limits_corefile(extra: &str) -> String {
    format!(
        "https://example.org:0 {{\n  prometheus 127.0.0.1:0\n  timeouts {{\n    idle 10m\n  }}\n{extra}  hosts {{\n    192.0.2.20 www.example.org\n  }}\n}}\n"
    )
}

/// `exdns_tcp_connections_shed_total` of the `https://` listener, every reason.
fn shed_total(ex: &Exdns) -> u64 {
    let (_, _, metrics) = support::http_get(ex.http_addr("127.0.0.1:0"), "/metrics");
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("exdns_tcp_connections_shed_total{")
                && l.contains("server=\"https://:0\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// Two idle connections, then a query on a third: answered, and how many idle connections the
/// listener closed to admit it.
fn two_idle_then_a_query(ex: &Exdns) -> u64 {
    let addr = ex.addr("https://");
    let before = shed_total(ex);
    // Accepted in order (one listening socket): both are in the table before the third.
    let _a = TcpStream::connect(addr).unwrap();
    let _b = TcpStream::connect(addr).unwrap();
    answered(addr);
    shed_total(ex) - before
}

/// `https { max_connections N }` caps the connections of an `https://` listener (CoreDNS's
/// `DefaultHTTPSMaxConnections` 200 without it, 0: the TCP listener's own cap). At the cap a
/// newcomer is admitted by closing the longest-idle connection (the connection table's policy).
#[test]
fn https_max_connections() {
    let cases: &[(&str, u64)] = &[
        ("", 0),
        ("  https\n", 0),
        ("  https {\n    max_connections 2\n  }\n", 1),
        ("  https {\n    max_connections 3\n  }\n", 0),
        ("  https {\n    max_connections 0\n  }\n", 0),
    ];
    for (extra, shed) in cases {
        let ex = Exdns::start(&limits_corefile(extra));
        assert_eq!(two_idle_then_a_query(&ex), *shed, "{extra:?}");
        answered(ex.addr("https://"));
    }
}

/// A reload that sets `https { max_connections }` applies to the next connections of the same
/// listener.
#[test]
fn https_max_connections_after_a_reload() {
    let ex = Exdns::start(&limits_corefile(""));
    ex.reload_with(&limits_corefile("  https {\n    max_connections 2\n  }\n"));
    assert_eq!(two_idle_then_a_query(&ex), 1, "{}", ex.output());
}

/// An `https3://` block with the DER-strict test certificates and `extra` lines.
fn h3_corefile(certs: &Path, extra: &str) -> String {
    format!(
        "https3://example.org:0 {{\n  tls {} {}\n{extra}  hosts {{\n    192.0.2.20 www.example.org\n  }}\n}}\n",
        certs.join("cert.pem").display(),
        certs.join("key.pem").display()
    )
}

/// One GET on one QUIC connection and, while it is open, a second connection: the stream
/// credit the server advertised and what the second connection got ("ok" or the QUIC error
/// code of the server's close).
fn h3_limits(ex: &Exdns, ca: &Path) -> (serde_json::Value, serde_json::Value) {
    let get = serde_json::json!({
        "method": "GET",
        "path": format!("/dns-query?dns={}", b64(&wire("www.example.org", RecordType::A))),
        "ctype": "",
        "body": "",
    });
    let got = doh3_client(ex.addr("https3://").port(), ca, &[get], &["second"]);
    assert_eq!(got["results"][0]["status"], 200, "{got}");
    (got["max_streams_bidi"].clone(), got["second"].clone())
}

/// `https3 { max_streams N; max_connections N }`: the stream credit each QUIC connection gets
/// (256 without it, 0: quinn's default, 100) and the connections open at once (200 without it,
/// 0: no limit); a connection beyond the limit is refused (QUIC CONNECTION_REFUSED, 0x2). A
/// reload applies new values to the next connections of the same listener.
#[test]
fn https3_max_streams_and_max_connections() {
    if !require("python3") {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let (ca, _, _) = der_strict_certs(certs.path());
    let refused = serde_json::json!(2);
    let ok = serde_json::json!("ok");
    let cases: &[(&str, u64, &serde_json::Value)] = &[
        ("", 256, &ok),
        ("  https3 {\n    max_streams 2\n  }\n", 2, &ok),
        ("  https3 {\n    max_streams 0\n  }\n", 100, &ok),
        ("  https3 {\n    max_connections 1\n  }\n", 256, &refused),
        ("  https3 {\n    max_connections 2\n  }\n", 256, &ok),
        ("  https3 {\n    max_connections 0\n  }\n", 256, &ok),
    ];
    for (extra, streams, second) in cases {
        let ex = Exdns::start(&h3_corefile(certs.path(), extra));
        let (got_streams, got_second) = h3_limits(&ex, &ca);
        assert_eq!(got_streams, *streams, "{extra:?}");
        assert_eq!(got_second, **second, "{extra:?}");
    }
    // Reload: from one connection with 2 streams to 3 streams and no connection limit.
    let ex = Exdns::start(&h3_corefile(
        certs.path(),
        "  https3 {\n    max_streams 2\n    max_connections 1\n  }\n",
    ));
    assert_eq!(h3_limits(&ex, &ca), (serde_json::json!(2), refused.clone()));
    ex.reload_with(&h3_corefile(
        certs.path(),
        "  https3 {\n    max_streams 3\n    max_connections 0\n  }\n",
    ));
    assert_eq!(h3_limits(&ex, &ca), (serde_json::json!(3), ok.clone()));
}
