//! The pipelined stream client: DNS over TLS (RFC 7858) and DNS over TCP (RFC 7766) to one
//! upstream, many queries in flight per connection.
//!
//! A [`StreamPool`] keeps up to `max_conns` open connections. A query takes the least loaded
//! one; when even that one has `open_above` queries in flight, another connection is dialled in
//! the background (the query does not wait for it). Only one dial runs at a time and every
//! query that needs a connection while it runs waits for that same dial, so a burst of
//! concurrent queries on a cold pool opens one connection, not one each.
//!
//! Each connection has a writer task (frames from an unbounded channel, written and flushed in
//! batches) and a reader task (length-prefixed replies dispatched by message ID to the waiting
//! query; replies come in any order). Each query gets a fresh random ID unique on its
//! connection; the caller restores the client's ID. A query that gives up (timeout, client
//! gone) removes its ID, so a late reply is dropped.
//!
//! A connection is closed when the upstream closes it or an I/O error occurs (queries still
//! waiting on it fail with [`ExchangeError::Closed`]), when it has been idle (nothing in flight)
//! for `expire`, when a query times out while nothing at all came back on it since that query
//! was sent (a dead peer), and when the pool is emptied (interface down, shutdown). A query that
//! fails with `Closed` on a connection it found already open is retried once on a freshly
//! dialled one: that is the upstream closing an idle connection under us.
//!
//! TLS: one shared `rustls::ClientConfig` per forward instance (so its session cache gives TLS
//! session resumption on every new connection), SNI = the configured server name (rustls sends
//! no SNI for an IP address name), certificate verified against that name.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin as StdPin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::metrics::ConnCounters;
use super::pin::Pin;
use super::upstream::ExchangeError;
use crate::plugin::util::io_error_text;

/// At most this many queries wait on one connection (the ID space is 65536).
const MAX_PENDING: usize = 16384;

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64
}

/// How a pool grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections per upstream.
    pub max_conns: usize,
    /// Dial another connection when the least loaded one has this many queries in flight.
    pub open_above: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_conns: 4,
            open_above: 64,
        }
    }
}

/// How a connection is established.
pub enum Connector {
    /// Plain DNS over TCP.
    Tcp,
    /// DNS over TLS with this config, verifying (and sending as SNI) `name`.
    Tls {
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    },
}

impl Connector {
    /// The `proto` metric label.
    pub fn proto(&self) -> &'static str {
        match self {
            Connector::Tcp => "tcp",
            Connector::Tls { .. } => "tcp-tls",
        }
    }

    async fn connect(&self, pin: &Pin, addr: SocketAddr) -> Result<Stream, ExchangeError> {
        pin.check()?;
        let tcp = pin
            .tcp(addr)
            .await
            .map_err(|e| ExchangeError::Dial(format!("dial tcp {addr}: {}", io_error_text(&e))))?;
        match self {
            Connector::Tcp => Ok(Box::new(tcp)),
            Connector::Tls { config, name } => {
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| {
                        ExchangeError::Dial(format!(
                            "tls handshake with {addr} ({}): {}",
                            name.to_str(),
                            tls_error_text(&e)
                        ))
                    })?;
                Ok(Box::new(tls))
            }
        }
    }
}

/// A rustls failure without the io::Error wrapping.
fn tls_error_text(e: &io::Error) -> String {
    match e.get_ref() {
        Some(inner) => inner.to_string(),
        None => io_error_text(e),
    }
}

trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncStream for T {}
type Stream = Box<dyn AsyncStream>;

/// Aborts the task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the reader, the writer and the queries of one connection share.
struct ConnShared {
    pending: Mutex<HashMap<u16, oneshot::Sender<Vec<u8>>>>,
    inflight: AtomicUsize,
    closed: AtomicBool,
    /// When a query last finished or a reply last came (ms since EPOCH).
    last_used: AtomicU64,
    /// When a reply last came (ms since EPOCH).
    last_reply: AtomicU64,
    /// Wakes the writer: the reader ended or the connection was killed.
    dead: Notify,
    /// Wakes the writer: the last query in flight finished (the idle timer starts).
    idle: Notify,
}

