//! Network-namespace topology for leak tests: a "client" host (where exdns runs) and an "upstream"
//! host (where unbound or a [`super::tlsecho::TlsEcho`] runs), joined by two veth links.
//!
//! ```text
//!   client ns                                      upstream ns
//!   vpn0   198.18.1.1/30  <── "vpn" veth ──>  uvpn0   198.18.1.2/30
//!   leak0  198.18.2.1/30  <── "leak" veth ─>  uleak0  198.18.2.2/30
//!   lo     127.0.0.1                          lo      127.0.0.1, 198.18.53.53/32 (SERVICE_IP)
//! ```
//!
//! The service IP lives on the upstream host's loopback, so it is reachable over both links. The
//! client has two default routes:
//! - [`Prefer::Leak`] (the default): `default via 198.18.2.2 dev leak0 metric 10` and
//!   `default via 198.18.1.2 dev vpn0 metric 100`. A socket that is not pinned goes out the leak
//!   link; a socket bound to `vpn0` (SO_BINDTODEVICE) takes the vpn route. So a test can tell
//!   "pinned" from "not pinned" by the packet counters while both links are up.
//! - [`Prefer::Vpn`]: the metrics swapped (the usual VPN-gateway setup: the tunnel is the default
//!   route, the pod network stays as a fallback — the path a query leaks through when the tunnel
//!   goes down).
//!
//! When the vpn link is down ([`Topology::link_down`]) the kernel removes its routes: an unpinned
//! socket silently leaks through `leak0`, a socket bound to `vpn0` gets ENETUNREACH at once. A
//! deleted link ([`Topology::link_delete`]) makes SO_BINDTODEVICE itself fail (ENODEV).
//! [`Topology::link_up`] brings the link back (re-creating it if it was deleted) with its address
//! and routes.
//!
//! With [`TopologyOpts::source_policy`], source-address pinning is also routed the VPN way:
//! `ip rule from 198.18.1.1 lookup 1001`, table 1001 = `default via 198.18.1.2 dev vpn0` plus an
//! `unreachable default metric 4096` — a socket bound to the vpn address never takes the leak link,
//! even when the vpn link is down.
//!
//! IPv6 is disabled in both namespaces (no router solicitations, DAD or MLD reports) and the
//! reverse-path filter is off, so the interface counters only move for traffic a test caused
//! (and the ARP exchange it needs).
//!
//! Code runs inside a namespace three ways: [`Topology::run_in`] (a command, bounded in time),
//! [`Topology::command_in`] / [`Topology::spawn_in`] (`ip netns exec NS ...`, e.g. unbound or
//! exdns; see `Exdns::start_in_netns`), and [`in_netns`] (a closure on a thread that entered the
//! namespace — sockets it creates stay in that namespace, so a test can query from the client host
//! or start an in-process server on the upstream host).
//!
//! Everything is removed on drop (processes still inside the namespaces are killed, then the
//! namespaces deleted, which destroys the veths). Namespaces left by a test process that was killed
//! are removed by the next [`Topology::create`]. Without root, [`Topology::create`] returns `None`
//! after printing why, and the test should return early.
#![allow(dead_code)]

use std::io::Read;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const CLIENT_VPN_IF: &str = "vpn0";
pub const CLIENT_LEAK_IF: &str = "leak0";
pub const UPSTREAM_VPN_IF: &str = "uvpn0";
pub const UPSTREAM_LEAK_IF: &str = "uleak0";
pub const CLIENT_VPN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub const UPSTREAM_VPN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
pub const CLIENT_LEAK_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
pub const UPSTREAM_LEAK_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);
/// The upstream's service address (on its loopback), reachable over both links.
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 53, 53);
/// Routing table used by [`TopologyOpts::source_policy`].
pub const VPN_TABLE: u32 = 1001;

const NS_PREFIX: &str = "exh-";
const CMD_TIMEOUT: Duration = Duration::from_secs(20);

/// The two links between the hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Vpn,
    Leak,
}

