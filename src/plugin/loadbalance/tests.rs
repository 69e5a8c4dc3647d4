use std::collections::HashSet;
use std::sync::Arc;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::plugin::test_chain::{self, Fixed, reply_of, request, setup_err, setup_in};

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}
fn a(ip: &str) -> Record {
    Record::from_rdata(n("www.example.org."), 60, RData::A(A(ip.parse().unwrap())))
}
fn aaaa(ip: &str) -> Record {
    Record::from_rdata(
        n("www.example.org."),
        60,
        RData::AAAA(AAAA(ip.parse().unwrap())),
    )
}
fn cname(t: &str) -> Record {
    Record::from_rdata(n("alias.example.org."), 60, RData::CNAME(CNAME(n(t))))
}
fn mx(p: u16) -> Record {
    Record::from_rdata(
        n("example.org."),
        60,
        RData::MX(MX::new(p, n("mail.example.org."))),
    )
}
fn txt(s: &str) -> Record {
    Record::from_rdata(
        n("example.org."),
        60,
        RData::TXT(TXT::new(vec![s.to_string()])),
    )
}
fn ns(s: &str) -> Record {
    Record::from_rdata(n("example.org."), 60, RData::NS(NS(n(s))))
}

/// A short text form of a section, e.g. "CNAME:a. A:1.1.1.1".
fn show(rs: &[Record]) -> Vec<String> {
    rs.iter()
        .map(|r| format!("{}:{}", r.record_type(), r.data))
        .collect()
}

#[test]
fn groups_cname_rest_addresses_mx() {
    // Input mixes everything; output groups are fixed, the order inside A/AAAA and MX varies.
    let input = vec![
        a("192.0.2.1"),
        mx(10),
        cname("b.example.org."),
        txt("t1"),
        aaaa("2001:db8::1"),
        cname("c.example.org."),
        a("192.0.2.2"),
        ns("ns1.example.org."),
        mx(20),
    ];
    let mut seen_addr_orders = HashSet::new();
    for seed in 0..64 {
        let mut rs = input.clone();
        round_robin(&mut rs, &mut StdRng::seed_from_u64(seed));
        let s = show(&rs);
        assert_eq!(
            s[..4],
            [
                "CNAME:b.example.org.",
                "CNAME:c.example.org.",
                "TXT:t1",
                "NS:ns1.example.org."
            ]
            .map(String::from),
            "{s:?}"
        );
        let addrs: HashSet<_> = s[4..7].iter().cloned().collect();
        assert_eq!(
            addrs,
            ["A:192.0.2.1", "AAAA:2001:db8::1", "A:192.0.2.2"]
                .map(String::from)
                .into_iter()
                .collect()
        );
        let mxs: HashSet<_> = s[7..].iter().cloned().collect();
        assert_eq!(mxs.len(), 2);
        assert!(mxs.iter().all(|m| m.starts_with("MX:")));
        seen_addr_orders.insert(s[4..7].to_vec());
    }
    // 3 addresses have 6 orders; 64 seeded runs see more than one of them.
    assert!(seen_addr_orders.len() > 1, "{seen_addr_orders:?}");
}

#[test]
fn single_record_and_empty_unchanged() {
    let mut one = vec![cname("x.example.org.")];
    round_robin(&mut one, &mut StdRng::seed_from_u64(1));
    assert_eq!(show(&one), ["CNAME:x.example.org."]);
    let mut none: Vec<Record> = vec![];
    round_robin(&mut none, &mut StdRng::seed_from_u64(1));
    assert!(none.is_empty());
}

fn reply_with(rcode: ResponseCode) -> Arc<Fixed> {
    Fixed::reply(move |m| {
        m.metadata.response_code = rcode;
        m.answers = vec![
            a("192.0.2.1"),
            a("192.0.2.2"),
            a("192.0.2.3"),
            cname("z.example.org."),
        ];
        m.additionals = vec![aaaa("2001:db8::1"), txt("glue")];
    })
}

#[tokio::test]
async fn serve_shuffles_noerror_replies_only() {
    // (rcode, qtype, shuffled)
    let cases = [
        (ResponseCode::NoError, RecordType::A, true),
        (ResponseCode::NXDomain, RecordType::A, false),
        (ResponseCode::ServFail, RecordType::A, false),
        (ResponseCode::NoError, RecordType::AXFR, false),
        (ResponseCode::NoError, RecordType::IXFR, false),
    ];
    for (rcode, qtype, shuffled) in cases {
        let next = reply_with(rcode);
        let rest: Vec<Arc<dyn Plugin>> = vec![next.clone()];
        let req = request("www.example.org.", qtype);
        let mut orders = HashSet::new();
        for _ in 0..40 {
            let out = test_chain::serve(&LoadBalance, &req, &rest).await;
            assert_eq!(out.plugin(), "fixed");
            let m: Message = reply_of(out);
            assert_eq!(m.metadata.response_code, rcode);
            let s = show(&m.answers);
            if shuffled {
                assert_eq!(s[0], "CNAME:z.example.org.");
                // Additional section: other records before addresses.
                assert_eq!(show(&m.additionals), ["TXT:glue", "AAAA:2001:db8::1"]);
            } else {
                assert_eq!(
                    s,
                    [
                        "A:192.0.2.1",
                        "A:192.0.2.2",
                        "A:192.0.2.3",
                        "CNAME:z.example.org."
                    ]
                );
                assert_eq!(show(&m.additionals), ["AAAA:2001:db8::1", "TXT:glue"]);
            }
            orders.insert(s);
        }
        assert_eq!(orders.len() > 1, shuffled, "{rcode:?} {qtype}");
    }
}

#[tokio::test]
async fn code_and_drop_pass_through() {
    let rest: Vec<Arc<dyn Plugin>> = vec![Fixed::new(|_| {
        Outcome::code(ResponseCode::Refused, "fixed")
    })];
    let out = test_chain::serve(&LoadBalance, &request("a.", RecordType::A), &rest).await;
    assert!(matches!(
        out,
        Outcome::Code {
            rcode: ResponseCode::Refused,
            plugin: "fixed"
        }
    ));
    let rest: Vec<Arc<dyn Plugin>> = vec![Fixed::new(|_| Outcome::Drop { plugin: "fixed" })];
    let out = test_chain::serve(&LoadBalance, &request("a.", RecordType::A), &rest).await;
    assert!(matches!(out, Outcome::Drop { plugin: "fixed" }));
}

#[test]
fn setup_policies() {
    for ok in ["loadbalance", "loadbalance round_robin"] {
        let p = setup_in(setup, ok, &["."]).unwrap().unwrap();
        assert_eq!(p.name(), "loadbalance");
    }
    let cases = [
        (
            "loadbalance weighted db.example.weights",
            "Corefile:1 - Error during parsing: policy 'weighted' is not supported by exdns; use 'round_robin' (the default)",
        ),
        (
            "loadbalance round_robin extra",
            "Corefile:1 - Error during parsing: unknown property for round_robin",
        ),
        (
            "loadbalance random",
            "Corefile:1 - Error during parsing: unknown policy: random",
        ),
        (
            "loadbalance round_robin {\n  prefer 10.0.0.0/8\n}",
            "Corefile:2 - Error during parsing: unknown property 'prefer'",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(setup_err(setup, text), want, "{text}");
    }
}
