//! `proxyproto`: the PROXY protocol (v1 and v2, haproxy's proxy-protocol.txt) on the block's
//! listeners, as CoreDNS's *proxyproto* plugin (go-proxyproto underneath).
//!
//! The directive adds no handler; its setup records a [`ProxyProto`] in the block's config and
//! the server applies it to the listeners the block is served on (when several blocks share a
//! listener, the later block's setting wins, as CoreDNS's server takes its sites' policies in
//! order). The listener strips the header before anything else reads the message, and the client
//! address in it becomes the one every plugin sees (`acl`, `rrl`, `log`, `whoami`, metrics);
//! replies still go to the proxy.
//!
//! Per source, [`ProxyProto::policy`] decides: `use` the header's address, `ignore` it (strip the
//! header, keep the proxy's address), `reject` messages that carry one, or `skip` parsing (the
//! bytes reach the DNS decoder as they are). A malformed header is never guessed at: the
//! datagram is dropped, the connection closed. Over UDP only v2 headers of a datagram transport
//! are taken, as CoreDNS.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

pub const NAME: &str = "proxyproto";

/// What a listener does with the PROXY header of a message from some source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Take the client address from the header (a message without one is served as is).
    Use,
    /// Strip the header and keep the proxy's address.
    Ignore,
    /// Drop the datagram / close the connection when it carries a header.
    Reject,
    /// No PROXY processing: the bytes are read as DNS, header and all.
    Skip,
}

impl Policy {
    pub fn parse(s: &str) -> Option<Policy> {
        Some(match s.to_ascii_lowercase().as_str() {
            "use" => Policy::Use,
            "ignore" => Policy::Ignore,
            "reject" => Policy::Reject,
            "skip" => Policy::Skip,
            _ => return None,
        })
    }
}

/// `proxyproto { allow CIDR...; default use|ignore|reject|skip; udp_session_tracking TTL [MAX] }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyProto {
    pub allow: Vec<IpNet>,
    /// `default`, when given.
    pub default: Option<Policy>,
    /// `udp_session_tracking`: how long a UDP peer's proxied client is remembered (idle), and
    /// how many peers at most.
    pub sessions: Option<SessionTracking>,
}

/// The default cap of `udp_session_tracking` (CoreDNS's).
pub const DEFAULT_MAX_SESSIONS: usize = 10240;

/// Cloudflare Spectrum's PROXY v2 over UDP: the header comes alone in a session's first
/// datagram; later datagrams from the same peer carry none and get the remembered client.
#[derive(Clone)]
pub struct SessionTracking {
    pub ttl: Duration,
    pub max: usize,
    cache: moka::sync::Cache<SocketAddr, SocketAddr>,
}

impl SessionTracking {
    pub fn new(ttl: Duration, max: usize) -> Self {
        SessionTracking {
            ttl,
            max,
            // Idle expiry: every datagram of the session refreshes it, as CoreDNS's LRU.
            cache: moka::sync::Cache::builder()
                .max_capacity(max as u64)
                .time_to_idle(ttl)
                .build(),
        }
    }
}

impl PartialEq for SessionTracking {
    fn eq(&self, o: &Self) -> bool {
        (self.ttl, self.max) == (o.ttl, o.max)
    }
}
impl Eq for SessionTracking {}

impl std::fmt::Debug for SessionTracking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTracking")
            .field("ttl", &self.ttl)
            .field("max", &self.max)
            .finish()
    }
}

impl ProxyProto {
    /// The policy for a message from `peer`, as CoreDNS's ConnPolicy: without `allow`, every
    /// source gets `default` (`use` when unset); with it, allowed sources `use` and the others
    /// get `default` (`ignore` when unset).
    pub fn policy(&self, peer: IpAddr) -> Policy {
        if self.allow.is_empty() {
            return self.default.unwrap_or(Policy::Use);
        }
        let ip = peer.to_canonical();
        if self.allow.iter().any(|n| n.contains(&ip)) {
            Policy::Use
        } else {
            self.default.unwrap_or(Policy::Ignore)
        }
    }
}

/// The transport a v2 header announces (v1: always a stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Unspec,
    Stream,
    Dgram,
}