impl Link {
    pub fn client_if(self) -> &'static str {
        match self {
            Link::Vpn => CLIENT_VPN_IF,
            Link::Leak => CLIENT_LEAK_IF,
        }
    }
    pub fn upstream_if(self) -> &'static str {
        match self {
            Link::Vpn => UPSTREAM_VPN_IF,
            Link::Leak => UPSTREAM_LEAK_IF,
        }
    }
    pub fn client_ip(self) -> Ipv4Addr {
        match self {
            Link::Vpn => CLIENT_VPN_IP,
            Link::Leak => CLIENT_LEAK_IP,
        }
    }
    pub fn upstream_ip(self) -> Ipv4Addr {
        match self {
            Link::Vpn => UPSTREAM_VPN_IP,
            Link::Leak => UPSTREAM_LEAK_IP,
        }
    }
}

/// Which link the client's preferred default route uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Prefer {
    #[default]
    Leak,
    Vpn,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct TopologyOpts {
    pub prefer: Prefer,
    /// Policy routing for the vpn source address (see the module docs).
    pub source_policy: bool,
}

/// Interface counters (from `ip -s -j link show`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfStats {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
    pub tx_errors: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub rx_errors: u64,
}

impl IfStats {
    /// Counters accumulated since `earlier` (saturating, in case the link was re-created).
    pub fn since(&self, earlier: &IfStats) -> IfStats {
        IfStats {
            tx_packets: self.tx_packets.saturating_sub(earlier.tx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(earlier.tx_bytes),
            tx_dropped: self.tx_dropped.saturating_sub(earlier.tx_dropped),
            tx_errors: self.tx_errors.saturating_sub(earlier.tx_errors),
            rx_packets: self.rx_packets.saturating_sub(earlier.rx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(earlier.rx_bytes),
            rx_dropped: self.rx_dropped.saturating_sub(earlier.rx_dropped),
            rx_errors: self.rx_errors.saturating_sub(earlier.rx_errors),
        }
    }
}

/// Counters of both client-side links at one moment (a missing link reads as zeros).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub vpn: IfStats,
    pub leak: IfStats,
}

impl Counters {
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            vpn: self.vpn.since(&earlier.vpn),
            leak: self.leak.since(&earlier.leak),
        }
    }
}

/// Output of a command run with [`run_bounded`].
#[derive(Debug)]
pub struct CmdOut {
    /// Exit code; `None` when killed (e.g. by the timeout).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl CmdOut {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
    /// stdout followed by stderr.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// The two-host topology. Dropping it removes everything.
pub struct Topology {
    pub client: String,
    pub upstream: String,
    pub opts: TopologyOpts,
}

/// Whether namespace tests can run here (root, `ip` present); prints why not.
pub fn available() -> bool {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: network-namespace tests need root (CI runs them as root)");
        return false;
    }
    assert!(
        super::have("ip"),
        "running as root but `ip` (iproute2) is missing: install iproute2 (scripts/test.sh does)"
    );
    true
}

impl Topology {
    /// Creates the topology with default options; `None` (after printing why) when not root.
    pub fn create(name_prefix: &str) -> Option<Topology> {
        Self::create_with(name_prefix, TopologyOpts::default())
    }

