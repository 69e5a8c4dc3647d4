//! VirtualServer (k8s.nginx.org/v1, nginxinc kubernetes-ingress): `spec.host` plus the
//! hostname annotation's, addresses from the `…/target` annotation, else
//! `status.externalEndpoints[]` (`ip`, or `hostname` resolved later); TTL from `…/ttl` — the
//! ExternalDNS annotations read as on an Ingress.

use super::annotations::Target;
use super::annotations::{self, status_address};
use super::{annotated, hostnames, names_with, object_key, parse, warn, with_annotated_names};
use crate::kube::crds::VirtualServer;
use crate::kube::model::{Contribution, ObjKey, ObjKind};

const KIND: ObjKind = ObjKind::VirtualServer;

pub(super) fn contribute(
    obj: &serde_json::Value,
) -> Result<(ObjKey, Option<Contribution>), String> {
    let vs: VirtualServer = parse(KIND, obj)?;
    let key = object_key(KIND, &vs.metadata)?;
    if annotations::is_ignored(&vs.metadata) {
        return Ok((key, None));
    }
    let ann = annotated(KIND, &key, &vs.metadata);
    let names = with_annotated_names(
        hostnames(KIND, &key, "spec.host", vs.spec.host.as_deref()),
        &ann,
    );
    if let Some(t) = ann.target {
        return Ok((key, names_with(names, Some(t), ann.ttl)));
    }
    let mut addrs = Vec::new();
    let eps = vs
        .status
        .iter()
        .flat_map(|s| s.external_endpoints.iter().flatten());
    for e in eps {
        let mut w = |m: String| warn(KIND, &key, &format!("status.externalEndpoints: {m}"));
        if let Some(a) = status_address(e.ip.as_deref(), e.hostname.as_deref(), &mut w) {
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
    use crate::kube::kinds::tests::{addr, host};
    use crate::kube::model::{Contribution, Filters, NameData, ObjKey, ObjKind};

    fn vs(host: Option<&str>, eps: serde_json::Value) -> serde_json::Value {
        let mut spec = json!({"upstreams": [{"name": "web", "service": "web", "port": 80}],
                              "routes": [{"path": "/", "action": {"pass": "web"}}]});
        if let Some(h) = host {
            spec["host"] = json!(h);
        }
        json!({
            "apiVersion": "k8s.nginx.org/v1",
            "kind": "VirtualServer",
            "metadata": {"name": "cafe", "namespace": "shop"},
            "spec": spec,
            "status": {"state": "Valid", "externalEndpoints": eps}
        })
    }

    #[test]
    fn table() {
        let cases = vec![
            (
                vs(
                    Some("Cafe.Example.com"),
                    json!([{"ip": "203.0.113.20", "ports": "[80,443]"}]),
                ),
                Some(("cafe.example.com", vec![addr("203.0.113.20")])),
            ),
            (
                vs(
                    Some("cafe.example.com"),
                    json!([{"ip": "203.0.113.20"}, {"hostname": "nlb.example.net"},
                                                     {"ip": "2001:db8::20"}]),
                ),
                Some((
                    "cafe.example.com",
                    vec![
                        addr("203.0.113.20"),
                        addr("2001:db8::20"),
                        host("nlb.example.net"),
                    ],
                )),
            ),
            (vs(Some("cafe.example.com"), json!([])), None),
            (vs(Some("cafe.example.com"), json!(null)), None),
            (vs(None, json!([{"ip": "203.0.113.20"}])), None),
            (vs(Some("bad..host"), json!([{"ip": "203.0.113.20"}])), None),
        ];
        for (obj, want) in cases {
            let (key, c) = contribute(ObjKind::VirtualServer, &obj, &Filters::default()).unwrap();
            assert_eq!(key, ObjKey::new("shop", "cafe"));
            let want = want.map(|(n, a)| {
                Contribution::Names(vec![NameData {
                    name: n.into(),
                    addrs: a,
                    ..Default::default()
                }])
            });
            assert_eq!(c, want, "{obj}");
        }
        let mut obj = vs(Some("cafe.example.com"), json!([{"ip": "203.0.113.20"}]));
        obj["metadata"]["labels"] = json!({"k8s-gateway.dns/ignore": "true"});
        assert_eq!(
            contribute(ObjKind::VirtualServer, &obj, &Filters::default())
                .unwrap()
                .1,
            None
        );
    }
}
