//! An in-process DNS upstream for forwarder tests: DNS over TLS, plus plain DNS over TCP and UDP on
//! the same port number, with every knob a test needs to observe or misbehave.
//!
//! It runs on its own tokio runtime in a background thread. Its listeners are bound by
//! [`TlsEcho::start`] in the calling thread, so starting it inside
//! [`super::netns::in_netns`] puts it in that network namespace.
//!
//! - TLS: a certificate for [`TlsEchoOpts::server_name`] signed by a fresh CA ([`TlsEcho::ca_pem`]).
//!   A rustls `ResolvesServerCert` records the SNI of every ClientHello, failed handshakes included
//!   ([`TlsEcho::hello_snis`]); [`TlsEcho::snis`] has the SNI of every completed handshake
//!   (resumed ones too). Resumption (TLS 1.3 tickets, TLS 1.2 session IDs) is on and counted.
//! - A TCP connection whose first byte is not a TLS handshake record (0x16) is served as plain
//!   DNS over TCP; UDP is served on the same port when [`TlsEchoOpts::udp`] is set (default).
//! - Answers come from a handler (`&Message` query → reply [`Message`]; the reply's ID is forced to
//!   the query's), [`default_answer`] unless set. A per-name delay ([`TlsEcho::set_delay`]) makes
//!   one name slow. Queries on a connection are answered concurrently, each as soon as it is ready:
//!   pipelined queries get out-of-order replies when an earlier one is slower.
//! - [`Behavior`] switches it to misbehave (hang, stall the handshake, close, garbage, wrong ID,
//!   wrong question, truncate over UDP); it applies to queries (and connections) that arrive after
//!   the switch.
//! - Connections idle for [`TlsEchoOpts::idle_timeout`] (no query, no reply pending) are closed,
//!   and [`TlsEchoOpts::max_queries_per_conn`] closes a connection after that many queries (once
//!   their replies are written). [`TlsEcho::close_connections`] drops every open connection now.
//! - Counters: connections accepted, TLS handshakes (resumed, failed), open connections, queries
//!   (with name, type, ID, transport and connection), the most queries outstanding at once on one
//!   connection ([`TlsEcho::max_in_flight`], > 1 proves the client pipelines), idle closes.
//!
//! [`DotClient`] is a small blocking DoT client for tests that talk to it (or to unbound) directly.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::certs::{ServerCert, TestCa};

/// Query → reply. The reply's ID is set to the query's afterwards.
pub type Handler = Arc<dyn Fn(&Message) -> Message + Send + Sync>;

/// How the server (mis)behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    /// Answer with the handler (after the name's delay, if any).
    Answer,
    /// Read queries (they are counted) but never answer; connections stay open.
    Hang,
    /// Accept TCP connections but never read from them (the TLS handshake never completes).
    StallHandshake,
    /// Accept TCP connections and close them at once.
    CloseOnAccept,
    /// Close the connection when a query arrives, without answering (UDP: no answer).
    CloseOnQuery,
    /// Reply with bytes that are not a DNS message.
    Garbage,
    /// Reply with the query's ID + 1.
    WrongId,
    /// Reply for another question (`wrong-question.example.` same type).
    WrongQuestion,
    /// UDP: an empty reply with TC set; TCP and TLS answer normally.
    Truncate,
}

/// The transport a query arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

/// One query the server received.
#[derive(Clone, Debug)]
pub struct SeenQuery {
    /// Connection number (1, 2, ... in accept order); 0 for UDP.
    pub conn: u64,
    pub transport: Transport,
    pub id: u16,
    /// Lower-case, fully qualified (`www.example.test.`).
    pub name: String,
    pub qtype: RecordType,
    pub rd: bool,
    pub at: Instant,
}

pub struct TlsEchoOpts {
    /// Listen address (default 127.0.0.1:0).
    pub addr: SocketAddr,
    /// Name the certificate is issued for (default `dns.example.test`).
    pub server_name: String,
    pub alt_names: Vec<String>,
    pub handler: Handler,
    /// Also serve plain DNS over UDP on the same port (default true).
    pub udp: bool,
    pub idle_timeout: Option<Duration>,
    pub max_queries_per_conn: Option<u64>,
}

