//! Self-test of `support::netns`: the two-link topology routes unpinned traffic and traffic pinned
//! to the vpn interface (or the vpn source address) the way leak tests rely on, the packet counters
//! show which link carried it, and everything is removed on drop. Needs root (CI runs as root);
//! without it every test returns early after saying so.

mod support;

use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use socket2::{Domain, Protocol, Socket, Type};
use support::netns::{
    CLIENT_VPN_IF, CLIENT_VPN_IP, Link, Prefer, SERVICE_IP, Topology, TopologyOpts, in_netns,
};
use support::tlsecho::{DotClient, TlsEcho, TlsEchoOpts, client_config, roots_from_pem};
use support::unbound::{self, Unbound, UnboundOpts};
use support::{Exdns, query};

fn upstream(topo: &Topology) -> Unbound {
    Unbound::start(
        UnboundOpts::new()
            .ip(IpAddr::V4(SERVICE_IP))
            .ports(53, 853)
            .in_netns(&topo.upstream)
            .static_zone("example.test")
            .data("www.example.test. 300 IN A 192.0.2.1"),
    )
}

/// One UDP query from the client namespace, the socket bound to `device` if given.
fn udp_query(
    topo: &Topology,
    device: Option<&'static str>,
    server: SocketAddr,
    name: &str,
) -> std::io::Result<Message> {
    let q = query(name, RecordType::A, None);
    in_netns(&topo.client, move || {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        if let Some(d) = device {
            s.bind_device(Some(d.as_bytes()))?;
        }
        let s: UdpSocket = s.into();
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.send_to(&q.to_vec().unwrap(), server)?;
        let mut buf = [0u8; 4096];
        let (n, _) = s.recv_from(&mut buf)?;
        let m = Message::from_vec(&buf[..n]).map_err(std::io::Error::other)?;
        assert_eq!(m.metadata.id, q.metadata.id);
        Ok(m)
    })
}

fn first_a(m: &Message) -> Option<std::net::Ipv4Addr> {
    m.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some(a.0),
        _ => None,
    })
}

fn dig_in(topo: &Topology, extra: &[&str]) -> String {
    let server = format!("@{SERVICE_IP}");
    let mut args = vec!["dig", server.as_str(), "+time=2", "+tries=1"];
    args.extend_from_slice(extra);
    topo.run_in(&topo.client, &args).text()
}

fn ready() -> bool {
    support::netns::available() && unbound::available() && support::have("dig")
}

#[test]
fn device_pinning_uses_the_vpn_link_and_fails_closed() {
    if !ready() {
        return;
    }
    let topo = Topology::create("pin").expect("root");
    let ub = upstream(&topo);
    let dns = SocketAddr::new(IpAddr::V4(SERVICE_IP), 53);

    // Unpinned traffic takes the preferred default route: the leak link.
    let c0 = topo.counters();
    let out = dig_in(&topo, &["www.example.test"]);
    assert!(
        out.contains("status: NOERROR") && out.contains("192.0.2.1"),
        "{out}"
    );
    let d = topo.counters().since(&c0);
    assert!(d.leak.tx_packets >= 1, "{d:?}");
    assert_eq!(d.vpn.tx_packets, 0, "{d:?}");

    // Bound to vpn0: every packet goes through the vpn link.
    let c0 = topo.counters();
    let m = udp_query(&topo, Some(CLIENT_VPN_IF), dns, "www.example.test.").expect("pinned query");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(first_a(&m), Some("192.0.2.1".parse().unwrap()));
    let d = topo.counters().since(&c0);
    assert!(d.vpn.tx_packets >= 1 && d.vpn.rx_packets >= 1, "{d:?}");
    assert_eq!(d.leak.tx_packets, 0, "{d:?}");
    // Seen from the upstream host too: the query arrived on uvpn0.
    assert!(
        topo.stats(&topo.upstream, Link::Vpn.upstream_if())
            .rx_packets
            >= 1
    );

    // DoT pinned to vpn0, verified against unbound's CA.
    let c0 = topo.counters();
    let cfg = client_config(roots_from_pem(&ub.ca_pem));
    let r = in_netns(&topo.client, move || {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        s.bind_device(Some(CLIENT_VPN_IF.as_bytes()))?;
        s.connect_timeout(
            &SocketAddr::new(IpAddr::V4(SERVICE_IP), 853).into(),
            Duration::from_secs(2),
        )?;
        let tcp: TcpStream = s.into();
        let mut c = DotClient::from_tcp(tcp, "dns.example.test", &cfg)?;
        c.query(&query("www.example.test.", RecordType::A, None))
    })
    .expect("pinned DoT query");
    assert_eq!(first_a(&r), Some("192.0.2.1".parse().unwrap()));
    let d = topo.counters().since(&c0);
    assert!(d.vpn.tx_packets >= 3, "{d:?}");
    assert_eq!(d.leak.tx_packets, 0, "{d:?}");
    assert_eq!(ub.tls_queries(), 1);

    // vpn link down: the pinned socket fails at once, nothing goes out the leak link...
    topo.link_down(Link::Vpn);
    let c0 = topo.counters();
    let t = Instant::now();
    let err = udp_query(&topo, Some(CLIENT_VPN_IF), dns, "www.example.test.").unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(1), "failed slowly: {err}");
    assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH), "{err}");
    let d = topo.counters().since(&c0);
    assert_eq!(d.leak.tx_packets, 0, "{d:?}");
    assert_eq!(d.vpn.tx_packets, 0, "{d:?}");
    // ...while unpinned traffic still reaches the upstream the other way (the leak to avoid).
    let out = dig_in(&topo, &["www.example.test"]);
    assert!(out.contains("status: NOERROR"), "{out}");

    // vpn interface missing: binding to it fails.
    topo.link_delete(Link::Vpn);
    assert!(!topo.link_exists(Link::Vpn));
    let err = udp_query(&topo, Some(CLIENT_VPN_IF), dns, "www.example.test.").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");

    // Back up (re-created with address and routes): pinned queries work again.
    topo.link_up(Link::Vpn);
    let c0 = topo.counters();
    let m = udp_query(&topo, Some(CLIENT_VPN_IF), dns, "www.example.test.").expect("after link_up");
    assert_eq!(first_a(&m), Some("192.0.2.1".parse().unwrap()));
    let d = topo.counters().since(&c0);
    assert!(d.vpn.tx_packets >= 1, "{d:?}");
    assert_eq!(d.leak.tx_packets, 0, "{d:?}");
}

