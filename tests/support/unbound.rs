//! A real `unbound` as a test upstream: plain DNS (UDP+TCP) and DNS over TLS, answering only the
//! local data the test gives it.
//!
//! [`Unbound::start`] writes `unbound.conf` into a temp dir and runs `unbound -d -c FILE` (inside a
//! network namespace when [`UnboundOpts::netns`] is set, via `ip netns exec`). Ports left at 0 are
//! picked free (TCP and UDP) just before the start, and the start is retried on a bind race. The
//! TLS certificate is issued for [`UnboundOpts::server_name`] by a fresh [`TestCa`]
//! (`basicConstraints CA:FALSE`, SAN = the name); the CA is at [`Unbound::ca_pem`].
//!
//! What it answers:
//! - names in the test's `local-zone`s / `local-data` as unbound does: a [`UnboundOpts::static_zone`]
//!   answers its data with AA set, NXDOMAIN or NODATA (NOERROR, no answer) with the zone's SOA in the
//!   authority section for anything else under it;
//! - every other name: the root zone's type, `refuse` by default → REFUSED (deterministic, nothing
//!   is ever sent anywhere: recursion goes to a stub at 127.0.0.1 that unbound refuses to query);
//! - `local-zone: "test." nodefault` is always set (unbound otherwise serves `test.` itself).
//!
//! unbound sets AD only on DNSSEC-validated data, so it never sets AD here; use
//! [`super::tlsecho::TlsEcho`] for AD answers.
//!
//! Introspection: [`Unbound::log`] (with `log-queries`, one line per query: `info: IP NAME TYPE IN`),
//! [`Unbound::stats`] / [`Unbound::num_queries`] / [`Unbound::tls_queries`] /
//! [`Unbound::tls_resumed`] (unbound-control over a unix socket in the temp dir, extended
//! statistics, never reset).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use super::certs::TestCa;
use super::netns::{in_netns, run_bounded};

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How to start unbound. Build with [`UnboundOpts::new`] and the chained setters.
#[derive(Clone, Debug)]
pub struct UnboundOpts {
    /// Address to listen on (default 127.0.0.1).
    pub ip: IpAddr,
    /// Plain DNS port (UDP and TCP); 0 = pick a free one.
    pub port: u16,
    /// DNS-over-TLS port; 0 = pick a free one.
    pub tls_port: u16,
    /// Serve DNS over TLS at all (default true).
    pub tls: bool,
    /// The name the server certificate is issued for (default `dns.example.test`).
    pub server_name: String,
    /// More subjectAltName entries for the certificate.
    pub alt_names: Vec<String>,
    /// `local-zone:` lines, as `"NAME" TYPE` (e.g. `"example.test." static`).
    pub local_zones: Vec<String>,
    /// `local-data:` records (e.g. `www.example.test. 300 IN A 192.0.2.1`).
    pub local_data: Vec<String>,
    /// Type of the root local zone (what unknown names get): `refuse` by default.
    pub root_zone: String,
    /// Run inside this network namespace.
    pub netns: Option<String>,
    pub threads: u32,
    pub log_queries: bool,
    /// `tcp-idle-timeout` (unbound's default is 30 s): how soon it closes idle TCP/TLS connections.
    pub tcp_idle_timeout_ms: Option<u32>,
    /// Raw lines added to the `server:` section.
    pub extra: Vec<String>,
}

impl Default for UnboundOpts {
    fn default() -> Self {
        UnboundOpts {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            tls_port: 0,
            tls: true,
            server_name: "dns.example.test".into(),
            alt_names: vec![],
            local_zones: vec![],
            local_data: vec![],
            root_zone: "refuse".into(),
            netns: None,
            threads: 1,
            log_queries: true,
            tcp_idle_timeout_ms: None,
            extra: vec![],
        }
    }
}

