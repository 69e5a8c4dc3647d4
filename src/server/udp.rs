//! UDP: several SO_REUSEPORT sockets on one address so every core receives, each served by a
//! thread of its own; a query is answered inline when the chain completes on the first poll,
//! else on a task of the runtime.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

use crate::dns::request::Proto;
use crate::plugin::proxyproto;
use crate::server::query::{self, Prepared};
use crate::server::router::Router;
use crate::server::tracker::Tracker;

/// Binds `n` UDP sockets to `addr` with SO_REUSEPORT (port 0: the first picks it, the rest join).
pub fn bind(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::UdpSocket>> {
    let mut out = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        if addr.is_ipv6() {
            s.set_only_v6(!addr.ip().is_unspecified())?;
        }
        // Room for bursts, but not for a backlog: 1 MiB (as NSD's default) holds ~10 ms of
        // queries at 100k qps. Under overload a larger buffer only serves queries late — 100–300 ms
        // with 4 MiB in bench/latency.sh — after stub resolvers have retried; dropping is better.
        let _ = s.set_recv_buffer_size(1 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        // Blocking: each socket's thread waits in recvfrom(2) (see `serve`); a read timeout
        // bounds how long a stopped listener's thread can go without noticing.
        s.set_read_timeout(Some(STOP_CHECK))?;
        s.bind(&addr.into())?;
        let std: std::net::UdpSocket = s.into();
        addr = std.local_addr()?;
        out.push(std);
    }
    Ok(out)
}

/// Serves one socket until `stop` flips to true, on a thread of its own.
///
/// The thread blocks in recvfrom(2) and answers there and then what completes at once: a
/// datagram costs two system calls (receive, send), and its arrival wakes the very thread that
/// answers it. Only queries that wait (forwarding, a cache miss that goes upstream) become tasks
/// on the runtime. Driven by the runtime instead, every wake-up went through tokio's reactor and
/// scheduler, which on shared cores also woke idle workers: more CPU per answer and less
/// throughput at full load (bench/README).
pub async fn serve(
    sock: std::net::UdpSocket,
    router: Arc<ArcSwap<Router>>,
    tracker: Arc<Tracker>,
    mut stop: watch::Receiver<bool>,
) {
    let sock = Arc::new(sock);
    let stopping = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Handle::current();
    let (s, st) = (sock.clone(), stopping.clone());
    let spawned = std::thread::Builder::new()
        .name("exdns-udp".into())
        .spawn(move || {
            let _rt = rt.enter();
            receive(s, &router, &tracker, &st);
            drop(done_tx);
        });
    if let Err(e) = spawned {
        tracing::error!("udp socket: cannot start its thread: {e}");
        return;
    }
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    stopping.store(true, Ordering::Relaxed);
    // Shutting down the receive side wakes a thread blocked in recvfrom(2) (on Linux also for
    // a UDP socket, though the call reports ENOTCONN).
    let _ = socket2::SockRef::from(&*sock).shutdown(std::net::Shutdown::Read);
    let _ = done_rx.await;
}

/// How long a stopped listener's thread may wait in recvfrom(2) at most before it notices, should
/// the shutdown(2) that wakes it not reach it.
const STOP_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// The receive loop of one socket's thread: until `stopping`.
fn receive(
    sock: Arc<std::net::UdpSocket>,
    router: &ArcSwap<Router>,
    tracker: &Arc<Tracker>,
    stopping: &AtomicBool,
) {
    let local = sock
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut buf = vec![0u8; 65535];
    while !stopping.load(Ordering::Relaxed) {
        match sock.recv_from(&mut buf) {
            Ok((n, src)) => handle(&sock, router, tracker, &buf[..n], src, local),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            // ICMP errors surface here on Linux (ECONNREFUSED): not fatal.
            Err(e) => tracing::debug!("udp receive: {e}"),
        }
    }
}

/// Answers one datagram: inline when the chain completes on the first poll, else on a task.
fn handle(
    sock: &Arc<std::net::UdpSocket>,
    router: &ArcSwap<Router>,
    tracker: &Arc<Tracker>,
    pkt: &[u8],
    src: SocketAddr,
    local: SocketAddr,
) {
    let router = router.load();
    // `proxyproto`: the header is stripped and its client becomes the query's source; the
    // reply still goes to the proxy (`src`).
    let (pkt, client) = match &router.proxyproto {
        None => (pkt, src),
        Some(pp) => match proxyproto::udp(pp, pkt, src) {
            Some(v) => v,
            None => return,
        },
    };
    let prepared = query::prepare(&router, pkt, client, local, Proto::Udp);
    match prepared {
        Prepared::Done(Some(bytes)) => send(sock, bytes, src),
        Prepared::Done(None) => {}
        Prepared::Query(req, block) => {
            let guard = tracker.start();
            let fut = Box::pin(query::run(req, block));
            match query::try_now(fut) {
                Ok(Some(bytes)) => send(sock, bytes, src),
                Ok(None) => {}
                Err(fut) => {
                    let sock = sock.clone();
                    tokio::spawn(async move {
                        let _guard = guard;
                        if let Some(bytes) = fut.await {
                            send(&sock, bytes, src);
                        }
                    });
                }
            }
        }
    }
}

/// Sends a reply. The socket does not block: when its send buffer is full (rare: 4 MiB), the
/// reply waits on a task and is tried again a few times before it is given up.
fn send(sock: &Arc<std::net::UdpSocket>, bytes: Vec<u8>, dst: SocketAddr) {
    match send_now(sock, &bytes, dst) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            let sock = sock.clone();
            tokio::spawn(async move {
                for _ in 0..SEND_RETRIES {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    match send_now(&sock, &bytes, dst) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => tracing::debug!("udp send to {dst}: {e}"),
                        Ok(_) => {}
                    }
                    return;
                }
                tracing::debug!("udp send to {dst}: send buffer full, reply dropped");
            });
        }
        Err(e) => tracing::debug!("udp send to {dst}: {e}"),
    }
}

/// sendto(2) with MSG_DONTWAIT: the socket blocks for its thread's receives, never for sends.
fn send_now(sock: &std::net::UdpSocket, bytes: &[u8], dst: SocketAddr) -> io::Result<usize> {
    socket2::SockRef::from(sock).send_to_with_flags(bytes, &dst.into(), libc::MSG_DONTWAIT)
}

/// How often (1 ms apart) a reply is tried again while the socket's send buffer is full.
const SEND_RETRIES: usize = 50;
