//! DNS over HTTPS upstreams (`https://IP[:443]`, RFC 8484), as CoreDNS's forward asks them:
//! `POST /dns-query` (or `GET /dns-query?dns=…` with `doh_method GET`) with
//! `application/dns-message`, the query with ID 0 (RFC 8484 §4.1 recommends it for caching).
//!
//! One HTTP/2 connection per upstream carries every query in flight (HTTP/2 multiplexes; hyper's
//! client connection). It is dialled through the forward instance's [`Pin`] — the same
//! `source_address`/`interface`-bound TCP socket the DoT upstreams use, failing closed when the
//! interface is gone — then TLS with ALPN `h2`, SNI and certificate verification as for DoT
//! (`tls_servername`, else the IP address). One dial at a time: concurrent queries on a cold
//! upstream wait for the same connection. A connection idle for `expire` is replaced, one on
//! which a query timed out with nothing at all coming back since it was sent (a dead peer) is
//! dropped, and a query that fails on a connection it found open (the upstream closed it under
//! us) is retried once on a fresh one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::task::JoinHandle;

use super::pin::Pin;
use super::upstream::ExchangeError;
use crate::plugin::util::io_error_text;

/// CoreDNS's `doh.Path`.
pub const PATH: &str = "/dns-query";
/// CoreDNS's `doh.MimeType`.
pub const MIME: &str = "application/dns-message";

/// `doh_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    #[default]
    Post,
    Get,
}

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64
}

/// One open HTTP/2 connection.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    task: JoinHandle<()>,
    last_used: AtomicU64,
    /// When a response last came (ms since EPOCH).
    last_reply: AtomicU64,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The DoH client of one upstream.
pub struct DohClient {
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    /// `https://IP:port`: the scheme and authority of every request (CoreDNS's URL).
    base: String,
    /// `https://IP:port/dns-query`, parsed once for POST.
    post_uri: hyper::Uri,
    method: Method,
    pin: Arc<Pin>,
    dial_timeout: Duration,
    expire: Duration,
    conn: Mutex<Option<Arc<Conn>>>,
    dial: tokio::sync::Mutex<()>,
}

impl DohClient {
    /// A client for `addr`, verifying `name`. `config` is the forward instance's TLS client
    /// config; ALPN `h2` is set on a copy.
    pub fn new(
        addr: SocketAddr,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        method: Method,
        pin: Arc<Pin>,
        expire: Duration,
        dial_timeout: Duration,
    ) -> Self {
        let mut cfg = (*config).clone();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let base = format!("https://{addr}");
        let post_uri = format!("{base}{PATH}")
            .parse()
            .expect("an IP address and port make a valid URI");
        DohClient {
            addr,
            config: Arc::new(cfg),
            name,
            base,
            post_uri,
            method,
            pin,
            dial_timeout,
            expire,
            conn: Mutex::new(None),
            dial: tokio::sync::Mutex::new(()),
        }
    }

    /// One exchange: `wire` goes out with ID 0 (written into it), the reply's bytes come back.
    pub async fn exchange(
        &self,
        wire: &mut [u8],
        deadline: tokio::time::Instant,
        read_timeout: Duration,
    ) -> Result<Vec<u8>, ExchangeError> {
        wire[..2].copy_from_slice(&[0, 0]);
        let (conn, reused) = self.conn(deadline).await?;
        match self.send(&conn, wire, deadline, read_timeout).await {
            Err(ExchangeError::Closed) if reused => {
                self.forget(&conn);
                let (conn, _) = self.conn(deadline).await?;
                self.send(&conn, wire, deadline, read_timeout).await
            }
            r => r,
        }
    }

