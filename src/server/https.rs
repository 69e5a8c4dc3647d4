//! DNS over HTTPS (RFC 8484) on an `https://` listener: HTTP/2 or HTTP/1.1 (by ALPN) over
//! TLS, or plain HTTP/1.1 when the block has no `tls` (as CoreDNS serves it, for a proxy in
//! front). The listener's accept loop, connection table and `proxyproto` are TCP's
//! ([`crate::server::tcp`]); this serves one accepted connection with hyper.
//!
//! Limits for hostile clients: the TLS handshake and a request's head and body each get
//! `read_timeout`; a connection with no request in flight for the (adaptive) idle timeout is
//! closed, which also ends one that never finishes its headers (slowloris) or never reads its
//! replies; HTTP/2 allows [`MAX_STREAMS`] streams at once per connection, and a head is at most
//! [`doh::MAX_HEAD`] octets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::dns::request::Proto;
use crate::server::conns::{ConnState, ConnTable};
use crate::server::doh::{self, Head, Peer};
use crate::server::router::Router;
use crate::server::tcp::StreamLimits;
use crate::server::tracker::Tracker;

/// Concurrent HTTP/2 streams per connection (CoreDNS's DoH3 default is 256; Go's HTTP/2
/// server allows 250).
pub const MAX_STREAMS: u32 = 256;

/// ALPN protocols of an `https://` listener, as CoreDNS sets them.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// CoreDNS's `DefaultHTTPSMaxConnections`: connections open at once on an `https://` listener.
pub const MAX_CONNECTIONS: usize = 200;

/// What the requests of one connection share.
struct Ctx {
    router: Arc<ArcSwap<Router>>,
    tracker: Arc<Tracker>,
    peer: Peer,
    read_timeout: Duration,
    state: Arc<ConnState>,
    table: Arc<ConnTable>,
    /// Requests being served on this connection.
    in_flight: AtomicUsize,
}

impl Ctx {
    fn begin(&self) {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.state.active(&self.table);
        }
        self.state.query_started();
    }

    fn end(&self) {
        self.state.query_done();
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.state.active(&self.table);
            self.state.wait();
        }
    }
}

/// Serves one connection (TLS already accepted, or plain): `h2` when ALPN chose HTTP/2.
#[allow(clippy::too_many_arguments)]
pub async fn serve_conn<S>(
    stream: S,
    h2: bool,
    src: SocketAddr,
    local: SocketAddr,
    router: Arc<ArcSwap<Router>>,
    tracker: Arc<Tracker>,
    limits: StreamLimits,
    table: Arc<ConnTable>,
    state: Arc<ConnState>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctx = Arc::new(Ctx {
        router,
        tracker,
        peer: Peer {
            src,
            local,
            proto: Proto::Https,
        },
        read_timeout: limits.read_timeout,
        state: state.clone(),
        table: table.clone(),
        in_flight: AtomicUsize::new(0),
    });
    state.active(&table);
    state.wait();
    let svc_ctx = ctx.clone();
    let svc = hyper::service::service_fn(move |req| {
        let ctx = svc_ctx.clone();
        async move {
            ctx.begin();
            let resp = handle(req, &ctx).await;
            ctx.end();
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let io = TokioIo::new(stream);
    let mut conn: std::pin::Pin<Box<dyn Conn>> = if h2 {
        let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new())
            .max_concurrent_streams(MAX_STREAMS)
            .max_header_list_size(doh::MAX_HEAD as u32);
        Box::pin(b.serve_connection(io, svc))
    } else {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(limits.read_timeout)
            .max_buf_size(doh::MAX_HEAD);
        Box::pin(b.serve_connection(io, svc))
    };
    let mut stopping = false;
    loop {
        let idle = table.idle_timeout(limits.idle_timeout);
        tokio::select! {
            biased;
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("https connection from {src}: {e}");
                }
                return;
            }
            // The table sheds it (only while no request is in flight) or the listener stops:
            // requests in flight are answered, then the connection closes.
            _ = state.closed(), if !stopping => {
                stopping = true;
                conn.as_mut().shutdown();
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().shutdown();
            }
            _ = tokio::time::sleep(idle.saturating_sub(table.idle_for(&state)).max(Duration::from_millis(10))) => {
                // No request for the idle timeout: a client that never finishes its headers,
                // never reads its replies or just sits there is closed.
                if ctx.in_flight.load(Ordering::Acquire) == 0
                    && table.idle_for(&state) >= idle
                {
                    tracing::debug!("https connection from {src}: idle, closing");
                    return;
                }
            }
        }
    }
}