impl Default for TlsEchoOpts {
    fn default() -> Self {
        TlsEchoOpts {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            server_name: "dns.example.test".into(),
            alt_names: vec![],
            handler: Arc::new(default_answer),
            udp: true,
            idle_timeout: None,
            max_queries_per_conn: None,
        }
    }
}

impl TlsEchoOpts {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
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
    pub fn handler(mut self, h: impl Fn(&Message) -> Message + Send + Sync + 'static) -> Self {
        self.handler = Arc::new(h);
        self
    }
    pub fn udp(mut self, on: bool) -> Self {
        self.udp = on;
        self
    }
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = Some(d);
        self
    }
    pub fn max_queries_per_conn(mut self, n: u64) -> Self {
        self.max_queries_per_conn = Some(n);
        self
    }
}

struct Shared {
    behavior: Mutex<Behavior>,
    handler: Mutex<Handler>,
    delays: Mutex<HashMap<String, Duration>>,
    snis: Mutex<Vec<Option<String>>>,
    seen: Mutex<Vec<SeenQuery>>,
    connections: AtomicU64,
    handshakes: AtomicU64,
    resumed: AtomicU64,
    tls_failures: AtomicU64,
    open: AtomicI64,
    idle_closed: AtomicU64,
    max_in_flight: AtomicU64,
    close_all: watch::Sender<u64>,
    idle_timeout: Option<Duration>,
    max_queries_per_conn: Option<u64>,
}

/// Records the SNI of every ClientHello, always presents the one certificate.
#[derive(Debug)]
struct SniRecorder {
    key: Arc<CertifiedKey>,
    snis: Arc<Mutex<Vec<Option<String>>>>,
}

impl ResolvesServerCert for SniRecorder {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.snis
            .lock()
            .unwrap()
            .push(client_hello.server_name().map(str::to_string));
        Some(self.key.clone())
    }
}

