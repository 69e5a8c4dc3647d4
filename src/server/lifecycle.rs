//! Starting, reloading and stopping: listeners are bound once and kept across reloads (the new
//! config's routers are swapped in, so no query is dropped); SIGTERM/SIGINT enter lameduck, stop
//! accepting, drain and exit 0.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::corefile::{self, Corefile, Scheme};
use crate::plugin::StartupCtx;
use crate::server::build::{self, Config, ConfigError, ListenerKey};
use crate::server::conns::StreamLimits;
use crate::server::ops::{Ops, ReadyFn};
use crate::server::quic;
use crate::server::router::Router;
use crate::server::tcp;
use crate::server::tracker::Tracker;
use crate::server::udp;

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A Corefile on disk (reloadable).
    File(PathBuf),
    /// Built-in text (the default config).
    Inline { text: String, label: PathBuf },
}

impl Source {
    pub fn read(&self, dns_port: u16) -> Result<(Corefile, Vec<u8>), ConfigError> {
        let (bytes, label): (Vec<u8>, &Path) = match self {
            Source::File(p) => (
                std::fs::read(p).map_err(|e| ConfigError(format!("{}: {e}", p.display())))?,
                p,
            ),
            Source::Inline { text, label } => (text.as_bytes().to_vec(), label),
        };
        let mut cf = corefile::parse_str(&String::from_utf8_lossy(&bytes), label, dns_port)?;
        if cf.blocks.is_empty() {
            cf = corefile::parse_str(
                &corefile::default_corefile(dns_port),
                Path::new("<default>"),
                dns_port,
            )?;
        }
        Ok((cf, bytes))
    }

    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::File(p) => Some(p),
            Source::Inline { .. } => None,
        }
    }
}

struct Listener {
    router: Arc<ArcSwap<Router>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The address actually bound (ephemeral ports resolved).
    addr: SocketAddr,
}

/// A running server.
pub struct Server {
    pub source: Source,
    pub dns_port: u16,
    ops: Arc<Ops>,
    tracker: Arc<Tracker>,
    limits: StreamLimits,
    listeners: Mutex<BTreeMap<ListenerKey, Listener>>,
    current: ArcSwap<Option<Arc<Config>>>,
    hash: Mutex<String>,
    reload_lock: tokio::sync::Mutex<()>,
}

