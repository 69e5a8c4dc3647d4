//! The source-independent model: what each watched object contributes to the index.
//!
//! Sources (the API server, or YAML manifests) hand raw objects (`serde_json::Value`) to
//! [`crate::kube::kinds::contribute`], which turns them into a [`Contribution`]; the [`Store`]
//! keeps the latest contribution of every object; the index builder turns the store into an
//! immutable snapshot that queries read.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

/// Record sources a `k8s_gateway` block can answer from, in the default lookup precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    HTTPRoute,
    TLSRoute,
    GRPCRoute,
    TCPRoute,
    UDPRoute,
    DNSEndpoint,
    VirtualServer,
    IngressRoute,
    IngressRouteTCP,
    IngressRouteUDP,
    IstioGateway,
    IstioVirtualService,
    Ingress,
    Service,
    Node,
}

impl Kind {
    /// Every kind, in the default precedence (Node last; it is only used when named).
    pub const ALL: [Kind; 15] = [
        Kind::HTTPRoute,
        Kind::TLSRoute,
        Kind::GRPCRoute,
        Kind::TCPRoute,
        Kind::UDPRoute,
        Kind::DNSEndpoint,
        Kind::VirtualServer,
        Kind::IngressRoute,
        Kind::IngressRouteTCP,
        Kind::IngressRouteUDP,
        Kind::IstioGateway,
        Kind::IstioVirtualService,
        Kind::Ingress,
        Kind::Service,
        Kind::Node,
    ];