    pub fn create_with(name_prefix: &str, opts: TopologyOpts) -> Option<Topology> {
        if !available() {
            return None;
        }
        remove_stale_namespaces();
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let base = format!("{NS_PREFIX}{name_prefix}-{}-{n}", std::process::id());
        let topo = Topology {
            client: format!("{base}-c"),
            upstream: format!("{base}-u"),
            opts,
        };
        // From here on, Drop cleans up whatever was created if a step panics.
        for ns in [&topo.client, &topo.upstream] {
            ip(&["netns", "add", ns]);
            topo.sysctl(
                ns,
                &[
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0",
                ],
            );
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "-n",
            &topo.upstream,
            "addr",
            "add",
            &format!("{SERVICE_IP}/32"),
            "dev",
            "lo",
        ]);
        for link in [Link::Vpn, Link::Leak] {
            topo.create_link(link);
            topo.configure_link(link);
        }
        if opts.source_policy {
            let table = VPN_TABLE.to_string();
            ip(&[
                "-n",
                &topo.client,
                "rule",
                "add",
                "from",
                &CLIENT_VPN_IP.to_string(),
                "lookup",
                &table,
                "priority",
                "100",
            ]);
            ip(&[
                "-n",
                &topo.client,
                "route",
                "replace",
                "unreachable",
                "default",
                "metric",
                "4096",
                "table",
                &table,
            ]);
        }
        tracing::info!(client = %topo.client, upstream = %topo.upstream, "netns topology up");
        Some(topo)
    }

    fn sysctl(&self, ns: &str, settings: &[&str]) {
        let mut args = vec!["-qw"];
        args.extend_from_slice(settings);
        let out = self.run_in(ns, &[&["sysctl"], args.as_slice()].concat());
        assert!(out.ok(), "sysctl in {ns}: {}", out.text());
    }

    fn create_link(&self, link: Link) {
        ip(&[
            "-n",
            &self.client,
            "link",
            "add",
            link.client_if(),
            "type",
            "veth",
            "peer",
            "name",
            link.upstream_if(),
            "netns",
            &self.upstream,
        ]);
        ip(&[
            "-n",
            &self.client,
            "addr",
            "add",
            &format!("{}/30", link.client_ip()),
            "dev",
            link.client_if(),
        ]);
        ip(&[
            "-n",
            &self.upstream,
            "addr",
            "add",
            &format!("{}/30", link.upstream_ip()),
            "dev",
            link.upstream_if(),
        ]);
    }

    /// Both ends up, then the client's routes over this link.
    fn configure_link(&self, link: Link) {
        ip(&[
            "-n",
            &self.upstream,
            "link",
            "set",
            link.upstream_if(),
            "up",
        ]);
        ip(&["-n", &self.client, "link", "set", link.client_if(), "up"]);
        let preferred = matches!(
            (link, self.opts.prefer),
            (Link::Vpn, Prefer::Vpn) | (Link::Leak, Prefer::Leak)
        );
        let metric = if preferred { "10" } else { "100" };
        let via = link.upstream_ip().to_string();
        ip(&[
            "-n",
            &self.client,
            "route",
            "replace",
            "default",
            "via",
            &via,
            "dev",
            link.client_if(),
            "metric",
            metric,
        ]);
        if link == Link::Vpn && self.opts.source_policy {
            ip(&[
                "-n",
                &self.client,
                "route",
                "replace",
                "default",
                "via",
                &via,
                "dev",
                CLIENT_VPN_IF,
                "metric",
                "10",
                "table",
                &VPN_TABLE.to_string(),
            ]);
        }
    }

    /// Sets the client side of `link` down (its routes disappear, like a tunnel going down).
    pub fn link_down(&self, link: Link) {
        ip(&["-n", &self.client, "link", "set", link.client_if(), "down"]);
    }

    /// Brings `link` back (re-creating it after [`Topology::link_delete`]) with its routes.
    pub fn link_up(&self, link: Link) {
        if !self.link_exists(link) {
            self.create_link(link);
        }
        self.configure_link(link);
    }

    /// Deletes `link` (both veth ends): the client's interface is then missing.
    pub fn link_delete(&self, link: Link) {
        ip(&["-n", &self.client, "link", "del", link.client_if()]);
    }

    pub fn link_exists(&self, link: Link) -> bool {
        self.run_in(
            &self.client,
            &["ip", "link", "show", "dev", link.client_if()],
        )
        .ok()
    }

    /// Counters of interface `ifname` in namespace `ns`; `None` when it does not exist.
    pub fn try_stats(&self, ns: &str, ifname: &str) -> Option<IfStats> {
        let out = run_bounded(
            Command::new("ip").args(["-n", ns, "-s", "-j", "link", "show", "dev", ifname]),
            CMD_TIMEOUT,
        );
        if !out.ok() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("ip -j link output: {e}: {}", out.stdout));
        let s = &v[0]["stats64"];
        let g = |dir: &str, k: &str| s[dir][k].as_u64().unwrap_or(0);
        Some(IfStats {
            tx_packets: g("tx", "packets"),
            tx_bytes: g("tx", "bytes"),
            tx_dropped: g("tx", "dropped"),
            tx_errors: g("tx", "errors"),
            rx_packets: g("rx", "packets"),
            rx_bytes: g("rx", "bytes"),
            rx_dropped: g("rx", "dropped"),
            rx_errors: g("rx", "errors"),
        })
    }

    /// Counters of interface `ifname` in namespace `ns`; panics when it does not exist.
    pub fn stats(&self, ns: &str, ifname: &str) -> IfStats {
        self.try_stats(ns, ifname)
            .unwrap_or_else(|| panic!("no interface {ifname} in {ns}"))
    }

    /// Counters of the client side of `link` (zeros when the link is missing).
    pub fn link_stats(&self, link: Link) -> IfStats {
        self.try_stats(&self.client, link.client_if())
            .unwrap_or_default()
    }

    /// Both client-side links' counters now.
    pub fn counters(&self) -> Counters {
        Counters {
            vpn: self.link_stats(Link::Vpn),
            leak: self.link_stats(Link::Leak),
        }
    }

    /// `ip netns exec NS PROGRAM`, ready for more arguments and stdio settings.
    pub fn command_in(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// Runs `args` inside `ns`, killed after 20 s.
    pub fn run_in(&self, ns: &str, args: &[&str]) -> CmdOut {
        self.run_in_timeout(ns, args, CMD_TIMEOUT)
    }

    pub fn run_in_timeout(&self, ns: &str, args: &[&str], timeout: Duration) -> CmdOut {
        assert!(!args.is_empty(), "run_in needs a command");
        let mut c = self.command_in(ns, args[0]);
        c.args(&args[1..]);
        run_bounded(&mut c, timeout)
    }

    /// Starts `args` inside `ns` (stdin null, stdout/stderr piped). `ip netns exec` execs the
    /// program, so the child's pid is the program's. The caller owns (and must kill) the child;
    /// anything still running in the namespace is killed when the topology is dropped.
    pub fn spawn_in(&self, ns: &str, args: &[&str]) -> Child {
        assert!(!args.is_empty(), "spawn_in needs a command");
        let mut c = self.command_in(ns, args[0]);
        c.args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn()
            .unwrap_or_else(|e| panic!("spawn {args:?} in {ns}: {e}"))
    }

    /// Runs `f` on a thread inside `ns` (see [`in_netns`]).
    pub fn in_ns<T: Send + 'static>(&self, ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(ns, f)
    }

    fn cleanup(&self) {
        for ns in [&self.client, &self.upstream] {
            delete_namespace(ns);
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Runs `f` on a new thread that has entered network namespace `ns` (setns); returns its result
/// (a panic in `f` is re-raised). Sockets created in `f` belong to `ns` for their whole life, so
/// they can be used from any thread afterwards; threads spawned by `f` start in `ns` too.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    let handle = std::thread::Builder::new()
        .name(format!("netns-{ns}"))
        .spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            use std::os::fd::AsRawFd;
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
            f()
        })
        .expect("spawn netns thread");
    match handle.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Runs a command with a deadline; kills it when the deadline passes.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> CmdOut {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|mut r| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    })
    .collect();
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("wait {cmd:?}: {e}"),
        }
    };
    let mut outs = readers.into_iter().map(|h| h.join().unwrap_or_default());
    CmdOut {
        code: status.and_then(|s| s.code()),
        stdout: outs.next().unwrap_or_default(),
        stderr: outs.next().unwrap_or_default(),
        timed_out,
    }
}