impl Server {
    pub fn new(source: Source, dns_port: u16) -> Arc<Self> {
        Arc::new(Server {
            source,
            dns_port,
            ops: Ops::new(),
            tracker: Tracker::new(),
            limits: StreamLimits::default(),
            listeners: Mutex::new(BTreeMap::new()),
            current: ArcSwap::from_pointee(None),
            hash: Mutex::new(String::new()),
            reload_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn ops(&self) -> &Arc<Ops> {
        &self.ops
    }

    /// Reads, sets up and starts the configuration. Errors are returned, nothing is left running.
    pub async fn start(self: &Arc<Self>) -> Result<Arc<Config>, ConfigError> {
        let (cf, bytes) = self.source.read(self.dns_port)?;
        let cfg = Arc::new(build::build(&cf)?);
        self.apply(cfg.clone()).await?;
        *self.hash.lock().unwrap() = sha512_hex(&bytes);
        record_version(&sha512_hex(&bytes));
        Ok(cfg)
    }

    /// The address each listener is bound to, e.g. for tests: (`dns://:0`, 127.0.0.1:41234).
    pub fn bound(&self) -> Vec<(ListenerKey, SocketAddr)> {
        self.listeners
            .lock()
            .unwrap()
            .iter()
            .map(|(k, l)| (*k, l.addr))
            .collect()
    }

    /// Binds what is new, swaps routers of listeners that stay, stops the ones that go, runs the
    /// startup hooks of the new plugins and the shutdown hooks of the old ones.
    async fn apply(self: &Arc<Self>, cfg: Arc<Config>) -> Result<(), ConfigError> {
        // 1. Bind every new listener before touching anything, so a failure changes nothing.
        let mut fresh: Vec<(ListenerKey, Bound, SocketAddr)> = Vec::new();
        {
            let running = self.listeners.lock().unwrap();
            for (key, router) in cfg.listeners.iter() {
                if running.contains_key(key) {
                    continue;
                }
                if key.scheme == Scheme::Quic {
                    let (sock, addr) = bind_quic(key).map_err(ConfigError)?;
                    // The endpoint's socket reads the listener's router for its policy: the
                    // router it is served with from the start.
                    let listener = Arc::new(ArcSwap::from_pointee(router.clone()));
                    let ep = quic::endpoint(sock, &listener, &self.limits)
                        .map_err(|e| ConfigError(format!("listen {key}: {e}")))?;
                    fresh.push((*key, Bound::Quic(ep, listener), addr));
                    continue;
                }
                let (udp_socks, tcp_l, addr) =
                    bind_listener(key, router.num_sockets).map_err(ConfigError)?;
                fresh.push((*key, Bound::Stream(udp_socks, tcp_l), addr));
            }
        }
        // 2. Endpoints (health, ready, metrics).
        let ready_cfg = cfg.clone();
        let ready: ReadyFn = Arc::new(move || ready_cfg.not_ready());
        let up_cfg = cfg.clone();
        self.ops
            .set_upstreams_down(Arc::new(move || up_cfg.upstreams_down()));
        self.ops
            .apply(&cfg.endpoints, ready)
            .await
            .map_err(ConfigError)?;

        // 3. Swap routers, start new listeners, stop removed ones.
        let mut cfg_listeners: BTreeMap<ListenerKey, Router> = BTreeMap::new();
        // Routers are moved out of an Arc'd Config: copies (the blocks are shared).
        for (k, r) in cfg.listeners.iter() {
            cfg_listeners.insert(*k, r.clone());
        }
        let old_cfg = self.current.load_full();
        {
            let mut running = self.listeners.lock().unwrap();
            for (key, router) in cfg_listeners.iter_mut() {
                if let Some(l) = running.get(key) {
                    l.router.store(Arc::new(std::mem::replace(
                        router,
                        Router::new(Arc::from(""), None),
                    )));
                }
            }
            for (key, bound, addr) in fresh {
                let router = cfg_listeners.remove(&key).expect("listener in config");
                let router = match &bound {
                    Bound::Quic(_, listener) => listener.clone(),
                    Bound::Stream(..) => Arc::new(ArcSwap::from_pointee(router)),
                };
                let (stop_tx, stop_rx) = watch::channel(false);
                let mut tasks = Vec::new();
                let (udp_socks, tcp_l) = match bound {
                    Bound::Stream(u, t) => (u, t),
                    Bound::Quic(ep, _) => {
                        tasks.push(tokio::spawn(quic::serve(
                            ep,
                            router.clone(),
                            self.tracker.clone(),
                            self.limits,
                            stop_rx.clone(),
                        )));
                        (Vec::new(), Vec::new())
                    }
                };
                for s in udp_socks {
                    if key.scheme == Scheme::Https3 {
                        tasks.push(tokio::spawn(crate::server::h3::serve(
                            s,
                            router.clone(),
                            self.tracker.clone(),
                            self.limits,
                            stop_rx.clone(),
                        )));
                        continue;
                    }
                    tasks.push(tokio::spawn(udp::serve(
                        s,
                        router.clone(),
                        self.tracker.clone(),
                        stop_rx.clone(),
                    )));
                }
                // An `https://` listener's cap is its `https { max_connections }` (the TCP
                // listener applies it, and a reload's new value).
                let (kind, limits) = match key.scheme {
                    Scheme::Tls => (tcp::Kind::Tls, self.limits),
                    Scheme::Https => (tcp::Kind::Https, self.limits),
                    _ => (tcp::Kind::Dns, self.limits),
                };
                for t in tcp_l {
                    tasks.push(tokio::spawn(tcp::serve(
                        t,
                        router.clone(),
                        self.tracker.clone(),
                        limits,
                        kind,
                        stop_rx.clone(),
                    )));
                }
                running.insert(
                    key,
                    Listener {
                        router,
                        stop: stop_tx,
                        tasks,
                        addr,
                    },
                );
            }
            let gone: Vec<ListenerKey> = running
                .keys()
                .filter(|k| !cfg.listeners.contains_key(k))
                .copied()
                .collect();
            for k in gone {
                if let Some(l) = running.remove(&k) {
                    let _ = l.stop.send(true);
                }
            }
        }
        self.current.store(Arc::new(Some(cfg.clone())));
        crate::server::logging::set_debug(cfg.debug());
        crate::metrics::reset_plugins_enabled();
        for (server, zone, names) in &cfg.enabled {
            crate::metrics::record_plugins_enabled(server, zone, names);
        }

        // 4. Lifecycle hooks.
        if let Some(old) = old_cfg.as_ref() {
            for p in old.plugins() {
                p.on_shutdown();
            }
        }
        let bound = self.bound();
        for (i, block) in cfg.blocks.iter().enumerate() {
            let dns_addrs: Vec<SocketAddr> = cfg.block_listeners[i]
                .iter()
                .filter(|k| k.scheme == Scheme::Dns)
                .filter_map(|k| {
                    bound
                        .iter()
                        .find(|(bk, _)| bk == k)
                        .map(|(_, a)| loopback_if_wildcard(*a))
                })
                .collect();
            let ctx = StartupCtx {
                dns_addrs,
                zones: block.zones.clone(),
            };
            for p in &block.chain {
                if let Err(e) = p.on_startup(&ctx).await {
                    return Err(ConfigError(format!("plugin/{}: {e}", p.name())));
                }
            }
        }
        Ok(())
    }

    /// Re-reads the Corefile; applies it if its hash changed (or `force`). A bad config is logged
    /// and counted, and the running one stays.
    pub async fn reload(self: &Arc<Self>, force: bool) -> Result<bool, ConfigError> {
        let _g = self.reload_lock.lock().await;
        let result = async {
            let (cf, bytes) = self.source.read(self.dns_port)?;
            let hash = sha512_hex(&bytes);
            if !force && *self.hash.lock().unwrap() == hash {
                return Ok(false);
            }
            let cfg = Arc::new(build::build(&cf)?);
            self.apply(cfg).await?;
            *self.hash.lock().unwrap() = hash.clone();
            record_version(&hash);
            tracing::info!(target: "exdns::plugin::reload", "Running configuration SHA512 = {hash}");
            Ok(true)
        }
        .await;
        if let Err(e) = &result {
            crate::metrics::RELOAD_FAILED.inc();
            tracing::error!(target: "exdns::plugin::reload", "Corefile changed but reload failed: {e}");
        }
        result
    }

    /// Polls the Corefile per the `reload` directive until the server stops.
    pub fn spawn_reload_loop(self: &Arc<Self>) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let cfg = me.current.load_full();
                let Some(rc) = cfg.as_ref().as_ref().and_then(|c| c.reload) else {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                if me.source.path().is_none() {
                    return;
                }
                let jitter = if rc.jitter.is_zero() {
                    Duration::ZERO
                } else {
                    Duration::from_millis(rand::random_range(0..=rc.jitter.as_millis() as u64))
                };
                tokio::time::sleep(rc.interval.saturating_sub(rc.jitter) + jitter).await;
                let _ = me.reload(false).await;
            }
        })
    }

