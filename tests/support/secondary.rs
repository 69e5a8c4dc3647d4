//! Real secondaries of an exdns primary: NSD and Knot pulling zones by AXFR/IXFR, told of
//! changes by NOTIFY. Each runs in a temp dir on 127.0.0.1 at a port chosen with
//! [`super::free_port`] before exdns starts (exdns's `transfer { to }` names it).
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nsd,
    Knot,
}

pub struct Secondary {
    pub kind: Kind,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Secondary {
    /// Starts `kind` on `port` as the secondary of `zone` from `primary` (notifies accepted
    /// from 127.0.0.1). It answers once it has transferred the zone.
    pub fn start(kind: Kind, port: u16, zone: &str, primary: SocketAddr) -> Secondary {
        let tool = match kind {
            Kind::Nsd => "nsd",
            Kind::Knot => "knotd",
        };
        assert!(
            super::have(tool),
            "{tool} is not installed (scripts/test.sh installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let conf = dir.path().join("conf");
        let (p, pp) = (port, primary.port());
        let text = match kind {
            Kind::Nsd => format!(
                "server:\n    ip-address: 127.0.0.1@{p}\n    server-count: 1\n    username: \"\"\n    \
                 chroot: \"\"\n    zonesdir: \"{d}\"\n    pidfile: \"{d}/nsd.pid\"\n    database: \"\"\n    \
                 xfrdfile: \"{d}/xfrd.state\"\n    zonelistfile: \"{d}/zone.list\"\n    \
                 logfile: \"{d}/log\"\n    verbosity: 2\n    rrl-ratelimit: 0\n    xfrd-reload-timeout: 0\n\
                 remote-control:\n    control-enable: no\n\
                 zone:\n    name: \"{zone}\"\n    request-xfr: 127.0.0.1@{pp} NOKEY\n    \
                 allow-notify: 127.0.0.1 NOKEY\n"
            ),
            Kind::Knot => format!(
                "server:\n    listen: 127.0.0.1@{p}\n    rundir: \"{d}\"\n\
                 log:\n  - target: {d}/log\n    any: info\n\
                 database:\n    storage: \"{d}\"\n\
                 remote:\n  - id: primary\n    address: 127.0.0.1@{pp}\n\
                 acl:\n  - id: notify\n    address: 127.0.0.1\n    action: notify\n\
                 template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-sync: -1\n    \
                 zonefile-load: none\n    journal-content: changes\n\
                 zone:\n  - domain: {zone}\n    master: primary\n    acl: notify\n"
            ),
        };
        std::fs::write(&conf, text).unwrap();
        let out = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let mut cmd = match kind {
            Kind::Nsd => {
                let mut c = Command::new("nsd");
                c.arg("-d").arg("-c").arg(&conf);
                c
            }
            Kind::Knot => {
                let mut c = Command::new("knotd");
                c.arg("-c").arg(&conf);
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Secondary {
            kind,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            dir,
            child: Some(child),
        }
    }

    /// The zone's SOA serial as this secondary answers it (None: not loaded yet).
    pub fn serial(&self, zone: &str) -> Option<u32> {
        let m = self.ask(zone, RecordType::SOA)?;
        m.answers.iter().find_map(|r| match &r.data {
            RData::SOA(s) => Some(s.serial),
            _ => None,
        })
    }

    /// One UDP query (None: no answer within a second).
    pub fn ask(&self, name: &str, qtype: RecordType) -> Option<Message> {
        let q = super::query(name, qtype, None);
        let raw = super::udp_raw(self.addr, &q.to_vec().unwrap(), Duration::from_secs(1))?;
        Message::from_vec(&raw).ok()
    }

    /// Waits until the secondary serves `serial` for `zone`; the time it took.
    pub fn wait_serial(&self, zone: &str, serial: u32, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.serial(zone) == Some(serial) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }

    /// Waits until the secondary serves `serial` for `zone` and `name` A as `want` (NSD answers
    /// from its old and new server processes for a moment after a reload: the SOA may come from
    /// the new one and a name from the old). The time it took.
    pub fn wait_answer(
        &self,
        zone: &str,
        serial: u32,
        name: &str,
        want: &str,
        timeout: Duration,
    ) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            let a = self
                .ask(name, RecordType::A)
                .and_then(|m| m.answers.first().map(|r| r.data.to_string()));
            if self.serial(zone) == Some(serial) && a.as_deref() == Some(want) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// Its config, stderr and log, for failure messages.
    pub fn output(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- {:?} conf:\n{}--- stderr:\n{}--- log:\n{}",
            self.kind,
            read("conf"),
            read("stderr"),
            read("log")
        )
    }
}

impl Drop for Secondary {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
