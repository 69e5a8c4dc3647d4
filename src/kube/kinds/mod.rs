//! Per-kind conversion: a raw Kubernetes object (as JSON) → what it contributes to the index.
//! The same functions serve the API-server watchers and the manifests source.
//!
//! Every kind follows the same rules: a missing `metadata.name` is an error; objects labelled
//! `k8s-gateway.dns/ignore: "true"` contribute nothing; hostnames are lower-cased, lose their
//! trailing dot, are validated (invalid ones are dropped with a warning) and de-duplicated; an
//! object with names but no usable addresses contributes nothing.

pub mod annotations;
pub(crate) use istio::{binds as istio_binds, selects as istio_selects};
mod dnsendpoint;
mod endpointslice;
mod gateway;
mod ingress;
mod ingressroute;
mod istio;
mod node;
mod route;
mod service;
mod virtualserver;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;

use self::annotations::Target;
use crate::kube::model::{Address, Contribution, Filters, NameData, ObjKey, ObjKind};

/// Converts one object of `kind`. `Ok(None)`: the object exists but contributes nothing
/// (ignored by label, filtered out, no usable names). `Err`: the object is malformed (the
/// message names what is wrong; the caller logs it and skips the object).
pub fn contribute(
    kind: ObjKind,
    obj: &serde_json::Value,
    filters: &Filters,
) -> Result<(ObjKey, Option<Contribution>), String> {
    if !obj.is_object() {
        return Err(format!(
            "{kind}: expected an object, found {}",
            json_type(obj)
        ));
    }
    let (key, c) = match kind {
        ObjKind::Ingress => ingress::contribute(obj, filters),
        ObjKind::Service => service::contribute(obj, filters),
        ObjKind::EndpointSlice => endpointslice::contribute(obj),
        ObjKind::Gateway => gateway::contribute(obj),
        ObjKind::HTTPRoute
        | ObjKind::TLSRoute
        | ObjKind::GRPCRoute
        | ObjKind::TCPRoute
        | ObjKind::UDPRoute => route::contribute(kind, obj),
        ObjKind::DNSEndpoint => dnsendpoint::contribute(obj),
        ObjKind::VirtualServer => virtualserver::contribute(obj),
        ObjKind::IngressRoute
        | ObjKind::IngressRouteTCP
        | ObjKind::IngressRouteUDP
        | ObjKind::LegacyIngressRoute
        | ObjKind::LegacyIngressRouteTCP
        | ObjKind::LegacyIngressRouteUDP => ingressroute::contribute(kind, obj),
        ObjKind::IstioGateway => istio::contribute_gateway(obj),
        ObjKind::IstioVirtualService => istio::contribute_virtualservice(obj),
        ObjKind::Node => node::contribute(obj, filters),
    }?;
    if filters.hostname_as_cname {
        return Ok((key, c.map(hostname_as_cname)));
    }
    Ok((key, c))
}

