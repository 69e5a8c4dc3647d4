//! A real `nsd` serving zone files, as a reference authoritative server to compare answers with.
//!
//! [`Nsd::start`] writes `nsd.conf` into a temp dir and runs `nsd -d -c FILE` on 127.0.0.1 at a
//! port free for both UDP and TCP (picked just before the start, retried on a bind race). The
//! options are the ones a non-root process can use: `username: ""` (no privilege drop), no
//! chroot, and the pid file, zone list, xfrd state and zone files all in the temp dir
//! (`database: ""`: no database file). One server process, no response rate limiting (every
//! test query comes from 127.0.0.1) and `minimal-responses: no`, NSD's default.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Fails the test with a clear message when nsd is not installed (CI installs it).
pub fn require() {
    assert!(
        super::have("nsd"),
        "nsd is not installed: this test compares exdns with a real NSD \
         (apt-get install nsd; scripts/test.sh installs it)"
    );
}

/// A running nsd. Stopped (SIGTERM, then SIGKILL) on drop.
pub struct Nsd {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub conf: PathBuf,
    log_file: PathBuf,
}

impl Nsd {
    /// Serves each `(zone, zone file text)` and waits until every zone answers its SOA; panics
    /// with nsd's output when it cannot start.
    pub fn start(zones: &[(&str, &str)]) -> Nsd {
        require();
        let mut last = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = super::free_port();
            let mut nsd = Nsd {
                child: None,
                conf: dir.path().join("nsd.conf"),
                log_file: dir.path().join("nsd.log"),
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                dir,
            };
            for (i, (_, text)) in zones.iter().enumerate() {
                std::fs::write(nsd.dir.path().join(format!("zone{i}.db")), text).unwrap();
            }
            std::fs::write(&nsd.conf, nsd.config(zones)).unwrap();
            match nsd.spawn_and_wait(zones) {
                Ok(()) => return nsd,
                Err(e) if e.contains("can't bind") || e.contains("Address already in use") => {
                    last = e
                }
                Err(e) => panic!("nsd did not start: {e}"),
            }
        }
        panic!("nsd did not start (ports kept colliding): {last}");
    }

    fn config(&self, zones: &[(&str, &str)]) -> String {
        let d = self.dir.path().display();
        let mut c = format!(
            "server:\n    ip-address: 127.0.0.1@{port}\n    server-count: 1\n    \
             username: \"\"\n    chroot: \"\"\n    zonesdir: \"{d}\"\n    \
             pidfile: \"{d}/nsd.pid\"\n    database: \"\"\n    \
             xfrdfile: \"{d}/xfrd.state\"\n    zonelistfile: \"{d}/zone.list\"\n    \
             logfile: \"{log}\"\n    verbosity: 1\n    minimal-responses: no\n    \
             rrl-ratelimit: 0\nremote-control:\n    control-enable: no\n",
            port = self.addr.port(),
            log = self.log_file.display(),
        );
        for (i, (zone, _)) in zones.iter().enumerate() {
            c.push_str(&format!(
                "zone:\n    name: \"{zone}\"\n    zonefile: \"{d}/zone{i}.db\"\n"
            ));
        }
        c
    }

    fn spawn_and_wait(&mut self, zones: &[(&str, &str)]) -> Result<(), String> {
        let out = std::fs::File::create(self.dir.path().join("stderr.log")).unwrap();
        let child = Command::new("nsd")
            .arg("-d")
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .map_err(|e| format!("spawn nsd: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        for (zone, _) in zones {
            loop {
                if let Some(st) = self.child.as_mut().unwrap().try_wait().ok().flatten() {
                    self.child = None;
                    return Err(format!("nsd exited ({st}):\n{}", self.output()));
                }
                if self.answers_soa(zone) {
                    break;
                }
                if Instant::now() >= deadline {
                    self.stop();
                    return Err(format!(
                        "nsd does not answer {zone} SOA:\n{}",
                        self.output()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// `msg` over UDP, asked up to three times (2 s each); panics when NSD never answers.
    pub fn ask_udp(&self, msg: &Message) -> Message {
        let bytes = msg.to_vec().unwrap();
        for _ in 0..3 {
            if let Some(raw) = super::udp_raw(self.addr, &bytes, Duration::from_secs(2)) {
                return Message::from_vec(&raw).expect("decodable reply");
            }
        }
        panic!("nsd did not answer {:?}:\n{}", msg.queries, self.output());
    }

    fn answers_soa(&self, zone: &str) -> bool {
        let Ok(s) = UdpSocket::bind("127.0.0.1:0") else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
        let q = super::query(zone, RecordType::SOA, None);
        if s.send_to(&q.to_vec().unwrap(), self.addr).is_err() {
            return false;
        }
        let mut buf = [0u8; 4096];
        match s.recv_from(&mut buf) {
            Ok((n, _)) => Message::from_vec(&buf[..n])
                .map(|m| m.metadata.id == q.metadata.id && !m.answers.is_empty())
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    /// The config, nsd's stderr and its log, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- nsd.conf:\n{}--- stderr:\n{}--- log:\n{}",
            std::fs::read_to_string(&self.conf).unwrap_or_default(),
            std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default(),
            std::fs::read_to_string(&self.log_file).unwrap_or_default()
        )
    }

    /// `nsd -v`'s version line.
    pub fn version() -> String {
        let (_, out) = super::run("nsd", &["-v"]);
        out.lines().next().unwrap_or_default().to_string()
    }

    /// Stops nsd (SIGTERM, SIGKILL after 3 s). Idempotent.
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
}

impl Drop for Nsd {
    fn drop(&mut self) {
        self.stop();
    }
}
