//! Service (v1): type LoadBalancer, type ExternalName, or any type annotated
//! `k8s-gateway.dns/resolve-endpoints: "true"` (then the addresses are the Service's ready
//! EndpointSlice addresses, joined by the index builder).
//!
//! Names: the hostname annotation in effect — `coredns.io/hostname`, else
//! `external-dns.kubernetes.io/hostname`, else `external-dns.alpha.kubernetes.io/hostname`
//! (comma-separated; invalid entries dropped with a warning; when every entry is invalid the
//! Service contributes nothing) — else `name.namespace`. Data: the `…/target` annotation if
//! set; else for ExternalName `spec.externalIPs` if set, else `spec.externalName` (a CNAME, or
//! the address when it is an IP), as ExternalDNS; else the ready endpoints (resolve-endpoints);
//! else `spec.externalIPs` if set, else `status.loadBalancer.ingress[]` ip / hostname. TTL:
//! the `…/ttl` annotation.

use k8s_openapi::api::core::v1::Service;

use super::annotations::{self, RESOLVE_ENDPOINTS, Target};
use super::{names_with, object_key, parse, warn};
use crate::kube::model::{Address, Contribution, Filters, NameData, ObjKey, ObjKind};
use crate::kube::selector;

const KIND: ObjKind = ObjKind::Service;

pub(super) fn contribute(
    obj: &serde_json::Value,
    filters: &Filters,
) -> Result<(ObjKey, Option<Contribution>), String> {
    let svc: Service = parse(KIND, obj)?;
    let meta = &svc.metadata;
    let key = object_key(KIND, meta)?;
    if annotations::is_ignored(meta) {
        return Ok((key, None));
    }
    let empty = Default::default();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    if !selector::matches_any(&filters.service_label_selectors, labels)
        .map_err(|e| format!("serviceLabelSelectors: {e}"))?
    {
        return Ok((key, None));
    }
    let own = own_names(&svc, &key);
    if !filters.istio {
        return Ok((key, own));
    }
    let names = match own {
        Some(Contribution::Names(v)) => v,
        _ => Vec::new(),
    };
    let addrs = join_addrs(&svc);
    if names.is_empty() && addrs.is_empty() {
        return Ok((key, None));
    }
    let selector = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    Ok((
        key,
        Some(Contribution::Service {
            names,
            selector,
            addrs,
        }),
    ))
}

/// What an Istio Gateway selecting this Service answers with (ExternalDNS's
/// `EndpointTargetsFromServices`): `spec.externalIPs` when set, else the load balancer's IPs
/// and hostnames, whatever the type. Invalid entries are skipped silently (the Service's own
/// names warn about them).
fn join_addrs(svc: &Service) -> Vec<Address> {
    let mut w = |_: String| {};
    let external: Vec<Address> = svc
        .spec
        .iter()
        .flat_map(|s| s.external_ips.iter().flatten())
        .filter_map(|ip| annotations::parse_ip(ip).map(Address::Ip))
        .collect();
    if !external.is_empty() {
        return annotations::dedup_addrs(external);
    }
    let lb = svc
        .status
        .iter()
        .flat_map(|s| s.load_balancer.iter())
        .flat_map(|lb| lb.ingress.iter().flatten())
        .filter_map(|e| annotations::status_address(e.ip.as_deref(), e.hostname.as_deref(), &mut w))
        .collect();
    annotations::dedup_addrs(lb)
}

