use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RecordType};

use super::setup::parse;
use super::*;
use crate::corefile::ParseError;
use crate::dns::request::{Outcome, Proto, Request};
use crate::plugin::config::BlockConfig;
use crate::plugin::test_chain::{NextMarker, block_with};
use crate::plugin::{Next, Plugin, SetupCtx};

// ---- helpers ----

/// Runs `acl`'s setup for every directive of the block, as the server does.
fn setup_all(zones: &[&str], text: &str) -> Result<Vec<Arc<dyn Plugin>>, ParseError> {
    let b = block_with(zones, text);
    let mut config = BlockConfig::default();
    let mut out = Vec::new();
    for dir in &b.directives {
        let mut ctx = SetupCtx {
            block: &b,
            config: &mut config,
        };
        if let Some(p) = setup(&mut dir.dispenser(), &mut ctx)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// The parsed handler for the block's first directive.
fn parse_first(zones: &[&str], text: &str) -> Result<Option<Acl>, ParseError> {
    let b = block_with(zones, text);
    let mut config = BlockConfig::default();
    let ctx = SetupCtx {
        block: &b,
        config: &mut config,
    };
    parse(&mut b.directives[0].dispenser(), &ctx)
}

fn err(zones: &[&str], text: &str) -> String {
    match setup_all(zones, text) {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(e) => e.to_string(),
    }
}

fn query(name: &str, qtype: RecordType, src: &str, edns: bool) -> Request {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.queries
        .push(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.edns = Some(e);
    }
    let src: IpAddr = src.parse().unwrap();
    let mut r = Request::new(
        m,
        SocketAddr::new(src, 40000),
        "127.0.0.1:53".parse().unwrap(),
        Proto::Udp,
        40,
    );
    r.server = Arc::from("dns://:53");
    r.zone = Arc::from("example.org.");
    r
}

/// Serves `req` through `chain` followed by the marker.
async fn run(chain: &[Arc<dyn Plugin>], req: &Request) -> Outcome {
    let mut all: Vec<Arc<dyn Plugin>> = chain.to_vec();
    all.push(Arc::new(NextMarker));
    let (first, rest) = all.split_first().unwrap();
    first.serve(req, Next::new(rest)).await
}

fn ede_codes(m: &Message) -> Vec<Vec<u8>> {
    m.edns
        .as_ref()
        .map(|e| {
            e.options()
                .as_ref()
                .iter()
                .filter(|(c, _)| *c == EdnsCode::Unknown(EDE_OPTION))
                .map(|(_, o)| match o {
                    EdnsOption::Unknown(15, data) => data.clone(),
                    other => panic!("unexpected option {other:?}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---- setup ----

#[test]
fn parses_actions_types_and_sources() {
    let acl = parse_first(
        &["example.org."],
        "acl {\n block type A AAAA net 192.168.0.0/16 10.0.0.1 2001:db8::/32\n allow\n FILTER NET * TYPE *\n drop type MX\n}",
    )
    .unwrap()
    .unwrap();
    assert_eq!(acl.rules.len(), 1);
    let r = &acl.rules[0];
    assert_eq!(r.zones, vec!["example.org."]);
    assert_eq!(r.policies.len(), 4);

    let p = &r.policies[0];
    assert_eq!(p.action, Action::Block);
    assert_eq!(p.qtypes, Some(vec![1, 28]));
    assert_eq!(
        p.sources.v4,
        vec![(0x0a00_0001, 0x0a00_0001), (0xc0a8_0000, 0xc0a8_ffff)]
    );
    assert_eq!(
        p.sources.v6,
        vec![(
            0x2001_0db8_0000_0000_0000_0000_0000_0000,
            0x2001_0db8_ffff_ffff_ffff_ffff_ffff_ffff
        )]
    );

    assert_eq!(r.policies[1].action, Action::Allow);
    assert_eq!(r.policies[1].qtypes, None);
    assert_eq!(r.policies[1].sources, IpSet::any());

    assert_eq!(r.policies[2].action, Action::Filter);
    assert_eq!(r.policies[2].qtypes, None);
    assert_eq!(r.policies[2].sources, IpSet::any());

    assert_eq!(r.policies[3].action, Action::Drop);
    assert_eq!(r.policies[3].qtypes, Some(vec![15]));
    assert_eq!(r.policies[3].sources, IpSet::any());
}

#[test]
fn explicit_zones_are_normalized() {
    let acl = parse_first(
        &["example.org."],
        "acl Example.NET dns://a.example.org.:1053 10.0.0.0/8 {\n block\n}",
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        acl.rules[0].zones,
        vec!["example.net.", "a.example.org.", "10.in-addr.arpa."]
    );
}

#[test]
fn occurrences_merge_into_one_handler() {
    let plugins = setup_all(
        &["example.org."],
        "acl {\n allow net 10.0.0.0/8\n}\nacl {\n block\n}",
    )
    .unwrap();
    assert_eq!(plugins.len(), 1, "later occurrences add no handler");
    let acl = parse_first(
        &["example.org."],
        "acl {\n allow net 10.0.0.0/8\n}\nacl {\n block\n}",
    )
    .unwrap()
    .unwrap();
    assert_eq!(acl.rules.len(), 2);
    assert_eq!(acl.rules[1].policies[0].action, Action::Block);
}

#[test]
fn setup_errors_are_worded_like_coredns() {
    let z = &["example.org."];
    assert_eq!(
        err(z, "acl {\n deny net 10.0.0.0/8\n}"),
        "Corefile:2 - Error during parsing: unexpected token \"deny\"; expect 'allow', 'block', 'filter' or 'drop'"
    );
    assert_eq!(
        err(z, "acl {\n block type\n}"),
        "Corefile:2 - Error during parsing: no token specified in \"type\" section"
    );
    assert_eq!(
        err(z, "acl {\n block net 10.0.0.0/8 type\n}"),
        "Corefile:2 - Error during parsing: no token specified in \"type\" section"
    );
    assert_eq!(
        err(z, "acl {\n block type FOO\n}"),
        "Corefile:2 - Error during parsing: unexpected token \"FOO\"; expect legal QTYPE"
    );
    assert_eq!(
        err(z, "acl {\n block type a\n}"),
        "Corefile:2 - Error during parsing: unexpected token \"a\"; expect legal QTYPE"
    );
    assert_eq!(
        err(z, "acl {\n block net 300.0.0.1\n}"),
        "Corefile:2 - Error during parsing: illegal CIDR notation \"300.0.0.1/32\""
    );
    assert_eq!(
        err(z, "acl {\n block net 10.0.0.0/40\n}"),
        "Corefile:2 - Error during parsing: illegal CIDR notation \"10.0.0.0/40\""
    );
    assert_eq!(
        err(z, "acl {\n block from 10.0.0.0/8\n}"),
        "Corefile:2 - Error during parsing: unexpected token \"from\"; expect 'type | net'"
    );
    assert_eq!(
        err(z, "acl 10.0.0.0/99 {\n block\n}"),
        "Corefile:1 - Error during parsing: invalid zone '10.0.0.0/99': not a valid CIDR"
    );
    // An error in a later occurrence is reported with its own line.
    assert_eq!(
        err(z, "acl {\n allow\n}\nacl {\n block net nope\n}"),
        "Corefile:5 - Error during parsing: illegal CIDR notation \"nope/32\""
    );
}

#[test]
fn ip_set_lookups() {
    let set = IpSet::from_nets(&[
        "10.0.0.0/8".parse().unwrap(),
        "10.1.0.0/16".parse().unwrap(),
        "192.168.1.7/32".parse().unwrap(),
        "fd00::/8".parse().unwrap(),
    ]);
    assert_eq!(
        set.v4,
        vec![(0x0a00_0000, 0x0aff_ffff), (0xc0a8_0107, 0xc0a8_0107)]
    );
    let has = |s: &str| set.contains(s.parse().unwrap());
    assert!(has("10.0.0.0"));
    assert!(has("10.255.255.255"));
    assert!(!has("11.0.0.0"));
    assert!(!has("9.255.255.255"));
    assert!(has("192.168.1.7"));
    assert!(!has("192.168.1.8"));
    assert!(!has("192.168.1.6"));
    assert!(
        has("::ffff:10.2.3.4"),
        "IPv4-mapped addresses match IPv4 networks"
    );
    assert!(has("fd12::1"));
    assert!(!has("fe80::1"));
    assert!(IpSet::any().contains("::".parse().unwrap()));
    assert!(IpSet::any().contains("255.255.255.255".parse().unwrap()));
}

// ---- serving ----

const RULES: &str = "acl {
    allow net 192.168.1.0/24
    block net 192.168.0.0/16
    filter type AAAA net 10.0.0.0/8
    drop type TXT net 2001:db8::/32 10.1.1.1
}
acl other.example.org {
    block
}";

#[derive(Debug)]
enum Want {
    Next,
    Refused,
    Filtered,
    Dropped,
}

#[tokio::test]
async fn serve_table() {
    let chain = setup_all(&["example.org."], RULES).unwrap();
    assert_eq!(chain.len(), 1);
    let cases: &[(&str, RecordType, &str, bool, Want)] = &[
        (
            "www.example.org.",
            RecordType::A,
            "192.168.1.5",
            false,
            Want::Next,
        ),
        (
            "www.example.org.",
            RecordType::A,
            "192.168.2.5",
            false,
            Want::Refused,
        ),
        (
            "www.example.org.",
            RecordType::A,
            "192.168.2.5",
            true,
            Want::Refused,
        ),
        (
            "WWW.Example.ORG.",
            RecordType::MX,
            "::ffff:192.168.2.5",
            false,
            Want::Refused,
        ),
        (
            "www.example.org.",
            RecordType::AAAA,
            "10.2.3.4",
            false,
            Want::Filtered,
        ),
        (
            "www.example.org.",
            RecordType::AAAA,
            "10.2.3.4",
            true,
            Want::Filtered,
        ),
        (
            "www.example.org.",
            RecordType::A,
            "10.2.3.4",
            false,
            Want::Next,
        ),
        (
            "www.example.org.",
            RecordType::TXT,
            "2001:db8::53",
            false,
            Want::Dropped,
        ),
        (
            "www.example.org.",
            RecordType::TXT,
            "10.1.1.1",
            false,
            Want::Dropped,
        ),
        (
            "www.example.org.",
            RecordType::TXT,
            "10.1.1.2",
            false,
            Want::Next,
        ),
        (
            "www.example.org.",
            RecordType::A,
            "2001:db9::1",
            false,
            Want::Next,
        ),
        // Outside the rule's zones: passed on whatever the source.
        (
            "www.example.com.",
            RecordType::A,
            "192.168.2.5",
            false,
            Want::Next,
        ),
        // Second occurrence blocks everyone for its zone...
        (
            "a.other.example.org.",
            RecordType::A,
            "8.8.8.8",
            false,
            Want::Refused,
        ),
        // ...but an allow in an earlier occurrence ends the evaluation (CoreDNS semantics).
        (
            "a.other.example.org.",
            RecordType::A,
            "192.168.1.9",
            false,
            Want::Next,
        ),
    ];
    for (name, qtype, src, edns, want) in cases {
        let req = query(name, *qtype, src, *edns);
        let out = run(&chain, &req).await;
        let ctx = format!("{name} {qtype} from {src} edns={edns}: {want:?}");
        match want {
            Want::Next => assert_eq!(out.plugin(), "next", "{ctx}"),
            Want::Dropped => {
                assert!(
                    matches!(out, Outcome::Drop { plugin: "acl" }),
                    "{ctx}: {out:?}"
                )
            }
            Want::Refused | Want::Filtered => {
                let Outcome::Reply { msg, plugin } = out else {
                    panic!("{ctx}: expected a reply, got {out:?}");
                };
                assert_eq!(plugin, "acl", "{ctx}");
                let (rcode, code) = match want {
                    Want::Refused => (ResponseCode::Refused, EDE_BLOCKED),
                    _ => (ResponseCode::NoError, EDE_FILTERED),
                };
                assert_eq!(msg.metadata.response_code, rcode, "{ctx}");
                assert_eq!(msg.metadata.id, 0x4242, "{ctx}");
                assert_eq!(msg.metadata.message_type, MessageType::Response, "{ctx}");
                assert!(msg.metadata.recursion_desired, "{ctx}");
                assert!(!msg.metadata.authoritative, "{ctx}");
                assert_eq!(msg.queries, req.msg.queries, "{ctx}: question echoed");
                assert!(msg.answers.is_empty(), "{ctx}");
                assert!(msg.authorities.is_empty(), "{ctx}");
                assert!(msg.additionals.is_empty(), "{ctx}");
                if *edns {
                    assert_eq!(ede_codes(&msg), vec![code.to_be_bytes().to_vec()], "{ctx}");
                    assert_eq!(msg.edns.as_ref().unwrap().max_payload(), 1232, "{ctx}");
                } else {
                    assert!(
                        msg.edns.is_none(),
                        "{ctx}: no OPT without EDNS in the query"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn ede_is_encoded_on_the_wire() {
    let chain = setup_all(&["example.org."], "acl {\n block\n}").unwrap();
    let req = query("x.example.org.", RecordType::A, "192.0.2.1", true);
    let Outcome::Reply { msg, .. } = run(&chain, &req).await else {
        panic!("expected a reply");
    };
    let wire = msg.to_vec().unwrap();
    let back = Message::from_vec(&wire).unwrap();
    assert_eq!(back.metadata.response_code, ResponseCode::Refused);
    assert_eq!(ede_codes(&back), vec![vec![0, 15]]);
}

#[tokio::test]
async fn metrics_count_decisions() {
    let chain = setup_all(
        &["example.org."],
        "acl {\n block net 10.0.0.1\n filter net 10.0.0.2\n drop net 10.0.0.3\n}",
    )
    .unwrap();
    let server = "dns://acl-metrics-test:53";
    for src in ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"] {
        let mut req = query("www.example.org.", RecordType::A, src, false);
        req.server = Arc::from(server);
        run(&chain, &req).await;
    }
    let z = "example.org.";
    assert_eq!(BLOCKED.with_label_values(&[server, z, ""]).get(), 2);
    assert_eq!(FILTERED.with_label_values(&[server, z, ""]).get(), 1);
    assert_eq!(DROPPED.with_label_values(&[server, z, ""]).get(), 1);
    assert_eq!(ALLOWED.with_label_values(&[server, ""]).get(), 1);
    let text = crate::metrics::gather_text();
    assert!(text.contains(
        "coredns_acl_blocked_requests_total{server=\"dns://acl-metrics-test:53\",view=\"\",zone=\"example.org.\"} 2"
    ));
}
