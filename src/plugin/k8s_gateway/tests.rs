//! The answer table of the spec, row by row, with our own data.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use super::answer::{Answer, answer};
use super::setup::{self, Settings};
use crate::dns::request::{Proto, Request};
use crate::kube::index::{IndexConfig, build};
use crate::kube::model::{Address, Contribution, Event, Filters, Kind, NameData, ObjKey, ObjKind};
use crate::kube::snapshot::Snapshot;
use crate::kube::source::Feed;

fn ip(s: &str) -> Address {
    Address::Ip(s.parse().unwrap())
}

fn names(list: &[(&str, &[&str])]) -> Contribution {
    Contribution::Names(
        list.iter()
            .map(|(n, addrs)| NameData {
                name: n.to_string(),
                addrs: addrs.iter().map(|a| ip(a)).collect(),
                ..Default::default()
            })
            .collect(),
    )
}

fn settings() -> Settings {
    Settings {
        zones: vec!["example.com.".into()],
        kinds: Kind::DEFAULT.to_vec(),
        filters: Filters::default(),
        ttl: 60,
        apex: "dns1.kube-system".into(),
        secondary: None,
        fallthrough: None,
        sources: vec![],
        soa: super::setup::DEFAULT_SOA,
    }
}

/// A small cluster covering every row of the answer table.
fn feed() -> Feed {
    let f = Feed::new();
    let k = |n: &str| ObjKey::new("ns1", n);
    f.apply(
        ObjKind::Ingress,
        Event::Replace(vec![
            (
                k("ing"),
                names(&[
                    ("ingress.example.com", &["192.0.2.1"]),
                    ("shared.example.com", &["192.0.2.4"]),
                ]),
            ),
            (
                k("ing2"),
                names(&[
                    ("shared2.example.com", &["192.0.2.5"]),
                    ("v6only.example.com", &["2001:db8::6"]),
                ]),
            ),
            (
                k("deep"),
                names(&[("a.b.deep.example.com", &["192.0.2.7"])]),
            ),
            (
                k("wild"),
                names(&[
                    ("*.wild.example.com", &["192.0.2.20"]),
                    ("exact.wild.example.com", &["192.0.2.21"]),
                ]),
            ),
            (k("apexdata"), names(&[("example.com", &["192.0.2.99"])])),
        ]),
    );
    f.apply(
        ObjKind::Service,
        Event::Replace(vec![
            (
                ObjKey::new("kube-system", "dns1"),
                names(&[("dns1.kube-system", &["192.0.2.53", "2001:db8::53"])]),
            ),
            (
                ObjKey::new("kube-system", "dns2"),
                names(&[("dns2.kube-system", &["192.0.2.54"])]),
            ),
            (k("svc1"), names(&[("svc1.ns1", &["192.0.2.2"])])),
            (
                k("annotated"),
                names(&[("shared.example.com", &["192.0.2.3"])]),
            ),
        ]),
    );
    f.apply(
        ObjKind::Gateway,
        Event::Replace(vec![
            (
                ObjKey::new("gw", "one"),
                Contribution::Gateway {
                    class: "public".into(),
                    addrs: vec![ip("192.0.2.10"), ip("2001:db8::10")],
                    cname: None,
                    listeners: vec![],
                },
            ),
            (
                ObjKey::new("gw", "two"),
                Contribution::Gateway {
                    class: "internal".into(),
                    addrs: vec![ip("192.0.2.11")],
                    cname: None,
                    listeners: vec![],
                },
            ),
        ]),
    );
    f.apply(
        ObjKind::HTTPRoute,
        Event::Replace(vec![
            (
                k("r1"),
                Contribution::Route {
                    hostnames: vec!["route.example.com".into(), "shared2.example.com".into()],
                    parents: vec![ObjKey::new("gw", "one")],
                    ttl: None,
                    inherit: false,
                    sections: vec![],
                },
            ),
            (
                k("r2"),
                Contribution::Route {
                    hostnames: vec!["both.example.com".into()],
                    parents: vec![ObjKey::new("gw", "one"), ObjKey::new("gw", "two")],
                    ttl: None,
                    inherit: false,
                    sections: vec![],
                },
            ),
            (
                k("r3"),
                Contribution::Route {
                    hostnames: vec!["orphan.example.com".into()],
                    parents: vec![ObjKey::new("gw", "missing")],
                    ttl: None,
                    inherit: false,
                    sections: vec![],
                },
            ),
        ]),
    );
    let long = "x".repeat(300);
    f.apply(
        ObjKind::DNSEndpoint,
        Event::Replace(vec![(
            k("ep"),
            Contribution::Names(vec![
                NameData {
                    name: "txt.example.com".into(),
                    txt: vec![long, "short".into()],
                    ..Default::default()
                },
                NameData {
                    name: "alias.example.com".into(),
                    cname: vec!["ingress.example.com".into()],
                    ..Default::default()
                },
                NameData {
                    name: "outside.example.com".into(),
                    cname: vec!["www.elsewhere.org".into()],
                    ..Default::default()
                },
            ]),
        )]),
    );
    for kind in ObjKind::ALL {
        f.set_synced(kind, true);
    }
    f
}

