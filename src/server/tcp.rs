//! TCP and DNS over TLS (RFC 7766, RFC 7858): length-prefixed messages, pipelined — every query
//! on a connection is handled concurrently and answered as soon as it is ready, in any order —
//! with an idle timeout, a cap on queries in flight per connection, and the listener's
//! connection table ([`crate::server::conns`]) deciding who is served under a flood.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::dns::request::Proto;
use crate::plugin::proxyproto;
use crate::server::conns::{self, Admit, ConnState, ConnTable, StreamLimits};
use crate::server::https;
use crate::server::query::{self, Prepared, Reply};
use crate::server::router::Router;
use crate::server::tracker::Tracker;

/// A listening TCP socket on `addr`. SO_REUSEPORT, as CoreDNS sets it: a block restricted by
/// `bind` and a wildcard block can listen on the same port, and the kernel gives each connection
/// to the most specific socket.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(!addr.ip().is_unspecified())?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// What a stream listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// DNS over TCP (RFC 7766).
    Dns,
    /// DNS over TLS (RFC 7858).
    Tls,
    /// DNS over HTTPS (RFC 8484): HTTP/2 or HTTP/1.1 over TLS, plain HTTP/1.1 without `tls`.
    Https,
}

impl Kind {
    /// The connection cap of a listener of this kind whose own TCP cap is `server_cap`: an
    /// `https://` listener's is its `https { max_connections }` (default 200, as CoreDNS; 0:
    /// `server_cap`).
    fn cap(self, router: &Router, server_cap: usize) -> usize {
        match self {
            Kind::Https => match router.https.max_connections() {
                0 => server_cap,
                n => n,
            },
            Kind::Dns | Kind::Tls => server_cap,
        }
    }
}

/// Accepts connections until `stop` flips; then lets open connections finish their queries.
pub async fn serve(
    listener: std::net::TcpListener,
    router: Arc<ArcSwap<Router>>,
    tracker: Arc<Tracker>,
    limits: StreamLimits,
    kind: Kind,
    mut stop: watch::Receiver<bool>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("tcp listener: {e}");
            return;
        }
    };
    let server = router.load().server.clone();
    let fds = conns::fd_budget();
    let mut cap = kind.cap(&router.load(), limits.max_connections).min(fds);
    let table = ConnTable::new(server, cap, limits.max_per_source);
    let mut last_accept_warning: Option<std::time::Instant> = None;
    loop {
        let (stream, src) = tokio::select! {
            biased;
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    // Out of file descriptors: close the longest-idle connection so the next
                    // accept succeeds. Logged at most every 10 s: a flood must not flood the log.
                    let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                    let freed = out_of_fds && table.shed_one("fd");
                    if last_accept_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        last_accept_warning = Some(std::time::Instant::now());
                        tracing::warn!("tcp accept: {e}");
                    }
                    if !freed {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    continue;
                }
            },
        };
        // The listener's `timeouts` and `https` as they are now (a reload may change them).
        let now = router.load();
        let want = kind.cap(&now, limits.max_connections).min(fds);
        if want != cap {
            cap = want;
            table.set_max(cap);
        }
        let slot = match table.admit(src.ip()) {
            Admit::Yes(slot) => slot,
            Admit::No => {
                tracing::debug!("every connection is busy, closing {src}");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let limits = limits.with(&now.timeouts);
        drop(now);
        let router = router.clone();
        let tracker = tracker.clone();
        let stop = stop.clone();
        let table = table.clone();
        tokio::spawn(async move {
            let local = stream.local_addr().unwrap_or(src);
            // `proxyproto`: the header comes before anything else (the TLS handshake too).
            let proxy = router.load().proxyproto.clone();
            match proxy {
                None => {
                    serve_conn(
                        stream, src, local, router, tracker, limits, table, slot, kind, stop,
                    )
                    .await
                }
                Some(pp) => {
                    let wait = limits.read_timeout.max(proxyproto::READ_HEADER_TIMEOUT);
                    let got = tokio::select! {
                        r = proxyproto::stream(&pp, stream, src, wait) => r,
                        _ = slot.state.closed() => None,
                    };
                    if let Some((stream, client)) = got {
                        serve_conn(
                            stream, client, local, router, tracker, limits, table, slot, kind, stop,
                        )
                        .await;
                    }
                }
            }
        });
    }
}

