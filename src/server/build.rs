//! Turns a parsed Corefile into a runnable configuration: every directive set up in CoreDNS's
//! order, one chain per server block, blocks grouped into listeners.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::corefile::{Corefile, ParseError, Scheme};
use crate::netif;
use crate::plugin::config::{BindSpec, BlockConfig, ReloadConfig};
use crate::plugin::http::HttpEndpoint;
use crate::plugin::{self, Plugin, SetupCtx};
use crate::server::router::{Block, Router};

/// Where a listener listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerKey {
    pub scheme: Scheme,
    /// `None`: every address.
    pub ip: Option<IpAddr>,
    pub port: u16,
}

impl ListenerKey {
    /// The address to bind: a specific IP, or the dual-stack wildcard.
    pub fn bind_addr(&self) -> SocketAddr {
        SocketAddr::new(
            self.ip.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            self.port,
        )
    }
    /// IPv4 wildcard fallback for hosts without IPv6.
    pub fn bind_addr_v4(&self) -> SocketAddr {
        SocketAddr::new(
            self.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            self.port,
        )
    }
}

impl fmt::Display for ListenerKey {
    /// As CoreDNS's `server` label: `dns://:53`, `dns://127.0.0.2:53`, `tls://[::1]:853`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            None => write!(f, "{}://:{}", self.scheme.as_str(), self.port),
            Some(IpAddr::V4(ip)) => write!(f, "{}://{}:{}", self.scheme.as_str(), ip, self.port),
            Some(IpAddr::V6(ip)) => write!(f, "{}://[{}]:{}", self.scheme.as_str(), ip, self.port),
        }
    }
}

/// A configuration ready to serve.
pub struct Config {
    pub blocks: Vec<Arc<Block>>,
    pub listeners: BTreeMap<ListenerKey, Router>,
    /// For each block (same index as `blocks`), the listeners it is reachable on.
    pub block_listeners: Vec<Vec<ListenerKey>>,
    pub endpoints: Vec<HttpEndpoint>,
    pub reload: Option<ReloadConfig>,
    pub lameduck: Duration,
    /// The startup banner lines (`.:53`), one per key.
    pub banner: Vec<String>,
    /// (server label, zone, handler names) for `coredns_plugin_enabled`.
    pub enabled: Vec<(String, String, Vec<&'static str>)>,
}

impl Config {
    /// Some block has `debug`.
    pub fn debug(&self) -> bool {
        self.blocks.iter().any(|b| b.config.debug)
    }

    /// Names of plugins not ready, across the blocks whose plugins count for readiness.
    pub fn not_ready(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self
            .blocks
            .iter()
            .filter(|b| b.config.readiness)
            .flat_map(|b| b.not_ready().collect::<Vec<_>>())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// True when some plugin forwards upstream and every such plugin has all its upstreams down.
    pub fn upstreams_down(&self) -> bool {
        let mut any = false;
        for p in self.plugins() {
            match p.upstreams_healthy() {
                Some(true) => return false,
                Some(false) => any = true,
                None => {}
            }
        }
        any
    }

    /// Every plugin instance, for lifecycle hooks.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<dyn Plugin>> {
        self.blocks.iter().flat_map(|b| b.chain.iter())
    }
}

/// A configuration error, worded as CoreDNS words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl From<ParseError> for ConfigError {
    fn from(e: ParseError) -> Self {
        ConfigError(e.to_string())
    }
}

