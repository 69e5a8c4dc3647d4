//! `k8s_gateway [ZONES...] { ... }` parsing.
//!
//! ```text
//! k8s_gateway [ZONES...] {
//!     resources [HTTPRoute TLSRoute GRPCRoute TCPRoute UDPRoute DNSEndpoint VirtualServer IngressRoute IngressRouteTCP IngressRouteUDP IstioGateway IstioVirtualService Ingress Service Node ...]
//!     ingressClasses CLASS...
//!     gatewayClasses CLASS...
//!     serviceLabelSelectors "SELECTOR" ["SELECTOR"...]
//!     ttl TTL
//!     apex APEX
//!     secondary SECONDARY
//!     kubeconfig PATH [CONTEXT]
//!     fallthrough [ZONES...]
//!     nodeAddressType InternalIP|ExternalIP
//!     manifests DIR
//!     soa REFRESH RETRY EXPIRE
//! }
//! ```

use std::path::PathBuf;

use crate::corefile::{Dispenser, ParseError};
use crate::kube::model::{Filters, Kind};

/// Default `apex` (the chart sets `<fullname>.<namespace>`).
pub const DEFAULT_APEX: &str = "dns1.kube-system";
/// Default `ttl`.
pub const DEFAULT_TTL: u32 = 60;

/// The SOA's refresh, retry and expire timers (seconds); its MINIMUM and TTL are `ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoaTimers {
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
}

/// The defaults pass the common zone checks (Zonemaster's ZONE02–ZONE05, RFC 1912 §2.2):
/// refresh 4 h (secondaries learn of changes by NOTIFY; refresh is the fallback), retry 1 h,
/// expire 2 weeks (a secondary keeps answering through a long primary outage).
pub const DEFAULT_SOA: SoaTimers = SoaTimers {
    refresh: 14_400,
    retry: 3_600,
    expire: 1_209_600,
};

/// Where objects come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceSpec {
    /// An API server: kubeconfig path and context; `None` path = in-cluster, then the
    /// usual kubeconfig lookup.
    Kube {
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
    },
    /// A directory of YAML manifests (exdns extension).
    Manifests(PathBuf),
}

/// The parsed directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Zones answered (lower-case, absolute).
    pub zones: Vec<String>,
    /// Kinds in lookup precedence order.
    pub kinds: Vec<Kind>,
    pub filters: Filters,
    pub ttl: u32,
    /// Lower-case, no trailing dot (`dns1.kube-system`).
    pub apex: String,
    pub secondary: Option<String>,
    /// Fallthrough zones; `None`: no fallthrough; `Some(empty)` is never stored (it means all
    /// of the plugin's zones).
    pub fallthrough: Option<Vec<String>>,
    pub sources: Vec<SourceSpec>,
    /// `soa REFRESH RETRY EXPIRE`.
    pub soa: SoaTimers,
}

