//! `proxyproto`: PROXY v1 and v2 headers in front of TCP connections and UDP datagrams; whoami
//! answers with the client address from the header.

mod support;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use support::tlsecho::{client_config, roots_from_pem};
use support::*;

/// The address and port whoami reported.
fn whoami(m: &Message) -> (IpAddr, u16) {
    let mut ip = None;
    let mut port = None;
    for r in &m.additionals {
        match &r.data {
            RData::A(a) => ip = Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => ip = Some(IpAddr::V6(a.0)),
            RData::SRV(s) => port = Some(s.port),
            _ => {}
        }
    }
    (ip.expect("address"), port.expect("port"))
}

fn v2(transport: u8, client: SocketAddr) -> Vec<u8> {
    let mut b = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    b.push(0x21);
    match client {
        SocketAddr::V4(c) => {
            b.push(0x10 | transport);
            b.extend_from_slice(&12u16.to_be_bytes());
            b.extend_from_slice(&c.ip().octets());
            b.extend_from_slice(&[127, 0, 0, 1]);
            b.extend_from_slice(&c.port().to_be_bytes());
            b.extend_from_slice(&53u16.to_be_bytes());
        }
        SocketAddr::V6(c) => {
            b.push(0x20 | transport);
            b.extend_from_slice(&36u16.to_be_bytes());
            b.extend_from_slice(&c.ip().octets());
            b.extend_from_slice(&[0; 16]);
            b.extend_from_slice(&c.port().to_be_bytes());
            b.extend_from_slice(&53u16.to_be_bytes());
        }
    }
    b
}

/// One query over TCP with `header` sent first; `None` when the connection closed.
fn tcp_with(addr: SocketAddr, header: &[u8]) -> Option<Message> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let q = query("who.example.", RecordType::A, None).to_vec().unwrap();
    let mut out = header.to_vec();
    out.extend_from_slice(&(q.len() as u16).to_be_bytes());
    out.extend_from_slice(&q);
    // Header and query in one write, as a proxy sends them; the server must keep the query.
    s.write_all(&out).unwrap();
    read_framed(&mut s).map(|b| Message::from_vec(&b).unwrap())
}

fn udp_with(addr: SocketAddr, header: &[u8]) -> Option<Message> {
    let q = query("who.example.", RecordType::A, None).to_vec().unwrap();
    let pkt = [header, &q].concat();
    udp_raw(addr, &pkt, Duration::from_millis(700)).map(|b| Message::from_vec(&b).unwrap())
}

#[test]
fn whoami_sees_the_proxied_client() {
    let ex =
        Exdns::start(".:0 {\n bind 127.0.0.1\n proxyproto {\n allow 127.0.0.0/8\n }\n whoami\n}\n");
    let addr = ex.dns();
    let client: SocketAddr = "192.0.2.7:4711".parse().unwrap();
    let client6: SocketAddr = "[2001:db8::7]:4712".parse().unwrap();

    let v1 = b"PROXY TCP4 192.0.2.7 127.0.0.1 4711 53\r\n";
    assert_eq!(whoami(&tcp_with(addr, v1).unwrap()), (client.ip(), 4711));
    let v1_6 = b"PROXY TCP6 2001:db8::7 ::1 4712 53\r\n";
    assert_eq!(whoami(&tcp_with(addr, v1_6).unwrap()), (client6.ip(), 4712));
    assert_eq!(
        whoami(&tcp_with(addr, &v2(1, client)).unwrap()),
        (client.ip(), 4711)
    );
    assert_eq!(
        whoami(&udp_with(addr, &v2(2, client)).unwrap()),
        (client.ip(), 4711)
    );
    assert_eq!(
        whoami(&udp_with(addr, &v2(2, client6)).unwrap()),
        (client6.ip(), 4712)
    );

    // No header: the peer itself (allowed sources may send none).
    let (ip, _) = whoami(&tcp_with(addr, b"").unwrap());
    assert_eq!(ip, IpAddr::from([127, 0, 0, 1]));
    let (ip, _) = whoami(&udp_with(addr, b"").unwrap());
    assert_eq!(ip, IpAddr::from([127, 0, 0, 1]));

    // Hostile: malformed headers close the connection / drop the datagram; the server lives on.
    assert!(tcp_with(addr, b"PROXY TCP4 192.0.2.300 127.0.0.1 1 53\r\n").is_none());
    assert!(tcp_with(addr, &v2(1, client)[..20]).is_none());
    assert!(
        udp_with(addr, &v2(1, client)).is_none(),
        "v2 over UDP must be DGRAM"
    );
    assert!(udp_with(addr, v1).is_none(), "only v2 over UDP");
    assert!(udp_raw(addr, &v2(2, client)[..20], Duration::from_millis(700)).is_none());
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    for n in 0..40 {
        junk.send_to(&v2(2, client)[..n % 29], addr).unwrap();
    }
    assert_eq!(
        whoami(&udp_with(addr, &v2(2, client)).unwrap()),
        (client.ip(), 4711)
    );
    assert_eq!(whoami(&tcp_with(addr, v1).unwrap()), (client.ip(), 4711));
}