/// Sets up every directive of every block. Nothing is bound or started.
pub fn build(cf: &Corefile) -> Result<Config, ConfigError> {
    let mut blocks = Vec::new();
    let mut block_listeners = Vec::new();
    let mut listeners: BTreeMap<ListenerKey, Router> = BTreeMap::new();
    let mut endpoints: Vec<HttpEndpoint> = Vec::new();
    let mut reload = None;
    let mut lameduck = Duration::ZERO;
    let mut banner = Vec::new();
    let mut enabled = Vec::new();

    for sb in &cf.blocks {
        // Unknown directives first, in file order, as CoreDNS reports them.
        for d in &sb.directives {
            if plugin::directive(&d.name).is_none() {
                return Err(ParseError::new(
                    d.file(),
                    d.line(),
                    format!("Unknown directive '{}'", d.name),
                )
                .into());
            }
        }
        let mut ordered: Vec<_> = sb.directives.iter().collect();
        ordered.sort_by_key(|d| plugin::order_of(&d.name).unwrap_or(usize::MAX));

        let mut config = BlockConfig::default();
        let mut chain: Vec<Arc<dyn Plugin>> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for d in ordered {
            let def = plugin::directive(&d.name).expect("checked above");
            if def.once && seen.contains(&def.name) {
                let e = ParseError::new(
                    d.file(),
                    d.line(),
                    "this plugin can only be used once per Server Block",
                );
                return Err(ConfigError(plugin::plugin_error(def.name, &e)));
            }
            seen.push(def.name);
            let mut disp = d.dispenser();
            let mut ctx = SetupCtx {
                block: sb,
                config: &mut config,
            };
            match (def.setup)(&mut disp, &mut ctx) {
                Ok(Some(p)) => chain.push(p),
                Ok(None) => {}
                Err(e) => return Err(ConfigError(plugin::plugin_error(def.name, &e))),
            }
        }

        for p in &chain {
            p.link(&chain);
        }
        let mut zones: Vec<String> = Vec::new();
        for k in &sb.keys {
            if !zones.contains(&k.zone) {
                zones.push(k.zone.clone());
            }
        }
        // Listener addresses of this block.
        let ips = bind_ips(&config).map_err(|m| {
            ConfigError(format!("{}:{} - Error during setup: {m}", sb.file, sb.line))
        })?;

        endpoints.extend(config.http.iter().cloned());
        lameduck = lameduck.max(config.lameduck.unwrap_or_default());
        if reload.is_none() {
            reload = config.reload;
        }

        let block = Arc::new(Block {
            chain,
            config,
            zones,
            file: sb.file.clone(),
            line: sb.line,
        });
        let mut mine = Vec::new();
        for k in &sb.keys {
            match k.scheme {
                Scheme::Dns | Scheme::Tls | Scheme::Quic | Scheme::Https | Scheme::Https3 => {}
                other => {
                    return Err(ConfigError(format!(
                        "{}:{} - Error during setup: {}:// servers are not supported by exdns (key '{}')",
                        sb.file,
                        sb.line,
                        other.as_str(),
                        k.raw
                    )));
                }
            }
            if matches!(k.scheme, Scheme::Tls | Scheme::Quic | Scheme::Https3)
                && block.config.tls.is_none()
            {
                return Err(ConfigError(format!(
                    "{}:{} - Error during setup: {} needs the tls directive (tls CERT KEY [CA])",
                    sb.file, sb.line, k
                )));
            }
            banner.push(banner_line(k));
            for ip in &ips {
                let lk = ListenerKey {
                    scheme: k.scheme,
                    ip: *ip,
                    port: k.port,
                };
                let tls = listener_tls(k.scheme, &block.config.tls);
                let router = listeners.entry(lk).or_insert_with(|| {
                    let mut r = Router::new(Arc::from(lk.to_string()), tls.clone());
                    // CoreDNS: the first block binding an address decides its multisocket.
                    r.num_sockets = block.config.num_sockets;
                    // CoreDNS's `quic`: the first block of the listener sets its limits.
                    r.quic = block.config.quic;
                    r.https = block.config.https;
                    r.https3 = block.config.https3;
                    r
                });
                if router.tls.is_none() {
                    router.tls = tls;
                }
                router.timeouts = router.timeouts.merged(block.config.timeouts);
                // As CoreDNS's server: the last of its sites with a policy sets it.
                if block.config.proxyproto.is_some() {
                    router.proxyproto = block.config.proxyproto.clone();
                }
                if !router.insert(&k.zone, block.clone()) {
                    return Err(ConfigError(format!(
                        "{}:{} - Error during parsing: cannot serve {} - it is already defined",
                        sb.file, sb.line, k
                    )));
                }
                if !mine.contains(&lk) {
                    mine.push(lk);
                }
            }
        }
        let names: Vec<&'static str> = block.chain.iter().map(|p| p.name()).collect();
        for z in &block.zones {
            for lk in &mine {
                enabled.push((lk.to_string(), z.clone(), names.clone()));
            }
        }
        blocks.push(block);
        block_listeners.push(mine);
    }
    Ok(Config {
        blocks,
        listeners,
        block_listeners,
        endpoints,
        reload,
        lameduck,
        banner,
        enabled,
    })
}

/// The TLS config of a listener of `scheme` from its block's `tls`: none for `dns://`, ALPN
/// `h2` and `http/1.1` for `https://` (as CoreDNS sets them).
fn listener_tls(
    scheme: Scheme,
    tls: &Option<Arc<rustls::ServerConfig>>,
) -> Option<Arc<rustls::ServerConfig>> {
    match scheme {
        Scheme::Dns => None,
        Scheme::Https => tls.as_ref().map(|cfg| {
            let mut cfg = (**cfg).clone();
            cfg.alpn_protocols = crate::server::https::ALPN
                .iter()
                .map(|p| p.to_vec())
                .collect();
            Arc::new(cfg)
        }),
        _ => tls.clone(),
    }
}

/// `.:53`, `example.org.:1053`, `tls://.:853`, as CoreDNS prints its servers at startup.
fn banner_line(k: &crate::corefile::Key) -> String {
    match k.scheme {
        Scheme::Dns => format!("{}:{}", k.zone, k.port),
        s => format!("{}://{}:{}", s.as_str(), k.zone, k.port),
    }
}

/// The addresses a block listens on: every address (`None`) without `bind`.
fn bind_ips(cfg: &BlockConfig) -> Result<Vec<Option<IpAddr>>, String> {
    if cfg.bind.is_empty() {
        return Ok(vec![None]);
    }
    let expand = |specs: &[BindSpec]| -> Result<Vec<IpAddr>, String> {
        let mut out = Vec::new();
        for s in specs {
            match s {
                BindSpec::Addr(ip) => out.push(*ip),
                BindSpec::Interface(name) => {
                    if !netif::exists(name) {
                        return Err(format!(
                            "failed to get interface '{name}': no such network interface"
                        ));
                    }
                    let addrs = netif::addresses(name);
                    if addrs.is_empty() {
                        return Err(format!("interface '{name}' has no usable address"));
                    }
                    out.extend(addrs);
                }
            }
        }
        Ok(out)
    };
    let include = expand(&cfg.bind)?;
    let exclude = expand(&cfg.bind_except)?;
    let mut out: Vec<Option<IpAddr>> = Vec::new();
    for ip in include {
        if !exclude.contains(&ip) && !out.contains(&Some(ip)) {
            out.push(Some(ip));
        }
    }
    if out.is_empty() {
        return Err("bind: every address is excluded".to_string());
    }
    Ok(out)
}
