//! `proxyproto` on QUIC listeners (`quic://` DoQ, `https3://` DoH3), as CoreDNS 1.14 wraps their
//! UDP socket in its proxyproto `PacketConn`: a quinn socket that strips the PROXY v2 header of
//! every datagram and hands quinn the client address from it, so the QUIC connection's
//! `remote_address()` (and with it `acl`, `whoami`, `log`, the per-source limits) is the client's.
//!
//! Replies go back through the proxy, as CoreDNS's `PacketConn.WriteTo` sends to the address a
//! datagram came from (its `Addr.u`): quinn addresses its datagrams to the client, and this socket
//! sends them to the proxy the client's last datagram came through (a bounded map, client →
//! proxy, idle-expired after an hour or the QUIC idle timeout).
//!
//! As CoreDNS (its QUIC servers set no `UDPSessionTrackingTTL`), `udp_session_tracking` does not
//! apply here: every datagram is judged alone. A datagram the policy drops (a malformed or v1
//! header, a header under `reject`, a header with no payload) is dropped and the next one read.
//!
//! The policy is the listener's current one (its router's `proxyproto`), asked for on every
//! read, so a reload that adds, changes or removes `proxyproto` applies from the next datagram,
//! as on TCP and UDP listeners. Without a policy datagrams pass as they are.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Runtime, UdpPoller};

use crate::plugin::proxyproto::{self, DEFAULT_MAX_SESSIONS, ProxyProto};
use crate::server::router::Router;

/// How many batches of dropped datagrams one poll reads before yielding to other tasks.
const MAX_EMPTY_BATCHES: usize = 16;
/// How long a client's proxy is remembered without traffic, at least (QUIC's idle timeout is
/// at most an hour here).
const MIN_REMEMBER: Duration = Duration::from_secs(3600);

/// Where a QUIC listener's policy comes from: asked for on every read.
pub type Source = Arc<dyn Fn() -> Option<Arc<ProxyProto>> + Send + Sync>;

/// The policy of the listener routed by `router`, as it is now (reloads swap the router).
pub fn from_router(router: &Arc<ArcSwap<Router>>) -> Source {
    let router = router.clone();
    Arc::new(move || router.load().proxyproto.clone())
}

/// The runtime's socket for `socket`, reading PROXY headers by the policy `source` gives.
/// `idle` is the QUIC idle timeout: how long a client's proxy is remembered without traffic.
pub fn socket(
    socket: std::net::UdpSocket,
    source: Source,
    idle: Duration,
) -> io::Result<Arc<dyn AsyncUdpSocket>> {
    let inner = quinn::TokioRuntime.wrap_udp_socket(socket)?;
    Ok(Arc::new(PpSocket::new(inner, source, idle)))
}

/// A quinn socket that reads PROXY headers (see the module docs).
pub struct PpSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    source: Source,
    /// The policy `source` gave last, and the copy of it used here: without session tracking
    /// (CoreDNS's QUIC servers take none).
    policy: Mutex<Option<(Arc<ProxyProto>, Arc<ProxyProto>)>>,
    /// Client address → the proxy address its last datagram came from.
    proxies: moka::sync::Cache<SocketAddr, SocketAddr>,
    /// A datagram has come through a proxy: until then replies skip the map.
    proxied: AtomicBool,
}

impl fmt::Debug for PpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PpSocket")
            .field("inner", &self.inner)
            .field("pp", &self.current())
            .finish_non_exhaustive()
    }
}

impl PpSocket {
    pub fn new(inner: Arc<dyn AsyncUdpSocket>, source: Source, idle: Duration) -> Self {
        PpSocket {
            inner,
            source,
            policy: Mutex::new(None),
            // At least as long as a connection can stay silent, so a live connection keeps its
            // proxy (every datagram either way refreshes it).
            proxies: moka::sync::Cache::builder()
                .max_capacity(DEFAULT_MAX_SESSIONS as u64)
                .time_to_idle(idle.max(MIN_REMEMBER))
                .build(),
            proxied: AtomicBool::new(false),
        }
    }