    /// The default `resources` list when the directive names none (every kind but Node).
    pub const DEFAULT: [Kind; 14] = [
        Kind::HTTPRoute,
        Kind::TLSRoute,
        Kind::GRPCRoute,
        Kind::TCPRoute,
        Kind::UDPRoute,
        Kind::DNSEndpoint,
        Kind::VirtualServer,
        Kind::IngressRoute,
        Kind::IngressRouteTCP,
        Kind::IngressRouteUDP,
        Kind::IstioGateway,
        Kind::IstioVirtualService,
        Kind::Ingress,
        Kind::Service,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::HTTPRoute => "HTTPRoute",
            Kind::TLSRoute => "TLSRoute",
            Kind::GRPCRoute => "GRPCRoute",
            Kind::TCPRoute => "TCPRoute",
            Kind::UDPRoute => "UDPRoute",
            Kind::DNSEndpoint => "DNSEndpoint",
            Kind::VirtualServer => "VirtualServer",
            Kind::IngressRoute => "IngressRoute",
            Kind::IngressRouteTCP => "IngressRouteTCP",
            Kind::IngressRouteUDP => "IngressRouteUDP",
            Kind::IstioGateway => "IstioGateway",
            Kind::IstioVirtualService => "IstioVirtualService",
            Kind::Ingress => "Ingress",
            Kind::Service => "Service",
            Kind::Node => "Node",
        }
    }

    /// Parses a `resources` entry (case-insensitive, as users write `ingress` or `Ingress`).
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }

    /// Index into per-kind arrays.
    pub fn index(&self) -> usize {
        *self as usize
    }

    /// The object kinds that must be watched to answer for this kind.
    pub fn watched(&self) -> &'static [ObjKind] {
        match self {
            Kind::HTTPRoute => &[ObjKind::HTTPRoute, ObjKind::Gateway],
            Kind::TLSRoute => &[ObjKind::TLSRoute, ObjKind::Gateway],
            Kind::GRPCRoute => &[ObjKind::GRPCRoute, ObjKind::Gateway],
            Kind::TCPRoute => &[ObjKind::TCPRoute, ObjKind::Gateway],
            Kind::UDPRoute => &[ObjKind::UDPRoute, ObjKind::Gateway],
            Kind::DNSEndpoint => &[ObjKind::DNSEndpoint],
            Kind::VirtualServer => &[ObjKind::VirtualServer],
            // Traefik's kinds in both API groups (ExternalDNS's traefik-proxy source).
            Kind::IngressRoute => &[ObjKind::IngressRoute, ObjKind::LegacyIngressRoute],
            Kind::IngressRouteTCP => &[ObjKind::IngressRouteTCP, ObjKind::LegacyIngressRouteTCP],
            Kind::IngressRouteUDP => &[ObjKind::IngressRouteUDP, ObjKind::LegacyIngressRouteUDP],
            // Istio Gateways take their addresses from the Services their selector picks.
            Kind::IstioGateway => &[ObjKind::IstioGateway, ObjKind::Service],
            Kind::IstioVirtualService => &[
                ObjKind::IstioVirtualService,
                ObjKind::IstioGateway,
                ObjKind::Service,
            ],
            Kind::Ingress => &[ObjKind::Ingress],
            Kind::Service => &[ObjKind::Service, ObjKind::EndpointSlice],
            Kind::Node => &[ObjKind::Node],
        }
    }

    /// The object kinds whose objects carry this kind's names and data: the first watched
    /// kind, and for Traefik's kinds the same kind of the legacy API group too (their records
    /// are merged, as ExternalDNS merges the endpoints of both groups).
    pub fn sources(&self) -> &'static [ObjKind] {
        match self {
            Kind::IngressRoute | Kind::IngressRouteTCP | Kind::IngressRouteUDP => self.watched(),
            _ => &self.watched()[..1],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every object kind a source delivers (record kinds plus Gateways and EndpointSlices, which
/// only feed other kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjKind {
    Ingress,
    Service,
    EndpointSlice,
    Gateway,
    HTTPRoute,
    TLSRoute,
    GRPCRoute,
    TCPRoute,
    UDPRoute,
    DNSEndpoint,
    VirtualServer,
    IngressRoute,
    IngressRouteTCP,
    IngressRouteUDP,
    LegacyIngressRoute,
    LegacyIngressRouteTCP,
    LegacyIngressRouteUDP,
    IstioGateway,
    IstioVirtualService,
    Node,
}

impl ObjKind {
    pub const ALL: [ObjKind; 20] = [
        ObjKind::Ingress,
        ObjKind::Service,
        ObjKind::EndpointSlice,
        ObjKind::Gateway,
        ObjKind::HTTPRoute,
        ObjKind::TLSRoute,
        ObjKind::GRPCRoute,
        ObjKind::TCPRoute,
        ObjKind::UDPRoute,
        ObjKind::DNSEndpoint,
        ObjKind::VirtualServer,
        ObjKind::IngressRoute,
        ObjKind::IngressRouteTCP,
        ObjKind::IngressRouteUDP,
        ObjKind::LegacyIngressRoute,
        ObjKind::LegacyIngressRouteTCP,
        ObjKind::LegacyIngressRouteUDP,
        ObjKind::IstioGateway,
        ObjKind::IstioVirtualService,
        ObjKind::Node,
    ];

    /// The name exdns gives the kind (logs, metrics): the Kubernetes `kind`, but for Istio's
    /// (whose `Gateway` would be ambiguous with the Gateway API's).
    pub fn as_str(&self) -> &'static str {
        match self {
            ObjKind::Ingress => "Ingress",
            ObjKind::Service => "Service",
            ObjKind::EndpointSlice => "EndpointSlice",
            ObjKind::Gateway => "Gateway",
            ObjKind::HTTPRoute => "HTTPRoute",
            ObjKind::TLSRoute => "TLSRoute",
            ObjKind::GRPCRoute => "GRPCRoute",
            ObjKind::TCPRoute => "TCPRoute",
            ObjKind::UDPRoute => "UDPRoute",
            ObjKind::DNSEndpoint => "DNSEndpoint",
            ObjKind::VirtualServer => "VirtualServer",
            ObjKind::IngressRoute => "IngressRoute",
            ObjKind::IngressRouteTCP => "IngressRouteTCP",
            ObjKind::IngressRouteUDP => "IngressRouteUDP",
            ObjKind::LegacyIngressRoute => "IngressRoute.traefik.containo.us",
            ObjKind::LegacyIngressRouteTCP => "IngressRouteTCP.traefik.containo.us",
            ObjKind::LegacyIngressRouteUDP => "IngressRouteUDP.traefik.containo.us",
            ObjKind::IstioGateway => "IstioGateway",
            ObjKind::IstioVirtualService => "IstioVirtualService",
            ObjKind::Node => "Node",
        }
    }

    /// The Kubernetes `kind` field.
    pub fn k8s_kind(&self) -> &'static str {
        match self {
            ObjKind::IstioGateway => "Gateway",
            ObjKind::IstioVirtualService => "VirtualService",
            ObjKind::LegacyIngressRoute => "IngressRoute",
            ObjKind::LegacyIngressRouteTCP => "IngressRouteTCP",
            ObjKind::LegacyIngressRouteUDP => "IngressRouteUDP",
            other => other.as_str(),
        }
    }

    /// From a manifest's `kind` field and the group of its `apiVersion` (`None`: no
    /// `apiVersion`; then an ambiguous `Gateway` is the Gateway API's).
    pub fn from_kind(kind: &str, group: Option<&str>) -> Option<ObjKind> {
        let mut found = ObjKind::ALL.into_iter().filter(|k| k.k8s_kind() == kind);
        match group {
            None => found.next(),
            Some(g) => {
                let all: Vec<ObjKind> = found.collect();
                all.iter()
                    .copied()
                    .find(|k| k.api().0 == g)
                    .or_else(|| all.first().copied())
            }
        }
    }

    /// API group and the versions exdns understands, preferred first; plural resource name.
    pub fn api(&self) -> (&'static str, &'static [&'static str], &'static str) {
        match self {
            ObjKind::Ingress => ("networking.k8s.io", &["v1"], "ingresses"),
            ObjKind::Service => ("", &["v1"], "services"),
            ObjKind::EndpointSlice => ("discovery.k8s.io", &["v1"], "endpointslices"),
            ObjKind::Gateway => ("gateway.networking.k8s.io", &["v1"], "gateways"),
            ObjKind::HTTPRoute => ("gateway.networking.k8s.io", &["v1"], "httproutes"),
            ObjKind::TLSRoute => (
                "gateway.networking.k8s.io",
                &["v1", "v1alpha2"],
                "tlsroutes",
            ),
            ObjKind::GRPCRoute => ("gateway.networking.k8s.io", &["v1"], "grpcroutes"),
            ObjKind::TCPRoute => ("gateway.networking.k8s.io", &["v1alpha2"], "tcproutes"),
            ObjKind::UDPRoute => ("gateway.networking.k8s.io", &["v1alpha2"], "udproutes"),
            ObjKind::DNSEndpoint => ("externaldns.k8s.io", &["v1alpha1"], "dnsendpoints"),
            ObjKind::VirtualServer => ("k8s.nginx.org", &["v1"], "virtualservers"),
            ObjKind::IngressRoute => ("traefik.io", &["v1alpha1"], "ingressroutes"),
            ObjKind::IngressRouteTCP => ("traefik.io", &["v1alpha1"], "ingressroutetcps"),
            ObjKind::IngressRouteUDP => ("traefik.io", &["v1alpha1"], "ingressrouteudps"),
            ObjKind::LegacyIngressRoute => ("traefik.containo.us", &["v1alpha1"], "ingressroutes"),
            ObjKind::LegacyIngressRouteTCP => {
                ("traefik.containo.us", &["v1alpha1"], "ingressroutetcps")
            }
            ObjKind::LegacyIngressRouteUDP => {
                ("traefik.containo.us", &["v1alpha1"], "ingressrouteudps")
            }
            ObjKind::IstioGateway => (
                "networking.istio.io",
                &["v1", "v1beta1", "v1alpha3"],
                "gateways",
            ),
            ObjKind::IstioVirtualService => (
                "networking.istio.io",
                &["v1", "v1beta1", "v1alpha3"],
                "virtualservices",
            ),
            ObjKind::Node => ("", &["v1"], "nodes"),
        }
    }

    /// Whether objects of this kind live in namespaces.
    pub fn namespaced(&self) -> bool {
        !matches!(self, ObjKind::Node)
    }
}