fn snapshot(s: &Settings, f: &Feed) -> Snapshot {
    build(
        &IndexConfig {
            kinds: s.kinds.clone(),
            zones: s.zones.clone(),
            filters: s.filters.clone(),
        },
        f,
        None,
    )
}

fn req(name: &str, qtype: RecordType) -> Request {
    let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let src: SocketAddr = "192.0.2.200:5353".parse().unwrap();
    Request::new(m, src, "127.0.0.1:53".parse().unwrap(), Proto::Udp, 40)
}

fn ask(s: &Settings, snap: &Snapshot, name: &str, qtype: RecordType) -> Message {
    match answer(s, snap, &req(name, qtype)) {
        Answer::Reply(m) => m,
        other => panic!("{name} {qtype}: expected a reply, got {other:?}"),
    }
}

fn addrs(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
}
fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

fn assert_authoritative(m: &Message) {
    assert!(m.metadata.authoritative, "AA set");
    assert!(!m.metadata.recursion_available, "RA never set");
}

fn assert_negative(m: &Message, rcode: ResponseCode) {
    assert_authoritative(m);
    assert_eq!(m.metadata.response_code, rcode);
    assert!(m.answers.is_empty(), "{:?}", m.answers);
    assert_eq!(m.authorities.len(), 1, "SOA in authority");
    match &m.authorities[0].data {
        RData::SOA(soa) => {
            assert_eq!(m.authorities[0].name.to_ascii(), "example.com.");
            assert_eq!(soa.mname.to_ascii(), "dns1.kube-system.example.com.");
            assert_eq!(
                soa.rname.to_ascii(),
                "hostmaster.dns1.kube-system.example.com."
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn positive_answers_are_authoritative_with_lowercased_owner_and_ttl() {
    let s = settings();
    let snap = snapshot(&s, &feed());
    let m = ask(&s, &snap, "InGress.Example.COM.", RecordType::A);
    assert_authoritative(&m);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addrs(&m), vec![v4("192.0.2.1")]);
    assert_eq!(m.answers[0].name.to_ascii(), "ingress.example.com.");
    assert_eq!(m.answers[0].ttl, 60);
    assert!(m.authorities.is_empty());
}

#[test]
fn nodata_for_the_other_family_and_other_types() {
    let s = settings();
    let snap = snapshot(&s, &feed());
    assert_negative(
        &ask(&s, &snap, "ingress.example.com.", RecordType::AAAA),
        ResponseCode::NoError,
    );
    assert_negative(
        &ask(&s, &snap, "v6only.example.com.", RecordType::A),
        ResponseCode::NoError,
    );
    assert_eq!(
        addrs(&ask(&s, &snap, "v6only.example.com.", RecordType::AAAA)),
        vec![v6("2001:db8::6")]
    );
    // exdns correction: TXT (or MX…) of an existing name without that type is NODATA.
    assert_negative(
        &ask(&s, &snap, "ingress.example.com.", RecordType::TXT),
        ResponseCode::NoError,
    );
    assert_negative(
        &ask(&s, &snap, "ingress.example.com.", RecordType::MX),
        ResponseCode::NoError,
    );
    // SOA below the apex: NODATA with SOA in authority (exdns correction).
    assert_negative(
        &ask(&s, &snap, "ingress.example.com.", RecordType::SOA),
        ResponseCode::NoError,
    );
}

#[test]
fn nxdomain_for_every_type_of_a_missing_name() {
    let s = settings();
    let snap = snapshot(&s, &feed());
    for t in [
        RecordType::A,
        RecordType::AAAA,
        RecordType::TXT,
        RecordType::MX,
        RecordType::SRV,
        RecordType::SOA,
    ] {
        assert_negative(
            &ask(&s, &snap, "nope.example.com.", t),
            ResponseCode::NXDomain,
        );
    }
}

#[test]
fn empty_non_terminals_are_nodata() {
    let s = settings();
    let snap = snapshot(&s, &feed());
    assert_negative(
        &ask(&s, &snap, "b.deep.example.com.", RecordType::A),
        ResponseCode::NoError,
    );
    assert_negative(
        &ask(&s, &snap, "deep.example.com.", RecordType::A),
        ResponseCode::NoError,
    );
    // Service keys are zone-relative: `ns1` holds `svc1.ns1`.
    assert_negative(
        &ask(&s, &snap, "ns1.example.com.", RecordType::A),
        ResponseCode::NoError,
    );
    assert_negative(
        &ask(&s, &snap, "c.b.deep.example.com.", RecordType::A),
        ResponseCode::NXDomain,
    );
}

#[test]
fn apex_soa_ns_and_glue() {
    let s = settings();
    let f = feed();
    let snap = snapshot(&s, &f);
    let m = ask(&s, &snap, "example.com.", RecordType::SOA);
    assert_authoritative(&m);
    assert_eq!(m.answers.len(), 1);
    let RData::SOA(soa) = &m.answers[0].data else {
        panic!()
    };
    assert_eq!(
        (soa.refresh, soa.retry, soa.expire, soa.minimum),
        (14_400, 3_600, 1_209_600, 60)
    );
    assert_eq!(m.answers[0].ttl, 60);
    assert_eq!(soa.serial, snap.serial("example.com."));

    let m = ask(&s, &snap, "example.com.", RecordType::NS);
    assert_authoritative(&m);
    let ns: Vec<String> = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::NS(n) => n.0.to_ascii(),
            o => panic!("{o:?}"),
        })
        .collect();
    assert_eq!(ns, vec!["dns1.kube-system.example.com."]);
    let glue: Vec<(String, IpAddr)> = m
        .additionals
        .iter()
        .map(|r| {
            let ip = match &r.data {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                o => panic!("{o:?}"),
            };
            (r.name.to_ascii(), ip)
        })
        .collect();
    assert_eq!(
        glue,
        vec![
            (
                "dns1.kube-system.example.com.".to_string(),
                v4("192.0.2.53")
            ),
            (
                "dns1.kube-system.example.com.".to_string(),
                v6("2001:db8::53")
            ),
        ],
        "A and AAAA glue (exdns correction)"
    );
    // The apex's own data (an Ingress for example.com).
    assert_eq!(
        addrs(&ask(&s, &snap, "example.com.", RecordType::A)),
        vec![v4("192.0.2.99")]
    );
    assert_negative(
        &ask(&s, &snap, "example.com.", RecordType::TXT),
        ResponseCode::NoError,
    );
}

#[test]
fn dual_deployment_ns_and_glue_from_both() {
    let mut s = settings();
    s.secondary = Some("dns2.kube-system".into());
    let snap = snapshot(&s, &feed());
    let m = ask(&s, &snap, "example.com.", RecordType::NS);
    assert_eq!(m.answers.len(), 2);
    let owners: Vec<String> = m.additionals.iter().map(|r| r.name.to_ascii()).collect();
    assert!(
        owners.contains(&"dns2.kube-system.example.com.".to_string()),
        "{owners:?}"
    );
    // The secondary's own name goes through the normal lookup.
    assert_eq!(
        addrs(&ask(
            &s,
            &snap,
            "dns2.kube-system.example.com.",
            RecordType::A
        )),
        vec![v4("192.0.2.54")]
    );
}

#[test]
fn apex_self_addresses_for_any_apex_and_nothing_below() {
    let s = settings();
    let snap = snapshot(&s, &feed());
    assert_eq!(
        addrs(&ask(
            &s,
            &snap,
            "dns1.kube-system.example.com.",
            RecordType::A
        )),
        vec![v4("192.0.2.53")]
    );
    assert_eq!(
        addrs(&ask(
            &s,
            &snap,
            "dns1.kube-system.example.com.",
            RecordType::AAAA
        )),
        vec![v6("2001:db8::53")]
    );
    assert_negative(
        &ask(&s, &snap, "x.dns1.kube-system.example.com.", RecordType::A),
        ResponseCode::NXDomain,
    );
    // A three-label apex works too (fork#191).
    let mut s3 = settings();
    s3.apex = "dns1.edge.kube-system".into();
    let f = feed();
    f.apply(
        ObjKind::Service,
        Event::Apply(
            ObjKey::new("kube-system", "edge"),
            Some(names(&[("dns1.edge.kube-system", &["192.0.2.60"])])),
        ),
    );
    let snap = snapshot(&s3, &f);
    assert_eq!(
        addrs(&ask(
            &s3,
            &snap,
            "dns1.edge.kube-system.example.com.",
            RecordType::A
        )),
        vec![v4("192.0.2.60")]
    );
}

#[test]
fn precedence_routes_then_ingress_then_service() {
    let s = settings();
    let snap = snapshot(&s, &feed());
    assert_eq!(
        addrs(&ask(&s, &snap, "shared.example.com.", RecordType::A)),
        vec![v4("192.0.2.4")],
        "Ingress beats Service"
    );
    assert_eq!(
        addrs(&ask(&s, &snap, "shared2.example.com.", RecordType::A)),
        vec![v4("192.0.2.10")],
        "routes beat Ingress"
    );
    assert_eq!(
        addrs(&ask(&s, &snap, "svc1.ns1.example.com.", RecordType::A)),
        vec![v4("192.0.2.2")],
        "name.namespace"
    );
    // With `resources Service Ingress` the order flips.
    let mut s2 = settings();
    s2.kinds = vec![Kind::Service, Kind::Ingress];
    let snap = snapshot(&s2, &feed());
    assert_eq!(
        addrs(&ask(&s2, &snap, "shared.example.com.", RecordType::A)),
        vec![v4("192.0.2.3")]
    );
}

#[test]
fn routes_through_their_gateways() {
    let s = settings();
    let snap = snapshot(&s, &feed());
    let mut got = addrs(&ask(&s, &snap, "both.example.com.", RecordType::A));
    got.sort();
    assert_eq!(
        got,
        vec![v4("192.0.2.10"), v4("192.0.2.11")],
        "two parents: both Gateways"
    );
    assert_eq!(
        addrs(&ask(&s, &snap, "route.example.com.", RecordType::AAAA)),
        vec![v6("2001:db8::10")]
    );
    assert_negative(
        &ask(&s, &snap, "orphan.example.com.", RecordType::A),
        ResponseCode::NXDomain,
    );
}

#[test]
fn wildcards_cover_one_label_and_exact_wins() {
    let s = settings();
    let snap = snapshot(&s, &feed());
    assert_eq!(
        addrs(&ask(&s, &snap, "anything.wild.example.com.", RecordType::A)),
        vec![v4("192.0.2.20")]
    );
    let m = ask(&s, &snap, "anything.wild.example.com.", RecordType::A);
    assert_eq!(
        m.answers[0].name.to_ascii(),
        "anything.wild.example.com.",
        "owner is the qname"
    );
    assert_eq!(
        addrs(&ask(&s, &snap, "exact.wild.example.com.", RecordType::A)),
        vec![v4("192.0.2.21")]
    );
    assert_negative(
        &ask(&s, &snap, "a.b.wild.example.com.", RecordType::A),
        ResponseCode::NXDomain,
    );
}

#[test]
fn txt_is_split_into_255_byte_strings() {
    let s = settings();
    let snap = snapshot(&s, &feed());
    let m = ask(&s, &snap, "txt.example.com.", RecordType::TXT);
    assert_eq!(m.answers.len(), 2);
    let lens: Vec<Vec<usize>> = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::TXT(t) => t.txt_data.iter().map(|b| b.len()).collect(),
            o => panic!("{o:?}"),
        })
        .collect();
    assert!(lens.contains(&vec![255, 45]), "{lens:?}");
    assert!(lens.contains(&vec![5]), "{lens:?}");
}

