//! Gateway (gateway.networking.k8s.io/v1): its class (`spec.gatewayClassName`, for
//! `gatewayClasses`, applied by the index builder) and `status.addresses[]`: type `IPAddress`
//! (or unset) → IP, type `Hostname` → resolved later; other types are skipped. The ExternalDNS
//! `…/target` annotation, when set, replaces the status addresses (IPs, or a hostname answered
//! as a CNAME) for every route attached.
//!
//! Only the fields read are deserialized (with the gateway-api crate's address type): the
//! generated `Gateway` type rejects a whole object over any value its closed enums don't know
//! (a newer listener TLS mode, for instance), which would silently drop every route's names.

use gateway_api::gateways::GatewayStatusAddresses;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use super::annotations::{self, Target, status_address};
use super::{hostnames, object_key, parse, warn};
use crate::kube::model::{Address, Contribution, ObjKey, ObjKind};

const KIND: ObjKind = ObjKind::Gateway;

#[derive(Deserialize)]
struct GatewayView {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: SpecView,
    #[serde(default)]
    status: Option<StatusView>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SpecView {
    #[serde(default)]
    gateway_class_name: Option<String>,
    #[serde(default)]
    listeners: Option<Vec<ListenerView>>,
}

#[derive(Deserialize, Default)]
struct ListenerView {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    hostname: Option<String>,
}

#[derive(Deserialize, Default)]
struct StatusView {
    #[serde(default)]
    addresses: Option<Vec<GatewayStatusAddresses>>,
}

pub(super) fn contribute(
    obj: &serde_json::Value,
) -> Result<(ObjKey, Option<Contribution>), String> {
    let gw: GatewayView = parse(KIND, obj)?;
    let key = object_key(KIND, &gw.metadata)?;
    if annotations::is_ignored(&gw.metadata) {
        return Ok((key, None));
    }
    let class = gw.spec.gateway_class_name.unwrap_or_default();
    // Listener hostnames, for routes without hostnames of their own (ExternalDNS's rule).
    let mut listeners: Vec<(String, String, String)> = Vec::new();
    for l in gw.spec.listeners.iter().flatten() {
        let Some(h) = l.hostname.as_deref().filter(|h| !h.is_empty()) else {
            continue;
        };
        for n in hostnames(KIND, &key, "spec.listeners[].hostname", [h]) {
            let entry = (
                l.name.clone().unwrap_or_default(),
                l.protocol.clone().unwrap_or_default(),
                n,
            );
            if !listeners.contains(&entry) {
                listeners.push(entry);
            }
        }
    }
    // As ExternalDNS: the Gateway's target annotation replaces its status addresses for every
    // route attached to it.
    let mut w = |m: String| warn(KIND, &key, &m);
    match annotations::target(&gw.metadata, &mut w) {
        Some(Target::Addrs(addrs)) => {
            return Ok((
                key,
                Some(Contribution::Gateway {
                    class,
                    addrs,
                    cname: None,
                    listeners,
                }),
            ));
        }
        Some(Target::Cname(c)) => {
            return Ok((
                key,
                Some(Contribution::Gateway {
                    class,
                    addrs: Vec::new(),
                    cname: Some(c),
                    listeners,
                }),
            ));
        }
        None => {}
    }
    let mut addrs: Vec<Address> = Vec::new();
    for a in gw.status.iter().flat_map(|s| s.addresses.iter().flatten()) {
        let mut w = |m: String| warn(KIND, &key, &format!("status.addresses: {m}"));
        match a.r#type.as_deref() {
            None | Some("IPAddress") => {
                if let Some(addr) = status_address(Some(&a.value), None, &mut w) {
                    addrs.push(addr);
                }
            }
            Some("Hostname") => {
                if let Some(addr) = status_address(None, Some(&a.value), &mut w) {
                    addrs.push(addr);
                }
            }
            Some(other) => w(format!(
                "address type \"{other}\" not supported; \"{}\" skipped",
                a.value
            )),
        }
    }
    let addrs = annotations::dedup_addrs(addrs);
    Ok((
        key,
        Some(Contribution::Gateway {
            class,
            addrs,
            cname: None,
            listeners,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::kube::kinds::contribute;
    use crate::kube::kinds::tests::{addr, host};
    use crate::kube::model::{Contribution, Filters, ObjKey, ObjKind};

    fn gw(addresses: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "public", "namespace": "gateway-system"},
            "spec": {
                "gatewayClassName": "cilium",
                "listeners": [{"name": "https", "port": 443, "protocol": "HTTPS",
                               "tls": {"mode": "SomeFutureMode"}}]
            },
            "status": {"addresses": addresses,
                       "conditions": [{"type": "Programmed", "status": "True"}]}
        })
    }

    #[test]
    fn listener_hostnames() {
        let mut obj = gw(json!([{"value": "192.0.2.1"}]));
        obj["spec"]["listeners"] = json!([
            {"name": "a", "port": 443, "protocol": "HTTPS", "hostname": "WWW.Example.com."},
            {"name": "b", "port": 80, "protocol": "HTTP", "hostname": "*.apps.example.com"},
            {"name": "c", "port": 80, "protocol": "HTTP", "hostname": "www.example.com"},
            {"name": "d", "port": 5432, "protocol": "TCP"},
            {"name": "e", "port": 53, "protocol": "UDP", "hostname": "bad..name"},
            {"name": "f", "port": 443, "protocol": "TLS", "hostname": "www.example.com"}
        ]);
        let (_, c) = contribute(ObjKind::Gateway, &obj, &Filters::default()).unwrap();
        let Some(Contribution::Gateway { listeners, .. }) = c else {
            panic!("{c:?}")
        };
        let want: Vec<(String, String, String)> = [
            ("a", "HTTPS", "www.example.com"),
            ("b", "HTTP", "*.apps.example.com"),
            ("c", "HTTP", "www.example.com"),
            ("f", "TLS", "www.example.com"),
        ]
        .iter()
        .map(|(n, p, h)| (n.to_string(), p.to_string(), h.to_string()))
        .collect();
        assert_eq!(listeners, want);
        // A malformed listener list is an error naming the Gateway, not a panic.
        obj["spec"]["listeners"] = json!("nope");
        let e = contribute(ObjKind::Gateway, &obj, &Filters::default()).unwrap_err();
        assert!(e.starts_with("Gateway gateway-system/public: "), "{e}");
    }

    #[test]
    fn address_types_table() {
        let cases = vec![
            (
                json!([{"type": "IPAddress", "value": "192.0.2.1"}]),
                vec![addr("192.0.2.1")],
            ),
            (json!([{"value": "2001:db8::1"}]), vec![addr("2001:db8::1")]),
            (
                json!([{"type": "Hostname", "value": "LB.Example.net."}]),
                vec![host("lb.example.net")],
            ),
            (json!([{"type": "IPAddress", "value": "not-an-ip"}]), vec![]),
            (
                json!([{"type": "example.com/named", "value": "foo"}]),
                vec![],
            ),
            (
                json!([{"type": "IPAddress", "value": "192.0.2.2"}, {"value": "192.0.2.1"},
                       {"type": "IPAddress", "value": "192.0.2.2"}]),
                vec![addr("192.0.2.1"), addr("192.0.2.2")],
            ),
            (json!(null), vec![]),
        ];
        for (addresses, want) in cases {
            let (key, c) = contribute(
                ObjKind::Gateway,
                &gw(addresses.clone()),
                &Filters::default(),
            )
            .unwrap();
            assert_eq!(key, ObjKey::new("gateway-system", "public"));
            assert_eq!(
                c,
                Some(Contribution::Gateway {
                    class: "cilium".into(),
                    addrs: want,
                    cname: None,
                    listeners: vec![],
                }),
                "addresses {addresses}"
            );
        }
    }

    #[test]
    fn ignored_and_unnamed() {
        let mut obj = gw(json!([{"value": "192.0.2.1"}]));
        obj["metadata"]["labels"] = json!({"k8s-gateway.dns/ignore": "true"});
        assert_eq!(
            contribute(ObjKind::Gateway, &obj, &Filters::default())
                .unwrap()
                .1,
            None
        );
        let obj = json!({"kind": "Gateway", "metadata": {"namespace": "x"}});
        assert_eq!(
            contribute(ObjKind::Gateway, &obj, &Filters::default()).unwrap_err(),
            "Gateway: metadata.name is missing"
        );
    }
}