impl fmt::Display for ObjKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `namespace/name` (namespace empty for cluster-scoped objects).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjKey {
    pub namespace: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// An address from a status field: an IP, or a hostname to resolve in the background.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Address {
    Ip(IpAddr),
    /// Lower-case, no trailing dot.
    Hostname(String),
}

/// One name an object answers for, with its data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameData {
    /// Lower-case, no trailing dot; may start with `*.` (one-label wildcard). Service keys
    /// without an annotation are `name.namespace` (relative to every zone).
    pub name: String,
    pub addrs: Vec<Address>,
    /// TXT strings (DNSEndpoint), each one TXT record (split into 255-byte character-strings
    /// when answered).
    pub txt: Vec<String>,
    /// CNAME targets (DNSEndpoint, a hostname `…/target` annotation, an ExternalName
    /// Service), lower-case, no trailing dot.
    pub cname: Vec<String>,
    /// The object's own TTL (the ExternalDNS `…/ttl` annotation), validated; `None`: the
    /// directive's `ttl`.
    pub ttl: Option<u32>,
    /// For Services with `k8s-gateway.dns/resolve-endpoints: "true"`: the addresses come from
    /// this Service's ready EndpointSlice addresses (joined by the index builder).
    pub endpoints_of: Option<ObjKey>,
}

