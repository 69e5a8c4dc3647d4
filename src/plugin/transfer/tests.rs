use std::net::SocketAddr;
use std::str::FromStr;

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::{A, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record};

use super::journal::Journals;
use super::setup::{parse, parse_to_for_tests};
use super::*;
use crate::plugin::SetupCtx;
use crate::plugin::config::BlockConfig;
use crate::plugin::test_chain::block_with;

fn parsed(zones: &[&str], text: &str) -> Result<Vec<Xfr>, String> {
    let block = block_with(zones, text);
    let mut config = BlockConfig::default();
    let ctx = SetupCtx {
        block: &block,
        config: &mut config,
    };
    let mut d = block.directives[0].dispenser();
    parse(&mut d, &ctx)
        .map(|t| t.expect("first occurrence").xfrs)
        .map_err(|e| e.to_string())
}

fn addr(s: &str) -> To {
    To::Addr(SocketAddr::from_str(s).unwrap())
}

/// CoreDNS's TestParse, plus exdns's networks in `to`.
#[test]
fn parse_table() {
    let got = parsed(
        &["."],
        "transfer example.net example.org {\n to 1.2.3.4 5.6.7.8:1053 [1::2]:34 [fe80::1%eth0]:53\n source 2001:db8::53\n}\n\
         transfer example.com example.edu {\n to * 1.2.3.4\n}",
    )
    .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].zones, ["example.net.", "example.org."]);
    assert_eq!(
        got[0].to,
        [
            addr("1.2.3.4:53"),
            addr("5.6.7.8:1053"),
            addr("[1::2]:34"),
            addr("[fe80::1]:53")
        ]
    );
    assert_eq!(got[0].source, Some("2001:db8::53".parse().unwrap()));
    assert_eq!(got[1].zones, ["example.com.", "example.edu."]);
    assert_eq!(got[1].to, [To::Any, addr("1.2.3.4:53")]);
    assert_eq!(got[1].source, None);

    let got = parsed(
        &["."],
        "transfer {\n to 1.2.3.4 5.6.7.8:1053 [1::2]:34\n to 10.0.0.0/8\n}",
    )
    .unwrap();
    assert_eq!(got[0].zones, ["."]);
    assert_eq!(
        got[0].to,
        [
            addr("1.2.3.4:53"),
            addr("5.6.7.8:1053"),
            addr("[1::2]:34"),
            To::Net("10.0.0.0/8".parse().unwrap())
        ]
    );
    // Zones default to the block's.
    let got = parsed(&["example.org."], "transfer {\n to *\n}").unwrap();
    assert_eq!(got[0].zones, ["example.org."]);
}

#[test]
fn parse_errors() {
    let p = "Corefile:2 - Error during parsing: ";
    for (text, want) in [
        ("transfer example.net {\n}", format!("{p}'to' is required")),
        (
            "transfer example.net",
            "Corefile:1 - Error during parsing: 'to' is required".to_string(),
        ),
        (
            "transfer example.net {\n invalid option\n}",
            format!("{p}unknown property 'invalid'"),
        ),
        (
            "transfer example.net {\n to 1.2.3.4\n source example.org\n}",
            "Corefile:3 - Error during parsing: invalid source address \"example.org\"".to_string(),
        ),
        (
            "transfer example.net {\n to 1.2.3.4\n source 192.0.2.53\n source 2001:db8::53\n}",
            "Corefile:4 - Error during parsing: source already specified".to_string(),
        ),
        (
            "transfer example.com {\n to example.com 1.2.3.4\n}",
            format!("{p}must specify an IP address: `example.com'"),
        ),
        (
            "transfer example.com {\n to\n}",
            format!("{p}Wrong argument count or unexpected line ending after 'to'"),
        ),
    ] {
        assert_eq!(parsed(&["."], text).unwrap_err(), want, "{text}");
    }
}

#[test]
fn to_allows_addresses_networks_and_anyone() {
    let ip = |s: &str| s.parse().unwrap();
    assert!(To::Any.allows(ip("203.0.113.1")));
    let a = parse_to_for_tests("192.0.2.1").unwrap();
    assert!(a.allows(ip("192.0.2.1")));
    assert!(a.allows(ip("::ffff:192.0.2.1")), "v4-mapped peers are IPv4");
    assert!(!a.allows(ip("192.0.2.2")));
    let n = parse_to_for_tests("198.51.100.7/24").unwrap();
    assert_eq!(n, To::Net("198.51.100.0/24".parse().unwrap()));
    assert!(n.allows(ip("198.51.100.200")));
    assert!(!n.allows(ip("198.51.101.1")));
}

