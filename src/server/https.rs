//! DNS over HTTPS (RFC 8484) on an `https://` listener: HTTP/2 or HTTP/1.1 (by ALPN) over
//! TLS, or plain HTTP when the block has no `tls` (as CoreDNS serves it, for a proxy in front;
//! HTTP/1.1, and HTTP/2 with prior knowledge as `dig +http-plain` and proxies speak it). The
//! listener's accept loop, connection table and `proxyproto` are TCP's
//! ([`crate::server::tcp`]); this serves one accepted connection: HTTP/2 on the `h2` crate
//! ([`crate::server::http2`]), HTTP/1.1 on hyper.
//!
//! Limits for hostile clients: the TLS handshake and a request's head and body each get
//! `read_timeout`; a connection with no request in flight for the (adaptive) idle timeout is
//! closed, which also ends one that never finishes its headers (slowloris) or never reads its
//! replies; HTTP/2 allows [`http2::MAX_STREAMS`] streams at once per connection, and a head is
//! at most [`doh::MAX_HEAD`] octets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::watch;

use crate::dns::request::Proto;
use crate::server::conns::{ConnState, ConnTable, StreamLimits};
use crate::server::doh::{self, Ctx, Head, Peer};
use crate::server::http2;
use crate::server::router::Router;
use crate::server::tracker::Tracker;

/// ALPN protocols of an `https://` listener, as CoreDNS sets them.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads the start of a connection until it is, or cannot be, the HTTP/2 preface: HTTP/2 with
/// prior knowledge (h2c, as `dig +http-plain` and proxies speak it) or HTTP/1.1. `None` when
/// the client closes or sends nothing within `timeout`.
async fn sniff<S: AsyncRead + Unpin>(stream: &mut S, timeout: Duration) -> Option<(bool, Bytes)> {
    let read = async {
        let mut buf = [0u8; PREFACE.len()];
        let mut n = 0;
        while n < PREFACE.len() {
            let got = stream.read(&mut buf[n..]).await.ok()?;
            if got == 0 {
                return None;
            }
            n += got;
            if buf[..n] != PREFACE[..n] {
                return Some((false, Bytes::copy_from_slice(&buf[..n])));
            }
        }
        Some((true, Bytes::copy_from_slice(&buf)))
    };
    tokio::time::timeout(timeout, read).await.ok().flatten()
}

/// Serves one connection (TLS already accepted, or plain): HTTP/2 when ALPN chose it or the
/// client starts with the HTTP/2 preface, else HTTP/1.1.
#[allow(clippy::too_many_arguments)]
pub async fn serve_conn<S>(
    mut stream: S,
    h2: bool,
    src: SocketAddr,
    local: SocketAddr,
    router: Arc<ArcSwap<Router>>,
    tracker: Arc<Tracker>,
    limits: StreamLimits,
    table: Arc<ConnTable>,
    state: Arc<ConnState>,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctx = Arc::new(Ctx::new(
        router,
        tracker,
        Peer {
            src,
            local,
            proto: Proto::Https,
        },
        limits.read_timeout,
        state.clone(),
        table.clone(),
    ));
    state.active(&table);
    state.wait();
    let (h2, head) = if h2 {
        (true, Bytes::new())
    } else {
        let sniffed = tokio::select! {
            r = sniff(&mut stream, limits.read_timeout) => r,
            _ = state.closed() => None,
        };
        match sniffed {
            Some(s) => s,
            None => {
                tracing::debug!("https connection from {src}: no request in time");
                return;
            }
        }
    };
    let stream = http2::Corked::new(stream, head);
    if h2 {
        return http2::serve(stream, ctx, limits.idle_timeout, stop).await;
    }
    serve_http1(stream, ctx, limits, stop).await
}

/// HTTP/1.1 on hyper: one request at a time, each answered as it comes.
async fn serve_http1<S>(
    stream: S,
    ctx: Arc<Ctx>,
    limits: StreamLimits,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (src, state, table) = (ctx.peer.src, ctx.state.clone(), ctx.table.clone());
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
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_buf_size(doh::MAX_HEAD)
        .serve_connection(TokioIo::new(stream), svc);
    let mut conn = std::pin::pin!(conn);
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
            // a request in flight is answered, then the connection closes.
            _ = state.closed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(idle.saturating_sub(table.idle_for(&state)).max(Duration::from_millis(10))) => {
                // No request for the idle timeout: a client that never finishes its headers,
                // never reads its replies or just sits there is closed.
                if ctx.idle() && table.idle_for(&state) >= idle {
                    tracing::debug!("https connection from {src}: idle, closing");
                    return;
                }
            }
        }
    }
}

async fn handle(req: Request<Incoming>, ctx: &Ctx) -> Response<Full<Bytes>> {
    let status = match dns_reply(req, ctx).await {
        Ok(bytes) => {
            let age = doh::max_age(&bytes);
            ctx.count_ok();
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
    ctx.count(status);
    error_response(status)
}

/// An error reply as Go's `http.Error` writes CoreDNS's.
pub fn error_response(status: u16) -> Response<Full<Bytes>> {
    doh::error_head(status).map(|()| Full::new(doh::error_bytes(status)))
}

/// The DNS reply to a request, or the HTTP status to answer with.
async fn dns_reply(req: Request<Incoming>, ctx: &Ctx) -> Result<Vec<u8>, u16> {
    let (parts, body) = req.into_parts();
    let head = doh::request_head(&parts.method, &parts.uri, &parts.headers);
    let head = match head {
        Ok(h) => h,
        Err(status) => {
            // A refused request's body is read (up to DRAIN_MAX, within read_timeout) before the
            // reply: a client still sending it would see its stream reset (HTTP/2) or its
            // connection closed (HTTP/1.1) instead of the status.
            if !body.is_end_stream() {
                let _ = read_body(body, ctx.read_timeout).await;
            }
            return Err(status);
        }
    };
    let wire = match head {
        Head::Get(wire) => {
            doh::check_wire(&wire)?;
            wire
        }
        Head::Post => {
            let bytes = read_body(body, ctx.read_timeout).await?;
            doh::check_body(bytes)?
        }
    };
    doh::answer(&ctx.router, &ctx.tracker, &wire, &ctx.peer).await
}

/// A request body: 413 beyond [`doh::MAX_MESSAGE`] (after reading on up to [`doh::DRAIN_MAX`]), 400
/// when it does not arrive within `timeout` or breaks off.
async fn read_body(mut body: Incoming, timeout: Duration) -> Result<Vec<u8>, u16> {
    let read = async {
        let mut buf = Vec::new();
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return Err(doh::BAD_REQUEST);
            };
            let Some(data) = frame.data_ref() else {
                continue;
            };
            seen += data.len();
            if seen <= doh::MAX_MESSAGE {
                buf.extend_from_slice(data);
            } else if seen > doh::DRAIN_MAX {
                return Err(doh::PAYLOAD_TOO_LARGE);
            }
        }
        if seen > doh::MAX_MESSAGE {
            return Err(doh::PAYLOAD_TOO_LARGE);
        }
        Ok(buf)
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(doh::BAD_REQUEST))
}
