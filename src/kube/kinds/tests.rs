//! Rules shared by every kind, and helpers for the per-kind tests.

use serde_json::json;

use super::contribute;
use crate::kube::model::{Address, Contribution, Filters, NameData, ObjKey, ObjKind};

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

// ---------------------------------------------------------------------------------------------
// ExternalDNS annotations (hostname, ttl, target) on every kind with names, and ExternalName
// Services.

const HOST_NEW: &str = "external-dns.kubernetes.io/hostname";
const HOST_ALPHA: &str = "external-dns.alpha.kubernetes.io/hostname";
const HOST_COREDNS: &str = "coredns.io/hostname";
const TTL_NEW: &str = "external-dns.kubernetes.io/ttl";
const TTL_ALPHA: &str = "external-dns.alpha.kubernetes.io/ttl";
const TARGET_NEW: &str = "external-dns.kubernetes.io/target";
const TARGET_ALPHA: &str = "external-dns.alpha.kubernetes.io/target";

/// One object of `kind` in namespace `ns` named `obj` with `annotations`: its own name (spec)
/// `spec.example.com` where the kind has one, status address 192.0.2.10, parent Gateway
/// `gw/public` for routes.
fn annotated_obj(kind: ObjKind, annotations: &serde_json::Value) -> serde_json::Value {
    let meta = json!({"name": "obj", "namespace": "ns", "annotations": annotations});
    match kind {
        ObjKind::Ingress => json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": {"rules": [{"host": "spec.example.com"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
        }),
        ObjKind::Service => json!({
            "apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
        }),
        ObjKind::VirtualServer => json!({
            "apiVersion": "k8s.nginx.org/v1", "kind": "VirtualServer", "metadata": meta,
            "spec": {"host": "spec.example.com"},
            "status": {"externalEndpoints": [{"ip": "192.0.2.10"}]}
        }),
        ObjKind::HTTPRoute | ObjKind::GRPCRoute | ObjKind::TLSRoute => json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": kind.as_str(), "metadata": meta,
            "spec": {"hostnames": ["spec.example.com"],
                     "parentRefs": [{"name": "public", "namespace": "gw"}]}
        }),
        other => panic!("{other} has no annotated test object"),
    }
}

const NAMED_KINDS: [ObjKind; 6] = [
    ObjKind::Ingress,
    ObjKind::Service,
    ObjKind::VirtualServer,
    ObjKind::HTTPRoute,
    ObjKind::GRPCRoute,
    ObjKind::TLSRoute,
];

/// The exact contribution of a `names`-kind object: every name with the same data and TTL.
fn names_data(names: &[&str], addrs: &[Address], cname: &[&str], ttl: Option<u32>) -> Contribution {
    Contribution::Names(
        names
            .iter()
            .map(|n| NameData {
                name: n.to_string(),
                addrs: addrs.to_vec(),
                cname: cname.iter().map(|c| c.to_string()).collect(),
                ttl,
                ..Default::default()
            })
            .collect(),
    )
}

fn route_data(names: &[&str], ttl: Option<u32>) -> Contribution {
    Contribution::Route {
        hostnames: names.iter().map(|n| n.to_string()).collect(),
        parents: vec![ObjKey::new("gw", "public")],
        ttl,
        inherit: false,
        sections: vec![],
    }
}

fn is_route(kind: ObjKind) -> bool {
    matches!(
        kind,
        ObjKind::HTTPRoute | ObjKind::GRPCRoute | ObjKind::TLSRoute
    )
}

