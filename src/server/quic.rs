//! DNS over QUIC (RFC 9250), as CoreDNS's `quic://` server: ALPN `doq`, one query per
//! client-initiated bidirectional stream, each message with a 2-byte length prefix; the reply
//! (or a zone transfer's messages) goes back on the query's stream, then FIN.
//!
//! A protocol error closes the whole connection with DOQ_PROTOCOL_ERROR (0x2), as RFC 9250
//! §4.3.3 and CoreDNS do: a message ID other than 0, an edns-tcp-keepalive option, a length of
//! 0, a stream that ends (or stalls past the read timeout) before its message is complete, and
//! a message that CoreDNS's server would not unpack (not a query, a header miekg/dns rejects, a
//! malformed message).
//!
//! QUIC itself is `quinn` (the crate hickory-dns's DoQ uses). Limits: `quic { max_streams }`
//! streams per connection (QUIC flow control: the client cannot open more), `quic {
//! worker_pool_size }` streams served at once across the listener, the idle timeout
//! (`timeouts { idle }`, 10 s) as QUIC's max_idle_timeout, and at most 200 connections (CoreDNS's
//! default) in the listener's connection table, which — as for TCP and DoT — closes the
//! longest-idle connection to admit a new one ([`crate::server::conns`]).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus::IntCounterVec;
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{Connection, Endpoint, EndpointConfig, RecvStream, SendStream, VarInt};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{Semaphore, watch};

use crate::dns::request::Proto;
use crate::dns::{cookie, wire};
use crate::plugin::quic::DEFAULT_MAX_CONNECTIONS;
use crate::server::conns::StreamLimits;
use crate::server::conns::{Admit, ConnState, ConnTable};
use crate::server::query::{self, Prepared, Reply};
use crate::server::quic_pp;
use crate::server::router::Router;
use crate::server::tracker::Tracker;

/// The ALPN token of DoQ (RFC 9250 §4.1.1).
pub const ALPN: &[u8] = b"doq";

/// RFC 9250 §4.3: DOQ_NO_ERROR.
pub const DOQ_NO_ERROR: u32 = 0x0;
/// DOQ_INTERNAL_ERROR.
pub const DOQ_INTERNAL_ERROR: u32 = 0x1;
/// DOQ_PROTOCOL_ERROR.
pub const DOQ_PROTOCOL_ERROR: u32 = 0x2;

/// The edns-tcp-keepalive option (RFC 7828), forbidden over DoQ (RFC 9250 §5.5.2).
const EDNS_TCP_KEEPALIVE: u16 = 11;

/// CoreDNS's `coredns_dns_quic_responses_total{server,status}`: streams answered (`0x0`) and
/// connections closed with an error code (`0x1`, `0x2`).
static RESPONSES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    crate::metrics::counter_vec(
        "coredns_dns_quic_responses_total",
        "Counter of DoQ responses per server and QUIC application code.",
        &["server", "status"],
    )
});

/// A listener's `coredns_dns_quic_responses_total` counters, resolved once (no label lookup per
/// query): by code 0x0, 0x1, 0x2.
struct Counters([prometheus::IntCounter; 3]);

impl Counters {
    fn new(server: &str) -> Arc<Self> {
        Arc::new(Counters(
            ["0x0", "0x1", "0x2"].map(|s| RESPONSES.with_label_values(&[server, s])),
        ))
    }

    fn count(&self, code: u32) {
        self.0[(code as usize).min(2)].inc();
    }
}

/// A UDP socket for a QUIC endpoint on `addr`: non-blocking, SO_REUSEPORT as the other
/// listeners (a `bind`-restricted block and a wildcard one can share the port).
pub fn bind(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(!addr.ip().is_unspecified())?;
    }
    let _ = s.set_recv_buffer_size(1 << 20);
    let _ = s.set_send_buffer_size(1 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// The QUIC server config for a listener: its `tls` config with ALPN `doq` (TLS 1.3 only, as
/// QUIC requires), its stream limit and idle timeout.
fn server_config(
    tls: &rustls::ServerConfig,
    router: &Router,
    limits: &StreamLimits,
) -> Result<quinn::ServerConfig, String> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // quinn takes 0 or u32::MAX; 0-RTT is off (RFC 9250 §4.5: a server may refuse it, and
    // replayable queries would need checking).
    tls.max_early_data_size = 0;
    let crypto = QuicServerConfig::try_from(Arc::new(tls)).map_err(|e| format!("quic: {e}"))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut t = quinn::TransportConfig::default();
    let streams = u32::try_from(router.quic.max_streams()).unwrap_or(u32::MAX);
    t.max_concurrent_bidi_streams(VarInt::from_u32(streams));
    // RFC 9250 §4.2: DoQ uses no unidirectional streams.
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    let idle = limits.idle_timeout.min(Duration::from_secs(3600));
    t.max_idle_timeout(quinn::IdleTimeout::try_from(idle).ok());
    cfg.transport_config(Arc::new(t));
    Ok(cfg)
}

