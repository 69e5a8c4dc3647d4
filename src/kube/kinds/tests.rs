//! Rules shared by every kind, and helpers for the per-kind tests.

use serde_json::json;

use super::contribute;
use crate::kube::model::{Address, Contribution, Filters, ObjKey, ObjKind};

pub(crate) fn addr(s: &str) -> Address {
    Address::Ip(s.parse().unwrap())
}

pub(crate) fn host(s: &str) -> Address {
    Address::Hostname(s.to_string())
}

/// The names of a `Names` contribution (empty for `None`).
pub(crate) fn names(c: &Option<Contribution>) -> Vec<String> {
    match c {
        None => vec![],
        Some(Contribution::Names(v)) => v.iter().map(|n| n.name.clone()).collect(),
        Some(other) => panic!("not a Names contribution: {other:?}"),
    }
}

#[test]
fn missing_name_is_an_error_for_every_kind() {
    for kind in ObjKind::ALL {
        let obj = json!({"kind": kind.as_str(), "metadata": {"namespace": "x"}, "spec": {}});
        assert_eq!(
            contribute(kind, &obj, &Filters::default()).unwrap_err(),
            format!("{kind}: metadata.name is missing"),
            "{kind}"
        );
        let obj =
            json!({"kind": kind.as_str(), "metadata": {"name": "", "namespace": "x"}, "spec": {}});
        assert!(
            contribute(kind, &obj, &Filters::default()).is_err(),
            "{kind}"
        );
    }
}

#[test]
fn ignore_label_for_every_kind() {
    for kind in ObjKind::ALL {
        let obj = json!({"kind": kind.as_str(),
                         "metadata": {"name": "n", "namespace": "x",
                                      "labels": {"k8s-gateway.dns/ignore": "true"}},
                         "spec": {}});
        let want_ns = if kind.namespaced() { "x" } else { "" };
        assert_eq!(
            contribute(kind, &obj, &Filters::default()).unwrap(),
            (ObjKey::new(want_ns, "n"), None),
            "{kind}"
        );
    }
}

#[test]
fn namespace_defaults_to_default() {
    let obj = json!({"kind": "Service", "metadata": {"name": "web"},
                     "spec": {"type": "LoadBalancer"},
                     "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}});
    let (key, c) = contribute(ObjKind::Service, &obj, &Filters::default()).unwrap();
    assert_eq!(key, ObjKey::new("default", "web"));
    assert_eq!(names(&c), vec!["web.default"]);
}

#[test]
fn not_an_object() {
    assert_eq!(
        contribute(ObjKind::Ingress, &json!(["x"]), &Filters::default()).unwrap_err(),
        "Ingress: expected an object, found a list"
    );
    assert_eq!(
        contribute(ObjKind::Node, &json!(null), &Filters::default()).unwrap_err(),
        "Node: expected an object, found null"
    );
}