#[test]
fn cname_from_dnsendpoint_is_answered_and_chased_inside_the_zone() {
    let s = settings();
    let snap = snapshot(&s, &feed());
    let m = ask(&s, &snap, "alias.example.com.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        matches!(&m.answers[0].data, RData::CNAME(c) if c.0.to_ascii() == "ingress.example.com.")
    );
    assert_eq!(addrs(&m), vec![v4("192.0.2.1")]);
    let m = ask(&s, &snap, "alias.example.com.", RecordType::CNAME);
    assert_eq!(m.answers.len(), 1);
    // A target outside our zones is left for the resolver.
    let m = ask(&s, &snap, "outside.example.com.", RecordType::A);
    assert_eq!(m.answers.len(), 1);
    assert!(matches!(&m.answers[0].data, RData::CNAME(_)));
}

#[test]
fn any_is_answered_minimally() {
    let s = settings();
    let snap = snapshot(&s, &feed());
    let m = ask(&s, &snap, "ingress.example.com.", RecordType::ANY);
    assert_eq!(m.answers.len(), 1);
    assert!(matches!(&m.answers[0].data, RData::HINFO(_)));
    assert_negative(
        &ask(&s, &snap, "nope.example.com.", RecordType::ANY),
        ResponseCode::NXDomain,
    );
}

