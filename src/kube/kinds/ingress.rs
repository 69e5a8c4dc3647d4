//! Ingress (networking.k8s.io/v1): names from `spec.rules[*].host` plus the hostname
//! annotation's (as ExternalDNS adds them), addresses from the `…/target` annotation, else
//! `status.loadBalancer.ingress[]` (`ip`, or `hostname` resolved later); TTL from `…/ttl`.

use k8s_openapi::api::networking::v1::Ingress;

use super::annotations::Target;
use super::annotations::{self, INGRESS_CLASS};
use super::{annotated, hostnames, names_with, object_key, parse, warn, with_annotated_names};
use crate::kube::model::{Contribution, Filters, ObjKey, ObjKind};

const KIND: ObjKind = ObjKind::Ingress;

pub(super) fn contribute(
    obj: &serde_json::Value,
    filters: &Filters,
) -> Result<(ObjKey, Option<Contribution>), String> {
    let ing: Ingress = parse(KIND, obj)?;
    let key = object_key(KIND, &ing.metadata)?;
    if annotations::is_ignored(&ing.metadata) {
        return Ok((key, None));
    }
    // `spec.ingressClassName`, else the legacy annotation. No class at all is fine; it only
    // fails a configured `ingressClasses` filter.
    let class = ing
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
        .or_else(|| annotations::annotation(&ing.metadata, INGRESS_CLASS))
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if !filters.ingress_classes.is_empty()
        && !class.is_some_and(|c| filters.ingress_classes.iter().any(|f| f == c))
    {
        return Ok((key, None));
    }
    let hosts = ing
        .spec
        .iter()
        .flat_map(|s| s.rules.iter().flatten())
        .filter_map(|r| r.host.as_deref());
    let ann = annotated(KIND, &key, &ing.metadata);
    let names = with_annotated_names(hostnames(KIND, &key, "spec.rules[].host", hosts), &ann);
    if let Some(t) = ann.target {
        return Ok((key, names_with(names, Some(t), ann.ttl)));
    }
    let mut addrs = Vec::new();
    let lb = ing
        .status
        .iter()
        .flat_map(|s| s.load_balancer.iter())
        .flat_map(|lb| lb.ingress.iter().flatten());
    for e in lb {
        let mut w = |m: String| warn(KIND, &key, &format!("status.loadBalancer.ingress: {m}"));
        if let Some(a) = annotations::status_address(e.ip.as_deref(), e.hostname.as_deref(), &mut w)
        {
            addrs.push(a);
        }
    }
    Ok((
        key.clone(),
        names_with(names, Some(Target::Addrs(addrs)), ann.ttl),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::kube::kinds::contribute;
    use crate::kube::kinds::tests::{addr, host, names};
    use crate::kube::model::{Contribution, Filters, NameData, ObjKey, ObjKind};

    fn ingress(
        class: Option<&str>,
        legacy: Option<&str>,
        hosts: &[&str],
        lb: serde_json::Value,
    ) -> serde_json::Value {
        let mut obj = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"rules": hosts.iter().map(|h| json!({"host": h})).collect::<Vec<_>>()},
            "status": {"loadBalancer": {"ingress": lb}}
        });
        if let Some(c) = class {
            obj["spec"]["ingressClassName"] = json!(c);
        }
        if let Some(c) = legacy {
            obj["metadata"]["annotations"] = json!({"kubernetes.io/ingress.class": c});
        }
        obj
    }

    fn filters(classes: &[&str]) -> Filters {
        Filters {
            ingress_classes: classes.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn hosts_and_addresses() {
        let obj = ingress(
            None,
            None,
            &["Shop.Example.com.", "shop.example.com", "*.cdn.example.com"],
            json!([{"ip": "192.0.2.10"}, {"ip": "2001:db8::10"}, {"hostname": "LB.example.net"},
                   {"ip": "192.0.2.10"}, {"ip": "not-an-ip"}]),
        );
        let (key, c) = contribute(ObjKind::Ingress, &obj, &Filters::default()).unwrap();
        assert_eq!(key, ObjKey::new("shop", "web"));
        let want_addrs = vec![
            addr("192.0.2.10"),
            addr("2001:db8::10"),
            host("lb.example.net"),
        ];
        assert_eq!(
            c,
            Some(Contribution::Names(vec![
                NameData {
                    name: "shop.example.com".into(),
                    addrs: want_addrs.clone(),
                    ..Default::default()
                },
                NameData {
                    name: "*.cdn.example.com".into(),
                    addrs: want_addrs,
                    ..Default::default()
                },
            ]))
        );
    }

    #[test]
    fn class_filter_table() {
        let lb = json!([{"ip": "192.0.2.10"}]);
        // (spec class, legacy annotation, ingressClasses filter, indexed?)
        type Case<'a> = (Option<&'a str>, Option<&'a str>, &'a [&'a str], bool);
        let cases: &[Case] = &[
            (None, None, &[], true),
            (None, None, &["nginx"], false),
            (Some("nginx"), None, &[], true),
            (Some("nginx"), None, &["nginx"], true),
            (Some("nginx"), None, &["traefik"], false),
            (Some("traefik"), None, &["nginx", "traefik"], true),
            (None, Some("nginx"), &["nginx"], true),
            (None, Some("nginx"), &["traefik"], false),
            // spec.ingressClassName wins over the legacy annotation
            (Some("traefik"), Some("nginx"), &["nginx"], false),
            (Some(""), None, &["nginx"], false),
        ];
        for (class, legacy, f, want) in cases {
            let obj = ingress(*class, *legacy, &["a.example.com"], lb.clone());
            let (_, c) = contribute(ObjKind::Ingress, &obj, &filters(f)).unwrap();
            assert_eq!(
                c.is_some(),
                *want,
                "class {class:?} legacy {legacy:?} filter {f:?}"
            );
        }
    }

    #[test]
    fn without_spec_or_status() {
        // No spec at all (an Ingress without class or rules) must not crash.
        let obj = json!({"kind": "Ingress", "metadata": {"name": "bare", "namespace": "x"}});
        assert_eq!(
            contribute(ObjKind::Ingress, &obj, &filters(&["nginx"])).unwrap(),
            (ObjKey::new("x", "bare"), None)
        );
        assert_eq!(
            contribute(ObjKind::Ingress, &obj, &Filters::default()).unwrap(),
            (ObjKey::new("x", "bare"), None)
        );
        // Hosts but no load balancer status yet: nothing to answer.
        let obj = ingress(None, None, &["a.example.com"], json!([]));
        assert_eq!(
            contribute(ObjKind::Ingress, &obj, &Filters::default())
                .unwrap()
                .1,
            None
        );
        // Rules without host, invalid hosts dropped.
        let obj = ingress(
            None,
            None,
            &["bad..name", "ok.example.com"],
            json!([{"ip": "192.0.2.1"}]),
        );
        let (_, c) = contribute(ObjKind::Ingress, &obj, &Filters::default()).unwrap();
        assert_eq!(names(&c), vec!["ok.example.com"]);
    }

    #[test]
    fn wrong_api_version_is_an_error() {
        let obj = json!({"apiVersion": "extensions/v1beta1", "kind": "Ingress",
                         "metadata": {"name": "old", "namespace": "x"}});
        let err = contribute(ObjKind::Ingress, &obj, &Filters::default()).unwrap_err();
        assert!(
            err.starts_with("Ingress x/old: invalid value: string \"extensions/v1beta1\""),
            "{err}"
        );
    }
}