/// Sources outside `allow` get `default`: ignore (the header is stripped, the peer is the
/// client), reject (closed / dropped), skip (the header is read as DNS: FORMERR or nothing).
#[test]
fn sources_outside_allow() {
    let client: SocketAddr = "192.0.2.7:4711".parse().unwrap();
    let v1 = b"PROXY TCP4 192.0.2.7 127.0.0.1 4711 53\r\n";
    let local = IpAddr::from([127, 0, 0, 1]);

    let ignore =
        Exdns::start(".:0 {\n bind 127.0.0.1\n proxyproto {\n allow 10.0.0.0/8\n }\n whoami\n}\n");
    let addr = ignore.dns();
    assert_eq!(whoami(&tcp_with(addr, v1).unwrap()).0, local);
    assert_eq!(whoami(&udp_with(addr, &v2(2, client)).unwrap()).0, local);

    let reject = Exdns::start(
        ".:0 {\n bind 127.0.0.1\n proxyproto {\n allow 10.0.0.0/8\n default reject\n }\n whoami\n}\n",
    );
    let addr = reject.dns();
    assert!(tcp_with(addr, v1).is_none());
    assert!(udp_with(addr, &v2(2, client)).is_none());
    assert_eq!(whoami(&tcp_with(addr, b"").unwrap()).0, local);
    assert_eq!(whoami(&udp_with(addr, b"").unwrap()).0, local);

    let skip = Exdns::start(
        ".:0 {\n bind 127.0.0.1\n proxyproto {\n allow 10.0.0.0/8\n default skip\n }\n whoami\n}\n",
    );
    let addr = skip.dns();
    assert_eq!(whoami(&udp_with(addr, b"").unwrap()).0, local);
    // The v2 header's first bytes read as a DNS header: opcode 1 (IQUERY), NOTIMP.
    let m = udp_with(addr, &v2(2, client)).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    assert_eq!(m.metadata.id, 0x0d0a);
}

/// `udp_session_tracking`: a header-only datagram (not answered) gives its client to the
/// headerless datagrams that follow from the same socket; another socket is itself.
#[test]
fn udp_session_tracking() {
    let ex = Exdns::start(
        ".:0 {\n bind 127.0.0.1\n proxyproto {\n udp_session_tracking 30s\n }\n whoami\n}\n",
    );
    let addr = ex.dns();
    let client: SocketAddr = "192.0.2.7:4711".parse().unwrap();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 1500];
    s.send_to(&v2(2, client), addr).unwrap();
    assert!(
        s.recv_from(&mut buf).is_err(),
        "a header-only datagram is not answered"
    );
    for _ in 0..2 {
        let q = query("who.example.", RecordType::A, None).to_vec().unwrap();
        s.send_to(&q, addr).unwrap();
        let (n, _) = s.recv_from(&mut buf).expect("reply");
        assert_eq!(
            whoami(&Message::from_vec(&buf[..n]).unwrap()),
            (client.ip(), 4711)
        );
    }
    let (ip, _) = whoami(&udp_with(addr, b"").unwrap());
    assert_eq!(ip, IpAddr::from([127, 0, 0, 1]));
}