#[test]
fn servfail_before_the_first_sync() {
    let s = settings();
    let f = feed();
    f.set_synced(ObjKind::HTTPRoute, false);
    let snap = snapshot(&s, &f);
    assert!(matches!(
        answer(&s, &snap, &req("ingress.example.com.", RecordType::A)),
        Answer::Code(ResponseCode::ServFail)
    ));
}

#[test]
fn other_zones_classes_and_fallthrough_go_to_next() {
    let mut s = settings();
    let snap = snapshot(&s, &feed());
    assert!(matches!(
        answer(&s, &snap, &req("www.example.org.", RecordType::A)),
        Answer::Next
    ));
    let mut ch = req("ingress.example.com.", RecordType::TXT);
    ch.msg.queries[0].set_query_class(DNSClass::CH);
    assert!(matches!(answer(&s, &snap, &ch), Answer::Next));
    s.fallthrough = Some(vec!["example.com.".into()]);
    assert!(matches!(
        answer(&s, &snap, &req("nope.example.com.", RecordType::A)),
        Answer::Next
    ));
    // Existing names and empty non-terminals are still answered.
    assert_negative(
        &ask(&s, &snap, "deep.example.com.", RecordType::A),
        ResponseCode::NoError,
    );
    // Fallthrough limited to a sub zone.
    s.fallthrough = Some(vec!["sub.example.com.".into()]);
    assert!(matches!(
        answer(&s, &snap, &req("x.sub.example.com.", RecordType::A)),
        Answer::Next
    ));
    assert_negative(
        &ask(&s, &snap, "nope.example.com.", RecordType::A),
        ResponseCode::NXDomain,
    );
}

#[test]
fn serial_changes_with_content_and_agrees_between_instances() {
    let s = settings();
    let f = feed();
    let a = snapshot(&s, &f);
    let b = snapshot(&s, &feed());
    assert_eq!(
        a.serial("example.com."),
        b.serial("example.com."),
        "same data, same serial"
    );
    let cfg = IndexConfig {
        kinds: s.kinds.clone(),
        zones: s.zones.clone(),
        filters: s.filters.clone(),
    };
    let same = build(&cfg, &f, Some(&a));
    assert_eq!(same.serial("example.com."), a.serial("example.com."));
    f.apply(
        ObjKind::Ingress,
        Event::Apply(
            ObjKey::new("ns1", "new"),
            Some(names(&[("new.example.com", &["192.0.2.77"])])),
        ),
    );
    let changed = build(&cfg, &f, Some(&a));
    assert!(changed.serial("example.com.") > a.serial("example.com."));
}

