//! UDP: several SO_REUSEPORT sockets on one address so every core receives; each query is
//! answered inline when the chain completes on the first poll, else on a spawned task.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::server::query::{self, Prepared};
use crate::server::request::Proto;
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
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        let std: std::net::UdpSocket = s.into();
        addr = std.local_addr()?;
        out.push(std);
    }
    Ok(out)
}

/// Serves one socket until `stop` flips to true.
pub async fn serve(
    sock: std::net::UdpSocket,
    router: Arc<ArcSwap<Router>>,
    tracker: Arc<Tracker>,
    mut stop: watch::Receiver<bool>,
) {
    let sock = match UdpSocket::from_std(sock) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!("udp socket: {e}");
            return;
        }
    };
    let local = sock
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut buf = vec![0u8; 65535];
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            r = sock.readable() => {
                if let Err(e) = r {
                    tracing::debug!("udp socket: {e}");
                    continue;
                }
            }
        }
        // Drain what is queued without going back through select! and the reactor for each
        // datagram; a bounded batch, then the other tasks get their turn.
        let mut drained = false;
        for _ in 0..BATCH {
            if *stop.borrow() {
                return;
            }
            let (n, src) = match sock.try_recv_from(&mut buf) {
                Ok(v) => v,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                Err(e) => {
                    // ICMP errors surface here on Linux (ECONNREFUSED): not fatal.
                    tracing::debug!("udp receive: {e}");
                    continue;
                }
            };
            handle(&sock, &router, &tracker, &buf[..n], src, local);
        }
        if !drained {
            tokio::task::yield_now().await;
        }
    }
}

/// Datagrams handled per wake-up before yielding.
const BATCH: usize = 64;

/// Answers one datagram: inline when the chain completes on the first poll, else on a task.
fn handle(
    sock: &Arc<UdpSocket>,
    router: &ArcSwap<Router>,
    tracker: &Arc<Tracker>,
    pkt: &[u8],
    src: SocketAddr,
    local: SocketAddr,
) {
    // The guard is released before anything awaits.
    let prepared = query::prepare(&router.load(), pkt, src, local, Proto::Udp);
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
                            let _ = sock.send_to(&bytes, src).await;
                        }
                    });
                }
            }
        }
    }
}

fn send(sock: &Arc<UdpSocket>, bytes: Vec<u8>, dst: SocketAddr) {
    match sock.try_send_to(&bytes, dst) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            let sock = sock.clone();
            tokio::spawn(async move {
                let _ = sock.send_to(&bytes, dst).await;
            });
        }
        Err(e) => tracing::debug!("udp send to {dst}: {e}"),
    }
}
