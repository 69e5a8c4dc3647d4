//! `podip` (exdns): the gateway-pod-IP endpoint VPN client pods use to find their gateway.
//!
//! Any request on any path gets `200`, `Content-Type: text/plain`, and this pod's IP with no
//! trailing newline — byte-compatible with the socat script of pod-gateway setups and their
//! `curl -fs` + IPv4-check clients. The IP comes from `POD_IP` (the downward API), else the
//! first IPv4 address of the configured interface (default `eth0`). With `require_upstream`,
//! the endpoint answers 503 while every `forward` upstream is down, so a Service stops sending
//! clients to a gateway whose tunnel is dead. Registered as an HTTP endpoint
//! ([`crate::plugin::http`]) that the server's operations listeners serve, so it keeps running
//! across Corefile reloads.

mod setup;

pub use setup::{DEFAULT_ADDR, DEFAULT_INTERFACE, setup};

use crate::plugin::http::{HttpHandler, HttpResponse, ServerState};

/// The endpoint's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIpConfig {
    /// `:3150` style address.
    pub addr: String,
    /// Where the IP comes from when `POD_IP` is unset (default `eth0`).
    pub interface: String,
    /// Answer 503 while every `forward` upstream is down.
    pub require_upstream: bool,
}

/// The endpoint: 200 `text/plain` with the pod IP and no trailing newline; 503 while every
/// forwarding upstream is down (with `require_upstream`) or when no address is known.
pub struct PodIp(pub PodIpConfig);

impl HttpHandler for PodIp {
    fn respond(&self, server: &dyn ServerState) -> HttpResponse {
        if self.0.require_upstream && server.upstreams_down() {
            return HttpResponse::new(503, "text/plain", "upstreams down");
        }
        match pod_ip(&self.0) {
            Some(ip) => HttpResponse::new(200, "text/plain", ip),
            None => HttpResponse::new(503, "text/plain", "no pod IP"),
        }
    }
}

/// The IP to report: `POD_IP` when set (and an IP), else the first IPv4 of the interface.
pub fn pod_ip(cfg: &PodIpConfig) -> Option<String> {
    pod_ip_from(std::env::var("POD_IP").ok().as_deref(), &cfg.interface)
}

fn pod_ip_from(env: Option<&str>, interface: &str) -> Option<String> {
    if let Some(v) = env {
        let v = v.trim();
        if let Ok(ip) = v.parse::<std::net::IpAddr>() {
            return Some(ip.to_string());
        }
        if !v.is_empty() {
            tracing::warn!(target: "exdns::plugin::podip", "POD_IP is not an IP address: {v:?}; using interface {interface}");
        }
    }
    crate::netif::addresses(interface)
        .into_iter()
        .find(|a| a.is_ipv4())
        .map(|a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_ip_prefers_the_environment_then_the_interface() {
        assert_eq!(
            pod_ip_from(Some("10.42.0.7"), "lo").as_deref(),
            Some("10.42.0.7")
        );
        assert_eq!(
            pod_ip_from(Some(" 10.42.0.7\n"), "lo").as_deref(),
            Some("10.42.0.7")
        );
        assert_eq!(pod_ip_from(None, "lo").as_deref(), Some("127.0.0.1"));
        assert_eq!(
            pod_ip_from(Some("not-an-ip"), "lo").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(pod_ip_from(None, "nosuchif0"), None);
    }
}