fn parse(text: &str) -> Result<Settings, String> {
    let toks = crate::corefile::tokenize(text, &std::sync::Arc::from("Corefile"));
    let mut d = crate::corefile::Dispenser::new(toks);
    setup::parse(&mut d, &["example.com.".to_string()]).map_err(|e| e.to_string())
}

#[test]
fn setup_options() {
    let s = parse("k8s_gateway").unwrap();
    assert_eq!(s.zones, vec!["example.com."]);
    assert_eq!(s.kinds, Kind::DEFAULT.to_vec());
    assert_eq!((s.ttl, s.apex.as_str()), (60, "dns1.kube-system"));
    assert_eq!(
        s.sources,
        vec![setup::SourceSpec::Kube {
            kubeconfig: None,
            context: None
        }]
    );
    let s = parse(
        "k8s_gateway Example.ORG other.org {\n resources Ingress service\n ttl 30\n apex exdns.dns\n secondary exdns2.dns\n ingressClasses nginx\n gatewayClasses public\n serviceLabelSelectors \"app=x\" \"tier in (a,b)\"\n fallthrough\n nodeAddressType ExternalIP\n hostnameAsCNAME\n kubeconfig /a/kc ctx\n kubeconfig /b/kc\n manifests /m\n}",
    )
    .unwrap();
    assert_eq!(s.zones, vec!["example.org.", "other.org."]);
    assert_eq!(s.kinds, vec![Kind::Ingress, Kind::Service]);
    assert_eq!(
        (s.ttl, s.apex.as_str(), s.secondary.as_deref()),
        (30, "exdns.dns", Some("exdns2.dns"))
    );
    assert_eq!(
        s.filters.service_label_selectors,
        vec!["app=x", "tier in (a,b)"]
    );
    assert_eq!(
        s.fallthrough,
        Some(vec!["example.org.".into(), "other.org.".into()])
    );
    assert_eq!(s.sources.len(), 3);
    assert!(s.filters.hostname_as_cname);
    assert!(!parse("k8s_gateway").unwrap().filters.hostname_as_cname);
}

