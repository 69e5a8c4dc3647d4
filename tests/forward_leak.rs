//! Leak tests in network namespaces (root only; CI runs as root, elsewhere they return early).
//!
//! exdns runs in the "client" host, a real unbound (DoT) in the "upstream" host on the service IP,
//! reachable over a "vpn" veth and over a "leak" veth (see `support::netns`). With
//! `interface vpn0` every upstream packet goes through vpn0 — whatever the routing table prefers —
//! and when vpn0 is down or gone the queries get SERVFAIL at once while not one packet leaves
//! through the leak link; when vpn0 is back forwarding resumes by itself. The control case, the
//! same forward without `interface`, does leak: the counters and the capture used here see it.
//!
//! "Nothing" is checked three ways: the client's leak-link counters, the upstream's counters on its
//! end of that link, and a capture of every frame the client sends out of it. The one exception is
//! the kernel's own: after vpn0 is deleted and re-created, a reset for a connection of the old
//! interface follows the routing table unless policy routing keeps the tunnel's source address on
//! the tunnel (docs/plugins/forward.md); both cases are pinned down below.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use support::Exdns;
use support::dnsdist::{self, Dnsdist, DnsdistOpts};
use support::fwd::{Capture, Frame, FrameKind, POLL, TCP_RST, TCP_SYN, a_of, ask, wait_until};
use support::netns::{
    CLIENT_VPN_IP, Counters, Link, Prefer, SERVICE_IP, Topology, TopologyOpts, in_netns,
};
use support::unbound::{self, Unbound, UnboundOpts};

const NAME: &str = "dns.example.test";
const READ_TIMEOUT: Duration = Duration::from_secs(1);

fn ready() -> bool {
    support::netns::available() && unbound::available()
}

/// How exdns reaches the upstream host: DNS over TLS to unbound, or DNS over HTTPS to a dnsdist
/// in front of it (same service IP, port 443).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Dot,
    Doh,
}

/// The upstream server exdns talks to: unbound itself (DoT) or dnsdist (DoH), in the upstream
/// host.
struct Upstream {
    ub: Unbound,
    doh: Option<Dnsdist>,
}

impl Upstream {
    fn start(topo: &Topology, via: Via) -> Upstream {
        let ub = upstream(topo);
        let doh = (via == Via::Doh).then(|| {
            Dnsdist::start(
                ub.addr,
                DnsdistOpts::new()
                    .ip(IpAddr::V4(SERVICE_IP))
                    .doh_port(443)
                    .in_netns(&topo.upstream),
            )
        });
        Upstream { ub, doh }
    }

    /// Queries that reached the server exdns talks to.
    fn queries(&self) -> u64 {
        match &self.doh {
            Some(d) => d.log().lines().count() as u64,
            None => self.ub.tls_queries(),
        }
    }

    /// exdns in the client namespace forwarding `.` to the service IP, with `pin` lines.
    fn exdns(&self, topo: &Topology, pin: &[&str]) -> Exdns {
        match &self.doh {
            Some(d) => exdns_to(topo, &format!("https://{SERVICE_IP}"), &d.ca_pem, pin),
            None => exdns(topo, &self.ub, pin),
        }
    }
}

fn upstream(topo: &Topology) -> Unbound {
    Unbound::start(
        UnboundOpts::new()
            .ip(IpAddr::V4(SERVICE_IP))
            .ports(53, 853)
            .in_netns(&topo.upstream)
            .server_name(NAME)
            .static_zone("example.test")
            .data("www.example.test. 300 IN A 192.0.2.1")
            .data("api.example.test. 300 IN A 192.0.2.2"),
    )
}

/// exdns in the client namespace forwarding `.` over DoT to the service IP, with `pin` lines.
fn exdns(topo: &Topology, ub: &Unbound, pin: &[&str]) -> Exdns {
    exdns_to(topo, &format!("tls://{SERVICE_IP}"), &ub.ca_pem, pin)
}

/// exdns in the client namespace forwarding `.` to `to`, trusting `ca`, with `pin` lines.
fn exdns_to(topo: &Topology, to: &str, ca: &std::path::Path, pin: &[&str]) -> Exdns {
    let mut c = format!(
        ".:0 {{\n  errors\n  forward . {to} {{\n    tls {}\n    tls_servername {NAME}\n    read_timeout 1s\n",
        ca.display()
    );
    for l in pin {
        c.push_str(&format!("    {l}\n"));
    }
    c.push_str("  }\n}\n");
    Exdns::start_in_netns(&topo.client, &c, &[], &[])
}

