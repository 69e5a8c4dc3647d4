//! `view` end to end: blocks sharing a zone and port answer by client address (127.0.0.1 and
//! 127.0.0.2 are different clients on loopback), over UDP and TCP, as CoreDNS's split horizon;
//! and `multisocket`'s sockets counted in /proc/net.

mod support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use support::*;

fn corefile(port: u16) -> String {
    format!(
        "\
.:{port} {{
    view one {{
        expr incidr(client_ip(), '127.0.0.1/32')
    }}
    prometheus 127.0.0.1:0
    cache 30
    hosts {{
        1.1.1.1 test
    }}
}}
.:{port} {{
    prometheus 127.0.0.1:0
    view two {{
        expr incidr(client_ip(), '127.0.0.2/32') && type() == 'A'
        expr name() matches '^(test|www\\\\.example\\\\.org)\\\\.$'
    }}
    hosts {{
        2.2.2.2 test
        2.2.2.2 www.example.org
    }}
}}
example.org.:{port} {{
    view nobody {{
        expr client_ip() == '10.9.9.9'
    }}
    hosts {{
        9.9.9.9 www.example.org
    }}
}}
.:{port} {{
    hosts {{
        3.3.3.3 test
        3.3.3.3 www.example.org
    }}
}}
"
    )
}