impl ConnShared {
    fn lock(&self) -> MutexGuard<'_, HashMap<u16, oneshot::Sender<Vec<u8>>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Marks the connection closed and fails every waiting query.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let waiting = std::mem::take(&mut *self.lock());
        drop(waiting);
        self.dead.notify_one();
    }
}

/// One open connection.
pub struct Conn {
    shared: Arc<ConnShared>,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    generation: u64,
    _writer: AbortOnDrop,
}

impl Conn {
    fn start(stream: Stream, generation: u64, expire: Duration) -> Arc<Conn> {
        let (rd, wr) = tokio::io::split(stream);
        let now = now_ms();
        let shared = Arc::new(ConnShared {
            pending: Mutex::new(HashMap::new()),
            inflight: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            last_used: AtomicU64::new(now),
            last_reply: AtomicU64::new(now),
            dead: Notify::new(),
            idle: Notify::new(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let reader = AbortOnDrop(tokio::spawn(read_loop(rd, shared.clone())));
        let writer = tokio::spawn(write_loop(wr, rx, shared.clone(), expire, reader));
        Arc::new(Conn {
            shared,
            tx,
            generation,
            _writer: AbortOnDrop(writer),
        })
    }

    pub fn inflight(&self) -> usize {
        self.shared.inflight.load(Ordering::Acquire)
    }

    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Sends `wire` (a whole DNS message; its ID is replaced) and waits up to `timeout` for the
    /// reply with the same ID. The reply carries the upstream ID.
    pub async fn query(&self, wire: &[u8], timeout: Duration) -> Result<Vec<u8>, ExchangeError> {
        if wire.len() < 12 || wire.len() > u16::MAX as usize {
            return Err(ExchangeError::Io(format!(
                "cannot send a {} byte message over a stream",
                wire.len()
            )));
        }
        let (id, rx) = {
            let mut pending = self.shared.lock();
            if pending.len() >= MAX_PENDING {
                return Err(ExchangeError::Io("too many queries in flight".to_string()));
            }
            let id = loop {
                let id: u16 = rand::random();
                if !pending.contains_key(&id) {
                    break id;
                }
            };
            let (tx, rx) = oneshot::channel();
            pending.insert(id, tx);
            (id, rx)
        };
        self.shared.inflight.fetch_add(1, Ordering::AcqRel);
        let _guard = InFlight {
            shared: &self.shared,
            id,
        };
        if self.shared.is_closed() {
            return Err(ExchangeError::Closed);
        }
        let mut frame = Vec::with_capacity(wire.len() + 2);
        frame.extend_from_slice(&(wire.len() as u16).to_be_bytes());
        frame.extend_from_slice(wire);
        frame[2..4].copy_from_slice(&id.to_be_bytes());
        let sent_at = now_ms();
        self.tx.send(frame).map_err(|_| ExchangeError::Closed)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(ExchangeError::Closed),
            Err(_) => {
                // Nothing at all came back since this query went out: the peer is gone.
                if self.shared.last_reply.load(Ordering::Acquire) < sent_at {
                    self.shared.close();
                }
                Err(ExchangeError::Timeout)
            }
        }
    }
}

/// Removes a query's ID when it finishes, however it finishes.
struct InFlight<'a> {
    shared: &'a ConnShared,
    id: u16,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.shared.lock().remove(&self.id);
        self.shared.last_used.store(now_ms(), Ordering::Release);
        if self.shared.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.idle.notify_one();
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(rd: R, shared: Arc<ConnShared>) {
    let mut rd = tokio::io::BufReader::with_capacity(16 * 1024, rd);
    let mut len = [0u8; 2];
    loop {
        if rd.read_exact(&mut len).await.is_err() {
            break;
        }
        let n = u16::from_be_bytes(len) as usize;
        if n < 12 {
            // Not a DNS message: the stream cannot be trusted any more.
            break;
        }
        let mut buf = vec![0u8; n];
        if rd.read_exact(&mut buf).await.is_err() {
            break;
        }
        let now = now_ms();
        shared.last_reply.store(now, Ordering::Release);
        shared.last_used.store(now, Ordering::Release);
        let id = u16::from_be_bytes([buf[0], buf[1]]);
        let waiter = shared.lock().remove(&id);
        if let Some(w) = waiter {
            let _ = w.send(buf);
        }
    }
    shared.close();
}

async fn write_loop<W: AsyncWrite + Unpin>(
    wr: W,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    shared: Arc<ConnShared>,
    expire: Duration,
    reader: AbortOnDrop,
) {
    let mut wr = tokio::io::BufWriter::with_capacity(16 * 1024, wr);
    let mut graceful = false;
    loop {
        let idle_timer: StdPin<Box<dyn std::future::Future<Output = ()> + Send>> =
            if shared.inflight.load(Ordering::Acquire) == 0 {
                let last = shared.last_used.load(Ordering::Acquire);
                let at = *EPOCH + Duration::from_millis(last) + expire;
                Box::pin(tokio::time::sleep_until(at.into()))
            } else {
                Box::pin(std::future::pending())
            };
        tokio::select! {
            biased;
            _ = shared.dead.notified() => break,
            frame = rx.recv() => match frame {
                Some(frame) => {
                    if wr.write_all(&frame).await.is_err() {
                        break;
                    }
                    let mut ok = true;
                    while let Ok(frame) = rx.try_recv() {
                        if wr.write_all(&frame).await.is_err() {
                            ok = false;
                            break;
                        }
                    }
                    if !ok || wr.flush().await.is_err() {
                        break;
                    }
                }
                None => {
                    graceful = true;
                    break;
                }
            },
            _ = shared.idle.notified() => {}
            _ = idle_timer => {
                let idle_for = now_ms().saturating_sub(shared.last_used.load(Ordering::Acquire));
                if shared.inflight.load(Ordering::Acquire) == 0
                    && Duration::from_millis(idle_for) >= expire
                {
                    graceful = true;
                    break;
                }
            }
        }
    }
    rx.close();
    shared.close();
    if graceful {
        let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
    }
    drop(reader);
}

type Dial = Shared<BoxFuture<'static, Result<Arc<Conn>, ExchangeError>>>;

struct PoolState {
    conns: Vec<Arc<Conn>>,
    dialing: Option<Dial>,
}

struct PoolInner {
    addr: SocketAddr,
    connector: Connector,
    pin: Arc<Pin>,
    expire: Duration,
    dial_timeout: Duration,
    limits: Limits,
    counters: ConnCounters,
    state: Mutex<PoolState>,
    stopped: AtomicBool,
    dials: AtomicU64,
}

impl PoolInner {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The open connections to one upstream over one stream transport.
pub struct StreamPool {
    inner: Arc<PoolInner>,
}

impl StreamPool {
    pub fn new(
        addr: SocketAddr,
        connector: Connector,
        pin: Arc<Pin>,
        to: &str,
        expire: Duration,
        dial_timeout: Duration,
        limits: Limits,
    ) -> Self {
        let counters = ConnCounters::new(to, connector.proto());
        StreamPool {
            inner: Arc::new(PoolInner {
                addr,
                connector,
                pin,
                expire,
                dial_timeout,
                limits,
                counters,
                state: Mutex::new(PoolState {
                    conns: Vec::new(),
                    dialing: None,
                }),
                stopped: AtomicBool::new(false),
                dials: AtomicU64::new(0),
            }),
        }
    }

    /// Open connections right now.
    pub fn open_conns(&self) -> usize {
        let generation = self.inner.pin.generation();
        self.inner
            .lock()
            .conns
            .iter()
            .filter(|c| !c.is_closed() && c.generation == generation)
            .count()
    }

    /// Connections dialled so far.
    pub fn dials(&self) -> u64 {
        self.inner.dials.load(Ordering::Relaxed)
    }

    /// Closes every connection (queries on them fail); later queries dial anew.
    pub fn close_all(&self) {
        let conns = std::mem::take(&mut self.inner.lock().conns);
        for c in &conns {
            c.shared.close();
        }
    }

    /// Closes everything for good.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::Release);
        self.close_all();
    }

    /// One exchange: `wire` out, the reply (with the upstream's ID) back, within `deadline` and
    /// at most `read_timeout` of waiting for the reply. Retried once on a fresh connection when
    /// a connection found open turns out closed.
    pub async fn exchange(
        &self,
        wire: &[u8],
        deadline: tokio::time::Instant,
        read_timeout: Duration,
    ) -> Result<Vec<u8>, ExchangeError> {
        let mut fresh_only = false;
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(ExchangeError::Timeout);
            }
            let (conn, reused) = tokio::time::timeout_at(deadline, self.acquire(fresh_only))
                .await
                .map_err(|_| ExchangeError::Timeout)??;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match conn.query(wire, read_timeout.min(left)).await {
                Err(ExchangeError::Closed) if reused && !fresh_only => {
                    fresh_only = true;
                }
                other => return other,
            }
        }
    }

