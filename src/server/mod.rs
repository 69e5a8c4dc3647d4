//! Listeners, zone routing, the plugin chain and the server's lifecycle.

pub mod cli;
pub mod config;
pub mod ops;
pub mod request;