/// A PROXY header read from the front of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    /// Its length in bytes: what follows is the payload.
    pub len: usize,
    /// The original client, when the header carries an IPv4 or IPv6 address (not for v2
    /// LOCAL, v1 UNKNOWN, or a UNIX / unspecified family).
    pub source: Option<SocketAddr>,
    pub transport: Transport,
}

/// What the front of a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// No PROXY signature: the message is plain DNS.
    None,
    /// The start of a header; more bytes are needed.
    Incomplete,
    /// A signature followed by something that is not a valid header.
    Invalid(&'static str),
    Header(Header),
}

/// The v2 signature.
pub const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 signature (go-proxyproto checks these five bytes, then the space).
const V1_SIG: &[u8; 5] = b"PROXY";
/// The longest v1 header, CRLF included (proxy-protocol.txt §2.1).
pub const V1_MAX: usize = 107;

/// Reads the PROXY header at the front of `buf`, if any. Never panics.
pub fn parse(buf: &[u8]) -> Parsed {
    let n = buf.len().min(V2_SIG.len());
    if buf[..n] == V2_SIG[..n] {
        if buf.len() < 16 {
            return Parsed::Incomplete;
        }
        return parse_v2(buf);
    }
    let n = buf.len().min(V1_SIG.len());
    if n > 0 && buf[..n] == V1_SIG[..n] {
        if buf.len() < V1_SIG.len() {
            return Parsed::Incomplete;
        }
        return parse_v1(buf);
    }
    if buf.is_empty() {
        Parsed::Incomplete
    } else {
        Parsed::None
    }
}

fn parse_v1(buf: &[u8]) -> Parsed {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX {
            Parsed::Invalid("v1 header longer than 107 bytes")
        } else {
            Parsed::Incomplete
        };
    };
    if lf == 0 || window[lf - 1] != b'\r' {
        return Parsed::Invalid("v1 header must end with CRLF");
    }
    let Ok(line) = std::str::from_utf8(&window[..lf - 1]) else {
        return Parsed::Invalid("v1 header is not text");
    };
    let fields: Vec<&str> = line.split(' ').collect();
    if fields[0] != "PROXY" || fields.len() < 2 {
        return Parsed::Invalid("v1 header malformed");
    }
    let header = |source| {
        Parsed::Header(Header {
            version: 1,
            len: lf + 1,
            source,
            transport: Transport::Stream,
        })
    };
    match fields[1] {
        // The rest of an UNKNOWN line is ignored (proxy-protocol.txt).
        "UNKNOWN" => return header(None),
        "TCP4" | "TCP6" => {}
        _ => return Parsed::Invalid("v1 header has an unknown protocol"),
    }
    if fields.len() != 6 {
        return Parsed::Invalid("v1 header malformed");
    }
    let v4 = fields[1] == "TCP4";
    let (Ok(src), Ok(dst)) = (fields[2].parse::<IpAddr>(), fields[3].parse::<IpAddr>()) else {
        return Parsed::Invalid("v1 header has an invalid address");
    };
    if src.is_ipv4() != v4 || dst.is_ipv4() != v4 {
        return Parsed::Invalid("v1 header address does not match its protocol");
    }
    let port = |s: &str| -> Option<u16> {
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (Some(sport), Some(_)) = (port(fields[4]), port(fields[5])) else {
        return Parsed::Invalid("v1 header has an invalid port");
    };
    header(Some(SocketAddr::new(src, sport)))
}

fn parse_v2(buf: &[u8]) -> Parsed {
    let ver_cmd = buf[12];
    let fam = buf[13];
    let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if ver_cmd >> 4 != 2 {
        return Parsed::Invalid("v2 header has an unknown version");
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Parsed::Invalid("v2 header has an unknown command"),
    };
    let transport = match fam & 0x0f {
        0 => Transport::Unspec,
        1 => Transport::Stream,
        2 => Transport::Dgram,
        _ => return Parsed::Invalid("v2 header has an unknown transport"),
    };
    let need = match fam >> 4 {
        0 => 0,
        1 => 12,
        2 => 36,
        3 => 216,
        _ => return Parsed::Invalid("v2 header has an unknown address family"),
    };
    if len < need {
        return Parsed::Invalid("v2 header too short for its address family");
    }
    if buf.len() < 16 + len {
        return Parsed::Incomplete;
    }
    let a = &buf[16..16 + len];
    let source = match (local, fam >> 4) {
        (true, _) => None,
        (false, 1) => Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
            u16::from_be_bytes([a[8], a[9]]),
        )),
        (false, 2) => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&a[..16]);
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(ip)),
                u16::from_be_bytes([a[32], a[33]]),
            ))
        }
        _ => None,
    };
    Parsed::Header(Header {
        version: 2,
        len: 16 + len,
        source,
        transport: if local { Transport::Unspec } else { transport },
    })
}

