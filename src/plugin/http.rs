//! HTTP endpoints that directives ask the server to serve (`health`'s `/health`, `ready`'s
//! `/ready`, `prometheus`'s `/metrics`, `podip`'s pod IP). A directive's setup registers an
//! [`HttpEndpoint`] in its block's [`BlockConfig`](crate::plugin::config::BlockConfig); the
//! server's operations listeners serve every registered endpoint, sharing one listener per
//! address, without knowing which directive registered it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// What the server tells an endpoint about itself when it answers a request.
pub trait ServerState: Send + Sync {
    /// The server is going down (lameduck after SIGTERM).
    fn lameduck(&self) -> bool;
    /// The plugins that report themselves not ready ([`Plugin::ready`](crate::plugin::Plugin::ready)).
    fn not_ready(&self) -> Vec<&'static str>;
    /// Some plugin forwards upstream and every such plugin has all its upstreams down
    /// ([`Plugin::upstreams_healthy`](crate::plugin::Plugin::upstreams_healthy)).
    fn upstreams_down(&self) -> bool;
}

/// An HTTP answer: status, `Content-Type` and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        HttpResponse {
            status,
            content_type,
            body: body.into(),
        }
    }
}

/// `text/plain; charset=utf-8`, as Go's `http.Error` and CoreDNS's endpoints send.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Answers the requests of one endpoint.
pub trait HttpHandler: Send + Sync + 'static {
    /// The answer to a request of a method the endpoint serves.
    fn respond(&self, server: &dyn ServerState) -> HttpResponse;

    /// Whether the listener fetches this endpoint itself every probe interval and reports each
    /// try to [`HttpHandler::probed`] (CoreDNS's health plugin probes its own `/health`).
    fn self_probe(&self) -> bool {
        false
    }

    /// The result of one self-probe of `url`: how long it took, and `Err` with the reason when
    /// no HTTP answer came (connection error, timeout).
    fn probed(&self, _url: &str, _elapsed: Duration, _result: Result<(), String>) {}
}

/// An endpoint to serve.
#[derive(Clone)]
pub struct HttpEndpoint {
    /// Where, as spelt in a Corefile (`:8080`, `localhost:9153`, `[::1]:0`).
    pub addr: String,
    /// The path answered (`/health`), `GET` and `HEAD` only (405 otherwise); `None`: every path
    /// and method of the address that no other endpoint there serves.
    pub path: Option<&'static str>,
    pub handler: Arc<dyn HttpHandler>,
}

impl HttpEndpoint {
    pub fn new(
        addr: impl Into<String>,
        path: Option<&'static str>,
        h: Arc<dyn HttpHandler>,
    ) -> Self {
        HttpEndpoint {
            addr: addr.into(),
            path,
            handler: h,
        }
    }

    /// Whether `self` and `other` would answer the same requests (same address and path).
    pub fn same_place(&self, other: &HttpEndpoint) -> bool {
        self.addr == other.addr && self.path == other.path
    }
}

impl std::fmt::Debug for HttpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEndpoint")
            .field("addr", &self.addr)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}