/// The endpoint of a `quic://` listener on `socket`. Fails when the block's TLS config does not
/// allow QUIC (no TLS 1.3).
pub fn endpoint(
    socket: std::net::UdpSocket,
    listener: &Arc<ArcSwap<Router>>,
    limits: &StreamLimits,
) -> Result<Endpoint, String> {
    let router = listener.load();
    let tls = router
        .tls
        .as_ref()
        .ok_or_else(|| format!("{} needs the tls directive", router.server))?;
    let limits = limits.with(&router.timeouts);
    let cfg = server_config(tls, &router, &limits)?;
    // `proxyproto`: quinn reads through a socket that strips the PROXY headers, as CoreDNS, by
    // the listener's policy at each read (a reload applies at once).
    let socket = quic_pp::socket(socket, quic_pp::from_router(listener), limits.idle_timeout)
        .map_err(|e| format!("quic endpoint: {e}"))?;
    Endpoint::new_with_abstract_socket(
        EndpointConfig::default(),
        Some(cfg),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|e| format!("quic endpoint: {e}"))
}

/// Accepts connections until `stop` flips; then lets the streams being served finish (at most
/// the write timeout) and closes the endpoint.
pub async fn serve(
    endpoint: Endpoint,
    router: Arc<ArcSwap<Router>>,
    tracker: Arc<Tracker>,
    limits: StreamLimits,
    mut stop: watch::Receiver<bool>,
) {
    let first = router.load_full();
    let server = first.server.clone();
    let table = ConnTable::new(
        server.clone(),
        DEFAULT_MAX_CONNECTIONS,
        limits.max_per_source,
    );
    let pool = first.quic.worker_pool_size();
    let workers = Arc::new(Semaphore::new(pool));
    let counters = Counters::new(&server);
    // The TLS config the endpoint was made with: a reload with a new certificate (or new
    // limits) gives new connections a new server config — the one that arrived just now too:
    // it is accepted with the config made here (`fresh`), not the one the endpoint had when
    // it arrived.
    let mut current = first;
    let mut fresh: Option<Arc<quinn::ServerConfig>> = None;
    let bound = endpoint
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), 0));
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
            } || now.quic != current.quic
                || now.timeouts != current.timeouts;
            if changed && let Some(tls) = &now.tls {
                match server_config(tls, &now, &limits.with(&now.timeouts)) {
                    Ok(cfg) => {
                        endpoint.set_server_config(Some(cfg.clone()));
                        fresh = Some(Arc::new(cfg));
                    }
                    Err(e) => tracing::error!("{}: {e}", now.server),
                }
            }
            current = now;
        }
        let slot = match table.admit(incoming.remote_address().ip()) {
            Admit::Yes(slot) => slot,
            Admit::No => {
                tracing::debug!(
                    "every quic connection is busy, refusing {}",
                    incoming.remote_address()
                );
                incoming.refuse();
                continue;
            }
        };
        let limits = limits.with(&current.timeouts);
        let conn = ConnTask {
            router: router.clone(),
            tracker: tracker.clone(),
            workers: workers.clone(),
            counters: counters.clone(),
            limits,
            state: slot.state.clone(),
            table: table.clone(),
            bound,
        };
        let stop = stop.clone();
        let cfg = fresh.clone();
        tokio::spawn(async move {
            let src = incoming.remote_address();
            let accept = async {
                match cfg {
                    Some(cfg) => incoming.accept_with(cfg)?.await,
                    None => incoming.accept()?.await,
                }
            };
            let accepted = tokio::select! {
                r = tokio::time::timeout(limits.read_timeout, accept) => r,
                _ = slot.state.closed() => return,
            };
            match accepted {
                Ok(Ok(c)) => conn.serve(c, stop).await,
                Ok(Err(e)) => tracing::debug!("quic handshake with {src}: {e}"),
                Err(_) => tracing::debug!("quic handshake with {src}: timed out"),
            }
            drop(slot);
        });
    }
    // Streams being served finish before the endpoint goes (all workers back).
    let _ = tokio::time::timeout(
        limits.write_timeout,
        workers.acquire_many(u32::try_from(pool).unwrap_or(u32::MAX)),
    )
    .await;
    endpoint.close(VarInt::from_u32(DOQ_NO_ERROR), b"");
}

