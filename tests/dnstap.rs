//! `dnstap` against a real dnstap collector: fstrm_capture (fstrm-bin) takes the Frame Streams
//! connection and writes what it got to a file, dnstap-ldns (dnstap-ldns) decodes it.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// A running fstrm_capture on a unix socket.
struct Capture {
    child: Child,
    out: PathBuf,
}

impl Capture {
    fn start(sock: &Path, out: &Path) -> Capture {
        let _ = std::fs::remove_file(sock);
        let child = Command::new("fstrm_capture")
            .args(["-t", "protobuf:dnstap.Dnstap", "-u"])
            .arg(sock)
            .arg("-w")
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fstrm_capture");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sock.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(sock.exists(), "fstrm_capture did not listen");
        Capture {
            child,
            out: out.to_path_buf(),
        }
    }

    /// Stops the capture (its file is complete then) and decodes it: one YAML document per
    /// dnstap message.
    fn finish(mut self) -> Vec<String> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        let (code, yaml) = run("dnstap-ldns", &["-y", "-r", self.out.to_str().unwrap()]);
        assert_eq!(code, 0, "dnstap-ldns: {yaml}");
        yaml.split("\n---")
            .map(str::to_string)
            .filter(|d| d.contains("type: MESSAGE"))
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dig(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let port = addr.port().to_string();
    let server = format!("@{}", addr.ip());
    let mut all = vec![server.as_str(), "-p", port.as_str(), "+time=2", "+tries=1"];
    all.extend_from_slice(args);
    let (code, out) = run("dig", &all);
    assert_eq!(code, 0, "dig {args:?}: {out}");
    out
}

fn tools() -> bool {
    require("dig") && require("fstrm_capture") && require("dnstap-ldns")
}

fn corefile(sock: &Path, opts: &str) -> String {
    format!(
        ".:0 {{\n bind 127.0.0.1\n dnstap unix://{} {opts}\n cache\n template IN A nx.example {{\n  rcode NXDOMAIN\n }}\n template IN A hit.example {{\n  answer \"{{{{ .Name }}}} 60 IN A 192.0.2.1\"\n }}\n whoami\n}}\n",
        sock.display()
    )
}

/// Waits until the tap has (re)connected: the first query after that is captured.
fn settle() {
    std::thread::sleep(Duration::from_millis(600));
}

#[test]
fn full_taps_queries_and_responses_with_their_messages() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tap.sock");
    let cap = Capture::start(&sock, &dir.path().join("out.fstrm"));
    let ex = Exdns::start(&corefile(
        &sock,
        "full {\n  identity tap-test\n  version V-9\n  extra hello\n }",
    ));
    settle();
    let addr = ex.dns();
    dig(addr, &["who.example", "A"]);
    dig(addr, &["+tcp", "who.example", "AAAA"]);
    dig(addr, &["nx.example", "A"]);
    // The second is a cache hit, answered on the fast path: tapped all the same.
    dig(addr, &["hit.example", "A"]);
    dig(addr, &["hit.example", "A"]);
    settle();
    let docs = cap.finish();
    assert_eq!(docs.len(), 10, "{docs:#?}");
    for d in &docs {
        assert!(d.contains("identity: \"tap-test\""), "{d}");
        assert!(d.contains("version: \"V-9\""), "{d}");
        // dnstap-ldns does not print `extra` (the unit tests check its bytes).
        assert!(d.contains("socket_family: INET"), "{d}");
        assert!(d.contains("query_address: \"127.0.0.1\""), "{d}");
    }
    let expect = [
        (
            "CLIENT_QUERY",
            "UDP",
            "query_message",
            ";who.example.\tIN\tA",
            "rcode: NOERROR",
        ),
        (
            "CLIENT_RESPONSE",
            "UDP",
            "response_message",
            ";who.example.\tIN\tA",
            "rcode: NOERROR",
        ),
        (
            "CLIENT_QUERY",
            "TCP",
            "query_message",
            ";who.example.\tIN\tAAAA",
            "rcode: NOERROR",
        ),
        (
            "CLIENT_RESPONSE",
            "TCP",
            "response_message",
            ";who.example.\tIN\tAAAA",
            "rcode: NOERROR",
        ),
        (
            "CLIENT_QUERY",
            "UDP",
            "query_message",
            ";nx.example.\tIN\tA",
            "rcode: NOERROR",
        ),
        (
            "CLIENT_RESPONSE",
            "UDP",
            "response_message",
            ";nx.example.\tIN\tA",
            "rcode: NXDOMAIN",
        ),
        (
            "CLIENT_QUERY",
            "UDP",
            "query_message",
            ";hit.example.\tIN\tA",
            "rcode: NOERROR",
        ),
        (
            "CLIENT_RESPONSE",
            "UDP",
            "response_message",
            "hit.example.\t60\tIN\tA\t192.0.2.1",
            "rcode: NOERROR",
        ),
        (
            "CLIENT_QUERY",
            "UDP",
            "query_message",
            ";hit.example.\tIN\tA",
            "rcode: NOERROR",
        ),
        (
            "CLIENT_RESPONSE",
            "UDP",
            "response_message",
            "hit.example.\t",
            "rcode: NOERROR",
        ),
    ];
    for (d, (kind, proto, field, question, rcode)) in docs.iter().zip(expect) {
        assert!(d.contains(&format!("  type: {kind}\n")), "{kind}: {d}");
        assert!(
            d.contains(&format!("socket_protocol: {proto}")),
            "{proto}: {d}"
        );
        assert!(d.contains(&format!("{field}: |")), "{field}: {d}");
        assert!(d.contains(question), "{question}: {d}");
        assert!(d.contains(rcode), "{rcode}: {d}");
        assert_eq!(
            d.contains("response_time"),
            kind == "CLIENT_RESPONSE",
            "{d}"
        );
    }
    // The whoami answer in the wire bytes: the client's address.
    assert!(docs[1].contains("IN\tA\t127.0.0.1"), "{}", docs[1]);
}