/// What one watched object contributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contribution {
    /// Names with data (Ingress, Service, DNSEndpoint, VirtualServer, Node).
    Names(Vec<NameData>),
    /// A Gateway API route: its hostnames (`spec.hostnames` and the hostname annotation), its
    /// parent Gateways (namespace defaulted per ref) and its own TTL (`…/ttl` annotation).
    /// `inherit`: `spec.hostnames` is empty (always, for TCPRoute and UDPRoute), so — as in
    /// ExternalDNS — the route also answers for its parent Gateways' listener hostnames (of
    /// listeners whose protocol fits the route's kind).
    /// `sections`: for parents every ref of which names a `sectionName`, the listeners
    /// (by name) the route attaches to; other parents attach with every listener.
    Route {
        hostnames: Vec<String>,
        parents: Vec<ObjKey>,
        ttl: Option<u32>,
        inherit: bool,
        sections: Vec<(ObjKey, String)>,
    },
    /// A Gateway: its class (for `gatewayClasses`) and its addresses: its `…/target`
    /// annotation's when it has one (IPs in `addrs`, a hostname in `cname`), else its status
    /// addresses.
    /// `listeners`: (name, protocol, hostname) of every listener with a hostname (lower-case,
    /// no trailing dot, `*.` wildcards kept), for routes without hostnames of their own.
    Gateway {
        class: String,
        addrs: Vec<Address>,
        cname: Option<String>,
        listeners: Vec<(String, String, String)>,
    },
    /// An EndpointSlice: the Service it belongs to (`kubernetes.io/service-name`) and its ready
    /// addresses.
    EndpointSlice { service: ObjKey, addrs: Vec<IpAddr> },
    /// A Service when Istio kinds are answered ([`Filters::istio`]): its own names (what
    /// `Names` would hold; possibly none) plus what the Istio Gateways selecting it take from
    /// it (ExternalDNS): its `spec.selector` and its addresses — `spec.externalIPs`, else its
    /// load balancer's.
    Service {
        names: Vec<NameData>,
        selector: BTreeMap<String, String>,
        addrs: Vec<Address>,
    },
    /// An Istio Gateway: its names (`spec.servers[].hosts` without their `namespace/` and
    /// without `*`, then the hostname annotation's), its server hosts as (namespace, host) for
    /// VirtualServices to bind by (lower-case, namespace `*` when none), its `spec.selector`,
    /// its `…/target` annotation's data (`None`: the selected Services' addresses) and TTL.
    IstioGateway {
        names: Vec<String>,
        servers: Vec<(String, String)>,
        selector: BTreeMap<String, String>,
        target: Option<IstioTarget>,
        ttl: Option<u32>,
    },
    /// An Istio VirtualService: its names (`spec.hosts` without `*`, then the hostname
    /// annotation's), the Istio Gateways it references (`mesh` left out), its `spec.exportTo`,
    /// its `…/target` annotation's data (`None`: the bound Gateways') and TTL.
    IstioVirtualService {
        names: Vec<String>,
        gateways: Vec<ObjKey>,
        export_to: Vec<String>,
        target: Option<IstioTarget>,
        ttl: Option<u32>,
    },
}