#[test]
fn setup_errors() {
    for (text, want) in [
        (
            "k8s_gateway {\n resources\n}",
            "Corefile:2 - Error during parsing: resources needs at least one kind",
        ),
        ("k8s_gateway {\n resources Pod\n}", "unknown resource 'Pod'"),
        (
            "k8s_gateway {\n ttl 3601\n}",
            "ttl must be in range [0, 3600]: 3601",
        ),
        (
            "k8s_gateway {\n ttl -1\n}",
            "ttl must be in range [0, 3600]: -1",
        ),
        ("k8s_gateway {\n ttl abc\n}", "ttl must be a number"),
        (
            "k8s_gateway {\n bogus\n}",
            "Corefile:2 - Error during parsing: unknown property 'bogus'",
        ),
        ("k8s_gateway {\n apex\n}", "Wrong argument count"),
        (
            "k8s_gateway {\n hostnameAsCNAME yes\n}",
            "Wrong argument count",
        ),
        (
            "k8s_gateway {\n nodeAddressType Foo\n}",
            "nodeAddressType must be InternalIP or ExternalIP",
        ),
        (
            "k8s_gateway {\n apex bad..name\n}",
            "invalid name 'bad..name'",
        ),
    ] {
        let e = parse(text).unwrap_err();
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

/// The fast path (`answer_fast`) gives exactly the bytes the full path sends (`answer` then the
/// server's `encode_reply`), for every name of the table, several types, the client's case,
/// EDNS sizes and DO, over UDP and TCP; and it answers every name with addresses of the asked
/// family that has no CNAME.
#[test]
fn fast_answers_are_the_full_paths_bytes() {
    use hickory_proto::op::Edns;

    use crate::dns::reply::encode_reply;
    use crate::dns::view::with_view;

    let s = settings();
    let snap = snapshot(&s, &feed());
    let names = [
        "ingress.example.com.",
        "InGreSS.Example.COM.",
        "shared.example.com.",
        "shared2.example.com.",
        "v6only.example.com.",
        "a.b.deep.example.com.",
        "b.deep.example.com.",
        "x.wild.example.com.",
        "X.Wild.example.com.",
        "exact.wild.example.com.",
        "example.com.",
        "dns1.example.com.",
        "x.dns1.example.com.",
        "missing.example.com.",
        "route.example.com.",
        "both.example.com.",
        "orphan.example.com.",
        "txt.example.com.",
        "alias.example.com.",
        "outside.example.com.",
        "www.elsewhere.org.",
    ];
    let (mut fast, mut total) = (0, 0);
    for name in names {
        for qtype in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::TXT,
            RecordType::MX,
        ] {
            for edns in [
                None,
                Some((1232, false)),
                Some((4096, true)),
                Some((512, false)),
            ] {
                for proto in [Proto::Udp, Proto::Tcp] {
                    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
                    m.metadata.recursion_desired = true;
                    m.metadata.checking_disabled = edns.is_some_and(|e| e.1);
                    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
                    if let Some((size, dnssec_ok)) = edns {
                        let mut e = Edns::new();
                        e.set_max_payload(size);
                        e.set_dnssec_ok(dnssec_ok);
                        m.edns = Some(e);
                    }
                    let buf = m.to_vec().unwrap();
                    let src: SocketAddr = "192.0.2.200:5353".parse().unwrap();
                    let req = Request::new(
                        Message::from_vec(&buf).unwrap(),
                        src,
                        "127.0.0.1:53".parse().unwrap(),
                        proto,
                        buf.len(),
                    );
                    let full = match answer(&s, &snap, &req) {
                        Answer::Reply(msg) => Some(encode_reply(&req, msg)),
                        _ => None,
                    };
                    let got = with_view(&buf, proto, |q| super::answer::answer_fast(&s, &snap, q))
                        .expect("the common shape");
                    total += 1;
                    let positive = full.as_ref().is_some_and(|b| {
                        let r = Message::from_vec(b).unwrap();
                        r.metadata.response_code == ResponseCode::NoError
                            && !r.answers.is_empty()
                            && r.answers.iter().all(|a| a.record_type() == qtype)
                            && matches!(qtype, RecordType::A | RecordType::AAAA)
                    });
                    match got {
                        Some(bytes) => {
                            fast += 1;
                            assert_eq!(
                                Some(&bytes),
                                full.as_ref(),
                                "{name} {qtype} {edns:?} {proto:?}"
                            );
                        }
                        None => assert!(!positive, "{name} {qtype} {edns:?}: answered fast"),
                    }
                }
            }
        }
    }
    assert!(fast >= 80, "{fast} of {total} answered fast");
}

/// [`feed`] plus objects with their own TTLs (the ExternalDNS `…/ttl` annotation, resolved by
/// the index): an Ingress name, a route, a CNAME (an ExternalName Service) into our own zone,
/// and the apex's own Service.
fn ttl_feed() -> Feed {
    let f = feed();
    let nd = |name: &str, addrs: &[&str], cname: &[&str], ttl: u32| NameData {
        name: name.into(),
        addrs: addrs.iter().map(|a| ip(a)).collect(),
        cname: cname.iter().map(|c| c.to_string()).collect(),
        ttl: Some(ttl),
        ..Default::default()
    };
    f.apply(
        ObjKind::Ingress,
        Event::Apply(
            ObjKey::new("ns1", "ttl"),
            Some(Contribution::Names(vec![nd(
                "ttl.example.com",
                &["192.0.2.30", "2001:db8::30"],
                &[],
                300,
            )])),
        ),
    );
    f.apply(
        ObjKind::HTTPRoute,
        Event::Apply(
            ObjKey::new("ns1", "zero"),
            Some(Contribution::Route {
                hostnames: vec!["zero.example.com".into()],
                parents: vec![ObjKey::new("gw", "one")],
                ttl: Some(0),
                inherit: false,
                sections: vec![],
            }),
        ),
    );
    f.apply(
        ObjKind::Service,
        Event::Apply(
            ObjKey::new("ns1", "db"),
            Some(Contribution::Names(vec![nd(
                "db.ns1",
                &[],
                &["ttl.example.com"],
                30,
            )])),
        ),
    );
    f.apply(
        ObjKind::Service,
        Event::Apply(
            ObjKey::new("kube-system", "dns1"),
            Some(Contribution::Names(vec![nd(
                "dns1.kube-system",
                &["192.0.2.53", "2001:db8::53"],
                &[],
                120,
            )])),
        ),
    );
    f
}

/// Every record of the answer as `name ttl type`, in order.
fn ttls(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.ttl, r.record_type()))
        .collect()
}

#[test]
fn per_object_ttls_on_the_full_path() {
    let s = settings();
    let snap = snapshot(&s, &ttl_feed());
    let rows: &[(&str, RecordType, &[&str])] = &[
        (
            "ttl.example.com.",
            RecordType::A,
            &["ttl.example.com. 300 A"],
        ),
        (
            "TTL.example.com.",
            RecordType::AAAA,
            &["ttl.example.com. 300 AAAA"],
        ),
        (
            "zero.example.com.",
            RecordType::A,
            &["zero.example.com. 0 A"],
        ),
        (
            "zero.example.com.",
            RecordType::AAAA,
            &["zero.example.com. 0 AAAA"],
        ),
        // The CNAME with its own TTL, the chased target with the target's.
        (
            "db.ns1.example.com.",
            RecordType::A,
            &["db.ns1.example.com. 30 CNAME", "ttl.example.com. 300 A"],
        ),
        (
            "db.ns1.example.com.",
            RecordType::CNAME,
            &["db.ns1.example.com. 30 CNAME"],
        ),
        // The apex's own Service.
        (
            "dns1.kube-system.example.com.",
            RecordType::A,
            &["dns1.kube-system.example.com. 120 A"],
        ),
        // Names without one keep the directive's.
        (
            "ingress.example.com.",
            RecordType::A,
            &["ingress.example.com. 60 A"],
        ),
        (
            "route.example.com.",
            RecordType::A,
            &["route.example.com. 60 A"],
        ),
    ];
    for (name, qtype, want) in rows {
        let m = ask(&s, &snap, name, *qtype);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert_eq!(ttls(&m.answers), *want, "{name} {qtype}");
    }
    // Glue carries the apex Service's TTL; the NS records the directive's.
    let m = ask(&s, &snap, "example.com.", RecordType::NS);
    assert_eq!(ttls(&m.answers), ["example.com. 60 NS"]);
    assert_eq!(
        ttls(&m.additionals),
        [
            "dns1.kube-system.example.com. 120 A",
            "dns1.kube-system.example.com. 120 AAAA"
        ]
    );
}