#[test]
fn without_full_no_messages() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tap.sock");
    let cap = Capture::start(&sock, &dir.path().join("out.fstrm"));
    let ex = Exdns::start(&corefile(&sock, ""));
    settle();
    dig(ex.dns(), &["who.example", "A"]);
    settle();
    let docs = cap.finish();
    assert_eq!(docs.len(), 2, "{docs:#?}");
    assert!(docs[0].contains("  type: CLIENT_QUERY\n"));
    assert!(docs[1].contains("  type: CLIENT_RESPONSE\n"));
    let host = support::run("hostname", &[]).1;
    for d in &docs {
        assert!(!d.contains("_message"), "{d}");
        assert!(d.contains(&format!("identity: \"{}\"", host.trim())), "{d}");
        assert!(d.contains("version: \"exdns-"), "{d}");
    }
}

/// No collector: queries are answered at once; when one appears, the tap connects and logs.
#[test]
fn collector_absent_then_present() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tap.sock");
    let ex = Exdns::start(&corefile(&sock, "full\n prometheus 127.0.0.1:0"));
    let addr = ex.dns();
    let t = Instant::now();
    for _ in 0..20 {
        assert!(dig(addr, &["who.example", "A"]).contains("status: NOERROR"));
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(ex.wait_for_line("No connection to dnstap endpoint", Duration::from_secs(2)));
    // Meanwhile every message was dropped, and counted: 20 queries, 20 responses (the writer
    // drains the queue as they come; polled, as the last ones may still be queued).
    let dropped = || {
        let (_, _, body) = http_get(ex.http_addr("127.0.0.1:0"), "/metrics");
        body.lines().find_map(|l| {
            l.strip_prefix("exdns_dnstap_dropped_total ")
                .map(str::to_string)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while dropped().as_deref() != Some("40") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(dropped().as_deref(), Some("40"));

    let cap = Capture::start(&sock, &dir.path().join("out.fstrm"));
    assert!(
        ex.wait_for_line("dnstap: connected to", Duration::from_secs(15)),
        "{}",
        ex.output()
    );
    dig(addr, &["+tcp", "who.example", "AAAA"]);
    settle();
    let docs = cap.finish();
    assert_eq!(docs.len(), 2, "{docs:#?}");
    assert!(docs[0].contains(";who.example.\tIN\tAAAA"));
    assert!(docs[1].contains("  type: CLIENT_RESPONSE\n"));
}