    /// Lameduck, stop accepting, drain, shutdown hooks.
    pub async fn shutdown(self: &Arc<Self>) {
        let cfg = self.current.load_full();
        let lameduck = cfg
            .as_ref()
            .as_ref()
            .map(|c| c.lameduck)
            .unwrap_or_default();
        self.ops.set_lameduck();
        if !lameduck.is_zero() {
            tracing::info!(target: "exdns::plugin::health", "Going into lameduck mode for {}", humantime::format_duration(lameduck));
            tokio::time::sleep(lameduck).await;
        }
        let tasks: Vec<JoinHandle<()>> = {
            let mut running = self.listeners.lock().unwrap();
            let mut tasks = Vec::new();
            for (_, l) in std::mem::take(&mut *running) {
                let _ = l.stop.send(true);
                tasks.extend(l.tasks);
            }
            tasks
        };
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
        }
        if !self.tracker.drain(Duration::from_secs(5)).await {
            tracing::warn!(
                "shutdown: {} queries still in flight after 5s",
                self.tracker.in_flight()
            );
        }
        if let Some(c) = cfg.as_ref() {
            for p in c.plugins() {
                p.on_shutdown();
            }
        }
        self.ops.shutdown().await;
    }
}

fn loopback_if_wildcard(a: SocketAddr) -> SocketAddr {
    if a.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], a.port()))
    } else {
        a
    }
}