/// A query from inside the client namespace to exdns.
fn ask_in(topo: &Topology, dns: SocketAddr, name: &str) -> (Message, Duration) {
    let name = name.to_string();
    in_netns(&topo.client, move || ask(dns, &name, RecordType::A))
}

/// Packets the upstream host received on its end of the leak link.
fn upstream_leak_rx(topo: &Topology) -> u64 {
    topo.stats(&topo.upstream, Link::Leak.upstream_if())
        .rx_packets
}

fn assert_no_leak(topo: &Topology, since: &Counters, leak_rx0: u64, when: &str) {
    let d = topo.counters().since(since);
    assert_eq!(
        d.leak.tx_packets, 0,
        "{when}: packets left through the leak link: {d:?}"
    );
    assert_eq!(d.leak.tx_bytes, 0, "{when}: {d:?}");
    assert_eq!(
        upstream_leak_rx(topo),
        leak_rx0,
        "{when}: the upstream host received packets over the leak link"
    );
}

/// exdns pinned to vpn0 in a fresh topology, with the counters taken before the first query.
struct Pinned {
    topo: Topology,
    up: Upstream,
    ex: Exdns,
    dns: SocketAddr,
    c0: Counters,
    leak_rx0: u64,
    capture: Capture,
}

impl Pinned {
    fn new(name: &str, opts: TopologyOpts) -> Pinned {
        Self::via(name, opts, Via::Dot)
    }

    fn via(name: &str, opts: TopologyOpts, via: Via) -> Pinned {
        let topo = Topology::create_with(name, opts).expect("root");
        let up = Upstream::start(&topo, via);
        let ex = up.exdns(&topo, &["interface vpn0", "health_check 200ms"]);
        let dns = ex.dns();
        let capture = Capture::outgoing(&topo.client, Link::Leak.client_if());
        let c0 = topo.counters();
        let leak_rx0 = upstream_leak_rx(&topo);
        Pinned {
            topo,
            up,
            ex,
            dns,
            c0,
            leak_rx0,
            capture,
        }
    }

    fn ask(&self, name: &str) -> (Message, Duration) {
        ask_in(&self.topo, self.dns, name)
    }

    /// Nothing left through the leak link since the start (counters on both ends, capture).
    fn assert_no_leak(&self, when: &str) {
        assert_no_leak(&self.topo, &self.c0, self.leak_rx0, when);
        let frames = self.capture.frames();
        assert!(
            frames.is_empty(),
            "{when}: {:?}",
            frames.iter().map(Frame::kind).collect::<Vec<_>>()
        );
    }

    /// vpn0 up: answers arrive, every packet through vpn0.
    fn forwards_through_vpn0(&self) {
        let before = self.topo.counters();
        let q0 = self.up.queries();
        for name in [
            "www.example.test.",
            "api.example.test.",
            "nope.example.test.",
        ] {
            let (r, _) = self.ask(name);
            let want = if name.starts_with("nope") {
                ResponseCode::NXDomain
            } else {
                ResponseCode::NoError
            };
            assert_eq!(
                r.metadata.response_code,
                want,
                "{name}: {}",
                self.ex.output()
            );
        }
        let d = self.topo.counters().since(&before);
        assert!(d.vpn.tx_packets >= 3 && d.vpn.rx_packets >= 3, "{d:?}");
        assert_eq!(self.up.queries(), q0 + 3, "{:?}", self.up.ub.stats());
    }

    /// vpn0 unusable: SERVFAIL within the read timeout, not a packet anywhere, the reason logged.
    fn fails_closed(&self, tag: &str, log: &str) {
        let before = self.topo.counters();
        let q0 = self.up.queries();
        for i in 0..8 {
            let name = format!("{tag}{i}.example.test.");
            let (r, took) = self.ask(&name);
            assert_eq!(r.metadata.response_code, ResponseCode::ServFail, "{name}");
            assert!(r.answers.is_empty());
            assert!(took < READ_TIMEOUT, "{name}: SERVFAIL after {took:?}");
        }
        assert!(
            self.ex.wait_for_line(
                &format!(
                    "[ERROR] plugin/forward: interface vpn0 {log}; not forwarding (fail closed)"
                ),
                Duration::from_secs(5)
            ),
            "{}",
            self.ex.output()
        );
        let d = self.topo.counters().since(&before);
        assert_eq!(d.vpn.tx_packets, 0, "{d:?}");
        assert_eq!(self.up.queries(), q0, "nothing reached the upstream");
        assert_eq!(
            self.up.ub.logged_queries(&format!("{tag}0.example.test")),
            0
        );
    }

