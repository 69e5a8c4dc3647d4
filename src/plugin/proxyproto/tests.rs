use std::net::SocketAddr;

use super::*;
use crate::plugin::test_chain::config_of;

fn v2(cmd: u8, fam: u8, addrs: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut b = V2_SIG.to_vec();
    b.push(0x20 | cmd);
    b.push(fam);
    b.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
    b.extend_from_slice(addrs);
    b.extend_from_slice(tail);
    b
}

fn v4_addrs() -> Vec<u8> {
    // 192.0.2.7:4711 -> 198.51.100.1:53
    vec![192, 0, 2, 7, 198, 51, 100, 1, 0x12, 0x67, 0, 53]
}

fn v6_addrs() -> Vec<u8> {
    let mut a = Vec::new();
    a.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
    a.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    a.extend_from_slice(&[0x12, 0x67, 0, 53]);
    a
}

fn hdr(version: u8, len: usize, source: Option<&str>, transport: Transport) -> Parsed {
    Parsed::Header(Header {
        version,
        len,
        source: source.map(|s| s.parse::<SocketAddr>().unwrap()),
        transport,
    })
}

#[test]
fn parse_table() {
    let v1 = b"PROXY TCP4 192.0.2.7 198.51.100.1 4711 53\r\n";
    let v1_6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 4711 53\r\n";
    let mut tlv = v4_addrs();
    tlv.extend_from_slice(&[0x04, 0, 1, 0]); // a NOOP TLV after the addresses
    let cases: Vec<(&str, Vec<u8>, Parsed)> = vec![
        ("dns", b"\x00\x1d\x12\x34".to_vec(), Parsed::None),
        ("empty", vec![], Parsed::Incomplete),
        (
            "v1 tcp4",
            v1.to_vec(),
            hdr(1, v1.len(), Some("192.0.2.7:4711"), Transport::Stream),
        ),
        (
            "v1 + payload",
            [&v1[..], b"\x00\x1d"].concat(),
            hdr(1, v1.len(), Some("192.0.2.7:4711"), Transport::Stream),
        ),
        (
            "v1 tcp6",
            v1_6.to_vec(),
            hdr(1, v1_6.len(), Some("[2001:db8::7]:4711"), Transport::Stream),
        ),
        (
            "v1 unknown",
            b"PROXY UNKNOWN\r\n".to_vec(),
            hdr(1, 15, None, Transport::Stream),
        ),
        (
            "v1 unknown with addrs",
            b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n".to_vec(),
            hdr(1, 35, None, Transport::Stream),
        ),
        ("v1 truncated", v1[..20].to_vec(), Parsed::Incomplete),
        ("v1 sig only", b"PROX".to_vec(), Parsed::Incomplete),
        (
            "v1 no CR",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 4711 53\n".to_vec(),
            Parsed::Invalid("v1 header must end with CRLF"),
        ),
        (
            "v1 too long",
            [&b"PROXY TCP4 "[..], &[b'1'; 120]].concat(),
            Parsed::Invalid("v1 header longer than 107 bytes"),
        ),
        (
            "v1 bad proto",
            b"PROXY UDP4 192.0.2.7 198.51.100.1 4711 53\r\n".to_vec(),
            Parsed::Invalid("v1 header has an unknown protocol"),
        ),
        (
            "v1 family mismatch",
            b"PROXY TCP4 2001:db8::7 198.51.100.1 4711 53\r\n".to_vec(),
            Parsed::Invalid("v1 header address does not match its protocol"),
        ),
        (
            "v1 bad ip",
            b"PROXY TCP4 192.0.2.300 198.51.100.1 4711 53\r\n".to_vec(),
            Parsed::Invalid("v1 header has an invalid address"),
        ),
        (
            "v1 bad port",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 53\r\n".to_vec(),
            Parsed::Invalid("v1 header has an invalid port"),
        ),
        (
            "v1 signed port",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 +53 53\r\n".to_vec(),
            Parsed::Invalid("v1 header has an invalid port"),
        ),
        (
            "v1 missing field",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 4711\r\n".to_vec(),
            Parsed::Invalid("v1 header malformed"),
        ),
        (
            "v1 no space",
            b"PROXYTCP4\r\n".to_vec(),
            Parsed::Invalid("v1 header malformed"),
        ),
        (
            "v1 binary",
            b"PROXY \xff\xfe\r\n".to_vec(),
            Parsed::Invalid("v1 header is not text"),
        ),
        (
            "v2 tcp4",
            v2(1, 0x11, &v4_addrs(), b""),
            hdr(2, 28, Some("192.0.2.7:4711"), Transport::Stream),
        ),
        (
            "v2 udp4 + payload",
            v2(1, 0x12, &v4_addrs(), b"\x12\x34"),
            hdr(2, 28, Some("192.0.2.7:4711"), Transport::Dgram),
        ),
        (
            "v2 udp6",
            v2(1, 0x22, &v6_addrs(), b""),
            hdr(2, 52, Some("[2001:db8::7]:4711"), Transport::Dgram),
        ),
        (
            "v2 with tlv",
            v2(1, 0x11, &tlv, b""),
            hdr(2, 32, Some("192.0.2.7:4711"), Transport::Stream),
        ),
        (
            "v2 local",
            v2(0, 0x00, &[], b""),
            hdr(2, 16, None, Transport::Unspec),
        ),
        (
            "v2 local with addrs",
            v2(0, 0x11, &v4_addrs(), b""),
            hdr(2, 28, None, Transport::Unspec),
        ),
        (
            "v2 unix",
            v2(1, 0x31, &[0; 216], b""),
            hdr(2, 232, None, Transport::Stream),
        ),
        ("v2 sig prefix", V2_SIG[..7].to_vec(), Parsed::Incomplete),
        ("v2 no len", V2_SIG[..].to_vec(), Parsed::Incomplete),
        (
            "v2 truncated addrs",
            v2(1, 0x11, &v4_addrs(), b"")[..20].to_vec(),
            Parsed::Incomplete,
        ),
        (
            "v2 short for family",
            v2(1, 0x21, &v4_addrs(), b""),
            Parsed::Invalid("v2 header too short for its address family"),
        ),
        (
            "v2 version 1",
            {
                let mut b = v2(1, 0x11, &v4_addrs(), b"");
                b[12] = 0x11;
                b
            },
            Parsed::Invalid("v2 header has an unknown version"),
        ),
        (
            "v2 command 2",
            v2(2, 0x11, &v4_addrs(), b""),
            Parsed::Invalid("v2 header has an unknown command"),
        ),
        (
            "v2 family 4",
            v2(1, 0x41, &v4_addrs(), b""),
            Parsed::Invalid("v2 header has an unknown address family"),
        ),
        (
            "v2 transport 3",
            v2(1, 0x13, &v4_addrs(), b""),
            Parsed::Invalid("v2 header has an unknown transport"),
        ),
    ];
    for (name, buf, want) in cases {
        assert_eq!(parse(&buf), want, "{name}");
    }
}