/// The Service's own names and data (see the module docs); `None`: it has none.
fn own_names(svc: &Service, key: &ObjKey) -> Option<Contribution> {
    let meta = &svc.metadata;
    let key = key.clone();
    let resolve_endpoints = annotations::annotation_true(meta, RESOLVE_ENDPOINTS);
    let ty = svc.spec.as_ref().and_then(|s| s.type_.as_deref());
    let is_lb = ty == Some("LoadBalancer");
    let external_name = ty == Some("ExternalName");
    if !is_lb && !resolve_endpoints && !external_name {
        return None;
    }

    let mut w = |m: String| warn(KIND, &key, &m);
    let names = match annotations::annotated_hostnames(meta, &mut w) {
        Some((ann, names)) => {
            if names.is_empty() {
                warn(
                    KIND,
                    &key,
                    &format!("annotation {ann}: no valid hostname; the Service is not indexed"),
                );
                return None;
            }
            names
        }
        None => vec![format!(
            "{}.{}",
            key.name.to_ascii_lowercase(),
            key.namespace.to_ascii_lowercase()
        )],
    };
    let ttl = annotations::ttl(meta, &mut w);
    if let Some(t) = annotations::target(meta, &mut w) {
        return names_with(names, Some(t), ttl);
    }

    let external: Vec<&str> = svc
        .spec
        .iter()
        .flat_map(|s| s.external_ips.iter().flatten())
        .map(String::as_str)
        .filter(|s| !s.trim().is_empty())
        .collect();
    let external_ips = || {
        let mut addrs = Vec::new();
        for ip in &external {
            match annotations::parse_ip(ip) {
                Some(a) => addrs.push(Address::Ip(a)),
                None => warn(
                    KIND,
                    &key,
                    &format!("spec.externalIPs: invalid IP address \"{ip}\" skipped"),
                ),
            }
        }
        addrs
    };

    if external_name {
        // As ExternalDNS: spec.externalIPs when set, else spec.externalName.
        let data = if external.is_empty() {
            let target = svc
                .spec
                .as_ref()
                .and_then(|s| s.external_name.as_deref())
                .unwrap_or("");
            let mut w = |m: String| warn(KIND, &key, &format!("spec.externalName: {m}"));
            let t = annotations::parse_target(target.split(',').next().unwrap_or(""), &mut w);
            if t.is_none() {
                w(format!(
                    "\"{target}\" is not a hostname or an IP; not indexed"
                ));
            }
            t
        } else {
            Some(Target::Addrs(external_ips()))
        };
        return names_with(names, data, ttl);
    }

    if resolve_endpoints {
        let data = names
            .into_iter()
            .map(|name| NameData {
                name,
                endpoints_of: Some(key.clone()),
                ttl,
                ..Default::default()
            })
            .collect();
        return Some(Contribution::Names(data));
    }

    let mut addrs = Vec::new();
    if !external.is_empty() {
        addrs = external_ips();
    } else {
        let lb = svc
            .status
            .iter()
            .flat_map(|s| s.load_balancer.iter())
            .flat_map(|lb| lb.ingress.iter().flatten());
        for e in lb {
            let mut w = |m: String| warn(KIND, &key, &format!("status.loadBalancer.ingress: {m}"));
            if let Some(a) =
                annotations::status_address(e.ip.as_deref(), e.hostname.as_deref(), &mut w)
            {
                addrs.push(a);
            }
        }
    }
    names_with(names, Some(Target::Addrs(addrs)), ttl)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::kube::kinds::contribute;
    use crate::kube::kinds::tests::{addr, host, names};
    use crate::kube::model::{Contribution, Filters, NameData, ObjKey, ObjKind};

    fn svc(
        name: &str,
        ty: &str,
        annotations: serde_json::Value,
        labels: serde_json::Value,
    ) -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "Apps", "annotations": annotations, "labels": labels},
            "spec": {"type": ty, "ports": [{"port": 443, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}, {"ip": "2001:db8::7"}]}}
        })
    }

    fn run(obj: &serde_json::Value, f: &Filters) -> Option<Contribution> {
        contribute(ObjKind::Service, obj, f).unwrap().1
    }

    #[test]
    fn annotation_parsing_table() {
        let long = format!("{}.example.com", "a".repeat(64));
        let cases: Vec<(serde_json::Value, Vec<&str>)> = vec![
            (json!({}), vec!["web.apps"]),
            (
                json!({"coredns.io/hostname": "web.example.com"}),
                vec!["web.example.com"],
            ),
            (
                json!({"coredns.io/hostname": "a.example.com, B.example.com.,a.example.com"}),
                vec!["a.example.com", "b.example.com"],
            ),
            (
                json!({"coredns.io/hostname": "*.apps.example.com,apps.example.com"}),
                vec!["*.apps.example.com", "apps.example.com"],
            ),
            (
                json!({"coredns.io/hostname": "_sip._tcp.example.com,my_host.example.com"}),
                vec!["_sip._tcp.example.com", "my_host.example.com"],
            ),
            (
                json!({"coredns.io/hostname": "*my.host,ok.example.com"}),
                vec!["ok.example.com"],
            ),
            (
                json!({"coredns.io/hostname": "**my.host,ok.example.com"}),
                vec!["ok.example.com"],
            ),
            (
                json!({"coredns.io/hostname": "my.*.host,ok.example.com"}),
                vec!["ok.example.com"],
            ),
            (
                json!({"coredns.io/hostname": format!("{long},ok.example.com")}),
                vec!["ok.example.com"],
            ),
            // every entry invalid: not indexed at all (no name.namespace fallback)
            (
                json!({"coredns.io/hostname": "*my.host,**my.host,my.*.host"}),
                vec![],
            ),
            (
                json!({"external-dns.alpha.kubernetes.io/hostname": "ext.example.com,ext2.example.com"}),
                vec!["ext.example.com", "ext2.example.com"],
            ),
            // coredns.io wins over external-dns
            (
                json!({"coredns.io/hostname": "c.example.com",
                       "external-dns.alpha.kubernetes.io/hostname": "e.example.com"}),
                vec!["c.example.com"],
            ),
            // an empty annotation counts as absent
            (
                json!({"coredns.io/hostname": " ",
                       "external-dns.alpha.kubernetes.io/hostname": "e.example.com"}),
                vec!["e.example.com"],
            ),
        ];
        for (ann, want) in cases {
            let obj = svc("Web", "LoadBalancer", ann.clone(), json!({}));
            let c = run(&obj, &Filters::default());
            assert_eq!(names(&c), want, "annotations {ann}");
            if let Some(Contribution::Names(v)) = &c {
                for nd in v {
                    assert_eq!(nd.addrs, vec![addr("198.51.100.7"), addr("2001:db8::7")]);
                }
            }
        }
    }

    #[test]
    fn types_and_addresses() {
        // Not a LoadBalancer: nothing (an ExternalName without externalName neither).
        for ty in ["ClusterIP", "NodePort", "ExternalName"] {
            assert_eq!(
                run(&svc("a", ty, json!({}), json!({})), &Filters::default()),
                None
            );
        }
        // externalIPs win over the load balancer status.
        let mut obj = svc("a", "LoadBalancer", json!({}), json!({}));
        obj["spec"]["externalIPs"] = json!(["203.0.113.5", "bogus", "203.0.113.5"]);
        assert_eq!(
            run(&obj, &Filters::default()),
            Some(Contribution::Names(vec![NameData {
                name: "a.apps".into(),
                addrs: vec![addr("203.0.113.5")],
                ..Default::default()
            }]))
        );
        // Hostname load balancer entries.
        let mut obj = svc("a", "LoadBalancer", json!({}), json!({}));
        obj["status"]["loadBalancer"]["ingress"] = json!([{"hostname": "ELB.example.net"}]);
        let Some(Contribution::Names(v)) = run(&obj, &Filters::default()) else {
            panic!("no contribution")
        };
        assert_eq!(v[0].addrs, vec![host("elb.example.net")]);
        // Pending load balancer: nothing to answer.
        let mut obj = svc("a", "LoadBalancer", json!({}), json!({}));
        obj["status"] = json!({"loadBalancer": {}});
        assert_eq!(run(&obj, &Filters::default()), None);
    }

    #[test]
    fn resolve_endpoints_any_type() {
        for ty in ["ClusterIP", "LoadBalancer"] {
            let obj = svc(
                "db",
                ty,
                json!({"k8s-gateway.dns/resolve-endpoints": "true", "coredns.io/hostname": "db.example.com"}),
                json!({}),
            );
            assert_eq!(
                run(&obj, &Filters::default()),
                Some(Contribution::Names(vec![NameData {
                    name: "db.example.com".into(),
                    endpoints_of: Some(ObjKey::new("Apps", "db")),
                    ..Default::default()
                }])),
                "type {ty}"
            );
        }
        let obj = svc(
            "db",
            "ClusterIP",
            json!({"k8s-gateway.dns/resolve-endpoints": "false"}),
            json!({}),
        );
        assert_eq!(run(&obj, &Filters::default()), None);
    }

    /// With Istio kinds answered, a Service also carries its selector and addresses (externalIPs,
    /// else load balancer), whatever its type, for the Istio Gateways selecting it.
    #[test]
    fn istio_join_data() {
        let f = Filters {
            istio: true,
            ..Default::default()
        };
        let with_selector = |ty: &str| {
            let mut o = svc("gw", ty, json!({}), json!({}));
            o["spec"]["selector"] = json!({"istio": "ingressgateway"});
            o
        };
        let selector: std::collections::BTreeMap<String, String> =
            [("istio".to_string(), "ingressgateway".to_string())].into();
        // A LoadBalancer: its own name and the join data.
        assert_eq!(
            run(&with_selector("LoadBalancer"), &f),
            Some(Contribution::Service {
                names: vec![NameData {
                    name: "gw.apps".into(),
                    addrs: vec![addr("198.51.100.7"), addr("2001:db8::7")],
                    ..Default::default()
                }],
                selector: selector.clone(),
                addrs: vec![addr("198.51.100.7"), addr("2001:db8::7")],
            })
        );
        // A ClusterIP with externalIPs: no name of its own, the externalIPs for the join.
        let mut o = with_selector("ClusterIP");
        o["spec"]["externalIPs"] = json!(["203.0.113.9", "bogus"]);
        assert_eq!(
            run(&o, &f),
            Some(Contribution::Service {
                names: vec![],
                selector,
                addrs: vec![addr("203.0.113.9")],
            })
        );
        // Nothing to give: nothing stored.
        let mut o = with_selector("ClusterIP");
        o["status"] = json!({});
        assert_eq!(run(&o, &f), None);
        let mut o = with_selector("LoadBalancer");
        o["metadata"]["labels"] = json!({"k8s-gateway.dns/ignore": "true"});
        assert_eq!(run(&o, &f), None);
    }

    #[test]
    fn ignore_label() {
        let obj = svc(
            "a",
            "LoadBalancer",
            json!({}),
            json!({"k8s-gateway.dns/ignore": "true"}),
        );
        assert_eq!(
            contribute(ObjKind::Service, &obj, &Filters::default()).unwrap(),
            (ObjKey::new("Apps", "a"), None)
        );
        let obj = svc(
            "a",
            "LoadBalancer",
            json!({}),
            json!({"k8s-gateway.dns/ignore": "false"}),
        );
        assert!(run(&obj, &Filters::default()).is_some());
    }

    #[test]
    fn label_selectors_table() {
        let labels = json!({"app": "web", "env": "prod"});
        let cases: &[(&[&str], bool)] = &[
            (&[], true),
            (&["app=web"], true),
            (&["app=api"], false),
            (&["app!=api"], true),
            (&["app!=web"], false),
            (&["env in (prod,staging)"], true),
            (&["env in (staging)"], false),
            (&["app=web,env=prod"], true),
            (&["app=web,env notin (prod)"], false),
            // several selectors: OR
            (&["app=api", "env=prod"], true),
            (&["app=api", "env=dev"], false),
        ];
        for (sels, want) in cases {
            let f = Filters {
                service_label_selectors: sels.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            let obj = svc("a", "LoadBalancer", json!({}), labels.clone());
            assert_eq!(run(&obj, &f).is_some(), *want, "selectors {sels:?}");
        }
        let f = Filters {
            service_label_selectors: vec!["a in (".into()],
            ..Default::default()
        };
        let obj = svc("a", "LoadBalancer", json!({}), labels);
        assert_eq!(
            contribute(ObjKind::Service, &obj, &f).unwrap_err(),
            "serviceLabelSelectors: label selector \"a in (\": unterminated value set for key 'a': missing ')'"
        );
    }
}