    /// A connection to send on, and whether it was open already.
    async fn acquire(&self, fresh_only: bool) -> Result<(Arc<Conn>, bool), ExchangeError> {
        let inner = &self.inner;
        let dial = {
            let generation = inner.pin.generation();
            let mut st = inner.lock();
            st.conns
                .retain(|c| !c.is_closed() && c.generation == generation);
            let best = if fresh_only {
                None
            } else {
                st.conns.iter().min_by_key(|c| c.inflight()).cloned()
            };
            if let Some(best) = best {
                if best.inflight() >= inner.limits.open_above
                    && st.conns.len() < inner.limits.max_conns
                    && st.dialing.is_none()
                {
                    st.dialing = Some(start_dial(inner));
                }
                inner.counters.hits.inc();
                return Ok((best, true));
            }
            match &st.dialing {
                Some(d) => {
                    inner.counters.hits.inc();
                    d.clone()
                }
                None => {
                    inner.counters.misses.inc();
                    let d = start_dial(inner);
                    st.dialing = Some(d.clone());
                    d
                }
            }
        };
        Ok((dial.await?, false))
    }
}

impl Drop for StreamPool {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Dials a connection in its own task (it completes even when the query that started it gives
/// up) and adds it to the pool. Called with the pool state locked.
fn start_dial(inner: &Arc<PoolInner>) -> Dial {
    let pool = inner.clone();
    inner.dials.fetch_add(1, Ordering::Relaxed);
    let task = tokio::spawn(async move {
        let res = match tokio::time::timeout(
            pool.dial_timeout,
            pool.connector.connect(&pool.pin, pool.addr),
        )
        .await
        {
            Ok(Ok(stream)) => Ok(Conn::start(stream, pool.pin.generation(), pool.expire)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ExchangeError::Dial(format!(
                "dial {}: i/o timeout",
                pool.addr
            ))),
        };
        let mut st = pool.lock();
        st.dialing = None;
        if let Ok(c) = &res
            && !pool.stopped.load(Ordering::Acquire)
        {
            st.conns.push(c.clone());
        }
        res
    });
    async move {
        task.await
            .unwrap_or_else(|_| Err(ExchangeError::Io("transport stopped".to_string())))
    }
    .boxed()
    .shared()
}

/// The client side of TLS: trust `roots`, present `client` (chain and key) if given. TLS 1.2
/// and 1.3, ring, default session resumption (in-memory cache of 256 sessions).
pub fn client_config(
    roots: rustls::RootCertStore,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, String> {
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("could not set up TLS: {e}"))?
            .with_root_certificates(roots);
    let config = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("could not load TLS cert: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
