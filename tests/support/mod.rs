//! Test support: start the real exdns binary on ephemeral loopback ports, talk DNS to it.
#![allow(dead_code)]

pub mod certs;
pub mod digout;
pub mod dnsdist;
pub mod fake_apiserver;
pub mod fwd;
pub mod netns;
pub mod nsd;
pub mod secondary;
pub mod signed_parent;
pub mod tlsecho;
pub mod unbound;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};

/// A running exdns process. Killed on drop.
pub struct Exdns {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub corefile: PathBuf,
    /// Every line the process printed (stdout and stderr).
    pub lines: Arc<Mutex<Vec<String>>>,
    /// `dns://:0` style listener → bound address.
    pub listeners: Vec<(String, SocketAddr)>,
    /// configured http address → bound address.
    pub http: Vec<(String, SocketAddr)>,
}

/// The exdns binary: `$EXDNS_BIN` when set (benchmarks point it at a release build), else the
/// one cargo built for this test.
pub fn bin() -> PathBuf {
    match std::env::var_os("EXDNS_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_exdns")),
    }
}

impl Exdns {
    /// Writes `corefile` into a temp dir (other files may be added with `write`) and starts exdns
    /// on it; waits until it has logged its listeners.
    pub fn start(corefile: &str) -> Exdns {
        Self::start_with(corefile, &[], &[])
    }

    pub fn start_with(corefile: &str, files: &[(&str, &str)], args: &[&str]) -> Exdns {
        Self::start_wrapped_env(&[], corefile, files, args, &[])
    }