impl UnboundOpts {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = ip;
        self
    }
    pub fn ports(mut self, port: u16, tls_port: u16) -> Self {
        self.port = port;
        self.tls_port = tls_port;
        self
    }
    pub fn no_tls(mut self) -> Self {
        self.tls = false;
        self
    }
    pub fn server_name(mut self, name: &str) -> Self {
        self.server_name = name.into();
        self
    }
    pub fn alt_name(mut self, name: &str) -> Self {
        self.alt_names.push(name.into());
        self
    }
    /// `local-zone: "NAME" TYPE`.
    pub fn local_zone(mut self, name: &str, kind: &str) -> Self {
        self.local_zones.push(format!("\"{name}\" {kind}"));
        self
    }
    /// A `static` zone with an SOA at its apex (`ns.ZONE hostmaster.ZONE 1 3600 900 604800 300`,
    /// TTL 3600), so NXDOMAIN and NODATA answers carry it in the authority section.
    pub fn static_zone(self, zone: &str) -> Self {
        let zone = fqdn(zone);
        self.local_zone(&zone, "static").data(&format!(
            "{zone} 3600 IN SOA ns.{zone} hostmaster.{zone} 1 3600 900 604800 300"
        ))
    }
    /// One `local-data` record (zone-file syntax, e.g. `txt.example.test. 60 IN TXT "hello"`).
    pub fn data(mut self, rr: &str) -> Self {
        self.local_data.push(rr.into());
        self
    }
    pub fn root_zone(mut self, kind: &str) -> Self {
        self.root_zone = kind.into();
        self
    }
    pub fn in_netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.into());
        self
    }
    pub fn threads(mut self, n: u32) -> Self {
        self.threads = n;
        self
    }
    pub fn tcp_idle_timeout(mut self, ms: u32) -> Self {
        self.tcp_idle_timeout_ms = Some(ms);
        self
    }
    pub fn log_queries(mut self, on: bool) -> Self {
        self.log_queries = on;
        self
    }
    /// A raw line for the `server:` section (e.g. `"tls-session-ticket-keys: /path"`).
    pub fn extra(mut self, line: &str) -> Self {
        self.extra.push(line.into());
        self
    }
}

/// A running unbound. Stopped (SIGTERM, then SIGKILL) on drop.
pub struct Unbound {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub opts: UnboundOpts,
    /// Plain DNS address (UDP and TCP).
    pub addr: SocketAddr,
    /// DNS-over-TLS address (`None` without TLS).
    pub tls_addr: Option<SocketAddr>,
    pub conf: PathBuf,
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub log_file: PathBuf,
    stderr_file: PathBuf,
}

/// Whether unbound is installed; prints a skip message when not.
pub fn available() -> bool {
    let ok = super::have("unbound") && super::have("unbound-control");
    if !ok {
        eprintln!("skipping: unbound is not installed (scripts/test.sh installs it)");
    }
    ok
}