/// `ip ARGS`, panicking with its output on failure.
fn ip(args: &[&str]) -> CmdOut {
    let out = run_bounded(Command::new("ip").args(args), CMD_TIMEOUT);
    assert!(out.ok(), "ip {}: {}", args.join(" "), out.text());
    out
}

/// Kills what still runs inside `ns` (only processes this test started can be there: the namespace
/// is ours) and deletes it.
fn delete_namespace(ns: &str) {
    if !std::path::Path::new(&format!("/var/run/netns/{ns}")).exists() {
        return;
    }
    let pids = run_bounded(Command::new("ip").args(["netns", "pids", ns]), CMD_TIMEOUT);
    for pid in pids.stdout.split_whitespace() {
        if let Ok(pid) = pid.parse::<i32>() {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    let out = run_bounded(Command::new("ip").args(["netns", "del", ns]), CMD_TIMEOUT);
    if !out.ok() {
        eprintln!("warning: ip netns del {ns}: {}", out.text());
    }
}

/// Deletes namespaces created by test processes that no longer exist (`exh-PREFIX-PID-N-{c,u}`).
fn remove_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with(NS_PREFIX) {
            continue;
        }
        let parts: Vec<&str> = name.rsplitn(4, '-').collect();
        if parts.len() != 4 {
            continue;
        }
        let Ok(pid) = parts[2].parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            delete_namespace(&name);
        }
    }
}
