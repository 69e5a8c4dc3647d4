//! exdns: a CoreDNS-compatible DNS server for Kubernetes edges and VPN gateways.

pub mod corefile;
pub mod kube;
pub mod metrics;
pub mod plugin;
pub mod server;