/// Every prefix of valid headers, and random bytes behind a signature, parse without a panic.
#[test]
fn parse_never_panics() {
    let mut inputs = vec![
        b"PROXY TCP4 192.0.2.7 198.51.100.1 4711 53\r\n".to_vec(),
        v2(1, 0x22, &v6_addrs(), b"xx"),
        v2(1, 0x31, &[7; 216], b""),
    ];
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..2000 {
        let mut b = if x & 1 == 0 {
            V2_SIG.to_vec()
        } else {
            b"PROXY ".to_vec()
        };
        for _ in 0..(x % 64) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b.push(x as u8);
        }
        inputs.push(b);
    }
    for b in &inputs {
        for n in 0..=b.len() {
            let _ = parse(&b[..n]);
        }
    }
}

fn pp(allow: &[&str], default: Option<Policy>) -> ProxyProto {
    ProxyProto {
        allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
        default,
        sessions: None,
    }
}

#[test]
fn policies() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(pp(&[], None).policy(ip("203.0.113.1")), Policy::Use);
    assert_eq!(
        pp(&[], Some(Policy::Reject)).policy(ip("203.0.113.1")),
        Policy::Reject
    );
    let p = pp(&["10.0.0.0/8", "2001:db8::/32"], None);
    assert_eq!(p.policy(ip("10.1.2.3")), Policy::Use);
    assert_eq!(p.policy(ip("::ffff:10.1.2.3")), Policy::Use);
    assert_eq!(p.policy(ip("2001:db8::1")), Policy::Use);
    assert_eq!(p.policy(ip("11.0.0.1")), Policy::Ignore);
    let p = pp(&["10.0.0.0/8"], Some(Policy::Skip));
    assert_eq!(p.policy(ip("11.0.0.1")), Policy::Skip);
}