/// Parses one `k8s_gateway` directive (the dispenser is before its name).
pub fn parse(d: &mut Dispenser, block_zones: &[String]) -> Result<Settings, ParseError> {
    d.next();
    let args = d.remaining_args();
    let zones = crate::plugin::zones::origins_from_args(d, &args, block_zones)?;
    let mut s = Settings {
        zones,
        kinds: Kind::DEFAULT.to_vec(),
        filters: Filters::default(),
        ttl: DEFAULT_TTL,
        apex: DEFAULT_APEX.to_string(),
        secondary: None,
        fallthrough: None,
        sources: Vec::new(),
        soa: DEFAULT_SOA,
    };
    let mut kubeconfigs: Vec<SourceSpec> = Vec::new();
    let mut manifests: Vec<SourceSpec> = Vec::new();
    while d.next_block() {
        match d.val() {
            "resources" => {
                let args = d.remaining_args();
                if args.is_empty() {
                    return Err(d.err("resources needs at least one kind"));
                }
                let mut kinds = Vec::new();
                for a in &args {
                    let k = Kind::parse(a).ok_or_else(|| {
                        d.err(format!(
                            "unknown resource '{a}' (supported: HTTPRoute TLSRoute GRPCRoute TCPRoute UDPRoute DNSEndpoint VirtualServer IngressRoute IngressRouteTCP IngressRouteUDP IstioGateway IstioVirtualService Ingress Service Node)"
                        ))
                    })?;
                    if !kinds.contains(&k) {
                        kinds.push(k);
                    }
                }
                s.kinds = kinds;
            }
            "ingressClasses" => {
                s.filters.ingress_classes = nonempty(d)?;
            }
            "gatewayClasses" => {
                s.filters.gateway_classes = nonempty(d)?;
            }
            "serviceLabelSelectors" => {
                let sels = nonempty(d)?;
                for sel in &sels {
                    crate::kube::selector::Selector::parse(sel).map_err(|e| {
                        d.err(format!("invalid serviceLabelSelectors entry '{sel}': {e}"))
                    })?;
                }
                s.filters.service_label_selectors = sels;
            }
            "ttl" => {
                let args = d.remaining_args();
                if args.len() != 1 {
                    return Err(d.arg_err());
                }
                let t: i64 = args[0]
                    .parse()
                    .map_err(|_| d.err(format!("ttl must be a number, got '{}'", args[0])))?;
                if !(0..=3600).contains(&t) {
                    return Err(d.err(format!("ttl must be in range [0, 3600]: {t}")));
                }
                s.ttl = t as u32;
            }
            "soa" => {
                let args = d.remaining_args();
                if args.len() != 3 {
                    return Err(d.arg_err());
                }
                let mut v = [0u32; 3];
                for (slot, a) in v.iter_mut().zip(&args) {
                    *slot = soa_timer(a).map_err(|e| d.err(e))?;
                }
                if v[1] >= v[0] {
                    return Err(d.err(format!(
                        "soa retry ({}) must be less than refresh ({})",
                        v[1], v[0]
                    )));
                }
                if v[2] < v[0] {
                    return Err(d.err(format!(
                        "soa expire ({}) must not be less than refresh ({})",
                        v[2], v[0]
                    )));
                }
                s.soa = SoaTimers {
                    refresh: v[0],
                    retry: v[1],
                    expire: v[2],
                };
            }
            "apex" => {
                let args = d.remaining_args();
                if args.len() != 1 {
                    return Err(d.arg_err());
                }
                s.apex = relative_name(d, &args[0])?;
            }
            "secondary" => {
                let args = d.remaining_args();
                if args.len() != 1 {
                    return Err(d.arg_err());
                }
                s.secondary = Some(relative_name(d, &args[0])?);
            }
            "kubeconfig" => {
                let args = d.remaining_args();
                if args.is_empty() || args.len() > 2 {
                    return Err(d.arg_err());
                }
                kubeconfigs.push(SourceSpec::Kube {
                    kubeconfig: Some(PathBuf::from(&args[0])),
                    context: args.get(1).cloned(),
                });
            }
            "manifests" => {
                let args = d.remaining_args();
                if args.len() != 1 {
                    return Err(d.arg_err());
                }
                manifests.push(SourceSpec::Manifests(PathBuf::from(&args[0])));
            }
            "fallthrough" => {
                let args = d.remaining_args();
                let z = if args.is_empty() {
                    s.zones.clone()
                } else {
                    crate::plugin::zones::origins_from_args(d, &args, &s.zones)?
                };
                s.fallthrough = Some(z);
            }
            "hostnameAsCNAME" => {
                if !d.remaining_args().is_empty() {
                    return Err(d.arg_err());
                }
                s.filters.hostname_as_cname = true;
            }
            "nodeAddressType" => {
                let args = d.remaining_args();
                if args.len() != 1 {
                    return Err(d.arg_err());
                }
                match args[0].as_str() {
                    "InternalIP" | "ExternalIP" => {
                        s.filters.node_address_type = Some(args[0].clone())
                    }
                    other => {
                        return Err(d.err(format!(
                            "nodeAddressType must be InternalIP or ExternalIP, got '{other}'"
                        )));
                    }
                }
            }
            _ => return Err(d.unknown_property()),
        }
    }
    s.filters.istio = s
        .kinds
        .iter()
        .any(|k| matches!(k, Kind::IstioGateway | Kind::IstioVirtualService));
    s.sources.extend(kubeconfigs);
    s.sources.extend(manifests);
    if s.sources.is_empty() {
        s.sources.push(SourceSpec::Kube {
            kubeconfig: None,
            context: None,
        });
    }
    Ok(s)
}

fn nonempty(d: &mut Dispenser) -> Result<Vec<String>, ParseError> {
    let args = d.remaining_args();
    if args.is_empty() {
        return Err(d.arg_err());
    }
    Ok(args)
}

/// `apex`/`secondary` values: a relative name (`dns1.kube-system`), lower-cased, validated.
fn relative_name(d: &Dispenser, raw: &str) -> Result<String, ParseError> {
    let n = raw.trim_end_matches('.').to_ascii_lowercase();
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(n)
    } else {
        Err(d.err(format!("invalid name '{raw}'")))
    }
}

/// A SOA timer: seconds, or a Go duration (`4h`), from 1 s to 2^31 - 1 s (RFC 2181 §8).
fn soa_timer(a: &str) -> Result<u32, String> {
    let secs: i128 = match a.parse::<i64>() {
        Ok(n) => n as i128,
        Err(_) => crate::plugin::util::parse_go_duration(a)
            .map(|ns| ns / 1_000_000_000)
            .map_err(|_| format!("soa timer must be seconds or a duration, got '{a}'"))?,
    };
    if !(1..=i32::MAX as i128).contains(&secs) {
        return Err(format!("soa timer must be in range [1s, 2147483647s]: {a}"));
    }
    Ok(secs as u32)
}