/// A hyper server connection of either HTTP version.
trait Conn: std::future::Future<Output = hyper::Result<()>> + Send {
    fn shutdown(self: std::pin::Pin<&mut Self>);
}

impl<I, S> Conn for hyper::server::conn::http1::Connection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send,
    S: hyper::service::HttpService<Incoming> + Send,
    S::Future: Send,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shutdown(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown()
    }
}

impl<I, S> Conn for hyper::server::conn::http2::Connection<I, S, TokioExecutor>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming> + Send,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shutdown(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown()
    }
}

async fn handle(req: Request<Incoming>, ctx: &Ctx) -> Response<Full<Bytes>> {
    let status = match dns_reply(req, ctx).await {
        Ok(bytes) => {
            let age = doh::max_age(&bytes);
            count(ctx, 200);
            return Response::builder()
                .status(StatusCode::OK)
                .header(CONTENT_TYPE, doh::MIME)
                .header(CACHE_CONTROL, format!("max-age={age}"))
                .header(CONTENT_LENGTH, bytes.len())
                .body(Full::new(Bytes::from(bytes)))
                .unwrap_or_default();
        }
        Err(status) => status,
    };
    count(ctx, status);
    error_response(status)
}

fn count(ctx: &Ctx, status: u16) {
    let server = &ctx.router.load().server;
    let mut buf = itoa_status(status);
    crate::metrics::HTTPS_RESPONSES
        .with_label_values(&[server.as_ref(), buf.as_mut()])
        .inc();
}

/// A 3-digit status as text, without allocating.
fn itoa_status(status: u16) -> StatusText {
    let s = status.min(999);
    StatusText([
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ])
}

struct StatusText([u8; 3]);

impl StatusText {
    fn as_mut(&mut self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("000")
    }
}

/// An error reply as Go's `http.Error` writes CoreDNS's.
pub fn error_response(status: u16) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("x-content-type-options", "nosniff");
    if status == doh::METHOD_NOT_ALLOWED {
        b = b.header(hyper::header::ALLOW, "GET, POST");
    }
    b.body(Full::new(Bytes::from_static(doh::error_body(status).as_bytes())))
        .unwrap_or_default()
}

/// The DNS reply to a request, or the HTTP status to answer with.
async fn dns_reply(req: Request<Incoming>, ctx: &Ctx) -> Result<Vec<u8>, u16> {
    let content_length = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let head = doh::head(
        req.method().as_str(),
        req.uri().path(),
        req.uri().query(),
        req.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()),
        content_length,
    )?;
    let wire = match head {
        Head::Get(wire) => {
            doh::check_wire(&wire)?;
            wire
        }
        Head::Post => {
            // One octet past the largest message is enough to know it is too large.
            let body = Limited::new(req.into_body(), doh::MAX_MESSAGE + 1);
            let collected = tokio::time::timeout(ctx.read_timeout, body.collect()).await;
            let bytes = match collected {
                Ok(Ok(c)) => c.to_bytes(),
                Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                    return Err(doh::PAYLOAD_TOO_LARGE);
                }
                _ => return Err(doh::BAD_REQUEST),
            };
            doh::check_body(bytes.to_vec())?
        }
    };
    doh::answer(&ctx.router, &ctx.tracker, &wire, &ctx.peer).await
}
