//! Settings that server-only directives (tls, bind, health, ready, reload, prometheus) record for
//! their server block; the server builds listeners and HTTP endpoints from them.

use std::sync::Arc;
use std::time::Duration;

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
    /// `health [ADDR] { lameduck DUR }`.
    pub health: Option<HealthConfig>,
    /// `ready [ADDR]`.
    pub ready: Option<String>,
    /// `prometheus [ADDR]`.
    pub prometheus: Option<String>,
    /// `reload [INTERVAL] [JITTER]`.
    pub reload: Option<ReloadConfig>,
    /// `podip [ADDR] { interface NAME; require_upstream }`.
    pub podip: Option<PodIpConfig>,
}

/// The gateway-pod-IP endpoint's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIpConfig {
    /// `:3150` style address.
    pub addr: String,
    /// Where the IP comes from when `POD_IP` is unset (default `eth0`).
    pub interface: String,
    /// Answer 503 while every `forward` upstream is down.
    pub require_upstream: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// `:8080` style address.
    pub addr: String,
    pub lameduck: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadConfig {
    pub interval: Duration,
    pub jitter: Duration,
}

impl std::fmt::Debug for BlockConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockConfig")
            .field("tls", &self.tls.is_some())
            .field("bind", &self.bind)
            .field("bind_except", &self.bind_except)
            .field("health", &self.health)
            .field("ready", &self.ready)
            .field("prometheus", &self.prometheus)
            .field("reload", &self.reload)
            .field("podip", &self.podip)
            .finish()
    }
}