impl Unbound {
    /// Starts unbound and waits until it answers; panics (with its log) when it cannot start.
    pub fn start(opts: UnboundOpts) -> Unbound {
        let mut dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new("exdns unbound test CA");
        let mut names = vec![opts.server_name.as_str()];
        names.extend(opts.alt_names.iter().map(|s| s.as_str()));
        let cert = ca.issue(&names);
        let ca_pem = ca.write(dir.path(), "ca.pem");
        let (cert_pem, key_pem) = cert.write(dir.path(), "server");
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let (port, tls_port) = pick_ports(&opts);
            let mut ub = Unbound {
                child: None,
                conf: dir.path().join("unbound.conf"),
                log_file: dir.path().join("unbound.log"),
                stderr_file: dir.path().join("stderr.log"),
                addr: SocketAddr::new(opts.ip, port),
                tls_addr: opts.tls.then(|| SocketAddr::new(opts.ip, tls_port)),
                ca_pem: ca_pem.clone(),
                cert_pem: cert_pem.clone(),
                key_pem: key_pem.clone(),
                opts: opts.clone(),
                dir,
            };
            std::fs::write(&ub.conf, ub.config()).expect("write unbound.conf");
            match ub.spawn_and_wait() {
                Ok(()) => return ub,
                Err(e) if e.contains("could not open ports") && (opts.port == 0) => {
                    last_err = e;
                    dir = ub.take_dir();
                }
                Err(e) => panic!("unbound did not start: {e}"),
            }
        }
        panic!("unbound did not start (ports kept colliding): {last_err}");
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let replacement = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, replacement)
    }

    /// The config file text.
    pub fn config(&self) -> String {
        let o = &self.opts;
        let d = self.dir.path().display();
        let mut c = String::from("server:\n");
        let mut line = |l: String| {
            c.push_str("    ");
            c.push_str(&l);
            c.push('\n');
        };
        line("verbosity: 1".into());
        line(format!("num-threads: {}", o.threads));
        line(format!("interface: {}@{}", o.ip, self.addr.port()));
        line(format!("port: {}", self.addr.port()));
        if let Some(t) = self.tls_addr {
            line(format!("interface: {}@{}", o.ip, t.port()));
            line(format!("tls-port: {}", t.port()));
            line(format!("tls-service-key: \"{}\"", self.key_pem.display()));
            line(format!("tls-service-pem: \"{}\"", self.cert_pem.display()));
        }
        line("do-ip4: yes".into());
        line(format!(
            "do-ip6: {}",
            if o.ip.is_ipv6() { "yes" } else { "no" }
        ));
        line("do-udp: yes".into());
        line("do-tcp: yes".into());
        line("so-reuseport: no".into());
        line("username: \"\"".into());
        line("chroot: \"\"".into());
        line(format!("directory: \"{d}\""));
        line(format!("pidfile: \"{d}/unbound.pid\""));
        line("use-syslog: no".into());
        line(format!("logfile: \"{}\"", self.log_file.display()));
        line("log-time-ascii: yes".into());
        line(format!(
            "log-queries: {}",
            if o.log_queries { "yes" } else { "no" }
        ));
        line("access-control: 0.0.0.0/0 allow".into());
        line("access-control: ::/0 allow".into());
        line("module-config: \"iterator\"".into());
        line("incoming-num-tcp: 256".into());
        line("extended-statistics: yes".into());
        if let Some(ms) = o.tcp_idle_timeout_ms {
            line(format!("tcp-idle-timeout: {ms}"));
        }
        line("local-zone: \"test.\" nodefault".into());
        line(format!("local-zone: \".\" {}", o.root_zone));
        for z in &o.local_zones {
            line(format!("local-zone: {z}"));
        }
        for rr in &o.local_data {
            // TXT data carries double quotes: wrap those records in single quotes.
            if rr.contains('"') {
                line(format!("local-data: '{rr}'"));
            } else {
                line(format!("local-data: \"{rr}\""));
            }
        }
        for x in &o.extra {
            line(x.clone());
        }
        // Recursion (names in transparent auto-zones) goes nowhere: unbound does not query
        // localhost, so these fail with SERVFAIL without a packet leaving.
        c.push_str("stub-zone:\n    name: \".\"\n    stub-addr: 127.0.0.1@9\n");
        c.push_str(&format!(
            "remote-control:\n    control-enable: yes\n    control-interface: \"{d}/control.sock\"\n"
        ));
        c
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let _ = std::fs::remove_file(&self.log_file);
        let stderr = std::fs::File::create(&self.stderr_file).expect("stderr file");
        let mut cmd = match &self.opts.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "unbound"]);
                c
            }
            None => Command::new("unbound"),
        };
        cmd.arg("-d")
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("dup"))
            .stderr(stderr);
        self.child = Some(cmd.spawn().map_err(|e| format!("spawn unbound: {e}"))?);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().ok().flatten() {
                self.child = None;
                return Err(format!("unbound exited ({st}):\n{}", self.output()));
            }
            if self.log().contains("start of service") {
                break;
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!("no 'start of service' in time:\n{}", self.output()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Logged, now check that it answers.
        while Instant::now() < deadline {
            if self.probe() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        Err(format!(
            "unbound does not answer on {}:\n{}",
            self.addr,
            self.output()
        ))
    }

    /// One UDP query for `. SOA` (any reply counts), from inside the namespace if any.
    fn probe(&self) -> bool {
        let addr = self.addr;
        let f = move || {
            let bind = if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let s = UdpSocket::bind(bind).ok()?;
            s.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
            let q = super::query(".", RecordType::SOA, None);
            s.send_to(&q.to_vec().ok()?, addr).ok()?;
            let mut buf = [0u8; 4096];
            let (n, _) = s.recv_from(&mut buf).ok()?;
            Message::from_vec(&buf[..n])
                .ok()
                .map(|m| m.metadata.id == q.metadata.id)
        };
        let r = match &self.opts.netns {
            Some(ns) => in_netns(ns, f),
            None => f(),
        };
        r == Some(true)
    }

    /// The unbound log file so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Log file and stderr, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- unbound.conf:\n{}--- stderr:\n{}--- log:\n{}",
            std::fs::read_to_string(&self.conf).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr_file).unwrap_or_default(),
            self.log()
        )
    }

    /// The DoT address; panics when started without TLS.
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls_addr.expect("unbound started without TLS")
    }

    pub fn server_name(&self) -> &str {
        &self.opts.server_name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops unbound (SIGTERM, SIGKILL after 3 s). Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts it again with the same config and ports (after [`Unbound::stop`]).
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn_and_wait() {
            panic!("unbound did not restart: {e}");
        }
    }

    /// `unbound-control stats_noreset` as a map (`total.num.queries` → 12, ...).
    pub fn stats(&self) -> BTreeMap<String, f64> {
        let out = run_bounded(
            Command::new("unbound-control")
                .arg("-c")
                .arg(&self.conf)
                .arg("stats_noreset"),
            Duration::from_secs(10),
        );
        assert!(out.ok(), "unbound-control stats: {}", out.text());
        out.stdout
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once('=')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect()
    }

    fn stat(&self, key: &str) -> u64 {
        self.stats().get(key).copied().unwrap_or(0.0) as u64
    }

    /// Queries received, all transports.
    pub fn num_queries(&self) -> u64 {
        self.stat("total.num.queries")
    }

    /// Queries received over TLS.
    pub fn tls_queries(&self) -> u64 {
        self.stat("num.query.tls")
    }

    /// Queries received over resumed TLS sessions.
    pub fn tls_resumed(&self) -> u64 {
        self.stat("num.query.tls.resume")
    }

    /// Queries for `name` (any type) seen in the log (needs `log_queries`, the default).
    pub fn logged_queries(&self, name: &str) -> usize {
        let name = fqdn(name).to_ascii_lowercase();
        self.log()
            .lines()
            .filter(|l| {
                l.contains(" info: ") && l.split_whitespace().any(|w| w.eq_ignore_ascii_case(&name))
            })
            .count()
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// Ports for plain DNS and DoT: the configured ones, or ones free for both TCP and UDP right now
/// (picked inside the namespace when there is one).
fn pick_ports(opts: &UnboundOpts) -> (u16, u16) {
    let ip = opts.ip;
    let (want, want_tls) = (opts.port, opts.tls_port);
    let f = move || {
        let mut held = vec![];
        let mut pick = |want: u16| -> u16 {
            if want != 0 {
                return want;
            }
            for _ in 0..50 {
                let t = TcpListener::bind(SocketAddr::new(ip, 0)).expect("bind probe port");
                let port = t.local_addr().unwrap().port();
                if let Ok(u) = UdpSocket::bind(SocketAddr::new(ip, port)) {
                    held.push((t, u));
                    return port;
                }
            }
            panic!("no free port on {ip}");
        };
        let a = pick(want);
        let b = pick(want_tls);
        (a, b)
    };
    match &opts.netns {
        Some(ns) => in_netns(ns, f),
        None => f(),
    }
}