/// The running server. Stopped on drop.
pub struct TlsEcho {
    pub addr: SocketAddr,
    pub server_name: String,
    /// The CA that signed the server certificate, as a PEM file (in [`TlsEcho::dir`]).
    pub ca_pem: PathBuf,
    pub ca: TestCa,
    pub cert: ServerCert,
    pub dir: tempfile::TempDir,
    shared: Arc<Shared>,
    hello_snis: Arc<Mutex<Vec<Option<String>>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsEcho {
    pub fn start(opts: TlsEchoOpts) -> TlsEcho {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new("exdns tlsecho test CA");
        let mut names = vec![opts.server_name.as_str()];
        names.extend(opts.alt_names.iter().map(|s| s.as_str()));
        let cert = ca.issue(&names);
        let ca_pem = ca.write(dir.path(), "ca.pem");
        cert.write(dir.path(), "server");

        let hello_snis = Arc::new(Mutex::new(Vec::new()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SniRecorder {
                key: cert.certified_key(),
                snis: hello_snis.clone(),
            }));
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(1024);
        let config = Arc::new(config);

        // Bind here (in the caller's network namespace), TCP and UDP on one port number.
        let (tcp, udp) = bind_pair(opts.addr, opts.udp);
        let addr = tcp.local_addr().unwrap();
        let (close_all, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            behavior: Mutex::new(Behavior::Answer),
            handler: Mutex::new(opts.handler),
            delays: Mutex::new(HashMap::new()),
            snis: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            connections: AtomicU64::new(0),
            handshakes: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
            tls_failures: AtomicU64::new(0),
            open: AtomicI64::new(0),
            idle_closed: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            close_all,
            idle_timeout: opts.idle_timeout,
            max_queries_per_conn: opts.max_queries_per_conn,
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tlsecho".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tlsecho runtime");
                rt.block_on(async move {
                    tcp.set_nonblocking(true).unwrap();
                    let listener = tokio::net::TcpListener::from_std(tcp).expect("listener");
                    let udp = udp.map(|u| {
                        u.set_nonblocking(true).unwrap();
                        Arc::new(tokio::net::UdpSocket::from_std(u).expect("udp socket"))
                    });
                    let _ = ready_tx.send(());
                    if let Some(u) = udp {
                        tokio::spawn(serve_udp(u, sh.clone()));
                    }
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    let accept = async {
                        loop {
                            let Ok((stream, _)) = listener.accept().await else {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                continue;
                            };
                            let conn = sh.connections.fetch_add(1, Ordering::SeqCst) + 1;
                            tokio::spawn(serve_tcp(stream, acceptor.clone(), sh.clone(), conn));
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stop_rx => {}
                    }
                });
                // Dropping the runtime cancels every connection task: sockets close.
            })
            .expect("spawn tlsecho thread");
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("tlsecho did not start");
        tracing::info!(%addr, "tlsecho listening");
        TlsEcho {
            addr,
            server_name: opts.server_name,
            ca_pem,
            ca,
            cert,
            dir,
            shared,
            hello_snis,
            shutdown: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Stops the server: listeners and all connections close. Idempotent.
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn set_behavior(&self, b: Behavior) {
        *self.shared.behavior.lock().unwrap() = b;
    }

    pub fn behavior(&self) -> Behavior {
        *self.shared.behavior.lock().unwrap()
    }

    pub fn set_handler(&self, h: impl Fn(&Message) -> Message + Send + Sync + 'static) {
        *self.shared.handler.lock().unwrap() = Arc::new(h);
    }

    /// Answers for `name` (any case, with or without the trailing dot) wait `delay` first.
    pub fn set_delay(&self, name: &str, delay: Duration) {
        self.shared.delays.lock().unwrap().insert(norm(name), delay);
    }

    pub fn clear_delays(&self) {
        self.shared.delays.lock().unwrap().clear();
    }

    /// Closes every open TCP/TLS connection now (like a server restart); the listener stays.
    pub fn close_connections(&self) {
        self.shared.close_all.send_modify(|g| *g += 1);
    }

    /// SNI of every ClientHello (`None`: no SNI sent), failed handshakes included, in order.
    pub fn hello_snis(&self) -> Vec<Option<String>> {
        self.hello_snis.lock().unwrap().clone()
    }

    /// SNI of every completed TLS handshake, resumed ones included, in order.
    pub fn snis(&self) -> Vec<Option<String>> {
        self.shared.snis.lock().unwrap().clone()
    }

    /// TCP connections accepted (TLS and plain).
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// TCP connections open now.
    pub fn open_connections(&self) -> i64 {
        self.shared.open.load(Ordering::SeqCst)
    }

    pub fn tls_handshakes(&self) -> u64 {
        self.shared.handshakes.load(Ordering::SeqCst)
    }

    /// Handshakes that resumed an earlier session.
    pub fn tls_resumed(&self) -> u64 {
        self.shared.resumed.load(Ordering::SeqCst)
    }

    /// Handshakes that failed (e.g. the client rejected the certificate).
    pub fn tls_failures(&self) -> u64 {
        self.shared.tls_failures.load(Ordering::SeqCst)
    }

    /// Connections closed for being idle.
    pub fn idle_closed(&self) -> u64 {
        self.shared.idle_closed.load(Ordering::SeqCst)
    }

    /// Most queries outstanding at the same time on one connection.
    pub fn max_in_flight(&self) -> u64 {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Every query received, in arrival order.
    pub fn seen(&self) -> Vec<SeenQuery> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn num_queries(&self) -> usize {
        self.shared.seen.lock().unwrap().len()
    }

    /// Queries received for `name` (any type).
    pub fn queries_for(&self, name: &str) -> usize {
        let n = norm(name);
        self.shared
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|q| q.name == n)
            .count()
    }

    /// Waits until at least `n` queries arrived; false on timeout.
    pub fn wait_queries(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.num_queries() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.num_queries() >= n
    }

    /// A root store trusting this server's CA.
    pub fn root_store(&self) -> rustls::RootCertStore {
        self.ca.root_store()
    }

    /// A blocking DoT client to this server with SNI `sni` (trusting its CA).
    pub fn client(&self, sni: &str) -> std::io::Result<DotClient> {
        DotClient::connect(self.addr, sni, &client_config(self.root_store()))
    }
}

impl Drop for TlsEcho {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Lower-case fully-qualified form of `name`.
fn norm(name: &str) -> String {
    let mut n = name.to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

fn bind_pair(addr: SocketAddr, udp: bool) -> (std::net::TcpListener, Option<std::net::UdpSocket>) {
    for _ in 0..50 {
        let t = std::net::TcpListener::bind(addr)
            .unwrap_or_else(|e| panic!("tlsecho bind tcp {addr}: {e}"));
        if !udp {
            return (t, None);
        }
        let port = t.local_addr().unwrap().port();
        match std::net::UdpSocket::bind(SocketAddr::new(addr.ip(), port)) {
            Ok(u) => return (t, Some(u)),
            Err(e) if addr.port() != 0 => panic!("tlsecho bind udp {addr}: {e}"),
            Err(_) => continue,
        }
    }
    panic!(
        "tlsecho: no port free for both TCP and UDP on {}",
        addr.ip()
    );
}

fn record(sh: &Shared, q: &Message, conn: u64, transport: Transport) {
    let (name, qtype) = q
        .queries
        .first()
        .map(|q| (q.name().to_ascii().to_ascii_lowercase(), q.query_type()))
        .unwrap_or_else(|| (String::new(), RecordType::NULL));
    sh.seen.lock().unwrap().push(SeenQuery {
        conn,
        transport,
        id: q.metadata.id,
        name: norm(&name),
        qtype,
        rd: q.metadata.recursion_desired,
        at: Instant::now(),
    });
}

fn delay_for(sh: &Shared, q: &Message) -> Option<Duration> {
    let name = q.queries.first()?.name().to_ascii();
    sh.delays.lock().unwrap().get(&norm(&name)).copied()
}

/// The bytes to send back for `q` under behaviour `b` (None: no reply).
fn respond(sh: &Shared, q: &Message, b: Behavior, transport: Transport) -> Option<Vec<u8>> {
    match b {
        Behavior::Hang | Behavior::CloseOnQuery | Behavior::StallHandshake => return None,
        Behavior::Garbage => return Some(b"\x12\x34garbage".to_vec()),
        _ => {}
    }
    if b == Behavior::Truncate && transport == Transport::Udp {
        let mut r = reply_to(q);
        r.metadata.truncation = true;
        return r.to_vec().ok();
    }
    let handler = sh.handler.lock().unwrap().clone();
    let mut r = handler(q);
    r.metadata.id = q.metadata.id;
    match b {
        Behavior::WrongId => r.metadata.id = q.metadata.id.wrapping_add(1),
        Behavior::WrongQuestion => {
            let qt = q
                .queries
                .first()
                .map(|q| q.query_type())
                .unwrap_or(RecordType::A);
            r.queries = vec![hickory_proto::op::Query::query(
                Name::from_ascii("wrong-question.example.").unwrap(),
                qt,
            )];
        }
        _ => {}
    }
    match r.to_vec() {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!("tlsecho: cannot encode reply: {e}");
            None
        }
    }
}

async fn serve_udp(sock: Arc<tokio::net::UdpSocket>, sh: Arc<Shared>) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(q) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        record(&sh, &q, 0, Transport::Udp);
        let b = *sh.behavior.lock().unwrap();
        let delay = delay_for(&sh, &q);
        let (sock, sh) = (sock.clone(), sh.clone());
        tokio::spawn(async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            if let Some(out) = respond(&sh, &q, b, Transport::Udp) {
                let _ = sock.send_to(&out, peer).await;
            }
        });
    }
}

