use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use super::*;
use crate::dns::request::Proto;
use crate::plugin::test_chain::{
    self, NextMarker, query, reply_of, request_from, setup_block, setup_err, setup_in,
};

fn ch_request(name: &str, qtype: RecordType, class: DNSClass) -> Request {
    let mut m = query(name, qtype);
    m.queries[0].set_query_class(class);
    request_from(m, "10.0.0.1:40000", Proto::Udp)
}

fn txts(out: Outcome) -> Vec<Vec<u8>> {
    let m = reply_of(out);
    m.answers
        .iter()
        .map(|rr| match &rr.data {
            RData::TXT(t) => {
                assert_eq!(t.txt_data.len(), 1, "one string per record");
                t.txt_data[0].to_vec()
            }
            other => panic!("not a TXT: {other:?}"),
        })
        .collect()
}

fn chaos(version: &str, authors: &[&str]) -> Chaos {
    Chaos {
        version: version.to_string(),
        authors: authors.iter().map(|a| a.to_string()).collect(),
    }
}

/// CoreDNS's TestChaos table, then the other names, classes and types.
#[tokio::test]
async fn answers_table() {
    let c = chaos("CoreDNS-001", &["Miek Gieben"]);
    let host = hostname().into_bytes();
    // (qname, qtype, qclass, answered by chaos, the TXT strings)
    type Case = (&'static str, RecordType, DNSClass, bool, Vec<Vec<u8>>);
    let cases: Vec<Case> = vec![
        (
            "version.bind.",
            RecordType::TXT,
            DNSClass::CH,
            true,
            vec![b"CoreDNS-001".to_vec()],
        ),
        (
            "authors.bind.",
            RecordType::TXT,
            DNSClass::CH,
            true,
            vec![b"Miek Gieben".to_vec()],
        ),
        (
            "authors.bind.",
            RecordType::SRV,
            DNSClass::CH,
            false,
            vec![],
        ),
        (
            "version.server.",
            RecordType::TXT,
            DNSClass::CH,
            true,
            vec![b"CoreDNS-001".to_vec()],
        ),
        (
            "hostname.bind.",
            RecordType::TXT,
            DNSClass::CH,
            true,
            vec![host.clone()],
        ),
        (
            "id.server.",
            RecordType::TXT,
            DNSClass::CH,
            true,
            vec![host],
        ),
        (
            "VERSION.Bind.",
            RecordType::TXT,
            DNSClass::CH,
            true,
            vec![b"CoreDNS-001".to_vec()],
        ),
        (
            "version.bind.",
            RecordType::TXT,
            DNSClass::IN,
            false,
            vec![],
        ),
        (
            "version.bind.",
            RecordType::TXT,
            DNSClass::HS,
            false,
            vec![],
        ),
        ("version.bind.", RecordType::A, DNSClass::CH, false, vec![]),
        (
            "version.bind.",
            RecordType::ANY,
            DNSClass::CH,
            false,
            vec![],
        ),
        (
            "x.version.bind.",
            RecordType::TXT,
            DNSClass::CH,
            false,
            vec![],
        ),
        ("bind.", RecordType::TXT, DNSClass::CH, false, vec![]),
        ("example.org.", RecordType::TXT, DNSClass::CH, false, vec![]),
    ];
    for (name, qtype, class, answered, want) in cases {
        let req = ch_request(name, qtype, class);
        let rest: Vec<Arc<dyn Plugin>> = vec![Arc::new(NextMarker)];
        let out = test_chain::serve(&c, &req, &rest).await;
        if !answered {
            assert_eq!(out.plugin(), "next", "{name} {qtype} {class}");
            continue;
        }
        assert_eq!(out.plugin(), "chaos", "{name}");
        let m = reply_of(out.dup());
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.metadata.id, 4242);
        assert!(
            !m.metadata.authoritative,
            "CoreDNS's SetReply leaves AA clear"
        );
        assert!(m.metadata.recursion_desired);
        assert!(!m.metadata.recursion_available);
        assert_eq!(m.queries, req.msg.queries);
        for rr in &m.answers {
            assert!(
                rr.name.eq_case(&Name::from_ascii(name).unwrap()),
                "owner as sent"
            );
            assert_eq!(rr.ttl, 0);
            assert_eq!(rr.dns_class, DNSClass::CH);
            assert_eq!(rr.record_type(), RecordType::TXT);
        }
        assert!(m.authorities.is_empty() && m.additionals.is_empty());
        assert_eq!(txts(out), want, "{name}");
    }
}

