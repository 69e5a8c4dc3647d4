//! HTTPRoute, GRPCRoute (gateway.networking.k8s.io/v1) and TLSRoute (v1, or v1alpha2 before
//! Gateway API 1.5), TCPRoute and UDPRoute (v1alpha2; they have no `spec.hostnames`, so as in
//! ExternalDNS their names come from the hostname annotation and from the parent Gateways'
//! listener hostnames): `spec.hostnames` plus the hostname annotation's, the `…/ttl`
//! annotation's TTL, and the parent Gateways from `spec.parentRefs` (kind
//! `Gateway` or unset, group `gateway.networking.k8s.io` or unset). A parentRef without a
//! namespace means the route's own namespace — decided per ref.
//!
//! Only `metadata` and `spec.{hostnames,parentRefs}` are deserialized (parentRefs with the
//! gateway-api crate's types): the generated route types reject a whole object over a filter
//! or match type their closed enums don't know, which would drop the route's names.

use gateway_api::grpcroutes::GrpcRouteParentRefs;
use gateway_api::httproutes::HttpRouteParentRefs;
use gateway_api::tlsroutes::TlsRouteParentRefs;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::annotations::{self, TARGET_ANNOTATIONS};
use super::{hostnames, object_key, parse, warn};
use crate::kube::crds::TLSRouteV1Alpha2ParentRef;
use crate::kube::model::{Contribution, ObjKey, ObjKind};

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

