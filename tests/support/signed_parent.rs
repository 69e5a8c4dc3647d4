//! A parent zone signed by Knot itself (`dnssec-signing: on`: its own KSK and ZSK, NSEC,
//! no CDS/CDNSKEY), holding the delegation (NS, glue, DS) of a zone exdns signs — the upper half
//! of a chain of trust that a zone checker walks (tests/dnssec.rs runs DNSViz over it).
//!
//! Knot runs behind an optional wrapper (`["ip", "netns", "exec", NS]`, as for
//! `Exdns::start_wrapped`), so it can listen on port 53 of a namespace's address; the client
//! tools this helper runs (`dig`) go through the same wrapper.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SignedParent {
    pub zone: String,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    wrapper: Vec<String>,
    child: Child,
}

impl SignedParent {
    /// Starts Knot on `addr` serving `zone` from `zone_text` (a zone file), signed by keys Knot
    /// makes; returns once Knot answers the signed zone's DNSKEY RRset.
    pub fn start(wrapper: &[&str], addr: SocketAddr, zone: &str, zone_text: &str) -> SignedParent {
        assert!(
            super::have("knotd"),
            "knotd is not installed (scripts/install-test-tools.sh installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::write(dir.path().join("zone"), zone_text).unwrap();
        // The parent is a trust anchor here, so it publishes no CDS/CDNSKEY (a checker would
        // otherwise report them as signed by a key no DS names).
        let conf = format!(
            "server:\n    listen: {ip}@{port}\n    rundir: \"{d}\"\n\
             log:\n  - target: {d}/log\n    any: info\n\
             database:\n    storage: \"{d}\"\n\
             policy:\n  - id: parent\n    cds-cdnskey-publish: none\n\
             template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-sync: -1\n    \
             zonefile-load: whole\n    journal-content: none\n\
             zone:\n  - domain: {zone}\n    file: \"{d}/zone\"\n    dnssec-signing: on\n    \
             dnssec-policy: parent\n",
            ip = addr.ip(),
            port = addr.port(),
        );
        std::fs::write(dir.path().join("conf"), conf).unwrap();
        let out = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let mut cmd = wrapped(wrapper, "knotd");
        cmd.arg("-c").arg(dir.path().join("conf"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let parent = SignedParent {
            zone: zone.trim_end_matches('.').to_string() + ".",
            addr,
            dir,
            wrapper: wrapper.iter().map(|s| s.to_string()).collect(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while parent.ksk().is_none() {
            assert!(
                Instant::now() < deadline,
                "Knot did not serve the signed zone:\n{}",
                parent.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        parent
    }

    /// Knot's key-signing key, as a DNSKEY line of a zone file (a trust anchor); `None` until
    /// Knot serves the signed zone.
    pub fn ksk(&self) -> Option<String> {
        let w: Vec<&str> = self.wrapper.iter().map(String::as_str).collect();
        let port = self.addr.port().to_string();
        let out = wrapped(&w, "dig")
            .args([
                &format!("@{}", self.addr.ip()),
                "-p",
                &port,
                "+norec",
                "+noall",
                "+answer",
                "+tries=1",
                "+time=1",
                &self.zone,
                "DNSKEY",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some("257"))
            .map(str::to_string)
    }

    /// Its config, stderr and log, for failure messages.
    pub fn output(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- Knot conf:\n{}--- zone:\n{}--- stderr:\n{}--- log:\n{}",
            read("conf"),
            read("zone"),
            read("stderr"),
            read("log")
        )
    }
}

impl Drop for SignedParent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program` run by `wrapper` (or directly when it is empty).
fn wrapped(wrapper: &[&str], program: &str) -> Command {
    match wrapper.split_first() {
        Some((w, rest)) => {
            let mut c = Command::new(w);
            c.args(rest).arg(program);
            c
        }
        None => Command::new(program),
    }
}
