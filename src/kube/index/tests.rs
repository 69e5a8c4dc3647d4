use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::kube::model::{Event, IstioTarget, NameData};

const NOW: u32 = 1_700_000_000;

fn cfg(kinds: &[Kind]) -> IndexConfig {
    IndexConfig {
        kinds: kinds.to_vec(),
        zones: vec!["example.com.".into(), "example.org.".into()],
        filters: Filters::default(),
    }
}

fn ip(s: &str) -> Address {
    Address::Ip(s.parse().unwrap())
}

fn host(s: &str) -> Address {
    Address::Hostname(s.into())
}

fn nd(name: &str, addrs: &[&str]) -> NameData {
    NameData {
        name: name.into(),
        addrs: addrs.iter().map(|a| ip(a)).collect(),
        ..Default::default()
    }
}

fn names(name: &str, addrs: &[&str]) -> Option<Contribution> {
    Some(Contribution::Names(vec![nd(name, addrs)]))
}

fn gateway(class: &str, addrs: Vec<Address>) -> Option<Contribution> {
    Some(Contribution::Gateway {
        class: class.into(),
        addrs,
        cname: None,
        listeners: vec![],
    })
}

fn route(hostnames: &[&str], parents: &[(&str, &str)]) -> Option<Contribution> {
    Some(Contribution::Route {
        hostnames: hostnames.iter().map(|h| h.to_string()).collect(),
        parents: parents.iter().map(|(n, g)| ObjKey::new(*n, *g)).collect(),
        ttl: None,
        inherit: false,
        sections: vec![],
    })
}

fn put(feed: &Feed, kind: ObjKind, key: &str, c: Option<Contribution>) {
    let (ns, name) = key.split_once('/').unwrap_or(("", key));
    feed.apply(kind, Event::Apply(ObjKey::new(ns, name), c));
}

fn sync_all(feed: &Feed) {
    for k in ObjKind::ALL {
        feed.set_synced(k, true);
    }
}

/// Every address of a record set, as strings, A first.
fn addrs(rs: &RecordSet) -> Vec<String> {
    let mut v: Vec<String> = rs.a.iter().map(|a| a.to_string()).collect();
    v.extend(rs.aaaa.iter().map(|a| a.to_string()));
    v
}

fn look(snap: &Snapshot, kinds: &[Kind], keys: &[&str]) -> Option<(Kind, Vec<String>)> {
    snap.lookup(kinds, keys).map(|(k, rs)| (k, addrs(&rs)))
}

fn at(
    index: &Index,
    cfg: &IndexConfig,
    feed: &Feed,
    prev: Option<&Snapshot>,
    now: u32,
) -> Snapshot {
    index.build_at(cfg, feed, prev, now).snapshot
}

const ROUTES_FIRST: [Kind; 5] = [
    Kind::HTTPRoute,
    Kind::DNSEndpoint,
    Kind::Ingress,
    Kind::Service,
    Kind::Node,
];

#[test]
fn precedence_routes_then_ingress_then_service() {
    let feed = Feed::new();
    put(
        &feed,
        ObjKind::Gateway,
        "infra/gw",
        gateway("nginx", vec![ip("10.0.0.1")]),
    );
    put(
        &feed,
        ObjKind::HTTPRoute,
        "app/r",
        route(&["app.example.com"], &[("infra", "gw")]),
    );
    put(
        &feed,
        ObjKind::Ingress,
        "app/i",
        names("app.example.com", &["10.0.0.2"]),
    );
    put(
        &feed,
        ObjKind::Ingress,
        "app/i2",
        names("ing.example.com", &["10.0.0.2"]),
    );
    put(
        &feed,
        ObjKind::Service,
        "app/s",
        names("app.example.com", &["10.0.0.3"]),
    );
    put(
        &feed,
        ObjKind::Service,
        "app/s2",
        names("ing.example.com", &["10.0.0.3"]),
    );
    let snap = build(&cfg(&ROUTES_FIRST), &feed, None);

    type Case<'a> = (&'a [Kind], &'a str, Option<(Kind, &'a str)>);
    let cases: &[Case] = &[
        (
            &ROUTES_FIRST,
            "app.example.com",
            Some((Kind::HTTPRoute, "10.0.0.1")),
        ),
        (
            &[Kind::Ingress, Kind::Service],
            "app.example.com",
            Some((Kind::Ingress, "10.0.0.2")),
        ),
        (
            &[Kind::Service],
            "app.example.com",
            Some((Kind::Service, "10.0.0.3")),
        ),
        // The caller's order is the precedence.
        (
            &[Kind::Service, Kind::HTTPRoute],
            "app.example.com",
            Some((Kind::Service, "10.0.0.3")),
        ),
        // A kind without the name falls through to the next.
        (
            &ROUTES_FIRST,
            "ing.example.com",
            Some((Kind::Ingress, "10.0.0.2")),
        ),
        (&ROUTES_FIRST, "nope.example.com", None),
        // Kinds the caller does not ask for are not consulted.
        (&[Kind::Node], "app.example.com", None),
    ];
    for (kinds, key, want) in cases {
        let got = look(&snap, kinds, &[key]);
        let want = want.map(|(k, a)| (k, vec![a.to_string()]));
        assert_eq!(got, want, "{kinds:?} {key}");
    }
    assert_eq!(
        addrs(&snap.exact(Kind::Service, "app.example.com").unwrap()),
        ["10.0.0.3"]
    );
    assert!(snap.exact(Kind::Service, "nope.example.com").is_none());
}

#[test]
fn keys_are_tried_in_order_within_each_kind() {
    let feed = Feed::new();
    // Service default key `name.namespace`, relative to every zone.
    put(
        &feed,
        ObjKind::Service,
        "ns/svc",
        names("svc.ns", &["10.1.0.1"]),
    );
    put(
        &feed,
        ObjKind::Ingress,
        "ns/i",
        names("svc.ns.example.com", &["10.1.0.2"]),
    );
    put(
        &feed,
        ObjKind::Service,
        "ns/abs",
        names("svc.ns.example.org", &["10.1.0.3"]),
    );
    let snap = build(&cfg(&ROUTES_FIRST), &feed, None);
    let kinds = [Kind::Ingress, Kind::Service];
    // Ingress has the absolute key: it wins over the Service's relative key.
    assert_eq!(
        look(&snap, &kinds, &["svc.ns.example.com", "svc.ns"]),
        Some((Kind::Ingress, vec!["10.1.0.2".into()]))
    );
    // A higher-precedence kind's relative key beats a lower kind's absolute one.
    assert_eq!(
        look(
            &snap,
            &[Kind::Service, Kind::Ingress],
            &["svc.ns.example.com", "svc.ns"]
        ),
        Some((Kind::Service, vec!["10.1.0.1".into()]))
    );
    // Within one kind, the first key wins.
    assert_eq!(
        look(&snap, &[Kind::Service], &["svc.ns.example.org", "svc.ns"]),
        Some((Kind::Service, vec!["10.1.0.3".into()]))
    );
    assert_eq!(
        look(&snap, &[Kind::Service], &["other.example.org", "svc.ns"]),
        Some((Kind::Service, vec!["10.1.0.1".into()]))
    );
}

#[test]
fn wildcards_cover_one_label_and_exact_names_win() {
    let feed = Feed::new();
    put(
        &feed,
        ObjKind::Ingress,
        "a/wild",
        names("*.example.com", &["10.2.0.1"]),
    );
    put(
        &feed,
        ObjKind::Service,
        "a/exact",
        names("exact.example.com", &["10.2.0.2"]),
    );
    put(
        &feed,
        ObjKind::Ingress,
        "a/wild2",
        names("*.sub.example.com", &["10.2.0.3"]),
    );
    put(
        &feed,
        ObjKind::Ingress,
        "a/exact2",
        names("x.sub.example.com", &["10.2.0.4"]),
    );
    let snap = build(&cfg(&ROUTES_FIRST), &feed, None);
    let kinds = [Kind::Ingress, Kind::Service];
    let cases: &[(&str, Option<(Kind, &str)>)] = &[
        ("a.example.com", Some((Kind::Ingress, "10.2.0.1"))),
        // Exact in a lower-precedence kind beats a wildcard in a higher one.
        ("exact.example.com", Some((Kind::Service, "10.2.0.2"))),
        // Exact beats wildcard in the same kind.
        ("x.sub.example.com", Some((Kind::Ingress, "10.2.0.4"))),
        ("y.sub.example.com", Some((Kind::Ingress, "10.2.0.3"))),
        // One label only.
        ("a.b.example.com", None),
        ("a.y.sub.example.com", None),
        // The wildcard's parent itself is not covered.
        ("example.com", None),
        ("com", None),
        ("", None),
    ];
    for (key, want) in cases {
        let want = want.map(|(k, a)| (k, vec![a.to_string()]));
        assert_eq!(look(&snap, &kinds, &[key]), want, "{key}");
    }
    // The wildcard key itself is not an exact name.
    assert_eq!(snap.exact(Kind::Ingress, "*.example.com"), None);
    // A wildcard of a kind the caller does not ask for does not match.
    assert_eq!(look(&snap, &[Kind::Service], &["a.example.com"]), None);
    // Exact pass over every key before the wildcard pass.
    assert_eq!(
        look(&snap, &kinds, &["zzz.example.com", "exact.example.com"]),
        Some((Kind::Service, vec!["10.2.0.2".into()]))
    );
    assert_eq!(snap.names(Kind::Ingress), 3);
    assert_eq!(snap.names(Kind::Service), 1);
}