#[test]
fn hostname_annotations_on_every_kind_table() {
    // (annotations, names of kinds with spec names, names of a Service)
    type Case<'a> = (serde_json::Value, &'a [&'a str], &'a [&'a str]);
    let cases: Vec<Case> = vec![
        (json!({}), &["spec.example.com"], &["obj.ns"]),
        (
            json!({HOST_NEW: "a.example.com, B.example.com."}),
            &["spec.example.com", "a.example.com", "b.example.com"],
            &["a.example.com", "b.example.com"],
        ),
        (
            json!({HOST_ALPHA: "alpha.example.com"}),
            &["spec.example.com", "alpha.example.com"],
            &["alpha.example.com"],
        ),
        (
            json!({HOST_COREDNS: "*.c.example.com"}),
            &["spec.example.com", "*.c.example.com"],
            &["*.c.example.com"],
        ),
        // precedence: coredns.io, then the new ExternalDNS prefix, then the alpha one; the
        // first present is the only one read
        (
            json!({HOST_COREDNS: "c.example.com", HOST_NEW: "n.example.com", HOST_ALPHA: "a.example.com"}),
            &["spec.example.com", "c.example.com"],
            &["c.example.com"],
        ),
        (
            json!({HOST_NEW: "n.example.com", HOST_ALPHA: "a.example.com"}),
            &["spec.example.com", "n.example.com"],
            &["n.example.com"],
        ),
        // a blank annotation counts as absent
        (
            json!({HOST_COREDNS: " ", HOST_NEW: "", HOST_ALPHA: "a.example.com"}),
            &["spec.example.com", "a.example.com"],
            &["a.example.com"],
        ),
        // the spec's own name is not repeated; invalid entries are dropped
        (
            json!({HOST_NEW: "Spec.example.com,bad..name,ok.example.com"}),
            &["spec.example.com", "ok.example.com"],
            &["spec.example.com", "ok.example.com"],
        ),
        // every entry invalid: a Service is not indexed, the others keep their spec names
        (json!({HOST_NEW: "bad..name"}), &["spec.example.com"], &[]),
    ];
    for (ann, spec_kinds, service) in &cases {
        for kind in NAMED_KINDS {
            let got = contribute(kind, &annotated_obj(kind, ann), &Filters::default())
                .unwrap()
                .1;
            let want = if kind == ObjKind::Service {
                (!service.is_empty()).then(|| names_data(service, &[addr("192.0.2.10")], &[], None))
            } else if is_route(kind) {
                Some(route_data(spec_kinds, None))
            } else {
                Some(names_data(spec_kinds, &[addr("192.0.2.10")], &[], None))
            };
            assert_eq!(got, want, "{kind} {ann}");
        }
    }
}

#[test]
fn ttl_values_table() {
    use super::annotations::parse_ttl;
    let ok: &[(&str, u32)] = &[
        ("0", 0),
        ("60", 60),
        (" 120 ", 120),
        ("3600", 3600),
        ("1m", 60),
        ("1m30s", 90),
        ("90s", 90),
        ("1h", 3600),
        ("0.5h", 1800),
        ("1.9s", 1),
        ("1500ms", 1),
        ("+30s", 30),
        ("-0", 0),
    ];
    for (v, want) in ok {
        assert_eq!(parse_ttl(v), Ok(*want), "{v:?}");
    }
    let bad: &[(&str, &str)] = &[
        ("3601", "TTL 3601 is outside 0..3600"),
        ("1h1s", "TTL 3601 is outside 0..3600"),
        ("-1", "TTL -1 is outside 0..3600"),
        ("-1m", "TTL -60 is outside 0..3600"),
        ("2h", "TTL 7200 is outside 0..3600"),
        (
            "99999999999999999999",
            "\"99999999999999999999\" is not a valid TTL (seconds, or a duration like 1m)",
        ),
        (
            "1d",
            "\"1d\" is not a valid TTL (seconds, or a duration like 1m)",
        ),
        (
            "abc",
            "\"abc\" is not a valid TTL (seconds, or a duration like 1m)",
        ),
        (
            "1.2.3s",
            "\"1.2.3s\" is not a valid TTL (seconds, or a duration like 1m)",
        ),
        (
            "m",
            "\"m\" is not a valid TTL (seconds, or a duration like 1m)",
        ),
        (
            "60 s",
            "\"60 s\" is not a valid TTL (seconds, or a duration like 1m)",
        ),
    ];
    for (v, want) in bad {
        assert_eq!(parse_ttl(v), Err(want.to_string()), "{v:?}");
    }
}

#[test]
fn ttl_annotation_on_every_kind_table() {
    // (annotations, TTL)
    let cases: Vec<(serde_json::Value, Option<u32>)> = vec![
        (json!({}), None),
        (json!({TTL_NEW: "300"}), Some(300)),
        (json!({TTL_ALPHA: "5m"}), Some(300)),
        (json!({TTL_NEW: "0"}), Some(0)),
        // the new prefix wins over the alpha one
        (json!({TTL_NEW: "10", TTL_ALPHA: "20"}), Some(10)),
        // invalid or out of range: ignored (the directive's ttl), not the alpha one either
        (json!({TTL_NEW: "1d", TTL_ALPHA: "20"}), None),
        (json!({TTL_NEW: "3601"}), None),
        (json!({TTL_NEW: " "}), None),
        (json!({TTL_NEW: " ", TTL_ALPHA: "20"}), Some(20)),
    ];
    for (ann, ttl) in &cases {
        for kind in NAMED_KINDS {
            let got = contribute(kind, &annotated_obj(kind, ann), &Filters::default())
                .unwrap()
                .1;
            let want = if kind == ObjKind::Service {
                names_data(&["obj.ns"], &[addr("192.0.2.10")], &[], *ttl)
            } else if is_route(kind) {
                route_data(&["spec.example.com"], *ttl)
            } else {
                names_data(&["spec.example.com"], &[addr("192.0.2.10")], &[], *ttl)
            };
            assert_eq!(got, Some(want), "{kind} {ann}");
        }
    }
}

#[test]
fn target_annotation_table() {
    let status = [addr("192.0.2.10")];
    // (annotations, addresses, CNAME)
    type Case<'a> = (serde_json::Value, Vec<Address>, &'a [&'a str]);
    let cases: Vec<Case> = vec![
        (json!({}), status.to_vec(), &[]),
        (
            json!({TARGET_NEW: "203.0.113.9, 2001:db8::9,203.0.113.9"}),
            vec![addr("203.0.113.9"), addr("2001:db8::9")],
            &[],
        ),
        (
            json!({TARGET_ALPHA: "203.0.113.8"}),
            vec![addr("203.0.113.8")],
            &[],
        ),
        (
            json!({TARGET_NEW: "LB.Example.net."}),
            vec![],
            &["lb.example.net"],
        ),
        // a hostname wins over IPs, the first hostname over later ones
        (
            json!({TARGET_NEW: "203.0.113.9,lb.example.net,lb2.example.net"}),
            vec![],
            &["lb.example.net"],
        ),
        // the new prefix wins over the alpha one
        (
            json!({TARGET_NEW: "203.0.113.9", TARGET_ALPHA: "lb.example.net"}),
            vec![addr("203.0.113.9")],
            &[],
        ),
        // invalid entries are skipped; nothing valid: the object's own addresses
        (
            json!({TARGET_NEW: "bad..name, 203.0.113.7"}),
            vec![addr("203.0.113.7")],
            &[],
        ),
        (
            json!({TARGET_NEW: "bad..name,*.x.example.net"}),
            status.to_vec(),
            &[],
        ),
        (json!({TARGET_NEW: " , "}), status.to_vec(), &[]),
    ];
    for (ann, addrs, cname) in &cases {
        for kind in [ObjKind::Ingress, ObjKind::Service, ObjKind::VirtualServer] {
            let mut ann = ann.clone();
            ann[TTL_NEW] = json!("45");
            let got = contribute(kind, &annotated_obj(kind, &ann), &Filters::default())
                .unwrap()
                .1;
            let name = if kind == ObjKind::Service {
                "obj.ns"
            } else {
                "spec.example.com"
            };
            assert_eq!(
                got,
                Some(names_data(&[name], addrs, cname, Some(45))),
                "{kind} {ann}"
            );
        }
    }
    // A target also replaces the endpoints of a resolve-endpoints Service, and needs no load
    // balancer status.
    let mut svc = annotated_obj(
        ObjKind::Service,
        &json!({"k8s-gateway.dns/resolve-endpoints": "true", TARGET_NEW: "203.0.113.9"}),
    );
    svc["spec"]["type"] = json!("ClusterIP");
    svc["status"] = json!({});
    assert_eq!(
        contribute(ObjKind::Service, &svc, &Filters::default())
            .unwrap()
            .1,
        Some(names_data(&["obj.ns"], &[addr("203.0.113.9")], &[], None))
    );
    // On routes the target annotation is not read (ExternalDNS reads it on the Gateway).
    for kind in [ObjKind::HTTPRoute, ObjKind::GRPCRoute, ObjKind::TLSRoute] {
        let obj = annotated_obj(kind, &json!({TARGET_NEW: "203.0.113.9"}));
        assert_eq!(
            contribute(kind, &obj, &Filters::default()).unwrap().1,
            Some(route_data(&["spec.example.com"], None)),
            "{kind}"
        );
    }
}

#[test]
fn gateway_target_annotation_table() {
    let gw = |ann: serde_json::Value| {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "public", "namespace": "gw", "annotations": ann},
            "spec": {"gatewayClassName": "envoy"},
            "status": {"addresses": [{"type": "IPAddress", "value": "192.0.2.10"},
                                     {"type": "Hostname", "value": "elb.example.net"}]}
        })
    };
    let cases: Vec<(serde_json::Value, Vec<Address>, Option<&str>)> = vec![
        (
            json!({}),
            vec![addr("192.0.2.10"), host("elb.example.net")],
            None,
        ),
        (
            json!({TARGET_NEW: "203.0.113.9,2001:db8::9"}),
            vec![addr("203.0.113.9"), addr("2001:db8::9")],
            None,
        ),
        (
            json!({TARGET_ALPHA: "cdn.example.net."}),
            vec![],
            Some("cdn.example.net"),
        ),
        (
            json!({TARGET_NEW: "bad..name"}),
            vec![addr("192.0.2.10"), host("elb.example.net")],
            None,
        ),
    ];
    for (ann, addrs, cname) in cases {
        assert_eq!(
            contribute(ObjKind::Gateway, &gw(ann.clone()), &Filters::default())
                .unwrap()
                .1,
            Some(Contribution::Gateway {
                class: "envoy".into(),
                addrs,
                cname: cname.map(str::to_string),
                listeners: vec![],
            }),
            "{ann}"
        );
    }
}