async fn serve_tcp(
    stream: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    sh: Arc<Shared>,
    conn: u64,
) {
    let _ = stream.set_nodelay(true);
    let mut close_rx = sh.close_all.subscribe();
    let behavior = *sh.behavior.lock().unwrap();
    match behavior {
        Behavior::CloseOnAccept => return,
        Behavior::StallHandshake => {
            // Hold the connection without reading until told to close (or shutdown).
            let _ = close_rx.changed().await;
            drop(stream);
            return;
        }
        _ => {}
    }
    let mut first = [0u8; 1];
    let peeked = tokio::select! {
        r = stream.peek(&mut first) => r,
        _ = close_rx.changed() => return,
    };
    match peeked {
        Ok(1) if first[0] == 0x16 => {
            let hs = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await;
            match hs {
                Ok(Ok(tls)) => {
                    let (_, c) = tls.get_ref();
                    sh.handshakes.fetch_add(1, Ordering::SeqCst);
                    if c.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                        sh.resumed.fetch_add(1, Ordering::SeqCst);
                    }
                    sh.snis
                        .lock()
                        .unwrap()
                        .push(c.server_name().map(str::to_string));
                    serve_stream(tls, sh, conn, Transport::Tls, close_rx).await;
                }
                _ => {
                    sh.tls_failures.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        Ok(n) if n > 0 => serve_stream(stream, sh, conn, Transport::Tcp, close_rx).await,
        _ => {}
    }
}

struct OpenGuard(Arc<Shared>);
impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len).await?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn serve_stream<S>(
    s: S,
    sh: Arc<Shared>,
    conn: u64,
    transport: Transport,
    mut close_rx: watch::Receiver<u64>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    sh.open.fetch_add(1, Ordering::SeqCst);
    let _guard = OpenGuard(sh.clone());
    let (mut rd, mut wr) = tokio::io::split(s);

    // Reader task: frames in, so the select below never cancels a half-read frame.
    let (frames_tx, mut frames_rx) = mpsc::channel::<Vec<u8>>(64);
    let reader = tokio::spawn(async move {
        while let Ok(f) = read_frame(&mut rd).await {
            if frames_tx.send(f).await.is_err() {
                break;
            }
        }
    });
    // Writer task: replies out, in the order they become ready.
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(b) = out_rx.recv().await {
            let mut v = Vec::with_capacity(b.len() + 2);
            v.extend_from_slice(&(b.len() as u16).to_be_bytes());
            v.extend_from_slice(&b);
            if wr.write_all(&v).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });

    let in_flight = Arc::new(AtomicU64::new(0));
    let last_activity = Arc::new(Mutex::new(Instant::now()));
    let mut count = 0u64;
    let mut abort = false;
    loop {
        let idle_at = sh.idle_timeout.map(|d| *last_activity.lock().unwrap() + d);
        let idle = async move {
            match idle_at {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            f = frames_rx.recv() => {
                let Some(bytes) = f else { break };
                *last_activity.lock().unwrap() = Instant::now();
                let Ok(q) = Message::from_vec(&bytes) else { continue };
                record(&sh, &q, conn, transport);
                count += 1;
                let b = *sh.behavior.lock().unwrap();
                if b == Behavior::CloseOnQuery {
                    abort = true;
                    break;
                }
                if b != Behavior::Hang {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    sh.max_in_flight.fetch_max(now, Ordering::SeqCst);
                    let delay = delay_for(&sh, &q);
                    let (sh2, tx, inf, la) =
                        (sh.clone(), out_tx.clone(), in_flight.clone(), last_activity.clone());
                    tokio::spawn(async move {
                        if let Some(d) = delay {
                            tokio::time::sleep(d).await;
                        }
                        if let Some(out) = respond(&sh2, &q, b, transport) {
                            let _ = tx.send(out);
                        }
                        *la.lock().unwrap() = Instant::now();
                        inf.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                if sh.max_queries_per_conn.is_some_and(|m| count >= m) {
                    break;
                }
            }
            _ = idle => {
                let quiet = last_activity.lock().unwrap().elapsed();
                if in_flight.load(Ordering::SeqCst) == 0
                    && sh.idle_timeout.is_some_and(|d| quiet >= d)
                {
                    sh.idle_closed.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                if in_flight.load(Ordering::SeqCst) > 0 {
                    // Check again shortly: a reply is still being prepared.
                    *last_activity.lock().unwrap() = Instant::now();
                }
            }
            _ = close_rx.changed() => {
                abort = true;
                break;
            }
        }
    }
    reader.abort();
    drop(out_tx);
    if abort {
        writer.abort();
    } else {
        // Let the replies still being prepared go out (they hold senders), then close.
        let _ = writer.await;
    }
}

/// A reply skeleton for `q`: same ID, opcode, question, RD and CD; RA set; an OPT record (1232)
/// when the query had one.
pub fn reply_to(q: &Message) -> Message {
    let mut r = Message::response(q.metadata.id, q.metadata.op_code);
    r.metadata.message_type = MessageType::Response;
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.metadata.checking_disabled = q.metadata.checking_disabled;
    r.metadata.recursion_available = true;
    r.queries = q.queries.clone();
    if q.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        r.edns = Some(e);
    }
    r
}

pub fn a_record(name: &str, ip: Ipv4Addr, ttl: u32) -> Record {
    Record::from_rdata(Name::from_ascii(name).unwrap(), ttl, RData::A(A(ip)))
}

/// An SOA for `zone`: `ns.ZONE hostmaster.ZONE 1 3600 900 604800 300`.
pub fn soa_record(zone: &Name, ttl: u32) -> Record {
    let mname = Name::from_ascii("ns").unwrap().append_domain(zone).unwrap();
    let rname = Name::from_ascii("hostmaster")
        .unwrap()
        .append_domain(zone)
        .unwrap();
    Record::from_rdata(
        zone.clone(),
        ttl,
        RData::SOA(SOA::new(mname, rname, 1, 3600, 900, 604800, 300)),
    )
}

/// The default handler. Every reply has AD and RA set (a validating upstream's answer):
/// - `nxdomain.*` → NXDOMAIN, the parent zone's SOA (TTL 300) in the authority section;
/// - `servfail.*` → SERVFAIL; `refused.*` → REFUSED;
/// - A → `NAME 300 IN A 192.0.2.1`; TXT → `NAME 300 IN TXT "NAME"` (the query name, lower case);
/// - other types → NODATA (NOERROR, no answer) with the parent zone's SOA in the authority.
pub fn default_answer(q: &Message) -> Message {
    let mut r = reply_to(q);
    r.metadata.authentic_data = true;
    let Some(query) = q.queries.first() else {
        r.metadata.response_code = ResponseCode::FormErr;
        return r;
    };
    let name = query.name().clone();
    let lname = name.to_ascii().to_ascii_lowercase();
    let parent = name.base_name();
    if lname.starts_with("nxdomain.") {
        r.metadata.response_code = ResponseCode::NXDomain;
        r.authorities.push(soa_record(&parent, 300));
        return r;
    }
    if lname.starts_with("servfail.") {
        r.metadata.response_code = ResponseCode::ServFail;
        return r;
    }
    if lname.starts_with("refused.") {
        r.metadata.response_code = ResponseCode::Refused;
        return r;
    }
    match query.query_type() {
        RecordType::A => r.answers.push(Record::from_rdata(
            name,
            300,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        )),
        RecordType::TXT => r.answers.push(Record::from_rdata(
            name,
            300,
            RData::TXT(TXT::new(vec![lname])),
        )),
        _ => r.authorities.push(soa_record(&parent, 300)),
    }
    r
}

/// A rustls client configuration trusting `roots` (ring provider, session cache kept in the
/// config: connecting twice with the same config resumes the session).
pub fn client_config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A root store with the certificates in a PEM file.
pub fn roots_from_pem(path: &std::path::Path) -> rustls::RootCertStore {
    let pem = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.expect("certificate")).expect("add root");
    }
    roots
}

/// A blocking DNS-over-TLS client (5 s read timeout). `sni` is the name sent in the ClientHello and
/// verified against the certificate; an IP address sends no SNI and verifies the IP SAN.
pub struct DotClient {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl DotClient {
    /// Connects and completes the handshake (an untrusted or mismatched certificate is an error
    /// here).
    pub fn connect(
        addr: SocketAddr,
        sni: &str,
        config: &Arc<rustls::ClientConfig>,
    ) -> std::io::Result<DotClient> {
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        Self::from_tcp(tcp, sni, config)
    }

    /// Runs the TLS handshake over an already connected socket (e.g. one bound to an interface
    /// with socket2 before connecting).
    pub fn from_tcp(
        tcp: TcpStream,
        sni: &str,
        config: &Arc<rustls::ClientConfig>,
    ) -> std::io::Result<DotClient> {
        let name = rustls::pki_types::ServerName::try_from(sni.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let conn =
            rustls::ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
        tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(5)))?;
        tcp.set_nodelay(true)?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(DotClient { stream })
    }

    pub fn set_read_timeout(&self, d: Duration) {
        let _ = self.stream.sock.set_read_timeout(Some(d));
    }

    /// Whether this connection resumed an earlier session.
    pub fn resumed(&self) -> bool {
        self.stream.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    pub fn send(&mut self, m: &Message) -> std::io::Result<()> {
        self.send_raw(&m.to_vec().map_err(std::io::Error::other)?)
    }

    /// Sends one length-prefixed frame.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut v = (bytes.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(bytes);
        self.stream.write_all(&v)?;
        self.stream.flush()
    }

    /// Reads one framed reply.
    pub fn recv_raw(&mut self) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 2];
        self.stream.read_exact(&mut len)?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf)?;
        Ok(buf)
    }

    pub fn recv(&mut self) -> std::io::Result<Message> {
        let b = self.recv_raw()?;
        Message::from_vec(&b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Sends `m` and reads the next reply.
    pub fn query(&mut self, m: &Message) -> std::io::Result<Message> {
        self.send(m)?;
        self.recv()
    }
}