/// DoT: the PROXY header comes before the TLS handshake.
#[test]
fn dot_after_a_proxy_header() {
    const SNI: &str = "dns.example.test";
    let certs = tempfile::tempdir().unwrap();
    let (_, cert, key) = make_certs(certs.path(), SNI);
    let ex = Exdns::start(&format!(
        "tls://.:0 {{\n bind 127.0.0.1\n tls {} {}\n proxyproto\n whoami\n}}\n",
        cert.display(),
        key.display()
    ));
    let config = client_config(roots_from_pem(&certs.path().join("ca.pem")));
    let name = rustls::pki_types::ServerName::try_from(SNI.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tcp = TcpStream::connect(ex.addr("tls://")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"PROXY TCP4 192.0.2.7 127.0.0.1 4711 853\r\n")
        .unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    write_framed(
        &mut s,
        &query("who.example.", RecordType::A, None).to_vec().unwrap(),
    );
    let reply = Message::from_vec(&read_framed(&mut s).expect("reply")).unwrap();
    assert_eq!(whoami(&reply), ("192.0.2.7".parse().unwrap(), 4711));
}

/// The fake client a QUIC relay names in its PROXY v2 headers.
const QUIC_CLIENT: &str = "198.51.100.7:5353";
const QUIC_SNI: &str = "dns.example.test";

/// A PROXY v2 proxy for QUIC in front of `server`, on loopback: the client's n-th datagram
/// (from 0) goes on to the server as the datagrams `wrap(n, datagram)` gives; the server's
/// replies go back to the client untouched.
struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

type Wrap = dyn Fn(u64, &[u8]) -> Vec<Vec<u8>> + Send;

impl Relay {
    fn start(server: SocketAddr, wrap: Box<Wrap>) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        back.connect(server).unwrap();
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
        }
        let addr = front.local_addr().unwrap();
        let client = Arc::new(Mutex::new(None::<SocketAddr>));
        let stop = Arc::new(AtomicBool::new(false));
        let up = {
            let (front, back) = (front.try_clone().unwrap(), back.try_clone().unwrap());
            let (client, stop) = (client.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, from)) = front.recv_from(&mut buf) else {
                        continue;
                    };
                    *client.lock().unwrap() = Some(from);
                    for d in wrap(n, &buf[..len]) {
                        let _ = back.send(&d);
                    }
                    n += 1;
                }
            })
        };
        let down = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(len) = back.recv(&mut buf) else {
                        continue;
                    };
                    if let Some(c) = *client.lock().unwrap() {
                        let _ = front.send_to(&buf[..len], c);
                    }
                }
            })
        };
        Relay {
            addr,
            stop,
            threads: vec![up, down],
        }
    }

    /// Every datagram with a v2 header naming [`QUIC_CLIENT`] in front.
    fn proxy(server: SocketAddr) -> Relay {
        let client: SocketAddr = QUIC_CLIENT.parse().unwrap();
        Relay::start(
            server,
            Box::new(move |_, d| vec![[&v2(2, client)[..], d].concat()]),
        )
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One whoami query with dnspython over DoQ (`quic`) or DoH3 (`https3`) to `addr` (the server
/// named [`QUIC_SNI`], trusting `ca`): the reply, or `None` when dnspython timed out
/// (`timeout` seconds: the client's give-up time, nothing asserted about the server's).
fn py_query(scheme: &str, addr: SocketAddr, ca: &std::path::Path, timeout: u32) -> Option<Message> {
    const CODE: &str = "import sys, dns.exception, dns.message, dns.query\n\
        scheme, port, ca, host, t = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])\n\
        q = dns.message.make_query('who.example.', 'A')\n\
        try:\n    \
            if scheme == 'quic':\n        \
                r = dns.query.quic(q, '127.0.0.1', port=port, verify=ca, server_hostname=host, timeout=t)\n    \
            else:\n        \
                r = dns.query.https(q, f'https://{host}:{port}/dns-query', bootstrap_address='127.0.0.1', http_version=dns.query.HTTPVersion.H3, verify=ca, timeout=t)\n    \
            print(r.to_wire().hex())\n\
        except dns.exception.Timeout:\n    \
            print('timeout')\n";
    let (status, out) = run(
        "python3",
        &[
            "-c",
            CODE,
            scheme,
            &addr.port().to_string(),
            &ca.display().to_string(),
            QUIC_SNI,
            &timeout.to_string(),
        ],
    );
    assert_eq!(status, 0, "{scheme}: {out}");
    let out = out.trim();
    if out == "timeout" {
        return None;
    }
    let wire: Vec<u8> = (0..out.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&out[i..i + 2], 16).expect(out))
        .collect();
    Some(Message::from_vec(&wire).unwrap())
}

/// A DoQ and a DoH3 block, each with `proxyproto {pp}` (none when `pp` is `None`), `extra`
/// lines and whoami, with the certificate in `certs` (see [`quic_certs`]).
fn quic_corefile(certs: &std::path::Path, pp: Option<&str>, extra: &str) -> String {
    let (cert, key) = (certs.join("server.pem"), certs.join("server.key"));
    let pp = pp.map_or(String::new(), |pp| format!(" proxyproto {{\n{pp}\n }}\n"));
    let block = |scheme: &str| {
        format!(
            "{scheme}://.:0 {{\n bind 127.0.0.1\n tls {} {}\n{pp}{extra}\n whoami\n}}\n",
            cert.display(),
            key.display()
        )
    };
    block("quic") + &block("https3")
}

/// A test CA (`ca.pem`) and a certificate for [`QUIC_SNI`] (`server.pem`, `server.key`).
fn quic_certs() -> tempfile::TempDir {
    let certs = tempfile::tempdir().unwrap();
    let ca = certs::TestCa::new("exdns test CA");
    ca.write(certs.path(), "ca.pem");
    ca.issue(&[QUIC_SNI]).write(certs.path(), "server");
    certs
}

/// [`quic_corefile`] served.
fn quic_server(pp: &str, extra: &str) -> (Exdns, tempfile::TempDir) {
    let certs = quic_certs();
    let ex = Exdns::start(&quic_corefile(certs.path(), Some(pp), extra));
    (ex, certs)
}

/// A reload that adds or changes `proxyproto` applies to the running QUIC listeners at once, as
/// on TCP and UDP: the same listeners (bound at start) take the new policy from the next
/// datagram on.
#[test]
fn quic_proxyproto_follows_a_reload() {
    if !require("python3") {
        return;
    }
    let certs = quic_certs();
    let ca = certs.path().join("ca.pem");
    let ex = Exdns::start(&quic_corefile(certs.path(), None, ""));
    let client: SocketAddr = QUIC_CLIENT.parse().unwrap();
    let local = IpAddr::from([127, 0, 0, 1]);
    ex.reload_with(&quic_corefile(
        certs.path(),
        Some(" allow 127.0.0.1/32"),
        "",
    ));
    for scheme in ["quic", "https3"] {
        let relay = Relay::proxy(ex.addr(&format!("{scheme}://")));
        let m = py_query(scheme, relay.addr, &ca, 10).expect(scheme);
        assert_eq!(whoami(&m), (client.ip(), client.port()), "{scheme}");
    }
    // The proxy's address leaves `allow` (default ignore): headers are stripped, not believed.
    ex.reload_with(&quic_corefile(certs.path(), Some(" allow 10.0.0.0/8"), ""));
    for scheme in ["quic", "https3"] {
        let relay = Relay::proxy(ex.addr(&format!("{scheme}://")));
        let m = py_query(scheme, relay.addr, &ca, 10).expect(scheme);
        assert_eq!(whoami(&m).0, local, "{scheme}");
    }
}

/// DoQ and DoH3 behind a PROXY v2 proxy: quinn's connection is the header's client, so whoami
/// answers with it and `acl` judges it; without a proxy the peer is itself.
#[test]
fn quic_through_a_proxy() {
    if !require("python3") {
        return;
    }
    let (ex, certs) = quic_server(
        " allow 127.0.0.1/32",
        " acl {\n allow net 198.51.100.7/32\n block\n }",
    );
    let ca = certs.path().join("ca.pem");
    let client: SocketAddr = QUIC_CLIENT.parse().unwrap();
    for scheme in ["quic", "https3"] {
        let server = ex.addr(&format!("{scheme}://"));
        let relay = Relay::proxy(server);
        let m = py_query(scheme, relay.addr, &ca, 10).expect(scheme);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{scheme}");
        assert_eq!(whoami(&m), (client.ip(), client.port()), "{scheme}");
        // The same client again: the proxy it came through is where the replies go.
        let m = py_query(scheme, relay.addr, &ca, 10).expect(scheme);
        assert_eq!(whoami(&m), (client.ip(), client.port()), "{scheme}");
        // Direct, no header: 127.0.0.1 itself, which the acl blocks.
        let m = py_query(scheme, server, &ca, 10).expect(scheme);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{scheme}");
    }
}

/// Sources outside `allow` get `default`: `ignore` strips the header and keeps the proxy's
/// address; `reject` drops every datagram with a header (QUIC never connects: the client gives
/// up), while the same listener answers a client without a proxy.
#[test]
fn quic_sources_outside_allow() {
    if !require("python3") {
        return;
    }
    let local = IpAddr::from([127, 0, 0, 1]);
    let (ignore, certs) = quic_server(" allow 10.0.0.0/8", "");
    let ca = certs.path().join("ca.pem");
    for scheme in ["quic", "https3"] {
        let relay = Relay::proxy(ignore.addr(&format!("{scheme}://")));
        let m = py_query(scheme, relay.addr, &ca, 10).expect(scheme);
        assert_eq!(whoami(&m).0, local, "{scheme}");
    }
    let (reject, certs) = quic_server(" allow 10.0.0.0/8\n default reject", "");
    let ca = certs.path().join("ca.pem");
    for scheme in ["quic", "https3"] {
        let server = reject.addr(&format!("{scheme}://"));
        let relay = Relay::proxy(server);
        assert!(py_query(scheme, relay.addr, &ca, 2).is_none(), "{scheme}");
        let m = py_query(scheme, server, &ca, 10).expect(scheme);
        assert_eq!(whoami(&m).0, local, "{scheme}");
    }
}

/// Malformed headers (a bad v2 version, a v1 line, a STREAM v2, truncated ones) drop their
/// datagram and nothing else: the client's retransmitted Initial, with a good header, connects.
#[test]
fn quic_garbage_headers_are_dropped() {
    if !require("python3") {
        return;
    }
    let (ex, certs) = quic_server(" allow 127.0.0.1/32", "");
    let ca = certs.path().join("ca.pem");
    let client: SocketAddr = QUIC_CLIENT.parse().unwrap();
    let server = ex.addr("quic://");
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    for n in 0..40 {
        junk.send_to(&v2(2, client)[..n % 29], server).unwrap();
    }
    let relay = Relay::start(
        server,
        Box::new(move |n, d| {
            let good = [&v2(2, client)[..], d].concat();
            if n > 0 {
                return vec![good];
            }
            let mut bad_version = good.clone();
            bad_version[12] = 0x91;
            vec![
                bad_version,
                [&b"PROXY TCP4 198.51.100.7 127.0.0.1 5353 853\r\n"[..], d].concat(),
                [&v2(1, client)[..], d].concat(),
            ]
        }),
    );
    let m = py_query("quic", relay.addr, &ca, 10).expect("an answer after the retransmit");
    assert_eq!(whoami(&m), (client.ip(), client.port()));
}

/// As CoreDNS's QUIC servers (their socket gets no session TTL), `udp_session_tracking` does
/// not apply to QUIC: a header-only datagram is dropped and the headerless ones after it keep
/// the proxy's address. The block starts (exdns used to refuse proxyproto on `quic://`).
#[test]
fn quic_without_udp_session_tracking() {
    if !require("python3") {
        return;
    }
    let (ex, certs) = quic_server(" udp_session_tracking 30s", "");
    let ca = certs.path().join("ca.pem");
    let client: SocketAddr = QUIC_CLIENT.parse().unwrap();
    for scheme in ["quic", "https3"] {
        let relay = Relay::start(
            ex.addr(&format!("{scheme}://")),
            Box::new(move |n, d| {
                if n == 0 {
                    vec![v2(2, client), d.to_vec()]
                } else {
                    vec![d.to_vec()]
                }
            }),
        );
        let m = py_query(scheme, relay.addr, &ca, 10).expect(scheme);
        assert_eq!(whoami(&m).0, IpAddr::from([127, 0, 0, 1]), "{scheme}");
    }
}
