//! `ready`: an HTTP endpoint answering `GET /ready` with `200 OK` once every plugin with a notion
//! of readiness is ready, else `503` with the names of those that are not.
//!
//! The directive adds no handler to the chain; its setup records the address in the block's config
//! and the server's [`crate::server::ops::Ops`] serves the endpoint, asking the plugins'
//! [`crate::plugin::Plugin::ready`] on every request.

mod setup;

pub use setup::setup;

/// Where `ready` listens when no address is given.
pub const DEFAULT_ADDR: &str = ":8181";