#[test]
fn udp_datagrams() {
    let peer: SocketAddr = "10.0.0.1:3333".parse().unwrap();
    let client: SocketAddr = "192.0.2.7:4711".parse().unwrap();
    let dns = b"\x12\x34\x01\x00";
    let udp4 = v2(1, 0x12, &v4_addrs(), dns);
    let tcp4 = v2(1, 0x11, &v4_addrs(), dns);
    let v1 = [&b"PROXY TCP4 192.0.2.7 198.51.100.1 4711 53\r\n"[..], dns].concat();
    let use_ = pp(&[], None);
    assert_eq!(udp(&use_, &udp4, peer), Some((&dns[..], client)));
    assert_eq!(udp(&use_, dns, peer), Some((&dns[..], peer)));
    // Only v2 over a datagram transport, as CoreDNS.
    assert_eq!(udp(&use_, &tcp4, peer), None);
    assert_eq!(udp(&use_, &v1, peer), None);
    assert_eq!(udp(&use_, &udp4[..20], peer), None);
    assert_eq!(udp(&use_, &v2(0, 0, &[], dns), peer), None);
    let ignore = pp(&["192.168.0.0/16"], None);
    assert_eq!(udp(&ignore, &udp4, peer), Some((&dns[..], peer)));
    let reject = pp(&["192.168.0.0/16"], Some(Policy::Reject));
    assert_eq!(udp(&reject, &udp4, peer), None);
    assert_eq!(udp(&reject, dns, peer), Some((&dns[..], peer)));
    let skip = pp(&["192.168.0.0/16"], Some(Policy::Skip));
    assert_eq!(udp(&skip, &udp4, peer), Some((&udp4[..], peer)));
}

/// `udp_session_tracking`: a header-only datagram opens a session; headerless datagrams from
/// the same peer get its client until it idles out.
#[test]
fn udp_sessions() {
    let peer: SocketAddr = "10.0.0.1:3333".parse().unwrap();
    let other: SocketAddr = "10.0.0.2:3333".parse().unwrap();
    let client: SocketAddr = "192.0.2.7:4711".parse().unwrap();
    let dns = b"\x12\x34\x01\x00";
    let mut p = pp(&[], None);
    p.sessions = Some(SessionTracking::new(Duration::from_millis(200), 10));
    assert_eq!(udp(&p, &v2(1, 0x12, &v4_addrs(), b""), peer), None);
    assert_eq!(udp(&p, dns, peer), Some((&dns[..], client)));
    assert_eq!(udp(&p, dns, other), Some((&dns[..], other)));
    // A header with a payload refreshes the session and is answered.
    let with = v2(1, 0x12, &v4_addrs(), dns);
    assert_eq!(udp(&p, &with, other), Some((&dns[..], client)));
    std::thread::sleep(Duration::from_millis(400));
    p.sessions.as_ref().unwrap().cache.run_pending_tasks();
    assert_eq!(udp(&p, dns, peer), Some((&dns[..], peer)));
    // Without tracking, a header-only datagram is an empty message (dropped by the server).
    assert_eq!(
        udp(&pp(&[], None), &v2(1, 0x12, &v4_addrs(), b""), peer),
        Some((&b""[..], client))
    );
}

async fn over_stream(p: &ProxyProto, bytes: &[u8]) -> Option<(Vec<u8>, SocketAddr)> {
    let peer: SocketAddr = "10.0.0.1:3333".parse().unwrap();
    let (mut a, b) = tokio::io::duplex(4096);
    tokio::io::AsyncWriteExt::write_all(&mut a, bytes)
        .await
        .unwrap();
    drop(a);
    let (mut s, client) = stream(p, b, peer, Duration::from_secs(1)).await?;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    Some((rest, client))
}

