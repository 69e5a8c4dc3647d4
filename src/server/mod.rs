//! Listeners, zone routing, the plugin chain and the server's lifecycle.

pub mod build;
pub mod cli;
pub mod config;
pub mod lifecycle;
pub mod logging;
pub mod netif;
pub mod ops;
pub mod query;
pub mod request;
pub mod router;
pub mod tcp;
pub mod tracker;
pub mod udp;
pub mod view;
pub mod wire;
