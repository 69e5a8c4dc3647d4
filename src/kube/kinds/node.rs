//! Node (v1, cluster-scoped): names from `status.addresses[type=Hostname]`, addresses from the
//! `status.addresses` of type `nodeAddressType` (default `InternalIP`).

use k8s_openapi::api::core::v1::Node;

use super::annotations::{self, parse_ip};
use super::{hostnames, names_with_addrs, object_key, parse, warn};
use crate::kube::model::{Address, Contribution, Filters, ObjKey, ObjKind};

const KIND: ObjKind = ObjKind::Node;

pub(super) fn contribute(
    obj: &serde_json::Value,
    filters: &Filters,
) -> Result<(ObjKey, Option<Contribution>), String> {
    let node: Node = parse(KIND, obj)?;
    let key = object_key(KIND, &node.metadata)?;
    if annotations::is_ignored(&node.metadata) {
        return Ok((key, None));
    }
    let want = filters.node_address_type.as_deref().unwrap_or("InternalIP");
    let all: Vec<_> = node
        .status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .collect();
    let names = hostnames(
        KIND,
        &key,
        "status.addresses[type=Hostname]",
        all.iter()
            .filter(|a| a.type_ == "Hostname")
            .map(|a| a.address.as_str()),
    );
    let mut addrs = Vec::new();
    for a in all.iter().filter(|a| a.type_ == want) {
        match parse_ip(&a.address) {
            Some(ip) => addrs.push(Address::Ip(ip)),
            None => warn(
                KIND,
                &key,
                &format!("status.addresses: invalid {want} \"{}\" skipped", a.address),
            ),
        }
    }
    Ok((key.clone(), names_with_addrs(names, addrs)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::kube::kinds::contribute;
    use crate::kube::kinds::tests::addr;
    use crate::kube::model::{Contribution, Filters, NameData, ObjKey, ObjKind};

    fn node() -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "worker-1", "namespace": "ignored"},
            "status": {"addresses": [
                {"type": "InternalIP", "address": "10.0.0.11"},
                {"type": "InternalIP", "address": "fd00::11"},
                {"type": "ExternalIP", "address": "203.0.113.11"},
                {"type": "Hostname", "address": "Worker-1"},
                {"type": "InternalDNS", "address": "worker-1.internal"}
            ]}
        })
    }

    #[test]
    fn address_types_table() {
        let cases = [
            (None, vec![addr("10.0.0.11"), addr("fd00::11")]),
            (
                Some("InternalIP"),
                vec![addr("10.0.0.11"), addr("fd00::11")],
            ),
            (Some("ExternalIP"), vec![addr("203.0.113.11")]),
        ];
        for (t, want) in cases {
            let f = Filters {
                node_address_type: t.map(String::from),
                ..Default::default()
            };
            let (key, c) = contribute(ObjKind::Node, &node(), &f).unwrap();
            assert_eq!(key, ObjKey::new("", "worker-1"));
            assert_eq!(
                c,
                Some(Contribution::Names(vec![NameData {
                    name: "worker-1".into(),
                    addrs: want,
                    ..Default::default()
                }])),
                "{t:?}"
            );
        }
    }

    #[test]
    fn no_hostname_or_no_address() {
        let mut obj = node();
        obj["status"]["addresses"] = json!([{"type": "InternalIP", "address": "10.0.0.11"}]);
        assert_eq!(
            contribute(ObjKind::Node, &obj, &Filters::default())
                .unwrap()
                .1,
            None
        );
        let mut obj = node();
        obj["status"]["addresses"] = json!([{"type": "Hostname", "address": "worker-1"}]);
        assert_eq!(
            contribute(ObjKind::Node, &obj, &Filters::default())
                .unwrap()
                .1,
            None
        );
        let mut obj = node();
        obj["metadata"]["labels"] = json!({"k8s-gateway.dns/ignore": "true"});
        assert_eq!(
            contribute(ObjKind::Node, &obj, &Filters::default())
                .unwrap()
                .1,
            None
        );
    }
}
