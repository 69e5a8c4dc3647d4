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

/// `require_upstream`: 503 while every forward upstream is down — here because the VPN
/// interface the forwarder is pinned to is missing — and 200 once it is up.
#[test]
fn require_upstream_follows_the_tunnel() {
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test creates a network interface and needs root (CI runs as root)");
    }
    let ifname = format!("exdp{}", std::process::id() % 100000);
    let ip = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap()
            .success()
    };
    let _ = ip(&["link", "del", &ifname]);
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &self.0])
                .status();
        }
    }
    let _cleanup = Cleanup(ifname.clone());
    let ex = Exdns::start_with_env(
        &format!(
            ".:0 {{\n  podip 127.0.0.1:0 {{\n    require_upstream\n  }}\n  forward . 127.0.0.1:9 {{\n    interface {ifname}\n  }}\n}}\n"
        ),
        &[],
        &[],
        &[("POD_IP", "10.42.0.7")],
    );
    let addr = ex.http_addr("127.0.0.1:0");
    let wait_status = |want: u16| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, _, body) = http_get(addr, "/");
            if status == want {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "wanted {want}, still {status} {body}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_status(503);
    // A veth pair with both ends up has carrier, like a tunnel that came up.
    let peer = format!("{ifname}p");
    assert!(ip(&[
        "link", "add", &ifname, "type", "veth", "peer", "name", &peer
    ]));
    assert!(ip(&["link", "set", &peer, "up"]));
    assert!(ip(&["link", "set", &ifname, "up"]));
    assert_eq!(wait_status(200), "10.42.0.7");
    assert!(ip(&["link", "del", &ifname]));
    wait_status(503);
}