/// One connection and what serving its streams needs.
struct ConnTask {
    router: Arc<ArcSwap<Router>>,
    tracker: Arc<Tracker>,
    workers: Arc<Semaphore>,
    counters: Arc<Counters>,
    limits: StreamLimits,
    state: Arc<ConnState>,
    table: Arc<ConnTable>,
    /// The endpoint's address (the wildcard for a wildcard listener).
    bound: SocketAddr,
}

impl ConnTask {
    async fn serve(self, conn: Connection, mut stop: watch::Receiver<bool>) {
        let src = conn.remote_address();
        // The address the client reached (the listener's when the kernel does not say).
        let local = SocketAddr::new(
            conn.local_ip().unwrap_or(self.bound.ip()),
            self.bound.port(),
        );
        loop {
            self.state.wait();
            let (send, recv) = tokio::select! {
                biased;
                _ = stop.changed() => break,
                // Shed by the table to admit another connection.
                _ = self.state.closed() => break,
                r = conn.accept_bi() => match r {
                    Ok(s) => s,
                    // Closed by the client, idle timeout, or an error we closed it with.
                    Err(_) => return,
                },
            };
            self.state.active(&self.table);
            // CoreDNS's worker pool: streams served at once across the listener.
            let permit = tokio::select! {
                p = self.workers.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = conn.closed() => return,
            };
            self.state.query_started();
            let stream = StreamTask {
                conn: conn.clone(),
                router: self.router.clone(),
                tracker: self.tracker.clone(),
                counters: self.counters.clone(),
                limits: self.limits,
                state: self.state.clone(),
                src,
                local,
            };
            tokio::spawn(async move {
                let _permit = permit;
                stream.serve(send, recv).await;
            });
        }
        // Stopped or shed: let the streams in flight finish, then close without error.
        let wait = async {
            while !self.state.owes_nothing() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(self.limits.write_timeout, wait).await;
        conn.close(VarInt::from_u32(DOQ_NO_ERROR), b"");
    }
}

/// One stream: one query and its reply.
struct StreamTask {
    conn: Connection,
    router: Arc<ArcSwap<Router>>,
    tracker: Arc<Tracker>,
    counters: Arc<Counters>,
    limits: StreamLimits,
    state: Arc<ConnState>,
    src: SocketAddr,
    local: SocketAddr,
}

impl StreamTask {
    async fn serve(self, mut send: SendStream, mut recv: RecvStream) {
        self.serve_inner(&mut send, &mut recv).await;
        self.state.query_done();
    }

    async fn serve_inner(&self, send: &mut SendStream, recv: &mut RecvStream) {
        let read = async {
            let mut len = [0u8; 2];
            recv.read_exact(&mut len).await.ok()?;
            let n = u16::from_be_bytes(len) as usize;
            if n == 0 {
                // A draft DoQ client (no length prefix) or garbage.
                return None;
            }
            let mut buf = vec![0u8; n];
            recv.read_exact(&mut buf).await.ok()?;
            Some(buf)
        };
        let buf = match tokio::time::timeout(self.limits.read_timeout, read).await {
            Ok(Some(b)) => b,
            _ => return self.protocol_error("incomplete message"),
        };
        if let Err(why) = check(&buf) {
            return self.protocol_error(why);
        }
        // The query's stream is answered on; a client that asks for nothing more may stop
        // sending (its FIN is not awaited, as CoreDNS).
        let reply =
            match query::prepare(&self.router.load(), &buf, self.src, self.local, Proto::Quic) {
                Prepared::Done(bytes) => bytes.map(Reply::One),
                Prepared::Query(req, block) => {
                    let _guard = self.tracker.start();
                    query::run_stream(req, block).await
                }
            };
        let ok = match reply {
            None => true,
            Some(Reply::One(bytes)) => self.write(send, &bytes).await,
            Some(Reply::Stream(mut rx)) => {
                let mut ok = true;
                while let Some(msg) = rx.recv().await {
                    if !self.write(send, &msg).await {
                        ok = false;
                        break;
                    }
                }
                ok
            }
        };
        if ok {
            let _ = send.finish();
            self.counters.count(DOQ_NO_ERROR);
        } else {
            let _ = send.reset(VarInt::from_u32(DOQ_INTERNAL_ERROR));
        }
    }

