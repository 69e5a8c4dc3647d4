//! `proxyproto`: PROXY v1 and v2 headers in front of TCP connections and UDP datagrams; whoami
//! answers with the client address from the header.

mod support;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
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