#[test]
fn empty_non_terminals() {
    let feed = Feed::new();
    put(
        &feed,
        ObjKind::Ingress,
        "a/i",
        names("a.b.example.com", &["10.3.0.1"]),
    );
    put(
        &feed,
        ObjKind::DNSEndpoint,
        "a/d",
        names("*.foo.bar", &["10.3.0.2"]),
    );
    put(
        &feed,
        ObjKind::Service,
        "ns1/svc",
        names("svc.ns1", &["10.3.0.3"]),
    );
    // No data: not stored, so no ancestors either.
    put(
        &feed,
        ObjKind::Ingress,
        "a/empty",
        names("x.empty.example.org", &[]),
    );
    let snap = build(&cfg(&ROUTES_FIRST), &feed, None);
    let cases = [
        ("b.example.com", true),
        ("example.com", true),
        ("com", true),
        ("a.b.example.com", false),
        ("c.example.com", false),
        ("foo.bar", true),
        ("bar", true),
        ("*.foo.bar", false),
        ("ns1", true),
        ("svc.ns1", false),
        ("empty.example.org", false),
        ("example.org", false),
        ("", false),
    ];
    for (key, want) in cases {
        assert_eq!(snap.has_descendants(key), want, "{key}");
    }
    assert_eq!(snap.ents(), 6);
    assert_eq!(look(&snap, &ROUTES_FIRST, &["x.empty.example.org"]), None);
}