#[test]
fn external_name_services_table() {
    let svc = |ann: serde_json::Value, spec: serde_json::Value| {
        let mut spec = spec;
        spec["type"] = json!("ExternalName");
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "DB", "namespace": "data", "annotations": ann},
               "spec": spec})
    };
    // (annotations, spec, contribution)
    let cases: Vec<(serde_json::Value, serde_json::Value, Option<Contribution>)> = vec![
        (
            json!({}),
            json!({"externalName": "DB.Example.net."}),
            Some(names_data(&["db.data"], &[], &["db.example.net"], None)),
        ),
        (
            json!({HOST_NEW: "db.example.com,*.db.example.com", TTL_ALPHA: "2m"}),
            json!({"externalName": "db.example.net"}),
            Some(names_data(
                &["db.example.com", "*.db.example.com"],
                &[],
                &["db.example.net"],
                Some(120),
            )),
        ),
        // an IP as externalName is an address (as ExternalDNS)
        (
            json!({}),
            json!({"externalName": "203.0.113.70"}),
            Some(names_data(&["db.data"], &[addr("203.0.113.70")], &[], None)),
        ),
        // spec.externalIPs win over externalName (as ExternalDNS)
        (
            json!({}),
            json!({"externalName": "db.example.net", "externalIPs": ["203.0.113.71"]}),
            Some(names_data(&["db.data"], &[addr("203.0.113.71")], &[], None)),
        ),
        // the target annotation wins over both
        (
            json!({TARGET_NEW: "other.example.net"}),
            json!({"externalName": "db.example.net", "externalIPs": ["203.0.113.71"]}),
            Some(names_data(&["db.data"], &[], &["other.example.net"], None)),
        ),
        // resolve-endpoints does not apply: an ExternalName has no endpoints
        (
            json!({"k8s-gateway.dns/resolve-endpoints": "true"}),
            json!({"externalName": "db.example.net"}),
            Some(names_data(&["db.data"], &[], &["db.example.net"], None)),
        ),
        // no or an invalid externalName: nothing
        (json!({}), json!({}), None),
        (json!({}), json!({"externalName": "bad..name"}), None),
        (
            json!({HOST_NEW: "bad..name"}),
            json!({"externalName": "db.example.net"}),
            None,
        ),
    ];
    for (ann, spec, want) in cases {
        let obj = svc(ann.clone(), spec.clone());
        let (key, got) = contribute(ObjKind::Service, &obj, &Filters::default()).unwrap();
        assert_eq!(key, ObjKey::new("data", "DB"));
        assert_eq!(got, want, "{ann} {spec}");
    }
    // The ignore label and label selectors apply as to every Service.
    let mut obj = svc(json!({}), json!({"externalName": "db.example.net"}));
    obj["metadata"]["labels"] = json!({"k8s-gateway.dns/ignore": "true"});
    assert_eq!(
        contribute(ObjKind::Service, &obj, &Filters::default())
            .unwrap()
            .1,
        None
    );
    let f = Filters {
        service_label_selectors: vec!["app=db".into()],
        ..Default::default()
    };
    let obj = svc(json!({}), json!({"externalName": "db.example.net"}));
    assert_eq!(contribute(ObjKind::Service, &obj, &f).unwrap().1, None);
}