/// `hostnameAsCNAME`: data whose addresses include a status hostname becomes a CNAME to the
/// first such hostname (a name with a CNAME has no other data, so its IPs are dropped, as a
/// hostname `…/target` wins over IPs). Endpoint-resolved Services and data that already is a
/// CNAME are left alone.
fn hostname_as_cname(c: Contribution) -> Contribution {
    fn first_host(addrs: &[Address]) -> Option<String> {
        addrs.iter().find_map(|a| match a {
            Address::Hostname(h) => Some(h.clone()),
            Address::Ip(_) => None,
        })
    }
    fn names(nds: &mut [NameData]) {
        for nd in nds {
            if nd.cname.is_empty()
                && nd.endpoints_of.is_none()
                && let Some(h) = first_host(&nd.addrs)
            {
                nd.addrs.clear();
                nd.cname.push(h);
            }
        }
    }
    match c {
        Contribution::Names(mut nds) => {
            names(&mut nds);
            Contribution::Names(nds)
        }
        // The addresses Istio Gateways take from it are turned into a CNAME by the index
        // builder (they join several Services).
        Contribution::Service {
            names: mut nds,
            selector,
            addrs,
        } => {
            names(&mut nds);
            Contribution::Service {
                names: nds,
                selector,
                addrs,
            }
        }
        Contribution::Gateway {
            class,
            addrs,
            cname: None,
            listeners,
        } if first_host(&addrs).is_some() => Contribution::Gateway {
            class,
            cname: first_host(&addrs),
            addrs: Vec::new(),
            listeners,
        },
        other => other,
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Deserializes `obj` into the typed struct of `kind`. The error names the object when its
/// name can be read.
fn parse<T: DeserializeOwned>(kind: ObjKind, obj: &serde_json::Value) -> Result<T, String> {
    T::deserialize(obj).map_err(|e| {
        let name = obj
            .pointer("/metadata/name")
            .and_then(|v| v.as_str())
            .unwrap_or("<unnamed>");
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(|v| v.as_str())
            .filter(|_| kind.namespaced());
        match ns {
            Some(ns) => format!("{kind} {ns}/{name}: {e}"),
            None => format!("{kind} {name}: {e}"),
        }
    })
}

/// `namespace/name`; the namespace defaults to `default` for namespaced kinds and is empty for
/// cluster-scoped ones.
fn object_key(kind: ObjKind, meta: &ObjectMeta) -> Result<ObjKey, String> {
    let name = meta
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("{kind}: metadata.name is missing"))?;
    let ns = if kind.namespaced() {
        meta.namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
    } else {
        ""
    };
    Ok(ObjKey::new(ns, name))
}

/// Logs a problem with one part of an object (the object itself is still used).
fn warn(kind: ObjKind, key: &ObjKey, msg: &str) {
    tracing::warn!(kind = %kind, object = %key, "{msg}");
}

/// Normalizes hostnames (wildcards allowed) and drops invalid ones with a warning.
fn hostnames<'a>(
    kind: ObjKind,
    key: &ObjKey,
    field: &str,
    raw: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let mut names = annotations::Names::default();
    for h in raw {
        match annotations::normalize_name(h, true) {
            Ok(n) => names.push(n),
            Err(e) => warn(
                kind,
                key,
                &format!("{field}: invalid hostname skipped: {e}"),
            ),
        }
    }
    names.into_vec()
}

/// The same addresses for every name; nothing when either list is empty.
fn names_with_addrs(names: Vec<String>, addrs: Vec<Address>) -> Option<Contribution> {
    names_with(names, Some(Target::Addrs(addrs)), None)
}

/// The same data (addresses or a CNAME) and TTL for every name; nothing without names or data.
fn names_with(names: Vec<String>, data: Option<Target>, ttl: Option<u32>) -> Option<Contribution> {
    let (addrs, cname) = match data? {
        Target::Addrs(a) if a.is_empty() => return None,
        Target::Addrs(a) => (annotations::dedup_addrs(a), Vec::new()),
        Target::Cname(c) => (Vec::new(), vec![c]),
    };
    if names.is_empty() {
        return None;
    }
    Some(Contribution::Names(
        names
            .into_iter()
            .map(|name| NameData {
                name,
                addrs: addrs.clone(),
                cname: cname.clone(),
                ttl,
                ..Default::default()
            })
            .collect(),
    ))
}

/// What an object's ExternalDNS-style annotations say (see docs/plugins/k8s_gateway.md,
/// "Annotations"): the hostname annotation in effect and its valid names, the object's TTL,
/// its target override. Problems are logged against the object.
struct Annotated {
    hostnames: Option<(&'static str, Vec<String>)>,
    ttl: Option<u32>,
    target: Option<Target>,
}

fn annotated(kind: ObjKind, key: &ObjKey, meta: &ObjectMeta) -> Annotated {
    let mut w = |m: String| warn(kind, key, &m);
    Annotated {
        hostnames: annotations::annotated_hostnames(meta, &mut w),
        ttl: annotations::ttl(meta, &mut w),
        target: annotations::target(meta, &mut w),
    }
}

/// `spec` names followed by the annotation's (de-duplicated, in order).
fn with_annotated_names(spec: Vec<String>, ann: &Annotated) -> Vec<String> {
    let mut names = annotations::Names::default();
    for n in spec
        .into_iter()
        .chain(ann.hostnames.iter().flat_map(|(_, v)| v.iter().cloned()))
    {
        names.push(n);
    }
    names.into_vec()
}

#[cfg(test)]
mod tests;
