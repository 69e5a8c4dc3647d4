//! Istio `Gateway` and `VirtualService` (networking.istio.io), as ExternalDNS's
//! `istio-gateway` and `istio-virtualservice` sources read them.
//!
//! A Gateway's names are its `spec.servers[].hosts` (a `namespace/` prefix stripped, `*`
//! skipped) plus the hostname annotation's; its data is its `…/target` annotation's, else the
//! addresses of the Services whose `spec.selector` contains every label of the Gateway's
//! `spec.selector` (any namespace; an empty selector takes every Service), joined by the index
//! builder. A VirtualService's names are its `spec.hosts` (`*` skipped) plus the hostname
//! annotation's; its data is its `…/target` annotation's, else — per name — that of every
//! Gateway in `spec.gateways` (`namespace/name`, or `name` in the VirtualService's namespace;
//! `mesh` ignored) the name binds to: the VirtualService is exported to the Gateway's
//! namespace (`spec.exportTo`) and a server host of the Gateway matches the name (`*`, the
//! name, or a `*.suffix` of it) in a namespace the VirtualService is in (`*`, its namespace,
//! or `.` when both share it). TTL: the `…/ttl` annotation.
//!
//! Only `metadata` and the fields above are deserialized.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use super::annotations::{self, Target};
use super::{annotated, hostnames, object_key, parse, warn, with_annotated_names};
use crate::kube::model::{Contribution, IstioTarget, ObjKey, ObjKind};

#[derive(Deserialize)]
struct GatewayView {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<GatewaySpec>,
}

#[derive(Deserialize, Default)]
struct GatewaySpec {
    #[serde(default)]
    selector: Option<BTreeMap<String, String>>,
    #[serde(default)]
    servers: Option<Vec<ServerView>>,
}