/// A `…/target` annotation's data: addresses, or a CNAME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IstioTarget {
    Addrs(Vec<Address>),
    Cname(String),
}

impl Contribution {
    /// The names with data of a `Names` or `Service` contribution.
    pub fn name_data(&self) -> Option<&[NameData]> {
        match self {
            Contribution::Names(v) | Contribution::Service { names: v, .. } => Some(v),
            _ => None,
        }
    }
}

/// Filters from the directive that decide whether an object is indexed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// `ingressClasses`: empty = all.
    pub ingress_classes: Vec<String>,
    /// `gatewayClasses`: empty = all (applied to the parent Gateway).
    pub gateway_classes: Vec<String>,
    /// `serviceLabelSelectors`: empty = all; an object matching any selector is kept.
    pub service_label_selectors: Vec<String>,
    /// `nodeAddressType`: InternalIP (default) or ExternalIP.
    pub node_address_type: Option<String>,
    /// `hostnameAsCNAME`: a status hostname (a cloud load balancer's) is answered as a CNAME
    /// to it instead of the addresses it resolves to.
    pub hostname_as_cname: bool,
    /// Istio Gateways or VirtualServices are answered: Services contribute
    /// [`Contribution::Service`] (their selector and addresses for the join) instead of
    /// `Names`.
    pub istio: bool,
}

/// A change reported by a source for one object kind.
#[derive(Debug, Clone)]
pub enum Event {
    /// An object was added or changed. `None` contribution: it exists but contributes nothing
    /// (ignored, filtered out, or invalid) — any older contribution is removed.
    Apply(ObjKey, Option<Contribution>),
    /// An object was deleted.
    Delete(ObjKey),
    /// A full list (initial, or after a 410 re-list): replaces everything of this kind.
    Replace(Vec<(ObjKey, Contribution)>),
    /// A full list of one scope (keys whose namespace starts with the prefix): used when
    /// several sources share a store.
    ReplaceScope(String, Vec<(ObjKey, Contribution)>),
}

/// Per object kind: every object changed since the log was last taken, with its contribution
/// before the first of those changes (`None`: it did not exist).
pub type Changes = HashMap<ObjKind, HashMap<ObjKey, Option<Contribution>>>;

/// The latest contribution of every object, per kind, and which kinds have synced.
#[derive(Debug, Clone, Default)]
pub struct Store {
    pub objects: HashMap<ObjKind, HashMap<ObjKey, Contribution>>,
    /// Kinds whose initial list completed (or that are known not to be served).
    pub synced: HashMap<ObjKind, bool>,
    /// What changed since the index builder last looked; kept only once it asked
    /// ([`Store::track_changes`]), so a store nobody builds from does not grow a log.
    changes: Option<Changes>,
}

/// A name as the index keys it: lower-case, no trailing dot.
pub(crate) fn norm(name: &str) -> std::borrow::Cow<'_, str> {
    let n = name.strip_suffix('.').unwrap_or(name);
    if n.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(n.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(n)
    }
}

/// Keeps a contribution's names in [`norm`] order (stable), so the index finds one name's
/// entries of an object by binary search: a DNSEndpoint may carry thousands of names.
fn sorted(mut c: Contribution) -> Contribution {
    if let Contribution::Names(v) | Contribution::Service { names: v, .. } = &mut c
        && !v.is_sorted_by(|a, b| norm(&a.name) <= norm(&b.name))
    {
        v.sort_by(|a, b| norm(&a.name).cmp(&norm(&b.name)));
    }
    c
}