#[test]
fn source_policy_pins_the_vpn_address() {
    if !ready() {
        return;
    }
    let topo = Topology::create_with(
        "src",
        TopologyOpts {
            prefer: Prefer::Vpn,
            source_policy: true,
        },
    )
    .expect("root");
    let _ub = upstream(&topo);
    let src = CLIENT_VPN_IP.to_string();

    // With the vpn preferred, unpinned traffic uses it while it is up.
    let c0 = topo.counters();
    let out = dig_in(&topo, &["www.example.test"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    let d = topo.counters().since(&c0);
    assert!(d.vpn.tx_packets >= 1, "{d:?}");
    assert_eq!(d.leak.tx_packets, 0, "{d:?}");

    topo.link_down(Link::Vpn);
    // Source-pinned: unreachable (policy table), no packet anywhere.
    let c0 = topo.counters();
    let out = dig_in(&topo, &["-b", &src, "www.example.test"]);
    assert!(!out.contains("status: NOERROR"), "{out}");
    let d = topo.counters().since(&c0);
    assert_eq!(d.leak.tx_packets, 0, "{d:?}");
    assert_eq!(d.vpn.tx_packets, 0, "{d:?}");
    // Unpinned: falls back to the leak link.
    let c0 = topo.counters();
    let out = dig_in(&topo, &["www.example.test"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(topo.counters().since(&c0).leak.tx_packets >= 1);

    topo.link_up(Link::Vpn);
    let c0 = topo.counters();
    let out = dig_in(&topo, &["-b", &src, "www.example.test"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    let d = topo.counters().since(&c0);
    assert!(d.vpn.tx_packets >= 1, "{d:?}");
    assert_eq!(d.leak.tx_packets, 0, "{d:?}");
}

#[test]
fn in_process_servers_and_exdns_run_inside_namespaces() {
    if !support::netns::available() {
        return;
    }
    let topo = Topology::create("proc").expect("root");
    // The in-process DoT server, listening on the upstream host's service address.
    let echo = in_netns(&topo.upstream, || {
        TlsEcho::start(TlsEchoOpts::new().addr(SocketAddr::new(IpAddr::V4(SERVICE_IP), 853)))
    });
    let cfg = client_config(echo.root_store());
    let addr = echo.addr;
    let c0 = topo.counters();
    let r = in_netns(&topo.client, move || {
        DotClient::connect(addr, "dns.example.test", &cfg)?.query(&query(
            "www.example.test.",
            RecordType::A,
            None,
        ))
    })
    .expect("DoT through the topology");
    assert_eq!(first_a(&r), Some("192.0.2.1".parse().unwrap()));
    assert!(r.metadata.authentic_data);
    assert_eq!(echo.snis(), vec![Some("dns.example.test".to_string())]);
    assert!(topo.counters().since(&c0).leak.tx_packets >= 3);

    // exdns itself inside the client namespace.
    let ex = Exdns::start_in_netns(
        &topo.client,
        "example.org:0 {\n  hosts {\n    192.0.2.30 www.example.org\n  }\n}\n",
        &[],
        &[],
    );
    let dns = ex.dns();
    let r = in_netns(&topo.client, move || {
        support::udp(dns, &query("www.example.org.", RecordType::A, None))
    });
    assert_eq!(first_a(&r), Some("192.0.2.30".parse().unwrap()));
}

#[test]
fn everything_is_removed_on_drop() {
    if !support::netns::available() {
        return;
    }
    let topo = Topology::create("drop").expect("root");
    let names = [topo.client.clone(), topo.upstream.clone()];
    for n in &names {
        assert!(std::path::Path::new(&format!("/var/run/netns/{n}")).exists());
    }
    let out = topo.run_in(&topo.client, &["ip", "-o", "addr", "show", "dev", "vpn0"]);
    assert!(out.stdout.contains("198.18.1.1/30"), "{}", out.text());
    let mut child = topo.spawn_in(&topo.upstream, &["sleep", "30"]);
    // A bounded command that overruns is killed.
    let out = topo.run_in_timeout(&topo.client, &["sleep", "5"], Duration::from_millis(200));
    assert!(out.timed_out && out.code.is_none());
    drop(topo);
    for n in &names {
        assert!(!std::path::Path::new(&format!("/var/run/netns/{n}")).exists());
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "process in the namespace survived"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