    /// vpn0 usable again: forwarding resumes by itself, through vpn0.
    fn resumes(&self) {
        let back = self.topo.counters();
        assert!(
            wait_until(POLL, || {
                let (r, _) = self.ask("www.example.test.");
                r.metadata.response_code == ResponseCode::NoError && !a_of(&r).is_empty()
            }),
            "forwarding did not resume: {}",
            self.ex.output()
        );
        assert!(
            self.ex.wait_for_line(
                "[INFO] plugin/forward: interface vpn0 is up; forwarding resumed",
                Duration::from_secs(5)
            ),
            "{}",
            self.ex.output()
        );
        let (r, _) = self.ask("api.example.test.");
        assert_eq!(
            a_of(&r),
            vec!["192.0.2.2".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert!(self.topo.counters().since(&back).vpn.tx_packets >= 3);
    }
}

fn down_and_up(prefer: Prefer) {
    down_and_up_via("fwdpin", prefer, Via::Dot);
}

fn down_and_up_via(ns: &str, prefer: Prefer, via: Via) {
    let p = Pinned::via(
        ns,
        TopologyOpts {
            prefer,
            source_policy: false,
        },
        via,
    );
    p.forwards_through_vpn0();
    p.assert_no_leak("vpn0 up");
    p.topo.link_down(Link::Vpn);
    p.fails_closed("down", "is down");
    p.assert_no_leak("vpn0 down");
    p.topo.link_up(Link::Vpn);
    p.resumes();
    p.assert_no_leak("vpn0 back up");
    p.topo.link_down(Link::Vpn);
    p.fails_closed("again", "is down");
    p.assert_no_leak("vpn0 down again");
}

#[test]
fn pinned_to_vpn0_while_the_default_route_is_the_leak_link() {
    if !ready() {
        return;
    }
    down_and_up(Prefer::Leak);
}

#[test]
fn pinned_to_vpn0_when_the_leak_link_is_the_fallback_route() {
    if !ready() {
        return;
    }
    down_and_up(Prefer::Vpn);
}

/// DoH upstreams are dialled on the same pinned socket: the HTTP/2 connection goes through vpn0
/// whatever the routing table prefers, and nothing leaves when vpn0 is down.
#[test]
fn doh_pinned_to_vpn0_while_the_default_route_is_the_leak_link() {
    if !ready() || !dnsdist::available() {
        return;
    }
    down_and_up_via("dohpin", Prefer::Leak, Via::Doh);
}

/// vpn0 deleted and re-created (a new interface index) with policy routing for the vpn source
/// address (see the forward page): exactly nothing takes the leak link.
#[test]
fn vpn0_deleted_and_recreated_with_policy_routing_never_leaks() {
    if !ready() {
        return;
    }
    let p = Pinned::new(
        "fwddel",
        TopologyOpts {
            prefer: Prefer::Leak,
            source_policy: true,
        },
    );
    p.forwards_through_vpn0();
    p.topo.link_down(Link::Vpn);
    p.fails_closed("down", "is down");
    p.topo.link_delete(Link::Vpn);
    p.fails_closed("gone", "does not exist");
    p.assert_no_leak("vpn0 deleted");
    p.topo.link_up(Link::Vpn);
    p.resumes();
    p.assert_no_leak("vpn0 re-created");
}

/// Without policy routing, a re-created vpn0 can make the kernel itself send a TCP reset the
/// routing table's way: the upstream retransmits on the connection of the deleted interface, no
/// socket matches it any more (that socket was bound to the old interface index), and the reset
/// for it follows the default route. That is all that may leave through the leak link: no query,
/// no handshake, no byte of payload — exdns's own sockets stay on vpn0.
#[test]
fn vpn0_deleted_and_recreated_only_kernel_resets_follow_the_routing_table() {
    if !ready() {
        return;
    }
    let p = Pinned::new(
        "fwdrst",
        TopologyOpts {
            prefer: Prefer::Leak,
            source_policy: false,
        },
    );
    p.forwards_through_vpn0();
    // exdns's connections before the deletion.
    let ss = p.topo.run_in(
        &p.topo.client,
        &["ss", "-Htn", "dst", &SERVICE_IP.to_string()],
    );
    let old_ports: Vec<u16> = ss
        .stdout
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .nth(3)?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(!old_ports.is_empty(), "{}", ss.text());
    p.topo.link_down(Link::Vpn);
    p.fails_closed("down", "is down");
    p.topo.link_delete(Link::Vpn);
    p.fails_closed("gone", "does not exist");
    p.assert_no_leak("vpn0 deleted");
    p.topo.link_up(Link::Vpn);
    p.resumes();
    p.forwards_through_vpn0();
    for f in p.capture.frames() {
        match f.kind() {
            FrameKind::Arp => {}
            FrameKind::Tcp {
                src,
                sport,
                dport: 853,
                flags: TCP_RST,
                payload: 0,
            } if src == CLIENT_VPN_IP && old_ports.contains(&sport) => {}
            other => {
                panic!("left through the leak link: {other:?} (old connections {old_ports:?})")
            }
        }
    }
    eprintln!(
        "kernel resets through the leak link: {}",
        p.capture
            .frames()
            .iter()
            .filter(|f| matches!(f.kind(), FrameKind::Tcp { .. }))
            .count()
    );
}

#[test]
fn control_without_interface_the_query_leaks_and_the_counters_see_it() {
    if !ready() {
        return;
    }
    // The usual VPN-gateway routing: the tunnel is the default route, the pod network the
    // fallback.
    let topo = Topology::create_with(
        "fwdctl",
        TopologyOpts {
            prefer: Prefer::Vpn,
            source_policy: false,
        },
    )
    .expect("root");
    let ub = upstream(&topo);
    let ex = exdns(&topo, &ub, &[]);
    let dns = ex.dns();
    let c0 = topo.counters();
    let (r, _) = ask_in(&topo, dns, "www.example.test.");
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let d = topo.counters().since(&c0);
    assert!(d.vpn.tx_packets >= 3, "{d:?}");
    assert_eq!(d.leak.tx_packets, 0, "{d:?}");

    // The tunnel goes down: unpinned forwarding carries on over the leak link.
    let capture = Capture::outgoing(&topo.client, Link::Leak.client_if());
    topo.link_down(Link::Vpn);
    let down = topo.counters();
    assert!(
        wait_until(POLL, || ask_in(&topo, dns, "api.example.test.")
            .0
            .metadata
            .response_code
            == ResponseCode::NoError),
        "{}",
        ex.output()
    );
    let d = topo.counters().since(&down);
    assert!(d.leak.tx_packets >= 3, "the leak is visible: {d:?}");
    assert!(upstream_leak_rx(&topo) >= 3);
    // The capture sees the DoT connection itself: a SYN to port 853, then TLS records.
    let kinds: Vec<FrameKind> = capture.frames().iter().map(Frame::kind).collect();
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, FrameKind::Tcp { dport: 853, flags, .. } if flags & TCP_SYN != 0)),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, FrameKind::Tcp { dport: 853, payload, .. } if *payload > 0)),
        "{kinds:?}"
    );
}