    /// [`start_with`](Self::start_with) with extra environment variables for the process.
    pub fn start_with_env(
        corefile: &str,
        files: &[(&str, &str)],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Exdns {
        Self::start_wrapped_env(&[], corefile, files, args, env)
    }

    /// Starts exdns inside network namespace `ns` (`ip netns exec NS exdns ...`, which execs, so
    /// the child is exdns itself). Its listener addresses are the namespace's: query it from
    /// inside (`netns::in_netns`, `Topology::run_in`).
    pub fn start_in_netns(
        ns: &str,
        corefile: &str,
        files: &[(&str, &str)],
        args: &[&str],
    ) -> Exdns {
        Self::start_wrapped(&["ip", "netns", "exec", ns], corefile, files, args)
    }

    /// Starts exdns as the last argument of `wrapper` (e.g. `["ip", "netns", "exec", NS]`).
    pub fn start_wrapped(
        wrapper: &[&str],
        corefile: &str,
        files: &[(&str, &str)],
        args: &[&str],
    ) -> Exdns {
        Self::start_wrapped_env(wrapper, corefile, files, args, &[])
    }

    /// The general form: a wrapper command and extra environment variables.
    pub fn start_wrapped_env(
        wrapper: &[&str],
        corefile: &str,
        files: &[(&str, &str)],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Exdns {
        let dir = tempfile::tempdir().unwrap();
        // World-readable, so a wrapper that drops to an unprivileged user can read the Corefile.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        for (name, content) in files {
            let p = dir.path().join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(p, content).unwrap();
        }
        let path = dir.path().join("Corefile");
        std::fs::write(&path, corefile).unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        cmd.arg("-conf")
            .arg(&path)
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir.path());
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("start exdns");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        for r in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines().map_while(Result::ok) {
                    if std::env::var_os("EXDNS_TEST_ECHO").is_some() {
                        eprintln!("exdns| {l}");
                    }
                    lines.lock().unwrap().push(l.clone());
                    let _ = tx.send(l);
                }
            });
        }
        let mut ex = Exdns {
            child,
            dir,
            corefile: path,
            lines,
            listeners: vec![],
            http: vec![],
        };
        // The process logs "listening on KEY at ADDR" for each listener, then the http endpoints,
        // then "exdns ready to serve" marks the end of startup.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    if let Some(rest) = l.split("listening on ").nth(1) {
                        let mut it = rest.split(" at ");
                        let k = it.next().unwrap().to_string();
                        let a: SocketAddr = it.next().unwrap().trim().parse().unwrap();
                        ex.listeners.push((k, a));
                    } else if let Some(rest) = l.split("http endpoint ").nth(1) {
                        let mut it = rest.split(" at ");
                        let k = it.next().unwrap().to_string();
                        let a: SocketAddr = it.next().unwrap().trim().parse().unwrap();
                        ex.http.push((k, a));
                    } else if l.contains("exdns ready to serve") {
                        break;
                    }
                }
                Err(_) => {
                    let _ = ex.child.kill();
                    panic!("exdns did not start; output:\n{}", ex.output());
                }
            }
        }
        ex
    }

    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The bound address of the first listener whose key contains `key` (e.g. `dns://`, `tls://`).
    pub fn addr(&self, key: &str) -> SocketAddr {
        let a = self
            .listeners
            .iter()
            .find(|(k, _)| k.contains(key))
            .unwrap_or_else(|| panic!("no listener {key} in {:?}", self.listeners))
            .1;
        loopback(a)
    }

    /// The DNS address (first dns:// listener), on loopback.
    pub fn dns(&self) -> SocketAddr {
        self.addr("dns://")
    }

    pub fn http_addr(&self, configured: &str) -> SocketAddr {
        loopback(
            self.http
                .iter()
                .find(|(k, _)| k == configured)
                .unwrap_or_else(|| panic!("no http endpoint {configured} in {:?}", self.http))
                .1,
        )
    }

    /// Writes a file in place (truncate, then write), as `cat >` or `echo >` do.
    pub fn write(&self, name: &str, content: &str) {
        std::fs::write(self.dir.path().join(name), content).unwrap();
    }

    /// Replaces a file the way an editor or a ConfigMap update does: the server reading it at any
    /// moment sees the old content or the new, never a half-written file.
    pub fn replace(&self, name: &str, content: &str) {
        let path = self.dir.path().join(name);
        let file = path.file_name().unwrap().to_string_lossy();
        let tmp = path.with_file_name(format!(".{file}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    /// How many printed lines contain `needle`.
    pub fn count_lines(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Waits until a line containing `needle` was printed.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self
                .lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Replaces the Corefile with `corefile`, has it reloaded (SIGUSR1) and waits until the
    /// reload is applied (`Running configuration SHA512`, printed on each reload).
    pub fn reload_with(&self, corefile: &str) {
        const APPLIED: &str = "Running configuration SHA512";
        let before = self.count_lines(APPLIED);
        self.replace("Corefile", corefile);
        self.signal(libc::SIGUSR1);
        assert!(
            fwd::wait_until(fwd::POLL, || self.count_lines(APPLIED) > before),
            "the reload was not applied: {}",
            self.output()
        );
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Exdns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// fixtures/demo's object files (YAML and JSON), named `demo/FILE` for exdns's working
/// directory, in name order.
pub fn demo_files() -> Vec<(String, String)> {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    let mut v: Vec<(String, String)> = std::fs::read_dir(&demo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "json")
            )
        })
        .map(|p| {
            (
                format!("demo/{}", p.file_name().unwrap().to_str().unwrap()),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Resident memory of process `pid`, in KiB (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of process `pid` (0 once it is gone).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Raises this process's soft limit on open files to the hard limit (a flood holds more sockets
/// than the usual soft limit of 1024); returns the limit now in force.
pub fn raise_nofile() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        rl.rlim_cur = rl.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
    }
    rl.rlim_cur
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.0/8 is all local: each
/// address is a different client to exdns); None if it is not established within 2 s.
pub fn connect_from(from: std::net::Ipv4Addr, to: SocketAddr) -> Option<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    s.bind(&SocketAddr::from((from, 0)).into()).ok()?;
    s.connect_timeout(&to.into(), Duration::from_secs(2)).ok()?;
    Some(s.into())
}

/// Whether the client `tool` (dig, kdig, …) can run: a missing tool fails the test with how to
/// get it, unless EXDNS_ALLOW_MISSING_TOOLS is set (then the test is skipped, saying so).
pub fn require(tool: &str) -> bool {
    if have(tool) {
        return true;
    }
    if std::env::var_os("EXDNS_ALLOW_MISSING_TOOLS").is_some() {
        eprintln!("skipping: {tool} not installed");
        return false;
    }
    panic!("{tool} is not installed (run `make test`, which installs the test tools)");
}

/// A port free for TCP and UDP on every address (the IPv6 wildcard, which takes IPv4 too, and
/// 127.0.0.1) right now, for a Corefile that needs one port in several blocks. Chosen below the
/// kernel's ephemeral range (32768 up), so the ephemeral ports other tests bind meanwhile cannot
/// take it.
pub fn free_port() -> u16 {
    use std::net::{Ipv6Addr, TcpListener};
    let seed = std::process::id() as u64 ^ u64::from(rand_id()) << 16;
    for i in 0..200u64 {
        let port = 20000 + ((seed.wrapping_mul(31).wrapping_add(i * 7919)) % 12000) as u16;
        // One probe at a time: each socket is closed before the next binds.
        let tcp6 = || TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)).is_ok();
        let udp6 = || UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port)).is_ok();
        let tcp4 = || TcpListener::bind(("127.0.0.1", port)).is_ok();
        let udp4 = || UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if tcp6() && udp6() && tcp4() && udp4() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

pub fn loopback(a: SocketAddr) -> SocketAddr {
    if a.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], a.port()))
    } else {
        a
    }
}