    async fn send(
        &self,
        conn: &Arc<Conn>,
        wire: &[u8],
        deadline: tokio::time::Instant,
        read_timeout: Duration,
    ) -> Result<Vec<u8>, ExchangeError> {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let req = self.request(wire)?;
        let sent = now_ms();
        let mut sender = conn.sender.clone();
        let exchange = async {
            sender.ready().await.map_err(|_| ExchangeError::Closed)?;
            let resp = sender.send_request(req).await.map_err(|e| {
                if e.is_closed() || e.is_canceled() {
                    ExchangeError::Closed
                } else {
                    ExchangeError::Io(format!("doh {}: {e}", self.addr))
                }
            })?;
            conn.last_reply.store(now_ms(), Ordering::Relaxed);
            let status = resp.status();
            if status != hyper::StatusCode::OK {
                return Err(ExchangeError::Io(format!(
                    "doh {}: HTTP status {status}",
                    self.addr
                )));
            }
            let body = Limited::new(resp.into_body(), u16::MAX as usize)
                .collect()
                .await
                .map_err(|e| ExchangeError::Io(format!("doh {}: {e}", self.addr)))?;
            Ok(body.to_bytes().to_vec())
        };
        let r = match tokio::time::timeout(read_timeout.min(left), exchange).await {
            Ok(r) => r,
            Err(_) => {
                // Nothing at all came back on the connection since this query went out: a dead
                // peer (or a link gone down). The next query dials afresh.
                if conn.last_reply.load(Ordering::Relaxed) < sent {
                    self.forget(conn);
                }
                Err(ExchangeError::Timeout)
            }
        };
        conn.last_used.store(now_ms(), Ordering::Relaxed);
        r
    }

    /// The HTTP request for `wire` (CoreDNS's `doh.NewRequest`).
    fn request(&self, wire: &[u8]) -> Result<hyper::Request<Full<Bytes>>, ExchangeError> {
        let b = match self.method {
            Method::Post => hyper::Request::post(self.post_uri.clone())
                .header(hyper::header::CONTENT_TYPE, MIME),
            Method::Get => {
                let q = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(wire);
                hyper::Request::get(format!("{}{PATH}?dns={q}", self.base))
            }
        };
        let body = match self.method {
            Method::Post => Full::new(Bytes::copy_from_slice(wire)),
            Method::Get => Full::new(Bytes::new()),
        };
        b.header(hyper::header::ACCEPT, MIME)
            .body(body)
            .map_err(|e| ExchangeError::Io(format!("doh {}: {e}", self.addr)))
    }

    /// The open connection (true: it was open already), or a fresh one.
    async fn conn(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<(Arc<Conn>, bool), ExchangeError> {
        if let Some(c) = self.usable() {
            return Ok((c, true));
        }
        // One dial at a time; whoever waited finds its connection.
        let _dialling = self.dial.lock().await;
        if let Some(c) = self.usable() {
            return Ok((c, true));
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let conn = match tokio::time::timeout(self.dial_timeout.min(left), self.connect()).await {
            Ok(r) => Arc::new(r?),
            Err(_) => return Err(ExchangeError::Timeout),
        };
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
        Ok((conn, false))
    }

    /// The current connection if it is open and was used within `expire`.
    fn usable(&self) -> Option<Arc<Conn>> {
        let mut g = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let c = g.as_ref()?;
        let idle = now_ms().saturating_sub(c.last_used.load(Ordering::Relaxed));
        if c.sender.is_closed()
            || (!self.expire.is_zero() && idle >= self.expire.as_millis() as u64)
        {
            *g = None;
            return None;
        }
        Some(c.clone())
    }

    fn forget(&self, conn: &Arc<Conn>) {
        let mut g = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if g.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *g = None;
        }
    }

    async fn connect(&self) -> Result<Conn, ExchangeError> {
        self.pin.check()?;
        let addr = self.addr;
        let tcp =
            self.pin.tcp(addr).await.map_err(|e| {
                ExchangeError::Dial(format!("dial tcp {addr}: {}", io_error_text(&e)))
            })?;
        let tls = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(self.name.clone(), tcp)
            .await
            .map_err(|e| {
                let why = match e.get_ref() {
                    Some(inner) => inner.to_string(),
                    None => io_error_text(&e),
                };
                ExchangeError::Dial(format!(
                    "tls handshake with {addr} ({}): {why}",
                    self.name.to_str()
                ))
            })?;
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| ExchangeError::Dial(format!("http2 handshake with {addr}: {e}")))?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn {
            sender,
            task,
            last_used: AtomicU64::new(now_ms()),
            last_reply: AtomicU64::new(0),
        })
    }

    /// Closes the connection (interface down, shutdown).
    pub fn close_all(&self) {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}