    /// Writes one length-prefixed message within the write timeout.
    async fn write(&self, send: &mut SendStream, msg: &[u8]) -> bool {
        let n = msg.len().min(u16::MAX as usize);
        let mut out = Vec::with_capacity(n + 2);
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend_from_slice(&msg[..n]);
        matches!(
            tokio::time::timeout(self.limits.write_timeout, send.write_all(&out)).await,
            Ok(Ok(()))
        )
    }

    /// RFC 9250 §4.3.3: abort the connection with DOQ_PROTOCOL_ERROR.
    fn protocol_error(&self, why: &str) {
        tracing::debug!(
            "closing quic connection from {} with DOQ_PROTOCOL_ERROR: {why}",
            self.src
        );
        self.conn
            .close(VarInt::from_u32(DOQ_PROTOCOL_ERROR), b"protocol error");
        self.counters.count(DOQ_PROTOCOL_ERROR);
    }
}

/// The protocol errors of a DoQ query (RFC 9250 §4.3.3), judged as CoreDNS's
/// `dnsutil.UnpackRequest` and `validRequest`: a header miekg/dns's accept function rejects
/// (a response, an opcode other than QUERY and NOTIFY, QDCOUNT ≠ 1, ANCOUNT > 1, NSCOUNT > 1,
/// ARCOUNT > 2), a message that does not decode, a non-zero message ID, an edns-tcp-keepalive
/// option.
pub fn check(buf: &[u8]) -> Result<(), &'static str> {
    if buf.len() < wire::HEADER {
        return Err("short message");
    }
    let flags = u16::from_be_bytes([buf[2], buf[3]]);
    let opcode = (flags >> 11) & 0xf;
    let count = |i: usize| u16::from_be_bytes([buf[4 + 2 * i], buf[5 + 2 * i]]);
    if flags & 0x8000 != 0 || !(opcode == 0 || opcode == 4) {
        return Err("not a query");
    }
    if count(0) != 1 || count(1) > 1 || count(2) > 1 || count(3) > 2 {
        return Err("header rejected");
    }
    let layout = match wire::scan(buf) {
        Some(l) => Some(l),
        None => {
            use hickory_proto::serialize::binary::BinDecodable;
            hickory_proto::op::Message::from_bytes(buf).map_err(|_| "undecodable message")?;
            None
        }
    };
    if buf[0] != 0 || buf[1] != 0 {
        return Err("message ID is not 0");
    }
    if let Some(l) = layout
        && let Some(i) = l.opt
        && let Some(rr) = l.rrs.get(i)
        && cookie::find_option(&buf[rr.rdata..rr.end], EDNS_TCP_KEEPALIVE).is_some()
    {
        return Err("edns-tcp-keepalive option");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::opt::EdnsOption;
    use hickory_proto::rr::{Name, RecordType};

    fn query(id: u16) -> Message {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.queries.push(Query::query(
            Name::from_ascii("example.org.").unwrap(),
            RecordType::A,
        ));
        m
    }

    /// Each protocol error of RFC 9250 §4.3.3 that can be judged from the message, and the
    /// messages that pass.
    #[test]
    fn check_table() {
        let ok = query(0).to_vec().unwrap();
        let nonzero = query(0x1234).to_vec().unwrap();
        let mut keepalive = query(0);
        let mut edns = Edns::new();
        edns.options_mut()
            .insert(EdnsOption::Unknown(EDNS_TCP_KEEPALIVE, vec![]));
        keepalive.edns = Some(edns);
        let keepalive = keepalive.to_vec().unwrap();
        let mut with_edns = query(0);
        with_edns.edns = Some(Edns::new());
        let with_edns = with_edns.to_vec().unwrap();
        let mut response = ok.clone();
        response[2] |= 0x80;
        let mut two_questions = ok.clone();
        two_questions[5] = 2;
        let mut notify = ok.clone();
        notify[2] |= 4 << 3;
        let mut update = ok.clone();
        update[2] |= 5 << 3;
        let truncated = ok[..ok.len() - 2].to_vec();
        let cases: &[(&str, &[u8], Result<(), &str>)] = &[
            ("query", &ok, Ok(())),
            ("query with EDNS", &with_edns, Ok(())),
            ("NOTIFY", &notify, Ok(())),
            ("non-zero ID", &nonzero, Err("message ID is not 0")),
            ("keepalive", &keepalive, Err("edns-tcp-keepalive option")),
            ("response", &response, Err("not a query")),
            ("UPDATE", &update, Err("not a query")),
            ("two questions", &two_questions, Err("header rejected")),
            ("truncated", &truncated, Err("undecodable message")),
            ("short", &ok[..11], Err("short message")),
        ];
        for (what, buf, want) in cases {
            assert_eq!(check(buf), *want, "{what}");
        }
    }
}
