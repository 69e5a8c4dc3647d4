//! The HTTP endpoints of the operations plugins: `/health` (health), `/ready` (ready) and
//! `/metrics` (prometheus). Listeners are kept across reloads when their address is unchanged.

use std::sync::Arc;

/// Names of the plugins that are not ready yet (empty: ready).
pub type ReadyFn = Arc<dyn Fn() -> Vec<&'static str> + Send + Sync>;

/// The addresses each endpoint must be served on, collected from every server block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub health: Vec<String>,
    pub ready: Vec<String>,
    pub metrics: Vec<String>,
}

/// Runs the operations HTTP listeners.
pub struct Ops {}

impl Ops {
    pub fn new() -> Arc<Self> {
        Arc::new(Ops {})
    }

    /// Makes the running listeners match `endpoints`: starts new addresses, stops removed ones,
    /// keeps the rest without a gap. `ready` is consulted on every `/ready` request.
    pub async fn apply(&self, _endpoints: &Endpoints, _ready: ReadyFn) -> Result<(), String> {
        todo!("ops")
    }

    /// Enter lameduck: `/ready` answers 503 from now on; `/health` keeps answering 200.
    pub fn set_lameduck(&self) {}

    /// Close every listener.
    pub async fn shutdown(&self) {}

    /// (configured address, bound address) of every running endpoint listener.
    pub fn bound_addrs(&self) -> Vec<(String, std::net::SocketAddr)> {
        Vec::new()
    }
}
