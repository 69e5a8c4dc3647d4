//! The plugin chain: the handler contract, the ordered directive table and the setup context.
//!
//! One folder per directive, each with its setup (parsing its Corefile lines), its handler and
//! its tests, like CoreDNS. Plugins run in the fixed order of [`DIRECTIVES`] (CoreDNS's
//! plugin.cfg), not in file order; several uses of one directive keep file order.

use std::sync::Arc;

use async_trait::async_trait;

use crate::corefile::{Dispenser, ParseError, ServerBlock};
use crate::dns::request::{Outcome, Request};
use crate::dns::view::{FastReply, QueryView};
use crate::plugin::config::BlockConfig;

pub mod acl;
pub mod any;
pub mod bind;
pub mod bufsize;
pub mod cache;
pub mod cancel;
pub mod chaos;
pub mod config;
pub mod cookie;
pub mod debug;
pub mod dnssec;
pub mod dnstap;
pub mod erratic;
pub mod errors;
pub mod file;
pub mod forward;
pub mod header;
pub mod health;
pub mod hosts;
pub mod http;
pub mod https;
pub mod https3;
pub mod k8s_gateway;
pub mod loadbalance;
pub mod local;
pub mod log;
pub mod loop_detect;
pub mod minimal;
pub mod multisocket;
pub mod names;
pub mod nsid;
pub mod podip;
pub mod prometheus;
pub mod proxyproto;
pub mod quic;
pub mod ready;
pub mod reload;
pub mod response;
pub mod rewrite;
pub mod rrl;
pub mod template;
#[cfg(test)]
pub(crate) mod test_chain;
pub mod timeouts;
pub mod tls;
pub mod transfer;
pub mod tsig;
pub mod util;
pub mod view;
pub mod whoami;
pub mod zones;

/// A handler in the chain.
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// The directive name (`cache`), used in the `plugin` metric label and in logs.
    fn name(&self) -> &'static str;

    /// Answer the request, or pass it on with `next.serve(req)`. Returning
    /// [`Outcome::Code`] lets the server write an empty reply with that code.
    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome;

    /// The fast path ([`crate::dns::view`]): answer `q` at once from what the plugin holds,
    /// or pass it on with `next.fast(q)` when the plugin would let the answer through unchanged.
    /// `None` (the default) sends the query down the full path through [`Plugin::serve`]; a
    /// plugin that returns `None` must have done nothing, and a reply given here must be exactly
    /// the one `serve` would give.
    fn fast(&self, _q: &QueryView<'_>, _next: FastNext<'_>) -> Option<FastReply> {
        None
    }

    /// `Some(false)` keeps `/ready` at 503 (e.g. k8s_gateway before its watches synced).
    fn ready(&self) -> Option<bool> {
        None
    }

    /// For plugins that forward upstream: `Some(false)` while every upstream is down (the
    /// `podip require_upstream` endpoint answers 503 then).
    fn upstreams_healthy(&self) -> Option<bool> {
        None
    }

    /// Called once the listeners of the config holding this plugin are up.
    async fn on_startup(&self, _ctx: &StartupCtx) -> Result<(), String> {
        Ok(())
    }

    /// Called when the config holding this plugin is replaced (reload) or the server stops.
    fn on_shutdown(&self) {}

    /// This plugin's zone data for transfers, when it is authoritative (k8s_gateway, file).
    fn transferer(self: Arc<Self>) -> Option<Arc<dyn transfer::Transferer>> {
        None
    }

    /// Called once the block's chain is built, with the whole chain (`transfer` finds the
    /// plugins it transfers zones from, as CoreDNS's does at startup).
    fn link(&self, _chain: &[Arc<dyn Plugin>]) {}

    /// Whether NOTIFY messages (RFC 1996) should reach the chain; without such a plugin the
    /// server answers them NOTAUTH.
    fn accepts_notify(&self) -> bool {
        false
    }

    /// The block's view name, for the `view` plugin (other plugins' `view` metric label).
    fn view_name(&self) -> Option<&Arc<str>> {
        None
    }
}

/// The name of the view in `chain` (the block's `view NAME`), if any: the `view` label of the
/// block's metrics, as CoreDNS sets it for queries a view routed.
pub fn view_of(chain: &[Arc<dyn Plugin>]) -> Option<Arc<str>> {
    chain.iter().find_map(|p| p.view_name().cloned())
}

