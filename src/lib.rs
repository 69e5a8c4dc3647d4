//! exdns: a CoreDNS-compatible DNS server for Kubernetes edges and VPN gateways.

pub mod corefile;
#[doc(hidden)]
pub mod fuzzing;
pub mod kube;
pub mod metrics;
pub mod plugin;
pub mod server;
