//! DNS over HTTPS over HTTP/3 on an `https3://` listener (CoreDNS 1.14's DoH3): QUIC (quinn) on
//! one UDP socket, HTTP/3 (the `h3` crate), ALPN `h3`, and the same RFC 8484 rules, statuses and
//! `max-age` as the HTTP/2 server ([`crate::server::doh`]).
//!
//! Limits, as CoreDNS's `server_https3.go`, from the listener's `https3 { max_streams;
//! max_connections }` ([`crate::plugin::https3`]): at most `max_connections` QUIC connections
//! (more are refused; 0: no limit), `max_streams` concurrent request streams per connection
//! (QUIC's stream credit; 0: quinn's default), request heads of at most [`doh::MAX_HEAD`]
//! octets; the QUIC idle timeout is the listener's idle timeout, and a request's head and body
//! must arrive within its read timeout. A reload's new limits apply to new connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Buf, Bytes};
use hyper::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use tokio::sync::watch;

use crate::dns::request::Proto;
use crate::server::conns::StreamLimits;
use crate::server::doh::{self, Head, Peer};
use crate::server::router::Router;
use crate::server::tracker::Tracker;

/// ALPN of an `https3://` listener.
pub const ALPN: &[u8] = b"h3";

type Stream = h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// The QUIC server configuration from the listener's TLS config (ALPN set by the build) and
/// `https3 { max_streams }`.
fn server_config(
    tls: &rustls::ServerConfig,
    limits: &StreamLimits,
    max_streams: usize,
) -> Result<quinn::ServerConfig, String> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| format!("TLS config unusable for QUIC: {e}"))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    // 0: quinn's default credit.
    if max_streams > 0 {
        transport.max_concurrent_bidi_streams(
            quinn::VarInt::from_u64(max_streams as u64).unwrap_or(quinn::VarInt::MAX),
        );
    }
    transport
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
    let first = router.load_full();
    let mut cfg = match server_config(
        &tls,
        &limits.with(&first.timeouts),
        first.https3.max_streams(),
    ) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!("https3 listener: {e}");
            return;
        }
    };
    // `proxyproto`: quinn reads through a socket that strips the PROXY headers, as CoreDNS, by
    // the listener's policy at each read (a reload applies at once).
    let source = crate::server::quic_pp::from_router(&router);
    let endpoint = match crate::server::quic_pp::socket(socket, source, limits.idle_timeout)
        .and_then(|socket| {
            quinn::Endpoint::new_with_abstract_socket(
                quinn::EndpointConfig::default(),
                Some((*cfg).clone()),
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
    // QUIC connections open now (`https3 { max_connections }`).
    let open = Arc::new(AtomicUsize::new(0));
    // What the server config was made from: a reload with a new certificate, new limits or
    // new timeouts gives the next connections a new one (this one too: an incoming connection
    // is accepted with the config given here, not the one the endpoint had when it arrived).
    let mut current = first;
    loop {
        let incoming = tokio::select! {
            biased;
            _ = stop.changed() => break,
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
        };
        let now = router.load_full();
        if !Arc::ptr_eq(&now, &current) {
            let changed = match (&now.tls, &current.tls) {
                (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
                _ => true,
            } || now.https3 != current.https3
                || now.timeouts != current.timeouts;
            if changed && let Some(tls) = &now.tls {
                let limits = limits.with(&now.timeouts);
                match server_config(tls, &limits, now.https3.max_streams()) {
                    Ok(c) => {
                        endpoint.set_server_config(Some(c.clone()));
                        cfg = Arc::new(c);
                    }
                    Err(e) => tracing::error!("https3 listener: {e}"),
                }
            }
            current = now;
        }
        let max = current.https3.max_connections();
        let Some(permit) = Permit::take(&open, max) else {
            tracing::debug!(
                "https3: {max} connections open, refusing {}",
                incoming.remote_address()
            );
            incoming.refuse();
            continue;
        };
        let limits = limits.with(&current.timeouts);
        let router = router.clone();
        let tracker = tracker.clone();
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_conn(incoming, cfg, local, router, tracker, limits).await;
        });
    }
    endpoint.close(0u32.into(), b"shutting down");
}

/// A place among a listener's open QUIC connections, given back on drop.
struct Permit(Arc<AtomicUsize>);

impl Permit {
    /// A place if fewer than `max` connections are open (0: no limit).
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Permit> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (max == 0 || n < max).then_some(n + 1)
        })
        .ok()?;
        Some(Permit(open.clone()))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn serve_conn(
    incoming: quinn::Incoming,
    cfg: Arc<quinn::ServerConfig>,
    local: SocketAddr,
    router: Arc<ArcSwap<Router>>,
    tracker: Arc<Tracker>,
    limits: StreamLimits,
) {
    let src = incoming.remote_address();
    let connecting = match incoming.accept_with(cfg) {
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
    let (mut resp, body) = if status == 200 {
        let mut resp = hyper::http::Response::new(());
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(doh::MIME));
        if let Ok(age) = HeaderValue::try_from(format!("max-age={}", doh::max_age(&body))) {
            h.insert(CACHE_CONTROL, age);
        }
        (resp, Bytes::from(body))
    } else {
        (doh::error_head(status), doh::error_bytes(status))
    };
    resp.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
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
    let head = doh::request_head(req.method(), req.uri(), req.headers())?;
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
