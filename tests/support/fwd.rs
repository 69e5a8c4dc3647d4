//! Helpers shared by the forward integration tests (`tests/forward_*.rs`): timed queries, reply
//! comparison, Prometheus text parsing and polling.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};

use super::query;

/// How long a polling wait may take before the test fails.
pub const POLL: Duration = Duration::from_secs(10);

/// Polls `f` every 20 ms until it returns true or `timeout` passes; returns its last result.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One UDP query with a timeout; `None` when no reply came. Also returns how long it took.
pub fn udp_timed(
    addr: SocketAddr,
    msg: &Message,
    timeout: Duration,
) -> (Option<Message>, Duration) {
    let start = Instant::now();
    let raw = super::udp_raw(addr, &msg.to_vec().unwrap(), timeout);
    let took = start.elapsed();
    let m = raw.map(|r| Message::from_vec(&r).expect("decodable reply"));
    if let Some(m) = &m {
        assert_eq!(m.metadata.id, msg.metadata.id, "the client's ID comes back");
    }
    (m, took)
}

/// `name`/`qtype` over UDP (EDNS 1232), 6 s timeout; panics without a reply.
pub fn ask(addr: SocketAddr, name: &str, qtype: RecordType) -> (Message, Duration) {
    let q = query(name, qtype, Some(1232));
    let (m, took) = udp_timed(addr, &q, Duration::from_secs(6));
    (
        m.unwrap_or_else(|| panic!("no reply for {name} {qtype} from {addr}")),
        took,
    )
}

