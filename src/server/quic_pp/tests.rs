use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;

use super::*;
use crate::plugin::proxyproto::{Policy, SessionTracking, V2_SIG};

/// One `poll_recv`'s datagrams: (source, bytes, GRO stride or 0).
type Batch = Vec<(SocketAddr, Vec<u8>, usize)>;
/// What quinn saw per poll: the kept datagrams (address, payload), or `None` for Pending.
type Seen = Vec<Option<Vec<(SocketAddr, Vec<u8>)>>>;

/// A socket that hands out queued datagrams (address, bytes, GRO stride) in one batch and
/// records what is sent.
#[derive(Debug, Default)]
struct Fake {
    rx: Mutex<VecDeque<Batch>>,
    sent: Mutex<Vec<(SocketAddr, Vec<u8>)>>,
}

#[derive(Debug)]
struct NoPoller;
impl UdpPoller for NoPoller {
    fn poll_writable(self: Pin<&mut Self>, _: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncUdpSocket for Fake {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(NoPoller)
    }
    fn try_send(&self, t: &Transmit) -> io::Result<()> {
        self.sent
            .lock()
            .unwrap()
            .push((t.destination, t.contents.to_vec()));
        Ok(())
    }
    fn poll_recv(
        &self,
        _: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let Some(batch) = self.rx.lock().unwrap().pop_front() else {
            return Poll::Pending;
        };
        for (i, (addr, bytes, stride)) in batch.iter().enumerate() {
            bufs[i][..bytes.len()].copy_from_slice(bytes);
            meta[i] = RecvMeta {
                addr: *addr,
                len: bytes.len(),
                stride: *stride,
                ..RecvMeta::default()
            };
        }
        Poll::Ready(Ok(batch.len()))
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok("127.0.0.1:853".parse().unwrap())
    }
}

const PROXY: &str = "127.0.0.1:40000";
const CLIENT: &str = "198.51.100.7:5353";

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A PROXY v2 header (PROXY command, IPv4, `transport`) naming `client`, then `payload`.
fn v2(transport: u8, client: &str, payload: &[u8]) -> Vec<u8> {
    let c = a(client);
    let SocketAddr::V4(c) = c else { panic!() };
    let mut b = V2_SIG.to_vec();
    b.extend_from_slice(&[0x21, 0x10 | transport, 0, 12]);
    b.extend_from_slice(&c.ip().octets());
    b.extend_from_slice(&[127, 0, 0, 1]);
    b.extend_from_slice(&c.port().to_be_bytes());
    b.extend_from_slice(&853u16.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

fn policy(allow: &[&str], default: Option<Policy>) -> ProxyProto {
    ProxyProto {
        allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
        default,
        sessions: None,
    }
}

/// A source that always gives `pp`.
fn fixed(pp: &ProxyProto) -> Source {
    let pp = Arc::new(pp.clone());
    Arc::new(move || Some(pp.clone()))
}

/// One `poll_recv` of `sock`: (address, payload) of each kept datagram, `None` for Pending.
fn poll_once(sock: &PpSocket) -> Option<Vec<(SocketAddr, Vec<u8>)>> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut store = [0u8; 256];
    let mut bufs = [IoSliceMut::new(&mut store)];
    let mut meta = [RecvMeta::default()];
    match sock.poll_recv(&mut cx, &mut bufs, &mut meta) {
        Poll::Ready(Ok(n)) => Some(
            meta.iter()
                .zip(bufs.iter())
                .take(n)
                .map(|(m, b)| (m.addr, b[..m.len].to_vec()))
                .collect(),
        ),
        Poll::Ready(Err(e)) => panic!("{e}"),
        Poll::Pending => None,
    }
}

/// Feeds `batches` through a [`PpSocket`] and collects what quinn would see per poll:
/// (address, payload) of every kept datagram (split at its stride), or `None` for Pending.
fn run(pp: &ProxyProto, batches: Vec<Batch>) -> (Arc<Fake>, PpSocket, Seen) {
    let fake = Arc::new(Fake::default());
    let polls = batches.len();
    *fake.rx.lock().unwrap() = batches.into();
    let sock = PpSocket::new(fake.clone(), fixed(pp), Duration::from_secs(30));
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    let mut out = Vec::new();
    for _ in 0..polls {
        let mut store = vec![[0u8; 2048]; 4];
        let mut bufs: Vec<IoSliceMut> = store.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        let mut meta = [RecvMeta::default(); 4];
        match sock.poll_recv(&mut cx, &mut bufs, &mut meta) {
            Poll::Ready(Ok(n)) => {
                let mut got = Vec::new();
                for (m, b) in meta.iter().zip(bufs.iter()).take(n) {
                    for seg in b[..m.len].chunks(m.stride) {
                        got.push((m.addr, seg.to_vec()));
                    }
                }
                out.push(Some(got));
            }
            Poll::Ready(Err(e)) => panic!("{e}"),
            Poll::Pending => out.push(None),
        }
        if fake.rx.lock().unwrap().is_empty() {
            break;
        }
    }
    (fake, sock, out)
}

#[test]
fn datagrams() {
    let quic = b"\xc0QUIC-INITIAL".to_vec();
    let proxy = a(PROXY);
    let allowed = policy(&["127.0.0.1/32"], None);
    type Case = (&'static str, ProxyProto, Vec<Batch>, Seen);
    let cases: Vec<Case> = vec![
        (
            "allowed proxy: header stripped, client address",
            allowed.clone(),
            vec![vec![(proxy, v2(2, CLIENT, &quic), 0)]],
            vec![Some(vec![(a(CLIENT), quic.clone())])],
        ),
        (
            "no header: as it came",
            allowed.clone(),
            vec![vec![(proxy, quic.clone(), 0)]],
            vec![Some(vec![(proxy, quic.clone())])],
        ),
        (
            "a garbage header is dropped, the rest of the batch kept in order",
            allowed.clone(),
            vec![vec![
                (proxy, [&V2_SIG[..], b"\x99\x99garbage"].concat(), 0),
                (proxy, v2(2, CLIENT, b"one"), 0),
                (proxy, v2(1, CLIENT, b"stream transport"), 0),
                (proxy, v2(2, "198.51.100.8:1", b"two"), 0),
            ]],
            vec![Some(vec![
                (a(CLIENT), b"one".to_vec()),
                (a("198.51.100.8:1"), b"two".to_vec()),
            ])],
        ),
        (
            "a batch of only dropped datagrams reads the next batch",
            allowed.clone(),
            vec![
                vec![(proxy, v2(2, CLIENT, b""), 0)],
                vec![(proxy, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nx".to_vec(), 0)],
                vec![(proxy, v2(2, CLIENT, b"after"), 0)],
            ],
            vec![Some(vec![(a(CLIENT), b"after".to_vec())])],
        ),
        (
            "not allowed, default ignore: stripped, proxy address",
            policy(&["10.0.0.0/8"], None),
            vec![vec![(proxy, v2(2, CLIENT, &quic), 0)]],
            vec![Some(vec![(proxy, quic.clone())])],
        ),
        (
            "not allowed, default reject: dropped",
            policy(&["10.0.0.0/8"], Some(Policy::Reject)),
            vec![vec![
                (proxy, v2(2, CLIENT, &quic), 0),
                (proxy, quic.clone(), 0),
            ]],
            vec![Some(vec![(proxy, quic.clone())])],
        ),
        (
            "skip: the header reaches quinn",
            policy(&[], Some(Policy::Skip)),
            vec![vec![(proxy, v2(2, CLIENT, &quic), 0)]],
            vec![Some(vec![(proxy, v2(2, CLIENT, &quic))])],
        ),
        (
            "GRO: segments stripped and packed at the payload's stride",
            allowed.clone(),
            vec![vec![(
                proxy,
                [
                    v2(2, CLIENT, b"aaaa"),
                    v2(2, CLIENT, b"bbbb"),
                    v2(2, CLIENT, b"cc"),
                ]
                .concat(),
                v2(2, CLIENT, b"aaaa").len(),
            )]],
            vec![Some(vec![
                (a(CLIENT), b"aaaa".to_vec()),
                (a(CLIENT), b"bbbb".to_vec()),
                (a(CLIENT), b"cc".to_vec()),
            ])],
        ),
        (
            "GRO: a segment naming another client is dropped",
            allowed.clone(),
            vec![vec![(
                proxy,
                [
                    v2(2, CLIENT, b"aaaa"),
                    v2(2, "198.51.100.9:9", b"bbbb"),
                    v2(2, CLIENT, b"cccc"),
                ]
                .concat(),
                v2(2, CLIENT, b"aaaa").len(),
            )]],
            vec![Some(vec![
                (a(CLIENT), b"aaaa".to_vec()),
                (a(CLIENT), b"cccc".to_vec()),
            ])],
        ),
    ];
    for (name, pp, batches, want) in cases {
        let (_, _, got) = run(&pp, batches);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn replies_go_to_the_proxy() {
    let proxy = a(PROXY);
    let other_proxy = a("127.0.0.1:40001");
    let direct = a("127.0.0.1:50000");
    let (fake, sock, got) = run(
        &policy(&["127.0.0.1/32"], None),
        vec![vec![(proxy, v2(2, CLIENT, b"hello"), 0)]],
    );
    assert_eq!(got, vec![Some(vec![(a(CLIENT), b"hello".to_vec())])]);
    let send = |to: SocketAddr| {
        sock.try_send(&Transmit {
            destination: to,
            ecn: None,
            contents: b"reply",
            segment_size: None,
            src_ip: None,
        })
        .unwrap()
    };
    send(a(CLIENT));
    send(direct);
    // The client comes through another proxy address: replies follow it.
    fake.rx
        .lock()
        .unwrap()
        .push_back(vec![(other_proxy, v2(2, CLIENT, b"again"), 0)]);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut store = [0u8; 256];
    let mut bufs = [IoSliceMut::new(&mut store)];
    let mut meta = [RecvMeta::default()];
    assert!(matches!(
        sock.poll_recv(&mut cx, &mut bufs, &mut meta),
        Poll::Ready(Ok(1))
    ));
    send(a(CLIENT));
    assert_eq!(
        *fake.sent.lock().unwrap(),
        vec![
            (proxy, b"reply".to_vec()),
            (direct, b"reply".to_vec()),
            (other_proxy, b"reply".to_vec()),
        ]
    );
}

#[test]
fn no_session_tracking_on_quic() {
    // CoreDNS's QUIC servers wrap their socket without a session TTL: a headerless datagram
    // after a header-only one keeps the proxy's address.
    let mut pp = policy(&["127.0.0.1/32"], None);
    pp.sessions = Some(SessionTracking::new(Duration::from_secs(60), 10));
    let proxy = a(PROXY);
    let (_, _, got) = run(
        &pp,
        vec![vec![
            (proxy, v2(2, CLIENT, b""), 0),
            (proxy, b"later".to_vec(), 0),
        ]],
    );
    assert_eq!(got, vec![Some(vec![(proxy, b"later".to_vec())])]);
}

/// The policy is read at each read: a reload that adds, changes or removes it applies to the
/// next datagram. Without one, datagrams (headers and all) and replies pass as they are.
#[test]
fn the_policy_follows_the_source() {
    let slot: Arc<arc_swap::ArcSwapOption<ProxyProto>> = Default::default();
    let source: Source = {
        let slot = slot.clone();
        Arc::new(move || slot.load_full())
    };
    let fake = Arc::new(Fake::default());
    let sock = PpSocket::new(fake.clone(), source, Duration::from_secs(30));
    let proxy = a(PROXY);
    let proxied = v2(2, CLIENT, b"hello");
    let push = |bytes: &[u8]| {
        fake.rx
            .lock()
            .unwrap()
            .push_back(vec![(proxy, bytes.to_vec(), 0)])
    };
    let send = |to: &str| {
        sock.try_send(&Transmit {
            destination: a(to),
            ecn: None,
            contents: b"reply",
            segment_size: None,
            src_ip: None,
        })
        .unwrap()
    };
    // No policy: the header is QUIC's problem (as on a listener without proxyproto).
    push(&proxied);
    assert_eq!(poll_once(&sock), Some(vec![(proxy, proxied.clone())]));
    send(CLIENT);
    // A reload adds `proxyproto`: the next datagram is the client's, its reply goes via the proxy.
    slot.store(Some(Arc::new(policy(&["127.0.0.1/32"], None))));
    push(&proxied);
    assert_eq!(poll_once(&sock), Some(vec![(a(CLIENT), b"hello".to_vec())]));
    send(CLIENT);
    // Another reload moves the proxy out of `allow` under `default reject`: dropped.
    slot.store(Some(Arc::new(policy(
        &["10.0.0.0/8"],
        Some(Policy::Reject),
    ))));
    push(&proxied);
    assert_eq!(poll_once(&sock), None);
    // And one that removes it: as it came again.
    slot.store(None);
    push(&proxied);
    assert_eq!(poll_once(&sock), Some(vec![(proxy, proxied.clone())]));
    assert_eq!(
        *fake.sent.lock().unwrap(),
        vec![(a(CLIENT), b"reply".to_vec()), (proxy, b"reply".to_vec())]
    );
}