/// The fast path reads the same TTL as the full path: the bytes are identical and the TTLs
/// the object's.
#[test]
fn per_object_ttls_on_the_fast_path() {
    use crate::dns::reply::encode_reply;
    use crate::dns::view::with_view;

    let s = settings();
    let snap = snapshot(&s, &ttl_feed());
    let rows: &[(&str, RecordType, u32)] = &[
        ("ttl.example.com.", RecordType::A, 300),
        ("ttl.example.com.", RecordType::AAAA, 300),
        ("zero.example.com.", RecordType::A, 0),
        ("dns1.kube-system.example.com.", RecordType::AAAA, 120),
        ("ingress.example.com.", RecordType::A, 60),
    ];
    for (name, qtype, ttl) in rows {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), *qtype));
        let buf = m.to_vec().unwrap();
        let req = Request::new(
            Message::from_vec(&buf).unwrap(),
            "192.0.2.200:5353".parse().unwrap(),
            "127.0.0.1:53".parse().unwrap(),
            Proto::Udp,
            buf.len(),
        );
        let full = match answer(&s, &snap, &req) {
            Answer::Reply(msg) => encode_reply(&req, msg),
            other => panic!("{other:?}"),
        };
        let fast = with_view(&buf, Proto::Udp, |q| {
            super::answer::answer_fast(&s, &snap, q)
        })
        .expect("the common shape")
        .expect("answered fast");
        assert_eq!(fast, full, "{name} {qtype}");
        let r = Message::from_vec(&fast).unwrap();
        assert!(!r.answers.is_empty());
        assert!(r.answers.iter().all(|a| a.ttl == *ttl), "{name}: {r:?}");
    }
    // A CNAME never takes the fast path.
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii("db.ns1.example.com.").unwrap(),
        RecordType::A,
    ));
    let buf = m.to_vec().unwrap();
    assert_eq!(
        with_view(&buf, Proto::Udp, |q| super::answer::answer_fast(
            &s, &snap, q
        ))
        .expect("the common shape"),
        None
    );
}

fn reverse_settings() -> Settings {
    let mut s = settings();
    s.zones = vec![
        "example.com.".into(),
        "2.0.192.in-addr.arpa.".into(),
        "8.b.d.0.1.0.0.2.ip6.arpa.".into(),
    ];
    s
}

fn ptr_targets(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| match &r.data {
            RData::PTR(p) => format!("{} {} {}", r.name.to_ascii(), r.ttl, p.0.to_ascii()),
            o => panic!("{o:?}"),
        })
        .collect()
}