impl Store {
    /// Applies an event; returns whether anything changed.
    pub fn apply(&mut self, kind: ObjKind, ev: Event) -> bool {
        let ev = match ev {
            Event::Apply(k, Some(c)) => Event::Apply(k, Some(sorted(c))),
            Event::Replace(items) => {
                Event::Replace(items.into_iter().map(|(k, c)| (k, sorted(c))).collect())
            }
            Event::ReplaceScope(p, items) => {
                Event::ReplaceScope(p, items.into_iter().map(|(k, c)| (k, sorted(c))).collect())
            }
            other => other,
        };
        let map = self.objects.entry(kind).or_default();
        let mut log = self.changes.as_mut().map(|c| c.entry(kind).or_default());
        let tracking = log.is_some();
        // Keeps the value from before the first change since the log was taken.
        let mut note = |k: &ObjKey, old: Option<Contribution>| {
            if let Some(log) = log.as_mut()
                && !log.contains_key(k)
            {
                log.insert(k.clone(), old);
            }
        };
        match ev {
            Event::Apply(k, Some(c)) => match map.get_mut(&k) {
                Some(cur) if *cur == c => false,
                Some(cur) => {
                    let old = std::mem::replace(cur, c);
                    note(&k, Some(old));
                    true
                }
                None => {
                    note(&k, None);
                    map.insert(k, c);
                    true
                }
            },
            Event::Apply(k, None) | Event::Delete(k) => match map.remove(&k) {
                Some(old) => {
                    note(&k, Some(old));
                    true
                }
                None => false,
            },
            Event::Replace(items) => {
                let new: HashMap<ObjKey, Contribution> = items.into_iter().collect();
                if !tracking {
                    let changed = *map != new;
                    *map = new;
                    return changed;
                }
                let old = std::mem::replace(map, new);
                let mut changed = false;
                for k in map.keys() {
                    if !old.contains_key(k) {
                        note(k, None);
                        changed = true;
                    }
                }
                for (k, v) in old {
                    if map.get(&k) != Some(&v) {
                        note(&k, Some(v));
                        changed = true;
                    }
                }
                changed
            }
            Event::ReplaceScope(prefix, items) => {
                let new: HashMap<ObjKey, Contribution> = items.into_iter().collect();
                let before = map.len();
                let gone: Vec<ObjKey> = map
                    .iter()
                    .filter(|(k, v)| k.namespace.starts_with(&prefix) && new.get(*k) != Some(*v))
                    .map(|(k, _)| k.clone())
                    .collect();
                let mut changed = !gone.is_empty();
                for k in gone {
                    if let Some(old) = map.remove(&k) {
                        note(&k, Some(old));
                    }
                }
                for (k, v) in new {
                    if map.get(&k) != Some(&v) {
                        let old = map.insert(k.clone(), v);
                        note(&k, old);
                        changed = true;
                    }
                }
                changed || map.len() != before
            }
        }
    }

    /// Starts (or restarts) recording changes for [`Store::take_changes`], from an empty log.
    pub fn track_changes(&mut self) {
        self.changes = Some(Changes::new());
    }

