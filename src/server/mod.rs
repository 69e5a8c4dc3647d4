//! Listeners, zone routing, the plugin chain and the server's lifecycle.

pub mod build;
pub mod cli;
pub mod conns;
pub mod doh;
pub mod h3;
pub mod http2;
pub mod https;
pub mod lifecycle;
pub mod logging;
pub mod ops;
pub mod query;
pub mod quic;
pub mod quic_pp;
pub mod router;
pub mod tcp;
pub mod tracker;
pub mod udp;

#[cfg(test)]
mod fast_path_tests;