/// What a plugin learns at startup.
#[derive(Debug, Clone)]
pub struct StartupCtx {
    /// Where this block's plain-DNS listeners actually listen (resolved ephemeral ports included).
    pub dns_addrs: Vec<std::net::SocketAddr>,
    /// The block's zones.
    pub zones: Vec<String>,
}

/// The rest of the chain after the current plugin.
#[derive(Clone, Copy)]
pub struct Next<'a> {
    rest: &'a [Arc<dyn Plugin>],
}

impl<'a> Next<'a> {
    pub fn new(rest: &'a [Arc<dyn Plugin>]) -> Self {
        Next { rest }
    }

    /// Runs the next plugin; falling off the end of the chain is SERVFAIL (as in CoreDNS).
    pub async fn serve(self, req: &Request) -> Outcome {
        match self.rest.split_first() {
            Some((p, rest)) => p.serve(req, Next { rest }).await,
            None => Outcome::code(hickory_proto::op::ResponseCode::ServFail, ""),
        }
    }

    /// Whether any plugin follows.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The plugins that follow, for work that outlives the request (cache prefetch and
    /// serve_stale refreshes clone them into a background task: `Next::new(&owned)`).
    pub fn plugins(&self) -> &'a [Arc<dyn Plugin>] {
        self.rest
    }
}

/// The rest of the chain on the fast path.
#[derive(Clone, Copy)]
pub struct FastNext<'a> {
    rest: &'a [Arc<dyn Plugin>],
}

impl<'a> FastNext<'a> {
    pub fn new(rest: &'a [Arc<dyn Plugin>]) -> Self {
        FastNext { rest }
    }

    /// Offers `q` to the next plugin; the end of the chain takes the full path.
    pub fn fast(self, q: &QueryView<'_>) -> Option<FastReply> {
        let (p, rest) = self.rest.split_first()?;
        p.fast(q, FastNext { rest })
    }
}

/// What a directive's setup gets besides its tokens.
pub struct SetupCtx<'a> {
    /// The server block being set up (keys, zones, file, line).
    pub block: &'a ServerBlock,
    /// Per-block settings that directives without a handler fill in (tls, bind, health, …).
    pub config: &'a mut BlockConfig,
}

impl SetupCtx<'_> {
    /// The block's zones (`example.org.`), in key order, de-duplicated.
    pub fn zones(&self) -> Vec<String> {
        let mut zones: Vec<String> = Vec::new();
        for k in &self.block.keys {
            if !zones.contains(&k.zone) {
                zones.push(k.zone.clone());
            }
        }
        zones
    }
}