#[test]
fn serial_arithmetic() {
    for (a, b, lt) in [
        (1, 2, true),
        (2, 1, false),
        (5, 5, false),
        (u32::MAX, 0, true),
        (0x8000_0000, 0, false),
        (1, 0x8000_0000, true),
    ] {
        assert_eq!(serial_lt(a, b), lt, "{a} < {b}");
    }
}

fn soa(serial: u32) -> Record {
    let n = Name::from_ascii("example.com.").unwrap();
    Record::from_rdata(
        n.clone(),
        60,
        RData::SOA(SOA::new(n.clone(), n, serial, 1, 1, 1, 60)),
    )
}

fn a(name: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(
        Name::from_ascii(name).unwrap(),
        60,
        RData::A(A(std::net::Ipv4Addr::from(ip))),
    )
}

#[test]
fn journal_diffs_versions_and_chains_them() {
    let j = Journals::default();
    let z = "example.com.";
    let v1 = vec![
        soa(10),
        a("a.example.com.", [192, 0, 2, 1]),
        a("b.example.com.", [192, 0, 2, 2]),
    ];
    assert!(j.observe(z, &v1));
    assert!(!j.observe(z, &v1), "same serial: nothing new");
    assert!(j.since(z, 9, 10).is_none(), "never seen");
    let v2 = vec![
        soa(11),
        a("a.example.com.", [192, 0, 2, 1]),
        a("c.example.com.", [192, 0, 2, 3]),
    ];
    assert!(j.observe(z, &v2));
    let d = j.since(z, 10, 11).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].removed, vec![a("b.example.com.", [192, 0, 2, 2])]);
    assert_eq!(d[0].added, vec![a("c.example.com.", [192, 0, 2, 3])]);
    // A TTL change is a removal and an addition.
    let mut v3 = v2.clone();
    v3[0] = soa(12);
    v3[1].ttl = 30;
    assert!(j.observe(z, &v3));
    let d = j.since(z, 10, 12).unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[1].removed.len(), 1);
    assert_eq!(d[1].added[0].ttl, 30);
    assert_eq!(j.since(z, 11, 12).unwrap().len(), 1);
    // Asked for a version the journal is not at: the whole zone.
    assert!(j.since(z, 10, 13).is_none());
    // The serial went back (a restarted source): the journal starts over.
    assert!(j.observe(z, &[soa(5), a("a.example.com.", [192, 0, 2, 1])]));
    assert!(j.since(z, 12, 5).is_none());
}

#[test]
fn journal_keeps_at_most_the_zone_size() {
    let j = Journals::default();
    let z = "example.com.";
    // Each version replaces 600 records: beyond 1024 journaled records the oldest go.
    let version = |s: u32| -> Vec<Record> {
        let mut v = vec![soa(s)];
        v.extend((0..600u32).map(|i| {
            a(
                &format!("h{i}.example.com."),
                [10, s as u8, (i >> 8) as u8, i as u8],
            )
        }));
        v
    };
    for s in 1..=4 {
        j.observe(z, &version(s));
    }
    assert!(j.since(z, 3, 4).is_some());
    assert!(
        j.since(z, 1, 4).is_none(),
        "too old: a full transfer is cheaper"
    );
}

#[test]
fn pack_splits_below_the_batch_size_and_keeps_order() {
    let mut t = Message::new(7, MessageType::Response, OpCode::Query);
    t.metadata.authoritative = true;
    let big = "x".repeat(250);
    let mut rrs = vec![soa(1)];
    for i in 0..2000 {
        rrs.push(Record::from_rdata(
            Name::from_ascii(format!("t{i}.example.com.")).unwrap(),
            60,
            RData::TXT(TXT::new(vec![big.clone()])),
        ));
    }
    rrs.push(soa(1));
    let msgs: Vec<Vec<u8>> = pack(&t, rrs.clone()).collect();
    assert!(msgs.len() >= 8, "{} messages", msgs.len());
    let mut back = Vec::new();
    for m in &msgs {
        assert!(m.len() <= BATCH_BYTES + 512, "{}", m.len());
        let m = Message::from_vec(m).unwrap();
        assert_eq!(m.metadata.id, 7);
        back.extend(m.answers);
    }
    assert_eq!(back, rrs);
}