#[tokio::test]
async fn streams() {
    let peer: SocketAddr = "10.0.0.1:3333".parse().unwrap();
    let client: SocketAddr = "192.0.2.7:4711".parse().unwrap();
    let dns = b"\x00\x02\x12\x34".to_vec();
    let v1 = [&b"PROXY TCP4 192.0.2.7 198.51.100.1 4711 53\r\n"[..], &dns].concat();
    let tcp4 = v2(1, 0x11, &v4_addrs(), &dns);
    let use_ = pp(&[], None);
    assert_eq!(over_stream(&use_, &v1).await, Some((dns.clone(), client)));
    assert_eq!(over_stream(&use_, &tcp4).await, Some((dns.clone(), client)));
    assert_eq!(over_stream(&use_, &dns).await, Some((dns.clone(), peer)));
    let unknown = [&b"PROXY UNKNOWN\r\n"[..], &dns].concat();
    assert_eq!(
        over_stream(&use_, &unknown).await,
        Some((dns.clone(), peer))
    );
    // Malformed or cut short: closed.
    assert_eq!(over_stream(&use_, b"PROXY TCP4 x\r\n").await, None);
    assert_eq!(over_stream(&use_, &tcp4[..20]).await, None);
    assert_eq!(over_stream(&use_, b"").await, None);
    let ignore = pp(&["192.168.0.0/16"], None);
    assert_eq!(over_stream(&ignore, &v1).await, Some((dns.clone(), peer)));
    let reject = pp(&["192.168.0.0/16"], Some(Policy::Reject));
    assert_eq!(over_stream(&reject, &v1).await, None);
    assert_eq!(over_stream(&reject, &dns).await, Some((dns.clone(), peer)));
    let skip = pp(&["192.168.0.0/16"], Some(Policy::Skip));
    assert_eq!(over_stream(&skip, &v1).await, Some((v1.clone(), peer)));
}

/// A header that never completes is given up after the timeout.
#[tokio::test]
async fn stream_timeout() {
    let (mut a, b) = tokio::io::duplex(64);
    tokio::io::AsyncWriteExt::write_all(&mut a, b"PROXY TCP4")
        .await
        .unwrap();
    let peer: SocketAddr = "10.0.0.1:3333".parse().unwrap();
    let got = stream(&pp(&[], None), b, peer, Duration::from_millis(50)).await;
    assert!(got.is_none());
    drop(a);
}

#[test]
fn setup_values() {
    let run = |t: &str| config_of(setup, t).map(|c| c.proxyproto.map(|p| (*p).clone()));
    assert_eq!(run("proxyproto"), Ok(Some(pp(&[], None))));
    assert_eq!(
        run("proxyproto {\n allow 192.168.1.1/32 10.1.2.3/8\n allow ::1/128\n default REJECT\n}"),
        Ok(Some(pp(
            &["192.168.1.1/32", "10.0.0.0/8", "::1/128"],
            Some(Policy::Reject)
        )))
    );
    for (text, want) in [
        (
            "proxyproto x",
            "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after 'x'",
        ),
        (
            "proxyproto {\n allow 10.0.0.0/33\n}",
            "Corefile:2 - Error during parsing: 10.0.0.0/33: invalid CIDR address: 10.0.0.0/33",
        ),
        (
            "proxyproto {\n default\n}",
            "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'default'",
        ),
        (
            "proxyproto {\n default maybe\n}",
            "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'maybe'",
        ),
        (
            "proxyproto {\n udp_session_tracking abc\n}",
            "Corefile:2 - Error during parsing: udp_session_tracking: invalid duration \"abc\": time: invalid duration \"abc\"",
        ),
        (
            "proxyproto {\n udp_session_tracking 28s 0\n}",
            "Corefile:2 - Error during parsing: udp_session_tracking: invalid max sessions \"0\": must be a positive integer",
        ),
        (
            "proxyproto {\n udp_session_tracking\n}",
            "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'udp_session_tracking'",
        ),
        (
            "proxyproto {\n deny 10.0.0.0/8\n}",
            "Corefile:2 - Error during parsing: unknown option 'deny'",
        ),
    ] {
        assert_eq!(run(text).unwrap_err(), want, "{text}");
    }
}