#[derive(Deserialize, Default)]
struct ServerView {
    #[serde(default)]
    hosts: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct VirtualServiceView {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<VirtualServiceSpec>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct VirtualServiceSpec {
    #[serde(default)]
    hosts: Option<Vec<String>>,
    #[serde(default)]
    gateways: Option<Vec<String>>,
    #[serde(default)]
    export_to: Option<Vec<String>>,
}

/// A Gateway server host as a name: `namespace/host` → `host`; `None` for `""` and `*`
/// (ExternalDNS's `hostNamesFromGateway`).
pub(super) fn gateway_host(h: &str) -> Option<&str> {
    if h.is_empty() {
        return None;
    }
    let parts: Vec<&str> = h.split('/').collect();
    let h = if parts.len() == 2 { parts[1] } else { h };
    (h != "*").then_some(h)
}

/// A Gateway server host as VirtualServices bind to it: (namespace, host), namespace `*`
/// without a prefix; `None` for more than one `/` (ExternalDNS skips those).
pub(super) fn server_host(h: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = h.split('/').collect();
    let (ns, host) = match parts[..] {
        [host] => ("*", host),
        [ns, host] => (ns, host),
        _ => return None,
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    Some((ns.to_string(), host))
}

/// A VirtualService host as a name: `None` for `""` and `*`; `namespace/host` → `host`
/// (ExternalDNS's `endpointsFromVirtualService`).
pub(super) fn virtualservice_host(h: &str) -> Option<&str> {
    if h.is_empty() || h == "*" {
        return None;
    }
    let parts: Vec<&str> = h.split('/').collect();
    Some(if parts.len() == 2 { parts[1] } else { h })
}

/// A `spec.gateways` entry: `Ok(None)` for `mesh` (every sidecar) and `""`; `namespace/name`
/// or `name` (in `ns`); `Err` for more than one `/`.
pub(super) fn gateway_ref(r: &str, ns: &str) -> Result<Option<ObjKey>, String> {
    if r.is_empty() || r == "mesh" {
        return Ok(None);
    }
    let parts: Vec<&str> = r.split('/').collect();
    match parts[..] {
        [name] if !name.is_empty() => Ok(Some(ObjKey::new(ns, name))),
        [gns, name] if !name.is_empty() => Ok(Some(ObjKey::new(
            if gns.is_empty() { ns } else { gns },
            name,
        ))),
        _ => Err(format!(
            "spec.gateways: invalid gateway reference \"{r}\" (name or namespace/name) skipped"
        )),
    }
}

fn istio_target(t: Target) -> IstioTarget {
    match t {
        Target::Addrs(a) => IstioTarget::Addrs(a),
        Target::Cname(c) => IstioTarget::Cname(c),
    }
}

pub(super) fn contribute_gateway(
    obj: &serde_json::Value,
) -> Result<(ObjKey, Option<Contribution>), String> {
    const KIND: ObjKind = ObjKind::IstioGateway;
    let gw: GatewayView = parse(KIND, obj)?;
    let key = object_key(KIND, &gw.metadata)?;
    if annotations::is_ignored(&gw.metadata) {
        return Ok((key, None));
    }
    let ann = annotated(KIND, &key, &gw.metadata);
    let spec = gw.spec.unwrap_or_default();
    let hosts: Vec<&str> = spec
        .servers
        .iter()
        .flatten()
        .flat_map(|s| s.hosts.iter().flatten())
        .map(String::as_str)
        .collect();
    let names = with_annotated_names(
        hostnames(
            KIND,
            &key,
            "spec.servers[].hosts",
            hosts.iter().filter_map(|h| gateway_host(h)),
        ),
        &ann,
    );
    let mut servers: Vec<(String, String)> = Vec::new();
    for h in &hosts {
        match server_host(h) {
            Some(s) if !servers.contains(&s) => servers.push(s),
            Some(_) => {}
            None => warn(
                KIND,
                &key,
                &format!("spec.servers[].hosts: invalid host \"{h}\" skipped"),
            ),
        }
    }
    Ok((
        key,
        Some(Contribution::IstioGateway {
            names,
            servers,
            selector: spec.selector.unwrap_or_default(),
            target: ann.target.map(istio_target),
            ttl: ann.ttl,
        }),
    ))
}

pub(super) fn contribute_virtualservice(
    obj: &serde_json::Value,
) -> Result<(ObjKey, Option<Contribution>), String> {
    const KIND: ObjKind = ObjKind::IstioVirtualService;
    let vs: VirtualServiceView = parse(KIND, obj)?;
    let key = object_key(KIND, &vs.metadata)?;
    if annotations::is_ignored(&vs.metadata) {
        return Ok((key, None));
    }
    let ann = annotated(KIND, &key, &vs.metadata);
    let spec = vs.spec.unwrap_or_default();
    let names = with_annotated_names(
        hostnames(
            KIND,
            &key,
            "spec.hosts",
            spec.hosts
                .iter()
                .flatten()
                .filter_map(|h| virtualservice_host(h)),
        ),
        &ann,
    );
    if names.is_empty() {
        return Ok((key, None));
    }
    let mut gateways: Vec<ObjKey> = Vec::new();
    for r in spec.gateways.iter().flatten() {
        match gateway_ref(r, &key.namespace) {
            Ok(Some(g)) if !gateways.contains(&g) => gateways.push(g),
            Ok(_) => {}
            Err(e) => warn(KIND, &key, &e),
        }
    }
    let target = ann.target.map(istio_target);
    if target.is_none() && gateways.is_empty() {
        return Ok((key, None));
    }
    Ok((
        key,
        Some(Contribution::IstioVirtualService {
            names,
            gateways,
            export_to: spec.export_to.unwrap_or_default(),
            target,
            ttl: ann.ttl,
        }),
    ))
}

/// Whether VirtualService `vs` (exported to `export_to`) binds Gateway `gw` (with `servers`)
/// for its name `host` (ExternalDNS's `virtualServiceBindsToGateway`). Namespaces are compared
/// without a source scope prefix.
pub(crate) fn binds(
    vs: &ObjKey,
    export_to: &[String],
    gw: &ObjKey,
    servers: &[(String, String)],
    host: &str,
) -> bool {
    let bare = |ns: &str| ns.rsplit_once('\u{1f}').map_or(ns, |(_, n)| n).to_string();
    let (vs_ns, gw_ns) = (bare(&vs.namespace), bare(&gw.namespace));
    let exported = export_to.is_empty()
        || export_to
            .iter()
            .any(|ns| ns == "*" || *ns == gw_ns || (ns == "." && gw_ns == vs_ns));
    if !exported {
        return false;
    }
    servers.iter().any(|(ns, h)| {
        let visible = ns == "*" || *ns == vs_ns || (ns == "." && vs_ns == gw_ns);
        visible
            && (h == "*"
                || h == host
                || h.strip_prefix('*')
                    .is_some_and(|s| s.starts_with('.') && host.ends_with(s)))
    })
}

/// Whether a Gateway's `selector` picks a Service with `service_selector` (ExternalDNS:
/// `labels.SelectorFromSet(gateway).Matches(service)`; an empty selector picks every one).
pub(crate) fn selects(
    selector: &BTreeMap<String, String>,
    service: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| service.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kube::kinds::contribute;
    use crate::kube::kinds::tests::addr;
    use crate::kube::model::Filters;

    fn run(kind: ObjKind, o: &serde_json::Value) -> Option<Contribution> {
        contribute(kind, o, &Filters::default()).unwrap().1
    }

    #[test]
    fn host_parsing_table() {
        for (h, gw, server, vs) in [
            (
                "web.example.com",
                Some("web.example.com"),
                Some(("*", "web.example.com")),
                Some("web.example.com"),
            ),
            (
                "apps/web.example.com",
                Some("web.example.com"),
                Some(("apps", "web.example.com")),
                Some("web.example.com"),
            ),
            (
                "./Web.Example.com.",
                Some("Web.Example.com."),
                Some((".", "web.example.com")),
                Some("Web.Example.com."),
            ),
            ("*", None, Some(("*", "*")), None),
            ("*/*", None, Some(("*", "*")), Some("*")),
            (
                "*.example.com",
                Some("*.example.com"),
                Some(("*", "*.example.com")),
                Some("*.example.com"),
            ),
            ("", None, Some(("*", "")), None),
            ("a/b/c", Some("a/b/c"), None, Some("a/b/c")),
        ] {
            assert_eq!(gateway_host(h), gw, "{h}");
            assert_eq!(
                server_host(h),
                server.map(|(n, h)| (n.to_string(), h.to_string())),
                "{h}"
            );
            assert_eq!(virtualservice_host(h), vs, "{h}");
        }
    }

    #[test]
    fn gateway_refs_table() {
        for (r, want) in [
            ("gw", Ok(Some(ObjKey::new("apps", "gw")))),
            (
                "istio-system/gw",
                Ok(Some(ObjKey::new("istio-system", "gw"))),
            ),
            ("/gw", Ok(Some(ObjKey::new("apps", "gw")))),
            ("mesh", Ok(None)),
            ("", Ok(None)),
            ("a/", Err(())),
            ("a/b/c", Err(())),
        ] {
            assert_eq!(gateway_ref(r, "apps").map_err(|_| ()), want, "{r}");
        }
    }

    #[test]
    fn binding_table() {
        let vs = ObjKey::new("apps", "vs");
        let gw = ObjKey::new("istio-system", "gw");
        let s = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let e = |v: &[&str]| -> Vec<String> { v.iter().map(|x| x.to_string()).collect() };
        for (export, servers, host, want) in [
            (
                e(&[]),
                s(&[("*", "web.example.com")]),
                "web.example.com",
                true,
            ),
            (
                e(&[]),
                s(&[("*", "web.example.com")]),
                "api.example.com",
                false,
            ),
            (e(&[]), s(&[("*", "*")]), "anything.example.org", true),
            (
                e(&[]),
                s(&[("*", "*.example.com")]),
                "web.example.com",
                true,
            ),
            (e(&[]), s(&[("*", "*.example.com")]), "example.com", false),
            (
                e(&[]),
                s(&[("apps", "web.example.com")]),
                "web.example.com",
                true,
            ),
            (
                e(&[]),
                s(&[("other", "web.example.com")]),
                "web.example.com",
                false,
            ),
            // `.`: the Gateway's own namespace, which is not the VirtualService's.
            (
                e(&[]),
                s(&[(".", "web.example.com")]),
                "web.example.com",
                false,
            ),
            (
                e(&["."]),
                s(&[("*", "web.example.com")]),
                "web.example.com",
                false,
            ),
            (
                e(&["istio-system"]),
                s(&[("*", "web.example.com")]),
                "web.example.com",
                true,
            ),
            (
                e(&["*"]),
                s(&[("*", "web.example.com")]),
                "web.example.com",
                true,
            ),
            (e(&["other"]), s(&[("*", "*")]), "web.example.com", false),
            (e(&[]), s(&[]), "web.example.com", false),
        ] {
            assert_eq!(
                binds(&vs, &export, &gw, &servers, host),
                want,
                "{export:?} {servers:?} {host}"
            );
        }
        // Same namespace: `.` binds on both sides; scope prefixes are not namespaces.
        let gw = ObjKey::new("0\u{1f}apps", "gw");
        let vs = ObjKey::new("0\u{1f}apps", "vs");
        assert!(binds(
            &vs,
            &e(&["."]),
            &gw,
            &s(&[(".", "a.example.com")]),
            "a.example.com"
        ));
    }

    #[test]
    fn selector_table() {
        let m = |v: &[(&str, &str)]| -> BTreeMap<String, String> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let svc = m(&[("istio", "ingressgateway"), ("app", "gw")]);
        assert!(selects(&m(&[("istio", "ingressgateway")]), &svc));
        assert!(selects(&m(&[]), &svc));
        assert!(selects(&m(&[]), &m(&[])));
        assert!(!selects(&m(&[("istio", "eastwest")]), &svc));
        assert!(!selects(
            &m(&[("istio", "ingressgateway"), ("x", "y")]),
            &svc
        ));
    }

    fn gateway(annotations: serde_json::Value, spec: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "istio-system", "annotations": annotations},
            "spec": spec,
        })
    }