/// Serves an accepted connection whose client is `src`: the TLS handshake first on a DoT
/// listener.
#[allow(clippy::too_many_arguments)]
async fn serve_conn<S>(
    stream: S,
    src: SocketAddr,
    local: SocketAddr,
    router: Arc<ArcSwap<Router>>,
    tracker: Arc<Tracker>,
    limits: StreamLimits,
    table: Arc<ConnTable>,
    slot: conns::Slot,
    kind: Kind,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    {
        {
            let conn = Conn {
                src,
                local,
                router,
                tracker,
                limits,
                table,
                state: slot.state.clone(),
            };
            let tls = conn.router.load().tls.clone();
            if kind == Kind::Https && tls.is_none() {
                // No `tls` in the block: plain HTTP/1.1, as CoreDNS serves it.
                let state = slot.state.clone();
                let Conn {
                    router,
                    tracker,
                    table,
                    ..
                } = conn;
                https::serve_conn(
                    stream, false, src, local, router, tracker, limits, table, state, stop,
                )
                .await;
            } else if kind != Kind::Dns {
                let Some(cfg) = tls else {
                    return;
                };
                let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                // The handshake counts as idle: under pressure it is shed like an idle
                // connection, and it never takes longer than read_timeout.
                let handshake = tokio::time::timeout(limits.read_timeout, acceptor.accept(stream));
                let done = tokio::select! {
                    r = handshake => r,
                    _ = slot.state.closed() => return,
                };
                match done {
                    Ok(Ok(s)) if kind == Kind::Https => {
                        let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
                        let state = slot.state.clone();
                        let Conn {
                            router,
                            tracker,
                            table,
                            ..
                        } = conn;
                        https::serve_conn(
                            s, h2, src, local, router, tracker, limits, table, state, stop,
                        )
                        .await
                    }
                    Ok(Ok(s)) => conn.serve(s, Proto::Tls, stop).await,
                    Ok(Err(e)) => tracing::debug!("tls handshake with {src}: {e}"),
                    Err(_) => tracing::debug!("tls handshake with {src}: timed out"),
                }
            } else {
                conn.serve(stream, Proto::Tcp, stop).await
            }
            drop(slot);
        }
    }
}

/// One accepted connection and what serving it needs.
struct Conn {
    src: SocketAddr,
    local: SocketAddr,
    router: Arc<ArcSwap<Router>>,
    tracker: Arc<Tracker>,
    limits: StreamLimits,
    table: Arc<ConnTable>,
    state: Arc<ConnState>,
}