#[tokio::test]
async fn authors_come_in_a_random_order() {
    let names: Vec<String> = (0..8).map(|i| format!("author{i}")).collect();
    let c = Chaos {
        version: "v".into(),
        authors: names.clone(),
    };
    let want: Vec<Vec<u8>> = names.iter().map(|n| n.clone().into_bytes()).collect();
    let mut orders = std::collections::HashSet::new();
    for _ in 0..40 {
        let req = ch_request("authors.bind.", RecordType::TXT, DNSClass::CH);
        let got = txts(c.serve(&req, Next::new(&[])).await);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, want, "every author once");
        orders.insert(got);
    }
    assert!(orders.len() > 1, "shuffled (8! orders, 40 draws)");
    // No authors: an empty NOERROR answer.
    let c = chaos("v", &[]);
    let req = ch_request("authors.bind.", RecordType::TXT, DNSClass::CH);
    let out = c.serve(&req, Next::new(&[])).await;
    assert_eq!(out.rcode(), Some(ResponseCode::NoError));
    assert!(txts(out).is_empty());
}

#[tokio::test]
async fn strings_are_cut_to_255_bytes() {
    let long = "v".repeat(300);
    let c = chaos(&long, &[&"a".repeat(256)]);
    for (name, want) in [("version.bind.", 255), ("authors.bind.", 255)] {
        let req = ch_request(name, RecordType::TXT, DNSClass::CH);
        let got = txts(c.serve(&req, Next::new(&[])).await);
        assert_eq!(got[0].len(), want, "{name}");
    }
    // A multi-byte character cut in the middle: the bytes as Go's s[:255] leaves them.
    let s = format!("{}é", "x".repeat(254));
    assert_eq!(trim(&s).len(), 255);
    assert_eq!(trim(&s)[254], 0xc3);
    assert_eq!(trim("short"), b"short");
}

#[test]
fn setup_table() {
    // CoreDNS's TestSetupChaos table and the defaults: (input, version, authors).
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        ("chaos", default_version(), default_authors()),
        ("chaos v2", "v2".into(), default_authors()),
        (
            "chaos v3 \"Miek Gieben\"",
            "v3".into(),
            vec!["Miek Gieben".into()],
        ),
        (
            "chaos CoreDNS-001 z@example.org a@example.org z@example.org",
            "CoreDNS-001".into(),
            vec!["a@example.org".into(), "z@example.org".into()],
        ),
        ("chaos v4 {\n}", "v4".into(), default_authors()),
    ];
    for (input, version, authors) in cases {
        let p = setup_in(setup, input, &["."]).unwrap().unwrap();
        assert_eq!(p.name(), "chaos");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let req = ch_request("version.bind.", RecordType::TXT, DNSClass::CH);
        let got = txts(rt.block_on(p.serve(&req, Next::new(&[]))));
        assert_eq!(got, vec![version.into_bytes()], "{input}");
        let req = ch_request("authors.bind.", RecordType::TXT, DNSClass::CH);
        let mut got = txts(rt.block_on(p.serve(&req, Next::new(&[]))));
        got.sort();
        let want: Vec<Vec<u8>> = authors.into_iter().map(String::into_bytes).collect();
        assert_eq!(got, want, "{input}");
    }
    assert_eq!(
        default_version(),
        format!("exdns-{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        setup_err(setup, "chaos v2 {\n    unknown\n}"),
        "Corefile:2 - Error during parsing: unknown property 'unknown'"
    );
}

/// As CoreDNS, only a block's first `chaos` line is read.
#[tokio::test]
async fn only_the_first_line_counts() {
    for text in ["chaos v1\nchaos v2", "chaos v1\nchaos v2 {\n    unknown\n}"] {
        let handlers = setup_block(setup, &["."], text).unwrap();
        assert_eq!(handlers.len(), 1, "{text}");
        let req = ch_request("version.bind.", RecordType::TXT, DNSClass::CH);
        let got = txts(handlers[0].serve(&req, Next::new(&[])).await);
        assert_eq!(got, vec![b"v1".to_vec()], "{text}");
    }
}

#[test]
fn directive_is_registered_in_coredns_order() {
    let at = |n| crate::plugin::order_of(n).unwrap();
    assert!(
        at("any") + 1 == at("chaos") && at("chaos") + 1 == at("loadbalance"),
        "CoreDNS plugin.cfg: any, chaos, loadbalance"
    );
    assert!(!crate::plugin::directive("chaos").unwrap().once);
}
