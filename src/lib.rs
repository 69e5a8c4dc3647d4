//! exdns: a CoreDNS-compatible DNS server for Kubernetes edges and VPN gateways.

pub mod corefile;
pub mod dns;
#[doc(hidden)]
pub mod fuzzing;
pub mod kube;
pub mod mem;
pub mod metrics;
pub mod netif;
pub mod plugin;
pub mod server;