impl Conn {
    async fn serve<S>(self, stream: S, proto: Proto, mut stop: watch::Receiver<bool>)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let Conn {
            src,
            local,
            router,
            tracker,
            limits,
            table,
            state,
        } = self;
        let (rd, mut wr) = tokio::io::split(stream);
        // Buffered: pipelined queries arriving together are read with one recv, not two per query
        // (length prefix, then message).
        let mut rd = tokio::io::BufReader::with_capacity(16 * 1024, rd);
        let (tx, mut rx) = mpsc::channel::<Reply>(limits.max_in_flight);
        let writer = tokio::spawn(async move {
            let mut out = Vec::with_capacity(4096);
            let mut pending = None;
            loop {
                let first = match pending.take() {
                    Some(r) => r,
                    None => match rx.recv().await {
                        Some(r) => r,
                        None => break,
                    },
                };
                out.clear();
                let mut stream = None;
                match first {
                    Reply::One(b) => push_framed(&mut out, &b),
                    Reply::Stream(s) => stream = Some(s),
                }
                // Coalesce replies that are ready together into one write; a transfer waits
                // for the replies before it, and nothing is interleaved with its messages.
                while stream.is_none() {
                    match rx.try_recv() {
                        Ok(Reply::One(b)) => push_framed(&mut out, &b),
                        Ok(s @ Reply::Stream(_)) => {
                            pending = Some(s);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                // A client that does not read its replies must not hold the connection (and its
                // queries in flight) forever.
                if !out.is_empty() && !write_timed(&mut wr, &out, limits.write_timeout).await {
                    return;
                }
                if let Some(mut s) = stream {
                    while let Some(msg) = s.recv().await {
                        out.clear();
                        push_framed(&mut out, &msg);
                        if !write_timed(&mut wr, &out, limits.write_timeout).await {
                            return;
                        }
                    }
                }
            }
            let _ = wr.shutdown().await;
        });
        let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
        let mut buf = Vec::new();
        let mut served = 0usize;
        loop {
            let permit = match in_flight.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => break,
            };
            // Wait for the next length prefix: idle timeout, stop, or shed by the table. The first
            // byte makes the connection busy: a message half-read is never shed.
            let mut len = [0u8; 2];
            state.wait();
            let got = tokio::select! {
                biased;
                _ = stop.changed() => break,
                // The writer gave up (write error or timeout): close now.
                _ = tx.closed() => break,
                _ = state.closed() => break,
                r = tokio::time::timeout(table.idle_timeout(limits.idle_timeout), read_prefix(&mut rd, &mut len, &state, &table)) => r,
            };
            match got {
                Ok(Ok(_)) => {}
                _ => break, // EOF, error or idle
            }
            let n = u16::from_be_bytes(len) as usize;
            if n == 0 {
                break;
            }
            buf.resize(n, 0);
            match tokio::time::timeout(limits.read_timeout, rd.read_exact(&mut buf)).await {
                Ok(Ok(_)) => {}
                _ => break, // slow or truncated message
            }
            // The guard is released before anything awaits.
            let prepared = query::prepare(&router.load(), &buf, src, local, proto);
            match prepared {
                Prepared::Done(Some(bytes)) => {
                    if tx.send(Reply::One(bytes)).await.is_err() {
                        break;
                    }
                }
                Prepared::Done(None) => {}
                Prepared::Query(req, block) => {
                    let guard = tracker.start();
                    let fut = Box::pin(query::run_stream(req, block));
                    match query::try_now(fut) {
                        Ok(Some(reply)) => {
                            if tx.send(reply).await.is_err() {
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(fut) => {
                            let tx = tx.clone();
                            // In flight: the connection is busy (never shed) until it is answered.
                            state.query_started();
                            let state = state.clone();
                            tokio::spawn(async move {
                                let _guard = guard;
                                let _permit = permit;
                                if let Some(reply) = fut.await {
                                    let _ = tx.send(reply).await;
                                }
                                state.query_done();
                            });
                        }
                    }
                }
            }
            // `timeouts { maxtcpqueries N }`: the N-th message is the connection's last.
            served += 1;
            if limits.max_queries.is_some_and(|max| served >= max) {
                break;
            }
        }
        // Stop reading; answers still in flight are written before the connection closes.
        drop(tx);
        let _ = writer.await;
    }
}

/// Writes `out` within `timeout`; false when the client did not take it in time.
async fn write_timed<W: AsyncWrite + Unpin>(wr: &mut W, out: &[u8], timeout: Duration) -> bool {
    let write = async {
        wr.write_all(out).await?;
        wr.flush().await
    };
    matches!(tokio::time::timeout(timeout, write).await, Ok(Ok(())))
}

/// Reads a message's length prefix; the connection counts as busy from its first byte on.
async fn read_prefix<R: AsyncRead + Unpin>(
    rd: &mut R,
    len: &mut [u8; 2],
    state: &ConnState,
    table: &ConnTable,
) -> io::Result<()> {
    rd.read_exact(&mut len[..1]).await?;
    state.active(table);
    rd.read_exact(&mut len[1..]).await?;
    Ok(())
}

fn push_framed(out: &mut Vec<u8>, msg: &[u8]) {
    let n = msg.len().min(u16::MAX as usize) as u16;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(&msg[..n as usize]);
}