#[test]
fn source_address_with_policy_routing_never_leaks() {
    if !ready() {
        return;
    }
    source_address_never_leaks("fwdsrc", Via::Dot);
}

#[test]
fn doh_source_address_with_policy_routing_never_leaks() {
    if !ready() || !dnsdist::available() {
        return;
    }
    source_address_never_leaks("dohsrc", Via::Doh);
}

fn source_address_never_leaks(ns: &str, via: Via) {
    // `ip rule from 198.18.1.1 lookup 1001`: the vpn route, else unreachable.
    let topo = Topology::create_with(
        ns,
        TopologyOpts {
            prefer: Prefer::Vpn,
            source_policy: true,
        },
    )
    .expect("root");
    let up = Upstream::start(&topo, via);
    let src = format!("source_address {CLIENT_VPN_IP}");
    let ex = up.exdns(&topo, &[&src, "health_check 200ms"]);
    let dns = ex.dns();
    let c0 = topo.counters();
    let leak_rx0 = upstream_leak_rx(&topo);
    let (r, _) = ask_in(&topo, dns, "www.example.test.");
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::NoError,
        "{}",
        ex.output()
    );
    assert!(topo.counters().since(&c0).vpn.tx_packets >= 3);
    assert_no_leak(&topo, &c0, leak_rx0, "vpn up");

    topo.link_down(Link::Vpn);
    for i in 0..5 {
        let name = format!("down{i}.example.test.");
        let (r, took) = ask_in(&topo, dns, &name);
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail, "{name}");
        assert!(took < READ_TIMEOUT * 2, "{name}: {took:?}");
    }
    assert_no_leak(&topo, &c0, leak_rx0, "vpn down");

    topo.link_up(Link::Vpn);
    assert!(
        wait_until(POLL, || ask_in(&topo, dns, "api.example.test.")
            .0
            .metadata
            .response_code
            == ResponseCode::NoError),
        "{}",
        ex.output()
    );
    assert_no_leak(&topo, &c0, leak_rx0, "vpn back");
}
