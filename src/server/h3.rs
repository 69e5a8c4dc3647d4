//! DNS over HTTPS over HTTP/3 on an `https3://` listener (CoreDNS 1.14's DoH3): QUIC (quinn) on
//! one UDP socket, HTTP/3 (the `h3` crate), ALPN `h3`, and the same RFC 8484 rules, statuses and
//! `max-age` as the HTTP/2 server ([`crate::server::doh`]).
//!
//! Limits, as CoreDNS's `server_https3.go`: at most [`MAX_CONNECTIONS`] QUIC connections (more
//! are refused), [`MAX_STREAMS`] concurrent request streams per connection, request heads of at
//! most [`doh::MAX_HEAD`] octets; the QUIC idle timeout is the listener's idle timeout, and a
//! request's head and body must arrive within its read timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Buf, Bytes};
use hyper::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use tokio::sync::{Semaphore, watch};

use crate::dns::request::Proto;
use crate::server::conns::StreamLimits;
use crate::server::doh::{self, Head, Peer};
use crate::server::router::Router;
use crate::server::tracker::Tracker;

/// CoreDNS's `DefaultHTTPS3MaxStreams`: concurrent request streams per QUIC connection.
pub const MAX_STREAMS: u32 = 256;
/// CoreDNS's `DefaultHTTPSMaxConnections`, which its DoH3 server uses too.
pub const MAX_CONNECTIONS: usize = 200;
/// ALPN of an `https3://` listener.
pub const ALPN: &[u8] = b"h3";

type Stream = h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// The QUIC server configuration from the listener's TLS config (ALPN set by the build).
fn server_config(
    tls: &rustls::ServerConfig,
    limits: &StreamLimits,
) -> Result<quinn::ServerConfig, String> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| format!("TLS config unusable for QUIC: {e}"))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(MAX_STREAMS.into())
        // The client's control and QPACK streams (and room for a few more).
        .max_concurrent_uni_streams(16u32.into())
        .max_idle_timeout(quinn::IdleTimeout::try_from(limits.idle_timeout).ok());
    cfg.transport_config(Arc::new(transport));
    Ok(cfg)
}

/// Serves DoH3 on `socket` until `stop` flips.
pub async fn serve(
    socket: std::net::UdpSocket,
    router: Arc<ArcSwap<Router>>,
    tracker: Arc<Tracker>,
    limits: StreamLimits,
    mut stop: watch::Receiver<bool>,
) {
    let Some(tls) = router.load().tls.clone() else {
        tracing::error!("https3 listener without TLS");
        return;
    };
    let limits = limits.with(&router.load().timeouts);
    let cfg = match server_config(&tls, &limits) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("https3 listener: {e}");
            return;
        }
    };
    // `proxyproto`: quinn reads through a socket that strips the PROXY headers, as CoreDNS.
    let proxyproto = router.load().proxyproto.clone();
    let endpoint =
        match crate::server::quic_pp::socket(socket, proxyproto.as_deref(), limits.idle_timeout)
            .and_then(|socket| {
                quinn::Endpoint::new_with_abstract_socket(
                    quinn::EndpointConfig::default(),
                    Some(cfg),
                    socket,
                    Arc::new(quinn::TokioRuntime),
                )
            }) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("https3 listener: {e}");
                return;
            }
        };
    let local = endpoint
        .local_addr()
        .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
    let conns = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut current_tls = tls;
    loop {
        let incoming = tokio::select! {
            biased;
            _ = stop.changed() => break,
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            tracing::debug!(
                "https3: {} connections open, refusing {}",
                MAX_CONNECTIONS,
                incoming.remote_address()
            );
            incoming.refuse();
            continue;
        };
        // A reload that changed the certificate applies to the next connections.
        let r = router.load();
        let limits = limits.with(&r.timeouts);
        if let Some(tls) = r.tls.as_ref()
            && !Arc::ptr_eq(tls, &current_tls)
        {
            match server_config(tls, &limits) {
                Ok(c) => {
                    endpoint.set_server_config(Some(c));
                    current_tls = tls.clone();
                }
                Err(e) => tracing::error!("https3 listener: {e}"),
            }
        }
        drop(r);
        let router = router.clone();
        let tracker = tracker.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_conn(incoming, local, router, tracker, limits).await;
        });
    }
    endpoint.close(0u32.into(), b"shutting down");
}