/// What a UDP listener does with a datagram from `peer`: `Some((payload, client))`, or `None`
/// to drop it. As CoreDNS's PacketConn: only v2 headers of a datagram transport are taken; a
/// malformed one, a v1 one, or (under `reject`) any header drops the datagram.
pub fn udp<'a>(pp: &ProxyProto, pkt: &'a [u8], peer: SocketAddr) -> Option<(&'a [u8], SocketAddr)> {
    let policy = pp.policy(peer.ip());
    if policy == Policy::Skip {
        return Some((pkt, peer));
    }
    let h = match parse(pkt) {
        Parsed::None => {
            // `udp_session_tracking`: a headerless datagram of a known session.
            let client = match (&pp.sessions, policy) {
                (Some(t), Policy::Use) => t.cache.get(&peer).unwrap_or(peer),
                _ => peer,
            };
            return Some((pkt, client));
        }
        Parsed::Header(h) if h.version == 2 && h.transport == Transport::Dgram => h,
        Parsed::Header(_) | Parsed::Incomplete | Parsed::Invalid(_) => {
            tracing::debug!("dropping invalid Proxy Protocol packet from {peer}");
            return None;
        }
    };
    let payload = &pkt[h.len..];
    match policy {
        Policy::Reject => None,
        Policy::Use => {
            let client = h.source.unwrap_or(peer);
            if let Some(t) = &pp.sessions {
                t.cache.insert(peer, client);
                if payload.is_empty() {
                    // A header alone opens the session; there is nothing to answer.
                    return None;
                }
            }
            Some((payload, client))
        }
        Policy::Ignore | Policy::Skip => Some((payload, peer)),
    }
}

/// How long a connection may take to send its PROXY header (go-proxyproto's default).
pub const READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the PROXY header at the start of a stream from `peer`, as go-proxyproto's Listener:
/// `Some((stream, client))` with the bytes read past the header given back first, or `None`
/// to close the connection (a malformed header, a header under `reject`, EOF or a timeout
/// before the header is complete).
pub async fn stream<S>(
    pp: &ProxyProto,
    mut s: S,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<(Prefixed<S>, SocketAddr)>
where
    S: AsyncRead + Unpin,
{
    let policy = pp.policy(peer.ip());
    if policy == Policy::Skip {
        return Some((Prefixed::new(Vec::new(), s), peer));
    }
    let mut buf = Vec::with_capacity(256);
    let read = async {
        loop {
            match parse(&buf) {
                Parsed::Incomplete => {}
                p => return Some(p),
            }
            let mut chunk = [0u8; 256];
            // Never beyond what a header can be: at most 16 + 65535 bytes.
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let parsed = tokio::time::timeout(timeout, read).await.ok().flatten()?;
    let (skip, client) = match parsed {
        Parsed::None => (0, peer),
        Parsed::Header(h) => match policy {
            Policy::Reject => {
                tracing::debug!("connection from {peer} rejected by Proxy Protocol policy");
                return None;
            }
            Policy::Use => (h.len, h.source.unwrap_or(peer)),
            Policy::Ignore | Policy::Skip => (h.len, peer),
        },
        Parsed::Invalid(why) => {
            tracing::debug!("invalid Proxy Protocol header from {peer}: {why}");
            return None;
        }
        Parsed::Incomplete => return None,
    };
    buf.drain(..skip);
    Some((Prefixed::new(buf, s), client))
}

/// A stream with bytes already read from it put back in front.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Prefixed {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = (self.prefix.len() - self.at).min(out.remaining());
            let at = self.at;
            out.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                self.prefix = Vec::new();
                self.at = 0;
            }
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, out)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