fn assert_reverse_negative(m: &Message, rcode: ResponseCode, zone: &str) {
    assert_authoritative(m);
    assert_eq!(m.metadata.response_code, rcode);
    assert!(m.answers.is_empty(), "{:?}", m.answers);
    assert_eq!(m.authorities.len(), 1, "SOA in authority");
    assert_eq!(m.authorities[0].name.to_ascii(), zone);
    match &m.authorities[0].data {
        RData::SOA(soa) => {
            assert_eq!(soa.mname.to_ascii(), format!("dns1.kube-system.{zone}"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ptr_answers_in_reverse_zones() {
    let s = reverse_settings();
    let snap = snapshot(&s, &feed());
    // Several names → several PTRs, sorted; the route shadows the Ingress for shared2.
    let m = ask(&s, &snap, "10.2.0.192.IN-ADDR.ARPA.", RecordType::PTR);
    assert_authoritative(&m);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        ptr_targets(&m),
        vec![
            "10.2.0.192.in-addr.arpa. 60 both.example.com.",
            "10.2.0.192.in-addr.arpa. 60 route.example.com.",
            "10.2.0.192.in-addr.arpa. 60 shared2.example.com.",
        ]
    );
    assert!(m.authorities.is_empty());
    for (q, want) in [
        ("1.2.0.192.in-addr.arpa.", "ingress.example.com."),
        ("2.2.0.192.in-addr.arpa.", "svc1.ns1.example.com."),
        ("53.2.0.192.in-addr.arpa.", "dns1.kube-system.example.com."),
        ("99.2.0.192.in-addr.arpa.", "example.com."),
        ("21.2.0.192.in-addr.arpa.", "exact.wild.example.com."),
        (
            "6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
            "v6only.example.com.",
        ),
    ] {
        let m = ask(&s, &snap, q, RecordType::PTR);
        assert_eq!(ptr_targets(&m), vec![format!("{q} 60 {want}")], "{q}");
    }
    // Shadowed (5), wildcard-only (20) and unknown addresses: NXDOMAIN with the reverse SOA.
    for q in [
        "5.2.0.192.in-addr.arpa.",
        "20.2.0.192.in-addr.arpa.",
        "200.2.0.192.in-addr.arpa.",
    ] {
        assert_reverse_negative(
            &ask(&s, &snap, q, RecordType::PTR),
            ResponseCode::NXDomain,
            "2.0.192.in-addr.arpa.",
        );
    }
    // Another type of a PTR name: NODATA; ANY: the RFC 8482 HINFO.
    assert_reverse_negative(
        &ask(&s, &snap, "1.2.0.192.in-addr.arpa.", RecordType::A),
        ResponseCode::NoError,
        "2.0.192.in-addr.arpa.",
    );
    let m = ask(&s, &snap, "1.2.0.192.in-addr.arpa.", RecordType::ANY);
    assert!(matches!(m.answers[0].data, RData::HINFO(_)));
    // An empty non-terminal of the IPv6 zone: NODATA.
    assert_reverse_negative(
        &ask(&s, &snap, "0.8.b.d.0.1.0.0.2.ip6.arpa.", RecordType::PTR),
        ResponseCode::NoError,
        "8.b.d.0.1.0.0.2.ip6.arpa.",
    );
    // Forward names under the reverse zone do not exist there.
    assert_reverse_negative(
        &ask(&s, &snap, "svc1.ns1.2.0.192.in-addr.arpa.", RecordType::A),
        ResponseCode::NXDomain,
        "2.0.192.in-addr.arpa.",
    );
    // SOA and NS at the reverse apex, as in forward zones.
    let m = ask(&s, &snap, "2.0.192.in-addr.arpa.", RecordType::SOA);
    let RData::SOA(soa) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(soa.serial, snap.serial("2.0.192.in-addr.arpa."));
    assert_eq!(m.answers[0].name.to_ascii(), "2.0.192.in-addr.arpa.");
    let m = ask(&s, &snap, "2.0.192.in-addr.arpa.", RecordType::NS);
    let ns: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(ns, vec!["dns1.kube-system.2.0.192.in-addr.arpa."]);
    assert_eq!(
        addrs(&Message::from_vec(&m.to_vec().unwrap()).unwrap()).len(),
        0
    );
    assert_eq!(m.additionals.len(), 2, "A and AAAA glue");
    assert_reverse_negative(
        &ask(&s, &snap, "2.0.192.in-addr.arpa.", RecordType::PTR),
        ResponseCode::NoError,
        "2.0.192.in-addr.arpa.",
    );
    // The forward zone answers as before; PTR there is NODATA.
    assert_eq!(
        addrs(&ask(&s, &snap, "ingress.example.com.", RecordType::A)),
        vec![v4("192.0.2.1")]
    );
    assert_negative(
        &ask(&s, &snap, "ingress.example.com.", RecordType::PTR),
        ResponseCode::NoError,
    );
}

#[test]
fn reverse_zones_transfer_their_ptrs() {
    let s = reverse_settings();
    let snap = snapshot(&s, &feed());
    let p = super::answer::Prepared::new(&s);
    let recs = super::answer::zone_records(&s, &p, &snap, "8.b.d.0.1.0.0.2.ip6.arpa.").unwrap();
    let lines: Vec<String> = recs
        .iter()
        .map(|r| format!("{} {} {}", r.name.to_ascii(), r.record_type(), r.data))
        .collect();
    let rev = |n: &str| format!("{n}.{}8.b.d.0.1.0.0.2.ip6.arpa.", "0.".repeat(22));
    let soa = format!(
        "8.b.d.0.1.0.0.2.ip6.arpa. SOA dns1.kube-system.8.b.d.0.1.0.0.2.ip6.arpa. \
         hostmaster.dns1.kube-system.8.b.d.0.1.0.0.2.ip6.arpa. {} 14400 3600 1209600 60",
        snap.serial("8.b.d.0.1.0.0.2.ip6.arpa.")
    );
    assert_eq!(
        lines,
        vec![
            soa,
            "8.b.d.0.1.0.0.2.ip6.arpa. NS dns1.kube-system.8.b.d.0.1.0.0.2.ip6.arpa.".into(),
            format!("{} PTR both.example.com.", rev("0.1")),
            format!("{} PTR route.example.com.", rev("0.1")),
            format!("{} PTR shared2.example.com.", rev("0.1")),
            format!("{} PTR dns1.kube-system.example.com.", rev("3.5")),
            format!("{} PTR v6only.example.com.", rev("6.0")),
            "dns1.kube-system.8.b.d.0.1.0.0.2.ip6.arpa. A 192.0.2.53".into(),
            "dns1.kube-system.8.b.d.0.1.0.0.2.ip6.arpa. AAAA 2001:db8::53".into(),
        ]
    );
    // The forward zone's transfer is unchanged by the reverse zones.
    let fwd = super::answer::zone_records(&s, &p, &snap, "example.com.").unwrap();
    assert!(fwd.iter().all(|r| r.record_type() != RecordType::PTR));
}
