//! Settings that directives without a handler of their own (tls, bind, health, ready, reload,
//! prometheus, podip) record for their server block; the server builds listeners and HTTP
//! endpoints from them.

use std::sync::Arc;
use std::time::Duration;

use crate::dns::cookie::Cookies;
use crate::plugin::http::HttpEndpoint;

/// Where `bind` lets a block listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindSpec {
    /// An IP address (`127.0.0.2`, `::1`).
    Addr(std::net::IpAddr),
    /// A network interface name, expanded to its addresses when the listeners start.
    Interface(String),
}

/// Per-server-block settings.
#[derive(Default, Clone)]
pub struct BlockConfig {
    /// `tls CERT KEY [CA]`: the server TLS config for a `tls://` block.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `bind` lines, merged. Empty: every address.
    pub bind: Vec<BindSpec>,
    /// `bind { except ... }`.
    pub bind_except: Vec<BindSpec>,
    /// HTTP endpoints to serve (`health`, `ready`, `prometheus`, `podip`).
    pub http: Vec<HttpEndpoint>,
    /// How long the server keeps answering after SIGTERM before it stops (`health { lameduck }`).
    pub lameduck: Option<Duration>,
    /// The block's plugins count for readiness (the block has `ready`; as CoreDNS, only such
    /// blocks' plugins are asked).
    pub readiness: bool,
    /// `debug`: log debug lines while this configuration runs.
    pub debug: bool,
    /// `reload [INTERVAL] [JITTER]`.
    pub reload: Option<ReloadConfig>,
    /// `cookie`: how the block answers DNS cookies.
    pub cookie: CookiePolicy,
    /// `timeouts`: the stream transports' timeouts (unset: the server's defaults).
    pub timeouts: StreamTimeouts,
    /// `bufsize SIZE`: the largest EDNS UDP size the block's replies are held to, also what
    /// the plugins before `bufsize` in the chain (nsid) add to them.
    pub bufsize: Option<u16>,
    /// `multisocket [NUM_SOCKETS]`: SO_REUSEPORT sockets per listener, for UDP and for TCP
    /// (unset: one UDP socket per core, at most 16, and one TCP socket).
    pub num_sockets: Option<usize>,
    /// `view NAME { expr ... }`: the queries this block serves among the blocks sharing its
    /// zones and port.
    pub view: Option<Arc<crate::plugin::view::View>>,
    /// `proxyproto`: the PROXY protocol policy of the block's listeners.
    pub proxyproto: Option<Arc<crate::plugin::proxyproto::ProxyProto>>,
    /// `quic { max_streams; worker_pool_size }`: the block's `quic://` listeners' limits.
    pub quic: crate::plugin::quic::QuicOptions,
    /// `https { max_connections }`: the block's `https://` listeners' connection cap.
    pub https: crate::plugin::https::HttpsOptions,
    /// `https3 { max_streams; max_connections }`: the block's `https3://` listeners' limits.
    pub https3: crate::plugin::https3::Https3Options,
}

/// `timeouts { read; write; idle; maxtcpqueries }`: what a block sets of its listeners' stream
/// limits; `None` keeps the server's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamTimeouts {
    pub read: Option<Duration>,
    pub write: Option<Duration>,
    pub idle: Option<Duration>,
    /// Queries served on one connection before it is closed (`None`: unlimited).
    pub max_queries: Option<usize>,
}

impl StreamTimeouts {
    /// `self` with the values `later` sets (CoreDNS merges a server's sites in order).
    pub fn merged(self, later: StreamTimeouts) -> StreamTimeouts {
        StreamTimeouts {
            read: later.read.or(self.read),
            write: later.write.or(self.write),
            idle: later.idle.or(self.idle),
            max_queries: later.max_queries.or(self.max_queries),
        }
    }
}

/// Whether and how a block answers DNS cookies (RFC 7873, RFC 9018).
#[derive(Debug, Clone, Default)]
pub enum CookiePolicy {
    /// No `cookie` directive: server cookies from the process's own random secret, and never
    /// BADCOOKIE (replicas cannot know each other's secret).
    #[default]
    Default,
    /// `cookie off`: the COOKIE option is ignored (no cookie in replies).
    Off,
    /// `cookie { secret …; staging_secret … }`: shared secrets, BADCOOKIE over UDP.
    On(Arc<Cookies>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadConfig {
    pub interval: Duration,
    pub jitter: Duration,
}

impl BlockConfig {
    /// Registers an HTTP endpoint for the server to serve.
    pub fn serve_http(&mut self, endpoint: HttpEndpoint) {
        self.http.push(endpoint);
    }

    /// The address of the endpoint registered for `path`, if any.
    pub fn http_addr(&self, path: Option<&str>) -> Option<&str> {
        self.http
            .iter()
            .find(|e| e.path == path)
            .map(|e| e.addr.as_str())
    }
}

impl std::fmt::Debug for BlockConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockConfig")
            .field("tls", &self.tls.is_some())
            .field("bind", &self.bind)
            .field("bind_except", &self.bind_except)
            .field("http", &self.http)
            .field("lameduck", &self.lameduck)
            .field("readiness", &self.readiness)
            .field("debug", &self.debug)
            .field("reload", &self.reload)
            .field("cookie", &self.cookie)
            .field("timeouts", &self.timeouts)
            .field("bufsize", &self.bufsize)
            .field("proxyproto", &self.proxyproto)
            .finish()
    }
}