/// The A addresses of the answer section.
pub fn a_of(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// Asserts that two replies to the same question are the same apart from the message ID and the
/// OPT record: header flags, rcode, and every section record for record.
pub fn assert_same_reply(got: &Message, want: &Message, what: &str) {
    let mut g = got.metadata;
    g.id = want.metadata.id;
    assert_eq!(
        g, want.metadata,
        "{what}: header\n got: {got:?}\nwant: {want:?}"
    );
    assert_eq!(got.queries, want.queries, "{what}: question");
    assert_eq!(got.answers, want.answers, "{what}: answer section");
    assert_eq!(
        got.authorities, want.authorities,
        "{what}: authority section"
    );
    assert_eq!(
        got.additionals, want.additionals,
        "{what}: additional section"
    );
    assert_eq!(
        got.edns.is_some(),
        want.edns.is_some(),
        "{what}: OPT record presence"
    );
}

/// The value of the Prometheus sample `name{labels}` in `body`: every `k="v"` of `labels` must be
/// among the sample's labels. Sums all matching samples; `None` when none matches.
pub fn metric(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in body.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = if let Some(r) = rest.strip_prefix('{') {
            let Some((l, v)) = r.split_once('}') else {
                continue;
            };
            (l, v)
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue;
        };
        if labels
            .iter()
            .all(|(k, v)| label_text.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
        {
            let v: f64 = value.trim().parse().unwrap_or_else(|_| panic!("{line}"));
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// `/metrics` of a running exdns (its `prometheus` listener configured as `configured`).
pub fn scrape(ex: &super::Exdns, configured: &str) -> String {
    let (status, _, body) = super::http_get(ex.http_addr(configured), "/metrics");
    assert_eq!(status, 200, "GET /metrics");
    body
}

/// Writes the concatenation of PEM files into `dir/name` (a CA bundle trusting each of them).
pub fn ca_bundle(dir: &Path, name: &str, pems: &[&Path]) -> PathBuf {
    let mut all = String::new();
    for p in pems {
        all.push_str(&std::fs::read_to_string(p).unwrap());
        all.push('\n');
    }
    let out = dir.join(name);
    std::fs::write(&out, all).unwrap();
    out
}

/// Sends every query of `msgs` from one UDP socket at once, then collects the replies (matched by
/// ID) until all came or `timeout` passed. Returns, per query, the reply and when it arrived
/// (measured from the moment the burst was sent).
pub fn udp_burst(
    addr: SocketAddr,
    msgs: &[Message],
    timeout: Duration,
) -> Vec<Option<(Message, Duration)>> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Room for every reply even when the test thread is slow to read.
    let sock = socket2::SockRef::from(&s);
    let _ = sock.set_recv_buffer_size(4 << 20);
    let start = Instant::now();
    for m in msgs {
        s.send_to(&m.to_vec().unwrap(), addr).unwrap();
    }
    let mut out: Vec<Option<(Message, Duration)>> = vec![None; msgs.len()];
    let mut left = msgs.len();
    let deadline = start + timeout;
    let mut buf = vec![0u8; 65535];
    while left > 0 {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        s.set_read_timeout(Some(deadline - now)).unwrap();
        let Ok((n, _)) = s.recv_from(&mut buf) else {
            break;
        };
        let m = Message::from_vec(&buf[..n]).expect("decodable reply");
        if let Some(i) = msgs
            .iter()
            .position(|q| q.metadata.id == m.metadata.id && q.queries == m.queries)
            && out[i].is_none()
        {
            out[i] = Some((m, start.elapsed()));
            left -= 1;
        }
    }
    out
}

/// One frame a [`Capture`] saw leave an interface.
#[derive(Clone, Debug)]
pub struct Frame {
    pub at: Instant,
    pub bytes: Vec<u8>,
}

/// What an Ethernet frame carries, as far as the leak tests care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameKind {
    Arp,
    /// A TCP segment: ports, flags (the 8 flag bits), payload length.
    Tcp {
        src: std::net::Ipv4Addr,
        sport: u16,
        dport: u16,
        flags: u8,
        payload: usize,
    },
    Udp {
        dport: u16,
        payload: usize,
    },
    Other(u16),
}

pub const TCP_RST: u8 = 0x04;
pub const TCP_SYN: u8 = 0x02;

impl Frame {
    pub fn kind(&self) -> FrameKind {
        let b = &self.bytes;
        if b.len() < 14 {
            return FrameKind::Other(0);
        }
        let ethertype = u16::from_be_bytes([b[12], b[13]]);
        match ethertype {
            0x0806 => FrameKind::Arp,
            0x0800 if b.len() >= 34 => {
                let ip = &b[14..];
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                let src = std::net::Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
                let l4 = &ip[ihl.min(ip.len())..];
                match ip[9] {
                    6 if l4.len() >= 20 => {
                        let off = usize::from(l4[12] >> 4) * 4;
                        FrameKind::Tcp {
                            src,
                            sport: u16::from_be_bytes([l4[0], l4[1]]),
                            dport: u16::from_be_bytes([l4[2], l4[3]]),
                            flags: l4[13],
                            payload: total.saturating_sub(ihl + off),
                        }
                    }
                    17 if l4.len() >= 8 => FrameKind::Udp {
                        dport: u16::from_be_bytes([l4[2], l4[3]]),
                        payload: total.saturating_sub(ihl + 8),
                    },
                    p => FrameKind::Other(u16::from(p)),
                }
            }
            t => FrameKind::Other(t),
        }
    }
}

/// Records every frame sent out of one interface of a network namespace (an `AF_PACKET` socket
/// opened inside it), until dropped.
pub struct Capture {
    frames: std::sync::Arc<std::sync::Mutex<Vec<Frame>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Capture {
    /// Starts capturing the frames `ifname` (in namespace `ns`) sends.
    pub fn outgoing(ns: &str, ifname: &str) -> Capture {
        use std::os::fd::{FromRawFd, OwnedFd};
        let name = std::ffi::CString::new(ifname).unwrap();
        let fd = super::netns::in_netns(ns, move || {
            let proto = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: plain socket calls on a socket this closure owns; sockaddr_ll is POD.
            unsafe {
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
                assert!(
                    fd >= 0,
                    "AF_PACKET socket: {}",
                    std::io::Error::last_os_error()
                );
                let fd = OwnedFd::from_raw_fd(fd);
                let index = libc::if_nametoindex(name.as_ptr());
                assert!(index > 0, "no interface {name:?}");
                let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_protocol = proto;
                sll.sll_ifindex = index as i32;
                let rc = libc::bind(
                    std::os::fd::AsRawFd::as_raw_fd(&fd),
                    &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                assert_eq!(rc, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
                fd
            }
        });
        let sock = socket2::Socket::from(fd);
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let frames = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (f, s) = (frames.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 65536];
            while !s.load(std::sync::atomic::Ordering::Acquire) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                // SAFETY: recv_from initialised the first n bytes.
                let bytes: Vec<u8> = buf[..n]
                    .iter()
                    .map(|b| unsafe { b.assume_init() })
                    .collect();
                // SAFETY: an AF_PACKET socket reports a sockaddr_ll.
                let sll = unsafe { &*(from.as_ptr() as *const libc::sockaddr_ll) };
                if sll.sll_pkttype == libc::PACKET_OUTGOING {
                    f.lock().unwrap().push(Frame {
                        at: Instant::now(),
                        bytes,
                    });
                }
            }
        });
        Capture {
            frames,
            stop,
            thread: Some(thread),
        }
    }

    /// The frames sent so far.
    pub fn frames(&self) -> Vec<Frame> {
        self.frames.lock().unwrap().clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
