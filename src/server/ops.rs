//! The HTTP listeners that serve the endpoints directives register ([`HttpEndpoint`]: `/health`,
//! `/ready`, `/metrics`, the pod IP). Listeners are kept across reloads when their address is
//! unchanged; what they serve is swapped in place.
//!
//! Addresses are spelled as in a Corefile: `:8080` (every interface: one dual-stack `[::]`
//! socket, or `0.0.0.0` where IPv6 is unavailable), `localhost:9153` (127.0.0.1),
//! `127.0.0.1:8181`, `[::1]:9153`, a host name (its first IPv4 address, else its first address,
//! as Go listens). Port 0 picks a free port; [`Ops::bound_addrs`] tells which.
//!
//! Endpoints configured on the same address share one listener that serves all their paths
//! (CoreDNS would fail with "address already in use"; a shared `:8080` for health and ready is a
//! common wish). Each path is only served where it is configured; other paths answer 404.
//!
//! Only `GET` and `HEAD` are served on an endpoint's path (405 otherwise); an endpoint without a
//! path answers every method. Slow clients cannot tie the server up: the
//! request head must arrive within [`HEADER_READ_TIMEOUT`], a connection lives at most
//! [`CONN_MAX_AGE`] (then it is closed after its current request), and at most
//! [`MAX_CONNECTIONS`] connections are open at once across all listeners (more are closed at
//! once).

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::plugin::http::{HttpEndpoint, HttpHandler, ServerState, TEXT_PLAIN};
use crate::plugin::util::{io_error_text, parse_port, split_host_port};

/// Names of the plugins that are not ready yet (empty: ready).
pub type ReadyFn = Arc<dyn Fn() -> Vec<&'static str> + Send + Sync>;

/// Whether every forwarding upstream is down (`None`: nothing forwards).
pub type UpstreamsDownFn = Arc<dyn Fn() -> bool + Send + Sync>;

/// How long a client has to send a request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection may stay open; then it is closed after the request in progress.
pub const CONN_MAX_AGE: Duration = Duration::from_secs(30);
/// How long a closing connection gets to finish the request in progress.
const CONN_GRACE: Duration = Duration::from_secs(5);
/// Open connections allowed across all listeners.
pub const MAX_CONNECTIONS: usize = 256;
/// A self-probe gives up after this long (as CoreDNS's health probe).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What one address serves: the handler of each path, and the one for every other path.
#[derive(Default)]
struct Routes {
    paths: Vec<(&'static str, Arc<dyn HttpHandler>)>,
    other: Option<Arc<dyn HttpHandler>>,
}

impl Routes {
    /// The endpoint the listener probes itself, if any.
    fn probe(&self) -> Option<(&'static str, &Arc<dyn HttpHandler>)> {
        self.paths
            .iter()
            .find(|(_, h)| h.self_probe())
            .map(|(p, h)| (*p, h))
    }
}

/// State the connection handlers share with [`Ops`].
struct Shared {
    lameduck: AtomicBool,
    ready: ArcSwap<ReadyFn>,
    upstreams_down: ArcSwap<UpstreamsDownFn>,
    conns: Arc<Semaphore>,
    header_read_timeout: Duration,
    probe_interval_ms: AtomicU64,
}

impl ServerState for Shared {
    fn lameduck(&self) -> bool {
        self.lameduck.load(Ordering::Relaxed)
    }
    fn not_ready(&self) -> Vec<&'static str> {
        (**self.ready.load())()
    }
    fn upstreams_down(&self) -> bool {
        (**self.upstreams_down.load())()
    }
}

/// One running listener.
struct Listener {
    local: SocketAddr,
    /// What it serves; swapped in place on reload.
    routes: Arc<ArcSwap<Routes>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Runs the operations HTTP listeners.
pub struct Ops {
    shared: Arc<Shared>,
    /// Running listeners by configured address.
    listeners: Mutex<BTreeMap<String, Listener>>,
    /// Serialises `apply` and `shutdown`.
    apply_lock: tokio::sync::Mutex<()>,
}

impl Ops {
    pub fn new() -> Arc<Self> {
        Self::with_limits(HEADER_READ_TIMEOUT, MAX_CONNECTIONS)
    }