/// A query message for `name`/`qtype` with RD set; EDNS with `edns_size` when given.
pub fn query(name: &str, qtype: RecordType, edns_size: Option<u16>) -> Message {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    let mut q = Query::query(Name::from_ascii(name).unwrap(), qtype);
    q.set_query_class(DNSClass::IN);
    m.add_query(q);
    if let Some(sz) = edns_size {
        let mut e = Edns::new();
        e.set_max_payload(sz);
        m.edns = Some(e);
    }
    m
}

pub fn rand_id() -> u16 {
    (std::process::id() as u16)
        ^ (Instant::now().elapsed().subsec_nanos() as u16).wrapping_mul(31)
        ^ rand_u16()
}

fn rand_u16() -> u16 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish() as u16
}

/// Sends raw bytes over UDP; returns the raw reply (None on timeout).
pub fn udp_raw(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let s = UdpSocket::bind(if addr.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    })
    .unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.send_to(bytes, addr).unwrap();
    let mut buf = vec![0u8; 65535];
    match s.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// One query over UDP; panics on timeout.
pub fn udp(addr: SocketAddr, msg: &Message) -> Message {
    let raw = udp_raw(addr, &msg.to_vec().unwrap(), Duration::from_secs(5)).expect("udp reply");
    Message::from_vec(&raw).expect("decodable reply")
}

/// One query over a fresh TCP connection.
pub fn tcp(addr: SocketAddr, msg: &Message) -> Message {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write_framed(&mut s, &msg.to_vec().unwrap());
    Message::from_vec(&read_framed(&mut s).expect("tcp reply")).unwrap()
}

pub fn write_framed(s: &mut impl Write, bytes: &[u8]) {
    let mut v = (bytes.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(bytes);
    s.write_all(&v).unwrap();
}

pub fn read_framed(s: &mut impl Read) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// How the binary ended on a Corefile it was given (see [`run_corefile`]).
pub struct Ended {
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Where the Corefile was written (error messages name it).
    pub corefile: PathBuf,
    _dir: tempfile::TempDir,
}

impl Ended {
    /// stdout then stderr.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs the binary on `corefile` (written to a fresh directory) with `args` (`-check`, or none
/// for a Corefile that must stop the start-up) until it exits, 30 s at most: a binary still
/// running then (a Corefile that started) is killed and the test fails.
pub fn run_corefile(corefile: &str, args: &[&str]) -> Ended {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Corefile");
    std::fs::write(&path, corefile).unwrap();
    let mut child = Command::new(bin())
        .arg("-conf")
        .arg(&path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drained while it runs, so a chatty binary cannot block on a full pipe.
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after 30 s on:\n{corefile}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ended {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        corefile: path,
        _dir: dir,
    }
}

/// Reads `r` to its end on a thread of its own: the text read (lossy UTF-8).
fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs a command, returns (status, stdout).
pub fn run(cmd: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A plain HTTP GET; returns (status, headers, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Test certificates: a CA and a server certificate for `name` signed by it, written to `dir`.
/// Returns (ca.pem, cert.pem, key.pem) paths.
pub fn make_certs(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "exdns test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::ExplicitNoCa;
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let ca_p = dir.join("ca.pem");
    let cert_p = dir.join("cert.pem");
    let key_p = dir.join("key.pem");
    std::fs::write(&ca_p, ca.pem()).unwrap();
    std::fs::write(&cert_p, cert.pem()).unwrap();
    std::fs::write(&key_p, key.serialize_pem()).unwrap();
    (ca_p, cert_p, key_p)
}
