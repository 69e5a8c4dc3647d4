//! EndpointSlice (discovery.k8s.io/v1): the ready addresses of a Service (label
//! `kubernetes.io/service-name`, same namespace), for Services annotated
//! `k8s-gateway.dns/resolve-endpoints: "true"`. An endpoint counts as ready when
//! `conditions.ready` is true or unset. FQDN slices are skipped.

use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::annotations::{self, SERVICE_NAME_LABEL};
use super::{object_key, parse, warn};
use crate::kube::model::{Contribution, ObjKey, ObjKind};

const KIND: ObjKind = ObjKind::EndpointSlice;

pub(super) fn contribute(
    obj: &serde_json::Value,
) -> Result<(ObjKey, Option<Contribution>), String> {
    let slice: EndpointSlice = parse(KIND, obj)?;
    let key = object_key(KIND, &slice.metadata)?;
    if annotations::is_ignored(&slice.metadata) {
        return Ok((key, None));
    }
    let Some(service) = annotations::label(&slice.metadata, SERVICE_NAME_LABEL)
        .map(str::trim)
        .filter(|s| !s.is_empty())
    else {
        return Ok((key, None));
    };
    let service = ObjKey::new(key.namespace.clone(), service);
    let want_v6 = match slice.address_type.as_str() {
        "IPv4" => false,
        "IPv6" => true,
        _ => return Ok((key, None)), // FQDN (deprecated) or unknown
    };
    let mut addrs = Vec::new();
    for ep in &slice.endpoints {
        let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
        if !ready {
            continue;
        }
        for a in &ep.addresses {
            match annotations::parse_ip(a) {
                Some(ip) if ip.is_ipv6() == want_v6 => addrs.push(ip),
                _ => warn(
                    KIND,
                    &key,
                    &format!(
                        "endpoints[].addresses: \"{a}\" is not an {} address; skipped",
                        slice.address_type
                    ),
                ),
            }
        }
    }
    addrs.sort();
    addrs.dedup();
    Ok((key, Some(Contribution::EndpointSlice { service, addrs })))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::kube::kinds::contribute;
    use crate::kube::model::{Contribution, Filters, ObjKey, ObjKind};

    fn slice(
        addr_type: &str,
        endpoints: serde_json::Value,
        labels: serde_json::Value,
    ) -> serde_json::Value {
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "db-abc12", "namespace": "data", "labels": labels},
            "addressType": addr_type,
            "endpoints": endpoints,
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]
        })
    }

    fn run(obj: &serde_json::Value) -> (ObjKey, Option<Contribution>) {
        contribute(ObjKind::EndpointSlice, obj, &Filters::default()).unwrap()
    }

    #[test]
    fn readiness_table() {
        let label = json!({"kubernetes.io/service-name": "db"});
        // (conditions, counted?)
        let cases = [
            (json!({"ready": true}), true),
            (json!({}), true),
            (serde_json::Value::Null, true),
            (json!({"ready": false}), false),
            (
                json!({"ready": false, "serving": true, "terminating": true}),
                false,
            ),
            (
                json!({"ready": true, "serving": true, "terminating": false}),
                true,
            ),
        ];
        for (cond, want) in cases {
            let mut ep = json!({"addresses": ["10.0.0.1"]});
            if !cond.is_null() {
                ep["conditions"] = cond.clone();
            }
            let (key, c) = run(&slice("IPv4", json!([ep]), label.clone()));
            assert_eq!(key, ObjKey::new("data", "db-abc12"));
            let want_addrs = if want {
                vec!["10.0.0.1".parse().unwrap()]
            } else {
                vec![]
            };
            assert_eq!(
                c,
                Some(Contribution::EndpointSlice {
                    service: ObjKey::new("data", "db"),
                    addrs: want_addrs
                }),
                "conditions {cond}"
            );
        }
    }

    #[test]
    fn dedup_families_and_fqdn() {
        let label = json!({"kubernetes.io/service-name": "db"});
        let eps = json!([
            {"addresses": ["10.0.0.2", "10.0.0.1"]},
            {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
            {"addresses": ["2001:db8::1", "garbage"]}
        ]);
        let (_, c) = run(&slice("IPv4", eps, label.clone()));
        assert_eq!(
            c,
            Some(Contribution::EndpointSlice {
                service: ObjKey::new("data", "db"),
                addrs: vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()]
            })
        );
        let (_, c) = run(&slice(
            "IPv6",
            json!([{"addresses": ["2001:db8::1"]}]),
            label.clone(),
        ));
        assert_eq!(
            c,
            Some(Contribution::EndpointSlice {
                service: ObjKey::new("data", "db"),
                addrs: vec!["2001:db8::1".parse().unwrap()]
            })
        );
        assert_eq!(
            run(&slice(
                "FQDN",
                json!([{"addresses": ["db.example.com"]}]),
                label
            ))
            .1,
            None
        );
        // No service-name label: belongs to no Service.
        assert_eq!(
            run(&slice(
                "IPv4",
                json!([{"addresses": ["10.0.0.1"]}]),
                json!({})
            ))
            .1,
            None
        );
        // Ignored.
        let l = json!({"kubernetes.io/service-name": "db", "k8s-gateway.dns/ignore": "true"});
        assert_eq!(
            run(&slice("IPv4", json!([{"addresses": ["10.0.0.1"]}]), l)).1,
            None
        );
    }
}
