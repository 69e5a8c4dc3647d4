//! The gateway-pod-IP endpoint, byte for byte as pod-gateway clients expect it.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

fn raw(addr: std::net::SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn start() -> Exdns {
    Exdns::start_with_env(
        ".:0 {\n  podip 127.0.0.1:0\n  whoami\n}\n",
        &[],
        &[],
        &[("POD_IP", "10.42.0.7")],
    )
}

#[test]
fn any_path_and_method_gets_the_pod_ip() {
    let ex = start();
    let addr = ex.http_addr("127.0.0.1:0");
    for req in [
        "GET / HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
        "GET /some/where?x=1 HTTP/1.0\r\n\r\n",
        "POST /ip HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ] {
        let out = String::from_utf8(raw(addr, req.as_bytes())).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.") && head.contains(" 200 OK"),
            "{req:?}: {head}"
        );
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains("\r\ncontent-type: text/plain\r\n")
                || lower.ends_with("\r\ncontent-type: text/plain"),
            "{head}"
        );
        assert!(lower.contains("content-length: 9"), "{head}");
        assert_eq!(body, "10.42.0.7", "no trailing newline");
    }
    // HEAD: the same headers, no body.
    let out = String::from_utf8(raw(
        addr,
        b"HEAD / HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    ))
    .unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains(" 200 OK") && head.to_ascii_lowercase().contains("content-length: 9"),
        "{head}"
    );
    assert_eq!(body, "");
    // A malformed request is a 400.
    let out = String::from_utf8(raw(addr, b"NOT HTTP AT ALL\r\n\r\n")).unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
}

#[test]
fn curl_fs_and_the_ipv4_check_of_the_client_script() {
    if !have("curl") {
        panic!("curl is not installed (run `make test`, which installs the test tools)");
    }
    let ex = start();
    let url = format!("http://{}/", ex.http_addr("127.0.0.1:0"));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ip=$(curl -fs {url}) && echo \"$ip\" | grep -Eq '^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$' && printf %s \"$ip\""
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"10.42.0.7");
}

#[test]
fn a_slow_client_cannot_tie_it_up() {
    let ex = start();
    let addr = ex.http_addr("127.0.0.1:0");
    // Half a request, never finished.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: gw\r\n").unwrap();
    // Others are served meanwhile.
    let t0 = Instant::now();
    let (status, _, body) = http_get(addr, "/");
    assert_eq!((status, body.as_str()), (200, "10.42.0.7"));
    assert!(t0.elapsed() < Duration::from_secs(2));
    // The slow one is cut off after the header timeout (5 s) instead of holding a slot forever.
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        t0.elapsed() < Duration::from_secs(9),
        "closed by the server"
    );
}

#[test]
fn without_pod_ip_the_interface_address_is_used() {
    let ex = Exdns::start(".:0 {\n  podip 127.0.0.1:0 {\n    interface lo\n  }\n  whoami\n}\n");
    let (status, _, body) = http_get(ex.http_addr("127.0.0.1:0"), "/");
    assert_eq!((status, body.as_str()), (200, "127.0.0.1"));
}
