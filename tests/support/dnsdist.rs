//! A real `dnsdist` as a DNS-over-HTTPS upstream (its DoH frontend, HTTP/2, `/dns-query`) in
//! front of a plain DNS backend the test gives it (an [`super::unbound::Unbound`], an exdns).
//!
//! [`Dnsdist::start`] writes `dnsdist.conf` into a temp dir and runs `dnsdist --supervised`
//! (inside a network namespace when [`DnsdistOpts::netns`] is set, via `ip netns exec`). The
//! DoH certificate is issued for [`DnsdistOpts::server_name`] by a fresh [`TestCa`]; the CA is
//! at [`Dnsdist::ca_pem`]. It also listens for plain DNS on [`Dnsdist::addr`] (the same
//! backend: "asking it directly"). Every query it gets is logged (`LogAction`):
//! `Packet from IP:PORT for NAME TYPE with id ID`, read with [`Dnsdist::log`].
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::certs::TestCa;
use super::netns::in_netns;

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How to start dnsdist.
#[derive(Clone, Debug)]
pub struct DnsdistOpts {
    /// Address to listen on (default 127.0.0.1).
    pub ip: IpAddr,
    /// DoH port; 0 = pick a free one.
    pub doh_port: u16,
    /// The name the DoH certificate is issued for (default `dns.example.test`).
    pub server_name: String,
    /// Run inside this network namespace.
    pub netns: Option<String>,
}

impl Default for DnsdistOpts {
    fn default() -> Self {
        DnsdistOpts {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            doh_port: 0,
            server_name: "dns.example.test".into(),
            netns: None,
        }
    }
}

impl DnsdistOpts {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = ip;
        self
    }
    pub fn doh_port(mut self, port: u16) -> Self {
        self.doh_port = port;
        self
    }
    pub fn in_netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.into());
        self
    }
}

pub struct Dnsdist {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub opts: DnsdistOpts,
    /// The DoH frontend.
    pub doh_addr: SocketAddr,
    /// The plain DNS frontend (UDP and TCP).
    pub addr: SocketAddr,
    pub ca_pem: PathBuf,
    log_file: PathBuf,
    out_file: PathBuf,
}

pub fn available() -> bool {
    let ok = super::have("dnsdist");
    if !ok && std::env::var_os("EXDNS_ALLOW_MISSING_TOOLS").is_none() {
        panic!("dnsdist is not installed (run `make test`, which installs the test tools)");
    }
    ok
}

impl Dnsdist {
    /// dnsdist answering from `backend` (plain DNS).
    pub fn start(backend: SocketAddr, opts: DnsdistOpts) -> Dnsdist {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new("exdns dnsdist test CA");
        let cert = ca.issue(&[opts.server_name.as_str()]);
        let ca_pem = ca.write(dir.path(), "ca.pem");
        let (cert_pem, key_pem) = cert.write(dir.path(), "server");
        let port = |p: u16| if p == 0 { super::free_port() } else { p };
        let doh_addr = SocketAddr::new(opts.ip, port(opts.doh_port));
        let addr = SocketAddr::new(opts.ip, super::free_port());
        let log_file = dir.path().join("queries.log");
        let out_file = dir.path().join("out.log");
        let conf = dir.path().join("dnsdist.conf");
        std::fs::write(
            &conf,
            format!(
                "setSecurityPollSuffix(\"\")\n\
                 setACL({{\"0.0.0.0/0\", \"::/0\"}})\n\
                 setLocal(\"{addr}\")\n\
                 addDOHLocal(\"{doh_addr}\", \"{}\", \"{}\", \"/dns-query\", {{reusePort=true}})\n\
                 newServer({{address=\"{backend}\", checkInterval=3600}})\n\
                 addAction(AllRule(), LogAction(\"{}\", false, true, false))\n",
                cert_pem.display(),
                key_pem.display(),
                log_file.display()
            ),
        )
        .expect("write dnsdist.conf");
        let out = std::fs::File::create(&out_file).expect("out file");
        let mut cmd = match &opts.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "dnsdist"]);
                c
            }
            None => Command::new("dnsdist"),
        };
        cmd.args(["--supervised", "--disable-syslog", "-C"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out);
        let child = cmd.spawn().expect("spawn dnsdist");
        let mut d = Dnsdist {
            child: Some(child),
            dir,
            opts,
            doh_addr,
            addr,
            ca_pem,
            log_file,
            out_file,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !d.listening() {
            if let Some(st) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("dnsdist exited ({st}):\n{}", d.output());
            }
            if Instant::now() >= deadline {
                panic!("dnsdist did not start:\n{}", d.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    /// The DoH frontend accepts connections.
    fn listening(&self) -> bool {
        let a = self.doh_addr;
        let f = move || TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok();
        match &self.opts.netns {
            Some(ns) => in_netns(ns, f),
            None => f(),
        }
    }

    /// The queries dnsdist got, one line each.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// What dnsdist printed.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out_file).unwrap_or_default()
    }

    /// Stops dnsdist (the DoH port refuses connections from now on).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Dnsdist {
    fn drop(&mut self) {
        self.stop();
    }
}