    /// The changes recorded since the last call (or since [`Store::track_changes`]); empty
    /// when changes are not tracked.
    pub fn take_changes(&mut self) -> Changes {
        self.changes
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub fn set_synced(&mut self, kind: ObjKind, synced: bool) {
        self.synced.insert(kind, synced);
    }

    pub fn is_synced(&self, kind: ObjKind) -> bool {
        self.synced.get(&kind).copied().unwrap_or(false)
    }

    pub fn get(&self, kind: ObjKind) -> Option<&HashMap<ObjKey, Contribution>> {
        self.objects.get(&kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_case_insensitively() {
        assert_eq!(Kind::parse("ingress"), Some(Kind::Ingress));
        assert_eq!(Kind::parse("HTTPRoute"), Some(Kind::HTTPRoute));
        assert_eq!(Kind::parse("grpcroute"), Some(Kind::GRPCRoute));
        assert_eq!(Kind::parse("Pod"), None);
    }

    #[test]
    fn store_reports_changes() {
        let mut s = Store::default();
        let k = ObjKey::new("ns", "a");
        let c = Contribution::Names(vec![NameData {
            name: "a.example.com".into(),
            ..Default::default()
        }]);
        assert!(s.apply(ObjKind::Ingress, Event::Apply(k.clone(), Some(c.clone()))));
        assert!(!s.apply(ObjKind::Ingress, Event::Apply(k.clone(), Some(c.clone()))));
        assert!(s.apply(ObjKind::Ingress, Event::Apply(k.clone(), None)));
        assert!(!s.apply(ObjKind::Ingress, Event::Delete(k.clone())));
        assert!(s.apply(
            ObjKind::Ingress,
            Event::Replace(vec![(k.clone(), c.clone())])
        ));
        assert!(!s.apply(ObjKind::Ingress, Event::Replace(vec![(k, c)])));
    }

    #[test]
    fn store_logs_each_changed_object_with_its_value_before_the_batch() {
        let names = |n: &str| {
            Contribution::Names(vec![NameData {
                name: n.into(),
                ..Default::default()
            }])
        };
        let (a, b, c) = (
            ObjKey::new("ns", "a"),
            ObjKey::new("ns", "b"),
            ObjKey::new("x", "c"),
        );
        let mut s = Store::default();
        s.apply(ObjKind::Ingress, Event::Apply(a.clone(), Some(names("a1"))));
        // Not tracked yet: nothing recorded.
        assert!(s.take_changes().is_empty());
        s.track_changes();
        s.apply(ObjKind::Ingress, Event::Apply(a.clone(), Some(names("a2"))));
        s.apply(ObjKind::Ingress, Event::Apply(a.clone(), Some(names("a3"))));
        s.apply(ObjKind::Ingress, Event::Apply(b.clone(), Some(names("b1"))));
        // No change, no entry.
        s.apply(ObjKind::Service, Event::Delete(c.clone()));
        let log = s.take_changes();
        assert_eq!(log[&ObjKind::Ingress].len(), 2);
        assert_eq!(
            log[&ObjKind::Ingress][&a],
            Some(names("a1")),
            "the first old value"
        );
        assert_eq!(log[&ObjKind::Ingress][&b], None, "did not exist");
        assert!(log.get(&ObjKind::Service).is_none_or(|m| m.is_empty()));
        assert!(s.take_changes().values().all(|m| m.is_empty()));

        // A re-list: b changed, a gone, c new; unchanged objects are not logged.
        s.apply(ObjKind::Ingress, Event::Apply(c.clone(), Some(names("c1"))));
        s.take_changes();
        assert!(s.apply(
            ObjKind::Ingress,
            Event::Replace(vec![(b.clone(), names("b2")), (c.clone(), names("c1"))])
        ));
        let log = s.take_changes();
        let mut got: Vec<_> = log[&ObjKind::Ingress].iter().collect();
        got.sort_by(|x, y| x.0.cmp(y.0));
        assert_eq!(got, [(&a, &Some(names("a3"))), (&b, &Some(names("b1")))]);
        // A scoped re-list only touches its scope.
        assert!(s.apply(
            ObjKind::Ingress,
            Event::ReplaceScope("x".into(), vec![(ObjKey::new("x", "d"), names("d1"))])
        ));
        let log = s.take_changes();
        let mut got: Vec<_> = log[&ObjKind::Ingress].iter().collect();
        got.sort_by(|x, y| x.0.cmp(y.0));
        assert_eq!(
            got,
            [(&c, &Some(names("c1"))), (&ObjKey::new("x", "d"), &None)]
        );
        assert_eq!(s.get(ObjKind::Ingress).unwrap().len(), 2);
    }
}