    #[test]
    fn gateways() {
        let o = gateway(
            json!({"external-dns.alpha.kubernetes.io/hostname": "alias.example.com",
                   "external-dns.alpha.kubernetes.io/ttl": "90"}),
            json!({"selector": {"istio": "ingressgateway"},
                   "servers": [{"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                                "hosts": ["apps/Web.Example.com", "*", "bad_host!.example.com", "a/b/c"]},
                               {"hosts": ["*.apps.example.com"]}]}),
        );
        assert_eq!(
            run(ObjKind::IstioGateway, &o),
            Some(Contribution::IstioGateway {
                names: vec![
                    "web.example.com".into(),
                    "*.apps.example.com".into(),
                    "alias.example.com".into()
                ],
                servers: vec![
                    ("apps".into(), "web.example.com".into()),
                    ("*".into(), "*".into()),
                    ("*".into(), "bad_host!.example.com".into()),
                    ("*".into(), "*.apps.example.com".into()),
                ],
                selector: [("istio".to_string(), "ingressgateway".to_string())].into(),
                target: None,
                ttl: Some(90),
            })
        );
        // Target annotation; no spec at all: still a Gateway (VirtualServices bind to it).
        let o = gateway(
            json!({"external-dns.alpha.kubernetes.io/target": "192.0.2.1"}),
            json!(null),
        );
        assert_eq!(
            run(ObjKind::IstioGateway, &o),
            Some(Contribution::IstioGateway {
                names: vec![],
                servers: vec![],
                selector: Default::default(),
                target: Some(IstioTarget::Addrs(vec![addr("192.0.2.1")])),
                ttl: None,
            })
        );
        // Ignored by label.
        let mut o = gateway(
            json!({}),
            json!({"servers": [{"hosts": ["a.example.com"]}]}),
        );
        o["metadata"]["labels"] = json!({"k8s-gateway.dns/ignore": "true"});
        assert_eq!(run(ObjKind::IstioGateway, &o), None);
    }

    fn vs(annotations: serde_json::Value, spec: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": "apps", "annotations": annotations},
            "spec": spec,
        })
    }

    #[test]
    fn virtualservices() {
        let o = vs(
            json!({"external-dns.alpha.kubernetes.io/hostname": "alias.example.com"}),
            json!({"hosts": ["Web.Example.com", "*", "", "web.apps.svc.cluster.local"],
                   "gateways": ["mesh", "istio-system/gw", "local", "istio-system/gw", "x/y/z"],
                   "exportTo": ["."],
                   "http": [{"route": [{"destination": {"host": "web"}}]}]}),
        );
        assert_eq!(
            run(ObjKind::IstioVirtualService, &o),
            Some(Contribution::IstioVirtualService {
                names: vec![
                    "web.example.com".into(),
                    "web.apps.svc.cluster.local".into(),
                    "alias.example.com".into()
                ],
                gateways: vec![
                    ObjKey::new("istio-system", "gw"),
                    ObjKey::new("apps", "local")
                ],
                export_to: vec![".".into()],
                target: None,
                ttl: None,
            })
        );
        // Only `mesh`: nothing to answer with (sidecars only).
        let o = vs(
            json!({}),
            json!({"hosts": ["web.example.com"], "gateways": ["mesh"]}),
        );
        assert_eq!(run(ObjKind::IstioVirtualService, &o), None);
        // No gateways, but a target annotation: its data.
        let o = vs(
            json!({"external-dns.alpha.kubernetes.io/target": "lb.example.net"}),
            json!({"hosts": ["web.example.com"]}),
        );
        assert_eq!(
            run(ObjKind::IstioVirtualService, &o),
            Some(Contribution::IstioVirtualService {
                names: vec!["web.example.com".into()],
                gateways: vec![],
                export_to: vec![],
                target: Some(IstioTarget::Cname("lb.example.net".into())),
                ttl: None,
            })
        );
        // Only `*`: no names.
        let o = vs(json!({}), json!({"hosts": ["*"], "gateways": ["gw"]}));
        assert_eq!(run(ObjKind::IstioVirtualService, &o), None);
        assert_eq!(
            run(ObjKind::IstioVirtualService, &vs(json!({}), json!(null))),
            None
        );
    }

    #[test]
    fn malformed_objects_are_errors_naming_them() {
        for (kind, spec) in [
            (ObjKind::IstioGateway, json!({"servers": "nope"})),
            (ObjKind::IstioGateway, json!({"servers": [{"hosts": [1]}]})),
            (ObjKind::IstioGateway, json!({"selector": {"istio": 1}})),
            (ObjKind::IstioGateway, json!({"selector": ["a"]})),
            (
                ObjKind::IstioVirtualService,
                json!({"hosts": "web.example.com"}),
            ),
            (
                ObjKind::IstioVirtualService,
                json!({"hosts": ["a.example.com"], "gateways": [{}]}),
            ),
            (
                ObjKind::IstioVirtualService,
                json!({"hosts": ["a.example.com"], "exportTo": 3}),
            ),
            (ObjKind::IstioVirtualService, json!(7)),
        ] {
            let o = json!({"kind": kind.k8s_kind(),
                           "metadata": {"name": "x", "namespace": "apps"}, "spec": spec});
            let e = contribute(kind, &o, &Filters::default()).unwrap_err();
            assert!(e.starts_with(&format!("{kind} apps/x: ")), "{e}");
        }
    }
}