#[derive(Deserialize)]
#[serde(bound = "P: DeserializeOwned")]
struct RouteView<P> {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<SpecView<P>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", bound = "P: DeserializeOwned")]
struct SpecView<P> {
    #[serde(default)]
    hostnames: Option<Vec<String>>,
    #[serde(default)]
    parent_refs: Option<Vec<P>>,
}

/// The parentRef fields every route version shares.
trait ParentRef {
    fn group(&self) -> Option<&str>;
    fn kind(&self) -> Option<&str>;
    fn namespace(&self) -> Option<&str>;
    fn name(&self) -> &str;
    fn section_name(&self) -> Option<&str>;
}

macro_rules! parent_ref {
    ($($t:ty),*) => {$(
        impl ParentRef for $t {
            fn group(&self) -> Option<&str> { self.group.as_deref() }
            fn kind(&self) -> Option<&str> { self.kind.as_deref() }
            fn namespace(&self) -> Option<&str> { self.namespace.as_deref() }
            fn name(&self) -> &str { &self.name }
            fn section_name(&self) -> Option<&str> { self.section_name.as_deref() }
        }
    )*};
}

parent_ref!(
    HttpRouteParentRefs,
    GrpcRouteParentRefs,
    TlsRouteParentRefs,
    TLSRouteV1Alpha2ParentRef
);

pub(super) fn contribute(
    kind: ObjKind,
    obj: &serde_json::Value,
) -> Result<(ObjKey, Option<Contribution>), String> {
    match kind {
        ObjKind::HTTPRoute => route::<HttpRouteParentRefs>(kind, obj),
        ObjKind::GRPCRoute => route::<GrpcRouteParentRefs>(kind, obj),
        // Same parentRef shape as TLSRoute v1alpha2.
        ObjKind::TCPRoute | ObjKind::UDPRoute => route::<TLSRouteV1Alpha2ParentRef>(kind, obj),
        ObjKind::TLSRoute => {
            let version = obj.get("apiVersion").and_then(|v| v.as_str()).unwrap_or("");
            if version == format!("{GATEWAY_GROUP}/v1alpha2") {
                route::<TLSRouteV1Alpha2ParentRef>(kind, obj)
            } else {
                route::<TlsRouteParentRefs>(kind, obj)
            }
        }
        _ => Err(format!("{kind} is not a route kind")),
    }
}

fn route<P: ParentRef + DeserializeOwned>(
    kind: ObjKind,
    obj: &serde_json::Value,
) -> Result<(ObjKey, Option<Contribution>), String> {
    let r: RouteView<P> = parse(kind, obj)?;
    let key = object_key(kind, &r.metadata)?;
    if annotations::is_ignored(&r.metadata) {
        return Ok((key, None));
    }
    let Some(spec) = r.spec else {
        return Ok((key, None));
    };
    let mut names = annotations::Names::default();
    // TCPRoute and UDPRoute have no hostnames (ExternalDNS reads none for them).
    let spec_hostnames = match kind {
        ObjKind::TCPRoute | ObjKind::UDPRoute => None,
        _ => spec.hostnames.as_ref(),
    };
    // As ExternalDNS: a route without spec hostnames takes its Gateways' listener hostnames.
    let inherit = spec_hostnames.is_none_or(|h| h.is_empty());
    for n in hostnames(
        kind,
        &key,
        "spec.hostnames",
        spec_hostnames.into_iter().flatten().map(String::as_str),
    ) {
        names.push(n);
    }
    // As ExternalDNS's Gateway sources: the route's hostname annotation adds names, its TTL
    // annotation sets the TTL; the target annotation is read on the parent Gateway.
    let mut w = |m: String| warn(kind, &key, &m);
    if let Some((_, extra)) = annotations::annotated_hostnames(&r.metadata, &mut w) {
        for n in extra {
            names.push(n);
        }
    }
    let ttl = annotations::ttl(&r.metadata, &mut w);
    if let Some((k, _)) = annotations::first_annotation(&r.metadata, &TARGET_ANNOTATIONS) {
        w(format!(
            "annotation {k} is read on the parent Gateway, not on routes (as ExternalDNS); ignored"
        ));
    }
    let names = names.into_vec();
    let mut parents: Vec<ObjKey> = Vec::new();
    // Per parent: the sections its refs name (`None`: some ref names the whole Gateway).
    let mut sections: Vec<(ObjKey, Option<Vec<String>>)> = Vec::new();
    for p in spec.parent_refs.iter().flatten() {
        if p.kind().is_some_and(|k| k != "Gateway") || p.group().is_some_and(|g| g != GATEWAY_GROUP)
        {
            continue;
        }
        if p.name().is_empty() {
            continue;
        }
        // Per ref: an unset namespace is the route's own, never the previous ref's.
        let ns = p
            .namespace()
            .filter(|n| !n.is_empty())
            .unwrap_or(&key.namespace);
        let parent = ObjKey::new(ns, p.name());
        let section = p
            .section_name()
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        match sections.iter_mut().find(|(k, _)| *k == parent) {
            Some((_, secs)) => match (secs.as_mut(), section) {
                (Some(v), Some(s)) if !v.contains(&s) => v.push(s),
                (Some(_), None) => *secs = None,
                _ => {}
            },
            None => sections.push((parent.clone(), section.map(|s| vec![s]))),
        }
        if !parents.contains(&parent) {
            parents.push(parent);
        }
    }
    // Only routes that inherit listener hostnames need to know which listeners.
    let sections: Vec<(ObjKey, String)> = sections
        .into_iter()
        .filter(|_| inherit)
        .flat_map(|(k, secs)| secs.into_iter().flatten().map(move |s| (k.clone(), s)))
        .collect();
    if (names.is_empty() && !inherit) || parents.is_empty() {
        return Ok((key, None));
    }
    Ok((
        key,
        Some(Contribution::Route {
            hostnames: names,
            parents,
            ttl,
            inherit,
            sections,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::kube::kinds::contribute;
    use crate::kube::model::{Contribution, Filters, ObjKey, ObjKind};

    fn route(
        api: &str,
        kind: &str,
        hostnames: serde_json::Value,
        parents: serde_json::Value,
    ) -> serde_json::Value {
        json!({
            "apiVersion": api,
            "kind": kind,
            "metadata": {"name": "r", "namespace": "apps"},
            "spec": {
                "hostnames": hostnames,
                "parentRefs": parents,
                "rules": [{"filters": [{"type": "SomeFutureFilter"}],
                           "backendRefs": [{"name": "web", "port": 80}]}]
            }
        })
    }

    fn run(kind: ObjKind, obj: &serde_json::Value) -> Option<Contribution> {
        contribute(kind, obj, &Filters::default()).unwrap().1
    }

    #[test]
    fn tcp_and_udp_routes_are_named_by_their_annotation_only() {
        for (k, ok) in [
            ("TCPRoute", ObjKind::TCPRoute),
            ("UDPRoute", ObjKind::UDPRoute),
        ] {
            // spec.hostnames is not a field of these kinds: ignored.
            let mut obj = route(
                "gateway.networking.k8s.io/v1alpha2",
                k,
                json!(["spec.example.com"]),
                json!([{"name": "gw", "namespace": "infra", "sectionName": "tcp", "port": 5432}]),
            );
            assert_eq!(
                run(ok, &obj),
                Some(Contribution::Route {
                    hostnames: vec![],
                    parents: vec![ObjKey::new("infra", "gw")],
                    ttl: None,
                    inherit: true,
                    sections: vec![(ObjKey::new("infra", "gw"), "tcp".into())],
                }),
                "{k}: no annotation: only the listeners' hostnames"
            );
            obj["metadata"]["annotations"] = json!({
                "external-dns.alpha.kubernetes.io/hostname": "DB.example.com., db2.example.com",
                "external-dns.alpha.kubernetes.io/ttl": "30"
            });
            assert_eq!(
                run(ok, &obj),
                Some(Contribution::Route {
                    hostnames: vec!["db.example.com".into(), "db2.example.com".into()],
                    parents: vec![ObjKey::new("infra", "gw")],
                    ttl: Some(30),
                    inherit: true,
                    sections: vec![(ObjKey::new("infra", "gw"), "tcp".into())],
                }),
                "{k}"
            );
            // A malformed spec is an error naming the object, not a panic.
            let bad = json!({"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": k,
                             "metadata": {"name": "r", "namespace": "apps"},
                             "spec": {"parentRefs": "nope"}});
            let e = contribute(ok, &bad, &Filters::default()).unwrap_err();
            assert!(e.starts_with(&format!("{k} apps/r: ")), "{e}");
        }
    }

    #[test]
    fn every_route_kind_and_version() {
        let cases = [
            (
                "gateway.networking.k8s.io/v1",
                "HTTPRoute",
                ObjKind::HTTPRoute,
            ),
            (
                "gateway.networking.k8s.io/v1beta1",
                "HTTPRoute",
                ObjKind::HTTPRoute,
            ),
            (
                "gateway.networking.k8s.io/v1",
                "GRPCRoute",
                ObjKind::GRPCRoute,
            ),
            (
                "gateway.networking.k8s.io/v1",
                "TLSRoute",
                ObjKind::TLSRoute,
            ),
            (
                "gateway.networking.k8s.io/v1alpha2",
                "TLSRoute",
                ObjKind::TLSRoute,
            ),
        ];
        for (api, k, kind) in cases {
            let obj = route(
                api,
                k,
                json!(["App.Example.com.", "app.example.com", "*.app.example.com"]),
                json!([{"name": "public", "namespace": "gateway-system", "sectionName": "https"}]),
            );
            let (key, c) = contribute(kind, &obj, &Filters::default()).unwrap();
            assert_eq!(key, ObjKey::new("apps", "r"));
            assert_eq!(
                c,
                Some(Contribution::Route {
                    hostnames: vec!["app.example.com".into(), "*.app.example.com".into()],
                    parents: vec![ObjKey::new("gateway-system", "public")],
                    ttl: None,
                    inherit: false,
                    sections: vec![],
                }),
                "{api} {k}"
            );
        }
    }

    #[test]
    fn parents_table() {
        let cases = vec![
            // two parents, one cross-namespace
            (
                json!([{"name": "public", "namespace": "gateway-system"}, {"name": "internal"}]),
                vec![
                    ObjKey::new("gateway-system", "public"),
                    ObjKey::new("apps", "internal"),
                ],
            ),
            // the namespace of one ref must not leak into the next (fork bug)
            (
                json!([{"name": "a", "namespace": "other"}, {"name": "b"}, {"name": "c", "namespace": "third"}, {"name": "d"}]),
                vec![
                    ObjKey::new("other", "a"),
                    ObjKey::new("apps", "b"),
                    ObjKey::new("third", "c"),
                    ObjKey::new("apps", "d"),
                ],
            ),
            // explicit kind and group
            (
                json!([{"name": "g", "kind": "Gateway", "group": "gateway.networking.k8s.io"}]),
                vec![ObjKey::new("apps", "g")],
            ),
            // non-Gateway parents are skipped
            (
                json!([{"name": "svc", "kind": "Service", "group": ""},
                       {"name": "ls", "kind": "ListenerSet", "group": "gateway.networking.x-k8s.io"},
                       {"name": "g", "group": "example.com"},
                       {"name": "ok"}]),
                vec![ObjKey::new("apps", "ok")],
            ),
            // duplicate refs (different sections of one Gateway) collapse
            (
                json!([{"name": "g", "sectionName": "http"}, {"name": "g", "sectionName": "https"},
                       {"name": "g", "namespace": "apps"}]),
                vec![ObjKey::new("apps", "g")],
            ),
        ];
        for (parents, want) in cases {
            let obj = route(
                "gateway.networking.k8s.io/v1",
                "HTTPRoute",
                json!(["a.example.com"]),
                parents.clone(),
            );
            assert_eq!(
                run(ObjKind::HTTPRoute, &obj),
                Some(Contribution::Route {
                    hostnames: vec!["a.example.com".into()],
                    parents: want,
                    ttl: None,
                    inherit: false,
                    sections: vec![],
                }),
                "parentRefs {parents}"
            );
        }
    }

    #[test]
    fn section_names_restrict_parents_listeners() {
        let obj = route(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            json!(null),
            json!([
                {"name": "a", "sectionName": "http"},
                {"name": "a", "sectionName": "admin"},
                {"name": "b", "sectionName": "http"},
                {"name": "b"},
                {"name": "c", "namespace": "infra"}
            ]),
        );
        assert_eq!(
            run(ObjKind::HTTPRoute, &obj),
            Some(Contribution::Route {
                hostnames: vec![],
                parents: vec![
                    ObjKey::new("apps", "a"),
                    ObjKey::new("apps", "b"),
                    ObjKey::new("infra", "c"),
                ],
                ttl: None,
                inherit: true,
                sections: vec![
                    (ObjKey::new("apps", "a"), "http".into()),
                    (ObjKey::new("apps", "a"), "admin".into()),
                ],
            })
        );
    }

    #[test]
    fn nothing_to_contribute() {
        // No hostnames (empty or unset) but a parent: the route takes its Gateways' listener
        // hostnames (ExternalDNS), so it still contributes.
        for hosts in [json!([]), json!(null)] {
            let obj = route(
                "gateway.networking.k8s.io/v1",
                "HTTPRoute",
                hosts,
                json!([{"name": "g"}]),
            );
            assert_eq!(
                run(ObjKind::HTTPRoute, &obj),
                Some(Contribution::Route {
                    hostnames: vec![],
                    parents: vec![ObjKey::new("apps", "g")],
                    ttl: None,
                    inherit: true,
                    sections: vec![],
                }),
                "{obj}"
            );
        }
        let none = [
            route(
                "gateway.networking.k8s.io/v1",
                "HTTPRoute",
                json!(["a.example.com"]),
                json!([]),
            ),
            route(
                "gateway.networking.k8s.io/v1",
                "HTTPRoute",
                json!(["a.example.com"]),
                json!([{"name": "s", "kind": "Service"}]),
            ),
            json!({"kind": "HTTPRoute", "metadata": {"name": "nospec", "namespace": "x"}}),
        ];
        for obj in &none {
            assert_eq!(run(ObjKind::HTTPRoute, obj), None, "{obj}");
        }
        let mut obj = route(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            json!(["a.example.com"]),
            json!([{"name": "g"}]),
        );
        obj["metadata"]["labels"] = json!({"k8s-gateway.dns/ignore": "true"});
        assert_eq!(run(ObjKind::HTTPRoute, &obj), None);
    }

    #[test]
    fn malformed() {
        let obj = route(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            json!("a.example.com"),
            json!([]),
        );
        assert_eq!(
            contribute(ObjKind::HTTPRoute, &obj, &Filters::default()).unwrap_err(),
            "HTTPRoute apps/r: invalid type: string \"a.example.com\", expected a sequence"
        );
        let obj = route(
            "gateway.networking.k8s.io/v1",
            "GRPCRoute",
            json!(["a.example.com"]),
            json!([{"namespace": "x"}]),
        );
        assert_eq!(
            contribute(ObjKind::GRPCRoute, &obj, &Filters::default()).unwrap_err(),
            "GRPCRoute apps/r: missing field `name`"
        );
    }
}