#[test]
fn routes_join_gateways() {
    let feed = Feed::new();
    put(
        &feed,
        ObjKind::Gateway,
        "infra/gw1",
        gateway("nginx", vec![ip("10.4.0.1")]),
    );
    put(
        &feed,
        ObjKind::Gateway,
        "other/gw2",
        gateway("envoy", vec![ip("10.4.0.2"), ip("fd00::2"), ip("10.4.0.1")]),
    );
    put(
        &feed,
        ObjKind::HTTPRoute,
        "app/two",
        route(&["two.example.com"], &[("infra", "gw1"), ("other", "gw2")]),
    );
    put(
        &feed,
        ObjKind::HTTPRoute,
        "app/missing",
        route(&["missing.example.com"], &[("infra", "nope")]),
    );
    put(
        &feed,
        ObjKind::HTTPRoute,
        "app/half",
        route(
            &["half.example.com"],
            &[("infra", "nope"), ("other", "gw2")],
        ),
    );
    // Two routes for one name: union.
    put(
        &feed,
        ObjKind::HTTPRoute,
        "app/u1",
        route(&["u.example.com"], &[("infra", "gw1")]),
    );
    put(
        &feed,
        ObjKind::HTTPRoute,
        "app/u2",
        route(&["U.Example.com."], &[("other", "gw2")]),
    );
    // Parent keys are `namespace/name`: same name, other namespace is another Gateway.
    put(
        &feed,
        ObjKind::TLSRoute,
        "app/ns",
        route(&["ns.example.com"], &[("app", "gw1")]),
    );
    put(
        &feed,
        ObjKind::GRPCRoute,
        "app/g",
        route(&["grpc.example.com"], &[("infra", "gw1")]),
    );
    // A lower kind answers when the route has no Gateway.
    put(
        &feed,
        ObjKind::Ingress,
        "app/i",
        names("missing.example.com", &["10.4.0.9"]),
    );
    sync_all(&feed);

    let kinds = [
        Kind::HTTPRoute,
        Kind::TLSRoute,
        Kind::GRPCRoute,
        Kind::Ingress,
    ];
    let all = build(&cfg(&kinds), &feed, None);
    let mut only_nginx = cfg(&kinds);
    only_nginx.filters.gateway_classes = vec!["nginx".into()];
    let nginx = build(&only_nginx, &feed, None);
    let mut unknown_class = cfg(&kinds);
    unknown_class.filters.gateway_classes = vec!["istio".into()];
    let none = build(&unknown_class, &feed, None);

    type Case<'a> = (&'a Snapshot, &'a str, Option<(Kind, &'a [&'a str])>);
    let cases: &[Case] = &[
        (
            &all,
            "two.example.com",
            Some((Kind::HTTPRoute, &["10.4.0.1", "10.4.0.2", "fd00::2"])),
        ),
        (
            &all,
            "missing.example.com",
            Some((Kind::Ingress, &["10.4.0.9"])),
        ),
        (
            &all,
            "half.example.com",
            Some((Kind::HTTPRoute, &["10.4.0.1", "10.4.0.2", "fd00::2"])),
        ),
        (
            &all,
            "u.example.com",
            Some((Kind::HTTPRoute, &["10.4.0.1", "10.4.0.2", "fd00::2"])),
        ),
        (&all, "ns.example.com", None),
        (
            &all,
            "grpc.example.com",
            Some((Kind::GRPCRoute, &["10.4.0.1"])),
        ),
        (
            &nginx,
            "two.example.com",
            Some((Kind::HTTPRoute, &["10.4.0.1"])),
        ),
        (&nginx, "half.example.com", None),
        (
            &nginx,
            "u.example.com",
            Some((Kind::HTTPRoute, &["10.4.0.1"])),
        ),
        (&none, "two.example.com", None),
        (
            &none,
            "missing.example.com",
            Some((Kind::Ingress, &["10.4.0.9"])),
        ),
    ];
    for (snap, key, want) in cases {
        let want = want.map(|(k, a)| (k, a.iter().map(|s| s.to_string()).collect::<Vec<_>>()));
        assert_eq!(look(snap, &kinds, &[key]), want, "{key}");
    }
    // Routes of a kind that is not configured are not indexed.
    let http_only = build(&cfg(&[Kind::HTTPRoute]), &feed, None);
    assert_eq!(http_only.names(Kind::GRPCRoute), 0);
    assert_eq!(http_only.names(Kind::HTTPRoute), 3);
}

#[test]
fn services_resolve_endpoints_with_dedup() {
    let feed = Feed::new();
    let svc = ObjKey::new("web", "api");
    let with_eps = NameData {
        name: "api.example.com".into(),
        // Ignored: the addresses come from the EndpointSlices.
        addrs: vec![ip("192.0.2.1")],
        endpoints_of: Some(svc.clone()),
        ..Default::default()
    };
    put(
        &feed,
        ObjKind::Service,
        "web/api",
        Some(Contribution::Names(vec![with_eps])),
    );
    let no_eps = NameData {
        name: "lonely.example.com".into(),
        endpoints_of: Some(ObjKey::new("web", "lonely")),
        ..Default::default()
    };
    put(
        &feed,
        ObjKind::Service,
        "web/lonely",
        Some(Contribution::Names(vec![no_eps])),
    );
    let slice = |service: &ObjKey, a: &[&str]| {
        Some(Contribution::EndpointSlice {
            service: service.clone(),
            addrs: a.iter().map(|s| s.parse().unwrap()).collect(),
        })
    };
    put(
        &feed,
        ObjKind::EndpointSlice,
        "web/api-1",
        slice(&svc, &["10.5.0.2", "10.5.0.1"]),
    );
    put(
        &feed,
        ObjKind::EndpointSlice,
        "web/api-2",
        slice(&svc, &["10.5.0.1", "fd00::5"]),
    );
    // Same Service name, other namespace: not joined.
    put(
        &feed,
        ObjKind::EndpointSlice,
        "other/api-1",
        slice(&ObjKey::new("other", "api"), &["10.5.0.9"]),
    );
    let snap = build(&cfg(&[Kind::Service]), &feed, None);
    assert_eq!(
        look(&snap, &[Kind::Service], &["api.example.com"]),
        Some((
            Kind::Service,
            vec!["10.5.0.1".into(), "10.5.0.2".into(), "fd00::5".into()]
        ))
    );
    assert_eq!(look(&snap, &[Kind::Service], &["lonely.example.com"]), None);

    // A slice whose endpoints all turned unready contributes nothing (the kinds module only
    // passes ready addresses); the other slice keeps answering.
    put(&feed, ObjKind::EndpointSlice, "web/api-2", slice(&svc, &[]));
    let snap = build(&cfg(&[Kind::Service]), &feed, None);
    assert_eq!(
        look(&snap, &[Kind::Service], &["api.example.com"]),
        Some((Kind::Service, vec!["10.5.0.1".into(), "10.5.0.2".into()]))
    );
    put(&feed, ObjKind::EndpointSlice, "web/api-1", None);
    put(&feed, ObjKind::EndpointSlice, "web/api-2", None);
    let snap = build(&cfg(&[Kind::Service]), &feed, None);
    assert_eq!(look(&snap, &[Kind::Service], &["api.example.com"]), None);
}

#[test]
fn objects_of_one_kind_are_merged_and_deduplicated() {
    let feed = Feed::new();
    put(
        &feed,
        ObjKind::Ingress,
        "a/1",
        names("m.example.com", &["10.6.0.2", "10.6.0.1"]),
    );
    put(
        &feed,
        ObjKind::Ingress,
        "a/2",
        names("M.example.com.", &["10.6.0.1", "::ffff:10.6.0.3"]),
    );
    let snap = build(&cfg(&[Kind::Ingress]), &feed, None);
    let rs = snap.exact(Kind::Ingress, "m.example.com").unwrap();
    // IPv4-mapped addresses count as IPv4.
    assert_eq!(addrs(&rs), ["10.6.0.1", "10.6.0.2", "10.6.0.3"]);
}

#[test]
fn per_object_ttls_and_gateway_targets() {
    let feed = Feed::new();
    let with_ttl = |name: &str, addrs: &[&str], ttl: Option<u32>| {
        Some(Contribution::Names(vec![NameData {
            ttl,
            ..nd(name, addrs)
        }]))
    };
    // Two objects for one name: one RRset, the lowest TTL any of them sets (RFC 2181 §5.2);
    // an object without one does not lower it.
    put(
        &feed,
        ObjKind::Ingress,
        "a/1",
        with_ttl("t.example.com", &["10.7.0.1"], Some(300)),
    );
    put(
        &feed,
        ObjKind::Ingress,
        "a/2",
        with_ttl("t.example.com", &["10.7.0.2"], Some(30)),
    );
    put(
        &feed,
        ObjKind::Ingress,
        "a/3",
        with_ttl("t.example.com", &["10.7.0.3"], None),
    );
    put(
        &feed,
        ObjKind::Ingress,
        "a/4",
        with_ttl("plain.example.com", &["10.7.0.4"], None),
    );
    // A Gateway whose target annotation is a hostname: its routes answer a CNAME.
    put(
        &feed,
        ObjKind::Gateway,
        "infra/cn",
        Some(Contribution::Gateway {
            class: "nginx".into(),
            addrs: vec![],
            cname: Some("lb.example.net".into()),
            listeners: vec![],
        }),
    );
    put(
        &feed,
        ObjKind::Gateway,
        "infra/ip",
        gateway("nginx", vec![ip("10.7.1.1")]),
    );
    put(
        &feed,
        ObjKind::HTTPRoute,
        "app/r",
        Some(Contribution::Route {
            hostnames: vec!["r.example.com".into()],
            parents: vec![ObjKey::new("infra", "cn")],
            ttl: Some(120),
            inherit: false,
            sections: vec![],
        }),
    );
    put(
        &feed,
        ObjKind::HTTPRoute,
        "app/s",
        Some(Contribution::Route {
            hostnames: vec!["s.example.com".into()],
            parents: vec![ObjKey::new("infra", "ip")],
            ttl: Some(0),
            inherit: false,
            sections: vec![],
        }),
    );
    sync_all(&feed);
    let c = cfg(&[Kind::HTTPRoute, Kind::Ingress]);
    let index = Index::new();
    let snap = at(&index, &c, &feed, None, NOW);
    let t = snap.exact(Kind::Ingress, "t.example.com").unwrap();
    assert_eq!(addrs(&t), ["10.7.0.1", "10.7.0.2", "10.7.0.3"]);
    assert_eq!(t.ttl, Some(30));
    assert_eq!(
        snap.exact(Kind::Ingress, "plain.example.com").unwrap().ttl,
        None
    );
    let r = snap.exact(Kind::HTTPRoute, "r.example.com").unwrap();
    assert_eq!(
        (r.cname.clone(), r.ttl),
        (vec!["lb.example.net".to_string()], Some(120))
    );
    assert!(r.a.is_empty());
    let s = snap.exact(Kind::HTTPRoute, "s.example.com").unwrap();
    assert_eq!((addrs(&s), s.ttl), (vec!["10.7.1.1".to_string()], Some(0)));

    // Incremental: a TTL change is a content change (new serial); the Gateway's target going
    // away brings its routes back to its status addresses.
    let serial = snap.serial("example.com");
    put(
        &feed,
        ObjKind::Ingress,
        "a/2",
        with_ttl("t.example.com", &["10.7.0.2"], None),
    );
    put(
        &feed,
        ObjKind::Gateway,
        "infra/cn",
        gateway("nginx", vec![ip("10.7.1.2")]),
    );
    let snap = at(&index, &c, &feed, Some(&snap), NOW + 10);
    assert_eq!(
        snap.exact(Kind::Ingress, "t.example.com").unwrap().ttl,
        Some(300)
    );
    let r = snap.exact(Kind::HTTPRoute, "r.example.com").unwrap();
    assert_eq!(
        (addrs(&r), r.cname.is_empty(), r.ttl),
        (vec!["10.7.1.2".to_string()], true, Some(120))
    );
    assert!(snap.serial("example.com") > serial);
    // The same store built from scratch gives the same snapshot.
    let fresh = at(&Index::new(), &c, &feed, Some(&snap), NOW + 10);
    assert_eq!(fresh.contents(), snap.contents());
}

#[test]
fn dns_endpoint_txt_and_cname() {
    let feed = Feed::new();
    let txt = |name: &str, t: &[&str]| NameData {
        name: name.into(),
        txt: t.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let cname = |name: &str, c: &str| NameData {
        name: name.into(),
        cname: vec![c.into()],
        ..Default::default()
    };
    put(
        &feed,
        ObjKind::DNSEndpoint,
        "d/1",
        Some(Contribution::Names(vec![
            txt("t.example.com", &["v=2", "v=1"]),
            nd("t.example.com", &["10.7.0.1"]),
            cname("c.example.com", "Target.Example.NET."),
        ])),
    );
    put(
        &feed,
        ObjKind::DNSEndpoint,
        "d/2",
        Some(Contribution::Names(vec![
            txt("t.example.com", &["v=1"]),
            cname("conflict.example.com", "target.example.net"),
            nd("conflict.example.com", &["10.7.0.2"]),
            txt("conflict.example.com", &["x"]),
        ])),
    );
    // The conflicting name's CNAME wins in its own kind only.
    put(
        &feed,
        ObjKind::Ingress,
        "d/i",
        names("conflict.example.com", &["10.7.0.3"]),
    );
    let kinds = [Kind::DNSEndpoint, Kind::Ingress];
    let snap = build(&cfg(&kinds), &feed, None);
    let t = snap.exact(Kind::DNSEndpoint, "t.example.com").unwrap();
    assert_eq!(
        *t,
        RecordSet {
            a: vec![Ipv4Addr::new(10, 7, 0, 1)],
            aaaa: vec![],
            txt: vec!["v=1".into(), "v=2".into()],
            cname: vec![],
            ttl: None,
        }
    );
    let c = snap.exact(Kind::DNSEndpoint, "c.example.com").unwrap();
    assert_eq!(
        *c,
        RecordSet {
            cname: vec!["target.example.net".into()],
            ..Default::default()
        }
    );
    let (kind, c) = snap.lookup(&kinds, &["conflict.example.com"]).unwrap();
    assert_eq!(kind, Kind::DNSEndpoint);
    assert_eq!(
        *c,
        RecordSet {
            cname: vec!["target.example.net".into()],
            ..Default::default()
        }
    );
    assert_eq!(snap.conflicts, ["DNSEndpoint/conflict.example.com"]);
}

#[test]
fn synced_needs_every_watched_kind() {
    let feed = Feed::new();
    let route_cfg = cfg(&[Kind::HTTPRoute]);
    assert_eq!(route_cfg.watched(), [ObjKind::Gateway, ObjKind::HTTPRoute]);
    assert!(!build(&route_cfg, &feed, None).synced());
    feed.set_synced(ObjKind::HTTPRoute, true);
    assert!(!build(&route_cfg, &feed, None).synced());
    feed.set_synced(ObjKind::Gateway, true);
    assert!(build(&route_cfg, &feed, None).synced());

    let svc_cfg = cfg(&[Kind::Ingress, Kind::Service]);
    assert!(!build(&svc_cfg, &feed, None).synced());
    feed.set_synced(ObjKind::Ingress, true);
    feed.set_synced(ObjKind::Service, true);
    // EndpointSlices are needed for Services too.
    assert!(!build(&svc_cfg, &feed, None).synced());
    feed.set_synced(ObjKind::EndpointSlice, true);
    assert!(build(&svc_cfg, &feed, None).synced());
    // A kind that fell back out of sync (e.g. a re-list) makes the snapshot unsynced again.
    feed.set_synced(ObjKind::Service, false);
    assert!(!build(&svc_cfg, &feed, None).synced());
    // Unrelated kinds do not matter.
    assert!(build(&cfg(&[Kind::Ingress]), &feed, None).synced());
}

#[test]
fn hostname_addresses_come_from_the_resolver_cache() {
    let feed = Feed::new();
    put(
        &feed,
        ObjKind::Gateway,
        "infra/gw",
        gateway("", vec![host("lb.example.net"), ip("10.8.0.1")]),
    );
    put(
        &feed,
        ObjKind::HTTPRoute,
        "a/r",
        route(&["r.example.com"], &[("infra", "gw")]),
    );
    put(
        &feed,
        ObjKind::Ingress,
        "a/i",
        Some(Contribution::Names(vec![NameData {
            name: "i.example.com".into(),
            addrs: vec![host("elb.example.net")],
            ..Default::default()
        }])),
    );
    let c = cfg(&[Kind::HTTPRoute, Kind::Ingress]);
    let index = Index::new();
    let built = index.build_at(&c, &feed, None, NOW);
    assert_eq!(
        built.hostnames.iter().collect::<Vec<_>>(),
        ["elb.example.net", "lb.example.net"]
    );
    let kinds = &c.kinds;
    assert_eq!(
        look(&built.snapshot, kinds, &["r.example.com"]),
        Some((Kind::HTTPRoute, vec!["10.8.0.1".into()]))
    );
    // Not resolved yet: nothing.
    assert_eq!(look(&built.snapshot, kinds, &["i.example.com"]), None);

    assert!(index.cache().insert(
        "lb.example.net",
        vec!["2001:db8::1".parse().unwrap(), "10.8.0.2".parse().unwrap()]
    ));
    assert!(
        index
            .cache()
            .insert("elb.example.net", vec!["10.8.0.3".parse().unwrap()])
    );
    assert!(
        !index
            .cache()
            .insert("elb.example.net", vec!["10.8.0.3".parse().unwrap()])
    );
    let snap = index.build(&c, &feed, None);
    assert_eq!(
        look(&snap, kinds, &["r.example.com"]),
        Some((
            Kind::HTTPRoute,
            vec!["10.8.0.1".into(), "10.8.0.2".into(), "2001:db8::1".into()]
        ))
    );
    assert_eq!(
        look(&snap, kinds, &["i.example.com"]),
        Some((Kind::Ingress, vec!["10.8.0.3".into()]))
    );
    // The free `build` has an empty cache.
    assert_eq!(
        look(&build(&c, &feed, None), kinds, &["i.example.com"]),
        None
    );
}

#[test]
fn serials_follow_content() {
    let feed = Feed::new();
    put(
        &feed,
        ObjKind::Ingress,
        "a/1",
        names("one.example.com", &["10.9.0.1"]),
    );
    put(
        &feed,
        ObjKind::Ingress,
        "a/2",
        names("two.example.org", &["10.9.0.2"]),
    );
    sync_all(&feed);
    let c = cfg(&[Kind::Ingress, Kind::Service]);
    let index = Index::new();

    // The first synced version takes the clock: a restarted process never goes back.
    let first = at(&index, &c, &feed, None, NOW);
    let com = first.serial("example.com.");
    let org = first.serial("example.org.");
    assert_eq!((com, org), (NOW, NOW));
    // Trailing dot optional, case-insensitive; unknown zones get 1.
    assert_eq!(first.serial("Example.COM"), com);
    assert_eq!(first.serial("example.net."), 1);

    // Nothing changed: same serial, whatever the time.
    let same = at(&index, &c, &feed, Some(&first), NOW + 50);
    assert_eq!(same.serial("example.com."), com);
    assert_eq!(same.serial("example.org."), org);

    // A change in example.com moves only example.com, to the clock.
    put(
        &feed,
        ObjKind::Ingress,
        "a/1",
        names("one.example.com", &["10.9.0.9"]),
    );
    let changed = at(&index, &c, &feed, Some(&same), NOW + 100);
    assert_eq!(changed.serial("example.com."), NOW + 100);
    assert_eq!(changed.serial("example.org."), org);

    // Two changes in the same second still increase.
    put(
        &feed,
        ObjKind::Ingress,
        "a/3",
        names("three.example.com", &["10.9.0.3"]),
    );
    let again = at(&index, &c, &feed, Some(&changed), NOW + 100);
    assert_eq!(again.serial("example.com."), NOW + 101);
    // A clock behind the serial does not move it back.
    put(&feed, ObjKind::Ingress, "a/3", None);
    let behind = at(&index, &c, &feed, Some(&again), NOW);
    assert_eq!(behind.serial("example.com."), NOW + 102);

    // A relative key (Service `name.namespace`) counts for every zone.
    put(
        &feed,
        ObjKind::Service,
        "ns/svc",
        names("svc.ns", &["10.9.1.1"]),
    );
    let rel = at(&index, &c, &feed, Some(&behind), NOW + 200);
    assert_eq!(rel.serial("example.com."), NOW + 200);
    assert_eq!(rel.serial("example.org."), NOW + 200);

    // A kind that is not configured does not count.
    put(
        &feed,
        ObjKind::Node,
        "n1",
        names("n1.example.com", &["10.9.2.1"]),
    );
    let node = at(&index, &c, &feed, Some(&rel), NOW + 300);
    assert_eq!(node.serial("example.com."), NOW + 200);
}

#[test]
fn serials_agree_between_instances() {
    // Same data, inserted in another order, built by two indexes at different times.
    let a = Feed::new();
    let b = Feed::new();
    let objs = [
        ("x/1", names("one.example.com", &["10.10.0.1", "10.10.0.2"])),
        ("x/2", names("*.wild.example.com", &["10.10.0.3"])),
        ("x/3", names("one.example.com", &["10.10.0.2"])),
        ("x/4", names("svc.ns", &["10.10.0.4"])),
    ];
    for (k, c) in objs.iter() {
        put(&a, ObjKind::Ingress, k, c.clone());
    }
    for (k, c) in objs.iter().rev() {
        put(&b, ObjKind::Ingress, k, c.clone());
    }
    let c = cfg(&[Kind::Ingress]);
    // Before the first sync the serial is derived from the data alone.
    let sa = at(&Index::new(), &c, &a, None, NOW);
    let sb = at(&Index::new(), &c, &b, None, NOW + 1234);
    for z in ["example.com.", "example.org."] {
        assert_eq!(sa.serial(z), sb.serial(z), "{z}");
        assert_eq!(
            sa.zones[z.trim_end_matches('.')],
            sb.zones[z.trim_end_matches('.')]
        );
    }
    // Different data, different serial.
    put(
        &b,
        ObjKind::Ingress,
        "x/5",
        names("five.example.com", &["10.10.0.5"]),
    );
    let sb2 = at(&Index::new(), &c, &b, None, NOW);
    assert_ne!(sa.serial("example.com."), sb2.serial("example.com."));
    // The zone without names of its own (only the relative key) is not 1.
    assert_ne!(sa.serial("example.org."), 1);
    // An empty zone is 1.
    let empty = at(&Index::new(), &c, &Feed::new(), None, NOW);
    assert_eq!(empty.serial("example.com."), 1);

    // Synced: two instances that see the same change in the same second agree.
    sync_all(&a);
    sync_all(&b);
    let (ia, ib) = (Index::new(), Index::new());
    let ya = at(&ia, &c, &a, Some(&sa), NOW + 5);
    let yb = at(&ib, &c, &b, Some(&sb2), NOW + 5);
    assert_eq!(ya.serial("example.com."), NOW + 5);
    put(
        &a,
        ObjKind::Ingress,
        "x/6",
        names("six.example.com", &["10.10.0.6"]),
    );
    put(
        &b,
        ObjKind::Ingress,
        "x/6",
        names("six.example.com", &["10.10.0.6"]),
    );
    let za = at(&ia, &c, &a, Some(&ya), NOW + 60);
    let zb = at(&ib, &c, &b, Some(&yb), NOW + 60);
    assert_eq!(za.serial("example.com."), zb.serial("example.com."));
    assert_eq!(za.serial("example.com."), NOW + 60);
}

#[test]
fn serials_stay_data_derived_until_synced() {
    let feed = Feed::new();
    let c = cfg(&[Kind::Ingress]);
    let index = Index::new();
    put(
        &feed,
        ObjKind::Ingress,
        "a/1",
        names("one.example.com", &["10.11.0.1"]),
    );
    let s1 = at(&index, &c, &feed, None, NOW);
    put(
        &feed,
        ObjKind::Ingress,
        "a/2",
        names("two.example.com", &["10.11.0.2"]),
    );
    let s2 = at(&index, &c, &feed, Some(&s1), NOW + 1);
    assert!(!s2.synced());
    // Still a base: what a fresh build of the same data says.
    let fresh = at(&Index::new(), &c, &feed, None, NOW + 5);
    assert_eq!(s2.serial("example.com."), fresh.serial("example.com."));
    assert!(s2.serial("example.com.") < 1_000_000_000);

    feed.set_synced(ObjKind::Ingress, true);
    let s3 = at(&index, &c, &feed, Some(&s2), NOW + 2);
    assert_eq!(
        s3.serial("example.com."),
        NOW + 2,
        "the first synced version: the clock"
    );
    // Once synced, a later loss of sync does not send serials back to the base.
    feed.set_synced(ObjKind::Ingress, false);
    put(
        &feed,
        ObjKind::Ingress,
        "a/3",
        names("three.example.com", &["10.11.0.3"]),
    );
    let s4 = at(&index, &c, &feed, Some(&s3), NOW + 3);
    assert_eq!(s4.serial("example.com."), NOW + 3);
}

#[test]
fn nested_zones_count_names_for_the_longest() {
    let feed = Feed::new();
    sync_all(&feed);
    let mut c = cfg(&[Kind::Ingress]);
    c.zones = vec!["example.com.".into(), "sub.example.com.".into()];
    let index = Index::new();
    let s1 = at(&index, &c, &feed, None, NOW);
    put(
        &feed,
        ObjKind::Ingress,
        "a/1",
        names("x.sub.example.com", &["10.12.0.1"]),
    );
    let s2 = at(&index, &c, &feed, Some(&s1), NOW + 10);
    assert_eq!(s2.serial("sub.example.com."), NOW + 10);
    assert_eq!(s2.serial("example.com."), NOW);
    put(
        &feed,
        ObjKind::Ingress,
        "a/2",
        names("*.example.com", &["10.12.0.2"]),
    );
    let s3 = at(&index, &c, &feed, Some(&s2), NOW + 20);
    assert_eq!(s3.serial("sub.example.com."), NOW + 10);
    assert_eq!(s3.serial("example.com."), NOW + 20);
}

#[test]
fn builds_a_hundred_thousand_names() {
    let feed = Feed::new();
    let items: Vec<(ObjKey, Contribution)> = (0..100_000u32)
        .map(|i| {
            let [_, b, c, d] = i.to_be_bytes();
            let name = format!("host{i}.team{}.example.com", i % 100);
            let c = Contribution::Names(vec![nd(&name, &[&format!("10.{b}.{c}.{d}")])]);
            (ObjKey::new("bench", format!("ing{i}")), c)
        })
        .collect();
    feed.apply(ObjKind::Ingress, Event::Replace(items));
    sync_all(&feed);
    let c = cfg(&[Kind::Ingress]);
    let snap = build(&c, &feed, None);
    assert_eq!(snap.names(Kind::Ingress), 100_000);
    // team0..team99, example.com, com.
    assert_eq!(snap.ents(), 102);
    assert_eq!(
        look(&snap, &[Kind::Ingress], &["host54321.team21.example.com"]),
        Some((Kind::Ingress, vec!["10.0.212.49".into()]))
    );
    let again = build(&c, &feed, Some(&snap));
    assert_eq!(again.serial("example.com."), snap.serial("example.com."));
}

/// A resolver whose answers the test controls.
struct Fake {
    answers: Mutex<HashMap<String, io::Result<Vec<IpAddr>>>>,
    calls: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
}

impl Fake {
    fn new() -> Arc<Fake> {
        Arc::new(Fake {
            answers: Mutex::new(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
            total: AtomicUsize::new(0),
        })
    }

    fn set(&self, name: &str, r: Result<&[&str], &str>) {
        let r = r
            .map(|v| v.iter().map(|s| s.parse().unwrap()).collect())
            .map_err(io::Error::other);
        self.answers.lock().unwrap().insert(name.into(), r);
    }

    fn calls(&self, name: &str) -> usize {
        self.calls.lock().unwrap().get(name).copied().unwrap_or(0)
    }

    fn resolver(self: &Arc<Self>, cache: Arc<HostCache>, feed: Feed) -> Resolver {
        let fake = self.clone();
        Resolver {
            cache,
            feed,
            lookup: Arc::new(move |name: String| -> LookupFuture {
                let fake = fake.clone();
                Box::pin(async move {
                    fake.total.fetch_add(1, Ordering::SeqCst);
                    *fake.calls.lock().unwrap().entry(name.clone()).or_default() += 1;
                    match fake.answers.lock().unwrap().get(&name) {
                        Some(Ok(v)) => Ok((v.clone(), None)),
                        Some(Err(e)) => Err(io::Error::other(e.to_string())),
                        None => Err(io::Error::other("unknown")),
                    }
                })
            }),
            refresh: Duration::from_millis(150),
            retry: Duration::from_millis(30),
            timeout: Duration::from_secs(5),
            parallel: 4,
        }
    }
}

/// Polls `cond` for up to 5 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn ips(v: &[&str]) -> Option<Vec<IpAddr>> {
    Some(v.iter().map(|s| s.parse().unwrap()).collect())
}

#[tokio::test]
async fn resolver_resolves_refreshes_retries_and_forgets() {
    let fake = Fake::new();
    fake.set(
        "lb.example.net",
        Ok(&["10.13.0.2", "10.13.0.1", "10.13.0.2"]),
    );
    fake.set("bad.example.net", Err("nxdomain"));
    let cache = Arc::new(HostCache::new());
    let feed = Feed::new();
    let (tx, rx) = watch::channel(BTreeSet::from([
        "lb.example.net".to_string(),
        "bad.example.net".to_string(),
    ]));
    let task = tokio::spawn(fake.resolver(cache.clone(), feed.clone()).run(rx));

    eventually("first answer", || cache.get("lb.example.net").is_some()).await;
    assert_eq!(
        cache.get("lb.example.net"),
        ips(&["10.13.0.1", "10.13.0.2"])
    );
    let v1 = feed.version();
    assert!(v1 >= 1, "a new result bumps the feed");
    // Failures are retried on the short interval and cache nothing.
    eventually("retries", || fake.calls("bad.example.net") >= 3).await;
    assert_eq!(cache.get("bad.example.net"), None);

    // Refresh picks up a change and bumps again.
    fake.set("lb.example.net", Ok(&["10.13.0.3"]));
    eventually("refresh", || {
        cache.get("lb.example.net") == ips(&["10.13.0.3"])
    })
    .await;
    assert!(feed.version() > v1);

    // A failing refresh keeps the last good addresses.
    fake.set("lb.example.net", Err("servfail"));
    let before = fake.calls("lb.example.net");
    eventually("failed refresh", || fake.calls("lb.example.net") > before).await;
    assert_eq!(cache.get("lb.example.net"), ips(&["10.13.0.3"]));

    // Names that disappear are forgotten and no longer looked up.
    tx.send(BTreeSet::from(["bad.example.net".to_string()]))
        .unwrap();
    eventually("forget", || cache.get("lb.example.net").is_none()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let calls = fake.calls("lb.example.net");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(fake.calls("lb.example.net"), calls);

    // Dropping the sender ends the task.
    drop(tx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("resolver stops")
        .unwrap();
}

#[tokio::test]
async fn resolver_is_steady_when_nothing_changes() {
    let fake = Fake::new();
    fake.set("lb.example.net", Ok(&["10.14.0.1"]));
    let cache = Arc::new(HostCache::new());
    let feed = Feed::new();
    let (_tx, rx) = watch::channel(BTreeSet::from(["lb.example.net".to_string()]));
    let task = tokio::spawn(fake.resolver(cache.clone(), feed.clone()).run(rx));
    eventually("answer", || cache.get("lb.example.net").is_some()).await;
    let v = feed.version();
    eventually("two refreshes", || fake.calls("lb.example.net") >= 3).await;
    // Same answer on refresh: no rebuild.
    assert_eq!(feed.version(), v);
    // Not more often than the refresh interval (150 ms): at most 4 in 450 ms.
    let c = fake.calls("lb.example.net");
    tokio::time::sleep(Duration::from_millis(450)).await;
    let n = fake.calls("lb.example.net") - c;
    assert!(n <= 4, "{n} lookups");
    task.abort();
}

#[tokio::test]
async fn debounce_waits_for_quiet_but_not_forever() {
    let feed = Feed::new();
    // Quiet: returns after the quiet time.
    let t = Instant::now();
    debounce(
        &feed,
        Duration::from_millis(30),
        Duration::from_millis(1000),
    )
    .await;
    let quiet = t.elapsed();
    assert!(
        quiet >= Duration::from_millis(30) && quiet < Duration::from_millis(900),
        "{quiet:?}"
    );

    // Continuous churn: returns at the maximum.
    let churn = feed.clone();
    let bumper = tokio::spawn(async move {
        loop {
            churn.bump();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let t = Instant::now();
    debounce(&feed, Duration::from_millis(40), Duration::from_millis(200)).await;
    let busy = t.elapsed();
    bumper.abort();
    assert!(
        busy >= Duration::from_millis(200) && busy < Duration::from_secs(2),
        "{busy:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_keeps_the_snapshot_current() {
    let feed = Feed::new();
    let out = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let c = cfg(&[Kind::HTTPRoute, Kind::Ingress]);
    let task = tokio::spawn(run(c, feed.clone(), out.clone()));

    eventually("first build", || !out.load().zones.is_empty()).await;
    assert!(!out.load().synced());

    put(
        &feed,
        ObjKind::Ingress,
        "a/i",
        names("i.example.com", &["10.15.0.1"]),
    );
    // `localhost` resolves from /etc/hosts through the background resolver.
    put(
        &feed,
        ObjKind::Gateway,
        "infra/gw",
        gateway("", vec![host("localhost")]),
    );
    put(
        &feed,
        ObjKind::HTTPRoute,
        "a/r",
        route(&["r.example.com"], &[("infra", "gw")]),
    );
    sync_all(&feed);
    eventually("synced data", || {
        let s = out.load();
        s.synced() && s.exact(Kind::Ingress, "i.example.com").is_some()
    })
    .await;
    let serial = out.load().serial("example.com.");
    eventually("hostname resolved", || {
        out.load()
            .exact(Kind::HTTPRoute, "r.example.com")
            .is_some_and(|rs| addrs(&rs).iter().any(|a| a == "127.0.0.1" || a == "::1"))
    })
    .await;

    put(
        &feed,
        ObjKind::Ingress,
        "a/i",
        names("i.example.com", &["10.15.0.2"]),
    );
    eventually("update", || {
        out.load()
            .exact(Kind::Ingress, "i.example.com")
            .is_some_and(|rs| addrs(&rs) == ["10.15.0.2"])
    })
    .await;
    assert!(out.load().serial("example.com.") > serial);

    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
}

#[test]
fn hostnames_are_refreshed_at_their_ttl_within_bounds() {
    let unknown = Duration::from_secs(60);
    for (ttl, want) in [
        (None, 60),
        (Some(0), 5),
        (Some(3), 5),
        (Some(30), 30),
        (Some(299), 299),
        (Some(86_400), 300),
    ] {
        assert_eq!(
            super::refresh_after(ttl.map(Duration::from_secs), unknown),
            Duration::from_secs(want),
            "{ttl:?}"
        );
    }
}

/// hickory-resolver against a local server: the addresses and the answer's TTL come back.
#[tokio::test]
async fn hickory_lookups_carry_the_ttl() {
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record};
    use hickory_resolver::config::{NameServerConfig, ResolverConfig};
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut m = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
            m.metadata.recursion_desired = q.metadata.recursion_desired;
            m.metadata.recursion_available = true;
            m.metadata.response_code = ResponseCode::NoError;
            m.queries = q.queries.clone();
            let qq = &q.queries[0];
            if qq.query_type() == hickory_proto::rr::RecordType::A
                && qq.name().to_ascii() == "lb.example.test."
            {
                m.answers.push(Record::from_rdata(
                    qq.name().clone(),
                    42,
                    RData::A(A::new(192, 0, 2, 7)),
                ));
            }
            let _ = sock.send_to(&m.to_vec().unwrap(), from).await;
        }
    });
    let mut ns = NameServerConfig::udp("127.0.0.1".parse().unwrap());
    ns.connections[0].port = port;
    let r = hickory_resolver::TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
    )
    .build()
    .unwrap();
    let lookup = super::hickory_lookup(r);
    let (addrs, ttl) = lookup("lb.example.test.".to_string()).await.unwrap();
    assert_eq!(addrs, vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
    let ttl = ttl.unwrap();
    assert!(
        ttl <= Duration::from_secs(42) && ttl >= Duration::from_secs(40),
        "{ttl:?}"
    );
}

/// Zones for the PTR tests: one forward zone, an IPv4 and an IPv6 reverse zone.
fn reverse_cfg(kinds: &[Kind]) -> IndexConfig {
    IndexConfig {
        kinds: kinds.to_vec(),
        zones: vec![
            "example.com.".into(),
            "10.in-addr.arpa.".into(),
            "8.b.d.0.1.0.0.2.ip6.arpa.".into(),
        ],
        filters: Filters::default(),
    }
}

fn ptrs(snap: &Snapshot, key: &str) -> Option<Vec<String>> {
    snap.ptr(key).map(|o| o.to_vec())
}

#[test]
fn reverse_names_and_helpers() {
    use super::builder::reverse_name;
    assert_eq!(
        reverse_name("10.1.2.3".parse().unwrap()),
        "3.2.1.10.in-addr.arpa"
    );
    assert_eq!(
        reverse_name("::ffff:10.1.2.3".parse().unwrap()),
        "3.2.1.10.in-addr.arpa"
    );
    assert_eq!(
        reverse_name("2001:db8::1".parse().unwrap()),
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    );
    for (z, rev) in [
        ("10.in-addr.arpa", true),
        ("in-addr.arpa", true),
        ("ip6.arpa", true),
        ("8.b.d.0.1.0.0.2.ip6.arpa", true),
        ("arpa", false),
        ("example.com", false),
        ("", false),
        ("xin-addr.arpa", false),
    ] {
        assert_eq!(is_reverse_zone(z), rev, "{z}");
    }
}

#[test]
fn ptr_names_follow_the_published_addresses() {
    let feed = Feed::new();
    sync_all(&feed);
    let c = reverse_cfg(&ROUTES_FIRST);
    put(
        &feed,
        ObjKind::Gateway,
        "infra/gw",
        gateway("nginx", vec![ip("10.0.0.1")]),
    );
    put(
        &feed,
        ObjKind::HTTPRoute,
        "app/r",
        route(&["app.example.com"], &[("infra", "gw")]),
    );
    // Shadowed by the route: 10.0.0.2 is not published for app.example.com.
    put(
        &feed,
        ObjKind::Ingress,
        "app/i",
        names("app.example.com", &["10.0.0.2"]),
    );
    put(
        &feed,
        ObjKind::Ingress,
        "app/i2",
        names("ing.example.com", &["10.0.0.1", "2001:db8::1"]),
    );
    // A Service's relative key is reachable under the forward zone; an address outside every
    // reverse zone has no PTR.
    put(
        &feed,
        ObjKind::Service,
        "default/web",
        names("web.default", &["10.0.0.3", "192.168.0.1"]),
    );
    // A wildcard publishes no PTR.
    put(
        &feed,
        ObjKind::Ingress,
        "app/w",
        names("*.wild.example.com", &["10.0.0.4"]),
    );
    let index = Index::new();
    let snap = at(&index, &c, &feed, None, NOW);
    assert_eq!(
        ptrs(&snap, "1.0.0.10.in-addr.arpa"),
        Some(vec!["app.example.com".into(), "ing.example.com".into()])
    );
    assert_eq!(ptrs(&snap, "2.0.0.10.in-addr.arpa"), None);
    assert_eq!(
        ptrs(&snap, "3.0.0.10.in-addr.arpa"),
        Some(vec!["web.default.example.com".into()])
    );
    assert_eq!(ptrs(&snap, "4.0.0.10.in-addr.arpa"), None);
    assert_eq!(ptrs(&snap, "1.0.168.192.in-addr.arpa"), None);
    assert_eq!(
        ptrs(
            &snap,
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        ),
        Some(vec!["ing.example.com".into()])
    );
    assert_eq!(snap.ptr.len(), 3);
    assert!(snap.has_descendants("0.0.10.in-addr.arpa"));
    assert!(snap.has_descendants("10.in-addr.arpa"));
    let serial = snap.serial("10.in-addr.arpa.");
    let v6 = snap.serial("8.b.d.0.1.0.0.2.ip6.arpa.");

    // The running index's builder (tracking changes) is incremental.
    let mut inc = builder::Builder::new(&c, index.cache().clone(), true);
    inc.step(&feed, Some(&snap), NOW);
    assert_eq!(inc.snapshot().contents(), snap.contents());
    // The route going away uncovers the Ingress: 10.0.0.1 keeps only ing, 10.0.0.2 appears.
    put(&feed, ObjKind::HTTPRoute, "app/r", None);
    inc.step(&feed, None, NOW + 10);
    let s2 = inc.snapshot().clone();
    assert_eq!(
        ptrs(&s2, "1.0.0.10.in-addr.arpa"),
        Some(vec!["ing.example.com".into()])
    );
    assert_eq!(
        ptrs(&s2, "2.0.0.10.in-addr.arpa"),
        Some(vec!["app.example.com".into()])
    );
    assert_eq!(s2.serial("10.in-addr.arpa."), NOW + 10);
    assert_ne!(s2.serial("10.in-addr.arpa."), serial);
    assert_eq!(s2.serial("8.b.d.0.1.0.0.2.ip6.arpa."), v6);
    // Everything removed: no PTR, no empty non-terminal left.
    for (k, key) in [
        (ObjKind::Ingress, "app/i"),
        (ObjKind::Ingress, "app/i2"),
        (ObjKind::Service, "default/web"),
    ] {
        put(&feed, k, key, None);
    }
    inc.step(&feed, None, NOW + 20);
    let s3 = inc.snapshot().clone();
    assert_eq!(s3.ptr.len(), 0);
    assert!(!s3.has_descendants("0.0.10.in-addr.arpa"));
    // Incremental and full builds agree.
    let fresh = at(&Index::new(), &c, &feed, Some(&s3), NOW + 20);
    assert_eq!(fresh.contents(), s3.contents());
}

#[test]
fn no_reverse_zone_no_ptr() {
    let feed = Feed::new();
    sync_all(&feed);
    put(
        &feed,
        ObjKind::Ingress,
        "app/i",
        names("ing.example.com", &["10.0.0.1"]),
    );
    let snap = build(&cfg(&[Kind::Ingress]), &feed, None);
    assert_eq!(snap.ptr.len(), 0);
}

fn listener_gateway(addrs: &[&str], listeners: &[(&str, &str, &str)]) -> Option<Contribution> {
    Some(Contribution::Gateway {
        class: "nginx".into(),
        addrs: addrs.iter().map(|a| ip(a)).collect(),
        cname: None,
        listeners: listeners
            .iter()
            .map(|(n, p, h)| (n.to_string(), p.to_string(), h.to_string()))
            .collect(),
    })
}

fn inheriting(kind_hosts: &[&str], parents: &[(&str, &str)]) -> Option<Contribution> {
    Some(Contribution::Route {
        hostnames: kind_hosts.iter().map(|h| h.to_string()).collect(),
        parents: parents.iter().map(|(n, g)| ObjKey::new(*n, *g)).collect(),
        ttl: None,
        inherit: true,
        sections: vec![],
    })
}

#[test]
fn routes_without_hostnames_take_their_gateways_listener_hostnames() {
    let feed = Feed::new();
    sync_all(&feed);
    let kinds = [Kind::HTTPRoute, Kind::TCPRoute];
    let c = cfg(&kinds);
    put(
        &feed,
        ObjKind::Gateway,
        "infra/a",
        listener_gateway(
            &["10.9.0.1"],
            &[
                ("https", "HTTPS", "www.example.com"),
                ("apps", "HTTP", "*.apps.example.com"),
                ("db", "TCP", "db.example.com"),
            ],
        ),
    );
    put(
        &feed,
        ObjKind::Gateway,
        "infra/b",
        listener_gateway(
            &["10.9.0.2"],
            &[
                ("www", "HTTP", "www.example.com"),
                ("b", "HTTP", "b.example.com"),
            ],
        ),
    );
    // Two parents: each inherited name gets the addresses of the Gateways listing it.
    put(
        &feed,
        ObjKind::HTTPRoute,
        "app/r",
        inheriting(&[], &[("infra", "a"), ("infra", "b")]),
    );
    // An annotation name (own) gets every parent's addresses; TCP listeners only for TCPRoutes.
    put(
        &feed,
        ObjKind::TCPRoute,
        "db/pg",
        inheriting(&["pg.example.com"], &[("infra", "a")]),
    );
    let mut inc = builder::Builder::new(&c, Index::new().cache().clone(), true);
    inc.step(&feed, None, NOW);
    let snap = inc.snapshot().clone();
    let get = |s: &Snapshot, k: Kind, n: &str| s.exact(k, n).map(|rs| addrs(&rs));
    assert_eq!(
        get(&snap, Kind::HTTPRoute, "www.example.com"),
        Some(vec!["10.9.0.1".into(), "10.9.0.2".into()])
    );
    assert_eq!(
        get(&snap, Kind::HTTPRoute, "b.example.com"),
        Some(vec!["10.9.0.2".into()])
    );
    assert_eq!(
        snap.wild[Kind::HTTPRoute.index()]
            .get("apps.example.com")
            .map(|rs| addrs(rs)),
        Some(vec!["10.9.0.1".to_string()])
    );
    assert_eq!(get(&snap, Kind::HTTPRoute, "db.example.com"), None);
    assert_eq!(
        get(&snap, Kind::TCPRoute, "db.example.com"),
        Some(vec!["10.9.0.1".into()])
    );
    assert_eq!(
        get(&snap, Kind::TCPRoute, "pg.example.com"),
        Some(vec!["10.9.0.1".into()])
    );
    // The Gateway's listeners change: the route's names follow, incrementally.
    put(
        &feed,
        ObjKind::Gateway,
        "infra/b",
        listener_gateway(&["10.9.0.2"], &[("c", "HTTP", "c.example.com")]),
    );
    inc.step(&feed, None, NOW + 1);
    let s2 = inc.snapshot().clone();
    assert_eq!(get(&s2, Kind::HTTPRoute, "b.example.com"), None);
    assert_eq!(
        get(&s2, Kind::HTTPRoute, "c.example.com"),
        Some(vec!["10.9.0.2".into()])
    );
    assert_eq!(
        get(&s2, Kind::HTTPRoute, "www.example.com"),
        Some(vec!["10.9.0.1".into()])
    );
    let fresh = at(&Index::new(), &c, &feed, Some(&s2), NOW + 1);
    assert_eq!(fresh.contents(), s2.contents());
    // The route gets a hostname of its own: it no longer inherits.
    put(
        &feed,
        ObjKind::HTTPRoute,
        "app/r",
        route(&["own.example.com"], &[("infra", "a")]),
    );
    inc.step(&feed, None, NOW + 2);
    let s3 = inc.snapshot().clone();
    assert_eq!(get(&s3, Kind::HTTPRoute, "www.example.com"), None);
    assert_eq!(get(&s3, Kind::HTTPRoute, "c.example.com"), None);
    assert_eq!(
        get(&s3, Kind::HTTPRoute, "own.example.com"),
        Some(vec!["10.9.0.1".into()])
    );
    let fresh = at(&Index::new(), &c, &feed, Some(&s3), NOW + 2);
    assert_eq!(fresh.contents(), s3.contents());
}

#[test]
fn section_names_pick_the_listeners_a_route_inherits() {
    let feed = Feed::new();
    sync_all(&feed);
    let c = cfg(&[Kind::HTTPRoute]);
    put(
        &feed,
        ObjKind::Gateway,
        "infra/a",
        listener_gateway(
            &["10.9.1.1"],
            &[
                ("http", "HTTP", "plain.example.com"),
                ("https", "HTTPS", "*.example.com"),
            ],
        ),
    );
    put(
        &feed,
        ObjKind::HTTPRoute,
        "app/r",
        Some(Contribution::Route {
            hostnames: vec![],
            parents: vec![ObjKey::new("infra", "a")],
            ttl: None,
            inherit: true,
            sections: vec![(ObjKey::new("infra", "a"), "http".into())],
        }),
    );
    let snap = build(&c, &feed, None);
    assert_eq!(
        snap.exact(Kind::HTTPRoute, "plain.example.com")
            .map(|rs| addrs(&rs)),
        Some(vec!["10.9.1.1".to_string()])
    );
    assert_eq!(
        snap.names(Kind::HTTPRoute),
        1,
        "no *.example.com from https"
    );
}

fn istio_service(selector: &[(&str, &str)], addrs: Vec<Address>) -> Option<Contribution> {
    Some(Contribution::Service {
        names: vec![],
        selector: selector
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        addrs,
    })
}

fn istio_gateway(
    names: &[&str],
    servers: &[(&str, &str)],
    selector: &[(&str, &str)],
    target: Option<IstioTarget>,
) -> Option<Contribution> {
    Some(Contribution::IstioGateway {
        names: names.iter().map(|n| n.to_string()).collect(),
        servers: servers
            .iter()
            .map(|(n, h)| (n.to_string(), h.to_string()))
            .collect(),
        selector: selector
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        target,
        ttl: None,
    })
}

fn virtual_service(
    names: &[&str],
    gateways: &[(&str, &str)],
    target: Option<IstioTarget>,
) -> Option<Contribution> {
    Some(Contribution::IstioVirtualService {
        names: names.iter().map(|n| n.to_string()).collect(),
        gateways: gateways.iter().map(|(n, g)| ObjKey::new(*n, *g)).collect(),
        export_to: vec![],
        target,
        ttl: Some(45),
    })
}

/// Istio Gateways take the addresses of the Services their selector picks; VirtualServices
/// those of the Gateways they bind to for each name. Every change is followed incrementally
/// and matches a fresh build.
#[test]
fn istio_gateways_join_services_and_virtualservices_join_gateways() {
    let feed = Feed::new();
    let c = cfg(&[Kind::IstioGateway, Kind::IstioVirtualService, Kind::Service]);
    put(
        &feed,
        ObjKind::Service,
        "istio-system/ingress",
        istio_service(
            &[("istio", "ingressgateway"), ("app", "istio-ingressgateway")],
            vec![ip("10.8.0.1")],
        ),
    );
    put(
        &feed,
        ObjKind::Service,
        "istio-system/eastwest",
        istio_service(&[("istio", "eastwestgateway")], vec![ip("10.8.0.9")]),
    );
    put(
        &feed,
        ObjKind::IstioGateway,
        "istio-system/gw",
        istio_gateway(
            &["gw.example.com"],
            &[("*", "*.example.com")],
            &[("istio", "ingressgateway")],
            None,
        ),
    );
    put(
        &feed,
        ObjKind::IstioGateway,
        "apps/ann",
        istio_gateway(
            &["ann.example.com"],
            &[("*", "ann.example.com")],
            &[("istio", "ingressgateway")],
            Some(IstioTarget::Addrs(vec![ip("192.0.2.7")])),
        ),
    );
    put(
        &feed,
        ObjKind::IstioVirtualService,
        "apps/web",
        virtual_service(
            &["web.example.com", "web.example.org", "ann.example.com"],
            &[("istio-system", "gw"), ("apps", "ann"), ("apps", "missing")],
            None,
        ),
    );
    put(
        &feed,
        ObjKind::IstioVirtualService,
        "apps/cname",
        virtual_service(
            &["alias.example.com"],
            &[],
            Some(IstioTarget::Cname("lb.example.net".into())),
        ),
    );
    sync_all(&feed);
    let mut inc = builder::Builder::new(&c, Index::new().cache().clone(), true);
    inc.step(&feed, None, NOW);
    let get = |s: &Snapshot, k: Kind, n: &str| s.exact(k, n).map(|rs| addrs(&rs));
    let check = |s: &Snapshot, want: &[(Kind, &str, Option<&[&str]>)]| {
        for (k, n, w) in want {
            let w = w.map(|v| v.iter().map(|a| a.to_string()).collect::<Vec<_>>());
            assert_eq!(get(s, *k, n), w, "{k} {n}");
        }
    };
    use Kind::{IstioGateway as G, IstioVirtualService as V};
    let s1 = inc.snapshot().clone();
    check(
        &s1,
        &[
            (G, "gw.example.com", Some(&["10.8.0.1"])),
            (G, "ann.example.com", Some(&["192.0.2.7"])),
            // Bound to gw (`*.example.com`) only: ann's server is another host.
            (V, "web.example.com", Some(&["10.8.0.1"])),
            // No server host matches.
            (V, "web.example.org", None),
            // Both Gateways serve it.
            (V, "ann.example.com", Some(&["10.8.0.1", "192.0.2.7"])),
        ],
    );
    let alias = s1.exact(V, "alias.example.com").unwrap();
    assert_eq!(alias.cname, ["lb.example.net"]);
    assert_eq!(
        s1.exact(V, "web.example.com").unwrap().ttl,
        Some(45),
        "the VirtualService's TTL"
    );
    // The Service table knows nothing of these (no names of their own).
    assert_eq!(get(&s1, Kind::Service, "ingress.istio-system"), None);

    // The selected Service's addresses change; another Service starts matching.
    put(
        &feed,
        ObjKind::Service,
        "istio-system/ingress",
        istio_service(&[("istio", "ingressgateway")], vec![ip("10.8.0.2")]),
    );
    put(
        &feed,
        ObjKind::Service,
        "other/ingress2",
        istio_service(
            &[("istio", "ingressgateway"), ("x", "y")],
            vec![ip("10.8.0.3")],
        ),
    );
    inc.step(&feed, None, NOW + 1);
    let s2 = inc.snapshot().clone();
    check(
        &s2,
        &[
            (G, "gw.example.com", Some(&["10.8.0.2", "10.8.0.3"])),
            (V, "web.example.com", Some(&["10.8.0.2", "10.8.0.3"])),
            (
                V,
                "ann.example.com",
                Some(&["10.8.0.2", "10.8.0.3", "192.0.2.7"]),
            ),
        ],
    );
    assert_eq!(
        at(&Index::new(), &c, &feed, Some(&s2), NOW + 1).contents(),
        s2.contents()
    );

    // The Gateway's servers no longer take web.example.com; the missing Gateway appears.
    put(
        &feed,
        ObjKind::IstioGateway,
        "istio-system/gw",
        istio_gateway(
            &["gw.example.com"],
            &[("*", "gw.example.com"), ("*", "ann.example.com")],
            &[("istio", "ingressgateway")],
            None,
        ),
    );
    put(
        &feed,
        ObjKind::IstioGateway,
        "apps/missing",
        istio_gateway(&[], &[("apps", "*")], &[("istio", "eastwestgateway")], None),
    );
    inc.step(&feed, None, NOW + 2);
    let s3 = inc.snapshot().clone();
    check(
        &s3,
        &[
            (V, "web.example.com", Some(&["10.8.0.9"])),
            (V, "web.example.org", Some(&["10.8.0.9"])),
            (
                V,
                "ann.example.com",
                Some(&["10.8.0.2", "10.8.0.3", "10.8.0.9", "192.0.2.7"]),
            ),
        ],
    );
    assert_eq!(
        at(&Index::new(), &c, &feed, Some(&s3), NOW + 2).contents(),
        s3.contents()
    );

    // Deleting the Services and a Gateway removes what they gave.
    for s in ["istio-system/ingress", "other/ingress2"] {
        put(&feed, ObjKind::Service, s, None);
    }
    put(&feed, ObjKind::IstioGateway, "apps/missing", None);
    inc.step(&feed, None, NOW + 3);
    let s4 = inc.snapshot().clone();
    check(
        &s4,
        &[
            (G, "gw.example.com", None),
            (G, "ann.example.com", Some(&["192.0.2.7"])),
            (V, "web.example.com", None),
            (V, "web.example.org", None),
            (V, "ann.example.com", Some(&["192.0.2.7"])),
        ],
    );
    assert_eq!(
        at(&Index::new(), &c, &feed, Some(&s4), NOW + 3).contents(),
        s4.contents()
    );
}

/// With several sources, an Istio Gateway picks Services of its own source only, and a
/// VirtualService binds Gateways of its own source.
#[test]
fn istio_joins_stay_within_their_source() {
    let feed = Feed::new();
    let (a, b) = (feed.scoped("0"), feed.scoped("1"));
    let c = cfg(&[Kind::IstioGateway, Kind::IstioVirtualService]);
    for (src, ip) in [(&a, "10.7.0.1"), (&b, "10.7.0.2")] {
        put(
            src,
            ObjKind::Service,
            "istio-system/ingress",
            istio_service(&[("istio", "ingressgateway")], vec![self::ip(ip)]),
        );
    }
    put(
        &a,
        ObjKind::IstioGateway,
        "istio-system/gw",
        istio_gateway(
            &["a.example.com"],
            &[("*", "*")],
            &[("istio", "ingressgateway")],
            None,
        ),
    );
    put(
        &b,
        ObjKind::IstioVirtualService,
        "apps/web",
        virtual_service(&["web.example.com"], &[("istio-system", "gw")], None),
    );
    sync_all(&feed);
    let snap = at(&Index::new(), &c, &feed, None, NOW);
    assert_eq!(
        snap.exact(Kind::IstioGateway, "a.example.com")
            .map(|rs| addrs(&rs)),
        Some(vec!["10.7.0.1".to_string()])
    );
    // Source 1 has no Gateway `istio-system/gw`.
    assert_eq!(
        snap.exact(Kind::IstioVirtualService, "web.example.com")
            .map(|rs| addrs(&rs)),
        None
    );
}
