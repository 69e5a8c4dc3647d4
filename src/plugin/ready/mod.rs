//! `ready`: an HTTP endpoint answering `GET /ready` with `200 OK` once every plugin with a notion
//! of readiness is ready, else `503` with the names of those that are not. As in CoreDNS, the
//! plugins asked are those of the blocks that use `ready` (all of them, whichever address each
//! block's endpoint is on); other blocks' plugins do not count.
//!
//! The directive adds no handler to the chain; its setup registers the endpoint
//! ([`crate::plugin::http`]), which asks the server for the plugins that report themselves not
//! ready ([`crate::plugin::Plugin::ready`]) on every request.

use crate::plugin::http::{HttpHandler, HttpResponse, ServerState, TEXT_PLAIN};

mod setup;

pub use setup::setup;

/// Where `ready` listens when no address is given.
pub const DEFAULT_ADDR: &str = ":8181";

/// `/ready`: `OK`, or 503 with the sorted not-ready plugin names joined by commas (as CoreDNS),
/// or 503 `Shutting down` in lameduck.
pub struct Ready;

impl HttpHandler for Ready {
    fn respond(&self, server: &dyn ServerState) -> HttpResponse {
        if server.lameduck() {
            return HttpResponse::new(503, TEXT_PLAIN, "Shutting down");
        }
        let mut names = server.not_ready();
        if names.is_empty() {
            return HttpResponse::new(200, TEXT_PLAIN, "OK");
        }
        names.sort_unstable();
        names.dedup();
        let list = names.join(",");
        tracing::info!("Plugins not ready: {list:?}");
        HttpResponse::new(503, TEXT_PLAIN, list)
    }
}