    fn with_limits(header_read_timeout: Duration, max_connections: usize) -> Arc<Self> {
        let not_configured: ReadyFn = Arc::new(Vec::new);
        Arc::new(Ops {
            shared: Arc::new(Shared {
                lameduck: AtomicBool::new(false),
                ready: ArcSwap::from_pointee(not_configured),
                upstreams_down: ArcSwap::from_pointee(Arc::new(|| false) as UpstreamsDownFn),
                conns: Arc::new(Semaphore::new(max_connections)),
                header_read_timeout,
                probe_interval_ms: AtomicU64::new(1000),
            }),
            listeners: Mutex::new(BTreeMap::new()),
            apply_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Makes the running listeners match `endpoints`: starts new addresses, stops removed ones,
    /// keeps the rest without a gap. `ready` is what [`ServerState::not_ready`] asks.
    ///
    /// On error (an address that cannot be resolved or bound) the running listeners are left as
    /// they were and the error reads as Go's: `listen tcp :8080: bind: address already in use`.
    pub async fn apply(&self, endpoints: &[HttpEndpoint], ready: ReadyFn) -> Result<(), String> {
        let _serial = self.apply_lock.lock().await;
        let mut desired = desired_routes(endpoints);

        // Resolve and bind every new address before touching the running set.
        let running: HashSet<String> = self.lock().keys().cloned().collect();
        let new: Vec<String> = desired
            .keys()
            .filter(|addr| !running.contains(*addr))
            .cloned()
            .collect();
        let mut targets = Vec::with_capacity(new.len());
        for addr in new {
            let target = resolve(&addr).await?;
            targets.push((addr, target));
        }
        let bound = match bind_all(&targets) {
            Ok(bound) => bound,
            Err(first) => {
                // A new address may collide with one that is going away (`:8080` replaced by
                // `0.0.0.0:8080`): release the removed listeners and try once more, restoring
                // them if that fails too.
                let removed = self.take_removed(&desired);
                if removed.is_empty() {
                    return Err(first);
                }
                let restore: Vec<(String, Arc<Routes>)> = removed
                    .iter()
                    .map(|(a, l)| (a.clone(), l.routes.load_full()))
                    .collect();
                stop_all(removed.into_iter().map(|(_, l)| l).collect()).await;
                match bind_all(&targets) {
                    Ok(bound) => bound,
                    Err(e) => {
                        self.restore(restore).await;
                        return Err(e);
                    }
                }
            }
        };

        let previous_ready = self.shared.ready.swap(Arc::new(ready));
        let mut started = Vec::with_capacity(bound.len());
        for (addr, std_listener) in bound {
            let routes = desired.remove(&addr).unwrap_or_default();
            match self.start(&addr, std_listener, Arc::new(routes)) {
                Ok(l) => started.push((addr, l)),
                Err(e) => {
                    stop_all(started.into_iter().map(|(_, l)| l).collect()).await;
                    self.shared.ready.store(previous_ready);
                    return Err(e);
                }
            }
        }
        let removed = {
            let mut listeners = self.lock();
            let removed = take_removed_locked(&mut listeners, &desired);
            for (addr, routes) in desired {
                if let Some(listener) = listeners.get(&addr) {
                    listener.routes.store(Arc::new(routes));
                }
            }
            listeners.extend(started);
            removed
        };
        stop_all(removed.into_iter().map(|(_, l)| l).collect()).await;
        Ok(())
    }

    /// Sets what [`ServerState::upstreams_down`] asks.
    pub fn set_upstreams_down(&self, f: UpstreamsDownFn) {
        self.shared.upstreams_down.store(Arc::new(f));
    }

    /// Enter lameduck: `/ready` answers 503 from now on; `/health` keeps answering 200.
    pub fn set_lameduck(&self) {
        self.shared.lameduck.store(true, Ordering::Relaxed);
    }

    /// Close every listener (connections in progress get a moment to finish their request).
    /// A later [`Ops::apply`] starts afresh, out of lameduck.
    pub async fn shutdown(&self) {
        let _serial = self.apply_lock.lock().await;
        let all = std::mem::take(&mut *self.lock());
        stop_all(all.into_values().collect()).await;
        self.shared.lameduck.store(false, Ordering::Relaxed);
    }

    /// Every running listener: the address as configured and where it actually listens (the
    /// real port when 0 was configured).
    pub fn bound_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.lock()
            .iter()
            .map(|(a, l)| (a.clone(), l.local))
            .collect()
    }

    /// How often a listener probes an endpoint that asks for it ([`HttpHandler::self_probe`];
    /// default 1s, as CoreDNS's health plugin).
    /// Applies to listeners started afterwards.
    pub fn set_health_probe_interval(&self, every: Duration) {
        let ms = every.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
        self.shared.probe_interval_ms.store(ms, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Listener>> {
        self.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_removed(&self, desired: &BTreeMap<String, Routes>) -> Vec<(String, Listener)> {
        take_removed_locked(&mut self.lock(), desired)
    }

    /// Re-opens listeners released for a retry that failed (best effort: logged on failure).
    async fn restore(&self, restore: Vec<(String, Arc<Routes>)>) {
        for (addr, routes) in restore {
            let started = match resolve(&addr).await {
                Ok(target) => bind(&addr, &target).and_then(|l| self.start(&addr, l, routes)),
                Err(e) => Err(e),
            };
            match started {
                Ok(l) => {
                    self.lock().insert(addr, l);
                }
                Err(e) => tracing::error!("could not restore the HTTP listener on {addr}: {e}"),
            }
        }
    }

    /// Starts serving on a bound socket.
    fn start(
        &self,
        addr: &str,
        std_listener: std::net::TcpListener,
        routes: Arc<Routes>,
    ) -> Result<Listener, String> {
        let local = std_listener
            .local_addr()
            .map_err(|e| format!("listen tcp {addr}: {}", io_error_text(&e)))?;
        // A dual-stack wildcard socket is probed over IPv4: ::1 may be missing where IPv6 is
        // disabled (common in containers) while the socket still binds.
        let dual_stack = local.is_ipv6()
            && socket2::SockRef::from(&std_listener)
                .only_v6()
                .is_ok_and(|v6_only| !v6_only);
        let listener = TcpListener::from_std(std_listener)
            .map_err(|e| format!("listen tcp {addr}: {}", io_error_text(&e)))?;
        let routes = Arc::new(ArcSwap::new(routes));
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(accept_loop(
            listener,
            routes.clone(),
            self.shared.clone(),
            stop_rx.clone(),
        ))];
        let every = Duration::from_millis(self.shared.probe_interval_ms.load(Ordering::Relaxed));
        tasks.push(tokio::spawn(probe_loop(
            probe_target(local, dual_stack),
            routes.clone(),
            every,
            stop_rx,
        )));
        tracing::debug!("serving HTTP on {addr} ({local})");
        Ok(Listener {
            local,
            routes,
            stop,
            tasks,
        })
    }
}

/// Address → what to serve there. The first endpoint registered for an address and path wins.
fn desired_routes(endpoints: &[HttpEndpoint]) -> BTreeMap<String, Routes> {
    let mut m: BTreeMap<String, Routes> = BTreeMap::new();
    for e in endpoints {
        let routes = m.entry(e.addr.clone()).or_default();
        match e.path {
            Some(path) if !routes.paths.iter().any(|(p, _)| *p == path) => {
                routes.paths.push((path, e.handler.clone()));
            }
            None if routes.other.is_none() => routes.other = Some(e.handler.clone()),
            _ => {}
        }
    }
    m
}

fn take_removed_locked<V>(
    listeners: &mut BTreeMap<String, Listener>,
    desired: &BTreeMap<String, V>,
) -> Vec<(String, Listener)> {
    let gone: Vec<String> = listeners
        .keys()
        .filter(|a| !desired.contains_key(*a))
        .cloned()
        .collect();
    gone.into_iter()
        .filter_map(|a| listeners.remove(&a).map(|l| (a, l)))
        .collect()
}

/// Signals the listeners to stop and waits until their sockets are closed.
async fn stop_all(listeners: Vec<Listener>) {
    for l in &listeners {
        let _ = l.stop.send(true);
    }
    for l in listeners {
        for t in l.tasks {
            let _ = t.await;
        }
    }
}

/// Where an address listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// `:PORT`: every interface.
    All(u16),
    One(SocketAddr),
}

async fn resolve(addr: &str) -> Result<Target, String> {
    let (host, port) = split_host_port(addr).map_err(|e| format!("listen tcp {addr}: {e}"))?;
    let port =
        parse_port(port).ok_or_else(|| format!("listen tcp {addr}: invalid port {port:?}"))?;
    if host.is_empty() {
        return Ok(Target::All(port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Target::One(SocketAddr::new(ip, port)));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(Target::One(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
        )));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("listen tcp {addr}: lookup {host}: {}", io_error_text(&e)))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| Target::One(*a))
        .ok_or_else(|| format!("listen tcp {addr}: lookup {host}: no such host"))
}

fn bind_all(targets: &[(String, Target)]) -> Result<Vec<(String, std::net::TcpListener)>, String> {
    let mut out = Vec::with_capacity(targets.len());
    for (addr, target) in targets {
        // On error the ones bound so far are dropped, closing them.
        out.push((addr.clone(), bind(addr, target)?));
    }
    Ok(out)
}

fn bind(addr: &str, target: &Target) -> Result<std::net::TcpListener, String> {
    let err = |e: std::io::Error| format!("listen tcp {addr}: bind: {}", io_error_text(&e));
    match *target {
        Target::One(sa) => bind_socket(sa, false).map_err(err),
        Target::All(port) => {
            let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
            match bind_socket(v6, true) {
                Ok(l) => Ok(l),
                // In use or forbidden: IPv4 would fail the same way; report it.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied
                    ) =>
                {
                    Err(err(e))
                }
                // No IPv6 here: every IPv4 interface.
                Err(_) => {
                    let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
                    bind_socket(v4, false).map_err(err)
                }
            }
        }
    }
}

fn bind_socket(sa: SocketAddr, dual_stack: bool) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(sa), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&sa.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

async fn accept_loop(
    listener: TcpListener,
    routes: Arc<ArcSwap<Routes>>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let res = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            res = listener.accept() => res,
        };
        match res {
            Ok((stream, peer)) => {
                let Ok(permit) = shared.conns.clone().try_acquire_owned() else {
                    tracing::debug!("too many HTTP connections; closing the one from {peer}");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let routes = routes.clone();
                let shared = shared.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    serve_conn(stream, routes, shared, stop).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accepting an HTTP connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_conn(
    stream: TcpStream,
    routes: Arc<ArcSwap<Routes>>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let header_read_timeout = shared.header_read_timeout;
    let svc = service_fn(move |req: hyper::Request<Incoming>| {
        let resp = handle(req.method(), req.uri().path(), &routes.load(), &shared);
        async move { Ok::<_, Infallible>(resp) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(stream), svc);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!("HTTP connection: {e}");
            }
            return;
        }
        _ = stop.wait_for(|s| *s) => {}
        _ = tokio::time::sleep(CONN_MAX_AGE) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(CONN_GRACE, conn).await;
}

type Resp = Response<Full<Bytes>>;

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Answers one request.
fn handle(method: &Method, path: &str, routes: &Routes, shared: &Shared) -> Resp {
    let Some((_, handler)) = routes.paths.iter().find(|(p, _)| *p == path) else {
        return match &routes.other {
            Some(h) => to_response(h.respond(shared)),
            None => respond(StatusCode::NOT_FOUND, TEXT_PLAIN, "404 page not found\n"),
        };
    };
    if method != Method::GET && method != Method::HEAD {
        let mut r = respond(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT_PLAIN,
            "Method Not Allowed\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    to_response(handler.respond(shared))
}

fn to_response(r: crate::plugin::http::HttpResponse) -> Resp {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond(status, r.content_type, r.body)
}

/// Where a listener's self-probe connects: its own address; loopback for a wildcard one (IPv4
/// loopback when the socket also takes IPv4).
fn probe_target(local: SocketAddr, dual_stack: bool) -> SocketAddr {
    let port = local.port();
    match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        }
        IpAddr::V6(ip) if ip.is_unspecified() && dual_stack => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)
        }
        _ => local,
    }
}

/// While the listener serves an endpoint that asks for a self-probe, fetches it every `every` and
/// tells the endpoint how long that took and whether an HTTP answer came (CoreDNS's health
/// plugin probes its own `/health` so).
async fn probe_loop(
    target: SocketAddr,
    routes: Arc<ArcSwap<Routes>>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; probe after one interval, as CoreDNS
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let (path, handler) = match routes.load().probe() {
            Some((path, handler)) => (path, handler.clone()),
            None => continue,
        };
        let start = Instant::now();
        let res = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            res = tokio::time::timeout(PROBE_TIMEOUT, probe_once(target, path)) => res,
        };
        let result = res.unwrap_or_else(|_| Err("timeout".to_string()));
        handler.probed(&format!("http://{target}{path}"), start.elapsed(), result);
    }
}

/// One `GET path`; Ok once a response status line arrives.
async fn probe_once(target: SocketAddr, path: &str) -> Result<(), String> {
    let mut s = TcpStream::connect(target)
        .await
        .map_err(|e| io_error_text(&e))?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: exdns-health\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| io_error_text(&e))?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let got = s.read(&mut buf[n..]).await.map_err(|e| io_error_text(&e))?;
        if got == 0 {
            return Err("connection closed before a response".to_string());
        }
        n += got;
    }
    let head = &buf[..n];
    if head.starts_with(b"HTTP/1.") && head[8] == b' ' && head[9..12].iter().all(u8::is_ascii_digit)
    {
        Ok(())
    } else {
        Err("malformed HTTP response".to_string())
    }
}

#[cfg(test)]
mod tests;