async fn serve_conn(
    incoming: quinn::Incoming,
    local: SocketAddr,
    router: Arc<ArcSwap<Router>>,
    tracker: Arc<Tracker>,
    limits: StreamLimits,
) {
    let src = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("https3 connection from {src}: {e}");
            return;
        }
    };
    let conn = match tokio::time::timeout(limits.read_timeout, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!("https3 handshake with {src}: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("https3 handshake with {src}: timed out");
            return;
        }
    };
    let built = h3::server::builder()
        .max_field_section_size(doh::MAX_HEAD as u64)
        .build::<_, Bytes>(h3_quinn::Connection::new(conn))
        .await;
    let mut h3c = match built {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("https3 connection from {src}: {e}");
            return;
        }
    };
    let ctx = Arc::new(Ctx {
        router,
        tracker,
        peer: Peer {
            src,
            local,
            proto: Proto::H3,
        },
        read_timeout: limits.read_timeout,
    });
    loop {
        match h3c.accept().await {
            Ok(Some(resolver)) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let got =
                        tokio::time::timeout(ctx.read_timeout, resolver.resolve_request()).await;
                    if let Ok(Ok((req, stream))) = got {
                        handle(req, stream, &ctx).await;
                    }
                });
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!("https3 connection from {src}: {e}");
                break;
            }
        }
    }
}

struct Ctx {
    router: Arc<ArcSwap<Router>>,
    tracker: Arc<Tracker>,
    peer: Peer,
    read_timeout: Duration,
}

async fn handle(req: hyper::http::Request<()>, mut stream: Stream, ctx: &Ctx) {
    let (status, body) = match dns_reply(&req, &mut stream, ctx).await {
        Ok(bytes) => (200, bytes),
        Err(status) => (status, Vec::new()),
    };
    let server = ctx.router.load().server.clone();
    crate::metrics::HTTPS3_RESPONSES
        .with_label_values(&[server.as_ref(), doh::status_label(status)])
        .inc();
    let mut resp = hyper::http::Response::builder().status(status);
    let body = if status == 200 {
        resp = resp
            .header(CONTENT_TYPE, doh::MIME)
            .header(CACHE_CONTROL, format!("max-age={}", doh::max_age(&body)));
        Bytes::from(body)
    } else {
        resp = resp
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .header("x-content-type-options", "nosniff");
        if status == doh::METHOD_NOT_ALLOWED {
            resp = resp.header(hyper::header::ALLOW, "GET, POST");
        }
        Bytes::from_static(doh::error_body(status).as_bytes())
    };
    let Ok(resp) = resp.header(CONTENT_LENGTH, body.len()).body(()) else {
        return;
    };
    let send = async {
        stream.send_response(resp).await?;
        stream.send_data(body).await?;
        stream.finish().await
    };
    if let Err(e) = send.await {
        tracing::debug!("https3 reply to {}: {e}", ctx.peer.src);
    }
}

async fn dns_reply(
    req: &hyper::http::Request<()>,
    stream: &mut Stream,
    ctx: &Ctx,
) -> Result<Vec<u8>, u16> {
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
            let read = async {
                let mut buf = Vec::new();
                while let Some(mut chunk) =
                    stream.recv_data().await.map_err(|_| doh::BAD_REQUEST)?
                {
                    if buf.len() + chunk.remaining() > doh::MAX_MESSAGE {
                        return Err(doh::PAYLOAD_TOO_LARGE);
                    }
                    while chunk.has_remaining() {
                        let c = chunk.chunk();
                        buf.extend_from_slice(c);
                        let n = c.len();
                        chunk.advance(n);
                    }
                }
                Ok(buf)
            };
            let body = tokio::time::timeout(ctx.read_timeout, read)
                .await
                .unwrap_or(Err(doh::BAD_REQUEST))?;
            doh::check_body(body)?
        }
    };
    doh::answer(&ctx.router, &ctx.tracker, &wire, &ctx.peer).await
}