/// Binds UDP and TCP on the same port, several SO_REUSEPORT sockets each: `num_sockets` of
/// both (`multisocket`), else one UDP socket per core (at most 16) and one TCP socket. For port
/// 0 the first UDP socket picks the port and the others follow it.
fn bind_listener(
    key: &ListenerKey,
    num_sockets: Option<usize>,
) -> Result<
    (
        Vec<std::net::UdpSocket>,
        Vec<std::net::TcpListener>,
        SocketAddr,
    ),
    String,
> {
    let (n_udp, n_tcp) = match num_sockets {
        Some(n) => (n.max(1), n.max(1)),
        None => (
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, 16),
            1,
        ),
    };
    let try_bind = |addr: SocketAddr| -> std::io::Result<(
        Vec<std::net::UdpSocket>,
        Vec<std::net::TcpListener>,
        SocketAddr,
    )> {
        if key.scheme == Scheme::Https3 {
            // QUIC: one UDP socket, no TCP.
            let udp_socks = udp::bind(addr, 1)?;
            let bound = udp_socks[0].local_addr()?;
            return Ok((udp_socks, Vec::new(), bound));
        }
        for _attempt in 0..20 {
            let udp_socks = if matches!(key.scheme, Scheme::Tls | Scheme::Https) {
                Vec::new()
            } else {
                udp::bind(addr, n_udp)?
            };
            let port = udp_socks
                .first()
                .map(|s| s.local_addr().map(|a| a.port()))
                .transpose()?
                .unwrap_or(addr.port());
            let tcp_addr = SocketAddr::new(addr.ip(), port);
            match tcp::bind(tcp_addr) {
                Ok(t) => {
                    let bound = t.local_addr()?;
                    let mut tcp = vec![t];
                    for _ in 1..n_tcp {
                        tcp.push(tcp::bind(bound)?);
                    }
                    return Ok((udp_socks, tcp, bound));
                }
                Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "no free port for UDP and TCP",
        ))
    };
    match try_bind(key.bind_addr()) {
        Ok(v) => Ok(v),
        Err(e)
            if key.ip.is_none() && e.kind() == std::io::ErrorKind::AddrNotAvailable
                || key.ip.is_none() && e.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
        {
            try_bind(key.bind_addr_v4()).map_err(|e| format!("listen {}: {e}", key.bind_addr_v4()))
        }
        Err(e) => Err(format!("listen {} ({}): {e}", key.bind_addr(), key)),
    }
}

/// What a new listener was bound to.
enum Bound {
    /// Plain DNS (UDP and TCP sockets) or DoT (TCP only).
    Stream(Vec<std::net::UdpSocket>, Vec<std::net::TcpListener>),
    /// DoQ: a QUIC endpoint on one UDP socket, and the listener's router it reads its
    /// `proxyproto` policy from.
    Quic(quinn::Endpoint, Arc<ArcSwap<Router>>),
}

/// Binds the UDP socket of a `quic://` listener (IPv4 wildcard on hosts without IPv6).
fn bind_quic(key: &ListenerKey) -> Result<(std::net::UdpSocket, SocketAddr), String> {
    let bind = |addr: SocketAddr| {
        let s = quic::bind(addr)?;
        let a = s.local_addr()?;
        Ok::<_, std::io::Error>((s, a))
    };
    match bind(key.bind_addr()) {
        Ok(v) => Ok(v),
        Err(e)
            if key.ip.is_none()
                && (e.kind() == std::io::ErrorKind::AddrNotAvailable
                    || e.raw_os_error() == Some(libc::EAFNOSUPPORT)) =>
        {
            bind(key.bind_addr_v4()).map_err(|e| format!("listen {}: {e}", key.bind_addr_v4()))
        }
        Err(e) => Err(format!("listen {} ({}): {e}", key.bind_addr(), key)),
    }
}

fn sha512_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha512::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn record_version(hash: &str) {
    crate::metrics::RELOAD_VERSION.reset();
    crate::metrics::RELOAD_VERSION
        .with_label_values(&["sha512", hash])
        .set(1);
}