#[test]
fn hostname_as_cname_turns_status_hostnames_into_cnames() {
    let on = Filters {
        hostname_as_cname: true,
        ..Default::default()
    };
    let ing = json!({
        "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"rules": [{"host": "web.example.com"}]},
        "status": {"loadBalancer": {"ingress": [
            {"ip": "192.0.2.1"},
            {"hostname": "LB-1.Elb.Example.NET."},
            {"hostname": "lb-2.elb.example.net"}
        ]}}
    });
    // Off (the default): the hostname is an address, resolved in the background.
    let (_, c) = contribute(ObjKind::Ingress, &ing, &Filters::default()).unwrap();
    let Some(Contribution::Names(nds)) = c else {
        panic!("{c:?}")
    };
    assert_eq!(nds[0].cname, Vec::<String>::new());
    assert!(nds[0].addrs.contains(&host("lb-1.elb.example.net")));
    // On: a CNAME to the first hostname, and nothing else.
    let (_, c) = contribute(ObjKind::Ingress, &ing, &on).unwrap();
    assert_eq!(
        c,
        Some(Contribution::Names(vec![NameData {
            name: "web.example.com".into(),
            cname: vec!["lb-1.elb.example.net".into()],
            ..Default::default()
        }]))
    );
    // Only IPs: unchanged.
    let mut ips = ing.clone();
    ips["status"]["loadBalancer"]["ingress"] = json!([{"ip": "192.0.2.1"}]);
    let (_, c) = contribute(ObjKind::Ingress, &ips, &on).unwrap();
    let Some(Contribution::Names(nds)) = c else {
        panic!("{c:?}")
    };
    assert_eq!(
        (nds[0].addrs.clone(), nds[0].cname.len()),
        (vec![addr("192.0.2.1")], 0)
    );
    // A LoadBalancer Service, likewise.
    let svc = json!({
        "kind": "Service",
        "metadata": {"name": "lb", "namespace": "apps"},
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"hostname": "lb-3.elb.example.net"}]}}
    });
    let (_, c) = contribute(ObjKind::Service, &svc, &on).unwrap();
    assert_eq!(
        c,
        Some(Contribution::Names(vec![NameData {
            name: "lb.apps".into(),
            cname: vec!["lb-3.elb.example.net".into()],
            ..Default::default()
        }]))
    );
    // A Gateway's Hostname address becomes its CNAME target (its routes answer the CNAME).
    let gw = json!({
        "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "infra"},
        "spec": {"gatewayClassName": "envoy"},
        "status": {"addresses": [
            {"type": "IPAddress", "value": "192.0.2.9"},
            {"type": "Hostname", "value": "gw.elb.example.net"}
        ]}
    });
    let (_, c) = contribute(ObjKind::Gateway, &gw, &on).unwrap();
    assert_eq!(
        c,
        Some(Contribution::Gateway {
            class: "envoy".into(),
            addrs: vec![],
            cname: Some("gw.elb.example.net".into()),
            listeners: vec![],
        })
    );
}