    /// The policy now, without session tracking (copied once per policy the source gives).
    fn current(&self) -> Option<Arc<ProxyProto>> {
        let now = (self.source)()?;
        let mut slot = self.policy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((from, used)) = &*slot
            && Arc::ptr_eq(from, &now)
        {
            return Some(used.clone());
        }
        let used = Arc::new(ProxyProto {
            sessions: None,
            ..(*now).clone()
        });
        *slot = Some((now, used.clone()));
        Some(used)
    }

    /// The proxy a datagram for `client` goes through, if it came through one.
    pub fn proxy_of(&self, client: SocketAddr) -> Option<SocketAddr> {
        if !self.proxied.load(Ordering::Relaxed) {
            return None;
        }
        self.proxies.get(&client)
    }

    /// Applies the policy to the datagram `buf` from `peer`: moves its payload to the front of
    /// `buf` and gives `(payload length, client)`, or `None` to drop it.
    fn strip(
        &self,
        pp: &ProxyProto,
        buf: &mut [u8],
        peer: SocketAddr,
    ) -> Option<(usize, SocketAddr)> {
        let (n, client) = match proxyproto::udp(pp, buf, peer) {
            Some((payload, client)) => (payload.len(), client),
            None => return None,
        };
        if n == 0 {
            // A header alone: nothing for QUIC.
            return None;
        }
        // The payload is what follows the header.
        let off = buf.len() - n;
        if off > 0 {
            buf.copy_within(off.., 0);
        }
        if client != peer {
            self.proxied.store(true, Ordering::Relaxed);
            if self.proxies.get(&client) != Some(peer) {
                self.proxies.insert(client, peer);
            }
        } else if self.proxies.contains_key(&peer) {
            // The address now speaks for itself.
            self.proxies.invalidate(&peer);
        }
        Some((n, client))
    }

    /// Rewrites one received buffer in place; `false` when nothing in it is kept. A GRO buffer
    /// (several datagrams of one peer, `stride` bytes apart) keeps the datagrams that give the
    /// same client as its first kept one, packed at a new stride.
    fn fix(&self, pp: &ProxyProto, buf: &mut [u8], meta: &mut RecvMeta) -> bool {
        let peer = meta.addr;
        let total = meta.len.min(buf.len());
        if meta.stride == 0 || meta.stride >= total {
            return match self.strip(pp, &mut buf[..total], peer) {
                Some((n, client)) => {
                    meta.len = n;
                    meta.stride = n;
                    meta.addr = client;
                    true
                }
                None => false,
            };
        }
        let stride = meta.stride;
        let (mut out, mut out_stride, mut client, mut closed) = (0, 0, None, false);
        let mut at = 0;
        while at < total {
            let end = (at + stride).min(total);
            if let Some((n, c)) = self.strip(pp, &mut buf[at..end], peer) {
                let fits = match client {
                    None => true,
                    Some(first) => first == c && !closed && n <= out_stride,
                };
                if fits {
                    if client.is_none() {
                        client = Some(c);
                        out_stride = n;
                    }
                    // A shorter datagram can only be the last of a GRO buffer.
                    closed = n < out_stride;
                    buf.copy_within(at..at + n, out);
                    out += n;
                } else {
                    tracing::debug!("dropping a datagram from {peer} that does not fit its batch");
                }
            }
            at = end;
        }
        match client {
            Some(c) => {
                meta.len = out;
                meta.stride = out_stride;
                meta.addr = c;
                true
            }
            None => false,
        }
    }
}

impl AsyncUdpSocket for PpSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        match self.proxy_of(transmit.destination) {
            None => self.inner.try_send(transmit),
            Some(proxy) => self.inner.try_send(&Transmit {
                destination: proxy,
                ..transmit.clone()
            }),
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let Some(pp) = self.current() else {
            return self.inner.poll_recv(cx, bufs, meta);
        };
        for _ in 0..MAX_EMPTY_BATCHES {
            let n = match self.inner.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(n)) => n,
                other => return other,
            };
            let mut kept = 0;
            for i in 0..n.min(bufs.len()).min(meta.len()) {
                if self.fix(&pp, &mut bufs[i], &mut meta[i]) {
                    // Kept ones move to the front: quinn reads the first `kept` pairs.
                    meta.swap(kept, i);
                    bufs.swap(kept, i);
                    kept += 1;
                }
            }
            if kept > 0 {
                return Poll::Ready(Ok(kept));
            }
        }
        // Only dropped datagrams so far: let other tasks run, then read on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests;