fn udp_from(from: Ipv4Addr, to: SocketAddr, q: &Message) -> Message {
    let s = UdpSocket::bind((from, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.send_to(&q.to_vec().unwrap(), to).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = s.recv_from(&mut buf).expect("udp reply");
    Message::from_vec(&buf[..n]).unwrap()
}

fn tcp_from(from: Ipv4Addr, to: SocketAddr, q: &Message) -> Message {
    let mut s = connect_from(from, to).expect("tcp connection");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write_framed(&mut s, &q.to_vec().unwrap());
    Message::from_vec(&read_framed(&mut s).expect("tcp reply")).unwrap()
}

fn a_of(r: &Message) -> Vec<String> {
    assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{r:?}");
    r.answers
        .iter()
        .map(|rr| match &rr.data {
            RData::A(a) => a.to_string(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn split_horizon_by_client_address_over_udp_and_tcp() {
    let port = free_port();
    let ex = Exdns::start(&corefile(port));
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let one = Ipv4Addr::new(127, 0, 0, 1);
    let two = Ipv4Addr::new(127, 0, 0, 2);
    let three = Ipv4Addr::new(127, 0, 0, 3);
    // (client, name, answer): several times each, so the fast path (cache-less, but hosts
    // answers there) and the full path agree.
    let cases: &[(Ipv4Addr, &str, &str)] = &[
        (one, "test.", "1.1.1.1"),
        (two, "test.", "2.2.2.2"),
        (three, "test.", "3.3.3.3"),
        // example.org.'s only block has a view nobody passes: the `.` blocks take the query,
        // as CoreDNS's server goes on to shorter zones.
        (two, "www.example.org.", "2.2.2.2"),
        (three, "www.example.org.", "3.3.3.3"),
    ];
    for _ in 0..3 {
        for (from, name, want) in cases {
            let q = query(name, RecordType::A, Some(1232));
            assert_eq!(a_of(&udp_from(*from, to, &q)), [*want], "udp {from} {name}");
            let q = query(name, RecordType::A, None);
            assert_eq!(a_of(&tcp_from(*from, to, &q)), [*want], "tcp {from} {name}");
        }
    }
    // 127.0.0.2's view asks for type A: its AAAA query goes on to the catch-all block, which
    // has the name but no AAAA (NOERROR, no answer, from block three's hosts).
    let q = query("test.", RecordType::AAAA, None);
    let r = udp_from(two, to, &q);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty(), "{r:?}");
    // 127.0.0.1's block has no www.example.org: its hosts' SERVFAIL (CoreDNS's hosts without
    // fallthrough), not another block's answer.
    let q = query("www.example.org.", RecordType::A, None);
    let r = udp_from(one, to, &q);
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail, "{r:?}");

    // The metrics of a block with a view carry its name in the `view` label.
    let (_, _, body) = http_get(ex.http_addr("127.0.0.1:0"), "/metrics");
    let label = |view: &str| {
        format!(
            "coredns_dns_requests_total{{family=\"1\",proto=\"udp\",server=\"dns://:{port}\",type=\"A\",view=\"{view}\",zone=\".\"}}"
        )
    };
    for view in ["one", "two"] {
        assert!(body.contains(&label(view)), "{view} missing from {body}");
    }
    assert!(
        body.contains(&format!(
            "coredns_cache_requests_total{{server=\"dns://:{port}\",view=\"one\",zones=\".\"}}"
        )),
        "{body}"
    );
    drop(ex);
}

#[test]
fn two_blocks_without_view_on_one_zone_are_still_refused() {
    let port = free_port();
    let cf = format!(".:{port} {{\n    whoami\n}}\n.:{port} {{\n    whoami\n}}\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Corefile");
    std::fs::write(&path, cf).unwrap();
    let (code, out) = run(
        bin().to_str().unwrap(),
        &["-conf", path.to_str().unwrap(), "-check"],
    );
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "cannot serve dns://.:{port} - it is already defined"
        )),
        "{out}"
    );
    // With a view on the first, the same two blocks are fine.
    let cf = format!(
        ".:{port} {{\n    view v {{\n        expr proto() == 'tcp'\n    }}\n    whoami\n}}\n.:{port} {{\n    whoami\n}}\n"
    );
    std::fs::write(&path, cf).unwrap();
    let (code, out) = run(
        bin().to_str().unwrap(),
        &["-conf", path.to_str().unwrap(), "-check"],
    );
    assert_eq!(code, 0, "{out}");
}

/// Sockets of `proto` (`udp`, `tcp`) bound to `port` in this network namespace, by
/// /proc/net (listening ones only for TCP).
fn sockets_on(proto: &str, port: u16) -> usize {
    let mut n = 0;
    for file in [format!("/proc/net/{proto}"), format!("/proc/net/{proto}6")] {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let Some(local) = f.get(1) else { continue };
            let Some((_, p)) = local.rsplit_once(':') else {
                continue;
            };
            let listening = proto == "udp" || f.get(3) == Some(&"0A");
            if u16::from_str_radix(p, 16) == Ok(port) && listening {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn multisocket_opens_that_many_sockets_per_listener() {
    let port = free_port();
    let ex = Exdns::start(&format!(".:{port} {{\n    multisocket 3\n    whoami\n}}\n"));
    assert_eq!(sockets_on("udp", port), 3);
    assert_eq!(sockets_on("tcp", port), 3);
    // Every socket answers: enough queries from different source ports reach them all.
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..20 {
        let q = query("example.org.", RecordType::A, None);
        assert_eq!(udp(to, &q).metadata.response_code, ResponseCode::NoError);
        assert_eq!(tcp(to, &q).metadata.response_code, ResponseCode::NoError);
    }
    drop(ex);
    // Without multisocket: one UDP socket per core (at most 16), one TCP socket.
    let port = free_port();
    let ex = Exdns::start(&format!(".:{port} {{\n    whoami\n}}\n"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(sockets_on("udp", port), cores.clamp(1, 16));
    assert_eq!(sockets_on("tcp", port), 1);
    drop(ex);
    // As CoreDNS, the first block binding an address decides.
    let port = free_port();
    let ex = Exdns::start(&format!(
        "a.:{port} {{\n    multisocket 2\n    whoami\n}}\nb.:{port} {{\n    multisocket 5\n    whoami\n}}\n"
    ));
    assert_eq!(sockets_on("udp", port), 2);
    assert_eq!(sockets_on("tcp", port), 2);
    drop(ex);
}