/// A directive's setup: parses one occurrence (the dispenser is positioned before its name) and
/// returns its handler, or `None` for directives that only configure the server.
pub type SetupFn =
    fn(&mut Dispenser, &mut SetupCtx<'_>) -> Result<Option<Arc<dyn Plugin>>, ParseError>;

/// One row of the ordered directive table.
pub struct DirectiveDef {
    pub name: &'static str,
    pub setup: SetupFn,
    /// May appear only once per server block.
    pub once: bool,
}

/// Every directive exdns knows, in execution order (CoreDNS plugin.cfg order).
pub static DIRECTIVES: &[DirectiveDef] = &[
    DirectiveDef {
        name: "cancel",
        setup: cancel::setup,
        once: true,
    },
    DirectiveDef {
        name: "proxyproto",
        setup: proxyproto::setup,
        // The setup reports a second one with CoreDNS's words.
        once: false,
    },
    DirectiveDef {
        name: "quic",
        setup: quic::setup,
        once: true,
    },
    // CoreDNS's plugin.cfg: quic, grpc_server, https, https3 (exdns has no gRPC server).
    DirectiveDef {
        name: "https",
        setup: https::setup,
        // The setup reports a second `max_connections` with CoreDNS's words.
        once: false,
    },
    DirectiveDef {
        name: "https3",
        setup: https3::setup,
        once: false,
    },
    DirectiveDef {
        name: "tls",
        setup: tls::setup,
        once: true,
    },
    DirectiveDef {
        name: "timeouts",
        setup: timeouts::setup,
        once: true,
    },
    DirectiveDef {
        name: "multisocket",
        setup: multisocket::setup,
        // CoreDNS's setup sets the block's value at each line: the last one counts.
        once: false,
    },
    DirectiveDef {
        name: "reload",
        setup: reload::setup,
        once: true,
    },
    DirectiveDef {
        name: "nsid",
        setup: nsid::setup,
        once: true,
    },
    DirectiveDef {
        name: "bufsize",
        setup: bufsize::setup,
        // CoreDNS reads the first `bufsize` line of a block and ignores the others (so does the
        // setup).
        once: false,
    },
    DirectiveDef {
        name: "bind",
        setup: bind::setup,
        once: false,
    },
    DirectiveDef {
        name: "debug",
        setup: debug::setup,
        once: true,
    },
    DirectiveDef {
        name: "ready",
        setup: ready::setup,
        once: true,
    },
    DirectiveDef {
        name: "cookie",
        setup: cookie::setup,
        once: true,
    },
    DirectiveDef {
        name: "podip",
        setup: podip::setup,
        once: true,
    },
    DirectiveDef {
        name: "health",
        setup: health::setup,
        once: true,
    },
    DirectiveDef {
        name: "prometheus",
        setup: prometheus::setup,
        once: true,
    },
    DirectiveDef {
        name: "errors",
        setup: errors::setup,
        once: true,
    },
    DirectiveDef {
        name: "log",
        setup: log::setup,
        once: false,
    },
    DirectiveDef {
        name: "dnstap",
        setup: dnstap::setup,
        // Several taps per block, each a handler, as CoreDNS.
        once: false,
    },
    DirectiveDef {
        name: "local",
        setup: local::setup,
        // CoreDNS reads every `local` of a block into one handler (so does the setup).
        once: false,
    },
    // The external coredns/rrl plugin goes right before acl (its plugin.cfg landmark), so it
    // also sees the answers cache gives.
    DirectiveDef {
        name: "rrl",
        setup: rrl::setup,
        once: false,
    },
    DirectiveDef {
        name: "acl",
        setup: acl::setup,
        once: false,
    },
    DirectiveDef {
        name: "any",
        setup: any::setup,
        once: true,
    },
    DirectiveDef {
        name: "chaos",
        setup: chaos::setup,
        // CoreDNS reads the first `chaos` line of a block and ignores the others (so does the
        // setup).
        once: false,
    },
    DirectiveDef {
        name: "loadbalance",
        setup: loadbalance::setup,
        once: true,
    },
    DirectiveDef {
        name: "tsig",
        setup: tsig::setup,
        once: true,
    },
    DirectiveDef {
        name: "cache",
        setup: cache::setup,
        once: true,
    },
    DirectiveDef {
        name: "rewrite",
        setup: rewrite::setup,
        once: false,
    },
    DirectiveDef {
        name: "header",
        setup: header::setup,
        // CoreDNS reads the block's first `header` with rules only (so does the setup).
        once: false,
    },
    DirectiveDef {
        name: "dnssec",
        setup: dnssec::setup,
        once: true,
    },
    DirectiveDef {
        name: "minimal",
        setup: minimal::setup,
        // CoreDNS reads the block's first `minimal` line only (so does the setup).
        once: false,
    },
    DirectiveDef {
        name: "template",
        setup: template::setup,
        once: false,
    },
    DirectiveDef {
        name: "transfer",
        setup: transfer::setup,
        once: false,
    },
    DirectiveDef {
        name: "hosts",
        setup: hosts::setup,
        once: true,
    },
    DirectiveDef {
        name: "k8s_gateway",
        setup: k8s_gateway::setup,
        once: false,
    },
    DirectiveDef {
        name: "file",
        setup: file::setup,
        once: false,
    },
    DirectiveDef {
        name: "loop",
        setup: loop_detect::setup,
        once: true,
    },
    DirectiveDef {
        name: "forward",
        setup: forward::setup,
        once: false,
    },
    DirectiveDef {
        name: "erratic",
        setup: erratic::setup,
        once: true,
    },
    DirectiveDef {
        name: "whoami",
        setup: whoami::setup,
        once: true,
    },
    // Last in CoreDNS's plugin.cfg.
    DirectiveDef {
        name: "view",
        setup: view::setup,
        once: true,
    },
];

/// Looks a directive up by name.
pub fn directive(name: &str) -> Option<&'static DirectiveDef> {
    DIRECTIVES.iter().find(|d| d.name == name)
}

/// Position of a directive in the execution order.
pub fn order_of(name: &str) -> Option<usize> {
    DIRECTIVES.iter().position(|d| d.name == name)
}

/// Prefixes a setup error the way CoreDNS does: `plugin/NAME: FILE:LINE - Error during parsing: …`.
pub fn plugin_error(name: &str, e: &ParseError) -> String {
    format!("plugin/{name}: {e}")
}
